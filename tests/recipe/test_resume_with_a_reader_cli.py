"""``castrig resume`` of a closed run whose run.sqlite another process holds open.

A run that ended (interrupted, aborted, faulted) is left in SQLite's rollback-journal mode
(sqlite_store.hand_over), where a reader's open transaction -- a database browser with the file
open, the sqlite3 shell after BEGIN, a stopped reader -- refuses every write. Before, the resume
then sat in SQLite's busy waits (10 s each, up to 50 of them, its Ctrl-C held) before it recorded
anything. It is refused now, exit 4 naming the holder, before the rig is touched; once the reader
lets go, the resume goes on.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from conftest import HOLD_OPEN, ROOT, castrig, run_rows, start_castrig, wait_until

LONG_WAIT = ROOT / "tests" / "data" / "long_wait.yaml"


def test_a_resume_while_a_reader_holds_the_closed_runs_records_is_busy_not_a_wait(tmp_path, reap, wall_sim_profile):
    data = tmp_path / "runs"
    run = reap(start_castrig("run", str(LONG_WAIT), "--profile", str(wall_sim_profile), "--data", str(data), "-q"))
    run_dir = wait_until(lambda: (ds := [d for d in data.glob("*") if d.is_dir() and (d / "run.sqlite").exists()])
                         and (run_rows(ds[0], "select count(*) from samples") or [(0,)])[0][0] > 3 and ds[0], timeout_s=60,
                         what="the run under way")
    run.send_signal(signal.SIGINT)  # nobody to answer the pause: the run ends interrupted, its records closed
    assert run.wait(timeout=60) == 130
    reader = reap(subprocess.Popen([sys.executable, "-c", HOLD_OPEN, str(run_dir / "run.sqlite")], stdout=subprocess.PIPE,
                                   text=True))
    assert int(reader.stdout.readline()) > 3
    events = run_rows(run_dir, "select count(*) from events")[0][0]

    done = castrig("resume", str(run_dir), "-q", timeout_s=60)  # (a wait of SQLite's: over 60 s before)
    assert done.returncode == 4, (done.returncode, done.stdout, done.stderr)
    said = " ".join(done.stderr.split())
    assert "held open by another process" in said and f"pid {reader.pid}" in said, said
    assert run_rows(run_dir, "select count(*) from events")[0][0] == events  # nothing recorded
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "interrupted"

    reader.kill()
    reader.wait(timeout=10)
    again = reap(start_castrig("resume", str(run_dir), "-q"))
    wait_until(lambda: run_rows(run_dir, "select count(*) from events where kind = 'resume'")[0][0] == 1, timeout_s=60,
               what="the resume under way")
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=60) == 3
