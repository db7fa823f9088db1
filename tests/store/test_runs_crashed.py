"""Audit 4: a crashed run's judged membranes in `castrig runs` (and `--grade`) as in `castrig serve`,
`castrig lots` and the catalog; a filter that matches nothing says so."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import castrig_main
from conftest import membrane_metrics as _metrics


def crashed_run(root: Path, run_id: str = "20260101-000001-three") -> Path:
    """A run folder as `castrig run` leaves it when killed -9 during m2's evaporation: the catalog
    row written at the start (running, no grades), m1 judged (met claim1..4), m2 forming, the
    folder's lock gone with the process; its folder."""
    from castrig.analysis.verdict import judge
    from castrig.store import MembraneRecord, RunInfo, open_store

    store = open_store(root)
    rec = store.create_run(RunInfo(run_id=run_id, recipe_name="three", recipe_path="", profile_name="p", profile_path="",
                                   software_version="t", seed=None, operator="", started_utc="2026-01-01T00:00:01Z"))
    m = _metrics(3.0)
    verdict = judge(m)
    rec.save_membrane(MembraneRecord(f"{run_id}-m1", 1, 3, "judged", support_position=1, metrics=m, verdict=verdict.to_dict(),
                                     grades_met=list(verdict.met), target_grade="claim1", target_met=True, lot_id=f"{run_id}-m1"))
    rec.save_membrane(MembraneRecord(f"{run_id}-m2", 2, 8, "forming", support_position=2))
    rec.close()  # the lock goes as with a kill -9; run.json still says running
    return rec.run_dir


def test_crashed_run_grades_in_runs_and_grade_filter_as_serve_shows_them(tmp_path, capsys):
    from castrig.store.live import summary

    root = tmp_path / "data"
    run_dir = crashed_run(root)
    assert summary(run_dir)["status"] == "crashed" and "claim1" in summary(run_dir)["grades"]  # what /api/runs says
    done = castrig_main(capsys, "runs", "--data", str(root))
    assert done.returncode == 0
    row = next(line for line in done.stdout.splitlines() if run_dir.name in line)
    assert "crashed" in row and "claim1,claim2,claim3,claim4" in row
    done = castrig_main(capsys, "runs", "--data", str(root), "--grade", "claim1")
    assert done.returncode == 0 and run_dir.name in done.stdout and "no runs" not in done.stdout
    # the catalog row is brought up to date from the run folder
    with sqlite3.connect(root / "catalog.sqlite") as db:
        assert db.execute("select grades from runs where run_id=?", (run_dir.name,)).fetchone()[0] == "claim1,claim2,claim3,claim4"


def test_a_filter_that_matches_nothing_says_no_runs_match(tmp_path, capsys):
    root = tmp_path / "data"
    crashed_run(root)
    done = castrig_main(capsys, "runs", "--data", str(root), "--outcome", "completed")
    assert done.returncode == 0
    assert "no runs match" in done.stdout and "no runs yet" not in done.stdout
    (tmp_path / "empty").mkdir()
    done = castrig_main(capsys, "runs", "--data", str(tmp_path / "empty"), "--outcome", "completed")
    assert "no runs yet" in done.stdout
