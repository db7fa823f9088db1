"""What ``castrig report --out`` and ``castrig export --to`` find already there, from the outside
(the real ``castrig`` process): a file the command did not write is never destroyed, and a
symbolic link is neither written through nor replaced. Each is refused, exit 2, one line naming
the option and the path, nothing touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import castrig, crashed_membrane_run, refused


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return crashed_membrane_run(tmp_path / "runs", "20260101-000001-night")


def _link_targets(run_dir: Path, tmp_path: Path) -> dict[str, Path]:
    """What an operator's link may point at: a file of theirs, the run's own record, nothing, an
    earlier report (castrig's own page, elsewhere)."""
    precious = tmp_path / "notes.html"
    precious.write_text("<p>operator notes, do not lose</p>\n")
    earlier = tmp_path / "earlier.html"
    assert castrig("report", str(run_dir), "--out", str(earlier)).returncode == 0
    return {"a file of theirs": precious, "the run's record": run_dir / "run.sqlite",
            "nothing": tmp_path / "gone.html", "an earlier report": earlier}


def test_report_out_that_is_a_symbolic_link_is_refused(run_dir: Path, tmp_path: Path):
    """`report --out LINK` replaced the link with the page, exit 0 (the file it pointed at was
    kept, the link the operator made was gone without a word). Now refused, whatever it points at."""
    for what, target in _link_targets(run_dir, tmp_path).items():
        before = target.read_bytes() if target.exists() else None
        link = tmp_path / "latest.html"
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        said = refused(castrig("report", str(run_dir), "--out", str(link)), f"--out {link}: is a symbolic link",
                       str(target))
        assert link.is_symlink() and os.readlink(link) == str(target), (what, said)
        assert (target.read_bytes() if target.exists() else None) == before, what
