"""A full disk: the run stops in the safe state with the error reported, no traceback, and what
was written before stays readable — in-process below the store, and for real in a child process
whose file-size limit makes SQLite itself answer SQLITE_FULL."""

from __future__ import annotations

import json
import resource
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from castrig.reliability.faults import FullDiskConnection
from castrig.store import RunInfo, SqliteRunStore, StoreError
from castrig.store.signals import deferred_signals

ROOT = Path(__file__).resolve().parents[2]


def _recorder(tmp_path):
    store = SqliteRunStore(tmp_path, synchronous="NORMAL")
    rec = store.create_run(RunInfo("t", "t", "-", "sim", "-", "test", 1, "", "now"))
    disk = FullDiskConnection(rec._db)
    rec._db = disk
    return rec, disk


def test_a_failed_commit_is_rolled_back_and_typed(tmp_path):
    rec, disk = _recorder(tmp_path)
    rec.add_samples(1.0, {"a": 1.0})
    disk.full = True
    with pytest.raises(StoreError, match="disk is full"):
        rec.add_samples(2.0, {"a": 2.0})
    disk.full = False  # room again: the connection is usable, no transaction left open
    rec.add_samples(3.0, {"a": 3.0})
    assert [t for t, _, _ in rec.samples()] == [1.0, 3.0]


def test_a_failed_begin_does_not_leave_signals_deferred(tmp_path):
    rec, disk = _recorder(tmp_path)

    class Locked(FullDiskConnection):
        def execute(self, sql, *args):
            if sql.startswith("BEGIN"):
                raise sqlite3.OperationalError("database is locked")
            return super().execute(sql, *args)

    rec._db = Locked(disk._conn)
    with pytest.raises(StoreError):
        rec.add_event(1.0, "x", "y", "z")
    # the SIGINT handler is the one installed before: nothing is stuck deferring it
    with deferred_signals():
        pass
    assert signal.getsignal(signal.SIGINT) is not None


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_500_000, 1_500_000))


def test_castrig_run_on_a_full_disk_exits_3_safe_and_readable(tmp_path):
    data = tmp_path / "runs"
    done = subprocess.run([sys.executable, "-m", "castrig", "run", "recipes/overnight.yaml", "--data", str(data), "-q"],
                          cwd=ROOT, capture_output=True, text=True, preexec_fn=_limit_file_size, timeout=120)
    assert done.returncode == 3, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
    assert "cannot write the run record" in done.stderr + done.stdout  # SQLite says "disk I/O error" for EFBIG
    (run_dir,) = [p for p in data.iterdir() if p.is_dir()]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "faulted" and "cannot write the run record" in info["outcome_reason"]
    db = sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)
    assert db.execute("select count(*) from samples").fetchone()[0] > 100  # what was written is there
