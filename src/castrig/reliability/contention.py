"""Contention trials: a second process against the same run folder or the same rig.

* **two resumes at once** — a run killed with SIGKILL at a seeded moment, then two ``castrig
  resume`` started together: exactly one proceeds, the other exits 4 (busy) and the folder passes
  every check of :func:`castrig.reliability.crash.check_resumed` (no step twice, no sample twice);
* **resume of a live run** — the run SIGSTOPped at a seeded moment (alive, silent): ``castrig
  resume`` exits 4 and writes nothing; continued, the run completes with the rig verified safe;
* **a second run on a served rig** — ``castrig sim serve`` over TCP or ptys, one run on it and a
  second run with the same profile: the second exits 4, the first completes, rig verified safe.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from castrig.reliability import crash
from castrig.reliability.crash import ROOT, CrashTrial, _cmd, _env, _rows


@dataclass
class ContentionTrial:
    case: str
    detail: str
    codes: list[int | None] = field(default_factory=list)
    outcome: str = ""
    safe_verified: bool = False
    passed: bool = False
    problems: list[str] = field(default_factory=list)
    wall_s: float = 0.0


def _safe_verified(run_dir: Path) -> bool:
    rows = _rows(run_dir, "select data_json from events where kind='safe_state' order by id desc limit 1")
    return bool(rows) and bool(json.loads(rows[0][0]).get("safe"))


def concurrent_resume_trial(recipe: Path, reference: Path, seed: int, kill_at_s: float, data: Path) -> ContentionTrial:
    t0 = time.perf_counter()
    trial = ContentionTrial("two resumes at once", f"SIGKILL at t={kill_at_s:g} s")
    ct = CrashTrial(kill_at_s)
    run_dir = crash._run_and_kill(recipe, data, seed, kill_at_s, ct, timeout_s=600)
    if run_dir is None or not ct.killed:
        trial.problems.append("the run was not killed (it ended first)")
        return trial
    before = _rows(run_dir, "select t_s, channel, value from samples order by rowid")
    procs = [subprocess.Popen(_cmd("resume", str(run_dir), "-q"), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    trial.codes = [p.returncode for p in procs]
    busy = [i for i, c in enumerate(trial.codes) if c == 4]
    if len(busy) != 1:
        trial.problems.append(f"exit codes {trial.codes}: expected exactly one 4 (busy)")
    else:
        ct.resume_rc = trial.codes[1 - busy[0]]
        if "Traceback" in "".join(outs[0] + outs[1]):
            trial.problems.append("traceback")
        crash.check_resumed(run_dir, reference, recipe, before, ct)
        trial.problems += ct.problems
    trial.outcome = ct.outcome
    trial.safe_verified = _safe_verified(run_dir)
    trial.passed = not trial.problems and trial.safe_verified
    trial.wall_s = time.perf_counter() - t0
    return trial


def live_resume_trial(recipe: Path, seed: int, stop_at_s: float, data: Path) -> ContentionTrial:
    t0 = time.perf_counter()
    trial = ContentionTrial("resume of a live run", f"SIGSTOP at t={stop_at_s:g} s")
    data.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(_cmd("run", str(recipe), "--data", str(data), "--seed", str(seed), "-q"), cwd=ROOT, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        run_dir = None
        while proc.poll() is None and time.perf_counter() - t0 < 600:
            found = list(data.glob("*/run.sqlite"))
            run_dir = found[0].parent if found else None
            try:
                t = _rows(run_dir, "select max(t_s) from samples")[0][0] if run_dir else None
            except sqlite3.Error:  # the schema is being written
                t = None
            if t is not None and t >= stop_at_s:
                proc.send_signal(signal.SIGSTOP)
                break
            time.sleep(0.005)
        if run_dir is None or proc.poll() is not None:
            trial.problems.append("the run ended before the moment came")
            return trial
        snapshot = [_rows(run_dir, f"select count(*) from {t}")[0][0] for t in ("samples", "events", "journal")]
        done = subprocess.run(_cmd("resume", str(run_dir), "-q"), cwd=ROOT, env=_env(), capture_output=True, text=True,
                              timeout=120)
        trial.codes.append(done.returncode)
        if done.returncode != 4 or f"pid {proc.pid}" not in done.stderr:
            trial.problems.append(f"resume of the live run exited {done.returncode}: {done.stderr.strip()[-300:]}")
        if [_rows(run_dir, f"select count(*) from {t}")[0][0] for t in ("samples", "events", "journal")] != snapshot:
            trial.problems.append("the refused resume wrote records")
        proc.send_signal(signal.SIGCONT)
        trial.codes.append(proc.wait(timeout=600))
        trial.outcome = json.loads((run_dir / "run.json").read_text()).get("outcome", "")
        if trial.outcome != "completed":
            trial.problems.append(f"the live run ended {trial.outcome}")
        trial.safe_verified = _safe_verified(run_dir)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait()
    trial.passed = not trial.problems and trial.safe_verified
    trial.wall_s = time.perf_counter() - t0
    return trial


QUICK_WALL = {"name": "contention-wall", "steps": [{"type": "purge", "duration_s": 4}, {"type": "wait", "duration_s": 4}]}


def served_rig_profile(addresses: dict[str, str], name: str = "served-rig") -> dict[str, Any]:
    """hw_profiles/sim-serial.yaml with its devices at ``addresses`` (as ``sim serve`` prints them)."""
    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim-serial.yaml").read_text())
    profile["name"] = name
    for role, cfg in profile["devices"].items():
        cfg["link"]["url"] = addresses[role]
    return profile


def second_run_trial(transport: str, workdir: Path) -> ContentionTrial:
    t0 = time.perf_counter()
    trial = ContentionTrial("second run on a served rig", transport)
    serve = subprocess.Popen(_cmd("sim", "serve", "--profile", str(ROOT / "hw_profiles" / "sim-serial.yaml"),
                                  *(["--tcp", "0"] if transport == "tcp" else ["--pty"])),
                             cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    first = None
    try:
        addresses = json.loads(serve.stdout.readline())  # type: ignore[union-attr]
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "rig.yaml").write_text(yaml.safe_dump(served_rig_profile(addresses)))
        (workdir / "quick.yaml").write_text(yaml.safe_dump(QUICK_WALL))
        args = ["run", str(workdir / "quick.yaml"), "--profile", str(workdir / "rig.yaml"), "-q"]
        first = subprocess.Popen(_cmd(*args, "--data", str(workdir / "a")), cwd=ROOT, env=_env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not list((workdir / "a").glob("*/run.json")) and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.02)
        second = subprocess.run(_cmd(*args, "--data", str(workdir / "b")), cwd=ROOT, env=_env(), capture_output=True,
                                text=True, timeout=120)
        trial.codes = [second.returncode]
        if second.returncode != 4 or f"pid {first.pid}" not in second.stderr:
            trial.problems.append(f"second run exited {second.returncode}: {second.stderr.strip()[-300:]}")
        if list((workdir / "b").glob("*/run.json")):
            trial.problems.append("the refused run left a run folder")
        trial.codes.append(first.wait(timeout=120))
        (run_dir,) = [p.parent for p in (workdir / "a").glob("*/run.json")]
        trial.outcome = json.loads((run_dir / "run.json").read_text()).get("outcome", "")
        if trial.outcome != "completed":
            trial.problems.append(f"the first run ended {trial.outcome}")
        trial.safe_verified = _safe_verified(run_dir)
    except (ValueError, subprocess.TimeoutExpired) as exc:
        trial.problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        for p in (first, serve):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    trial.passed = not trial.problems and trial.safe_verified
    trial.wall_s = time.perf_counter() - t0
    return trial


def contention_campaign(recipe: Path, *, n: int, seed: int, workdir: Path | None = None) -> list[ContentionTrial]:
    """``n`` two-resume and ``n`` live-resume trials at seeded moments, and one served-rig trial per
    transport."""
    with tempfile.TemporaryDirectory(prefix="castrig-contention-") as tmp:
        work = Path(workdir or tmp)
        ref = crash.run_reference(recipe, work / "reference", seed)
        moments = crash.kill_moments(crash.recipe_duration_s(ref), n, seed + 1)
        trials = [concurrent_resume_trial(recipe, ref, seed, t, work / f"r{k:03d}") for k, t in enumerate(moments)]
        trials += [live_resume_trial(recipe, seed, t, work / f"l{k:03d}") for k, t in enumerate(moments)]
        trials += [second_run_trial(tr, work / f"s-{tr}") for tr in ("tcp", "pty")]
    return trials
