"""Run a recipe in-process on the twin with one fault injected at one point, and judge the end.

The judgement does not trust the runner's own account:

* **recovered** — the run completed, every sample the store acknowledged is in the run folder,
  and the samples written before the fault are the uninterrupted reference's, value for value;
* **safe_stopped** — the run ended aborted/faulted with an event naming why, and the rig *as the
  emulators see it* is safe once the fault is over (pumps not moving, wet air off, dry purge
  on), with the pumps' safe-mode watchdog as the hardware backstop;
* **failed** — anything else: an unsafe rig, a lost or altered sample, an unreadable folder, a
  traceback, or a run that completed although a safety-relevant fault was still active.
"""

from __future__ import annotations

import json
import math
import sqlite3
import tempfile
import time
import traceback as tb
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from castrig.control.safety import FLOW_OFF_SLPM
from castrig.recipe import model as m
from castrig.recipe.runner import Runner, RunResult
from castrig.reliability.faults import CHAMBER_FAULTS, LINK_FAULTS, Fault, FaultPoint, FullDiskConnection, ScheduledClock
from castrig.rig.build import Rig, build_rig
from castrig.rig.profile import Profile, load_profile
from castrig.store import RunInfo, SqliteRunStore
from castrig.store.sqlite_connect import ro_uri

PACKAGE = Path(__file__).resolve().parent
FAULT_RECIPE = PACKAGE / "fault_recipe.yaml"

#: Faults that make the data or the process wrong while they last: a run must not *complete*
#: with one of these still active at its end without having noticed (an event) — that would be
#: a membrane made blind.
_SILENT_DANGER = {"rh_stuck", "rh_out_of_range", "disk_full"}
#: A silent-danger fault shorter than this may pass unnoticed (below the detection windows).
_NOTICE_WITHIN_S = 150.0


class QuietLog:
    """A structlog-compatible sink that keeps what the runner logs; ``exception`` = traceback."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, dict[str, Any]]] = []
        self.tracebacks: list[str] = []

    def _add(self, level: str, msg: str, **kw: Any) -> None:
        self.entries.append((level, msg, kw))

    def info(self, msg: str, **kw: Any) -> None:
        self._add("info", msg, **kw)

    def warning(self, msg: str, **kw: Any) -> None:
        self._add("warning", msg, **kw)

    def error(self, msg: str, **kw: Any) -> None:
        self._add("error", msg, **kw)

    def exception(self, msg: str, **kw: Any) -> None:
        self.tracebacks.append(tb.format_exc())
        self._add("exception", msg, **kw)

    def bind(self, **kw: Any) -> "QuietLog":
        return self


class Recorder:
    """The run's real recorder, seen by the runner; counts what it acknowledged and tells the
    injector when a step starts (so a fault can be placed at step + offset)."""

    def __init__(self, inner: Any, on_step_start: Any):
        self._inner = inner
        self._on_step_start = on_step_start
        self.acked_samples: list[tuple[float, str, float | None]] = []

    def add_samples(self, t_s: float, values: Any) -> None:
        self._inner.add_samples(t_s, values)
        self.acked_samples += [(float(t_s), ch, None if v is None else float(v)) for ch, v in values.items()]

    def add_journal(self, t_s: float, step_index: int, state: str, data: Any = None) -> int:
        seq = self._inner.add_journal(t_s, step_index, state, data)
        if state == "started":
            self._on_step_start(step_index)
        return seq

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class Injector:
    """Opens and closes one fault's window on the scheduled clock."""

    def __init__(self, fault: Fault | None, point: FaultPoint | None, rig: Rig, clock: ScheduledClock, disk: FullDiskConnection):
        self.fault, self.point, self.rig, self.clock, self.disk = fault, point, rig, clock, disk
        self.t_inject: float | None = None
        self.t_clear: float | None = None
        self.active = False
        self.fired = False

    def step_started(self, i: int) -> None:
        if self.fault is None or self.point is None or i != self.point.step or self.t_inject is not None:
            return
        self.t_inject = self.clock.now() + self.point.offset_s
        self.clock.at(self.t_inject, self._inject)

    def _emu(self) -> Any:
        assert self.fault is not None
        return self.rig.twin.emulators[self.fault.target]

    def _inject(self) -> None:
        f, t = self.fault, self.clock.now()
        assert f is not None
        self.t_inject = t
        self.active = self.fired = True
        if f.kind in LINK_FAULTS:
            self._emu().inject(LINK_FAULTS[f.kind])
        elif f.kind in CHAMBER_FAULTS:
            self._emu().inject(CHAMBER_FAULTS[f.kind])
        elif f.kind == "pump_stall":
            self._emu().inject("stall")
        elif f.kind == "pump_alarm":
            emu = self._emu()
            if f.arg == "R":
                emu.power_cycle(t)
            else:
                emu.raise_alarm(str(f.arg), t)
        elif f.kind == "mfc_not_following":
            self._emu().inject("stuck", t)
        elif f.kind == "mfc_valve_held":
            self._emu().hold_at_front_panel(t)
        elif f.kind in ("rh_stuck", "rh_noisy", "rh_out_of_range", "rh_sensor_error"):
            self._emu().inject({"rh_stuck": "stuck", "rh_noisy": "noisy", "rh_out_of_range": "out_of_range",
                                "rh_sensor_error": "sensor_error"}[f.kind])
        elif f.kind == "camera_fails":
            self._emu().inject("no_frame")
        elif f.kind == "disk_full":
            self.disk.full = True
        elif f.kind == "clock_jump":
            self.clock.jump(float(f.arg or 0.0))
        else:  # pragma: no cover - the catalogue has nothing else
            raise ValueError(f"unknown fault kind {f.kind!r}")
        if f.duration_s == 0.0:
            self.active = False
            self.t_clear = t
        elif math.isfinite(f.duration_s):
            self.clock.at(t + f.duration_s, self.clear)

    def clear(self) -> None:
        """The fault is over: the port is back, the sensor repaired, the disk has room."""
        if not self.active:
            return
        self.active = False
        self.t_clear = self.clock.now()
        f = self.fault
        assert f is not None
        if f.target in ("store", "clock"):
            self.disk.full = False
            return
        emu = self._emu()
        if f.kind == "mfc_not_following":
            emu.clear(None, self.clock.now())
        elif f.kind == "mfc_valve_held":
            return  # a hold is no fault to clear: only a cancel (the safe state's) ends it
        else:
            emu.clear()


@dataclass
class TrialResult:
    fault: str
    kind: str
    target: str
    step: int
    step_type: str
    offset_s: float
    injected: bool
    outcome: str
    reason: str | None
    verdict: str  # recovered | safe_stopped | failed | not_reached
    problems: list[str] = field(default_factory=list)
    lost_samples: int = 0
    tracebacks: int = 0
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load_fault_recipe() -> m.Recipe:
    return m.load_recipe(FAULT_RECIPE)


def default_profile() -> Profile:
    root = Path(__file__).resolve().parents[3]
    path = root / "hw_profiles" / "sim.yaml"
    return load_profile(path)


def _info(recipe: m.Recipe, profile: Profile, seed: int) -> RunInfo:
    return RunInfo(run_id=f"fault-{recipe.name}", recipe_name=recipe.name, recipe_path="-", profile_name=profile.name,
                   profile_path="-", software_version="reliability", seed=seed, operator="harness",
                   started_utc="2026-01-01T00:00:00Z", virtual_time=True,
                   recipe=recipe.model_dump(mode="json"), profile=profile.model_dump(mode="json"))


@dataclass
class Driven:
    """Everything one in-process run touched, for judging it afterwards."""

    clock: ScheduledClock
    rig: Rig
    runner: Runner
    rec: Recorder
    inner: Any
    disk: FullDiskConnection
    injectors: list[Injector]
    log: QuietLog
    escaped: list[str]
    result: RunResult


def drive(recipe: m.Recipe, profile: Profile, seed: int, store: SqliteRunStore,
          faults: list[tuple[Fault, FaultPoint]]) -> Driven:
    """Run ``recipe`` on a fresh twin with ``faults`` scheduled; the rig is left open."""
    clock = ScheduledClock()
    rig = build_rig(profile, clock=clock, seed=seed)
    rig.twin.set_process(concentration_mg_ml=recipe.concentration_mg_ml, solvent=recipe.solvent,
                         support_pore_um=recipe.support_pore_um)
    inner = store.create_run(_info(recipe, profile, seed))
    disk = FullDiskConnection(inner._db)  # noqa: SLF001 - the disk sits below the store
    inner._db = disk  # type: ignore[assignment]  # noqa: SLF001
    injectors = [Injector(f, p, rig, clock, disk) for f, p in faults]

    def step_started(i: int) -> None:
        for inj in injectors:
            inj.step_started(i)

    rec = Recorder(inner, step_started)
    log = QuietLog()
    runner = Runner(recipe, rig, rec, log=log)  # type: ignore[arg-type]
    escaped: list[str] = []
    try:
        result = runner.run()
    except BaseException:  # noqa: BLE001 - an escaped exception is what the harness counts
        escaped.append(tb.format_exc())
        result = RunResult("escaped", escaped[-1].strip().splitlines()[-1])
    try:
        rec.update_info(outcome=result.outcome, outcome_reason=result.reason)
        store.index_run(inner)
    except Exception as exc:  # noqa: BLE001 - the disk may still be full: run.json keeps 'running'
        log.warning("run.json not updated", error=str(exc))
    return Driven(clock, rig, runner, rec, inner, disk, injectors, log, escaped, result)


def run_once(recipe: m.Recipe, profile: Profile, seed: int, workdir: Path, fault: Fault | None = None,
             point: FaultPoint | None = None) -> TrialResult:
    """One run with (at most) one fault; judged against ``reference`` by :func:`judge`."""
    t_wall = time.perf_counter()
    faults = [] if fault is None or point is None else [(fault, point)]
    d = drive(recipe, profile, seed, SqliteRunStore(workdir, synchronous="NORMAL"), faults)
    clock, rig, runner, rec, inner, log, escaped, result = d.clock, d.rig, d.runner, d.rec, d.inner, d.log, d.escaped, d.result
    injector = d.injectors[0] if d.injectors else Injector(None, None, rig, clock, d.disk)
    t_end = clock.now()
    # The fault is over (port back, disk has room); time passes (the pumps' watchdogs act).
    injector.clear()
    clock.sleep(max([float(getattr(c, "safe_mode_s", 0) or 0) for c in profile.device_configs().values()] + [0.0]) + 1.0)
    unsafe = _truth_unsafe(rig, profile)
    run_dir = Path(inner.run_dir)
    inner.close()
    rig.close()
    tr = TrialResult(
        fault="none" if fault is None else fault.label,
        kind="none" if fault is None else fault.kind,
        target="-" if fault is None else fault.target,
        step=-1 if point is None else point.step,
        step_type="-" if point is None else recipe.steps[point.step].type,
        offset_s=0.0 if point is None else point.offset_s,
        injected=injector.fired,
        outcome=result.outcome,
        reason=result.reason,
        verdict="",
        tracebacks=len(escaped) + len(log.tracebacks) + int((result.reason or "").startswith("internal error")),
    )
    tr.problems += [f"rig unsafe after the run: {u}" for u in unsafe]
    tr.problems += [f"traceback: {t.strip().splitlines()[-1]}" for t in escaped + log.tracebacks]
    stored, readable = _read_back(run_dir, tr.problems)
    acked = rec.acked_samples
    stored_set = {(t, ch) for t, ch, _ in stored}
    tr.lost_samples = sum(1 for t, ch, _ in acked if (t, ch) not in stored_set)
    if len(stored_set) != len(stored):
        tr.problems.append(f"{len(stored) - len(stored_set)} duplicated samples")
    if tr.lost_samples:
        tr.problems.append(f"{tr.lost_samples} acknowledged samples missing from the run folder")
    tr._stored = stored  # type: ignore[attr-defined]
    # the run's t_s counts from the runner's origin, not from the clock's zero
    tr._t_inject = None if injector.t_inject is None else injector.t_inject - runner.origin  # type: ignore[attr-defined]
    tr._events = readable  # type: ignore[attr-defined]
    t_off = injector.t_clear if injector.t_clear is not None and injector.t_clear <= t_end else t_end
    tr._fault_lasted_s = (t_off - injector.t_inject) if injector.fired and injector.t_inject is not None else 0.0  # type: ignore[attr-defined]  # type: ignore[attr-defined]
    tr.wall_s = time.perf_counter() - t_wall
    return tr


def _truth_unsafe(rig: Rig, profile: Profile) -> list[str]:
    """What the emulators (the 'hardware') say is not safe, whatever the runner believes."""
    emus, t, out = rig.twin.emulators, rig.clock.now(), []
    for role, emu in emus.items():
        if hasattr(emu, "flow_ml_min") and emu.flow_ml_min(t) != 0.0:
            out.append(f"{role} still pumping {emu.flow_ml_min(t):g} mL/min")
    purge = profile.control.purge_flow_slpm
    wet = emus.get("wet_mfc")
    if wet is not None and wet.setpoint_slpm > FLOW_OFF_SLPM:
        out.append(f"wet_mfc left at {wet.setpoint_slpm:g} slpm")
    elif wet is not None and abs(wet.flow_slpm(t)) > FLOW_OFF_SLPM:  # (the true flow: no zero error to allow for)
        out.append(f"wet_mfc at setpoint 0 still flowing {wet.flow_slpm(t):.3g} slpm (valve hold: {wet.hold})")
    if "dry_mfc" in emus and abs(emus["dry_mfc"].setpoint_slpm - purge) > max(0.01, 0.01 * purge):
        out.append(f"dry_mfc at {emus['dry_mfc'].setpoint_slpm:g} slpm, not the {purge:g} slpm purge")
    chamber = emus.get("chamber")
    if chamber is not None and getattr(chamber, "output_on", False):
        out.append(f"chamber humidifier left on (set point {getattr(chamber, 'setpoint_rh_pct', float('nan')):g} %RH)")
    return out


def _read_back(run_dir: Path, problems: list[str]) -> tuple[list[tuple[float, str, float]], list[tuple[str, str, str]]]:
    """The run folder as a reader sees it: run.json parses, the tables read (read-only)."""
    try:
        json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError) as exc:
        problems.append(f"run.json unreadable: {exc}")
    try:
        db = sqlite3.connect(f"{ro_uri(run_dir / 'run.sqlite')}?mode=ro", uri=True)
        try:
            samples = [tuple(r) for r in db.execute("select t_s, channel, value from samples order by rowid")]
            events = [tuple(r) for r in db.execute("select kind, source, message from events order by id")]
            db.execute("select count(*) from journal").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        problems.append(f"run.sqlite unreadable: {exc}")
        return [], []
    return samples, events  # type: ignore[return-value]


_STOP_KINDS = ("interlock", "run_end")


def judge(tr: TrialResult, reference: list[tuple[float, str, float]], in_flight_s: float = 10.0) -> TrialResult:
    """Set ``tr.verdict`` from the run folder, the rig's truth and the reference run.

    Samples older than ``in_flight_s`` before the fault must all be there, equal to the
    reference's; the sample being taken when the fault struck may legitimately be missing.
    """
    stored = tr._stored  # type: ignore[attr-defined]
    t_inj = tr._t_inject  # type: ignore[attr-defined]
    events = tr._events  # type: ignore[attr-defined]
    if t_inj is not None and tr.kind != "none":
        # Before the fault, the run is the reference run, value for value (determinism).
        before = [s for s in reference if s[0] < t_inj - 1e-9]
        got = [s for s in stored if s[0] < t_inj - 1e-9]
        settled = [s for s in before if s[0] < t_inj - in_flight_s]
        if got != before[: len(got)] or len(got) < len(settled):
            missing = len(set(before) - set(got))
            tr.lost_samples += missing
            tr.problems.append(f"samples before the fault differ from the reference ({missing} missing)")
    if not tr.injected:
        tr.verdict = "not_reached"
    elif tr.problems:
        tr.verdict = "failed"
    elif tr.outcome == "completed":
        noticed = any(k.startswith("interlock") or k == "warning" for k, _, _ in events)
        lasted = tr._fault_lasted_s  # type: ignore[attr-defined]
        if tr.kind in _SILENT_DANGER and lasted > _NOTICE_WITHIN_S and not noticed:
            tr.problems.append(f"completed although {tr.kind} lasted {lasted:g} s unnoticed (no event)")
            tr.verdict = "failed"
        else:
            tr.verdict = "recovered"
    elif tr.outcome in ("aborted", "faulted") and any(k in _STOP_KINDS for k, _, _ in events) or tr.kind == "disk_full" and tr.outcome in ("aborted", "faulted"):
        tr.verdict = "safe_stopped"
    else:
        tr.problems.append(f"ended {tr.outcome} without a stop event")
        tr.verdict = "failed"
    for attr in ("_stored", "_events"):
        if hasattr(tr, attr):
            delattr(tr, attr)
    return tr


class Campaign:
    """A reference run plus trials, all of one recipe, profile and seed."""

    def __init__(self, recipe: m.Recipe | None = None, profile: Profile | None = None, seed: int = 1, workdir: Path | None = None):
        self.recipe = recipe or load_fault_recipe()
        self.profile = profile or default_profile()
        self.seed = seed
        self._tmp = None if workdir is not None else tempfile.TemporaryDirectory(prefix="castrig-faults-")
        self.workdir = Path(workdir or self._tmp.name)  # type: ignore[union-attr]
        ref = run_once(self.recipe, self.profile, seed, self.workdir / "reference")
        if ref.outcome != "completed" or ref.problems:
            raise RuntimeError(f"the reference run did not complete cleanly: {ref.outcome} {ref.reason} {ref.problems}")
        self.reference: list[tuple[float, str, float]] = ref._stored  # type: ignore[attr-defined]
        self._n = 0

    def trial(self, fault: Fault, point: FaultPoint) -> TrialResult:
        self._n += 1
        tr = run_once(self.recipe, self.profile, self.seed, self.workdir / f"t{self._n:04d}", fault, point)
        return judge(tr, self.reference)

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
