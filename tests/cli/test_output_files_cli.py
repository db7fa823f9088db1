"""What ``castrig report --out`` and ``castrig export --to`` find already there, from the outside
(the real ``castrig`` process): a file the command did not write is never destroyed, and a
symbolic link is neither written through nor replaced. Each is refused, exit 2, one line naming
the option and the path, nothing touched."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import castrig, castrig_main, crashed_membrane_run, refused


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return crashed_membrane_run(tmp_path / "runs", "20260101-000001-night")


def _link_targets(run_dir: Path, tmp_path: Path, capsys) -> dict[str, Path]:
    """What an operator's link may point at: a file of theirs, the run's own record, nothing, an
    earlier report (castrig's own page, elsewhere)."""
    precious = tmp_path / "notes.html"
    precious.write_text("<p>operator notes, do not lose</p>\n")
    earlier = tmp_path / "earlier.html"
    assert castrig_main(capsys, "report", str(run_dir), "--out", str(earlier)).returncode == 0
    return {"a file of theirs": precious, "the run's record": run_dir / "run.sqlite",
            "nothing": tmp_path / "gone.html", "an earlier report": earlier}


def test_report_out_that_is_a_symbolic_link_is_refused(run_dir: Path, tmp_path: Path, capsys):
    """`report --out LINK` replaced the link with the page, exit 0 (the file it pointed at was
    kept, the link the operator made was gone without a word). Now refused, whatever it points at."""
    for what, target in _link_targets(run_dir, tmp_path, capsys).items():
        before = target.read_bytes() if target.exists() else None
        link = tmp_path / "latest.html"
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        said = refused(castrig_main(capsys, "report", str(run_dir), "--out", str(link)), f"--out {link}: is a symbolic link",
                       str(target))
        assert link.is_symlink() and os.readlink(link) == str(target), (what, said)
        assert (target.read_bytes() if target.exists() else None) == before, what


def test_export_never_replaces_a_file_it_did_not_write(run_dir: Path, tmp_path: Path, capsys):
    """`export RUN --to DIR` replaced an operator's own events.csv in DIR without a word, exit 0
    (and would have waited for ever on a named pipe there). Now refused naming each such file,
    nothing written; the run exported again into its own earlier tables is still fine."""
    to = tmp_path / "tables"
    to.mkdir()
    (to / "events.csv").write_text("when,what\nmonday,changed the syringe\n")
    os.mkfifo(to / "metrics.csv")
    (to / "samples.csv").symlink_to(tmp_path / "elsewhere.csv")
    before = sorted(p.name for p in to.iterdir())
    said = refused(castrig_main(capsys, "export", str(run_dir), "--to", str(to)), f"--to {to}:", "did not write",
                   "events.csv: not a csv table", "metrics.csv: not a regular file", "samples.csv: a symbolic link",
                   "nothing was written", "allowed: an empty folder")
    assert sorted(p.name for p in to.iterdir()) == before, said
    assert (to / "events.csv").read_text() == "when,what\nmonday,changed the syringe\n"
    again = tmp_path / "again"
    for _ in range(2):  # an earlier export of the same run (samples.csv: a header, no rows) is replaced
        done = castrig_main(capsys, "export", str(run_dir), "--to", str(again))
        assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr


def test_export_of_a_folder_that_is_no_run_folder_names_it_as_what_it_is(run_dir: Path, tmp_path: Path, capsys):
    """`export DATA --to DATA/tables` said "--to DATA/tables: inside the run folder DATA" of a data
    root (and of any folder: /tmp was "the run folder /tmp"). Now: not a run folder, which one."""
    data, plain = run_dir.parent, tmp_path / "micrographs"
    plain.mkdir()
    for folder, words in ((data, ["it is a data root: give one of its run folders", str(run_dir)]), (plain, [])):
        said = refused(castrig_main(capsys, "export", str(folder), "--to", str(folder / "tables")),
                       f"{folder}: not a run folder (needs run.json and run.sqlite)", *words)
        assert "inside the run folder" not in said and not (folder / "tables").exists(), said


def test_report_and_export_into_another_runs_folder_are_refused(run_dir: Path, tmp_path: Path, capsys):
    """`report R1 --out R2/report.html` replaced R2's page with R1's (an earlier castrig report,
    so taken for one to replace: the file a queue's summary names as R2's report), and `export R1
    --to R2` put R1's tables among R2's records, both exit 0. A run folder is its own run's record:
    refused, exit 2, naming the option and that folder, nothing written there."""
    other = crashed_membrane_run(run_dir.parent, "20260101-000002-day")
    assert castrig_main(capsys, "report", str(other)).returncode == 0
    page = (other / "report.html").read_bytes()
    before = sorted(p.name for p in other.iterdir())
    for args in (("report", str(run_dir), "--out", str(other / "report.html")),
                 ("export", str(run_dir), "--to", str(other)), ("export", str(run_dir), "--to", str(other / "tables"))):
        said = refused(castrig_main(capsys, *args), f"{args[2]} {args[3]}: inside the run folder {other} of another run")
        assert (other / "report.html").read_bytes() == page and sorted(p.name for p in other.iterdir()) == before, said
    assert castrig_main(capsys, "report", str(run_dir), "--out", str(run_dir / "night.html")).returncode == 0  # its own


def test_export_into_a_data_root_is_refused(run_dir: Path, tmp_path: Path, capsys):
    """`castrig export RUN --to DATA` wrote samples.csv, events.csv, ... into the data root, beside
    castrig's catalogue and run folders (and `--to DATA/tables` a folder among them), exit 0. Now
    refused, exit 2, naming the option and the data root; nothing written there. Beside it is fine.
    (The first refusal through the real CLI, the others and the export beside it in this process,
    :func:`castrig_main`, as test_report_into_a_data_root_is_refused does.)"""
    data = run_dir.parent
    before = sorted(p.name for p in data.iterdir())
    for to in (data, data / "tables", data / "exports" / "night"):
        args = ("export", str(run_dir), "--to", str(to))
        said = refused(castrig(*args) if to == data else castrig_main(capsys, *args),
                       f"--to {to}: inside the data root {data}", "allowed: a folder outside the data root")
        assert sorted(p.name for p in data.iterdir()) == before, said
    done = castrig_main(capsys, "export", str(run_dir), "--to", str(tmp_path / "tables"))
    assert done.returncode == 0 and (tmp_path / "tables" / "samples.csv").is_file(), done.stderr


def test_report_into_a_data_root_is_refused(run_dir: Path, tmp_path: Path, capsys):
    """`castrig report RUN --out DATA/x.html` wrote the page into the data root, beside castrig's
    catalogue and run folders, exit 0 (export --to there was refused). Now refused the same way,
    exit 2, nothing written; the run's own folder and a path beside the data root are fine."""
    data = run_dir.parent
    assert (data / "catalog.sqlite").exists()
    before = sorted(p.name for p in data.iterdir())
    said = refused(castrig("report", str(run_dir), "--out", str(data / "x.html")),
                   f"--out {data / 'x.html'}: inside the data root {data}", "allowed: a path outside the data root")
    out = data / "pages" / "x.html"
    said += refused(castrig_main(capsys, "report", str(run_dir), "--out", str(out)), f"--out {out}: inside the data root {data}")
    assert sorted(p.name for p in data.iterdir()) == before, said
    for out in (run_dir / "night.html", tmp_path / "night.html"):
        assert castrig_main(capsys, "report", str(run_dir), "--out", str(out)).returncode == 0 and out.is_file()
