"""``castrig status|watch|pause|resume-paused|abort`` from a second process against a running run.

The run is tests/data/day_wait.yaml on the twin (a 24-hour hold in virtual time): the commands
go through the run folder's control channel, never a signal.
"""

from __future__ import annotations

import getpass
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from castrig.cli.main import main
from conftest import (signal_self, ROOT, STOP_AT_ANSWER, campaign, castrig, castrig_main, only_run_dir, run_rows, run_status, start_castrig,
                      stopped, wait_until, with_sitecustomize)

LONG_WAIT = ROOT / "tests" / "data" / "day_wait.yaml"  # ends on its own only after ~40 s of wall time



def read_until(proc: subprocess.Popen[str], text: str, *, timeout_s: float) -> str:
    """What ``proc`` printed until ``text`` (read from the pipe itself, past the text stream's
    buffer, which a later ``proc.stdout.read()`` then goes on from), bounded by ``timeout_s``."""
    import select
    import time

    fd, out, deadline = proc.stdout.fileno(), b"", time.monotonic() + timeout_s  # type: ignore[union-attr]
    while text.encode() not in out:
        ready, _, _ = select.select([fd], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(fd, 65536) if ready else b""
        if not chunk:
            raise AssertionError(f"{text!r} not printed within {timeout_s} s (exit {proc.poll()}): {out[-2000:]!r}")
        out += chunk
    return out.decode()


def _run_in_its_hold(data: Path, reap, **env: str) -> tuple[subprocess.Popen[str], Path]:
    """``castrig run`` of the 24-hour hold under ``data`` (``env``: its environment's additions),
    once it is in the hold: (its process, its run folder)."""
    run = reap(start_castrig("run", str(LONG_WAIT), "--data", str(data), "-q", **env))
    run_dir = wait_until(lambda: (d := only_run_dir(data)) is not None and run_status(d).get("step_index") == 1 and d,
                         timeout_s=60, what="the run in its 24-hour hold")
    return run, run_dir


def _run_on_the_wall_clock(data: Path, profile: Path, reap, **env: str) -> tuple[subprocess.Popen[str], Path]:
    """``castrig run`` of the same recipe on the twin's wall clock (conftest ``wall_sim_profile``),
    once it runs (its first step: the run's place in its recipe is not the point): (its process,
    its run folder). For what only needs a live run to act on: on virtual time the runner spins
    through its day at a whole core's CPU all the while the test acts; on the wall clock it idles
    between its 1 s ticks, as a rig's run does."""
    run = reap(start_castrig("run", str(LONG_WAIT), "--profile", str(profile), "--data", str(data), "-q", **env))
    run_dir = wait_until(lambda: (d := only_run_dir(data)) is not None and run_status(d).get("state") == "running" and d,
                         timeout_s=60, what="a running run")
    return run, run_dir


def test_status_watch_pause_resume_abort_from_a_second_process(tmp_path: Path, reap, capsys):
    """The run and `castrig watch` in processes of their own; status, pause, resume-paused and
    abort through the CLI's entry point in the test's process (conftest ``castrig_main``) — a
    second process to the run all the same, without a subprocess's start-up for each."""
    data = tmp_path / "data"
    run, run_dir = _run_in_its_hold(data, reap)
    # status: one run, and every running run under the data root
    one = castrig_main(capsys, "status", str(run_dir))
    assert one.returncode == 0, one.stderr
    assert "running" in one.stdout and "step 2/2" in one.stdout and "left: step" in one.stdout
    assert "RH " in one.stdout and "setpoint 50.0" in one.stdout and "no warning" in one.stdout
    every = castrig_main(capsys, "status", "--data", str(data), "--json")
    rows = [json.loads(line) for line in every.stdout.splitlines()]
    assert [r["uid"] for r in rows] == [run_dir.name] and rows[0]["step"]["step_index"] == 1

    watcher = reap(start_castrig("watch", str(run_dir), "--every", "0.3"))

    # pause: the run stops at a safe point and waits (virtual time stands still)
    paused = castrig_main(capsys, "pause", str(run_dir))
    assert paused.returncode == 0 and "accepted" in paused.stdout, paused.stdout + paused.stderr
    wait_until(lambda: run_status(run_dir).get("state") == "paused", timeout_s=20, what="paused")
    t_paused = run_status(run_dir)["t_s"]
    again = castrig_main(capsys, "pause", str(run_dir))
    assert again.returncode == 2 and "refused" in again.stderr and not again.stdout  # (refusals on stderr, as every other)
    assert "paused by cli:" in castrig_main(capsys, "status", str(run_dir)).stdout
    assert abs(run_status(run_dir)["t_s"] - t_paused) < 1.0 and run.poll() is None
    seen = read_until(watcher, "paused by", timeout_s=20)  # the watcher shows the pause before it ends

    resumed = castrig_main(capsys, "resume-paused", str(run_dir))
    assert resumed.returncode == 0 and "accepted" in resumed.stdout
    wait_until(lambda: run_status(run_dir).get("state") == "running" and run_status(run_dir)["t_s"] > t_paused + 5,
               timeout_s=20, what="running again")
    assert castrig_main(capsys, "resume-paused", str(run_dir)).returncode == 2  # not paused: refused

    # abort: ends exactly like SIGTERM, the event names who asked
    aborted = castrig_main(capsys, "abort", str(run_dir))
    assert aborted.returncode == 0, aborted.stdout + aborted.stderr
    assert "aborted:" in aborted.stdout and "safe state verified" in aborted.stdout
    assert run.wait(timeout=30) == 3
    # one shape for every run in `status --json`: the ended run's has the running run's keys
    # (those only a live run fills, null): a script's d["state"] was a KeyError once it ended
    ended = json.loads(castrig_main(capsys, "status", str(run_dir), "--json").stdout)
    assert set(ended) == set(rows[0]) and ended["state"] is None, set(rows[0]) ^ set(ended)
    damaged = tmp_path / "damaged" / run_dir.name
    shutil.copytree(run_dir, damaged)
    (damaged / "run.json").write_text("{")  # cut short by a full disk
    shown = json.loads(castrig_main(capsys, "status", str(damaged), "--json").stdout)
    assert shown["status"] == "damaged" and set(rows[0]) <= set(shown), set(rows[0]) - set(shown)
    info = json.loads((run_dir / "run.json").read_text())
    who = f"cli:{getpass.getuser()}"
    assert info["outcome"] == "aborted" and who in info["outcome_reason"]
    events = run_rows(run_dir, "SELECT kind, source, message FROM events ORDER BY id")
    kinds = [k for k, _, _ in events]
    assert ("command", who, f"abort requested by {who}") in events
    assert kinds.index("pause") < kinds.index("resume") < kinds.index("run_end") < kinds.index("safe_state")
    assert any(k == "safe_state" and m.startswith("safe state verified") for k, _, m in events)

    # watch followed it to the end and exits with the run's code
    assert watcher.wait(timeout=30) == 3
    out = seen + watcher.stdout.read()
    assert "step 2/2" in out and "paused by" in out and out.rstrip().splitlines()[-1].startswith("aborted:")

    # nothing to act on any more
    late = castrig_main(capsys, "abort", str(run_dir))
    assert late.returncode == 2 and "not running" in late.stderr
    assert "no run is running" in castrig_main(capsys, "status", "--data", str(data)).stdout


def test_acting_on_a_folder_that_is_not_a_run(tmp_path: Path, capsys):
    r = castrig_main(capsys, "abort", str(tmp_path))
    assert r.returncode == 2 and "not a run folder" in r.stderr


def test_another_user_cannot_abort_from_the_command_line(reap, capsys, wall_sim_profile):
    """A user who does not own the run folder is refused (exit 2, saying to use the web API with
    the token) and sends nothing; the run goes on; its owner may abort it."""
    if os.getuid() != 0:
        pytest.skip("needs root to run the refused command as another user")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no 'nobody' user to act as someone else")
    base = Path(tempfile.mkdtemp(prefix="castrig-other-user-"))
    base.chmod(0o755)  # the other user may look, not write
    try:
        data = base / "data"
        run, run_dir = _run_on_the_wall_clock(data, wall_sim_profile, reap)
        os.kill(run.pid, signal.SIGSTOP)  # hold still while the other user tries
        before = sorted(p.name for p in (run_dir / "control").iterdir())

        # The venv's Python lives under /root, which another user cannot execute: the refused
        # command is the real CLI entry point, called in a forked child whose real uid is 'nobody'.
        err_path = base / "stderr.txt"
        pid = os.fork()
        if pid == 0:  # child
            code = 99
            try:
                fd = os.open(err_path, os.O_WRONLY | os.O_CREAT, 0o666)
                os.dup2(fd, 2)
                # the real uid becomes 'nobody' (what the CLI checks); the effective uid stays, so
                # this Python, whose files live under /root, can still read itself
                os.setresuid(nobody.pw_uid, 0, 0)
                sys.stderr = open(2, "w", closefd=False)
                code = main(["abort", str(run_dir)])
            except BaseException:  # noqa: BLE001 - shown in the assertion below
                import traceback

                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        refused = subprocess.CompletedProcess(["castrig", "abort"], os.waitstatus_to_exitcode(status), "",
                                              err_path.read_text())

        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "only the user who owns the run folder" in refused.stderr and "Traceback" not in refused.stderr
        assert sorted(p.name for p in (run_dir / "control").iterdir()) == before
        os.kill(run.pid, signal.SIGCONT)
        assert castrig_main(capsys, "abort", str(run_dir)).returncode == 0  # the owner may
        assert run.wait(timeout=60) == 3
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_a_run_that_ends_while_an_abort_is_on_its_way_is_said_so(tmp_path: Path, reap, wall_sim_profile):
    """The command is in the channel, the runner never reads it (here: SIGSTOP, then kill -9):
    `castrig abort` says the run ended before it read the abort (exit 2), not that it hangs."""
    data = tmp_path / "data"
    run, run_dir = _run_on_the_wall_clock(data, wall_sim_profile, reap)
    os.kill(run.pid, signal.SIGSTOP)
    abort = reap(start_castrig("abort", str(run_dir)))
    wait_until(lambda: [p for p in (run_dir / "control").glob("*.json") if p.name != "status.json"],
               timeout_s=20, what="the abort in the control channel")
    run.kill()
    out, err = abort.communicate(timeout=60)
    assert abort.returncode == 2, out + err
    assert "the run ended (crashed) before it read the abort" in err and "Traceback" not in err


def test_a_stopped_runner_is_said_stopped_at_once_not_just_running(tmp_path: Path, reap, capsys, wall_sim_profile):
    """A runner frozen by SIGSTOP (a terminal's Ctrl-Z, a debugger) still holds its run, so it was
    shown plain 'running' for SILENT_S (60 s) and then only as "no word from the runner" (stop 42's
    left-over). `castrig status` reads the owner's process state: STOPPED at once, with the way to
    let it go on; `--json` says ``owner_stopped``; SIGCONT and the line is plain again."""
    data = tmp_path / "data"
    run, run_dir = _run_on_the_wall_clock(data, wall_sim_profile, reap)
    assert "STOPPED" not in castrig_main(capsys, "status", str(run_dir)).stdout
    run.send_signal(signal.SIGSTOP)
    try:
        wait_until(lambda: stopped(run.pid), timeout_s=10, what="the runner stopped")
        line = " ".join(castrig_main(capsys, "status", str(run_dir)).stdout.split())
        assert "running" in line and f"its process {run.pid} is STOPPED" in line and f"kill -CONT {run.pid}" in line, line
        assert "no word" not in line  # not after a minute of silence: at once
        assert json.loads(castrig_main(capsys, "status", str(run_dir), "--json").stdout)["owner_stopped"] is True
    finally:
        run.send_signal(signal.SIGCONT)
    wait_until(lambda: "STOPPED" not in castrig_main(capsys, "status", str(run_dir)).stdout, timeout_s=20,
               what="the runner going on")
    assert castrig_main(capsys, "abort", str(run_dir)).returncode == 0
    assert run.wait(timeout=60) == 3


def test_a_silent_runner_that_is_not_stopped_is_said_silent():
    """Hung or busy, not stopped (its process state says nothing): after SILENT_S of silence the
    line says there has been no word from it, naming its process."""
    from castrig.cli.operate import status_line
    from castrig.store.live import SILENT_S

    d = {"uid": "r1", "status": "running", "step": {"step_index": 1, "n_steps": 3, "step_label": "hold"},
         "status_age_s": SILENT_S + 5, "owner": {"pid": 4242}, "owner_stopped": False}
    line = status_line(d)
    assert "no word from the runner for" in line and "process 4242" in line and "STOPPED" not in line
    assert "no word" not in status_line(d | {"status_age_s": SILENT_S - 5})


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_watch_at_a_terminal_draws_the_live_table_and_follows_the_run_to_its_end(tmp_path: Path, reap, terminal_run):
    """As an operator types it: `castrig watch` on a terminal draws the live table (the display
    for people; under a pipe it prints lines), updates it as the run goes, and exits with the
    run's code once the run ends (here `castrig abort` from a third process).
    And, on the same run (one runner for both, ~1.5 s of CPU saved): paused by a user named
    `[/x]` (a token's name in the web API can be anything), `castrig watch` started on a
    terminal ended in a Rich MarkupError traceback, exit 1 (was
    test_watch_shows_a_name_holding_rich_markup_as_written)."""
    data = tmp_path / "runs"
    runner = reap(start_castrig("run", str(LONG_WAIT), "--data", str(data), "-q"))
    run_dir = wait_until(lambda: (d := only_run_dir(data)) and run_status(d).get("state") == "running" and d,
                         timeout_s=30, what="a running run")

    watch = terminal_run(["watch", str(run_dir), "--every", "0.3"], cwd=ROOT)
    at = watch.expect("castrig watch")
    for row in ("status", "running", "step", "wait", "time left", "RH near membrane", "flows", "last warning"):
        watch.expect(row, after=at)
    # the rich-markup name: paused by `[/x]`, a watch started then shows it as written
    assert castrig("pause", str(run_dir), USER="[/x]", LOGNAME="[/x]").returncode == 0
    marked = terminal_run(["watch", str(run_dir), "--every", "0.3"], cwd=ROOT)
    marked.expect("[/x]")
    assert castrig("abort", str(run_dir)).returncode == 0
    assert marked.wait(timeout_s=60) == 3 and "Traceback" not in marked.output, marked.output[-2000:]
    assert watch.wait(timeout_s=60) == 3
    assert runner.wait(timeout=60) == 3
    out = watch.output
    assert "aborted" in out and "Traceback" not in out


def test_command_files_written_by_hand_are_answered_saying_what_is_wrong(tmp_path: Path, reap, capsys, wall_sim_profile):
    """Another tool or an operator's editor drops files into control/ (the channel is plain files,
    readable and writable with ``cat``): each is answered in control/done/ naming the file and
    what a command is — a half-written or hand-mangled file read "unknown command ''", as if an
    action had been given; one nested too deep faulted the run — the run goes on, and a
    well-formed one of any name is applied."""
    data = tmp_path / "data"
    run, run_dir = _run_on_the_wall_clock(data, wall_sim_profile, reap)
    control = run_dir / "control"
    files = {"a-list.json": "[1, 2]", "b-half.json": '{"action": "pau', "c-no-action.json": '{"act": "pause"}',
             "d-unknown.json": '{"action": "launch"}', "e-pause.json": '{"action": "pause", "by": "lab-script"}',
             # 60 KB of brackets: the parser's RecursionError faulted the run ("internal error")
             "f-deep.json": "[" * 30_000 + "]" * 30_000,
             # a file of many MB was read whole into the runner's memory
             "g-huge.json": '{"action": "pause", "pad": "' + "x" * 8_000_000 + '"}'}
    run.send_signal(signal.SIGSTOP)  # all there before the runner looks (a plain write is not atomic)
    try:
        for name, text in files.items():
            (control / name).write_text(text)
    finally:
        run.send_signal(signal.SIGCONT)
    wait_until(lambda: all((control / "done" / n).is_file() for n in files), timeout_s=20, what="every file answered")
    said = {n: json.loads((control / "done" / n).read_text()) for n in files}
    assert not [n for n in files if (control / n).exists()]  # answered once, never retried
    for name, words in (("a-list.json", "is not an object"), ("b-half.json", "is not valid JSON"),
                        ("c-no-action.json", "names no action"), ("d-unknown.json", "unknown command 'launch'"),
                        ("f-deep.json", "is nested too deep"), ("g-huge.json", "is larger than 64 KiB")):
        msg = said[name]["message"]
        assert said[name]["accepted"] is False and name in msg, msg
        assert words in msg and "pause, resume, abort" in msg, msg
    assert said["e-pause.json"]["accepted"] is True, said["e-pause.json"]
    wait_until(lambda: run_status(run_dir).get("state") == "paused", timeout_s=20, what="paused by the hand-written file")
    assert "paused by lab-script" in castrig_main(capsys, "status", str(run_dir)).stdout
    assert castrig_main(capsys, "abort", str(run_dir)).returncode == 0
    assert run.wait(timeout=60) == 3


@pytest.mark.slow  # the CLI waits its full 30 s for an answer before it gives up
def test_a_runner_that_does_not_answer_is_said_so_exit_5(tmp_path: Path, reap):
    """The runner holds its run but reads no command (SIGSTOP: a Ctrl-Z, a debugger): `castrig
    pause` gives up after its wait with exit 5, saying the command stays in the channel — not a
    hang, not a claim that it was done; once the runner goes on, it reads and applies it. It asked
    "is it stopped?" and said a later resume discards the command, after 30 s of silence: it says
    at once that the process is STOPPED and that the command is applied when it goes on."""
    data = tmp_path / "data"
    run, run_dir = _run_in_its_hold(data, reap)
    run.send_signal(signal.SIGSTOP)
    try:
        silent = castrig("pause", str(run_dir), timeout_s=60)
    finally:
        run.send_signal(signal.SIGCONT)
    assert silent.returncode == 5, silent.stdout + silent.stderr
    err = " ".join(silent.stderr.split())
    assert "the runner did not answer" in err and "stays in its control channel" in err and "Traceback" not in err, err
    assert f"pause: its process {run.pid} is STOPPED" in err and f"applied the moment the process goes on (`kill -CONT {run.pid}`)" in err
    wait_until(lambda: run_status(run_dir).get("state") == "paused", timeout_s=20, what="the pause read once it went on")
    assert castrig("abort", str(run_dir)).returncode == 0
    assert run.wait(timeout=60) == 3


#: A sitecustomize (conftest with_sitecustomize): the sender's own Ctrl-C (SIGINT) the moment its
#: command is written to the run's channel, before it waits for the answer.
CTRL_C_AS_THE_COMMAND_IS_SENT = signal_self("castrig.store.commands:send_command", "SIGINT", after=True)


@pytest.mark.parametrize("action", campaign(["pause", "abort"], ci={0}))
def test_a_command_given_up_with_ctrl_c_before_the_runner_took_it_is_not_applied(tmp_path: Path, reap, action, capsys):
    """`castrig pause` (or abort) to a runner that has not answered yet (stopped: a Ctrl-Z, a
    debugger; or busy), given up with Ctrl-C: before, exit 130 'interrupted' and nothing more,
    the command left in the channel -- and the runner, going on, paused (or aborted) the run
    the operator had given up on. Now the command is taken back and said so; the run goes on."""
    data = tmp_path / "data"
    run, run_dir = _run_in_its_hold(data, reap)
    run.send_signal(signal.SIGSTOP)
    try:
        # a Ctrl-C the moment the command is in the channel, before the wait for its answer (a CI
        # run met it): exit 130 "interrupted", the command left for the runner to apply
        early = castrig(action, str(run_dir), **with_sitecustomize(tmp_path, CTRL_C_AS_THE_COMMAND_IS_SENT))
        assert early.returncode == 130 and f"{action} withdrawn" in early.stderr, (early.returncode, early.stderr[-2000:])
        assert not [p for p in (run_dir / "control").glob("*.json") if p.name != "status.json"]
        sender = reap(start_castrig(action, str(run_dir)))
        wait_until(lambda: [p for p in (run_dir / "control").glob("*.json") if p.name != "status.json"], timeout_s=30,
                   what="the command in the channel")
        sender.send_signal(signal.SIGINT)
        out, err = sender.communicate(timeout=30)
    finally:
        run.send_signal(signal.SIGCONT)
    assert sender.returncode == 130, (sender.returncode, out, err)
    said = " ".join(err.split())
    assert f"{action} withdrawn" in said and "Traceback" not in said, said
    assert not [p for p in (run_dir / "control").glob("*.json") if p.name != "status.json"]
    t0 = run_status(run_dir).get("t_s", 0)
    wait_until(lambda: run_status(run_dir).get("t_s", 0) > t0 + 60, timeout_s=30, what="the runner going on")
    assert run_status(run_dir).get("state") == "running" and run.poll() is None
    assert not run_rows(run_dir, "select kind from events where kind in ('pause', 'run_end')")
    assert castrig_main(capsys, "abort", str(run_dir)).returncode == 0  # (no start-up of a process while the run spins on)
    assert run.wait(timeout=60) == 3


def test_status_of_a_crashed_run_shows_no_time_left(tmp_path, capsys):
    """kill -9 in an 8-hour wait: `castrig status` said "crashed · step 1/1 … · left: step 0:00:00,
    run 0:00:00" — time left in a run nobody runs. It says where it stopped, and no time left."""
    from conftest import run_then_kill_9

    run_dir = run_then_kill_9(ROOT / "tests" / "data" / "long_wait.yaml", tmp_path / "runs",
                              lambda d: len(run_rows(d, "SELECT 1 FROM samples LIMIT 50")) >= 50)
    done = castrig_main(capsys, "status", str(run_dir))
    assert done.returncode == 0 and "crashed" in done.stdout, done.stdout + done.stderr
    assert "left:" not in done.stdout and ("step 1/2" in done.stdout or "step 2/2" in done.stdout), done.stdout  # where it stopped


def test_status_of_a_resumed_run_says_a_lost_membranes_reason_once(tmp_path, capsys):
    """A run resumed after kill -9, its drying membrane lost: `castrig status` gave the reason as
    the last warning and again as the run's outcome reason, the same long sentence twice."""
    from conftest import run_then_kill_9

    run_dir = run_then_kill_9(ROOT / "tests" / "data" / "two_membranes_long_evaporate.yaml", tmp_path / "runs",
                              lambda d: bool(run_rows(d, "SELECT 1 FROM journal WHERE step_index = 4 AND state = 'started'")))
    assert castrig("resume", str(run_dir), "-q").returncode == 0
    done = castrig_main(capsys, "status", str(run_dir))
    assert done.returncode == 0 and "membrane_lost" in done.stdout, done.stdout + done.stderr
    assert done.stdout.count("the cast film dried without RH control") == 1, done.stdout


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_a_flood_of_files_in_the_control_channel_is_read_a_few_at_a_time(tmp_path: Path, reap):
    """30 000 junk files in control/ were all read and answered at one control period: the loop
    stalled 4 s (past a pump's safe-mode watchdog at ~75 000). Now at most PER_POLL a period,
    castrig's own commands first: an abort sent after the flood is answered at once."""
    from castrig.store.commands import answer_of, send_command

    data = tmp_path / "runs"
    runner = reap(start_castrig("run", str(LONG_WAIT), "--data", str(data), "-q"))
    run_dir = wait_until(lambda: (d := only_run_dir(data)) and run_status(d).get("state") == "running" and d,
                         timeout_s=30, what="a running run")
    control = run_dir / "control"
    junk = control / ".junk"
    junk.mkdir()
    for i in range(10_000):
        (junk / f"a{i:05d}.json").write_text("{}")
    for p in junk.iterdir():  # (in place at once, as a runaway script would have them)
        p.rename(control / p.name)
    cmd = send_command(run_dir, "abort", "cli:night-shift")
    answer = wait_until(lambda: answer_of(run_dir, cmd), timeout_s=30, what="the abort answered")
    answered = len(list((control / "done").iterdir()))
    assert answer["accepted"] and answered <= 20 * 32, answered  # (32: PER_POLL)
    assert runner.wait(timeout=60) == 3


#: A sitecustomize: the runner's safe state takes 5 s (devices slow to answer), long enough to
#: outlast an abort's --wait.
SLOW_SAFE_STATE = """
import time
import castrig.recipe.runner as r
_make_safe = r.make_safe
def _slow(*a, **k):
    time.sleep(5)
    return _make_safe(*a, **k)
r.make_safe = _slow
"""


def test_an_abort_whose_wait_runs_out_before_the_run_ends_does_not_exit_0(tmp_path: Path, reap, capsys):
    """An outside tester: `castrig abort RUN --wait 0.05` exited 0 while the run was still making
    its rig safe (it exited 3 after), so `castrig abort RUN && power-off` would cut the power on
    a rig not yet known safe. It exits 5 and says the run has not ended."""
    data = tmp_path / "data"
    env = with_sitecustomize(tmp_path, SLOW_SAFE_STATE)
    run = reap(start_castrig("run", str(LONG_WAIT), "--data", str(data), "-q", **env))
    run_dir = wait_until(lambda: (d := only_run_dir(data)) is not None and run_status(d).get("step_index") == 1 and d,
                         timeout_s=60, what="the run in its 24-hour hold")
    done = castrig_main(capsys, "abort", str(run_dir), "--wait", "1")  # (a second process to the run all the same)
    said = " ".join(done.stderr.split())
    assert done.returncode == 5 and "has not ended within 1 s" in said, (done.returncode, done.stdout, said)
    assert run.wait(timeout=60) == 3  # it ended aborted, after


def test_an_abort_whose_run_dies_making_the_rig_safe_does_not_exit_0(tmp_path: Path, reap, wall_sim_profile):
    """A review: `castrig abort RUN --wait 30` whose run was killed (kill -9) while it made the
    rig safe printed "crashed" and exited 0 -- the last safe-state event it found was one from
    before the abort (or none). Only a safe state recorded after the abort, verified, is exit 0."""
    from conftest import with_sitecustomize

    data = tmp_path / "data"
    env = with_sitecustomize(tmp_path, SLOW_SAFE_STATE)
    run, run_dir = _run_on_the_wall_clock(data, wall_sim_profile, reap, **env)
    abort = reap(start_castrig("abort", str(run_dir), "--wait", "30"))
    from castrig.store import live

    wait_until(lambda: live.summary(run_dir)["status"] == "making_safe", timeout_s=30, what="the run making its rig safe")
    os.kill(run.pid, signal.SIGKILL)
    out, err = abort.communicate(timeout=60)
    said = " ".join(err.split())
    assert abort.returncode == 5 and "safe state was not recorded after the abort" in said, (abort.returncode, out, said)


#: A sitecustomize: as the runner takes the command file ``$SWAP_AT_TAKE`` (its rename into
#: control/taken/), that file has just been swapped for a named pipe of the same name (another
#: process, between the runner's look at the folder, which passes only regular files, and its take).
SWAP_AT_TAKE = """
import os
from pathlib import Path
_rename = os.rename
def _at(name, fd):  # (the channel moves names inside folders it holds open)
    return Path(os.readlink(f"/proc/self/fd/{fd}")) / name if fd is not None else Path(name)
def _swapped_then_rename(src, dst, *a, **kw):
    s = _at(src, kw.get("src_dir_fd"))
    if s.name == os.environ["SWAP_AT_TAKE"] and _at(dst, kw.get("dst_dir_fd")).parent.name == "taken" \
            and not os.environ.get("_SWAPPED"):
        os.environ["_SWAPPED"] = "1"
        s.unlink()
        os.mkfifo(s)
    return _rename(src, dst, *a, **kw)
os.rename = _swapped_then_rename
"""


def test_a_command_file_swapped_for_a_named_pipe_as_it_is_taken_is_answered_and_the_run_goes_on(tmp_path: Path, reap,
                                                                                                 wall_sim_profile):
    """The runner opened what it took from control/ the ordinary way: a named pipe there waited
    for a writer for ever, and the run with it (no tick: the RH loop's last flows held, no pump
    keep-alive). Now a file that is not a regular one is answered refused, and the run goes on."""
    data = tmp_path / "data"
    run, run_dir = _run_on_the_wall_clock(data, wall_sim_profile, reap, SWAP_AT_TAKE="swap.json",
                                          **with_sitecustomize(tmp_path, SWAP_AT_TAKE))
    control = run_dir / "control"
    (control / "swap.json").write_text('{"action": "pause", "by": "lab-script"}')
    answer = control / "done" / "swap.json"
    wait_until(answer.is_file, timeout_s=20, what="the swapped file answered")
    said = json.loads(answer.read_text())
    assert said["accepted"] is False and "is not a regular file" in said["message"], said
    samples = lambda: run_rows(run_dir, "SELECT COUNT(*) FROM samples")[0][0]  # noqa: E731
    before = samples()
    wait_until(lambda: samples() > before, timeout_s=20, what="the run sampling on")
    assert run.poll() is None and run_status(run_dir).get("state") != "paused"


def _drop(control: Path, name: str, command: dict[str, str]) -> None:
    """Write ``command`` to control/NAME as a careful lab script does: a hidden temporary, renamed."""
    tmp = control / f".{name}.script.tmp"
    tmp.write_text(json.dumps(command))
    tmp.rename(control / name)


def test_a_command_whose_answer_is_seen_is_gone_from_control_and_its_name_is_free_again(tmp_path: Path, reap, wall_sim_profile):
    """A lab script writes control/pause.json, waits for control/done/pause.json, then looks at
    control/ and sends its next command under the same name. The runner wrote the answer first
    and removed the command after: caught in between (a loaded machine; an 8 MB file dropped
    there was seen so in a test), control/ still held the answered command, and the runner's
    late removal then deleted the script's next command, which was never answered nor applied.
    The runner is stopped here at that very moment, the answer just published."""
    from conftest import with_sitecustomize

    data = tmp_path / "data"
    run, run_dir = _run_on_the_wall_clock(data, wall_sim_profile, reap, STOP_AT_ANSWER="pause.json",
                                    **with_sitecustomize(tmp_path, STOP_AT_ANSWER))
    control, done = run_dir / "control", run_dir / "control" / "done"
    _drop(control, "pause.json", {"action": "pause", "by": "lab-script"})
    wait_until(lambda: stopped(run.pid), timeout_s=20, what="the runner stopped as it answers pause.json")
    try:
        assert json.loads((done / "pause.json").read_text())["accepted"] is True
        assert not (control / "pause.json").exists(), "answered, yet still pending in control/"
        (done / "pause.json").unlink()  # the script's next command, under the same name
        _drop(control, "pause.json", {"action": "abort", "by": "lab-script"})
    finally:
        run.send_signal(signal.SIGCONT)
    second = wait_until(lambda: (done / "pause.json").is_file() and json.loads((done / "pause.json").read_text()),
                        timeout_s=20, what="the second command answered")
    assert second["action"] == "abort" and second["accepted"] is True, second
    assert run.wait(timeout=60) == 3
    assert not (control / "pause.json").exists()


#: A sitecustomize: the first answer to the command file named ``$FULL_AT_ANSWER`` cannot be
#: written (the disk is full as the runner publishes it: ``os.replace`` of its temporary fails).
FULL_AT_ANSWER = """
import errno, os
from pathlib import Path
_replace = os.replace
def _full_once(src, dst, *a, **kw):
    s, d = Path(src), Path(dst)
    if d.name == os.environ["FULL_AT_ANSWER"] and s.name.startswith(".") and s.name.endswith(".tmp") \\
            and not os.environ.get("_FULL"):
        os.environ["_FULL"] = "1"
        os.unlink(src, dir_fd=kw.get("src_dir_fd"))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
    return _replace(src, dst, *a, **kw)
os.replace = _full_once
"""


def test_a_command_whose_answer_could_not_be_written_is_not_applied_again(tmp_path: Path, reap, capsys, wall_sim_profile):
    """The disk full as the runner wrote a pause's answer: the command stayed in control/ and was
    read again at the next control period -- applied a second time, and answered "refused:
    already paused or pausing" although it was the very command that paused the run. A command
    is applied once; its answer is written when it can be, and says what was done."""
    from conftest import with_sitecustomize

    data = tmp_path / "data"
    run, run_dir = _run_on_the_wall_clock(data, wall_sim_profile, reap, FULL_AT_ANSWER="pause.json",
                                    **with_sitecustomize(tmp_path, FULL_AT_ANSWER))
    control, done = run_dir / "control", run_dir / "control" / "done"
    _drop(control, "pause.json", {"action": "pause", "by": "lab-script"})
    answer = wait_until(lambda: (done / "pause.json").is_file() and json.loads((done / "pause.json").read_text()),
                        timeout_s=20, what="the pause answered")
    assert answer["accepted"] is True and "pausing" in answer["message"], answer
    assert not (control / "pause.json").exists()
    wait_until(lambda: run_status(run_dir).get("state") == "paused", timeout_s=20, what="paused")
    asked = run_rows(run_dir, "SELECT message FROM events WHERE kind = 'command'")
    assert asked == [("pause requested by lab-script",)], asked
    assert castrig_main(capsys, "abort", str(run_dir)).returncode == 0
    assert run.wait(timeout=60) == 3



#: A sitecustomize (conftest ``with_sitecustomize``): the runner, about to take a command out of
#: its control channel, sleeps there (a runner busy, not stopped) -- the command stays pending.
SLOW_TAKE = """
import os, re, time
_rename = os.rename
def _slow_take(src, dst, *a, **kw):
    if kw.get("dst_dir_fd") is not None and re.fullmatch(r"\\d{20}-[0-9a-f]{12}\\.json", str(src)):
        time.sleep(60)
    return _rename(src, dst, *a, **kw)
os.rename = _slow_take
"""


def test_an_abort_through_serve_that_the_run_never_reads_is_said_so(tmp_path: Path, reap, castrig_serve, wall_sim_profile):
    """`castrig abort`'s case (above) through `castrig serve`. A runner frozen by SIGSTOP: the
    server waited its 10 s and answered 202 "sent; the runner has not answered yet" -- now at once,
    saying the process is STOPPED and how it goes on. A runner that dies before it reads the
    abort (busy, then kill -9): the server waited its 10 s, answered the same 202 -- the page
    showed an abort under way, of a run whose dead process left the rig as it drove it -- and left
    the command in the channel. Now 409 as the process is gone: the run ended (crashed) before it
    read the abort, how to make the rig safe; the command taken back."""
    import threading
    import time

    from test_serve_api import http

    data = tmp_path / "data"
    data.mkdir()
    with castrig_serve(data) as served:  # (first: the twin's run spends no CPU in its hold meanwhile)
        run, run_dir = _run_on_the_wall_clock(data, wall_sim_profile, reap, **with_sitecustomize(tmp_path, SLOW_TAKE))
        os.kill(run.pid, signal.SIGSTOP)

        def pending() -> list[str]:
            return [p.name for p in (run_dir / "control").glob("*.json") if p.name != "status.json"]

        url = served.url + f"api/runs/{run_dir.name}/abort"
        t0 = time.monotonic()
        code, body = http(url, method="POST", token=served.token)
        assert time.monotonic() - t0 < 5, body  # (not the server's whole 10 s wait)
        assert code == 202 and "is STOPPED" in body["message"] and f"kill -CONT {run.pid}" in body["message"], body
        os.kill(run.pid, signal.SIGCONT)  # it goes on, and sleeps as it takes that abort (SLOW_TAKE)
        got: list = []
        poster = threading.Thread(target=lambda: got.append(http(url, method="POST", token=served.token)))
        poster.start()
        wait_until(lambda: len(pending()) == 2, timeout_s=20, what="the second abort in the control channel")
        run.kill()
        t0 = time.monotonic()
        poster.join(timeout=30)
        assert got and time.monotonic() - t0 < 5, got
        code, body = got[0]
        assert code == 409 and "the run ended (crashed) before it read the abort" in body["error"], body
        assert "castrig safe --profile" in body["error"] and str(data) not in body["error"], body
        assert len(pending()) == 1, pending()  # the second taken back (the first stays, for a resume to discard)


# (a run and its resume in their 24-hour hold: ~2.7 s of CPU; run in CI)
def test_a_run_killed_while_paused_resumes_saying_its_pause_has_ended(tmp_path: Path, reap, capsys):
    """Paused with `castrig pause`, then killed (kill -9): `castrig resume` went on running, the
    pause gone without a word on the console or in the record. Now it says so (a note, and an
    ``unpaused`` event) and goes on; `castrig pause` pauses it again."""
    data = tmp_path / "data"
    run, run_dir = _run_in_its_hold(data, reap)
    assert castrig_main(capsys, "pause", str(run_dir)).returncode == 0
    wait_until(lambda: run_status(run_dir).get("state") == "paused", timeout_s=20, what="paused")
    os.kill(run.pid, signal.SIGKILL)
    assert run.wait(timeout=10) == -9
    resumed = reap(start_castrig("resume", str(run_dir), "-q"))
    wait_until(lambda: run_status(run_dir).get("state") == "running",
               timeout_s=60, what="the resume running")
    assert castrig_main(capsys, "abort", str(run_dir)).returncode == 0
    assert resumed.wait(timeout=60) != 0
    err = resumed.stderr.read()  # type: ignore[union-attr]
    assert "was paused when it stopped" in err and "not paused" in err, err[-2000:]
    [(message,)] = run_rows(run_dir, "SELECT message FROM events WHERE kind = 'unpaused'")
    assert "by cli:" in message, message
