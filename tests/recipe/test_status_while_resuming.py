"""What `castrig status` says while `castrig resume` is opening the rig, from the outside in.

Found by an adversarial probe: a run killed (kill -9) in its sixth step, resumed, and the resume
stopped while it opened the rig: `castrig status` said "running · step 1/26 start dry · left
0:20:00". The status file was the dead process's (it writes one a wall second: on the twin,
often from its first step) and read as the resume's until the resume published its own. The
resume drops it; readers take the journal's step until the resume writes its own.

And once the resume's part had recorded its end, the resume still held the folder through the
fleet store's copy, the log's close and the rig's (seconds on hardware): `castrig status` and
`castrig runs` said "running · being resumed" of the run that had completed, until it let go.
"""

from __future__ import annotations

import json
import signal

from conftest import ROOT, STOP_AT_CLOSE, castrig_main, recipe_variant, run_rows, run_status, run_then_kill_9, signal_self, start_castrig, stopped, wait_until, with_sitecustomize

#: The process stops itself (SIGSTOP) as it first imports the twin (castrig.sim.twin), before its code runs.
STOP_AT_TWIN_IMPORT = signal_self("castrig.sim.twin", "SIGSTOP")


def _last_started(run_dir) -> int:
    rows = run_rows(run_dir, "SELECT step_index FROM journal WHERE state = 'started' ORDER BY seq DESC LIMIT 1")
    return rows[0][0] if rows else -1


def test_status_while_a_resume_opens_the_rig_is_the_journals_step(tmp_path, capsys):
    data = tmp_path / "runs"
    # killed where the dead process's status file says another step than its journal
    # (the mini overnight: the same kinds of steps in the same order, two casts instead of four --
    # the resume runs what is left of it to the end, ~5 s of CPU less than the whole night's; and
    # without its two captures, whose twin renders (~0.6 s of CPU each) no status here looks at)
    mini = recipe_variant(ROOT / "tests" / "data" / "reliability" / "overnight_mini.yaml", tmp_path / "recipes",
                          ("  - {type: capture, views: [reflected], fields: 1}\n", ""))
    run_dir = run_then_kill_9(mini, data,
                              lambda d: _last_started(d) >= 5 and run_status(d).get("step_index") != _last_started(d))
    step = _last_started(run_dir)
    resume = start_castrig("resume", str(run_dir), "-q", **with_sitecustomize(tmp_path, STOP_AT_TWIN_IMPORT + STOP_AT_CLOSE))
    try:
        wait_until(lambda: stopped(resume.pid), timeout_s=60, what="the resume stopped while opening the rig")
        said = castrig_main(capsys, "status", str(run_dir), "--json")
        assert said.returncode == 0, said.stderr
        status = json.loads(said.stdout)
        assert status["status"] == "running"
        assert status["step"]["step_index"] == step, (status["step"], step)
        # and that it is being resumed, not simply running (its own part has not begun: no time left yet)
        assert (status["state"], status["step_left_s"], status["owner"]["pid"]) == ("resuming", None, resume.pid), status
        assert status["detail"].startswith(f"being resumed: castrig resume (pid {resume.pid} "), status["detail"]
        listed = castrig_main(capsys, "runs", "--data", str(data))  # (castrig runs: the same helper)
        assert f"{run_dir.name} " in listed.stdout and " being resumed " in listed.stdout, listed.stdout

        # its part ended (run.json: completed), the resume stopped as it closes the rig, still
        # holding the folder: the run is completed to every reader, not "being resumed"
        resume.send_signal(signal.SIGCONT)
        wait_until(lambda: stopped(resume.pid) and json.loads((run_dir / "run.json").read_text())["parts"][-1]["outcome"]
                   != "running", timeout_s=60, what="the resume stopped closing the rig after its part ended")
        status = json.loads(castrig_main(capsys, "status", str(run_dir), "--json").stdout)
        assert (status["status"], status["state"], status["owner"]) == ("completed", None, None), status
        said = castrig_main(capsys, "status", str(run_dir)).stdout
        listed = castrig_main(capsys, "runs", "--data", str(data)).stdout
        assert said.startswith(f"{run_dir.name}: completed") and "being resumed" not in said + listed, said + listed
        assert " completed " in listed, listed
    finally:
        resume.send_signal(signal.SIGCONT)
        out, err = resume.communicate(timeout=120)
    assert resume.returncode == 0, err[-2000:]
