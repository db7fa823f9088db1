"""Values a run folder may hold that PostgreSQL refuses: one of them failed every push of the
whole run, for good, and was reported as "unreachable" (tests/store, through `castrig store sync`)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import psycopg
import pytest

from conftest import castrig_main, pg_count


def test_a_nan_a_nul_and_broken_json_reach_the_fleet_as_what_it_takes(pg_schema, finished_demo_run, tmp_path: Path, capsys,
                                                                      monkeypatch):
    """... and a value over the readers' 4 MiB is refused for its run alone: `store sync` read the
    folder through a writable connection, not the bounded reader, and copied a 100 MB event
    message into PostgreSQL (365 MB of the sync's memory)."""
    url, schema = pg_schema
    root, run_id = finished_demo_run
    oversized = tmp_path / "oversized" / run_id
    shutil.copytree(root / run_id, oversized)
    with sqlite3.connect(oversized / "run.sqlite") as db:
        db.execute("insert into events(t_s, kind, source, message, data_json) values (4999, 'note', 'op', ?, '{}')",
                   ("x" * ((4 << 20) + 1),))
    db.close()
    monkeypatch.setenv("CASTRIG_STORE_SCHEMA", schema)  # (the syncs through castrig_main)
    refused_sync = castrig_main(capsys, "store", "sync", str(oversized), "--url", url)
    said = " ".join(refused_sync.stderr.split())
    assert refused_sync.returncode == 2, (refused_sync.returncode, refused_sync.stdout, said)
    assert f"{oversized}: damaged run folder" in said and "table events" in said and "4 MiB" in said, said
    assert "Traceback" not in said and pg_count(url, schema, "events") == 0 == pg_count(url, schema, "runs")

    # the other runs still sync -- this one from a folder named in Latin-1 (a NAS share): its path's
    # undecodable byte raised out of the push of its row (and out of `castrig run`'s end), for good
    run_dir = tmp_path / os.fsdecode(b"lab-\xb5") / run_id
    shutil.copytree(root / run_id, run_dir)
    db = sqlite3.connect(run_dir / "run.sqlite")
    db.execute("insert into events(t_s, kind, source, message, data_json) values (5000, 'note', 'op', 'a NaN', ?)",
               (json.dumps({"rh": float("nan"), "t": float("inf")}),))
    db.execute("insert into events(t_s, kind, source, message, data_json) values (5001, 'note', 'op', ?, '{}')", ("a\x00nul",))
    db.execute("insert into events(t_s, kind, source, message, data_json) values (5002, 'note', 'op', 'cut', '{\"rh\": 7')")
    db.commit()
    db.close()
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**info, "operator": "evil\x00op"}))

    synced = castrig_main(capsys, "store", "sync", str(run_dir), "--url", url)
    assert synced.returncode == 0 and "unreachable" not in synced.stdout + synced.stderr, synced.stdout + synced.stderr
    with sqlite3.connect(run_dir / "run.sqlite") as local:
        events = local.execute("select count(*) from events").fetchone()[0]
    assert pg_count(url, schema, "events") == events
    with psycopg.connect(url) as conn:
        rows = dict(conn.execute(f"select message, data_json from {schema}.events where t_s >= 5000").fetchall())  # type: ignore[arg-type]
        operator, folder = conn.execute(f"select operator, run_dir from {schema}.runs").fetchone()  # type: ignore[arg-type,misc]
    assert rows["a NaN"] == {"rh": None, "t": None}
    assert rows["a\ufffdnul"] == {} and rows["cut"] == {"unreadable_json": '{"rh": 7'}
    assert operator == "evil\ufffdop" and folder == f"{tmp_path}/lab-\ufffd/{run_id}"
    again = castrig_main(capsys, "store", "sync", str(run_dir), "--url", url)
    assert again.returncode == 0 and pg_count(url, schema, "events") == events  # nothing twice


def test_a_run_id_that_castrig_never_writes_is_refused_for_its_run(pg_schema, finished_demo_run, tmp_path: Path, capsys,
                                                                    monkeypatch):
    """A fleet-wide id of 5 MB in run.sqlite's meta (whoever may write the data root) was read whole
    through the writer's connection, refused by PostgreSQL's index and said as "fleet database
    unreachable" (exit 3); one of 1 MB the same. Each is now that run's refusal, exit 2, named."""
    url, schema = pg_schema
    monkeypatch.setenv("CASTRIG_STORE_SCHEMA", schema)
    root, run_id = finished_demo_run
    for uid, said in (("u" * (5 << 20), "table meta holds a value larger than the 4 MiB"),
                      ("u" * (1 << 20), "run_uid 'uuuu")):
        run_dir = tmp_path / str(len(uid)) / run_id
        shutil.copytree(root / run_id, run_dir)
        with sqlite3.connect(run_dir / "run.sqlite") as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES('run_uid', ?)", (uid,))
        db.close()
        done = castrig_main(capsys, "store", "sync", str(run_dir), "--url", url)
        text = " ".join(done.stderr.split())
        assert done.returncode == 2 and f"{run_dir}: damaged run folder" in text and said in text, (done.returncode, text[:500])
        assert "unreachable" not in text and len(text) < 1000


def test_a_linked_sidecar_is_that_runs_refusal_not_a_traceback(pg_schema, finished_demo_run, tmp_path: Path, capsys,
                                                                 monkeypatch):
    """A ``run.sqlite-wal`` that is a symbolic link (SQLite makes none): the sync's writer could
    not open the database and `castrig store sync` ended in a StoreError traceback, exit 1."""
    url, schema = pg_schema
    monkeypatch.setenv("CASTRIG_STORE_SCHEMA", schema)
    root, run_id = finished_demo_run
    run_dir = tmp_path / run_id
    shutil.copytree(root / run_id, run_dir)
    (tmp_path / "elsewhere").write_text("precious\n")
    (run_dir / "run.sqlite-wal").symlink_to(tmp_path / "elsewhere")
    done = castrig_main(capsys, "store", "sync", str(run_dir), "--url", url)
    text = " ".join(done.stderr.split())
    assert done.returncode == 2 and f"{run_dir}: damaged run folder" in text and "run.sqlite-wal is a symbolic link" in text, \
        (done.returncode, text[-800:])
    assert (tmp_path / "elsewhere").read_text() == "precious\n"


@pytest.mark.slow
def test_a_long_run_is_synced_in_bounded_memory(pg_schema, finished_demo_run, tmp_path: Path):
    """`castrig store sync` of a night's 550 000 samples held them all at once (246 MB); a rig
    catching up after an outage did the same inside its own process."""
    import os
    import subprocess
    import sys

    url, schema = pg_schema
    root, run_id = finished_demo_run
    run_dir = tmp_path / run_id
    shutil.copytree(root / run_id, run_dir)
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        db.executemany("insert into samples(t_s, channel, value) values (?, 'rh_near_pct', 50.0)",
                       ((10_000.0 + i, ) for i in range(400_000)))
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    env = {**os.environ, "CASTRIG_STORE_SCHEMA": schema}
    out = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "castrig", "store", "sync", str(run_dir), "--url", url],
                         capture_output=True, text=True, env=env, timeout=600)
    rc, peak_kb = map(int, out.stdout.split()[-2:])
    assert rc == 0, out.stderr
    assert pg_count(url, schema, "samples") > 400_000
    assert peak_kb < 120_000, peak_kb  # 70 MB; 194 MB when every row was held at once
