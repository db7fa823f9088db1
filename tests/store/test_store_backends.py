"""One store test suite, run against every backend: SQLite, and PostgreSQL when a server is given.

PostgreSQL: set ``CASTRIG_TEST_PG`` to a URL (``.ci/postgres.sh`` starts a server and prints it).
Without it those tests are skipped with that reason — and fail under ``CI=true``, so CI never
passes them silently. Each test works in its own PostgreSQL schema, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from castrig.store import RunStore, SqliteRunStore
from conftest import Proxy, demo_run_info, pg_count  # the fixture pg_schema is conftest's too

@pytest.fixture(params=["sqlite", "postgresql"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A function root → store of the backend under test."""
    if request.param == "sqlite":
        yield lambda root=tmp_path: SqliteRunStore(root)
        return
    url, schema = request.getfixturevalue("pg_schema")
    from castrig.store.postgres_store import PostgresRunStore

    made: list[PostgresRunStore] = []

    def make(root: Path = tmp_path) -> PostgresRunStore:
        made.append(PostgresRunStore(root, url, schema=schema))
        return made[-1]

    make.url, make.schema = url, schema  # type: ignore[attr-defined]
    yield make
    for s in made:
        s.close()


def fill(rec, n: int = 20) -> None:  # type: ignore[no-untyped-def]
    for i in range(n):
        rec.add_samples(float(i), {"rh_near_pct": 40.0 + i, "t_near_c": 22.0})
    rec.add_event(0.5, "step_start", "runner", "step 0: wait", {"step": 0})
    rec.add_event(3.0, "interlock", "rh_band", "RH out of band", {"action": "hold", "rh": np.float64(71.5)})
    rec.add_journal(0.5, 0, "started", {"type": "wait"})
    rec.add_journal(9.0, 0, "done", {"settled_after_s": 8.5})
    rec.save_result(10.0, "metrics", {"opening_ratio": np.float64(0.5), "pore_count": 12})


def check_contents(rec, n: int = 20) -> None:  # type: ignore[no-untyped-def]
    assert rec.samples("rh_near_pct") == [(float(i), "rh_near_pct", 40.0 + i) for i in range(n)]
    assert len(rec.samples()) == 2 * n
    assert rec.samples()[:2] == [(0.0, "rh_near_pct", 40.0), (0.0, "t_near_c", 22.0)]  # insertion order
    ev = rec.events()
    assert [(e.t_s, e.kind, e.source, e.message) for e in ev] == [
        (0.5, "step_start", "runner", "step 0: wait"), (3.0, "interlock", "rh_band", "RH out of band")]
    assert ev[1].data == {"action": "hold", "rh": 71.5}
    assert [e.kind for e in rec.events("interlock")] == ["interlock"]
    j = rec.journal()
    assert [(e.seq, e.step_index, e.state, e.data) for e in j] == [
        (1, 0, "started", {"type": "wait"}), (2, 0, "done", {"settled_after_s": 8.5})]
    assert rec.results() == {"metrics": {"opening_ratio": 0.5, "pore_count": 12}}


def test_records_round_trip(make_store):  # type: ignore[no-untyped-def]
    store: RunStore = make_store()
    with store.create_run(demo_run_info()) as rec:
        fill(rec)
        check_contents(rec)
        rec.finish("completed", None)
        run_dir = rec.run_dir
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "completed" and info["ended_utc"]
    with make_store().open_run(run_dir) as again:  # a new store object, as a report or resume would
        check_contents(again)
        assert again.info.outcome == "completed"
        again.add_journal(11.0, 1, "started", {"type": "purge"})  # resume appends
        assert [e.seq for e in again.journal()] == [1, 2, 3]


def test_catalog_lists_indexed_runs_with_grades(make_store):  # type: ignore[no-untyped-def]
    store = make_store()
    with store.create_run(demo_run_info("a", "2026-01-01T00:00:00Z")) as rec:
        rec.finish("completed")
        store.index_run(rec, ["claim1", "claim2"])
    with store.create_run(demo_run_info("b", "2026-01-02T00:00:00Z")) as rec:
        rec.finish("faulted", "sensor stale")
        store.index_run(rec, [])
    rows = {r.run_id: r for r in make_store().list_runs()}
    assert set(rows) == {"a", "b"}
    assert rows["a"].grades == ("claim1", "claim2") and rows["a"].outcome == "completed"
    assert rows["b"].grades == () and rows["b"].outcome == "faulted"
    assert Path(rows["a"].run_dir) == (store.root / "a").resolve()


WRITER = textwrap.dedent(
    """
    import os, sys
    from castrig.store import RunInfo, SqliteRunStore
    if sys.argv[2]:
        from castrig.store.postgres_store import PostgresRunStore
        store = PostgresRunStore(sys.argv[1], sys.argv[2], schema=sys.argv[3])
    else:
        store = SqliteRunStore(sys.argv[1])
    info = RunInfo(run_id="crash", recipe_name="r", recipe_path="r", profile_name="p", profile_path="p",
                   software_version="t", seed=0, operator="", started_utc="2026-01-01T00:00:00Z")
    rec = store.create_run(info)
    print(rec.run_dir, flush=True)
    i = 0
    while True:
        rec.add_samples(float(i), {"a": float(i), "b": float(-i)})
        print(i, flush=True)   # only after the call returned: the record must be durable
        i += 1
    """
)


def test_sigkill_of_the_writer_loses_no_returned_sample(make_store, tmp_path: Path):  # type: ignore[no-untyped-def]
    url, schema = getattr(make_store, "url", ""), getattr(make_store, "schema", "")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), url, schema], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    run_dir = Path(proc.stdout.readline().strip())
    last = -1
    while last < 150:
        last = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # the writer ran on while we read: the last sample it said was returned is in the pipe
    last = max([last] + [int(line) for line in proc.stdout.read().splitlines(keepends=True) if line.endswith("\n")])
    with make_store().open_run(run_dir) as rec:  # PostgreSQL: the reopened run pushes what was missing
        if url:
            assert rec.flush()
        values = [v for _, _, v in rec.samples("a")]
        assert values[: last + 1] == [float(i) for i in range(last + 1)]
        assert len(values) <= last + 2
        assert len(rec.samples("b")) == len(values)  # a tick's samples: one transaction
    if url:
        assert pg_count(url, schema, "samples") == 2 * len(values)


# -- PostgreSQL only ----------------------------------------------------------------------------------
def test_postgres_records_are_in_the_database(pg_schema, tmp_path: Path):  # type: ignore[no-untyped-def]
    from castrig.store.postgres_store import PostgresRunStore

    url, schema = pg_schema
    store = PostgresRunStore(tmp_path, url, schema=schema)
    with store.create_run(demo_run_info()) as rec:
        fill(rec)
        assert rec.flush()
        uid = rec.run_uid
    assert pg_count(url, schema, "samples", f"WHERE run_uid = '{uid}'") == 40
    assert pg_count(url, schema, "events") == 2 and pg_count(url, schema, "journal") == 2
    assert pg_count(url, schema, "results") == 1 and pg_count(url, schema, "runs") == 1
    # the run folder is still a complete SQLite run folder: readable offline
    with SqliteRunStore(tmp_path).open_run(rec.run_dir) as local:
        check_contents(local)
    store.close()


def test_a_runs_membranes_are_pushed_when_they_change_not_with_every_sample(pg_schema, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A run's recorder pushes its records as they are written (every sample, every second on the
    rig), and each push upserted every membrane row, whole verdicts and all: a 20-cast night sent
    its judged membranes' ~400 kB to the database once a second. Counted by PostgreSQL itself
    (a BEFORE INSERT trigger sees every row an upsert proposes): none now between membrane changes,
    the rows again when one changes."""
    import psycopg

    from castrig.analysis.verdict import judge
    from castrig.store import MembraneRecord
    from castrig.store.postgres_store import PostgresRunStore
    from conftest import membrane_metrics

    url, schema = pg_schema
    store = PostgresRunStore(tmp_path, url, schema=schema)
    verdict = judge(membrane_metrics(3.0))
    with store.create_run(demo_run_info()) as rec:
        def membrane(k: int, status: str = "judged") -> MembraneRecord:
            return MembraneRecord(f"{rec.info.run_id}-m{k}", k, 5 * k, status, support_position=k, metrics=membrane_metrics(3.0),
                                  verdict=verdict.to_dict(), grades_met=list(verdict.met), target_grade="claim1", target_met=True)

        for k in range(1, 21):
            rec.save_membrane(membrane(k))
        assert rec.flush() and pg_count(url, schema, "membranes") == 20
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {schema}.proposed(membrane_id TEXT)")  # type: ignore[arg-type]
            conn.execute(f"CREATE FUNCTION {schema}.proposed() RETURNS trigger LANGUAGE plpgsql AS "  # type: ignore[arg-type]
                         f"$$ BEGIN INSERT INTO {schema}.proposed VALUES (NEW.membrane_id); RETURN NEW; END $$")
            conn.execute(f"CREATE TRIGGER proposed BEFORE INSERT ON {schema}.membranes "  # type: ignore[arg-type]
                         f"FOR EACH ROW EXECUTE FUNCTION {schema}.proposed()")
        for i in range(5):  # five samples, each pushed
            rec.add_samples(100.0 + i, {"rh_near_pct": 70.0})
            assert rec.flush()
        assert pg_count(url, schema, "proposed") == 0  # (100 before: 20 rows at each push)
        rec.save_membrane(membrane(21, "forming"))
        assert rec.flush()
        assert pg_count(url, schema, "proposed") == 21 and pg_count(url, schema, "membranes", "WHERE status = 'forming'") == 1
    store.close()


def test_sync_is_idempotent(pg_schema, tmp_path: Path):  # type: ignore[no-untyped-def]
    from castrig.store.sync import sync_run

    url, schema = pg_schema
    with SqliteRunStore(tmp_path).create_run(demo_run_info()) as rec:  # a rig without the database
        fill(rec)
        rec.save_result(12.0, "verdict", {"grades_met": ["claim1"]})
        rec.finish("completed")
    first = sync_run(rec.run_dir, url, schema=schema)
    assert first.changed and first.catalog_changed
    assert first.inserted == {"samples": 40, "events": 2, "journal": 2, "images": 0, "results": 2, "membranes": 0}
    counts = [pg_count(url, schema, t) for t in ("runs", "samples", "events", "journal", "results")]
    second = sync_run(rec.run_dir, url, schema=schema)
    assert not second.changed, second.summary()
    assert second.run_uid == first.run_uid
    assert [pg_count(url, schema, t) for t in ("runs", "samples", "events", "journal", "results")] == counts
    import psycopg

    with psycopg.connect(url) as conn:
        grades = conn.execute(f"SELECT grades FROM {schema}.runs").fetchone()[0]  # type: ignore[arg-type,index]
    assert grades == "claim1"
    # more records later (a resumed run): only those are pushed
    with SqliteRunStore(tmp_path).open_run(rec.run_dir) as rec2:
        rec2.add_samples(99.0, {"rh_near_pct": 1.0})
    third = sync_run(rec.run_dir, url, schema=schema)
    assert third.inserted["samples"] == 1 and sum(third.inserted.values()) == 1


def test_database_lost_mid_run_loses_no_sample(pg_schema, tmp_path: Path):  # type: ignore[no-untyped-def]
    from urllib.parse import urlsplit

    from castrig.store.postgres_store import PostgresRunStore

    url, schema = pg_schema
    parts = urlsplit(url)
    proxy = Proxy((parts.hostname or "127.0.0.1", parts.port or 5432))
    via_proxy = parts._replace(netloc=parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{proxy.port}").geturl()
    try:
        store = PostgresRunStore(tmp_path, via_proxy, schema=schema, retry_interval_s=0.2)
        rec = store.create_run(demo_run_info())
        for i in range(50):
            rec.add_samples(float(i), {"a": float(i)})
        assert rec.flush()
        proxy.cut()  # the database is gone: writes go on, into the run folder
        t0 = time.monotonic()
        for i in range(50, 150):
            rec.add_samples(float(i), {"a": float(i)})
            if i == 100:
                time.sleep(0.5)  # let the pusher try (and fail) meanwhile
        assert time.monotonic() - t0 < 5.0, "writes must not wait for the lost database"
        assert not rec.flush() and rec.pending is None
        assert pg_count(url, schema, "samples") == 50
        proxy.restore()
        deadline = time.monotonic() + 10
        while pg_count(url, schema, "samples") < 150 and time.monotonic() < deadline:
            time.sleep(0.1)  # the pusher retries by itself
        assert rec.flush() and rec.pending == 0
        rec.close()
        import psycopg

        with psycopg.connect(url) as conn:
            got = [r[0] for r in conn.execute(f"SELECT value FROM {schema}.samples ORDER BY local_id")]  # type: ignore[arg-type]
        assert got == [float(i) for i in range(150)]  # every sample, once, in order
        store.close()
    finally:
        proxy.close()


def test_backend_terminated_by_the_server_is_retried(pg_schema, tmp_path: Path):  # type: ignore[no-untyped-def]
    import psycopg

    from castrig.store.postgres_store import PostgresRunStore

    url, schema = pg_schema
    store = PostgresRunStore(tmp_path, url, schema=schema)
    with store.create_run(demo_run_info()) as rec:
        rec.add_samples(0.0, {"a": 0.0})
        assert rec.flush()
        pid = rec._fleet._conn.info.backend_pid  # type: ignore[union-attr]
        with psycopg.connect(url, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]  # type: ignore[index]
        rec.add_samples(1.0, {"a": 1.0})
        assert rec.flush()  # reconnected at once, nothing waits for the retry interval
        assert rec._fleet._conn.info.backend_pid != pid  # type: ignore[union-attr]
    assert pg_count(url, schema, "samples") == 2
    store.close()


def test_store_selection(monkeypatch, tmp_path: Path):
    from castrig.errors import BadInput
    from castrig.store.postgres_store import PostgresRunStore, open_configured_store

    monkeypatch.delenv("CASTRIG_STORE", raising=False)
    assert type(open_configured_store(tmp_path)) is SqliteRunStore
    monkeypatch.setenv("CASTRIG_STORE", "mysql://x")
    with pytest.raises(BadInput, match="expected a postgresql:// URL"):
        open_configured_store(tmp_path)
    pytest.importorskip("psycopg", reason="psycopg not installed: pip install 'castrig[postgres]'")
    monkeypatch.setenv("CASTRIG_STORE", "postgresql://u:secret@127.0.0.1:1/db")
    store = open_configured_store(tmp_path)  # connects lazily: nothing reached yet
    assert isinstance(store, PostgresRunStore) and store.root == tmp_path
    monkeypatch.delenv("CASTRIG_STORE")
    monkeypatch.setenv("CASTRIG_DATA", str(tmp_path / "data"))
    store = open_configured_store("postgresql://u:secret@127.0.0.1:1/db")  # a profile's store: URL
    assert isinstance(store, PostgresRunStore) and store.root == tmp_path / "data"


def test_sync_upserts_membranes(pg_schema, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Membrane rows change as a membrane is made, judged or lost: a sync brings them up to date, once."""
    import psycopg

    from castrig.store import MembraneRecord
    from castrig.store.sync import sync_run

    url, schema = pg_schema
    with SqliteRunStore(tmp_path).create_run(demo_run_info()) as rec:
        mid = rec.info.run_id + "-m1"
        rec.save_membrane(MembraneRecord(mid, 1, 3, "forming", support_position=1, simulated=True, t_start_s=1.0))
        rec.finish("running")
    assert sync_run(rec.run_dir, url, schema=schema).inserted["membranes"] == 1
    assert sync_run(rec.run_dir, url, schema=schema).inserted["membranes"] == 0  # idempotent
    with SqliteRunStore(tmp_path).open_run(rec.run_dir) as again:
        again.save_membrane(MembraneRecord(mid, 1, 3, "judged", support_position=1, simulated=True, grades_met=["claim1"],
                                           metrics={"mean_pore_diameter_um": 3.1}, verdict={"grades_met": ["claim1"]},
                                           target_grade="claim1", target_met=True, lot_id=mid))
    assert sync_run(rec.run_dir, url, schema=schema).inserted["membranes"] == 1
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT status, simulated, grades_met, metrics_json->>'mean_pore_diameter_um', lot_id"
                           f" FROM {schema}.membranes").fetchone()  # type: ignore[arg-type]
    assert row == ("judged", True, "claim1", "3.1", mid)


def test_samples_are_indexed_by_channel_once_the_run_ends(tmp_path: Path):
    """The per-channel index costs ~4x a sample's write while recording (a dozen B-tree pages
    rewritten per commit); it is built when the run ends, and readers of a live run scan."""
    import sqlite3

    def indexes(run_dir: Path) -> list[str]:
        db = sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)
        try:
            return [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='samples'")]
        finally:
            db.close()

    with SqliteRunStore(tmp_path, synchronous="NORMAL").create_run(demo_run_info()) as rec:
        fill(rec)
        assert indexes(rec.run_dir) == []
        check_contents(rec)  # a live run reads the same without it
        rec.finish("completed", None)
        assert indexes(rec.run_dir) == ["samples_channel_t"]
        run_dir = rec.run_dir
    db = sqlite3.connect(run_dir / "run.sqlite")
    plan = " ".join(str(r) for r in db.execute("EXPLAIN QUERY PLAN SELECT t_s, value FROM samples WHERE channel='t_near_c'"))
    db.close()
    assert "samples_channel_t" in plan


def test_castrig_run_with_the_fleet_store_set_exits_0_with_every_record_in_the_database(pg_schema, tmp_path: Path):
    """As the README sets it up: ``CASTRIG_STORE=postgresql://...`` and ``castrig run``. Every such
    run ended in a traceback and exit 1 (the record closed twice) while its records were fine."""
    from conftest import ROOT, castrig, only_run_dir

    url, schema = pg_schema
    done = castrig("run", str(ROOT / "tests" / "data" / "short.yaml"), "--data", str(tmp_path), "-q",
                   CASTRIG_STORE=url, CASTRIG_STORE_SCHEMA=schema)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "completed:" in done.stdout
    run_dir = only_run_dir(tmp_path)
    with SqliteRunStore(tmp_path).open_run(run_dir) as local:
        n = len(local.samples())
    assert n > 0 and pg_count(url, schema, "samples") == n
    assert pg_count(url, schema, "runs", "WHERE outcome = 'completed'") == 1
