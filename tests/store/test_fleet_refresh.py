"""A crashed run's fleet catalog row: brought up to date by `castrig runs` and `castrig store sync`
as the SQLite catalog's is, and never put back over a newer row by a refresh that a `castrig
resume` ended in the middle of (both catalogs)."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import PAUSE_AFTER_OPEN_RUN, castrig, castrig_main, crashed_membrane_run, start_castrig, wait_until, with_sitecustomize

RUN_ID = "20260101-000001-three"
GRADES = "claim1,claim2,claim3,claim4"


def fleet_row(url: str, schema: str) -> tuple[str, str, str | None]:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute(f"SELECT outcome, grades, outcome_reason FROM {schema}.runs").fetchone()  # type: ignore[arg-type,return-value]


def crashed_fleet_run(root: Path, url: str, schema: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """:func:`crashed_membrane_run` recorded through the fleet store: its row says running."""
    monkeypatch.setenv("CASTRIG_STORE", url)
    monkeypatch.setenv("CASTRIG_STORE_SCHEMA", schema)
    run_dir = crashed_membrane_run(root, RUN_ID, recipe_name="three")
    assert fleet_row(url, schema)[0] == "running"
    return run_dir


def test_castrig_runs_closes_a_crashed_runs_fleet_row_for_every_rig(pg_schema, tmp_path, monkeypatch, capsys):
    url, schema = pg_schema
    root = tmp_path / "data"
    run_dir = crashed_fleet_run(root, url, schema, monkeypatch)
    done = castrig("runs", "--data", str(root), CASTRIG_STORE=url, CASTRIG_STORE_SCHEMA=schema)
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if RUN_ID in line)
    assert "crashed" in row and GRADES in row  # the grades m1 met before the kill, as the SQLite listing shows them
    outcome, grades, reason = fleet_row(url, schema)
    assert (outcome, grades) == ("crashed", GRADES) and "castrig resume" in reason
    # a rig that cannot see the folder (nor its lock) reads the row as it is: crashed, not running
    shutil.move(run_dir, tmp_path / "elsewhere")
    (tmp_path / "other").mkdir()
    done = castrig_main(capsys, "runs", "--data", str(tmp_path / "other"))  # (CASTRIG_STORE set here too)
    assert done.returncode == 0 and "crashed" in next(line for line in done.stdout.splitlines() if RUN_ID in line)


def test_store_sync_of_a_crashed_run_writes_it_crashed(pg_schema, tmp_path, monkeypatch):
    url, schema = pg_schema
    run_dir = crashed_fleet_run(tmp_path / "data", url, schema, monkeypatch)
    done = castrig("store", "sync", str(run_dir), "--url", url, CASTRIG_STORE_SCHEMA=schema)
    assert done.returncode == 0, done.stderr
    assert "catalog row written" in done.stdout
    assert fleet_row(url, schema)[:2] == ("crashed", GRADES)


def end_as_a_resume_does(root: Path, run_dir: Path) -> None:
    """What a `castrig resume` of ``run_dir`` writes as it ends: run.json's outcome, then the
    catalog row (:func:`castrig.recipe.session` does the same through the configured store)."""
    from castrig.store import open_store
    from castrig.store.base import grades_of
    from castrig.store.lock import claim_run, release_run

    store = open_store(root)
    claim_run(run_dir, purpose="castrig resume (test)")
    try:
        rec = store.open_run(run_dir)
        rec.update_info(outcome="completed", ended_utc="2026-01-01T01:00:00Z")
        store.index_run(rec, grades_of(rec))
        rec.close()
    finally:
        release_run(run_dir)
        close = getattr(store, "close", None)
        if close is not None:
            close()


#: (store, command, which opening of the run folder the refresh is paused after): ``castrig runs``
#: opens it once, to refresh the row; ``store sync`` first to check it is a run folder, then (2)
#: for the row, after reading the row it may replace.
RACES = [("sqlite", "runs", 1), ("postgresql", "runs", 1), ("postgresql", "sync", 2)]


@pytest.mark.parametrize("store,command,pause_at", RACES)
def test_a_refresh_never_puts_an_older_row_over_a_resume_that_ended_meanwhile(store, command, pause_at, tmp_path,
                                                                              monkeypatch, request):
    root, pause = tmp_path / "data", tmp_path / "pause"
    pause.mkdir()
    env = {"PAUSE_DIR": str(pause), "PAUSE_AT_OPEN": str(pause_at), **with_sitecustomize(tmp_path, PAUSE_AFTER_OPEN_RUN)}
    if store == "postgresql":
        url, schema = request.getfixturevalue("pg_schema")
        run_dir = crashed_fleet_run(root, url, schema, monkeypatch)
        env.update(CASTRIG_STORE=url, CASTRIG_STORE_SCHEMA=schema)
    else:
        run_dir = crashed_membrane_run(root, RUN_ID, recipe_name="three")
    args = ("runs", "--data", str(root)) if command == "runs" else ("store", "sync", str(run_dir))
    proc = start_castrig(*args, **env)
    try:
        wait_until(lambda: (pause / "reached").exists() or proc.poll() is not None, timeout_s=30, what="the folder read")
        assert proc.poll() is None, proc.communicate()
        end_as_a_resume_does(root, run_dir)  # the run ends while the refresh holds what it read before
        (pause / "go").touch()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    if store == "postgresql":
        assert fleet_row(url, schema)[:2] == ("completed", GRADES)
    with sqlite3.connect(root / "catalog.sqlite") as db:
        assert db.execute("select outcome, ended_utc from runs where run_id=?", (RUN_ID,)).fetchone() == \
            ("completed", "2026-01-01T01:00:00Z")


def test_castrig_runs_does_not_wait_on_another_writer_of_the_row(pg_schema, tmp_path, monkeypatch):
    """Another transaction holds the crashed run's row (a `castrig store sync` of a large run,
    another rig's listing): `castrig runs` waited as long as it lasted (39 s in the review). Now
    it leaves the row as read, lists the run, and names `castrig store sync`."""
    import time

    import psycopg

    url, schema = pg_schema
    root = tmp_path / "data"
    crashed_fleet_run(root, url, schema, monkeypatch)
    with psycopg.connect(url) as holder:
        holder.execute(f"SELECT 1 FROM {schema}.runs FOR UPDATE")  # type: ignore[arg-type]  # held until the block ends
        t0 = time.monotonic()
        done = castrig("runs", "--data", str(root), CASTRIG_STORE=url, CASTRIG_STORE_SCHEMA=schema, timeout_s=60)
        took = time.monotonic() - t0
    assert done.returncode == 0, done.stderr
    assert took < 15, took
    said = done.stdout + done.stderr  # (castrig's log lines share the console with the table)
    assert RUN_ID in done.stdout and "castrig store sync" in said, said
    assert fleet_row(url, schema)[0] == "running"  # left as read: the other writer's to change


def test_castrig_lots_only_reads_the_runs_it_lists(pg_schema, tmp_path, monkeypatch):
    """`castrig lots` opened every run through the fleet store, whose recorder pushes its run row
    from run.json as it opens: a crashed run's row, closed by `castrig runs`, went back to
    `running` for every rig. It reads the folders read-only now, as `castrig runs` does."""
    url, schema = pg_schema
    root = tmp_path / "data"
    crashed_fleet_run(root, url, schema, monkeypatch)
    assert castrig("runs", "--data", str(root), CASTRIG_STORE=url, CASTRIG_STORE_SCHEMA=schema).returncode == 0
    assert fleet_row(url, schema)[0] == "crashed"
    listed = castrig("lots", "--data", str(root), CASTRIG_STORE=url, CASTRIG_STORE_SCHEMA=schema)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert RUN_ID in listed.stdout
    assert fleet_row(url, schema)[0] == "crashed"
