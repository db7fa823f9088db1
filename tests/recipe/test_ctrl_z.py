"""Ctrl-Z at the terminal of a run, as an operator types it in an interactive shell with job
control. The shell stopped the run ("Stopped") and gave its prompt back: the rig was left
running with nobody at its controls (the wet MFC at its last set point, the RH loop and every
limit stopped) until someone typed `fg`. A run is not suspended; it says what stops it."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, only_run_dir, process_state, run_rows, step_running, wait_until

HOLD = """name: hold
description: humid air held six days (on the twin, a minute or more), to be acted on long before it ends
steps:
  - {type: condition, setpoint_rh_pct: 70, band_rh_pct: 2, stable_for_s: 10, timeout_s: 900}
""" + "  - {type: wait, duration_s: 86400}\n" * 6


def _samples(run_dir: Path) -> int:
    rows = run_rows(run_dir, "select count(*) from samples")  # ([] while the folder is being made)
    return rows[0][0] if rows else 0


def test_ctrl_z_in_a_job_control_shell_does_not_suspend_a_run(tmp_path: Path, terminal_run):
    recipe = tmp_path / "hold.yaml"
    recipe.write_text(HOLD)
    data = tmp_path / "runs"
    shell = terminal_run([], cwd=ROOT, argv=["bash", "--norc", "--noprofile", "-i"])
    shell.send(f"{sys.executable} -m castrig run {recipe} --data {data}\n")
    run_dir = wait_until(lambda: (d := only_run_dir(data)) is not None and step_running(1, 60)(d) and d, timeout_s=60,
                         what="the hold under way")
    pid = json.loads((run_dir / "run.json").read_text())["pid"]

    shell.send("\x1a")  # Ctrl-Z: the line discipline sends SIGTSTP to the foreground job
    shell.expect("Ctrl-Z: a process that drives the rig is not suspended")
    n = _samples(run_dir)
    wait_until(lambda: _samples(run_dir) > n + 20, timeout_s=30, what="samples recorded after the Ctrl-Z")
    assert process_state(pid) != "T"
    assert "Stopped" not in shell.output

    shell.ctrl_c()  # what stops it does
    mark = shell.expect("pausing")
    shell.ctrl_c()
    shell.send("echo exit=$?\n")
    shell.expect("exit=130", after=mark, timeout_s=60)
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "interrupted"


def test_a_run_in_the_background_paused_by_kill_int_is_not_stopped_by_its_prompt(tmp_path: Path, terminal_run,
                                                                                   wall_sim_profile: Path):
    """`castrig run R &` in a job-control shell, paused by `kill -INT %1`: its prompt read the
    terminal from the background, and the first line typed in the shell stopped the run
    ("Stopped (tty input)", SIGTTIN) with the rig uncontrolled until someone typed `fg`. It now
    keeps the rig under control and waits for the foreground, saying so; `fg` and 'a' abort."""
    recipe = tmp_path / "hold.yaml"
    recipe.write_text(HOLD)
    data = tmp_path / "runs"
    shell = terminal_run([], cwd=ROOT, argv=["bash", "--norc", "--noprofile", "-i"])
    shell.send(f"{sys.executable} -m castrig run {recipe} --profile {wall_sim_profile} --data {data} -q &\n")
    run_dir = wait_until(lambda: (d := only_run_dir(data)) is not None and _samples(d) > 2 and d, timeout_s=60,
                         what="the run under way")
    pid = json.loads((run_dir / "run.json").read_text())["pid"]
    try:
        shell.send("kill -INT %1\n")
        mark = shell.expect("Paused.")
        shell.send("echo typed-in-the-shell\n")
        shell.expect("typed-in-the-shell", after=mark)
        n = _samples(run_dir)
        wait_until(lambda: _samples(run_dir) > n + 3, timeout_s=30, what="samples recorded while the pause waits")
        assert process_state(pid) != "T" and "Stopped" not in shell.output
        # (waited for, not read at once: the terminal's reader thread may lag a loaded machine; a
        # clean-clone suite once read the output before it came)
        shell.expect("in the background: `fg` to answer here", after=mark)
        shell.send("fg\n")
        time.sleep(1)  # (the prompt sees the foreground at its next second)
        shell.send("a\n")
        shell.send("echo exit=$?\n")
        shell.expect("exit=3", after=mark, timeout_s=60)
    finally:
        if Path(f"/proc/{pid}").exists():  # (the shell's close does not end its background job)
            os.kill(pid, signal.SIGKILL)
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "aborted"


def test_a_queue_in_the_background_under_stty_tostop_runs_every_recipe(tmp_path: Path, terminal_run):
    """`stty tostop`, then `castrig queue R1 R2 &`: the first run's last lines, written after its
    own handlers were gone, stopped the queue ("Stopped (tty output)", SIGTTOU), and the second
    recipe never ran until someone typed `fg`. The rig commands write to the terminal from the
    background as they go: both runs complete and the queue ends 0."""
    data = tmp_path / "runs"
    short = ROOT / "tests" / "data" / "short.yaml"
    shell = terminal_run([], cwd=ROOT, argv=["bash", "--norc", "--noprofile", "-i"])
    shell.send("stty tostop\n")
    shell.send(f"{sys.executable} -m castrig queue {short} {short} --data {data} &\n")
    shell.send('wait %1; echo "queue""-exit=$?"\n')  # (the line as typed does not hold the text looked for)
    shell.expect("queue-exit=", timeout_s=90)
    assert "queue-exit=0" in shell.output and "Stopped" not in shell.output, shell.output[-2000:]
    outcomes = [json.loads(p.read_text())["outcome"] for p in sorted(data.glob("*/run.json"))]
    assert outcomes == ["completed", "completed"]


#: A sitecustomize: the Ctrl-Z handler of a command that drives the rig installed 1.5 s late, as
#: on a loaded machine (two of them at once on CI's two cores).
LATE_HANDLER = """
import contextlib, time
import castrig.rig.not_suspended as ns
_installed = ns.not_suspended
@contextlib.contextmanager
def _late(*args, **kwargs):
    time.sleep(1.5)
    with _installed(*args, **kwargs):
        yield
ns.not_suspended = _late
"""


@pytest.mark.parametrize("late", [False, True], ids=["", "handler-late"])
def test_ctrl_z_does_not_suspend_the_step_test_of_tune_rh(tmp_path: Path, terminal_run, wall_sim_profile: Path, late: bool):
    """`castrig tune rh` drives the rig too (wet air stepped for minutes): Ctrl-Z at its terminal
    does not stop it either; Ctrl-C ends the step test with the rig in the safe state.
    ``late``: tune said "Ctrl-C stops it" before its Ctrl-Z handler was in place, and a Ctrl-Z
    typed on reading it (in CI: a slow machine) stopped the process; now it is said after."""
    import subprocess

    from conftest import with_sitecustomize

    env = f"PYTHONPATH={with_sitecustomize(tmp_path, LATE_HANDLER)['PYTHONPATH']} " if late else ""
    shell = terminal_run([], cwd=tmp_path, argv=["bash", "--norc", "--noprofile", "-i"])
    shell.send(f"{env}{sys.executable} -m castrig tune rh --profile {wall_sim_profile} --max-phase-s 600\n")
    shell.expect("Ctrl-C stops it", timeout_s=60)  # the step test under way, and what stops it
    (pid,) = map(int, subprocess.run(["pgrep", "-f", f"tune rh --profile {wall_sim_profile}"], capture_output=True,
                                     text=True).stdout.split())
    shell.send("\x1a")
    mark = shell.expect("Ctrl-Z: a process that drives the rig is not suspended")
    time.sleep(1.0)
    assert process_state(pid) != "T" and "Stopped" not in shell.output
    shell.ctrl_c()
    shell.expect("rig left in the safe state (verified)", after=mark, timeout_s=60)
    shell.send('echo "code"=$?\n')
    shell.expect("code=1", after=mark, timeout_s=30)  # (not the typed line: its quotes split the word)
    assert "Traceback" not in shell.output


def test_ctrl_z_between_two_runs_of_a_foreground_queue_does_not_stop_it(tmp_path: Path, terminal_run):
    """`castrig queue R R` in a job-control shell, Ctrl-Z between its two runs (the first run
    recorded, its rig closed, the next not started -- a seeded moment: the queue signals itself
    SIGTSTP, as the terminal's line discipline does, as it records the first run). A run is not
    suspended, but between runs the queue was: the shell said "Stopped", the queue kept the rig's
    lock, and the night's runs waited, with nothing said, for a `fg`. Now the queue says it is not
    suspended and what stops it, and goes on: both runs complete, exit 0."""
    from conftest import signal_hook, with_sitecustomize

    data = tmp_path / "runs"
    short = ROOT / "tests" / "data" / "short.yaml"
    hook = with_sitecustomize(tmp_path, signal_hook("castrig.recipe.queue:_record", "SIGNAL_AT_RECORD"))["PYTHONPATH"]
    shell = terminal_run([], cwd=ROOT, argv=["bash", "--norc", "--noprofile", "-i"])
    shell.send(f"SIGNAL_AT_RECORD=SIGTSTP PYTHONPATH={hook} {sys.executable} -m castrig queue {short} {short} --data {data}; "
               'echo "queue""-exit=$?"\n')  # (the line as typed does not hold the text looked for)
    shell.expect("queue-exit=", timeout_s=60)
    said = " ".join(shell.output.split())
    assert "queue-exit=0" in said and "Stopped" not in said, shell.output[-2000:]
    assert "Ctrl-Z: castrig queue is not suspended, between its runs either" in said and "Ctrl-C stops the queue" in said
    outcomes = [json.loads(p.read_text())["outcome"] for p in sorted(data.glob("*/run.json"))]
    assert outcomes == ["completed", "completed"]


def test_ctrl_z_while_a_run_makes_its_folder_or_a_resume_makes_the_rig_safe_does_not_stop_it(tmp_path, terminal_run):
    """Ctrl-Z outside a run's own handlers, in a job-control shell (seeded moments: the process
    signals itself SIGTSTP, as the terminal's line discipline does): `castrig run` as it makes its
    run folder (the rig opened and owned), `castrig resume` of that run (killed -9 in its step, a
    seeded crash) as it makes the rig the crash left safe, and `castrig tune rh` as it makes the
    rig safe after its step test. Each was stopped ("Stopped"), the rig's devices owned, the rig
    in an unknown state or the wet air as the test set it, until someone typed `fg`. Now each says
    it is not suspended and goes on: the run to its kill, the resume and the tune to their end."""
    from conftest import signal_hook, with_sitecustomize

    data = tmp_path / "runs"
    recipe = tmp_path / "purge.yaml"
    recipe.write_text("name: purge\nsteps:\n  - {type: purge, duration_s: 30}\n")
    run_hooks = with_sitecustomize(tmp_path, signal_hook("castrig.store.sqlite_store:SqliteRunStore.create_run", "AT_CREATE",
                                                         once="_AT_CREATE")
                                   + signal_hook("castrig.recipe.runner:Runner._step_purge", "AT_STEP", once="_AT_STEP"))
    resume_hook = with_sitecustomize(tmp_path, signal_hook("castrig.control.safety:make_safe", "AT_SAFE"))
    castrig = f"{sys.executable} -m castrig"
    shell = terminal_run([], cwd=ROOT, argv=["bash", "--norc", "--noprofile", "-i"])
    shell.send(f"AT_CREATE=SIGTSTP AT_STEP=SIGKILL PYTHONPATH={run_hooks['PYTHONPATH']} {castrig} run {recipe} --data {data} -q; "
               f'echo "run""-exit=$?"; AT_SAFE=SIGTSTP PYTHONPATH={resume_hook["PYTHONPATH"]} {castrig} resume '
               f'"$(ls -d {data}/*-purge)" -q; echo "resume""-exit=$?"; AT_SAFE=SIGTSTP PYTHONPATH={resume_hook["PYTHONPATH"]} '
               f'{castrig} tune rh --plot {tmp_path / "t.svg"}; echo "tune""-exit=$?"\n')  # (the typed line holds no text looked for)
    shell.expect("tune-exit=", timeout_s=30)
    said = " ".join(shell.output.split())
    assert "run-exit=137" in said and "resume-exit=0" in said and "tune-exit=0" in said, shell.output[-3000:]
    assert "Stopped" not in said and said.count("Ctrl-Z: castrig") == 3 and "is not suspended" in said, said
    (run_json,) = data.glob("*/run.json")
    assert json.loads(run_json.read_text())["outcome"] == "completed"
