"""Audit 4: a crashed run's judged membranes in `castrig runs` (and `--grade`) as in `castrig serve`,
`castrig lots` and the catalog; a filter that matches nothing says so."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import castrig, castrig_main, crashed_membrane_run


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


def test_a_faulted_runs_reason_is_in_runs_json(tmp_path):
    """`castrig runs --json` said ``"reason": ""`` for a faulted run although its run.json said why
    (``outcome_reason``: the catalog keeps the outcome alone). Now the reason is there, and in the table."""
    from castrig.store import RunInfo, open_store

    root = tmp_path / "data"
    rec = open_store(root).create_run(RunInfo(run_id="20260101-000001-full", recipe_name="night", recipe_path="",
                                              profile_name="p", profile_path="", software_version="t", seed=None,
                                              operator="", started_utc="2026-01-01T00:00:01Z"))
    rec.finish("faulted", "disk full: cannot write the run record")
    rec.close()

    done = castrig("runs", "--data", str(root), "--json")

    assert done.returncode == 0, done.stderr
    (line,) = [json.loads(x) for x in done.stdout.splitlines()]
    assert (line["outcome"], line["reason"]) == ("faulted", "disk full: cannot write the run record")
