from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from castrig.store import SqliteRunStore, data_root, open_store
from conftest import demo_run_info


def test_run_folder_layout_and_public_schema(tmp_path: Path):
    store = SqliteRunStore(tmp_path)
    with store.create_run(demo_run_info()) as rec:
        rec.add_samples(0.0, {"rh_near_pct": 45.2, "t_near_c": 22.1})
        rec.add_sample(1.0, "rh_near_pct", 45.3)
        rec.add_event(0.5, "step_start", "runner", "wait 10 s", {"step": 0})
        rec.add_journal(0.5, 0, "started", {"x": 1})
        rec.save_result(2.0, "metrics", {"opening_ratio": np.float64(0.5)})
        rec.finish("completed")
        run_dir = rec.run_dir
        # WAL while the run is written; handed over as one file when its writer closes it
        during = sqlite3.connect(run_dir / "run.sqlite")
        assert during.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        during.close()

    assert {p.name for p in run_dir.iterdir()} >= {"results", "run.json", "run.lock", "run.sqlite"}
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "completed" and info["ended_utc"]
    # Readable without castrig, as documented.
    db = sqlite3.connect(run_dir / "run.sqlite")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not (run_dir / "run.sqlite-wal").exists() and not (run_dir / "run.sqlite-shm").exists()
    rows = db.execute("select t_s, channel, value from samples order by rowid").fetchall()
    assert rows == [(0.0, "rh_near_pct", 45.2), (0.0, "t_near_c", 22.1), (1.0, "rh_near_pct", 45.3)]
    ev = db.execute("select t_s, kind, source, message, data_json from events").fetchall()
    assert ev == [(0.5, "step_start", "runner", "wait 10 s", '{"step": 0}')]
    assert json.loads((run_dir / "results" / "metrics.json").read_text()) == {"opening_ratio": 0.5}


def test_images_are_tiff_with_pixel_size(tmp_path: Path):
    tifffile = pytest.importorskip("tifffile")
    store = SqliteRunStore(tmp_path)
    img = (np.arange(64 * 64) % 251).astype(np.uint8).reshape(64, 64)
    with store.create_run(demo_run_info()) as rec:
        path = rec.save_image(3.0, "field0_reflected", img, pixel_size_um=0.25, illumination="reflected", metadata={"field": 0})
        records = rec.images()
    with tifffile.TiffFile(path) as tf:
        page = tf.pages[0]
        np.testing.assert_array_equal(page.asarray(), img)
        xres = page.tags["XResolution"].value
        unit = page.tags["ResolutionUnit"].value
        ij = tf.imagej_metadata or {}
    # ImageJ's calibration (issue 16: Fiji shows µm): px per µm, unit NONE, "unit=um" in ImageJ's header
    assert int(unit) == 1 and ij.get("unit") == "um"
    assert xres[0] / xres[1] == pytest.approx(1 / 0.25)
    assert records[0].pixel_size_um == 0.25 and records[0].name == "field0_reflected"
    assert len(records[0].sha256) == 64


def test_catalog_lists_runs_and_finds_unindexed_folders(tmp_path: Path):
    store = SqliteRunStore(tmp_path)
    with store.create_run(demo_run_info("a")) as rec:
        rec.finish("completed")
    with store.create_run(demo_run_info("a")) as rec2:  # same id: a new folder, not an overwrite
        assert [r.outcome for r in store.list_runs()] == ["completed", "running"]  # owned while open
    assert rec2.run_dir.name == "a-2"
    (tmp_path / "catalog.sqlite").unlink()
    for suffix in ("-wal", "-shm"):
        p = tmp_path / f"catalog.sqlite{suffix}"
        if p.exists():
            p.unlink()
    runs = store.list_runs()
    assert [r.run_id for r in runs] == ["a", "a-2"]
    # closed without an outcome and nobody owns it: its process is gone
    assert runs[0].outcome == "completed" and runs[1].outcome == "crashed"


def test_data_root_precedence(monkeypatch, tmp_path: Path):
    monkeypatch.delenv("CASTRIG_DATA", raising=False)
    assert data_root(None) == Path("runs")
    monkeypatch.setenv("CASTRIG_DATA", str(tmp_path / "env"))
    assert data_root(None) == tmp_path / "env"
    assert data_root(tmp_path / "flag") == tmp_path / "flag"
    assert open_store(tmp_path / "flag").root == tmp_path / "flag"


WRITER = textwrap.dedent(
    """
    import sys
    from castrig.store import RunInfo, SqliteRunStore
    store = SqliteRunStore(sys.argv[1])
    info = RunInfo(run_id="crash", recipe_name="r", recipe_path="r", profile_name="p", profile_path="p",
                   software_version="t", seed=0, operator="", started_utc="2026-01-01T00:00:00Z")
    rec = store.create_run(info)
    print(rec.run_dir, flush=True)
    i = 0
    while True:
        rec.add_samples(float(i), {"a": float(i), "b": float(-i)})
        if i % 7 == 0:
            rec.add_event(float(i), "tick", "test", f"event {i}")
        print(i, flush=True)   # only after the call returned: the record must be durable
        i += 1
    """
)


def test_sigkill_mid_write_loses_no_returned_record(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    run_dir = Path(proc.stdout.readline().strip())
    last = -1
    while last < 300:
        last = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # the writer ran on between the line read above and the kill: what it said returned since is in
    # the pipe (each line one write, whole); read before, it was 310 rows against a last of 300 under load
    for line in proc.stdout:
        last = int(line)
    db = sqlite3.connect(run_dir / "run.sqlite")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = db.execute("select t_s, channel, value from samples where channel='a' order by t_s").fetchall()
    values = [r[2] for r in rows]
    assert values[: last + 1] == [float(i) for i in range(last + 1)]  # every returned record is there
    assert len(values) <= last + 2  # and at most the one in flight beyond it
    n_b = db.execute("select count(*) from samples where channel='b'").fetchone()[0]
    assert n_b == len(values)  # a tick's samples are one transaction: never half of them
    events = db.execute("select count(*) from events").fetchone()[0]
    assert events >= last // 7 + 1
    json.loads((run_dir / "run.json").read_text())  # run.json is whole


def test_signal_during_write_waits_for_the_commit(tmp_path: Path):
    store = SqliteRunStore(tmp_path)
    got = []

    def handler(signum, frame):
        got.append(signum)
        raise KeyboardInterrupt

    from castrig.store.signals import deferred_signals, guarded

    old = signal.signal(signal.SIGINT, guarded(handler))
    try:
        with store.create_run(demo_run_info()) as rec:
            with pytest.raises(KeyboardInterrupt):
                with deferred_signals():
                    signal.raise_signal(signal.SIGINT)
                    rec.add_samples(0.0, {"x": 1.0})  # runs to the end before the handler
                    got.append("written")
            assert got == ["written", signal.SIGINT]
            assert rec.samples() == [(0.0, "x", 1.0)]
    finally:
        signal.signal(signal.SIGINT, old)
