"""A run folder with one row edited by hand or damaged (a membrane's metrics that are not JSON, a
journal time that is a text or infinite): `castrig report` and `export` ended in a Python
traceback (exit 1), and a damaged membranes row ended `castrig runs` and `castrig lots` for the
whole data root — one folder hid every run. Now the commands that need the row say which table,
which row and what is wrong (exit 2), and the listings show that run damaged and the others."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from conftest import castrig, castrig_main

DAMAGE = [  # (SQL, the table named)
    ("UPDATE membranes SET metrics_json = '{bad'", "membranes"),
    ("UPDATE membranes SET k = 'two'", "membranes"),
    ("UPDATE events SET data_json = '{{' WHERE id = (SELECT max(id) FROM events)", "events"),
    ("UPDATE journal SET t_s = 'abc' WHERE seq = (SELECT max(seq) FROM journal)", "journal"),
    ("UPDATE journal SET data_json = '[1]' WHERE seq = (SELECT max(seq) FROM journal)", "journal"),
    ("UPDATE journal SET t_s = 9e999 WHERE seq = (SELECT max(seq) FROM journal)", "journal"),
    ("UPDATE samples SET value = 'x' WHERE rowid = 5", "samples"),
    ("UPDATE journal SET step_index = 9999 WHERE seq = (SELECT max(seq) FROM journal)", "journal"),
    ("UPDATE journal SET t_s = -1e6 WHERE seq = 1", "journal"),
    # valid JSON of a shape castrig never writes: `lots` ended in a TypeError for the whole data
    # root, `report`/`export` in AttributeErrors, `status` too for an image's metadata
    ("UPDATE membranes SET metrics_json = '[1]'", "membranes"),
    ("UPDATE membranes SET metrics_json = '\"x\"'", "membranes"),
    ("UPDATE membranes SET metrics_json = '{\"mean_pore_diameter_um\": [1]}'", "membranes"),
    ("UPDATE membranes SET process_json = '{\"dispensed\": 3}'", "membranes"),
    ("UPDATE membranes SET process_json = '{\"evaporation\": [1]}'", "membranes"),
    ("UPDATE membranes SET process_json = '[1]'", "membranes"),
    ("UPDATE images SET metadata_json = '[1]'", "images"),
]


def _two_runs(finished_demo_run, root: Path) -> tuple[Path, Path]:
    """The demo run and a second one (its copy under another run id) in one data root."""
    data, run_id = finished_demo_run
    damaged = Path(shutil.copytree(data / run_id, root / run_id))
    other = Path(shutil.copytree(data / run_id, root / f"{run_id}-b"))
    info = json.loads((other / "run.json").read_text())
    info["run_id"] = other.name
    (other / "run.json").write_text(json.dumps(info))
    return damaged, other


@pytest.fixture(scope="session")
def crashed_overnight_run(tmp_path_factory, worker_id) -> Path:
    """recipes/overnight.yaml killed -9 once it recorded 2000 samples and 3 journal rows, made once
    per session (:func:`made_once`) and copied per test: the two crashed-run tests below spoil
    their copies each their own way (before, each ran and killed an overnight of its own)."""
    from conftest import ROOT, made_once, only_run_dir, run_rows, run_then_kill_9

    def make(data: Path) -> None:
        run_then_kill_9(ROOT / "recipes" / "overnight.yaml", data,
                        lambda d: len(run_rows(d, "SELECT 1 FROM samples LIMIT 2000")) >= 2000
                        and len(run_rows(d, "SELECT 1 FROM journal LIMIT 3")) >= 3)

    run_dir = only_run_dir(made_once(tmp_path_factory, worker_id, "crashed-overnight-damaged", make))
    assert run_dir is not None
    return run_dir


def _crashed_copy(crashed_overnight_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(crashed_overnight_run, tmp_path / "runs" / crashed_overnight_run.name))


def _spoil(run_dir: Path, sql: str) -> None:
    with closing(sqlite3.connect(run_dir / "run.sqlite")) as db:
        db.execute(sql)
        db.commit()


@pytest.mark.parametrize("sql, table", DAMAGE)
def test_a_damaged_row_is_named_and_hides_no_other_run(finished_demo_run, tmp_path, capsys, sql, table):
    damaged, other = _two_runs(finished_demo_run, tmp_path / "runs")
    _spoil(damaged, sql)
    for argv in (["report", str(damaged), "--out", str(tmp_path / "r.html")], ["export", str(damaged), "--to", str(tmp_path / "x")]):
        done = castrig_main(capsys, *argv)
        said = " ".join(done.stderr.split())
        if table == "journal" and argv[0] == "export":  # (export does not read the journal; images it does: images.csv)
            assert done.returncode == 0, said
            continue
        assert done.returncode == 2 and "Traceback" not in said, (argv, said)
        assert f"{damaged}: damaged run folder: run.sqlite: {table} row " in said and "cannot be read" in said, (argv, said)
    status = castrig_main(capsys, "status", str(damaged))  # the live view reads it as far as it can
    assert status.returncode == 0 and damaged.name in status.stdout, status.stdout + status.stderr
    runs = castrig_main(capsys, "runs", "--data", str(tmp_path / "runs"))
    assert runs.returncode == 0 and other.name in runs.stdout, runs.stdout + runs.stderr
    lots = castrig_main(capsys, "lots", "--data", str(tmp_path / "runs"))
    assert lots.returncode == 0 and "claim1" in lots.stdout, lots.stdout + lots.stderr  # the other run's lot
    if table == "membranes":  # the listings read membranes: this run said damaged, with the row
        assert "damaged" in runs.stdout and "membranes row 1" in runs.stdout, runs.stdout
        assert f"not a lot: {damaged.name}-m*" in lots.stdout and "cannot be read" in lots.stdout, lots.stdout


def test_a_damaged_membranes_row_through_the_castrig_process(finished_demo_run, tmp_path):
    damaged, other = _two_runs(finished_demo_run, tmp_path / "runs")
    _spoil(damaged, DAMAGE[0][0])
    for argv in (["runs", "--data", str(tmp_path / "runs")], ["lots", "--data", str(tmp_path / "runs")]):
        done = castrig(*argv)  # was: a JSONDecodeError traceback, exit 1, no run listed
        assert done.returncode == 0 and "Traceback" not in done.stderr and "claim1" in done.stdout, done.stdout + done.stderr
    done = castrig("report", str(damaged), "--out", str(tmp_path / "r.html"))
    assert done.returncode == 2 and "Traceback" not in done.stderr and "membranes row 1 cannot be read" in done.stderr, done.stderr


def test_a_crashed_runs_database_overwritten_is_named_by_report_export_and_resume(crashed_overnight_run, tmp_path):
    """kill -9 mid-run, then the pages of run.sqlite after its schema overwritten (a bad disk, a
    wrong copy): the folder opens, and the first query met the damage — `report`, `export` and
    `resume` ended in sqlite3's "database disk image is malformed" traceback (exit 1), `resume`
    with the rig already opened. Now each says the folder is damaged (exit 2), and `resume`
    before any device is touched: run.json is as the crash left it."""
    run_dir = _crashed_copy(crashed_overnight_run, tmp_path)
    db_path = run_dir / "run.sqlite"
    with closing(sqlite3.connect(db_path)) as db:  # every page in run.sqlite itself: the damage is met, not the WAL's copy
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page = db.execute("PRAGMA page_size").fetchone()[0]
    with open(db_path, "r+b") as fh:
        size = fh.seek(0, 2)
        fh.seek(8 * page)
        fh.write(b"hello world" * ((size - 8 * page) // 11))
    info = (run_dir / "run.json").read_text()
    for argv in (["report", str(run_dir), "--out", str(tmp_path / "r.html")], ["export", str(run_dir), "--to", str(tmp_path / "x")],
                 ["resume", str(run_dir)]):
        done = castrig(*argv)
        said = " ".join(done.stderr.split())
        assert done.returncode == 2 and "Traceback" not in said, (argv, said[-1500:])
        assert f"{run_dir}: damaged run folder: run.sqlite" in said, (argv, said)
    assert (run_dir / "run.json").read_text() == info


RUN_JSON_EDITS = [  # (edit of run.json, what the message names)
    (lambda d: d["recipe"].update(steps="nope"), "field recipe.steps: expected a list of objects"),  # status said "step 11/4"
    (lambda d: d.pop("outcome"), "field outcome: missing"),  # runs said completed, status crashed, resume resumed it
    (lambda d: d.update(outcome="weird"), "field outcome: expected one of running, completed"),  # shown as is, resumed
    (lambda d: d.update(started_utc="yesterday"), "field started_utc: expected a UTC time"),  # taken silently
]


@pytest.mark.parametrize("edit, says", RUN_JSON_EDITS)
def test_a_run_json_value_no_reader_can_trust_is_named_by_every_reader(finished_demo_run, tmp_path, capsys, edit, says):
    damaged, other = _two_runs(finished_demo_run, tmp_path / "runs")
    info = json.loads((damaged / "run.json").read_text())
    edit(info)
    (damaged / "run.json").write_text(json.dumps(info))
    status = castrig_main(capsys, "status", str(damaged))
    assert "damaged" in status.stdout and says in " ".join(status.stdout.split()), status.stdout + status.stderr
    for argv in (["report", str(damaged), "--out", str(tmp_path / "r.html")], ["resume", str(damaged)]):
        done = castrig_main(capsys, *argv)
        said = " ".join(done.stderr.split())
        assert done.returncode == 2 and f"{damaged}: damaged run folder: run.json: {says}" in said, (argv, said)
    runs = castrig_main(capsys, "runs", "--data", str(tmp_path / "runs"))
    assert runs.returncode == 0 and "damaged" in runs.stdout and other.name in runs.stdout, runs.stdout


def test_a_journal_step_outside_the_recipe_is_called_damaged_by_status_and_resume(crashed_overnight_run, tmp_path):
    """The journal's last step_index 9999 of 8 steps: `castrig status` said "step 10000/8", and a
    negative journal time had `resume` say it goes on from minus a million seconds. Through the
    castrig process, on a crashed run (the one resume would take)."""
    run_dir = _crashed_copy(crashed_overnight_run, tmp_path)
    _spoil(run_dir, "UPDATE journal SET step_index = 9999 WHERE seq = (SELECT max(seq) FROM journal)")
    status = castrig("status", str(run_dir))
    said = " ".join(status.stdout.split())
    assert "damaged" in said and "step_index 9999 is none of the recipe's 26 steps" in said and "10000" not in said, said
    info = (run_dir / "run.json").read_text()
    _spoil(run_dir, "UPDATE journal SET step_index = 0, t_s = -1e6 WHERE seq = (SELECT max(seq) FROM journal)")
    done = castrig("resume", str(run_dir))
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "damaged run folder: run.sqlite: journal row" in said and "t_s ≥ 0" in said, said
    assert (run_dir / "run.json").read_text() == info  # refused before the rig was touched
