"""``castrig store sync`` of a closed run whose run.sqlite another process holds open (a database
browser, the sqlite3 shell after BEGIN, a stopped reader). A closed run is in rollback-journal
mode, and the sync's switch back to WAL waited on that reader -- 50 tries of SQLite's 10 s busy
wait, about eight minutes -- saying nothing. It is refused now, exit 4 naming the holder; once the
reader lets go, the sync goes through."""

from __future__ import annotations

import subprocess
import sys

from conftest import HOLD_OPEN, ROOT, castrig, castrig_main



def test_a_sync_while_a_reader_holds_the_closed_runs_records_is_busy_not_a_wait(tmp_path, reap, pg_schema, capsys, monkeypatch):
    url, schema = pg_schema
    data = tmp_path / "runs"
    assert castrig("run", str(ROOT / "tests" / "data" / "short.yaml"), "--data", str(data), "-q").returncode == 0
    (run_dir,) = [d for d in data.iterdir() if d.is_dir()]
    reader = reap(subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(run_dir / "run.sqlite")], stdout=subprocess.PIPE,
                                   text=True))
    assert int(reader.stdout.readline()) > 0

    monkeypatch.setenv("CASTRIG_STORE_SCHEMA", schema)  # (the syncs through castrig_main: the reader is a process of its own)
    done = castrig_main(capsys, "store", "sync", str(run_dir), "--url", url)
    assert done.returncode == 4, (done.returncode, done.stdout, done.stderr)
    said = " ".join(done.stderr.split())
    assert "held open by another process" in said and f"pid {reader.pid}" in said and "sync again" in said, said

    reader.kill()
    reader.wait(timeout=10)
    again = castrig_main(capsys, "store", "sync", str(run_dir), "--url", url)
    assert again.returncode == 0, again.stderr
