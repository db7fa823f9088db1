"""`castrig queue`: unattended runs, a failure recorded and the queue going on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from castrig.cli.main import main
from conftest import signal_self

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def test_queue_records_failures_and_goes_on(tmp_path, capsys):
    failing = tmp_path / "unreachable.yaml"
    # a set point the chamber holds (check passes it) but cannot reach in the time out: from the
    # room's 45 %RH the twin's chamber (τ ≈ 1 min) is below 80 %RH after 60 s, so it faults there
    failing.write_text("name: unreachable\nsteps:\n"
                       "  - {type: condition, setpoint_rh_pct: 95, band_rh_pct: 0.2, stable_for_s: 30, timeout_s: 60}\n")
    data = tmp_path / "runs"
    code = main(["queue", str(failing), str(DATA / "short.yaml"), "--repeat", "2", "--data", str(data)])
    assert code == 3  # not all completed
    (summary_path,) = data.glob("queue-*.json")
    summary = json.loads(summary_path.read_text())
    outcomes = [r["outcome"] for r in summary["runs"]]
    assert outcomes == ["faulted", "completed", "faulted", "completed"]
    assert all(r["safe"] for r in summary["runs"])
    assert len({r["seed"] for r in summary["runs"]}) == 4  # each run its own seed
    assert all(Path(r["report"]).is_file() for r in summary["runs"])
    assert "queue summary" in capsys.readouterr().out


def test_queue_checks_every_recipe_before_starting(tmp_path, capsys):
    data = tmp_path / "runs"
    assert main(["queue", str(DATA / "short.yaml"), str(DATA / "broken.yaml"), "--data", str(data)]) == 2
    assert not data.exists()
    assert "broken.yaml" in capsys.readouterr().err


def test_a_piped_recipe_is_refused_before_the_queue_starts(tmp_path):
    """``castrig queue <(cat recipe.yaml)``: the queue read the pipe to check it, then ran an empty
    recipe and left a queue state naming /dev/fd/63. A queue reads its recipes again (every
    repetition, ``--resume``): refused up front, exit 2, nothing written."""
    import os

    from conftest import castrig

    r, w = os.pipe()
    os.write(w, (DATA / "short.yaml").read_bytes())
    os.close(w)
    data = tmp_path / "runs"
    try:
        done = castrig("queue", str(DATA / "short.yaml"), f"/dev/fd/{r}", "--data", str(data), pass_fds=(r,))
    finally:
        os.close(r)
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"/dev/fd/{r}" in done.stderr and "needs recipe files" in done.stderr and "Traceback" not in done.stderr
    assert not data.exists() or not list(data.iterdir())


def test_a_named_pipe_given_as_the_queue_state_is_refused_not_waited_on(tmp_path):
    """``castrig queue --resume q.json`` where q.json is a named pipe (a script's process
    substitution, a mistake): the queue waited for ever on its open, holding the rig. Refused,
    exit 2, naming the file, at once."""
    import os

    from conftest import castrig

    state = tmp_path / "queue-x.json"
    os.mkfifo(state)
    done = castrig("queue", "--resume", str(state), "--data", str(tmp_path), timeout_s=30)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert str(state) in done.stderr and "not a regular file" in done.stderr


def _kill_a_queue_in_its_first_run(folder: Path) -> None:
    """A queue of two recipes killed -9 while its first run is under way (data root folder/runs).
    The first is the mini overnight without its two captures (the twin's renders cost ~0.6 s of CPU
    in each resume, and no test of the queue's state looks at an image): killed at 600 s, in m1's
    evaporation, its steps after are a hold, m2's pre-wet, cast and evaporation, the end purge."""
    from conftest import castrig_killed_9, recipe_variant, run_rows

    data = folder / "runs"
    mini = recipe_variant(DATA / "reliability" / "overnight_mini.yaml", folder / "recipes",
                          ("  - {type: capture, views: [reflected], fields: 1}\n", ""))
    castrig_killed_9("queue", str(mini), str(DATA / "short.yaml"), "--data", str(data), data=data,
                     ready=lambda run: ((run_rows(run, "select max(t_s) from samples") or [(None,)])[0][0] or 0) > 600)


@pytest.fixture(scope="session")
def queue_killed_once(tmp_path_factory, worker_id) -> Path:
    """:func:`_kill_a_queue_in_its_first_run`, once per session (conftest :func:`made_once_movable`)."""
    from conftest import made_once_movable

    return made_once_movable(tmp_path_factory, worker_id, "queue-killed-in-its-first-run", _kill_a_queue_in_its_first_run)


@pytest.fixture
def queue_killed_in_its_first_run(tmp_path, queue_killed_once) -> Path:
    """The state file of a queue killed -9 in its first run, its data root tmp_path / "runs": a
    copy of the session's (conftest :func:`copy_as_if_made_in`; four tests resume it, each its own
    way, ~1 s of CPU a kill)."""
    from conftest import copy_as_if_made_in

    copy_as_if_made_in(queue_killed_once, tmp_path)
    (state_path,) = (tmp_path / "runs").glob("queue-*.json")
    state = json.loads(state_path.read_text())
    assert [i["status"] for i in state["items"]] == ["running", "pending"]
    assert state["data"] == str(tmp_path / "runs") and state["items"][0]["recipe"].startswith(str(tmp_path)), state
    return state_path


def test_queue_resumes_after_kill_9_and_lists_every_recipe(tmp_path, queue_killed_in_its_first_run):
    """kill -9 while the first run is running; `castrig queue --resume` resumes that run, runs the
    ones that never started, and its summary lists every recipe with its outcome."""
    from conftest import castrig

    data = tmp_path / "runs"
    state_path = queue_killed_in_its_first_run
    (data / f".{state_path.name}.k9mid0wr.tmp").write_text('{"items": ')  # a kill -9 as the state was written
    # from the data root, as a relative path (cron's cd): the summary names the state file whole
    done = castrig("queue", "--resume", state_path.name, cwd=data, timeout_s=120, COLUMNS="400")
    assert done.returncode == 0, done.stderr
    assert not list(data.glob(".*.tmp"))  # removed by the resume, which owns the queue
    assert f"— {state_path}" in done.stdout, done.stdout
    state = json.loads(state_path.read_text())
    assert [i["outcome"] for i in state["items"]] == ["completed", "completed"]
    assert len({i["run_dir"] for i in state["items"]}) == 2 and len(list(data.glob("*/run.json"))) == 2  # resumed, not rerun
    assert "overnight_mini.yaml" in done.stdout and "short.yaml" in done.stdout
    first = json.loads((Path(state["items"][0]["run_dir"]) / "run.json").read_text())
    assert len(first["parts"]) == 2


def test_queue_resume_does_not_restart_a_run_that_was_aborted(tmp_path, queue_killed_in_its_first_run):
    """The run ended aborted (its run.json says so) and the queue died before noting it: --resume
    records it aborted and goes on; it does not start that run's rig again (resume refuses an
    aborted run unless --after-abort, and the queue must not trip over that)."""
    from conftest import castrig

    data = tmp_path / "runs"
    state_path = queue_killed_in_its_first_run
    (first,) = [p.parent for p in data.glob("*/run.json")]
    info = json.loads((first / "run.json").read_text())
    info.update(outcome="aborted", outcome_reason="aborted by the operator")  # as the run's end writes it
    (first / "run.json").write_text(json.dumps(info))
    done = castrig("queue", "--resume", str(state_path), timeout_s=120)
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stdout + done.stderr
    state = json.loads(state_path.read_text())
    assert [i["outcome"] for i in state["items"]] == ["aborted", "completed"]
    assert len(json.loads((first / "run.json").read_text())["parts"]) == 1  # not resumed


def test_queue_summary_lists_runs_that_never_ran_and_missed_targets(tmp_path):
    state = {"items": [{"recipe": "a.yaml", "outcome": "completed", "target_grade": "claim1", "target_met": False,
                        "membranes": "1 membrane; target grade claim1 met by 0; NOT met by m1", "run_dir": "x"},
                       {"recipe": "b.yaml", "outcome": "not run"}]}
    from io import StringIO

    from rich.console import Console

    import castrig.recipe.queue as q

    buf = StringIO()
    orig = q.Console
    q.Console = lambda **kw: Console(file=buf, width=220)  # type: ignore[assignment]
    try:
        q._print_summary(state, tmp_path / "queue-x.json")
    finally:
        q.Console = orig
    out = buf.getvalue()
    assert "claim1 NOT met" in out and "not run" in out and "b.yaml" in out


@pytest.mark.parametrize("leaves", ["empty", pytest.param("missing", marks=pytest.mark.slow)])  # CI: one of the two
def test_queue_resumes_after_kill_9_while_a_run_folder_was_made(tmp_path, leaves, capsys):
    """kill -9 just as the queue made its second run folder (run.json there, run.sqlite empty or not
    yet there, no step started): `castrig queue --resume` replaces that folder, which holds nothing,
    runs that recipe and the rest, exit 0 — it used to exit 2 'damaged run folder' at every try."""
    from conftest import KILL_AT_CREATION, castrig, castrig_main, with_sitecustomize

    data = tmp_path / "runs"
    short = str(DATA / "short.yaml")
    killed = castrig("queue", short, short, short, "--data", str(data), **with_sitecustomize(tmp_path, KILL_AT_CREATION),
                     KILL_AT_RUN="2", KILL_LEAVES=leaves)
    assert killed.returncode == -9, killed.stderr
    (state_path,) = data.glob("queue-*.json")
    state = json.loads(state_path.read_text())
    assert [i["status"] for i in state["items"]] == ["completed", "running", "pending"]
    (cut,) = [p.parent for p in data.glob("*/run.json") if p.parent != Path(state["items"][0]["run_dir"])]
    assert (cut / "run.sqlite").exists() == (leaves == "empty")
    refused = castrig("resume", str(cut))  # not a run anyone can resume: nothing was recorded, and it says so
    assert refused.returncode == 2 and "never started" in refused.stderr and "run the recipe again" in refused.stderr, refused.stderr
    listed = castrig_main(capsys, "runs", "--data", str(data))
    assert "never started" in " ".join(listed.stdout.split()), listed.stdout

    if leaves == "missing":  # and the queue died again as it removed that folder, its state still naming it
        state["items"][1]["run_dir"] = str(cut)
        state_path.write_text(json.dumps(state))
        shutil.rmtree(cut)
    done = castrig("queue", "--resume", str(state_path), timeout_s=120)
    assert done.returncode == 0, done.stdout + done.stderr
    state = json.loads(state_path.read_text())
    assert [i["outcome"] for i in state["items"]] == ["completed", "completed", "completed"]
    # replaced: it held no record (a replacement started within the same second takes its name:
    # run ids are to the second, and this one was free again; 1 run in 5 here)
    assert not cut.exists() or json.loads((cut / "run.json").read_text())["outcome"] == "completed"
    if leaves == "missing":
        return
    assert state["items"][1]["replaced"][0]["run_dir"] == str(cut)
    assert len({i["run_dir"] for i in state["items"]}) == 3 and len(list(data.glob("*/run.json"))) == 3
    assert f"{cut}" in done.stderr and "never started" in done.stderr
    runs = castrig_main(capsys, "runs", "--data", str(data))
    assert runs.returncode == 0 and "damaged" not in runs.stdout, runs.stdout


@pytest.mark.parametrize("stop", ["SIGTERM", pytest.param("SIGHUP", marks=pytest.mark.slow), "castrig abort"])  # SIGHUP: -m slow
def test_an_abort_on_purpose_stops_the_queue_once_the_rig_is_safe(tmp_path, reap, stop, capsys):
    """systemctl stop (SIGTERM), a dropped ssh session (SIGHUP) or `castrig abort` of the queue's
    run: the run aborts to the verified safe state and the queue stops there, exit 3, the recipes
    it did not start recorded `not run` and left pending for `--resume` — it used to abort the run
    and start the next recipe at once."""
    import signal

    from conftest import castrig_main, run_rows, start_castrig, wait_until

    data = tmp_path / "runs"
    long_wait = str(DATA / "long_wait.yaml")
    proc = reap(start_castrig("queue", long_wait, long_wait, long_wait, "--data", str(data)))
    run_dir = wait_until(lambda: next((p.parent for p in data.glob("*/run.sqlite")
                                       if (run_rows(p.parent, "select count(*) from samples") or [(0,)])[0][0] > 2), None),
                         what="the queue's first run under way")
    if stop == "castrig abort":
        assert castrig_main(capsys, "abort", str(run_dir)).returncode == 0
    else:
        proc.send_signal(getattr(signal, stop))
    out, err = proc.communicate(timeout=30)  # (before: the next recipe ran, for a day of virtual time)
    assert proc.returncode == 3, out + err
    assert [p.parent for p in data.glob("*/run.json")] == [run_dir]  # the next recipe never started
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "aborted" and info["ended_utc"], info
    safe = [json.loads(d) for (d,) in run_rows(run_dir, "select data_json from events where kind='safe_state'")]
    assert safe and safe[-1]["safe"] is True
    (state_path,) = data.glob("queue-*.json")
    state = json.loads(state_path.read_text())
    assert [i["outcome"] for i in state["items"]] == ["aborted", "not run", "not run"]
    # pending: `queue --resume` runs them; the aborted run is not the queue's to restart — unless
    # nobody decided it (a hung-up terminal), when it stays the queue's running item
    assert [i["status"] for i in state["items"]] == ["running" if stop == "SIGHUP" else "aborted", "pending", "pending"]
    assert "queue stopped" in state["stopped"] and "queue --resume" in " ".join(err.split()) and "Traceback" not in err
    assert f"castrig queue --resume {state_path}" in err, err  # on one line, as a script greps it (was wrapped at 80)


def test_a_sigterm_to_the_queue_while_it_opens_the_rig_aborts_that_run_and_stops(tmp_path):
    """SIGTERM reaching the queue while it opens the next run's rig (no run handlers yet; a seeded
    moment: conftest SIGNAL_AT_RIG_OPEN): that run aborts at its first control period, the rig is
    made safe and the queue stops, exit 3 -- not a whole recipe run after the stop was asked."""
    from conftest import SIGNAL_AT_RIG_OPEN, castrig, run_rows, with_sitecustomize

    data = tmp_path / "runs"
    long_wait = str(DATA / "long_wait.yaml")
    done = castrig("queue", long_wait, long_wait, "--data", str(data), timeout_s=60, SIGNAL_AT_RIG_OPEN="SIGTERM",
                   **with_sitecustomize(tmp_path, SIGNAL_AT_RIG_OPEN))
    assert done.returncode == 3, done.stdout + done.stderr
    (run_dir,) = [p.parent for p in data.glob("*/run.json")]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "aborted" and "SIGTERM" in info["outcome_reason"], info
    safe = [json.loads(d) for (d,) in run_rows(run_dir, "select data_json from events where kind='safe_state'")]
    assert safe and safe[-1]["safe"] is True
    (state_path,) = data.glob("queue-*.json")
    assert [i["outcome"] for i in json.loads(state_path.read_text())["items"]] == ["aborted", "not run"]


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGHUP"])
def test_a_stop_as_a_run_ends_still_stops_the_queue(tmp_path, stop):
    """systemctl stop landing as the queue's run winds up (its safe state tried, its outcome about
    to be written -- a seeded moment: conftest SIGNAL_AT_OUTCOME): the run's own handlers note it,
    and the queue must hear of it too and start no other recipe. It used to be swallowed by the
    run's handlers: the next recipe ran, exit 0."""
    from conftest import SIGNAL_AT_OUTCOME, castrig, with_sitecustomize

    data = tmp_path / "runs"
    short = str(DATA / "short.yaml")
    done = castrig("queue", short, short, "--data", str(data), timeout_s=60, SIGNAL_AT_OUTCOME=stop, SIGNAL_TIMES="1",
                   **with_sitecustomize(tmp_path, SIGNAL_AT_OUTCOME))
    assert len(list(data.glob("*/run.json"))) == 1, done.stdout + done.stderr  # the second recipe never started
    (state_path,) = data.glob("queue-*.json")
    state = json.loads(state_path.read_text())
    assert [i["status"] for i in state["items"]][1:] == ["pending"] and "queue stopped" in state["stopped"], state
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("moment", ["castrig.rig.build:Rig.close", "castrig.recipe.session:_close_rig"],
                         ids=["in-the-close", "before-the-close"])
def test_ctrl_c_as_a_queued_runs_rig_is_closed_records_the_run_and_stops_the_queue(tmp_path, moment):
    """Ctrl-C at a foreground queue as its first run's rig is closed (the run completed, its
    outcome recorded -- a seeded moment: the process signals itself in Rig.close, or as the run's
    handlers have just ended, before the close). It raised out of the close (or before it, the rig
    never closed): the queue's item stayed 'running' with no run folder, though that run had
    completed. Now the run is recorded as it ended and the queue stops there: interrupted (130),
    the next recipe not started, the way to go on said."""
    from conftest import castrig, signal_hook, with_sitecustomize

    data = tmp_path / "runs"
    short = str(DATA / "short.yaml")
    done = castrig("queue", short, short, "--data", str(data), timeout_s=60, AT_CLOSE="SIGINT",
                   **with_sitecustomize(tmp_path, signal_hook(moment, "AT_CLOSE")))
    assert done.returncode == 130, done.stdout + done.stderr
    (state_path,) = data.glob("queue-*.json")
    state = json.loads(state_path.read_text())
    first, second = state["items"]
    assert first["status"] == "completed" and first["run_dir"] and Path(first["report"]).is_file(), first
    assert second["status"] == "pending" and state["stopped"] == "interrupted by the operator"
    assert f"castrig queue --resume {state_path}" in " ".join(done.stderr.split()) and "Traceback" not in done.stderr


#: The wet-air MFC stops answering as a run starts making the rig safe (a sitecustomize in the
#: queue's process: the twin's emulator goes silent), so the run cannot verify that wet air is off.
WET_MFC_SILENT_AT_SAFE_STATE = """
import castrig.recipe.runner as r
_make_safe = r.make_safe
def _silent_then_safe(**kw):
    kw["wet_mfc"].link.emulator.inject("no_reply")
    return _make_safe(**kw)
r.make_safe = _silent_then_safe
"""


def test_a_run_whose_safe_state_is_not_verified_stops_the_queue(tmp_path):
    """Unattended production must not go on casting on a rig it could not make safe: the first
    run ends with wet air not confirmed off (its MFC silent through every retry), and the queue
    starts no other recipe, says why and how to go on (exit 3)."""
    import yaml

    from conftest import castrig, run_rows, with_sitecustomize

    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    profile["control"].update(safe_state_keep_trying_s=3.0, safe_state_every_s=1.0)  # (30 min on a real rig)
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(profile))
    data = tmp_path / "runs"
    short = str(DATA / "short.yaml")
    done = castrig("queue", short, short, "--profile", str(tmp_path / "rig.yaml"), "--data", str(data), timeout_s=90,
                   **with_sitecustomize(tmp_path, WET_MFC_SILENT_AT_SAFE_STATE))
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 3, said
    (run_dir,) = [p.parent for p in data.glob("*/run.json")]  # the second recipe never started
    safe = [json.loads(d) for (d,) in run_rows(run_dir, "select data_json from events where kind='safe_state'")]
    assert safe and safe[-1]["safe"] is False and "wet_mfc" in json.dumps(safe[-1])
    (state_path,) = data.glob("queue-*.json")
    state = json.loads(state_path.read_text())
    assert state["stopped"].startswith("safe state not verified after") and "queue stopped" in state["stopped"], state
    assert [i["status"] for i in state["items"]][1:] == ["pending"], state
    assert "safe state not verified" in said and "queue --resume" in said and "Traceback" not in said


def test_a_queue_resume_while_the_queue_runs_is_busy_at_any_moment(tmp_path):
    """`castrig queue --resume` started while the queue itself still ran was refused only while a
    run's folder was held: landing between two runs, it ran the remaining items again beside the
    live queue (seven run folders for four items, casts made twice). The queue now owns its state
    file (queue-STAMP.lock) while it lives: every resume tried meanwhile is busy (exit 4) and
    changes nothing, and once the queue has ended each item has exactly one run folder."""
    import time

    from conftest import castrig, start_castrig

    data = tmp_path / "runs"
    queue = start_castrig("queue", str(DATA / "short.yaml"), "--repeat", "8", "--data", str(data))
    codes = []
    try:
        while queue.poll() is None and len(codes) < 40:
            states = list(data.glob("queue-*.json"))
            if states:
                codes.append(castrig("queue", "--resume", str(states[0]), timeout_s=120).returncode)
            else:
                time.sleep(0.05)
        assert queue.wait(timeout=120) == 0, queue.stderr.read()
    finally:
        if queue.poll() is None:
            queue.kill()
    (state_path,) = data.glob("queue-*.json")
    items = json.loads(state_path.read_text())["items"]
    # was: a resume landing between two runs ran the items left again (run folders for items made twice)
    made = sorted(p.parent.name for p in data.glob("*/run.json"))
    assert len(made) == 8 and len({i["run_dir"] for i in items}) == 8, (codes, made)
    assert [i["outcome"] for i in items] == ["completed"] * 8
    # busy while the queue owned its state (a resume that starts as the queue ends finds nothing left: 0)
    assert 4 in codes and set(codes) <= {0, 4}, codes


#: Ctrl-C to the queue the moment a run has ended (the item recorded, the state not yet written).
_CTRL_C_AFTER_A_RUN = signal_self("castrig.recipe.queue:_record", "SIGINT", after=True, once="CTRL_C_DONE", then="time.sleep(0.5)")


def test_ctrl_c_as_a_run_ends_writes_the_queues_state_and_says_how_to_go_on(tmp_path):
    """Ctrl-C to `castrig queue` just after a run ended: exit 130 and "interrupted" only — no
    summary, no `queue --resume` line, the state file left with the run that completed as
    running. Now the stop is written as any other (the completed run recorded, the rest not run)
    and the resume line is said; `queue --resume` runs the rest, not the completed run again."""
    from conftest import castrig, with_sitecustomize

    data = tmp_path / "runs"
    done = castrig("queue", str(DATA / "short.yaml"), "--repeat", "3", "--data", str(data),
                   **with_sitecustomize(tmp_path, _CTRL_C_AFTER_A_RUN))
    assert done.returncode == 130, done.stdout + done.stderr
    assert "go on with: castrig queue --resume" in " ".join(done.stderr.split()), done.stderr
    (state_path,) = data.glob("queue-*.json")
    state = json.loads(state_path.read_text())
    assert state["stopped"] == "interrupted by the operator", state
    assert [i["outcome"] for i in state["items"]] == ["completed", "not run", "not run"], state["items"]
    again = castrig("queue", "--resume", str(state_path))
    assert again.returncode == 0, again.stdout + again.stderr
    items = json.loads(state_path.read_text())["items"]
    assert [i["outcome"] for i in items] == ["completed"] * 3 and len(list(data.glob("*/run.json"))) == 3


def test_a_recipe_broken_while_the_queue_runs_is_refused_and_the_queue_goes_on(tmp_path):
    """A recipe of the queue edited into bad YAML while the queue runs the one before it (an
    outside tester): the queue ended there (exit 2, no summary), the next recipe never ran, and
    the state file kept the broken item 'running' with no folder, so `--resume` met the same
    error again and again. It is now recorded ``refused`` with the reason, before its rig is
    touched, and the queue goes on (exit 2: every run that started completed)."""
    from conftest import run_rows, start_castrig, wait_until

    data = tmp_path / "runs"
    recipes = [tmp_path / f"{x}.yaml" for x in "abc"]
    for r in recipes:
        shutil.copy(DATA / "short.yaml", r)
    proc = start_castrig("queue", *map(str, recipes), "--data", str(data))
    try:
        wait_until(lambda: [p for p in data.glob("*/run.json")] and run_rows(next(data.glob("*/run.json")).parent,
                                                                               "SELECT 1 FROM samples LIMIT 1"),
                   timeout_s=60, what="the first run under way")
        recipes[1].write_text(recipes[1].read_text().replace("name:", "name: [broken\nx:", 1))
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 2 and "Traceback" not in err, (proc.returncode, err[-2000:])
    (state_path,) = data.glob("queue-*.json")
    items = json.loads(state_path.read_text())["items"]
    assert [i["outcome"] for i in items] == ["completed", "refused", "completed"], items
    assert "b.yaml" in items[1]["reason"] and "not valid YAML" in items[1]["reason"], items[1]
    assert "queue summary" in out and "refused" in out, out
    said = " ".join(err.split())  # the reason, as it happened (it was in the state file only)
    assert "refused:" in said and "b.yaml" in said and "not valid YAML" in said and "the queue goes on" in said, said


def test_a_hand_edited_queue_state_is_named_on_resume(tmp_path, capsys):
    data = tmp_path / "runs"
    assert main(["queue", str(DATA / "short.yaml"), "--data", str(data)]) == 0
    (state_path,) = data.glob("queue-*.json")
    good = json.loads(state_path.read_text())
    for edit, says in ((lambda s: s.update(items=[5]), "items[1] is a JSON int, not an item"),
                       (lambda s: s["items"][0].pop("status"), "items[1].status = null (allowed: one of pending"),
                       (lambda s: s["items"][0].update(status="pending", seed="abc"), 'items[1].seed = "abc" (allowed: a whole number)'),
                       (lambda s: s["items"][0].pop("recipe"), "items[1].recipe = null (allowed: a recipe file")):
        state = json.loads(json.dumps(good))
        edit(state)
        state_path.write_text(json.dumps(state))
        capsys.readouterr()
        assert main(["queue", "--resume", str(state_path)]) == 2  # were AttributeError, KeyError, TypeError tracebacks
        assert says in " ".join(capsys.readouterr().err.split())


def test_a_queue_resume_finding_its_runs_run_json_not_a_file_stops_and_runs_nothing_again(tmp_path, queue_killed_in_its_first_run):
    """kill -9 while the first run ran, then its run.json replaced by a named pipe (whoever may
    write the data root): `castrig queue --resume` took the folder for one never made and cast the
    recipe again in a new folder — a second dispense on a real rig for a run that had one. The
    folder is a damaged run: the queue stops naming it and its run.json, exit 2, nothing run, and
    the item stays to resume once the folder is mended."""
    import os

    from conftest import castrig

    data = tmp_path / "runs"
    state_path = queue_killed_in_its_first_run
    (first,) = [p.parent for p in data.glob("*/run.json")]
    kept = first / "run.json.kept"
    (first / "run.json").rename(kept)
    os.mkfifo(first / "run.json")
    done = castrig("queue", "--resume", str(state_path), timeout_s=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stdout + done.stderr
    assert str(first / "run.json") in done.stderr.replace("\n", "") and "not a regular file" in done.stderr
    assert [p for p in data.iterdir() if p.is_dir()] == [first]  # nothing cast again
    state = json.loads(state_path.read_text())
    assert [i["status"] for i in state["items"]] == ["running", "pending"]
    (first / "run.json").unlink()
    kept.rename(first / "run.json")  # mended: the same --resume goes on
    done = castrig("queue", "--resume", str(state_path), timeout_s=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert [i["outcome"] for i in json.loads(state_path.read_text())["items"]] == ["completed", "completed"]


#: A sitecustomize: while the process makes a run folder (SqliteRunStore.create_run) it may
#: open no more files (``ulimit -n`` reached: every descriptor below the limit in use, as a
#: process that leaks them meets it); the limit is put back after.
NO_FILES_WHILE_MAKING_A_FOLDER = """
import os, resource
import castrig.store.sqlite_store as _s
_create = _s.SqliteRunStore.create_run
def _create_without_files(*a, **kw):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    free = os.open(os.devnull, os.O_RDONLY)
    os.close(free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (free, hard))  # the lowest free descriptor: none left below it
    try:
        return _create(*a, **kw)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
_s.SqliteRunStore.create_run = _create_without_files
"""


def test_a_run_that_could_not_make_its_folder_is_summarised_by_why_not_as_a_failed_report(tmp_path):
    """The queued run could not make its folder (no file could be opened as it was made: 'Too many
    open files', seeded) -- faulted, nothing ran. The summary's report column said "report failed:
    (no run folder): not a run folder (needs run.json and run.sqlite)": a report of a folder that
    never was, the reason only in the lines above. Now the queue stops there, as for a full disk
    (the next run would meet the same): the item pending again and naming no folder, the reason
    and `castrig queue --resume` said."""
    from conftest import castrig, with_sitecustomize

    data = tmp_path / "runs"
    done = castrig("queue", str(DATA / "short.yaml"), "--data", str(data), timeout_s=60, COLUMNS="300",
                   **with_sitecustomize(tmp_path, NO_FILES_WHILE_MAKING_A_FOLDER))
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stdout + done.stderr
    out, said = " ".join(done.stdout.split()), " ".join(done.stderr.split())
    assert "report failed" not in out, out
    (state_path,) = data.glob("queue-*.json")
    (item,) = json.loads(state_path.read_text())["items"]
    assert item["status"] == "pending" and item["run_dir"] is None, item
    assert "short.yaml not started: cannot create the run folder" in said and "Too many open files" in said, said
    assert "queue stopped" in said and f"castrig queue --resume {state_path}" in said, said


#: A sitecustomize: once the process has made the rig safe the first time (a resume's first duty,
#: control.safety.make_safe), no file may grow past ``$FSIZE_AFTER_SAFE`` bytes (``ulimit -f``: a
#: write beyond it fails, EFBIG, as on a full disk) -- room for the queue's state, not run.json.
FILE_LIMIT_AFTER_SAFE = """
import os, resource
import castrig.control.safety as _safety
_make_safe = _safety.make_safe
def _safe_then_limited(*a, **kw):
    report = _make_safe(*a, **kw)
    limit = int(os.environ["FSIZE_AFTER_SAFE"])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return report
_safety.make_safe = _safe_then_limited
"""


def test_a_queued_resume_that_cannot_record_keeps_its_item_running_and_stops_the_queue(tmp_path):
    """The queue killed -9 in its run's step (seeded: its process SIGKILLs itself there), then
    `castrig queue --resume` whose resume makes the rig safe and cannot record (no room: a file
    size limit from that moment, seeded). The resume goes no further (session.ResumeNotRecorded):
    the queue keeps the item 'running' with its folder, stops (exit 3) saying why and how to go on,
    the rig left safe; run.json as the crash left it. Once there is room the same --resume ends it."""
    from conftest import castrig, signal_hook, with_sitecustomize

    data = tmp_path / "runs"
    recipe = tmp_path / "purge.yaml"
    recipe.write_text("name: purge\nsteps:\n  - {type: purge, duration_s: 30}\n")
    killed = castrig("queue", str(recipe), "--data", str(data), timeout_s=60, AT_STEP="SIGKILL",
                     **with_sitecustomize(tmp_path, signal_hook("castrig.recipe.runner:Runner._step_purge", "AT_STEP")))
    assert killed.returncode == -9, killed.stderr[-2000:]
    (state_path,) = data.glob("queue-*.json")
    (run_dir,) = [p.parent for p in data.glob("*/run.json")]

    done = castrig("queue", "--resume", str(state_path), timeout_s=60, FSIZE_AFTER_SAFE="3000",
                   **with_sitecustomize(tmp_path, FILE_LIMIT_AFTER_SAFE))
    said = " ".join(done.stderr.split())
    assert done.returncode == 3 and "Traceback" not in said, (done.returncode, said[-3000:])
    assert f"cannot resume {run_dir}: disk full" in said and "went no further" in said, said
    assert "safe state verified" in " ".join(done.stdout.split()) + said
    assert f"castrig queue --resume {state_path}" in said, said
    state = json.loads(state_path.read_text())
    (item,) = state["items"]
    assert item["status"] == "running" and item["run_dir"] == str(run_dir), item
    assert state["stopped"].startswith(f"cannot resume {run_dir}: disk full"), state["stopped"]
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "running"

    again = castrig("queue", "--resume", str(state_path), timeout_s=60)  # room again
    assert again.returncode == 0, again.stderr[-2000:]
    assert [i["outcome"] for i in json.loads(state_path.read_text())["items"]] == ["completed"]


#: A sitecustomize: from the ``$REFUSE_AFTER``-th run folder on, the data root ``$DATA`` refuses
#: new folders as the OS does once its permissions changed under the queue (a lab share's ACL
#: reset, the folder handed to another user): ``mkdir`` there fails with EACCES; files already
#: there (the queue's state) are still written.
DATA_ROOT_REFUSES_FOLDERS = """
import errno, os
from pathlib import Path
_mkdir, _made = os.mkdir, []
def _mkdir_refused(path, *a, **kw):
    p = Path(path)
    if p.parent == Path(os.environ["DATA"]):
        _made.append(p)
        if len(_made) >= int(os.environ["REFUSE_AFTER"]):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
    return _mkdir(path, *a, **kw)
os.mkdir = _mkdir_refused
"""


def test_a_data_root_that_stops_taking_run_folders_stops_the_queue_with_the_rest_pending(tmp_path):
    """Queued runs whose data root refuses new folders once the queue has started (permission
    denied, not a full disk). The queue called each run 'refused' (as a broken recipe) and went on
    to the next, which failed the same way: exit 2, the night's recipes all spent, none left for
    --resume. Now it stops as for a full disk: the run that could not start and the rest stay
    pending, why and `castrig queue --resume` said, exit 3. (The first run meets it: a later one
    goes the same way, and a twin run before it is a second of CPU this test need not spend.)"""
    from conftest import castrig, with_sitecustomize

    data = tmp_path / "runs"
    done = castrig("queue", str(DATA / "short.yaml"), "--repeat", "3", "--data", str(data), timeout_s=60,
                   DATA=str(data), REFUSE_AFTER="1", **with_sitecustomize(tmp_path, DATA_ROOT_REFUSES_FOLDERS))
    said = " ".join(done.stderr.split())
    assert done.returncode == 3 and "Traceback" not in said, (done.returncode, said[-3000:])
    (state_path,) = data.glob("queue-*.json")
    state = json.loads(state_path.read_text())
    assert [i["status"] for i in state["items"]] == ["pending"] * 3, state["items"]
    assert "cannot make a run folder" in said and "Permission denied" in said and "queue stopped" in said, said
    assert f"castrig queue --resume {state_path}" in said and "the queue goes on" not in said, said


#: A sitecustomize: as the queue first writes its state (its recipes and profile checked, no run
#: started), the profile ``$PROFILE`` is saved with a typo -- an operator editing it meanwhile.
PROFILE_BROKEN_AS_THE_QUEUE_STARTS = """
import os
import castrig.recipe.queue as q
_save = q._save
def _save_then_break(*a, **kw):
    _save(*a, **kw)
    with open(os.environ["PROFILE"], "w") as f:
        f.write("devices: [oops\\n")
q._save = _save_then_break
"""


def test_a_profile_broken_while_the_queue_runs_stops_it_with_the_rest_pending(tmp_path):
    """The queue's profile saved with a typo after the queue checked it: every run was 'refused'
    naming the profile and the queue went on to the next, refused the same way (exit 2, every
    item ended 'refused', none left for --resume). Now the first one stops the queue: it and the
    rest pending, the profile's error and `castrig queue --resume` said, exit 2 (bad input)."""
    from conftest import castrig, with_sitecustomize

    data, profile = tmp_path / "runs", tmp_path / "rig.yaml"
    shutil.copy(ROOT / "hw_profiles" / "sim.yaml", profile)
    done = castrig("queue", str(DATA / "short.yaml"), "--repeat", "2", "--profile", str(profile), "--data", str(data),
                   timeout_s=60, PROFILE=str(profile), **with_sitecustomize(tmp_path, PROFILE_BROKEN_AS_THE_QUEUE_STARTS))
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "Traceback" not in said, (done.returncode, said[-3000:])
    (state_path,) = data.glob("queue-*.json")
    assert [i["status"] for i in json.loads(state_path.read_text())["items"]] == ["pending", "pending"]
    assert f"{profile} (line 2" in said and "not valid YAML" in said and "queue stopped" in said, said
    assert f"castrig queue --resume {state_path}" in said and "the queue goes on" not in said, said


def test_a_queued_resume_refused_for_its_set_points_keeps_its_run_folder_and_the_queue_goes_on(tmp_path, queue_killed_in_its_first_run):
    """kill -9 in the first run, whose recorded recipe (as an older castrig recorded it) holds a set
    point the twin's chamber cannot reach: `castrig resume` refuses it (exit 2, the rig left safe).
    The queue recorded that item refused with no run folder, losing track of a folder a person can
    still resume by hand; now the item keeps its folder and reason, and the queue goes on."""
    from conftest import castrig

    data = tmp_path / "runs"
    state_path = queue_killed_in_its_first_run
    (first,) = [p.parent for p in data.glob("*/run.json")]
    info = json.loads((first / "run.json").read_text())
    # the second evaporate, still to come: its band ends above where the chamber levels off (96.9)
    assert info["recipe"]["steps"][-2]["type"] == "evaporate"
    info["recipe"]["steps"][-2].update(setpoint_rh_pct=99.5, band_rh_pct=1.0)
    (first / "run.json").write_text(json.dumps(info))
    done = castrig("queue", "--resume", str(state_path), timeout_s=120, COLUMNS="400")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stdout + done.stderr
    state = json.loads(state_path.read_text())
    assert [i["outcome"] for i in state["items"]] == ["refused", "completed"], (state, done.stdout, done.stderr)
    assert state["items"][0]["run_dir"] == str(first) and "99.5" in state["items"][0]["reason"], state["items"][0]
    assert f"castrig resume {first}" in done.stderr.replace("\n", ""), done.stderr
    assert len(json.loads((first / "run.json").read_text())["parts"]) == 1  # not resumed: resumable later


def test_queue_resume_refuses_options_that_would_change_the_queue(tmp_path, capsys):
    """``castrig queue --resume Q --profile rig2.yaml`` (or --data, --operator, --seed, --repeat):
    the rest of the queue ran on the file's profile and data root, as the night's operator, with
    its seeds and no more runs, exit 0: the options were dropped without a word. Each is refused
    (exit 2, naming the option, the file and what it holds), nothing run, the state file as it was;
    the same profile, data root and operator spelled otherwise are the queue's own."""
    from conftest import castrig_main, refused

    data = tmp_path / "runs"
    data.mkdir()
    state_path = data / "queue-20261207-220000.json"
    state = {"profile": str(ROOT / "hw_profiles" / "sim.yaml"), "data": str(data), "operator": "night",
             "created_utc": "2026-12-07T22:00:00Z", "runs": [], "stopped": None,
             "items": [{"recipe": str(DATA / "short.yaml"), "repeat": 1, "seed": 1, "status": "pending", "run_dir": None,
                        "outcome": None}]}
    state_path.write_text(json.dumps(state))
    other = tmp_path / "rig2.yaml"
    shutil.copy(ROOT / "hw_profiles" / "sim.yaml", other)
    for option, value, holds in (("--profile", other, str(ROOT / "hw_profiles" / "sim.yaml")),
                                 ("--data", tmp_path, f"the data root {data}"), ("--operator", "morning", "'night'"),
                                 ("--seed", "9", "a seed for each of its runs"), ("--repeat", "3", "the runs the queue")):
        done = castrig_main(capsys, "queue", "--resume", state_path, option, value)
        said = " ".join(done.stderr.split())
        assert done.returncode == 2, f"queue --resume {option} {value}: exit {done.returncode}, ran: {done.stdout[-300:]}"
        assert f"{option} {value} would change the queue" in said and str(state_path) in said and holds in said, said
        assert "nothing run" in said and "Traceback" not in said, said
    assert json.loads(state_path.read_text()) == state and [p.name for p in data.iterdir()] == [state_path.name]
    # the queue's own, spelled otherwise, is not a change
    from castrig.recipe.queue_resume_options import refuse_queue_changes_on_resume

    refuse_queue_changes_on_resume(state, state_path, repeat=1, profile=ROOT / "hw_profiles" / ".." / "hw_profiles" / "sim.yaml",
                                   data=Path(f"{data}/"), seed=None, operator="night")
    # a state file whose profile cannot be loaded is named with it ("error: .: not a regular file" for "")
    state_path.write_text(json.dumps({**state, "profile": ""}))
    refused(castrig_main(capsys, "queue", "--resume", state_path), f"--resume {state_path}: profile = \"\", the queue's profile")
