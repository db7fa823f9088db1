"""A terminal that stops reading does not stop the rig.

Found from the outside: `castrig run` on a terminal stopped with Ctrl-S (XOFF; a stalled ssh
session or a frozen terminal emulator does the same) blocked in its next write of the live panel.
For as long as the terminal stayed stopped the RH loop, the samples and the interlocks stood
still, `castrig abort` got no answer (exit 5 after 30 s) and SIGTERM did nothing; wet air stayed
on through an evaporation. A run's console output is now written by a thread of its own
(castrig.cli.streams), so the thread that drives the rig never waits on the terminal.
"""

from __future__ import annotations

import json
import time

from conftest import ROOT, castrig, run_rows, wait_until


def test_a_terminal_stopped_with_ctrl_s_does_not_stop_the_rig_or_an_abort(tmp_path, terminal_run, wall_sim_profile):
    data = tmp_path / "runs"
    run = terminal_run(["run", str(ROOT / "tests" / "data" / "short.yaml"), "--profile", str(wall_sim_profile),
                        "--data", str(data)], cwd=ROOT)
    run_dir = wait_until(lambda: next((p.parent for p in data.glob("*/run.json")), None), timeout_s=60, what="the run folder")
    # (run.json is written before run.sqlite: no rows until the database is there)
    wait_until(lambda: (run_rows(run_dir, "SELECT count(*) FROM samples") or [(0,)])[0][0] > 10, timeout_s=60, what="samples")
    run.send("\x13")  # Ctrl-S: the terminal takes no more output
    time.sleep(3.0)  # the panel's redraws (10 a second) fill the terminal's buffer meanwhile
    (before,) = run_rows(run_dir, "SELECT max(t_s) FROM samples")[0]
    time.sleep(3.0)
    (after,) = run_rows(run_dir, "SELECT max(t_s) FROM samples")[0]
    # the rig ticks on (samples every second, at a fixed rate: two of them 2 s apart within an
    # exchange's time, 1.9994 s seen; 2.0 + the ticks' drift before the fixed-rate schedule)
    assert after >= before + 1.9, (before, after)
    t0 = time.monotonic()
    done = castrig("abort", str(run_dir), timeout_s=60)
    assert done.returncode == 0 and "accepted" in done.stdout, (done.returncode, done.stdout, done.stderr)
    assert time.monotonic() - t0 < 15
    wait_until(lambda: json.loads((run_dir / "run.json").read_text())["outcome"] == "aborted", timeout_s=30,
               what="the abort recorded while the terminal is still stopped")
    run.send("\x11")  # Ctrl-Q: the terminal reads again
    assert run.wait(timeout_s=60) == 3
    assert "safe state verified" in run.output
