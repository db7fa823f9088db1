"""Crash (kill -9) and resume: nothing lost, nothing duplicated, no cast repeated; a crash ruins
at most the membrane that was forming (recorded lost), never the run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from castrig.recipe.model import Recipe
from castrig.recipe.session import plan_resume
from castrig.store import JournalEntry
from conftest import DIR_FD_PATH, campaign, castrig_main, signal_self

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def _recipe(*types: str) -> Recipe:
    steps = {
        "purge": {"type": "purge", "duration_s": 10},
        "condition": {"type": "condition", "setpoint_rh_pct": 60},
        "prewet": {"type": "prewet", "volume_ml": 0.2, "rate_ml_min": 1},
        "cast": {"type": "cast", "volume_ml": 0.1, "rate_ml_min": 0.5},
        "evaporate": {"type": "evaporate", "setpoint_rh_pct": 60, "duration_s": 100},
        "capture": {"type": "capture"},
        "analyse": {"type": "analyse"},
        "wait": {"type": "wait", "duration_s": 10},
    }
    return Recipe.model_validate({"name": "r", "steps": [steps[t] for t in types]})


def _journal(*entries: tuple[int, str]) -> list[JournalEntry]:
    return [JournalEntry(i, float(i), step, state) for i, (step, state) in enumerate(entries)]


R = ("purge", "condition", "prewet", "cast", "evaporate", "capture", "analyse", "wait")


@pytest.mark.parametrize(
    "journal, expected",
    [
        ([], (0, None)),
        ([(0, "started")], (0, None)),  # a purge is repeated
        ([(0, "started"), (0, "done"), (1, "started")], (1, None)),
        # the pre-wet, the cast or the evaporation interrupted: the membrane is lost, the run goes on
        ([(0, "started"), (0, "done"), (1, "started"), (1, "done"), (2, "started")], (7, "pre-wetted support")),
        ([(0, "started"), (0, "done"), (1, "started"), (1, "done"), (2, "started"), (2, "done"), (3, "started")], (7, "cast film")),
        ([*[(i, s) for i in range(4) for s in ("started", "done")], (4, "started")], (7, "step 5 (evaporate)")),
        ([*[(i, s) for i in range(5) for s in ("started", "done")]], (5, None)),  # film made: capture
        ([*[(i, s) for i in range(5) for s in ("started", "done")], (5, "started")], (5, None)),
        ([*[(i, s) for i in range(8) for s in ("started", "done")]], (8, None)),
    ],
)
def test_plan_resume(journal, expected):
    plan = plan_resume(_recipe(*R), _journal(*journal))
    assert plan.first == expected[0]
    if expected[1] is None:
        assert plan.lost == []
    else:
        (lost,) = plan.lost
        assert lost.plan.k == 1 and expected[1] in lost.reason
        assert plan.skip == {j for j in (2, 3, 4, 5, 6) if (j, "done") not in journal}


def _run_until(recipe: Path, data: Path, ready, sig: int = signal.SIGKILL) -> Path:
    proc = subprocess.Popen([sys.executable, "-m", "castrig", "run", str(recipe), "--data", str(data), "-q"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 60:
            for db_path in data.glob("*/run.sqlite"):
                try:
                    with closing(sqlite3.connect(db_path)) as db:
                        hit = ready(db)
                    if hit:
                        os.kill(proc.pid, sig)
                        proc.wait(timeout=60)
                        return db_path.parent
                except sqlite3.Error:
                    pass
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    raise AssertionError("the run never reached the crash point")


def _long_wait_half_an_hour(tmp_path: Path) -> Path:
    """long_wait.yaml with a 30-min hold instead of 8 h: the crash point (500 samples) is ~230 s
    of run clock, inside the hold; what is left of it a resume runs to the end (~2.3 s less CPU)."""
    from conftest import recipe_variant

    return recipe_variant(DATA / "long_wait.yaml", tmp_path / "recipes", ("duration_s: 28800", "duration_s: 1800"))


def _rows_where(run_dir: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(run_dir / "run.sqlite")) as db:
        return db.execute(sql).fetchall()


def _rows(run_dir: Path, table: str) -> list[tuple]:
    with closing(sqlite3.connect(run_dir / "run.sqlite")) as db:  # closed now, not when the GC gets to it
        return db.execute(f"select * from {table} order by rowid").fetchall()


@pytest.mark.slow  # ~13 s on CI; CI keeps tests/reliability/test_crash_resume.py::test_kill_and_resume_loses_nothing_repeats_no_cast
def test_kill_9_then_resume_finishes_with_nothing_lost(tmp_path, capsys):
    run_dir = _run_until(DATA / "long_wait.yaml", tmp_path, lambda db: db.execute("select count(*) from samples").fetchone()[0] > 500)
    before = _rows(run_dir, "samples")
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "running"  # as the crash left it
    done = subprocess.run([sys.executable, "-m", "castrig", "resume", str(run_dir), "-q"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    after = _rows(run_dir, "samples")
    assert after[: len(before)] == before  # nothing written before the crash changed or vanished
    keys = [(t, ch) for t, ch, _ in after]
    assert len(keys) == len(set(keys))  # nothing duplicated
    assert max(t for t, _ in keys[len(before):]) > 28800  # the 8-hour hold was completed
    assert min(t for t, _ in keys[len(before):]) > max(t for t, _ in keys[: len(before)])
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "completed"
    events = [(row[2], row[4]) for row in _rows(run_dir, "events")]
    assert any(k == "resume" for k, _ in events)
    # the wait continued for what was left of it instead of starting again
    resumed_wait = [m for k, m in events if k == "resume"][0]
    assert "step 2/2 (wait)" in resumed_wait  # step numbers are 1-based, as in the terminal and the report
    # handed over as one file by the resume too: a reader leaves no -wal/-shm in it
    done = castrig_main(capsys, "report", run_dir, "--out", tmp_path / "r.html")  # (in-process: its connections closed too)
    assert done.returncode == 0, done.stderr
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith("run.sqlite-")]


def test_crash_during_evaporation_loses_the_membrane_not_the_run(tmp_path):
    def evaporating(db):
        return db.execute("select count(*) from journal where step_index=3 and state='started'").fetchone()[0] > 0

    run_dir = _run_until(DATA / "long_evaporate.yaml", tmp_path, evaporating)
    (run_dir / ".run.json.k9mid0wr.tmp").write_text('{"run_id": ')  # what a kill -9 mid-write of run.json leaves
    done = subprocess.run([sys.executable, "-m", "castrig", "resume", str(run_dir), "-q"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not list(run_dir.glob(".*.tmp"))  # removed by the resume, which owns the folder (it stayed for ever)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "completed" and f"membrane {run_dir.name}-m1 lost" in info["outcome_reason"]
    assert "dried without RH control" in info["outcome_reason"] and "step 4 (evaporate)" in info["outcome_reason"]
    assert "lost: m1" in done.stdout  # the final line says what was made and what was lost
    db = sqlite3.connect(run_dir / "run.sqlite")
    casts = db.execute("select count(*) from events where kind='pump' and source='caster' and message like '%dispensing%'").fetchone()[0]
    assert casts == 1  # the cast was not repeated
    safe = json.loads(db.execute("select data_json from events where kind='safe_state' order by id desc").fetchone()[0])
    assert safe["safe"] is True


def test_a_resume_brings_the_rh_back_before_it_casts_the_next_membrane(tmp_path):
    """kill -9 while membrane 1 dries; the resume records it lost and goes on with membrane 2's
    pre-wet and cast. The rig had been left in the safe state (dry purge) and the resume cast at
    ~45 %RH for 70, 36 s out of band: one crash spoiled two membranes. Now the recipe's condition
    step is run again first: the cast starts inside its band, membrane 2 is made under control."""
    def evaporating(db):
        return db.execute("select count(*) from journal where step_index=4 and state='started'").fetchone()[0] > 0

    run_dir = _run_until(DATA / "two_membranes_long_evaporate.yaml", tmp_path, evaporating)
    done = subprocess.run([sys.executable, "-m", "castrig", "resume", str(run_dir), "-q"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "lost: m1" in done.stdout, done.stdout
    with closing(sqlite3.connect(run_dir / "run.sqlite")) as db:
        (t_resume,) = db.execute("select t_s from events where kind='resume' order by id desc limit 1").fetchone()
        recondition = [r[0] for r in db.execute("select message from events where kind='recondition'")]
        (t_cast,) = db.execute("select t_s from journal where step_index=6 and state='started' and t_s >= ?", (t_resume,)).fetchone()
        rh_at_cast = db.execute("select value from samples where channel='rh_near_pct' and t_s <= ? order by t_s desc limit 1",
                                (t_cast,)).fetchone()[0]
    assert len(recondition) == 1 and "step 2 (condition)" in recondition[0] and "step 6 (prewet)" in recondition[0], recondition
    assert abs(rh_at_cast - 70.0) <= 1.5, rh_at_cast  # was ~46 %RH
    (status, process), = _rows_where(run_dir, "select status, process_json from membranes where k = 2")
    evaporation = json.loads(process)["evaporation"]
    assert status == "made" and evaporation["out_of_band_s"] == 0.0, (status, evaporation)  # was 36 s out of band


def test_a_resume_after_a_crash_in_the_capture_or_analysis_brings_the_rh_back_before_the_next_cast(tmp_path):
    """kill -9 while m1 (made) is captured or analysed: the resume repeats them, then pre-wetted
    and cast m2 at once -- the RH recondition was only done where the resume started at a pre-wet,
    and the capture and analysis took minutes in the dry purge the crash left: m2 was cast at
    ~45-52 %RH for 70, 27 s out of band, its pores 1.9 µm instead of ~3.3 (an outside tester).
    The recipe's condition step is run again right before m2's pre-wet."""
    def judging_m1(db):
        return db.execute("select count(*) from journal where step_index in (4, 5) and state='started'").fetchone()[0] > 0 \
            and db.execute("select count(*) from journal where step_index=6").fetchone()[0] == 0

    # one field of one view, not four of three: the crash point and the recondition are the same,
    # the capture and analysis of 12 micrographs per membrane (~3 s of CPU) are not what is checked
    from conftest import recipe_variant

    recipe = recipe_variant(DATA / "two_membranes_judged.yaml", tmp_path / "recipes",
                            ("views: [reflected, transmitted, section], fields: 4", "views: [reflected], fields: 1"))
    run_dir = _run_until(recipe, tmp_path / "runs", judging_m1)
    done = subprocess.run([sys.executable, "-m", "castrig", "resume", str(run_dir), "-q"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    with closing(sqlite3.connect(run_dir / "run.sqlite")) as db:
        (t_resume,) = db.execute("select t_s from events where kind='resume' order by id desc limit 1").fetchone()
        recondition = [r[0] for r in db.execute("select message from events where kind='recondition'")]
        (t_prewet,) = db.execute("select t_s from journal where step_index=6 and state='started'").fetchone()
        rh_at_prewet = db.execute("select value from samples where channel='rh_near_pct' and t_s <= ? order by t_s desc limit 1",
                                  (t_prewet,)).fetchone()[0]
    assert t_prewet > t_resume
    assert len(recondition) == 1 and "step 1 (condition)" in recondition[0] and "step 7 (prewet)" in recondition[0], recondition
    assert abs(rh_at_prewet - 70.0) <= 1.5, rh_at_prewet  # was ~45 %RH
    (status, process), = _rows_where(run_dir, "select status, process_json from membranes where k = 2")
    assert json.loads(process)["evaporation"]["out_of_band_s"] == 0.0, process  # was 27 s out of band


def test_a_cast_cut_short_by_a_crash_is_recorded_with_what_its_pump_counted(tmp_path, capsys):
    """kill -9 mid-cast: the lost membrane's record said the cast's volume was null beside the
    run's own samples of the caster's count (0.48 mL, an outside tester). It keeps the last count
    the dead process sampled as ``volume_at_least_ml`` (the cast is still unfinished, its volume
    in all unknown: the pump may have gone on)."""
    recipe = tmp_path / "slow-cast.yaml"
    recipe.write_text("name: slow-cast\nsteps:\n  - {type: prewet, volume_ml: 0.1, rate_ml_min: 1.0}\n"
                      "  - {type: cast, volume_ml: 0.5, rate_ml_min: 0.002}\n  - {type: purge, duration_s: 10}\n")
    # (0.002 mL/min: killed past 0.05 mL after ~25 min of run clock, not 100; the cast lasts 250)

    def casting(db):
        return db.execute("select count(*) from samples where channel='caster_infused_ml' and value > 0.05").fetchone()[0] > 0

    run_dir = _run_until(recipe, tmp_path / "runs", casting)
    (sampled,) = _rows_where(run_dir, "select max(value) from samples where channel='caster_infused_ml'")[0]
    done = subprocess.run([sys.executable, "-m", "castrig", "resume", str(run_dir), "-q"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    (status, process), = _rows_where(run_dir, "select status, process_json from membranes where k = 1")
    cast = json.loads(process)["dispensed"]["cast"]
    assert status == "lost" and cast["finished"] is False and cast["volume_ml"] is None, cast
    assert cast["volume_at_least_ml"] == sampled and 0.05 < sampled < 0.5, (cast, sampled)
    page = castrig_main(capsys, "report", run_dir, "--out", tmp_path / "r.html")
    assert page.returncode == 0, page.stderr
    assert f"cast at least {sampled:g} (cut short) mL" in (tmp_path / "r.html").read_text()


def test_an_aborted_run_is_resumed_only_when_asked_for(tmp_path, capsys):
    """SIGTERM aborts the run (the operator's decision, or the service manager's). A plain
    `castrig resume` started the rig again and rewrote the run 'completed'; it now refuses
    (exit 2, nothing written) and names --after-abort, which continues it."""
    run_dir = _run_until(_long_wait_half_an_hour(tmp_path), tmp_path / "runs",
                         lambda db: db.execute("select count(*) from samples").fetchone()[0] > 500, sig=signal.SIGTERM)
    info = (run_dir / "run.json").read_text()
    assert json.loads(info)["outcome"] == "aborted"
    rows = _rows(run_dir, "events")
    done = castrig_main(capsys, "resume", run_dir, "-q")
    assert done.returncode == 2 and "--after-abort" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert (run_dir / "run.json").read_text() == info and _rows(run_dir, "events") == rows
    done = subprocess.run([sys.executable, "-m", "castrig", "resume", str(run_dir), "-q", "--after-abort"], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "completed"


def test_resume_of_a_completed_run_is_bad_input(tmp_path, capsys):
    from castrig.cli.main import main

    data = tmp_path / "runs"
    assert main(["run", str(DATA / "long_wait.yaml").replace("long_wait", "short"), "--data", str(data), "-q"]) == 0
    (run_dir,) = [p for p in data.iterdir() if p.is_dir()]
    assert main(["resume", str(run_dir)]) == 2
    assert "already completed" in capsys.readouterr().err
    assert main(["resume", str(tmp_path)]) == 2


# CI: the pause, as the operator met it; the stale abort (-m slow here) is discarded in CI by
# test_a_command_from_a_sender_whose_clock_runs_ahead_is_discarded_on_resume_too, on a crashed copy
@pytest.mark.parametrize("action", campaign(["pause", "abort"], ci={0}))
def test_a_command_the_crashed_runner_never_read_is_discarded_on_resume(tmp_path, reap, action):
    """The runner hung (SIGSTOP: a stalled process) while an operator sent it a pause or abort —
    `castrig pause|abort` said "did not answer… the command stays in its control channel" — then
    it was killed -9. Hours later `castrig resume`: that command is discarded (answered refused,
    noted as an event), not applied to the resumed run the operator started on purpose. Before,
    the resume paused (or aborted) at its first control period.

    The command is dropped into the channel as `castrig pause|abort` does (``send_command``), not
    through the CLI, whose 30 s wait for a stopped runner's answer would be all this test's time."""
    from conftest import run_rows, start_castrig, wait_until

    from castrig.store.commands import answer_of, send_command

    data = tmp_path / "runs"
    proc = reap(start_castrig("run", str(DATA / "long_wait.yaml"), "--data", str(data), "-q"))
    run_dir = wait_until(lambda: next((p.parent for p in data.glob("*/run.sqlite")
                                       if (run_rows(p.parent, "select count(*) from samples") or [(0,)])[0][0] > 2), None),
                         what="the run under way")
    os.kill(proc.pid, signal.SIGSTOP)  # hung
    cmd = send_command(run_dir, action, "cli:night-shift")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert answer_of(run_dir, cmd) is None  # never read

    resumed = reap(start_castrig("resume", str(run_dir), "-q"))
    answer = wait_until(lambda: answer_of(run_dir, cmd), timeout_s=30, what="the stale command answered")
    assert answer["accepted"] is False and "discarded" in answer["message"], answer
    n = run_rows(run_dir, "select count(*) from samples")[0][0]
    wait_until(lambda: run_rows(run_dir, "select count(*) from samples")[0][0] > n + 3, what="the resumed run going on")
    kinds = [k for (k,) in run_rows(run_dir, "select kind from events where id > (select max(id) from events where kind='resume')")]
    assert "pause" not in kinds and "run_end" not in kinds, kinds
    (note,) = [json.loads(d) for (d,) in run_rows(run_dir, "select data_json from events where kind='command'")]
    assert note["command"] == action and note["discarded"], note
    resumed.send_signal(signal.SIGTERM)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 3, out + err
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "aborted" and "SIGTERM" in info["outcome_reason"], info  # not the stale abort


#: A sitecustomize: the runner is killed (SIGKILL) the moment it has taken a command out of
#: control/ (renamed it into control/taken/), before it applies or answers it.
KILL_AT_TAKE = signal_self("os:rename", "SIGKILL", after=True, prelude=DIR_FD_PATH,
                           when='_at(args[1], kw.get("dst_dir_fd")).parent.name == "taken" '
                                'and _at(args[0], kw.get("src_dir_fd")).parent.name == "control"')


def test_a_command_the_crashed_runner_took_but_never_answered_is_discarded_on_resume(tmp_path, reap):
    """The runner died (kill -9) holding a pause it had taken out of control/ and not answered:
    the command is neither pending nor answered. `castrig resume` answers it refused, saying the
    crashed part took it, notes it as an event, and goes on unpaused -- not a sender left waiting
    for an answer that never comes, not a pause applied to the resumed run."""
    from conftest import run_rows, start_castrig, wait_until, with_sitecustomize

    from castrig.store.commands import answer_of, send_command

    data = tmp_path / "runs"
    proc = reap(start_castrig("run", str(DATA / "long_wait.yaml"), "--data", str(data), "-q",
                              **with_sitecustomize(tmp_path, KILL_AT_TAKE)))
    run_dir = wait_until(lambda: next((p.parent for p in data.glob("*/run.sqlite")
                                       if (run_rows(p.parent, "select count(*) from samples") or [(0,)])[0][0] > 2), None),
                         what="the run under way")
    cmd = send_command(run_dir, "pause", "cli:night-shift")
    assert proc.wait(timeout=30) == -signal.SIGKILL
    assert not (run_dir / "control" / cmd.name).exists() and answer_of(run_dir, cmd) is None  # taken, never answered

    resumed = reap(start_castrig("resume", str(run_dir), "-q"))
    answer = wait_until(lambda: answer_of(run_dir, cmd), timeout_s=30, what="the taken command answered")
    assert answer["accepted"] is False and "part of the run that crashed" in answer["message"], answer
    assert not list((run_dir / "control" / "taken").iterdir())
    n = run_rows(run_dir, "select count(*) from samples")[0][0]
    wait_until(lambda: run_rows(run_dir, "select count(*) from samples")[0][0] > n + 3, what="the resumed run going on")
    kinds = [k for (k,) in run_rows(run_dir, "select kind from events where id > (select max(id) from events where kind='resume')")]
    assert "pause" not in kinds, kinds
    (note,) = [json.loads(d) for (d,) in run_rows(run_dir, "select data_json from events where kind='command'")]
    assert note["command"] == "pause" and note["discarded"], note
    resumed.send_signal(signal.SIGTERM)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 3, out + err


@pytest.fixture(scope="module")
def crashed_day_wait(tmp_path_factory) -> Path:
    """tests/data/day_wait.yaml killed -9 as its day-long wait (step 1) starts: made once for this
    module, each test resumes its own copy (:func:`_copy_of`; three tests crashed it the same way)."""
    from conftest import run_then_kill_9, step_running

    return run_then_kill_9(DATA / "day_wait.yaml", tmp_path_factory.mktemp("day-wait") / "runs", step_running(1))


def _copy_of(run_dir: Path, data: Path) -> Path:
    """A copy of a crashed run's folder under the data root ``data`` (its name kept)."""
    import shutil

    return Path(shutil.copytree(run_dir, data / run_dir.name))


def test_a_command_file_another_tool_left_before_the_crash_is_discarded_on_resume(tmp_path, reap, capsys, crashed_day_wait):
    """A lab script (cron, a shell one-liner) dropped files into the crashed run's control/ under
    names of its own, not ``send_command``'s stamp, one of them cut short: their written time is
    the file's age, so `castrig resume` discards both (answered refused, noted as events) and the
    resumed run goes on unpaused, where a stray pause would hold it for nobody."""
    from conftest import STOP_AT_ANSWER, castrig_main, run_rows, run_status, start_castrig, wait_until, with_sitecustomize

    data = tmp_path / "runs"
    run_dir = _copy_of(crashed_day_wait, data)
    control = run_dir / "control"
    (control / "pause-from-cron.json").write_text('{"action": "pause", "by": "cron"}')
    (control / "cut-short.json").write_text('{"action": "ab')
    # the resume stops itself (SIGSTOP) as the last answer is published: a reader who sees the
    # answers finds the events (they were written after the answers, and a loaded CI run read
    # none), and a crash there loses none
    resumed = reap(start_castrig("resume", str(run_dir), "-q", STOP_AT_ANSWER="pause-from-cron.json",
                                 **with_sitecustomize(tmp_path, STOP_AT_ANSWER)))
    answers = wait_until(lambda: all((control / "done" / n).is_file() for n in ("pause-from-cron.json", "cut-short.json"))
                         and [json.loads(p.read_text()) for p in sorted((control / "done").glob("*.json"))],
                         timeout_s=30, what="both files answered")
    assert [a["accepted"] for a in answers] == [False, False] and all("discarded" in a["message"] for a in answers), answers
    notes = [m for (m,) in run_rows(run_dir, "select message from events where kind='command'")]
    assert any(m.startswith("pause requested by cron") and "discarded" in m for m in notes), notes
    assert any(m.startswith("unreadable command") and "discarded" in m for m in notes), notes
    resumed.send_signal(signal.SIGCONT)
    wait_until(lambda: run_status(run_dir).get("state") == "running" and run_status(run_dir).get("step_index") == 1,
               timeout_s=30, what="the resumed run going on")
    assert castrig_main(capsys, "abort", str(run_dir)).returncode == 0
    assert resumed.wait(timeout=60) == 3


def test_resuming_a_run_folder_written_before_the_membranes_table(tmp_path, reap, capsys, crashed_day_wait):
    """A run that crashed under a castrig from before membranes were recorded has no membranes
    table in its run.sqlite: `castrig resume` adds the table at its first write (the record is
    otherwise append-only), goes on, and ends as asked — the samples from before kept."""
    from conftest import castrig_main, run_rows, run_status, start_castrig, wait_until

    data = tmp_path / "runs"
    run_dir = _copy_of(crashed_day_wait, data)
    with closing(sqlite3.connect(run_dir / "run.sqlite")) as db:
        db.execute("DROP TABLE membranes")
        db.commit()
        before = db.execute("select count(*) from samples").fetchone()[0]
    resumed = reap(start_castrig("resume", str(run_dir), "-q"))
    wait_until(lambda: run_status(run_dir).get("state") == "running"
               and run_rows(run_dir, "select count(*) from samples")[0][0] > before + 3, timeout_s=30, what="the resumed run")
    assert castrig_main(capsys, "abort", str(run_dir)).returncode == 0
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 3 and "Traceback" not in err, out + err
    assert run_rows(run_dir, "select count(*) from membranes") == [(0,)]
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "aborted"
    runs = castrig_main(capsys, "runs", "--data", str(data))
    assert runs.returncode == 0 and "aborted" in runs.stdout, runs.stdout + runs.stderr


#: A sitecustomize: Ctrl-C to the process the moment a resume has opened its rig.
CTRL_C_AFTER_OPEN = signal_self("castrig.recipe.session:_open_rig", "SIGINT", after=True, when='"resume" in kw.get("purpose", "")')


def test_ctrl_c_as_a_resume_opens_the_rig_makes_it_safe_before_stopping(tmp_path):
    """Ctrl-C in a resume's first seconds raised out of anywhere: "interrupted", exit 130, the wet
    MFC still at 2 slpm from the crashed run and no safe-state attempt on record. Then, once it
    was held: the resume stopped saying nothing after the Ctrl-C's line -- not the rig's state,
    not how to go on, not "interrupted" (a silent 130). Now all three."""
    from conftest import castrig, with_sitecustomize

    run_dir = _run_until(_long_wait_half_an_hour(tmp_path), tmp_path / "runs",
                         lambda db: db.execute("select count(*) from samples").fetchone()[0] > 500)
    done = castrig("resume", str(run_dir), "-q", **with_sitecustomize(tmp_path, CTRL_C_AFTER_OPEN))
    assert done.returncode == 130 and "the rig is being made safe first" in done.stderr, done.stdout + done.stderr
    safe = [row[4] for row in _rows(run_dir, "events") if row[2] == "safe_state"]
    assert safe and safe[-1].startswith("resume: safe state verified"), safe
    assert "Traceback" not in done.stderr
    said = " ".join(done.stderr.split())
    assert f"safe state verified: caster.stopped, dry_mfc.purge, water_pump.stopped, wet_mfc.off; the resume stopped there " \
           f"(castrig resume {run_dir} goes on)" in said and said.endswith("interrupted"), said
    again = castrig("resume", str(run_dir), "-q")  # and the run can still be resumed
    assert again.returncode == 0, again.stdout + again.stderr


#: A sitecustomize: the run's process dies (SIGKILL) as its runner begins to make the rig safe.
DIE_MAKING_SAFE = signal_self("castrig.recipe.runner:make_safe", "SIGKILL")


HUMID_RECIPE = ("name: humid\nsteps:\n  - {type: condition, setpoint_rh_pct: 80, band_rh_pct: 1.5, "
                "stable_for_s: 10, timeout_s: 3600}\n")


def _wet_setpoint_slpm(address: str) -> float:
    """The wet MFC's set point, asked over its own protocol (Alicat ASCII) at a served address;
    asked again for up to 10 s while the port is still another's (`sim serve` takes one client a
    port: a connection of a process that just ended, through a proxy, closes after it)."""
    from castrig.clock import WallClock
    from castrig.devices.alicat import AlicatMFC
    from castrig.errors import CastrigError
    from castrig.links.serial_link import SerialLink
    from conftest import wait_until

    def ask() -> tuple[float] | None:
        link = SerialLink(address, timeout_s=1.0)
        try:
            return (AlicatMFC(link, name="wet_mfc", unit_id="B", full_scale_slpm=5.0, clock=WallClock()).setpoint_slpm(),)
        except CastrigError:
            return None
        finally:
            link.close()

    return wait_until(ask, timeout_s=10, what=f"the wet MFC at {address} answering")[0]


def _humid_run_on_served_rig(tmp_path: Path, served, control: dict | None = None, **env: str):
    """``castrig run`` of a humid condition step on the rig `sim serve` serves (its devices outlive
    the run's process), and its run folder once the wet air is on: (process, run folder).
    ``control``: settings of the profile's ``control`` changed."""
    import yaml

    from conftest import run_rows, start_castrig, wait_until

    recipe = tmp_path / "humid.yaml"
    recipe.write_text(HUMID_RECIPE)
    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim-serial.yaml").read_text())
    for role, cfg in profile["devices"].items():
        cfg["link"]["url"] = served.addresses[role]
    profile["control"].update(control or {})
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(profile))
    data = tmp_path / "runs"
    proc = start_castrig("run", str(recipe), "--profile", str(tmp_path / "rig.yaml"), "--data", str(data), "-q", **env)

    def humidifying() -> Path | None:
        for d in data.glob("*/run.sqlite"):
            if (run_rows(d.parent, "select count(*) from samples where channel='wet_setpoint_slpm' and value > 0.2")
                    or [(0,)])[0][0]:  # ([] while its tables are being made)
                return d.parent
        return None

    try:
        return proc, wait_until(humidifying, timeout_s=60, what="wet air on")
    except BaseException:
        proc.kill()
        proc.communicate()
        raise


def _finished_by_a_plain_resume(run_dir: Path, address: str, tmp_path: Path, capsys) -> None:
    """A plain resume makes the rig safe, records the run aborted (exit 3), goes no further. As it
    closes the rig after that, still holding the folder, readers say aborted (they said "running ·
    being resumed": it records no part of its own)."""
    from conftest import STOP_AT_CLOSE, castrig_main, start_castrig, stopped, wait_until, with_sitecustomize

    resume = start_castrig("resume", str(run_dir), "-q", **with_sitecustomize(tmp_path, STOP_AT_CLOSE))
    try:
        wait_until(lambda: stopped(resume.pid), timeout_s=60, what="the resume closing the rig")
        status = json.loads(castrig_main(capsys, "status", str(run_dir), "--json").stdout)
        assert (status["status"], status["state"], status["owner"]) == ("aborted", None, None), status
    finally:
        resume.send_signal(signal.SIGCONT)
        out, err = resume.communicate(timeout=60)
    said = " ".join((out + err).split())
    assert resume.returncode == 3 and "Traceback" not in said, said
    assert "died making the rig safe" in said and "--after-abort" in said and "safe state verified" in said, said
    assert _wet_setpoint_slpm(address) == 0.0
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "aborted" and "SIGTERM" in info["outcome_reason"], info
    again = castrig_main(capsys, "resume", str(run_dir), "-q")  # now recorded aborted: refused, as any abort
    assert again.returncode == 2 and "--after-abort" in again.stderr, again.stderr


def test_an_abort_whose_process_died_making_the_rig_safe_is_finished_by_a_plain_resume(tmp_path, sim_serve, capsys):
    """SIGTERM (an accepted abort), then the process died while it made the rig safe (here: at
    once, a sitecustomize; an outside tester hit it 20 ms into the make-safe). On a rig whose
    devices outlive the process (`castrig sim serve` over TCP) the wet MFC stayed on; `castrig
    resume` refused (exit 2, "--after-abort") without sending a byte, `castrig abort` found
    nothing running, and only `resume --after-abort` reached the rig -- going on with the recipe.
    A plain resume now makes the rig safe, records the run aborted (exit 3), and goes no further;
    `--after-abort` still continues it."""
    from conftest import with_sitecustomize

    with sim_serve("--tcp", "0") as served:
        proc, run_dir = _humid_run_on_served_rig(tmp_path, served, **with_sitecustomize(tmp_path, DIE_MAKING_SAFE))
        try:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        assert json.loads((run_dir / "run.json").read_text())["outcome"] == "running"  # as the death left it
        assert _wet_setpoint_slpm(served.addresses["wet_mfc"]) > 0.2  # wet air on, nobody driving the rig
        _finished_by_a_plain_resume(run_dir, served.addresses["wet_mfc"], tmp_path, capsys)
    # (the devices gone with sim serve: --after-abort is not driven here; test_an_aborted_run_is_resumed_only_when_asked_for)


def test_an_abort_whose_process_died_retrying_the_safe_state_is_finished_by_a_plain_resume(tmp_path, sim_serve, capsys):
    """SIGTERM while the MFCs' line was dead (every byte lost: a cable out, a serial server
    frozen), so the safe state could not be verified and the run kept trying
    (``unsafe_retrying``); then the process died (kill -9: the OOM killer, a reboot of the PC).
    The line comes back, the wet air still on: a plain resume makes the rig safe and ends the run
    aborted, as after a death in the first make-safe."""
    from urllib.parse import urlparse

    from conftest import Proxy, run_status, wait_until

    with sim_serve("--tcp", "0") as served:
        mfc = served.addresses["wet_mfc"]
        host, port = urlparse(mfc).hostname, urlparse(mfc).port
        proxy = Proxy((host, port))  # the MFCs (one RS-485 bus: wet and dry) through a line the test can kill
        line = f"socket://127.0.0.1:{proxy.port}"
        served.addresses.update({role: line for role, a in served.addresses.items() if a == mfc})
        # (the first make-safe retries the dead line for safe_state_retry_s before the tries of
        # unsafe_retrying: 3 s here, not the shipped 15)
        proc, run_dir = _humid_run_on_served_rig(tmp_path, served, control={"safe_state_retry_s": 3})
        try:
            proxy.drop()
            proc.send_signal(signal.SIGTERM)
            seen = wait_until(lambda: (st := run_status(run_dir)).get("state") == "unsafe_retrying" and st, timeout_s=120,
                              what="the safe state retried")
            assert "NOT verified (wet_mfc" in seen["detail"], seen
            proc.kill()
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            proxy.restore()
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        try:
            assert _wet_setpoint_slpm(mfc) > 0.2  # wet air on, nobody driving the rig
            _finished_by_a_plain_resume(run_dir, mfc, tmp_path, capsys)
        finally:
            proxy.close()


def test_a_command_from_a_sender_whose_clock_runs_ahead_is_discarded_on_resume_too(tmp_path, reap, crashed_day_wait):
    """The name of a command file carries its sender's clock: one two minutes ahead (a web page
    on another host) named an abort sent to the crashed part "after" the resume started, and the
    resumed run aborted at once; the next resume needed --after-abort."""
    from conftest import run_rows, start_castrig, wait_until

    from castrig.store.commands import answer_of, send_command

    run_dir = _copy_of(crashed_day_wait, tmp_path / "runs")
    cmd = send_command(run_dir, "abort", "token:web-on-other-host")
    stamp, rest = cmd.name.split("-", 1)
    ahead = f"{int(stamp) + 120 * 10**9:020d}-{rest}"
    (run_dir / "control" / cmd.name).rename(run_dir / "control" / ahead)
    cmd.name = ahead
    resumed = reap(start_castrig("resume", str(run_dir), "-q"))
    answer = wait_until(lambda: answer_of(run_dir, cmd), timeout_s=30, what="the stale command answered")
    assert answer["accepted"] is False and "discarded" in answer["message"], answer
    n = run_rows(run_dir, "select count(*) from samples")[0][0]
    wait_until(lambda: run_rows(run_dir, "select count(*) from samples")[0][0] > n + 3, what="the resumed run going on")
    resumed.send_signal(signal.SIGTERM)
    resumed.communicate(timeout=60)
    assert "token:web-on-other-host" not in json.loads((run_dir / "run.json").read_text())["outcome_reason"]
