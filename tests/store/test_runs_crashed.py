"""Audit 4: a crashed run's judged membranes in `castrig runs` (and `--grade`) as in `castrig serve`,
`castrig lots` and the catalog; a filter that matches nothing says so."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import castrig_main, crashed_membrane_run


def crashed_run(root: Path, run_id: str = "20260101-000001-three") -> Path:
    return crashed_membrane_run(root, run_id, recipe_name="three")


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
