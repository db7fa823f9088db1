"""The crash harness: SIGKILL a ``castrig run`` at seeded moments, ``castrig resume``, compare.

Each trial starts the recipe in a child process, watches the run's SQLite (as any reader may,
WAL) until the run's own clock passes the kill moment, kills the child with SIGKILL (no handler
runs, nothing is flushed), then runs ``castrig resume`` on the folder (a trial inside a given
step has the child kill itself there, :data:`_KILL_IN_STEP`: a step of a few ms of wall time is
over before a poll sees it). The folder is then
checked against an uninterrupted run of the same recipe and seed:

* the run completed (a crash ruins at most the membrane that was forming: it is recorded
  ``lost`` with its reason, which ``outcome_reason`` names, and the night goes on);
* no cast repeated (each cast step started at most once; no more caster dispenses than casts);
* nothing lost: every sample written before the kill is the reference run's sample, value for
  value (the twin is deterministic); every step is done or (a lost membrane's) skipped; every
  image of the reference is there but those of the lost membrane; grades of membranes judged
  before the crash are kept;
* nothing duplicated: (t_s, channel) unique, image names unique, each step done at most once;
  every image's sha256 still matches its TIFF (none overwritten);
* honest clocks: run.json has one part per run/resume, ``ended_utc`` is the last part's end;
* the rig left safe: the last ``safe_state`` event verified it.

Kill moments: :func:`kill_moments` (seeded, one per slice of the run) and :func:`step_moments`
(one seeded moment inside every step of the reference, evaporations in their middle third;
steps that take no run time — analyse — are killed as soon as they have started).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from castrig.recipe.model import CastStep, load_recipe
from castrig.store.sqlite_connect import ro_uri

ROOT = Path(__file__).resolve().parents[3]


@dataclass
class CrashTrial:
    kill_at_s: float
    kill_in_step: int | None = None  # 0-based; None: by run time only
    killed: bool = False
    killed_at_s: float | None = None
    resume_rc: int | None = None
    outcome: str = ""
    reason: str | None = None
    passed: bool = False
    problems: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "castrig", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CASTRIG_STORE", None)  # the local store: this is about the run folder
    return env


def run_reference(recipe: Path, data: Path, seed: int, timeout_s: float = 600) -> Path:
    """An uninterrupted run of ``recipe`` with ``seed``; returns its run folder."""
    data.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(_cmd("run", str(recipe), "--data", str(data), "--seed", str(seed), "-q"), cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"reference run failed ({done.returncode}): {done.stderr[-2000:]}")
    (run_dir,) = [p for p in data.iterdir() if (p / "run.json").is_file()]
    return run_dir


def _db(run_dir: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{ro_uri(run_dir / 'run.sqlite')}?mode=ro", uri=True, timeout=10)


def _rows(run_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    db = _db(run_dir)
    try:
        return [tuple(r) for r in db.execute(sql)]
    finally:
        db.close()


def recipe_duration_s(reference_dir: Path) -> float:
    return float(_rows(reference_dir, "select max(t_s) from samples")[0][0])


def kill_moments(duration_s: float, n: int, seed: int) -> list[float]:
    """``n`` seeded moments spread over the run: one in each of ``n`` equal slices."""
    rng = random.Random(seed)
    return [round((k + rng.uniform(0.05, 0.95)) * duration_s / n, 1) for k in range(n)]


def step_moments(reference_dir: Path, seed: int) -> list[tuple[int, float]]:
    """(step, run time) inside every step of the reference run, seeded; evaporations in their middle."""
    rng = random.Random(seed)
    spans: dict[int, list[float]] = {}
    for i, state, t in _rows(reference_dir, "select step_index, state, t_s from journal order by seq"):
        spans.setdefault(i, [t, t])[1 if state == "done" else 0] = t
    types = {i: t for i, t in _rows(reference_dir, "select step_index, json_extract(data_json, '$.type') from journal where state='started'")}
    out = []
    for i, (t0, t1) in sorted(spans.items()):
        lo, hi = (0.3, 0.7) if types.get(i) == "evaporate" else (0.05, 0.95)
        out.append((i, round(t0 + rng.uniform(lo, hi) * max(0.0, t1 - t0), 1)))
    return out


#: The child's own kill inside a step (a sitecustomize): SIGKILL (no handler runs, nothing flushed)
#: at the first of its records past the moment in the step -- a sample, or the step's start when
#: that is past it already -- and at the latest before the step's end is journaled. Polled from
#: outside, a step of a few ms of wall time (the twin's cast) was often over before the poll saw
#: it: the kill fell into the next step, no membrane lost (a flake of the step-kind test).
_KILL_IN_STEP = """
import os, signal
from castrig.store import sqlite_store as _store
_STEP, _AT = {step}, {at}
_in = [False]
_journal, _samples = _store.SqliteRunRecorder.add_journal, _store.SqliteRunRecorder.add_samples
def _die():
    os.kill(os.getpid(), signal.SIGKILL)
def add_journal(self, t_s, step_index, state, data=None):
    if _in[0] and step_index == _STEP and state != "started":
        _die()  # (the step's end, not yet recorded)
    row = _journal(self, t_s, step_index, state, data)
    if step_index == _STEP and state == "started":
        _in[0] = True
        if t_s >= _AT:
            _die()
    return row
def add_samples(self, t_s, values):
    _samples(self, t_s, values)
    if _in[0] and t_s >= _AT:
        _die()
_store.SqliteRunRecorder.add_journal, _store.SqliteRunRecorder.add_samples = add_journal, add_samples
"""


def _run_and_kill(recipe: Path, data: Path, seed: int, kill_at_s: float, trial: CrashTrial, timeout_s: float) -> Path | None:
    data.mkdir(parents=True, exist_ok=True)
    env = _env()
    if trial.kill_in_step is not None:  # killed by itself, inside the step (_KILL_IN_STEP)
        hook = data.with_name(data.name + ".kill-in-step")  # (beside the data root: nothing in it but runs)
        hook.mkdir(parents=True, exist_ok=True)
        (hook / "sitecustomize.py").write_text(_KILL_IN_STEP.format(step=int(trial.kill_in_step), at=float(kill_at_s)))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(hook), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(_cmd("run", str(recipe), "--data", str(data), "--seed", str(seed), "-q"), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    t0 = time.monotonic()
    run_dir: Path | None = None
    try:
        while time.monotonic() - t0 < timeout_s:
            if run_dir is None:
                found = [p for p in data.glob("*/run.sqlite")]
                run_dir = found[0].parent if found else None
            if trial.kill_in_step is not None:
                if proc.poll() is None:
                    time.sleep(0.02)
                    continue
                if proc.returncode == -signal.SIGKILL and run_dir is not None:
                    trial.killed, trial.killed_at_s = True, float(_rows(run_dir, "select max(t_s) from samples")[0][0] or 0.0)
                return run_dir
            if run_dir is not None:
                try:
                    row = _rows(run_dir, "select max(t_s) from samples")[0][0]
                except sqlite3.Error:  # the schema is not written yet
                    row = None
                if row is not None and row >= kill_at_s and proc.poll() is None:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
                    trial.killed, trial.killed_at_s = True, float(row)
                    return run_dir
            if proc.poll() is not None:
                return run_dir  # finished before the moment came
            time.sleep(0.005)
        trial.problems.append(f"no crash point within {timeout_s:g} s")
        return run_dir
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def crash_trial(recipe: Path, reference_dir: Path, seed: int, kill_at_s: float, data: Path, timeout_s: float = 600,
                kill_in_step: int | None = None) -> CrashTrial:
    """Kill at ``kill_at_s`` (run time; once step ``kill_in_step`` started), resume, check against the reference."""
    trial = CrashTrial(kill_at_s, kill_in_step)
    t_wall = time.perf_counter()
    run_dir = _run_and_kill(recipe, data, seed, kill_at_s, trial, timeout_s)
    for again in range(1, 4):
        if run_dir is None or not trial.killed or _outcome(run_dir) != "completed":
            break
        # the kill landed after the run had recorded its end (its last run seconds pass in a few
        # ms of wall time, the poll above sees them late on a loaded machine: a CI run met it at
        # 2485.5 s of a 2530 s run) — no crash: again, a little earlier, in a fresh folder
        trial.killed, trial.kill_at_s = False, round(trial.kill_at_s * 0.95, 1)
        run_dir = _run_and_kill(recipe, data / f"again-{again}", seed, trial.kill_at_s, trial, timeout_s)
    if run_dir is None or not trial.killed:
        trial.problems.append("the child was not killed (run ended first)" if run_dir else "no run folder")
        trial.wall_s = time.perf_counter() - t_wall
        return trial
    before = _rows(run_dir, "select t_s, channel, value from samples order by rowid")
    try:
        judged = dict(_rows(run_dir, "select membrane_id, grades_met from membranes where status='judged'"))
    except sqlite3.Error:
        judged = {}
    done = subprocess.run(_cmd("resume", str(run_dir), "-q"), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout_s)
    trial.resume_rc = done.returncode
    if "Traceback" in done.stderr or "Traceback" in done.stdout:
        trial.problems.append("traceback from castrig resume: " + done.stderr.strip().splitlines()[-1])
    check_resumed(run_dir, reference_dir, recipe, before, trial, judged_before=judged)
    trial.passed = not trial.problems
    trial.wall_s = time.perf_counter() - t_wall
    return trial


def _outcome(run_dir: Path) -> str:
    try:
        return str(json.loads((run_dir / "run.json").read_text()).get("outcome", ""))
    except (OSError, ValueError):
        return ""


def check_resumed(run_dir: Path, reference_dir: Path, recipe_path: Path, before: list[tuple[Any, ...]], trial: CrashTrial,
                  *, judged_before: dict[str, str] | None = None) -> None:
    """The checks of the module docstring, appended to ``trial.problems``."""
    p = trial.problems
    info = json.loads((run_dir / "run.json").read_text())
    trial.outcome, trial.reason = info.get("outcome", ""), info.get("outcome_reason")
    if trial.outcome == "completed":
        if trial.resume_rc != 0:
            p.append(f"completed but resume exited {trial.resume_rc}")
    else:
        p.append(f"outcome {trial.outcome!r} after resume (exit {trial.resume_rc}): {trial.reason}")
    try:
        membranes = _rows(run_dir, "select membrane_id, status, grades_met, lost_reason from membranes order by k")
    except sqlite3.Error:
        membranes = []
    lost = [m for m, st, _, _ in membranes if st == "lost"]
    trial.lost = lost  # type: ignore[attr-defined]
    if len(lost) > 1:
        p.append(f"one crash lost {len(lost)} membranes: {lost}")
    for m in lost:
        if m not in (trial.reason or ""):
            p.append(f"the outcome does not name the lost membrane {m}")
    grades_now = {m: g for m, st, g, _ in membranes if st == "judged"}
    for m, g in (judged_before or {}).items():
        if grades_now.get(m) != g:
            p.append(f"membrane {m} judged before the crash ({g or 'no grade'}) is now {grades_now.get(m)!r}")
    if trial.outcome == "completed" and any(st == "forming" for _, st, _, _ in membranes):
        p.append(f"completed with a membrane still forming: {[(m, st) for m, st, _, _ in membranes]}")
    parts = info.get("parts") or []
    if len(parts) < 2:
        p.append(f"run.json has {len(parts)} part(s) after a crash and a resume")
    elif info.get("ended_utc") != parts[-1].get("ended_utc") or info.get("started_utc", "") > parts[-1].get("started_utc", ""):
        p.append("run.json's started/ended_utc do not span every part of the run")
    recipe = load_recipe(recipe_path)
    after = _rows(run_dir, "select t_s, channel, value from samples order by rowid")
    ref = _rows(reference_dir, "select t_s, channel, value from samples order by rowid")
    # nothing written before the crash changed or vanished, and it is the reference's run
    if after[: len(before)] != before:
        p.append("samples written before the crash changed after the resume")
    if before != ref[: len(before)]:
        diverged = next((i for i, (a, b) in enumerate(zip(before, ref)) if a != b), min(len(before), len(ref)))
        p.append(f"pre-crash samples differ from the uninterrupted run from row {diverged} of {len(before)}")
    keys = [(t, ch) for t, ch, _ in after]
    if len(keys) != len(set(keys)):
        p.append(f"{len(keys) - len(set(keys))} duplicated samples")
    if before and len(after) > len(before) and min(t for t, _ in keys[len(before):]) <= max(t for t, _ in keys[: len(before)]):
        p.append("resumed samples overlap the pre-crash ones in time")
    journal = _rows(run_dir, "select step_index, state from journal order by seq")
    cast_idx = [i for i, s in enumerate(recipe.steps) if isinstance(s, CastStep)]
    for i in cast_idx:
        n = sum(1 for j, st in journal if j == i and st == "started")
        if n > 1:
            p.append(f"cast step {i} started {n} times")
    dispenses = _rows(run_dir, "select count(*) from events where kind='pump' and source='caster' and message like '%dispensing%'")[0][0]
    if dispenses > len(cast_idx):
        p.append(f"{dispenses} caster dispenses for {len(cast_idx)} cast steps")
    images = _rows(run_dir, "select name, path, sha256 from images")
    names = [r[0] for r in images]
    if len(names) != len(set(names)):
        p.append("duplicated images")
    for name, path, sha in images:
        f = run_dir / path
        if not f.is_file() or hashlib.sha256(f.read_bytes()).hexdigest() != sha:
            p.append(f"image {name}: {path} no longer matches its recorded sha256 (overwritten or missing)")
    done_list = [j for j, st in journal if st == "done"]
    if len(done_list) != len(set(done_list)):
        p.append("a step journaled done twice")
    skipped = {j for j, st in journal if st == "skipped"}
    if trial.outcome == "completed":
        done_steps = set(done_list)
        if done_steps | skipped != set(range(len(recipe.steps))):
            p.append(f"completed with steps neither done nor skipped: {sorted(set(range(len(recipe.steps))) - done_steps - skipped)}")
        if skipped and not lost:
            p.append(f"steps {sorted(skipped)} skipped but no membrane lost")
        ref_images = _rows(reference_dir, "select name, json_extract(metadata_json, '$.step') from images")
        expected = {n for n, step in ref_images if step not in skipped}
        if set(names) != expected:
            p.append(f"images differ from the uninterrupted run: missing {sorted(expected - set(names))}, "
                     f"extra {sorted(set(names) - expected)}")
        ref_channels = {ch for _, ch, _ in ref}
        if {ch for _, ch, _ in after} != ref_channels:
            p.append("channels differ from the uninterrupted run")
    safe = _rows(run_dir, "select data_json from events where kind='safe_state' order by id desc limit 1")
    if not safe or not json.loads(safe[0][0]).get("safe"):
        p.append("the last safe_state event does not verify the rig safe")


def campaign(recipe: Path, *, n: int, seed: int, workdir: Path, jobs: int = 2, timeout_s: float = 600,
             every_step: bool = False, reference: Path | None = None) -> tuple[list[CrashTrial], Path]:
    """The reference run, then ``n`` kill/resume trials at seeded moments (``jobs`` at a time),
    and with ``every_step`` one more inside every step of the recipe (:func:`step_moments`);
    ``reference``: the run folder of an uninterrupted run of ``recipe`` with ``seed`` made before
    (:func:`run_reference`), not made again."""
    ref = reference if reference is not None else run_reference(recipe, workdir / "reference", seed, timeout_s)
    moments: list[tuple[int | None, float]] = [(None, t) for t in kill_moments(recipe_duration_s(ref), n, seed)]
    if every_step:
        moments += [(i, t) for i, t in step_moments(ref, seed)]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(crash_trial, recipe, ref, seed, t, workdir / f"k{k:03d}", timeout_s, step)
                   for k, (step, t) in enumerate(moments)]
        return [f.result() for f in futures], ref
