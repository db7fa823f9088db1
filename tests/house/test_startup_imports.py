"""The commands an operator or a script runs often start without loading numpy: each castrig
process pays its imports, and the suite starts hundreds (``castrig check``, ``runs``, ``lots``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, castrig


def imported(stderr: str) -> set[str]:
    """Module names from ``PYTHONPROFILEIMPORTTIME`` lines (``import time: self | cum | name``)."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:") and "|" in line}


@pytest.mark.parametrize("args", [
    ("check", str(ROOT / "recipes" / "overnight.yaml")),
    ("runs",),
    ("lots",),
])
def test_listing_and_checking_commands_do_not_load_numpy(tmp_path: Path, args: tuple[str, ...]) -> None:
    if args[0] != "check":
        args = (*args, "--data", str(tmp_path))
    out = castrig(*args, PYTHONPROFILEIMPORTTIME="1")
    assert out.returncode == 0, out.stderr[-2000:]
    mods = imported(out.stderr)
    assert "castrig.cli.main" in mods  # the profile was read
    assert "numpy" not in mods
