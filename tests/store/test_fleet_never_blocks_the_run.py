"""The fleet database never holds up a run: the runner shares no lock with the network and reads
its own run folder (tests/store: a table another session holds, through the real `castrig`)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from conftest import castrig, castrig_main, only_run_dir, pg_count

from castrig.store.postgres_store import Fleet
from castrig.store.live import open_ro

HELD_S = 60.0


def _hold(url: str, table: str, held: threading.Event, release: threading.Event) -> None:
    """Another session holding ``table`` exclusively (a VACUUM FULL, a long transaction)."""
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")  # type: ignore[arg-type]
        held.set()
        release.wait(HELD_S)
        conn.rollback()


def _demo_one_field(tmp_path: Path) -> Path:
    """recipes/demo.yaml with one field per view, not two: a membrane saved (and pushed) all the
    same, ~0.4 s of CPU less."""
    recipe = tmp_path / "demo.yaml"
    text = (Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml").read_text()
    assert "fields: 2}" in text
    recipe.write_text(text.replace("fields: 2}", "fields: 1}"))
    return recipe


def test_a_run_goes_on_while_another_session_holds_the_fleet_tables(pg_schema, tmp_path: Path, capsys, monkeypatch):
    """A table lock held by another session stopped `castrig run` as long as it was held: the
    runner's thread waited for the push's lock (its reads flushed to the database first, and a
    membrane's save took the push's lock). On a wall-clock rig the pumps' safe-mode watchdog
    tripped and the membrane was lost; a frozen server stopped the run for good."""
    url, schema = pg_schema
    Fleet(url, schema).require(lambda conn: None)  # the tables, as a first run makes them
    held, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold, args=(url, f"{schema}.samples", held, release), daemon=True)
    holder.start()
    try:
        assert held.wait(10)
        t0 = time.monotonic()
        done = castrig("run", str(_demo_one_field(tmp_path)), "--data", str(tmp_path / "runs"), "-q",
                       CASTRIG_STORE=url, CASTRIG_STORE_SCHEMA=schema, timeout_s=HELD_S + 30)
        took_s = time.monotonic() - t0
        assert holder.is_alive()  # the lock was held all along
    finally:
        release.set()
        holder.join(10)
    assert done.returncode == 0 and "completed" in done.stdout, done.stdout + done.stderr
    # the run itself takes a few seconds; its end waits at most CLOSE_WAIT_S for the last push
    assert took_s < 40, took_s
    assert "castrig store sync" in done.stdout + done.stderr  # what is not in the database yet is said
    run_dir = only_run_dir(tmp_path / "runs")
    monkeypatch.setenv("CASTRIG_STORE_SCHEMA", schema)  # (the sync, the tables free again, through castrig_main)
    synced = castrig_main(capsys, "store", "sync", str(run_dir), "--url", url)
    assert synced.returncode == 0, synced.stderr
    with open_ro(run_dir) as db:
        local = db.execute("select count(*) from samples").fetchone()[0]
    assert pg_count(url, schema, "samples") == local > 0
