"""Commands that only read the data root's catalog (``castrig runs``, ``lots``, ``status``) leave
the data root as they found it: no catalog.sqlite-wal or -shm, and none taken from a live writer."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys

from conftest import ROOT, add_graded_run, castrig, castrig_env, membrane_metrics


def _root_files(data) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in data.iterdir() if p.is_file()}


def test_listing_the_runs_leaves_no_files_in_the_data_root(tmp_path):
    """``castrig runs`` (then ``lots``, ``status``) on a data root whose last run had ended: each
    left catalog.sqlite-wal (0 bytes) and catalog.sqlite-shm (32 kB) in it for good -- files the
    runs had removed -- a reader changing the data root. Now the data root is left byte for byte."""
    data = tmp_path / "runs"
    add_graded_run(data, "film", membrane_metrics(0.5))
    before = _root_files(data)
    assert sorted(before) == ["catalog.sqlite"], before
    for command in ("runs", "lots", "status"):
        done = castrig(command, "--data", str(data))
        assert done.returncode == 0, (command, done.stderr)
        assert _root_files(data) == before, (command, sorted(_root_files(data)))


#: A process that writes the catalog as a run does (the store's own connection), holding it open
#: between rows so its WAL stays there: one row, "wrote" on stdout, then a row per line on stdin.
WRITER = """
import sys
from pathlib import Path
from castrig.store.sqlite_store import SqliteRunStore
conn = SqliteRunStore(Path(sys.argv[1]))._catalog()
conn.execute("PRAGMA wal_autocheckpoint=0")
def row(i):
    conn.execute("INSERT INTO runs(run_id, run_dir, outcome) VALUES(?, ?, 'completed')", (f"w{i}", f"/gone/w{i}"))
row(0)
print("wrote", flush=True)
for i, _ in enumerate(sys.stdin, start=1):
    row(i)
    print("wrote", flush=True)
conn.close()
"""


def test_a_reader_beside_a_live_writer_leaves_its_wal_alone(tmp_path):
    """A writer holds the catalog open (its last row only in the WAL) while ``castrig runs`` reads
    it: the reader sees that row, leaves the writer's -wal and -shm in place as it ends, and the
    writer's later rows land in an intact catalog; once the writer has closed, no sidecar is left."""
    data = tmp_path / "runs"
    add_graded_run(data, "film", membrane_metrics(0.5))
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(data)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=castrig_env(PYTHONPATH=str(ROOT / "src")))
    try:
        assert writer.stdout.readline() == "wrote\n"
        assert (data / "catalog.sqlite-wal").stat().st_size > 0  # the row is in the WAL only
        listed = castrig("runs", "--data", str(data), "--json")
        assert listed.returncode == 0, listed.stderr
        assert '"w0"' in listed.stdout, listed.stdout[-2000:]
        assert (data / "catalog.sqlite-wal").stat().st_size > 0 and (data / "catalog.sqlite-shm").is_file()
        writer.stdin.write("next\n")
        writer.stdin.flush()
        assert writer.stdout.readline() == "wrote\n"
        writer.stdin.close()
        assert writer.wait(timeout=30) == 0
    finally:
        if writer.poll() is None:
            writer.kill()
            writer.wait(timeout=10)
        writer.stdout.close()
    assert sorted(p.name for p in data.iterdir() if p.is_file()) == ["catalog.sqlite"]
    db = sqlite3.connect(data / "catalog.sqlite")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert sorted(r[0] for r in db.execute("SELECT run_id FROM runs WHERE run_id LIKE 'w%'")) == ["w0", "w1"]
    finally:
        db.close()
