"""The runner: an explicit state machine that takes a recipe through the rig's devices.

States: ``ready → running(step i) ⇄ paused → done | aborted | faulted | interrupted``.
Every step start and end is an event and a journal entry; every reading is a sample, written
the moment it is taken. Whatever happens — completion, an interlock, a device error, an
exception, Ctrl-C, SIGTERM — the rig is brought to the safe state and that state is read back.

The runner waits only through the rig's clock: on the twin an 8-hour recipe takes seconds.
"""

from __future__ import annotations

import math
import shlex
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from castrig.control.interlocks import InterlockTripped, Monitor, Trip
from castrig.control.rh_loop import ChamberRhLoop, LoopGains, MfcRhLoop
from castrig.control.safety import SafeStateReport, make_safe
from castrig.devices.roles import DeviceCommsError, DeviceError, Illumination, PumpState, SyringePump
from castrig.errors import CastrigError
from castrig.links import LinkError
from castrig.logs import module_logger
from castrig.recipe import model as m
from castrig.recipe.cadence import EARLY_S, FixedRate
from castrig.recipe.folder_watch import FolderWatch
from castrig.recipe.hold import HoldClock
from castrig.recipe.membranes import MembranePlan, membrane_of_step, plan_membranes, process_record, step_label
from castrig.recipe.remote import RemoteControl
from castrig.recipe.stall import StallWatch
from castrig.rig.build import Rig
from castrig.store import MembraneRecord, RunRecorder, made_utc_now

EXIT_CODES = {"completed": 0, "aborted": 3, "faulted": 3, "not_resumable": 3, "interrupted": 130}

#: Steps that cannot simply be repeated after a crash once they have started.
_ONE_SHOT = (m.PrewetStep, m.CastStep, m.EvaporateStep)


class RunAborted(Exception):
    """Stop the run now and go to the safe state."""

    def __init__(self, outcome: str, reason: str):
        self.outcome = outcome
        self.reason = reason
        super().__init__(reason)


@dataclass
class RunResult:
    outcome: str
    reason: str | None = None
    safe: SafeStateReport | None = None
    verdict: dict[str, Any] | None = None
    run_dir: str | None = None
    #: Every membrane of the run (``MembraneRecord.to_dict()``), in cast order.
    membranes: list[dict[str, Any]] = field(default_factory=list)
    #: Each membrane's target grade, k -> grade (:func:`castrig.recipe.membranes.membrane_targets`).
    targets: dict[int, str | None] = field(default_factory=dict)
    #: Ended because someone (or the system) asked: SIGTERM, SIGHUP, ``castrig abort``, the web
    #: page, the pause prompt's 'a' — not by the run itself (an interlock, a device fault).
    #: ``castrig queue`` stops after such a run instead of starting the next recipe.
    asked: bool = False

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.outcome, 3)


@dataclass
class Status:
    """What a progress display shows (updated every tick)."""

    step_index: int = -1
    step_name: str = ""
    state: str = "ready"
    t_s: float = 0.0
    step_elapsed_s: float = 0.0
    step_duration_s: float | None = None
    rh_pct: float | None = None
    setpoint_rh_pct: float | None = None
    wet_fraction: float | None = None
    flows_slpm: dict[str, float] = field(default_factory=dict)
    pumps_ml: dict[str, float] = field(default_factory=dict)
    message: str = ""


def _describe(step: Any) -> str:
    d = step.model_dump(exclude={"type", "label"}, exclude_none=True)
    args = ", ".join(f"{k}={v}" for k, v in d.items())
    return f"{step.type}({args})" if not step.label else f"{step.label}: {step.type}({args})"


@dataclass
class RecordedOnly:
    """When to ask a device that is only recorded (the room's RH/T) after it stopped answering.

    Each failed read costs the driver's retries (3.2 s for an HMT330 that is unplugged); asked
    at every sample, a dead room sensor stretched the sample period and the RH loop's ticks
    with it, all night. It is asked again after a wait that doubles from one sample period up
    to :data:`ROOM_BACKOFF_MAX_S`, and at every sample again once it answers."""

    wait_s: float = 0.0
    next_t: float = 0.0

    def due(self, now: float) -> bool:
        return now >= self.next_t

    def failed(self, now: float, sample_period_s: float) -> float:
        self.wait_s = min(max(2.0 * self.wait_s, sample_period_s), ROOM_BACKOFF_MAX_S)
        self.next_t = now + self.wait_s
        return self.wait_s

    def answered(self) -> bool:
        """True when it had been failing."""
        was, self.wait_s, self.next_t = self.wait_s > 0, 0.0, 0.0
        return was


#: The longest wait before a recorded-only device that stopped answering is asked again.
ROOM_BACKOFF_MAX_S = 120.0
#: work on the wall clock done within this (s) returns before the rig ticks for it (:meth:`Runner._while_ticking`)
QUICK_S = 0.5
#: a tick later than this many control periods, and this many seconds (the Ctrl-C prompt looks
#: once a second whether a tick is due), is a gap in control, recorded (:meth:`Runner._note_gap`)
GAP_PERIODS, GAP_MIN_S = 5, 5.0


class Runner:
    def __init__(
        self,
        recipe: m.Recipe,
        rig: Rig,
        recorder: RunRecorder,
        *,
        t_offset_s: float = 0.0,
        on_status: Callable[[Status], None] | None = None,
        prompt: Callable[[Callable[[], float]], str] | None = None,
        log: Any = None,
    ):
        self.recipe = recipe
        self.rig = rig
        self.rec = recorder
        self.clock = rig.clock
        self.cfg = rig.profile.control
        self.origin = self.clock.now() - t_offset_s
        self._t_at: tuple[float, float] = (math.nan, 0.0)  # (clock time, t()) of the last t()
        self.on_status = on_status
        self.prompt = prompt or (lambda keep_alive: "interrupt")  # nobody to ask: Ctrl-C once ends it interrupted
        self.log = log or module_logger("castrig.runner")
        self.status = Status()
        self.loop = self._make_loop()
        self._pause_requested = False
        self._abort_reason: str | None = None
        self._abort_asked = True  # the abort was asked by someone (not a hung-up terminal)
        self._last_good_rh_t: float | None = None
        self._last_rh: float | None = None
        #: samples on their own fixed-rate schedule (the first at the first tick; each at the tick
        #: nearest its due time)
        self._samples = FixedRate(self.cfg.sample_period_s, early_s=self.cfg.control_period_s / 2)
        #: the control ticks' one schedule for the whole run (holds, the Ctrl-C prompt, a remote
        #: pause): a hold that started its ticks afresh put them out of step with the samples'
        #: schedule, 4.2-5.6 s between samples across step boundaries instead of 5 s
        self._ticks = FixedRate(self.cfg.control_period_s)
        self._next_keepalive = 0.0
        self._last_tick_end: float | None = None
        #: on the wall clock: sees the process stand still inside a tick too (:meth:`_note_gap`)
        self._stall: StallWatch | None = None
        self._gap_said_t = -math.inf  # the tick that last said a control_gap
        self._monitors = {
            # 30 s, or 3 control periods: an MFC is read right after each new setpoint, so on a 60 s
            # period two readings (60 s apart) counted as a minute of not following, and every run
            # with such a period (inside the allowed range) aborted at its first condition step
            "mfc_following:dry_mfc": Monitor("mfc_following", "abort", for_s=max(30.0, 3 * self.cfg.control_period_s)),
            "mfc_following:wet_mfc": Monitor("mfc_following", "abort", for_s=max(30.0, 3 * self.cfg.control_period_s)),
            "rh_band": Monitor("rh_band", "abort", for_s=0.0),
            "rh_band_hold": Monitor("rh_band_hold", "hold", for_s=0.0, clear_for_s=30.0),
        }
        #: Devices whose last exchange failed: since when (the start of the first failed
        #: exchange, i.e. the last moment they were known to answer) and the last error.
        self._silent: dict[str, tuple[float, str]] = {}
        self._alarms_seen: dict[str, int] = {}  # pump name -> its unsolicited alarms recorded (_note_pump_alarms)
        self._chamber_bad = False  # a chamber reading was no humidity, said once (_chamber_sample)
        self._held_said: set[str] = set()  # MFCs whose valve hold (HLD) was said, once a run
        #: The near-membrane sensor's last read failed (its staleness counts from then on).
        self._rh_failing = False
        self._room = RecordedOnly()
        self._frozen: tuple[tuple[float, float], float] | None = None
        self._holding = False
        #: The hold under way (None between holds): a pause taken inside it ticks it on (_tick_paused).
        self._hold_now: HoldClock | None = None
        self._in_pause = False
        #: The pump step under way ("the cast", "the pre-wet"): a pause asked meanwhile is taken
        #: when it has ended (pump stopped and read back), never mid-dispense (see :meth:`pause_point`).
        self._dispensing: str | None = None
        #: Where the pause under way was taken when not at a tick (after a step: "after the cast").
        self._paused_after: str | None = None
        #: (from, to) on the run clock of each pause this process held: a film cast before a pause
        #: goes on drying through it, so its membrane's record says how long (:meth:`_made`).
        self._pauses: list[tuple[float, float]] = []
        #: While the rig is made safe: what is going on (status.json's ``safe_state``), else None.
        self.safe_progress: dict[str, Any] | None = None
        #: Ctrl-C or SIGTERM while the rig is made safe: an unverified safe state is not tried again
        #: for long (a person or the system wants the run over; see :meth:`_keep_trying_safe`).
        self.stop_safe_tries = False
        self._last_t_near: float | None = None
        self._resume_elapsed = 0.0
        self._verdict: dict[str, Any] | None = None
        self._keepalive_s = self._keepalive_period()
        self._watchdog_kept = self._pump_watchdog_s() is not None  # a pump in safe mode: its keep-alive is never late
        self._plans = plan_membranes(recipe)
        # operators acting from outside (castrig abort, the web page): read every control period
        self.remote = RemoteControl(self, getattr(recorder, "run_dir", None))
        self._folder = FolderWatch(getattr(recorder, "run_dir", None))  # (a run folder moved or deleted mid-run)

    def folder_moved_to(self) -> Path | None:
        """Where the run folder is now if it was moved mid-run (None: where it was, or deleted)."""
        return self._folder.moved_to()

    # -- time, events, samples --------------------------------------------------------------
    def t(self) -> float:
        """Seconds since the run started (to the µs); asked several times per tick at the same
        clock time (status, hold band, step checks), so the last answer is kept for that time."""
        now = self.clock.now()
        if now != self._t_at[0]:
            self._t_at = (now, round(now - self.origin, 6))
        return self._t_at[1]

    def event(self, kind: str, source: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.rec.add_event(self.t(), kind, source, message, data)
        self.log.info(message, kind=kind, source=source, t_s=self.t(), **(data or {}))
        self.remote.saw_event(self.t(), kind, source, message, data)

    def _make_loop(self) -> MfcRhLoop | ChamberRhLoop | None:
        rig, c = self.rig, self.cfg
        if rig.dry_mfc is not None and rig.wet_mfc is not None:
            sim = rig.profile.sim
            gains = LoopGains(
                c.kp, c.ki, c.kd, c.total_flow_slpm, c.wet_fraction_min, c.wet_fraction_max,
                dry_line_rh_pct=sim.dry_line_rh_pct, wet_line_rh_pct=sim.bubbler_rh_pct,
            )
            return MfcRhLoop(gains, self.clock, rig.dry_mfc, rig.wet_mfc)
        if rig.chamber is not None:
            return ChamberRhLoop.from_control(self.clock, rig.chamber, c)
        return None

    # -- requests from signal handlers (set flags only: acted on at the next safe point) ---------
    def request_pause(self) -> None:
        self._pause_requested = True

    def request_abort(self, reason: str, *, someone_asked: bool = True) -> None:
        """Abort at the next safe point. ``someone_asked=False`` (the terminal hung up): nobody is
        left at the rig, so the tries to reach an unverified safe state go on (see
        :meth:`_keep_trying_safe`)."""
        self._abort_reason = reason
        self._abort_asked = someone_asked

    @property
    def hold_now(self) -> HoldClock | None:
        """The hold under way (a pause inside one counts toward it), None between holds."""
        return self._hold_now

    @property
    def pausing(self) -> bool:
        """A pause was requested and has not ended: it waits for the next safe point or is asking."""
        return self._pause_requested or self._in_pause

    def pause_point(self) -> str:
        """Where a pause asked now takes effect, as the pause's answer and ``status`` say it.

        A pause never stops a pump mid-dispense (a split cast is a different film): asked while
        a pre-wet or a cast dispenses, it is taken when that step has ended, the pump stopped
        and read back. Abort (a second Ctrl-C, SIGTERM, ``castrig abort``) still stops at once."""
        if self._dispensing is not None:
            return f"after {self._dispensing} (a pump is dispensing: a pause waits for it to finish; abort stops it now)"
        return "at the next safe point"

    # -- the whole run --------------------------------------------------------------------------
    def run(
        self,
        start_step: int = 0,
        *,
        resume_note: str | None = None,
        resume_elapsed_s: float = 0.0,
        resume_setpoint: dict[str, Any] | None = None,
        resume_gap: dict[str, Any] | None = None,
        skip: set[int] | frozenset[int] = frozenset(),
    ) -> RunResult:
        """Run the steps from ``start_step``.

        On resume, ``resume_elapsed_s`` is how long the interrupted step had already run (a wait
        or purge continues for the rest of its duration) and ``resume_setpoint`` the last
        setpoint event's data, re-applied so RH control picks up where it was. ``skip``: steps of
        membranes lost in a crash (journaled ``skipped`` by the resume), not run again.
        """
        steps = self.recipe.steps
        result = RunResult("completed")
        recondition_at = None
        self.status.state = "running"
        self._last_good_rh_t = self.clock.now()
        if not self.clock.virtual:
            self._stall = StallWatch(self.clock.now)
            self._stall.start()
        try:
            self.rig.arm_watchdogs()  # the ticks that keep them alive start now
            for role in self.rig.found_moving:  # a warning: solution may already lie on the support
                self.event("warning", role, f"{role}: found pumping as the rig opened (left running by a process that "
                           "died mid-dispense, or started by hand): stopped before it was set up; check the support "
                           "for liquid", {"found_moving": True})
            for role in self.rig.found_streaming:
                self.event("warning", role, f"{role}: found streaming as the rig opened (left so by other software): "
                           "put back to polling under its unit id", {"found_streaming": True})
            self._warn_of_views_without_images(steps[start_step:])
            self._warn_of_pumps_in_basic_mode()
            if not resume_note:
                # this run's volumes from zero: a pump's counters still held the last dispense (of
                # another run, or of a pump found pumping), sampled as this run's until its first
                for name, pump in self.rig.pumps().items():
                    self._talk(name, pump.clear_dispensed)
            if resume_note:
                self.event("resume", "runner", resume_note, {"start_step": start_step, "elapsed_in_step_s": resume_elapsed_s,
                                                             **(resume_gap or {})})
                self._resume_elapsed = resume_elapsed_s
                sp = (resume_setpoint or {}).get("setpoint_rh_pct")
                if sp is not None:
                    self._set_rh(float(sp), None)
                elif (resume_setpoint or {}).get("purge_flow_slpm") is not None:
                    self._purge(float(resume_setpoint["purge_flow_slpm"]))
                recondition_at = self._recondition_at(start_step, skip)
            else:
                self.event("run_start", "runner", f"recipe {self.recipe.name}: {len(steps)} steps", {"steps": len(steps)})
            for i in range(start_step, len(steps)):
                if i in skip:
                    continue
                step = steps[i]
                self.status.step_index, self.status.step_name = i, step.type
                self._publish(step_setpoint_rh_pct=getattr(step, "setpoint_rh_pct", None))
                if i == recondition_at:
                    self._recondition(i)
                self.rec.add_journal(self.t(), i, "started", {"type": step.type})
                self.event("step_start", "runner", f"{step_label(i, None, len(steps))}: {_describe(step)}", {"step": i, "type": step.type})
                data = self._execute(i, step) or {}
                self._keep_twin_film(data)
                made_here = self._made_by_its_cast_at(i) if isinstance(step, m.CastStep) else None
                if made_here is not None:  # (its stamp in the step's end too: a resume that finds the
                    data["made_utc"] = made_utc_now()  # record not written makes it with this one)
                self.rec.add_journal(self.t(), i, "done", data)
                if made_here is not None:
                    self._made(*made_here, None, "cast; the recipe has no evaporate step for it", data["made_utc"],
                               twin=data.get("twin"))
                self.event("step_end", "runner", f"{step_label(i)} done", {"step": i, "type": step.type})
                if self._pause_requested and not self._in_pause:  # e.g. asked during a dispense: taken now it is over
                    self._paused_after = f"{step_label(i, step)} done"
                    self._tick()
            judged = [mb for mb in self.rec.membranes() if mb.verdict is not None]
            result.verdict = judged[-1].verdict if judged else self._verdict
        except RunAborted as exc:
            result = RunResult(exc.outcome, exc.reason, asked=exc.outcome == "aborted")  # a fault raises it too
        except InterlockTripped as exc:
            result = RunResult("aborted", str(exc))
            self._record_safely("interlock", exc.trip.name, exc.trip.message, {"action": exc.trip.action, "interlock": exc.trip.name})
        except KeyboardInterrupt:
            result = RunResult("interrupted", "interrupted by the operator (Ctrl-C twice)")
        except (CastrigError, OSError) as exc:
            result = RunResult("faulted", f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug must still leave the rig safe and the run readable
            result = RunResult("faulted", f"internal error {type(exc).__name__}: {exc}")
            self.log.exception("internal error")
        finally:
            if self._stall is not None:
                self._stall.stop()
            result.safe = self._safe_state(result)
            try:
                result.membranes = [mb.to_dict() for mb in self.rec.membranes()]
            except Exception:  # noqa: BLE001 - a store failing must not hide the outcome
                self.log.error("cannot read the membranes back")
        self.status.state = result.outcome
        return result

    def _recondition_at(self, start_step: int, skip: set[int] | frozenset[int]) -> int | None:
        """On resume: the first pre-wet or cast it runs, where no condition step runs before it
        (:meth:`_recondition` goes first there); None when there is none."""
        steps = self.recipe.steps
        for i in range(start_step, len(steps)):
            if i in skip:
                continue
            if isinstance(steps[i], m.ConditionStep):
                return None  # the recipe brings the RH back itself
            if isinstance(steps[i], (m.PrewetStep, m.CastStep)):
                return i
        return None

    def _recondition(self, first: int) -> None:
        """On resume, before the first membrane's pre-wet or cast it makes: the recipe's last
        condition step before it, run again (its set point, band, stability and timeout; journaled
        as an event, not as that step). The crash left the rig in the safe state — dry purge — and
        the resume went to the next membrane's pre-wet and cast at ~45 %RH for 70: the crash lost
        the drying membrane and spoiled the next one too (DESIGN §6: at most the one drying). Not
        only where the resume starts at the pre-wet: after a crash in a capture or analyse, those
        were repeated (minutes) and the next pre-wet came with the RH still far off."""
        steps = self.recipe.steps
        before = [i for i in range(first) if isinstance(steps[i], m.ConditionStep)]
        if not before:
            self.event("warning", "runner", f"resuming: {step_label(first, steps[first])} with no condition step before it "
                       "in the recipe: the chamber is not brought back to a set RH first", {"step": first})
            return
        c = before[-1]
        cond = steps[c]
        self.event("recondition", "runner", f"resuming: before {step_label(first, steps[first])}, {step_label(c, cond)} run again "
                   f"(RH to {cond.setpoint_rh_pct:g} ± {cond.band_rh_pct:g} %RH for {cond.stable_for_s:g} s), the rig having "
                   "been left in the safe state", {"step": first, "condition_step": c})
        data = self._step_condition(c, cond)
        self.event("recondition_end", "runner", f"RH settled after {data['settled_after_s']:.0f} s: going on with "
                   f"{step_label(first, steps[first])}", {"step": first, **data})

    def _show_safe(self, state: str, message: str, **more: Any) -> None:
        """Publish where the run's ending is (``control/status.json``): from the moment the rig is
        made safe the run is no longer ``running`` — ``making_safe``, then ``unsafe_retrying``
        while an unverified safe state is tried again (DESIGN §6)."""
        self.safe_progress = {"state": state, "message": message, **more}
        try:
            self.status.t_s = self.t()
            self.remote.publish()
        except Exception:  # noqa: BLE001 - a status file that cannot be written must not stop the safe state
            self.log.error("cannot publish the status", state=state)

    def _safe_state(self, result: RunResult) -> SafeStateReport:
        why = "the run completed" if result.outcome == "completed" else f"{result.outcome}: {result.reason}"
        if result.outcome != "completed":
            # the decision on record before the rig is made safe (which may take minutes of tries):
            # a process that died meanwhile left run.json 'running', and a plain resume started the
            # rig again after an accepted abort
            self._record_safely("run_end", "runner", f"{result.outcome}: {result.reason}",
                                {"outcome": result.outcome, "reason": result.reason})
        self._show_safe("making_safe", f"making the rig safe ({why})", outcome=result.outcome, reason=result.reason)
        if self.loop is not None:
            self.loop.stop()

        def first_try(first: SafeStateReport) -> None:
            self._record_safely("safe_state", "control", f"{first.summary()} (first try; trying again for up to "
                                f"{self.cfg.safe_state_retry_s:g} s)", {**first.to_dict(), "first_try": True})
            self._show_safe("making_safe", f"{first.summary()}: trying again for up to {self.cfg.safe_state_retry_s:g} s ({why})",
                            outcome=result.outcome, reason=result.reason,
                            unverified=[k for k, ok in first.verified.items() if not ok])

        report = make_safe(
            pumps=self.rig.pumps(),
            dry_mfc=self.rig.dry_mfc,
            wet_mfc=self.rig.wet_mfc,
            chamber=self.rig.chamber,
            purge_flow_slpm=self.cfg.purge_flow_slpm,
            clock=self.clock,
            retry_for_s=self.cfg.safe_state_retry_s,
            on_first_try=first_try,
        )
        self._note_pump_alarms()
        self._record_safely("safe_state", "control", report.summary(), report.to_dict())
        if not report.safe and self.cfg.safe_state_keep_trying_s > 0:
            report = self._keep_trying_safe(report, why)
        if not report.safe and result.outcome == "completed":
            result.outcome, result.reason = "faulted", report.summary()
        return report

    def _keep_trying_safe(self, report: SafeStateReport, why: str = "") -> SafeStateReport:
        """A device the safe state could not reach (its cable out, its controller rebooting) is
        tried again every ``safe_state_every_s`` for up to ``safe_state_keep_trying_s`` before
        the process lets go of the rig: if it comes back, it is made safe then — nobody else
        would switch off wet air left flowing overnight. Ctrl-C, SIGTERM or an abort from
        ``castrig abort`` / the web page stop the tries (a person or the system wants it to end);
        a hung-up terminal does not (nobody is left to do it).

        With safe-mode pumps the tries come at least every third of their watchdog, as the
        run's keep-alive does: tried only every ``safe_state_every_s`` (10 s by default, the
        watchdog of the shipped profiles too) a pump that answers again alarms ``A?T`` before
        every try, and its alarm prompt answers the try's in-step marker, so it never reads back
        stopped (seen: a pump stalled 1 min, back and stopped, 'NOT verified' for 15 min).

        Meanwhile the run's state is ``unsafe_retrying`` (``castrig status|watch``, the web page),
        with the devices not verified, the tries made and when the next one comes."""
        keep, every = self.cfg.safe_state_keep_trying_s, self.cfg.safe_state_every_s
        watchdog = self._pump_watchdog_s()
        if watchdog is not None:
            every = min(every, watchdog / 3.0)
        unverified = ", ".join(k for k, ok in report.verified.items() if not ok)
        self.log.error(f"safe state NOT verified ({unverified}): trying again every {every:g} s for up to {keep:g} s "
                       "(Ctrl-C stops)")
        # requests from now on stop the tries; so does a Ctrl-C or SIGTERM already noted while the
        # rig was being made safe (``stop_safe_tries``, set by the run's signal handlers)
        self._pause_requested, self._abort_reason = False, None
        t0 = pass_t = self.clock.now()
        tries = 0

        def show() -> None:
            bad = [k for k, ok in report.verified.items() if not ok]
            nxt = min(pass_t + every, t0 + keep)
            self._show_safe(
                "unsafe_retrying",
                f"safe state NOT verified ({', '.join(bad)}): tried again {tries} time{'' if tries == 1 else 's'}, "
                f"next in {max(0.0, nxt - self.clock.now()):.0f} s, every {every:.3g} s for up to {keep:g} s "
                f"(castrig abort or Ctrl-C stops the tries) — {why}",
                reason=why, unverified=bad, tries=tries, every_s=every, keep_trying_s=keep,
                next_try_t_s=round(nxt - self.origin, 3), gives_up_t_s=round(t0 + keep - self.origin, 3))

        try:
            while not report.safe and self.clock.now() - t0 < keep and not self.stop_safe_tries:
                show()
                # a pass starts ``every`` after the last one started (a pass over devices that
                # do not answer takes seconds of its own: slept on top, the pumps' watchdog ran out)
                wait = min(pass_t + every, t0 + keep) - self.clock.now()
                if wait > 0:
                    self.clock.sleep(wait)
                self.remote.poll()  # castrig abort / the web page
                if self._pause_requested or self.stop_safe_tries or (self._abort_reason is not None and self._abort_asked):
                    self.log.error("safe state: tries stopped on request")
                    break
                pass_t = self.clock.now()
                tries += 1
                report = make_safe(pumps=self.rig.pumps(), dry_mfc=self.rig.dry_mfc, wet_mfc=self.rig.wet_mfc,
                                   chamber=self.rig.chamber, purge_flow_slpm=self.cfg.purge_flow_slpm, clock=self.clock)
        except KeyboardInterrupt:
            self.log.error("safe state: the operator stopped the tries")
        waited = self.clock.now() - t0
        how = f"after {waited:.0f} s more" if report.safe else f"still not, after {waited:.0f} s more"
        self._record_safely("safe_state", "control", f"{report.summary()} ({how})", {**report.to_dict(), "after_s": waited})
        self._show_safe("making_safe", f"{report.summary()} ({how}); the run is ending — {why}", reason=why, tries=tries)
        return report

    def _note_pump_alarms(self) -> None:
        """Alarms a pump sent on its own and its driver read before a command (its watchdog's,
        during a stalled line), as warning events: they had stayed in the driver, and the record
        never said the caster was stopped by its watchdog (an outside tester)."""
        for name, pump in self.rig.pumps().items():
            alarms = pump.alarms_sent()
            for said in alarms[self._alarms_seen.get(name, 0):]:
                self._record_safely("warning", name, f"{name}: {said}, sent by the pump on its own", {"alarm": said})
            self._alarms_seen[name] = len(alarms)

    def _record_safely(self, kind: str, source: str, message: str, data: dict[str, Any]) -> None:
        try:
            self.event(kind, source, message, data)
        except Exception:  # noqa: BLE001 - the store failing must not stop the safe state
            self.log.error(message, kind=kind)

    # -- steps ----------------------------------------------------------------------------------
    def _execute(self, i: int, step: Any) -> dict[str, Any] | None:
        handler = getattr(self, f"_step_{step.type}")
        return handler(i, step)

    def _remaining(self, duration_s: float) -> float:
        """A resumed wait or purge runs only for what was left of it."""
        elapsed, self._resume_elapsed = self._resume_elapsed, 0.0
        return max(0.0, duration_s - elapsed)

    def _step_wait(self, i: int, step: m.WaitStep) -> None:
        self._hold(self._remaining(step.duration_s), hold_band=self.loop is not None and self.loop.active)

    def _step_purge(self, i: int, step: m.PurgeStep) -> None:
        self._purge(step.flow_slpm or self.cfg.purge_flow_slpm)
        self._hold(self._remaining(step.duration_s))

    def _purge(self, flow_slpm: float) -> None:
        if self.loop is not None:
            self.loop.stop()
            self._silent.pop("rh_loop", None)  # nothing is asked of the loop now; its MFCs are, by name
        wet, dry, chamber = self.rig.wet_mfc, self.rig.dry_mfc, self.rig.chamber
        said = f"purge: dry air {flow_slpm:g} slpm, wet air off"
        if wet is not None and dry is not None:
            self._until_done(wet.name, lambda: wet.set_flow_slpm(0.0))
            self._until_done(dry.name, lambda: dry.set_flow_slpm(flow_slpm))
        elif chamber is not None:
            self._until_done(chamber.name, lambda: chamber.set_humidifier(False))
            said = "purge: the chamber's humidifier off (no flow to set)"  # (it said a dry-air flow it never set)
        # (purge_flow_slpm: what a resume purges with again)
        self.event("setpoint", "control", said, {"purge_flow_slpm": flow_slpm})

    def _set_rh(self, rh_pct: float, ramp: float | None = None) -> None:
        if self.loop is None:
            raise RunAborted("faulted", "the profile has no humidity control (MFC pair or chamber)")
        loop = self.loop
        self._until_done("rh_loop", lambda: loop.set_setpoint(rh_pct, ramp, measured_rh_pct=self._last_rh))
        self._monitors["rh_band_hold"].reset()
        self.event("setpoint", "control", f"RH setpoint {rh_pct:g} %RH" + (f" ramp {ramp:g} %RH/min" if ramp else ""),
                   {"setpoint_rh_pct": rh_pct, "ramp_rh_pct_per_min": ramp})

    def _step_condition(self, i: int, step: m.ConditionStep) -> dict[str, Any]:
        self._set_rh(step.setpoint_rh_pct, step.ramp_rh_pct_per_min)
        t_start = self.t()
        state = {"since": None}

        def settled() -> bool:
            sp = self.loop.current_setpoint() if self.loop else None
            if self._last_rh is None or sp is None or sp != step.setpoint_rh_pct:
                state["since"] = None
                return False
            if abs(self._last_rh - sp) <= step.band_rh_pct:
                if state["since"] is None:
                    state["since"] = self.t()
                return self.t() - state["since"] >= step.stable_for_s
            state["since"] = None
            return False

        # (settled is watched through a pause too: RH held in band while paused counts toward
        # stable_for_s as the paused time counts toward timeout_s; a pause longer than the
        # time-out, RH in band all along, faulted the run at the resume: castrig.recipe.hold)
        if not self._hold(step.timeout_s, until=settled, watch=settled):
            raise RunAborted("faulted", f"{step_label(i)} condition: RH did not settle within ±{step.band_rh_pct:g} %RH of "
                                        f"{step.setpoint_rh_pct:g} %RH in {step.timeout_s:g} s (last {self._last_rh})")
        return {"settled_after_s": self.t() - t_start}

    def _pump_step(self, i: int, pump: SyringePump | None, role: str, volume_ml: float, rate_ml_min: float) -> dict[str, Any]:
        if pump is None:
            raise RunAborted("faulted", f"{step_label(i)}: the profile has no {role}")
        self._dispensing = "the cast" if role == "caster" else "the pre-wet"
        try:
            return self._dispense(i, pump, role, volume_ml, rate_ml_min)
        finally:
            self._dispensing = None

    def _dispense(self, i: int, pump: SyringePump, role: str, volume_ml: float, rate_ml_min: float) -> dict[str, Any]:
        expected = 60.0 * volume_ml / rate_ml_min
        self._start_dispense(pump, volume_ml, rate_ml_min, expected)
        self.event("pump", role, f"{role}: dispensing {volume_ml:g} mL at {rate_ml_min:g} mL/min",
                   {"volume_ml": volume_ml, "rate_ml_min": rate_ml_min})
        def stopped() -> bool:
            state = self._pump_state(pump)
            if state is None or state.moving:
                return False
            # confirmed by a second reading: one stale "stopped" (a reply repeated or late on the
            # line) had ended a healthy cast as "dispensed 0.0012 mL of 0.03 mL"
            again = self._pump_state(pump)
            return again is not None and not again.moving

        done = self._hold(expected * 1.5 + 30.0, until=stopped, planned_s=expected)
        dispensed = pump.dispensed().infused_ml
        if not done:
            pump.stop()
            raise RunAborted("faulted", f"{step_label(i)}: {role} still running after {expected * 1.5 + 30:g} s")
        if dispensed < 0.98 * volume_ml:
            raise RunAborted("faulted", f"{step_label(i)}: {role} dispensed {dispensed:g} mL of {volume_ml:g} mL")
        self.event("pump", role, f"{role}: dispensed {dispensed:g} mL", {"dispensed_ml": dispensed})
        return {"dispensed_ml": dispensed}

    def _start_dispense(self, pump: SyringePump, volume_ml: float, rate_ml_min: float, expected_s: float) -> None:
        """Set the dispense up and start it, riding out a lost line as every other exchange does
        (:meth:`_talk`; ``device_comms`` after ``control.comms_lost_s``), the rig ticking between
        tries. The set-up is sent whole again (idempotent, nothing moves); the start again only
        once the pump, asked, says it is neither moving nor has infused anything since its
        counter was cleared (its ``RUN`` may have arrived and only the reply been lost; a short
        dispense may even have ended). Sent once, a set-up command that met a dropped connection
        (a TCP serial server) faulted the run before the pump had moved."""
        name = pump.name

        def prepared() -> bool:
            for setting in pump.dispense_setup(volume_ml, rate_ml_min):
                if self._talk(name, lambda: (setting(), True)[1]) is None:
                    return False
                self._keep_pumps_alive()  # a slow line to this pump must not starve the others' watchdogs
            return True

        if not prepared():
            self._hold(None, until=prepared, planned_s=expected_s)
        sent = [False]

        def started() -> bool:
            if sent[0]:
                state = self._pump_state(pump)
                if state is None:
                    return False
                if state.moving:
                    return True
                count = self._talk(name, pump.dispensed)
                if count is None:
                    return False
                if count.infused_ml > 0:
                    return True
            sent[0] = True
            return self._talk(name, lambda: (pump.start(), True)[1]) is not None

        if not started():
            self._hold(None, until=started, planned_s=expected_s)

    def _warn_of_pumps_in_basic_mode(self) -> None:
        """A warning, as the run starts, for each NE-1000 the profile keeps in basic mode
        (``safe_mode_s: null``): its replies carry no checksum (an outside pass had one flipped
        bit recorded as 0.008 mL dispensed before the pump moved) and no watchdog stops it when
        castrig dies mid-dispense. Allowed (old firmware, other software on the line), said."""
        configs = self.rig.profile.device_configs()
        for name in self.rig.pumps():
            cfg = configs.get(name)
            if getattr(cfg, "model", None) == "ne1000" and getattr(cfg, "safe_mode_s", 0) is None:
                self.event("warning", name, f"{name}: in basic mode (safe_mode_s: null): its replies carry no checksum, "
                           "so a corrupted byte reads as a value, and no watchdog stops it if castrig dies mid-dispense; "
                           "safe mode (safe_mode_s: 10) has both", {"basic_mode": True})

    def _warn_of_views_without_images(self, steps: list[Any]) -> None:
        """A warning, as the run starts, for each view the recipe captures that a folder camera
        has no image of yet: an empty folder was found at the capture step, after the film was
        cast (camera_missing, the membrane made and never analysed). Images may arrive while a
        run goes on, so it is a warning, not a refusal."""
        cam = self.rig.camera
        files = getattr(cam, "files", None)
        if cam is None or files is None:
            return
        views = dict.fromkeys(v for st in steps if isinstance(st, m.CaptureStep) for v in st.views)
        try:
            missing = [v for v in views if not files(v)]
        except DeviceError:
            return  # (its folder gone: the capture says so)
        for view in missing:
            self.event("warning", cam.name, f"{cam.name}: no {view} image in {getattr(cam, 'folder', 'its folder')} yet: "
                       "its capture step aborts the run unless one arrives before it", {"view": view, "no_image": True})

    def _pump_state(self, pump: SyringePump) -> PumpState | None:
        """The pump's state; ``None`` while it does not answer (see :meth:`_talk`)."""
        return self._talk(pump.name, pump.state)

    def _until_done(self, name: str, action: Callable[[], Any]) -> None:
        """An idempotent setting that must take effect (a purge flow, a setpoint): retried every
        control period while the device does not answer, until ``device_comms`` trips."""
        while self._talk(name, lambda: (action(), True)[1]) is None:
            self.clock.sleep(self.cfg.control_period_s)

    def _talk(self, name: str, action: Callable[[], Any]) -> Any:
        """Talk to a pump, MFC or chamber, riding out a bounded loss of communication.

        A reply that does not come or does not parse (:class:`LinkError`,
        :class:`DeviceCommsError`) returns ``None`` and is retried at the next tick; once the
        device has not answered for ``control.comms_lost_s`` — counted from the start of the
        first exchange it failed — the ``device_comms`` interlock aborts. The deadlines are
        checked after every exchange (:meth:`_check_deadlines`), so a tick that waits on several
        silent devices in turn overruns a limit by at most the exchange in hand. An error or
        alarm the device itself reports (a pump's ``A?S``) is not a comms problem: a pump's
        trips ``pump_alarm`` at once, others propagate (faulted).
        """
        t0 = self.clock.now()
        try:
            value = action()
        except (LinkError, DeviceCommsError) as exc:
            since = self._silent.get(name, (t0, ""))[0]
            first = name not in self._silent
            self._silent[name] = (since, str(exc))
            if first:
                self.event("warning", name, f"{name}: no answer ({exc}); retrying for up to {self.cfg.comms_lost_s:g} s",
                           {"error": str(exc)})
            self._check_deadlines()
            return None
        except DeviceError as exc:
            if name in self.rig.pumps():
                raise InterlockTripped(Trip("pump_alarm", "abort", str(exc))) from exc
            raise
        silent = self._silent.pop(name, None)
        if silent is not None:
            self.event("warning_clear", name, f"{name}: answering again after {self.clock.now() - silent[0]:.1f} s")
        if self._silent or self._rh_failing:  # else nothing is known to be failing: no limit to check
            self._check_deadlines()
        return value

    def _check_deadlines(self) -> None:
        """Trip ``sensor_stale`` / ``device_comms`` as soon as a sensor or device already known
        not to answer has been silent past its limit (``control.sensor_stale_s``,
        ``control.comms_lost_s``).

        Called after every exchange, failed or not: a tick that talks to several silent devices
        one after another (each costing its timeout x tries) must not stack their retry budgets
        before the limits are looked at. Not at a tick's start: after a stretch without ticks (an
        analysis, a capture) a device that failed once before it is asked again first, and one
        that answers clears its silence. Only what is known to be failing counts, so a long
        pause between exchanges that answer trips nothing.
        """
        now = self.clock.now()
        last = self._last_good_rh_t
        if self._rh_failing and last is not None and now - last > self.cfg.sensor_stale_s:
            raise InterlockTripped(Trip("sensor_stale", "abort", f"no valid near-membrane RH reading for {now - last:.0f} s"))
        limit = self.cfg.comms_lost_s
        for name, (since, error) in self._silent.items():
            if now - since >= limit:
                raise InterlockTripped(Trip("device_comms", "abort",
                                            f"{name}: no answer for {now - since:.0f} s (limit {limit:g} s; {error})"))

    def _step_prewet(self, i: int, step: m.PrewetStep) -> dict[str, Any]:
        return self._pump_step(i, self.rig.water_pump, "water_pump", step.volume_ml, step.rate_ml_min)

    def _step_cast(self, i: int, step: m.CastStep) -> dict[str, Any]:
        plan = membrane_of_step(self._plans, i)
        if plan is not None:  # every cast starts a new membrane, on a fresh support position
            mid = plan.membrane_id(self.rec.info.run_id)
            t_start = self._step_started_t(plan.first_step) if plan.first_step != i else self.t()
            self.rec.save_membrane(MembraneRecord(mid, plan.k, i, "forming", support_position=plan.k,
                                                  simulated=self.rig.twin is not None, t_start_s=t_start))
            self.event("membrane", "runner", f"membrane {mid}: cast on support position {plan.k}",
                       {"membrane_id": mid, "status": "forming", "support_position": plan.k})
        return self._pump_step(i, self.rig.caster, "caster", step.volume_ml, step.rate_ml_min)

    # -- membranes --------------------------------------------------------------------------------
    def _step_started_t(self, i: int) -> float | None:
        starts = [e.t_s for e in self.rec.journal() if e.step_index == i and e.state == "started"]
        return starts[-1] if starts else None

    def _membrane(self, i: int) -> tuple[MembranePlan, MembraneRecord] | None:
        """The membrane step ``i`` belongs to, and its record (None: no cast before it)."""
        plan = membrane_of_step(self._plans, i)
        if plan is None:
            return None
        mid = plan.membrane_id(self.rec.info.run_id)
        rec = next((mb for mb in self.rec.membranes() if mb.membrane_id == mid), None)
        if rec is None:  # its cast ran before membranes were recorded: start the record now
            rec = MembraneRecord(mid, plan.k, plan.cast_step, "made", support_position=plan.k,
                                 simulated=self.rig.twin is not None)
        return plan, rec

    def _made(self, plan: MembranePlan, mb: MembraneRecord, evap_data: dict[str, Any] | None, how: str,
              made_utc: str | None = None, *, twin: dict[str, Any] | None = None) -> None:
        """The membrane exists: its status, end time and process record (RH history from its
        pre-wet to the end of its evaporation, volumes and rates dispensed); ``twin``: the twin's
        snapshot as it was made (else the evaporation's, in ``evap_data``)."""
        mb.status, mb.t_end_s = "made", self.t()
        mb.process = process_record(self.rec, self.recipe, plan, mb.t_start_s, mb.t_end_s, evap_data)
        # the wall-clock time it was made (t_end_s is the run's clock, virtual on the twin): exports
        # and the fleet store's membranes show it as made_utc, a lab sorts membranes by it. Stamped
        # once: the step's end journals the same stamp (``evap_data``), and a resume that finds one
        # of the two writes without the other completes it with this stamp (castrig.recipe.made_on_resume)
        mb.process["made_utc"] = made_utc or made_utc_now()
        if evap_data is not None:
            evap_data["made_utc"] = mb.process["made_utc"]
            twin = evap_data.get("twin", twin)
        if twin is not None:  # the twin's film, in the same write as "made": a kill -9 before
            mb.process["twin"] = twin  # the step's end is journaled leaves it to resume from
        t_start = mb.t_start_s if mb.t_start_s is not None else 0.0
        paused_s = self._paused_s_between(t_start, mb.t_end_s)
        if paused_s > 0:  # its film went on drying meanwhile, at whatever RH the pause held
            mb.process["paused_s"] = paused_s
            how = f"{how}; paused {paused_s:.0f} s between its cast and its end, the film drying meanwhile"
        self.rec.save_membrane(mb)
        self.event("membrane", "runner", f"membrane {mb.membrane_id}: made ({how})",
                   {"membrane_id": mb.membrane_id, "status": "made"})

    def _keep_twin_film(self, data: dict[str, Any]) -> None:
        """On the twin, a step that ends with a film on the support journals the twin's snapshot
        (``data["twin"]``): a resume puts back the film as the last step to end left it, cast and
        drying or formed. Only an evaporation's end kept it: a recipe without one (cast, wait,
        capture) killed after its cast was resumed on a bare support and imaged a blank film."""
        twin = self.rig.twin
        if twin is not None and twin.has_film():
            data["twin"] = twin.snapshot()

    def _paused_s_between(self, t0: float, t1: float) -> float:
        """Seconds of the run clock between ``t0`` and ``t1`` this process held paused."""
        return sum(max(0.0, min(b, t1) - max(a, t0)) for a, b in self._pauses)

    def _made_by_its_cast_at(self, i: int) -> tuple[MembranePlan, MembraneRecord] | None:
        """The membrane cast step ``i`` makes, and its record: one whose recipe has no evaporate
        step is made when its cast is over (:attr:`MembranePlan.made_at_step`), recorded once the
        cast is journaled, so its record holds the volume the cast dispensed. None: not made here."""
        found = self._membrane(i)
        if found is not None and found[0].cast_step == i and found[0].evaporate_step is None:
            return found
        return None

    def _step_evaporate(self, i: int, step: m.EvaporateStep) -> dict[str, Any]:
        """Hold the film at the setpoint for ``duration_s`` of film time: a pause inside counts
        toward it and is band-checked as the rest (:mod:`castrig.recipe.hold`); its data say how
        long it was paused (``paused_s``)."""
        self._set_rh(step.setpoint_rh_pct)
        mon = self._monitors["rh_band"]
        mon.for_s = step.max_out_of_band_s
        mon.reset()
        stats = {"n": 0, "sum": 0.0, "sq": 0.0, "out_s": 0.0}
        t_start = self.t()
        last = [t_start]

        def check() -> None:
            now = self.t()
            if self._last_rh is not None:
                err = self._last_rh - step.setpoint_rh_pct
                stats["n"] += 1
                stats["sum"] += err
                stats["sq"] += err * err
                bad = abs(err) > step.band_rh_pct
                if bad:
                    stats["out_s"] += now - last[0]
                if mon.update(now, bad) == "tripped":
                    raise InterlockTripped(Trip("rh_band", "abort",
                        f"RH {self._last_rh:.1f} %RH outside {step.setpoint_rh_pct:g} ± {step.band_rh_pct:g} %RH "
                        f"for more than {step.max_out_of_band_s:g} s during evaporation" + (" (paused)" if self._in_pause else "")))
            last[0] = now

        self._hold(step.duration_s, watch=check)
        n = max(1, stats["n"])
        data = {
            "rh_error_mean_pct": stats["sum"] / n,
            "rh_error_rms_pct": math.sqrt(stats["sq"] / n),
            "out_of_band_s": stats["out_s"],
        }
        paused_s = self._paused_s_between(t_start, self.t())
        if paused_s > 0:  # counted toward its duration, the film drying (and band-checked) meanwhile
            data["paused_s"] = paused_s
        twin = self.rig.twin
        if twin is not None:
            data["twin"] = twin.snapshot()
        found = self._membrane(i)
        if found is not None and found[0].evaporate_step == i:
            self._made(*found, data, "evaporated under control")
        return data

    def _step_capture(self, i: int, step: m.CaptureStep) -> dict[str, Any]:
        cam = self.rig.camera
        if cam is None:
            raise InterlockTripped(Trip("camera_missing", "abort", "the profile has no camera"))
        found = self._membrane(i)
        mid = found[1].membrane_id if found is not None else None
        recorded = {im.name for im in self.rec.images()}  # a repeated capture (resume) adds only what is missing
        fields: list[dict[str, str]] = []
        for f in range(step.fields):
            names: dict[str, str] = {}
            for view in step.views:
                name = f"s{i}_field{f}_{view}"
                names[view] = name
                if name in recorded:
                    if self.rig.twin is not None:  # the twin's stage moves on as it did before the crash
                        self.rig.twin.skip_view(view)
                    continue
                try:
                    # (ticking meanwhile on the wall clock: a slow camera -- or the twin rendering
                    # small pores, 22 s -- stopped the RH loop and the pumps' keep-alive, and a
                    # 10 s safe-mode watchdog aborted the run)
                    frame = self._while_ticking(lambda stopped, view=view: cam.snap(Illumination(view)), "castrig-capture")
                except (CastrigError, OSError) as exc:
                    raise InterlockTripped(Trip("camera_missing", "abort", str(exc))) from exc
                meta = {**frame.metadata, "exposure_ms": frame.exposure_ms, "step": i, "field": f}
                if mid is not None:
                    meta["membrane_id"] = mid
                self.rec.save_image(self.t(), name, frame.image, pixel_size_um=frame.pixel_size_um,
                                    illumination=view, metadata=meta)
                self._tick()
            fields.append(names)
            self.event("capture", cam.name, f"field {f}: {', '.join(step.views)}" + (f" of membrane {mid}" if mid else ""),
                       {"field": f, "images": names, "membrane_id": mid})
        out: dict[str, Any] = {"fields": fields, "membrane_id": mid}
        if self.rig.twin is not None:  # the next capture's field, for a resume (Twin.snapshot)
            out["twin"] = {"camera_next_field": self.rig.twin.snapshot()["camera_next_field"]}
        return out

    def _step_analyse(self, i: int, step: m.AnalyseStep) -> dict[str, Any]:
        from castrig.recipe.analyse import AnalysisStopped, analyse_capture, membrane_capture

        grade = step.grade or self.recipe.grade
        found = self._membrane(i)
        mb = found[1] if found is not None else None
        if mb is not None and mb.status == "judged" and mb.verdict is not None:
            # judged before a crash: idempotent, the grades already recorded stand
            self._verdict = mb.verdict
            self.event("analysis", "analysis", f"membrane {mb.membrane_id}: already judged; grades met: "
                       f"{', '.join(mb.grades_met) or 'none'}", {"membrane_id": mb.membrane_id, "grades_met": mb.grades_met})
            return {"grades_met": mb.grades_met, "membrane_id": mb.membrane_id}
        mid = mb.membrane_id if mb is not None else None
        taken = membrane_capture(self.rec, mid)  # every capture of it, each kind's latest (not only its last step's)
        capture = taken.fields
        used = {ill: [im.name for _, im in sorted((f, views[ill]) for f, views in capture.items() if ill in views)]
                for ill in taken.steps}
        try:
            outcome = self._while_ticking(lambda stopped: analyse_capture(self.rec.run_dir, capture, grade=grade, stopped=stopped))
        except AnalysisStopped:
            raise
        except Exception as exc:  # noqa: BLE001 - the measurement failed, not the rig
            return self._not_analysed(mb, capture, exc)
        self._verdict = outcome.get("verdict")
        prefix = f"{mid}/" if mid else ""
        have = set(self.rec.results())
        for name, value in (("metrics", outcome["metrics"]), ("metrics_per_field", {"fields": outcome["per_field"]}),
                            ("verdict", outcome.get("verdict")), ("truth", outcome.get("truth"))):
            if value is not None and prefix + name not in have:
                self.rec.save_result(self.t(), prefix + name, value)
        met = (outcome.get("verdict") or {}).get("grades_met", [])
        self.event("analysis", "analysis", (f"membrane {mid}: " if mid else "") + f"metrics: {outcome['summary']}; "
                   f"grades met: {', '.join(met) or 'none'}; images: {taken.said()}",
                   {"metrics": outcome["metrics"], "grades_met": met, "membrane_id": mid, "images": used,
                    "superseded_steps": {k: [s + 1 for s in v] for k, v in taken.superseded.items()},
                    "unused_steps": {k: [s + 1 for s in v] for k, v in taken.unused.items()}})
        if grade:
            self.event("verdict", "analysis", (f"membrane {mid}: " if mid else "") + f"target grade {grade}: "
                       f"{'met' if grade in met else 'NOT met'}", {"grade": grade, "met": grade in met, "membrane_id": mid})
        if mb is not None:
            mb.status, mb.metrics, mb.verdict = "judged", outcome["metrics"], outcome.get("verdict")
            mb.grades_met, mb.target_grade = list(met), grade
            mb.target_met = None if grade is None else grade in met
            mb.lot_id = mb.membrane_id if met else None
            self.rec.save_membrane(mb)
        return {"grades_met": met, "membrane_id": mid}

    def _not_analysed(self, mb: MembraneRecord | None, capture: dict[int, dict[str, Any]], exc: Exception) -> dict[str, Any]:
        """An analysis that raised leaves its membrane made, not judged, and the night goes on:
        it faulted the run, and every resume ran the same analysis into the same error, so the
        casts after it were never made (a float64 micrograph near ±1e308, found from outside).
        The images stay in the run folder, and the event says how to measure them again; the
        membrane's record keeps why (``process["analysis_failed"]``: lots and the report say it)."""
        why = f"{type(exc).__name__}: {exc}"
        mid = mb.membrane_id if mb is not None else None
        self.log.error("analysis failed", membrane_id=mid, error=why, exc_info=exc)
        views = next(iter(capture.values()), {})
        files = " ".join(f"--{'surface' if ill == 'reflected' else ill} {shlex.quote(str(self.rec.run_dir / im.path))}"
                         for ill, im in views.items() if ill in ("reflected", "transmitted", "section"))
        self.event("error", "analysis", (f"membrane {mid}: " if mid else "") + f"analysis failed ({why}): not judged, the "
                   f"run goes on; measure it again with: castrig analyse membrane {files}",
                   {"membrane_id": mid, "error": why})
        if mb is not None:
            mb.process = {**mb.process, "analysis_failed": why}
            self.rec.save_membrane(mb)
        return {"membrane_id": mid, "analysis_failed": why}

    def _while_ticking(self, work: Callable[[Callable[[], bool]], Any], name: str = "castrig-analyse") -> Any:
        """``work(stopped)`` on a worker thread while the rig goes on ticking, on the wall clock.

        A long analysis (many fields of large micrographs: seconds to minutes) or a slow camera
        must not stall the rig: without ticks the RH loop stops, nothing is sampled, and a pump in
        safe mode hears nothing for longer than its watchdog, alarms and aborts the run. Work done
        within :data:`QUICK_S` returns without a tick of its own (a camera's usual snap: the
        ticks' control period would add up to a period per image). On a virtual clock no time
        passes while it computes, so it runs inline (ticking alongside would tie the run's records
        to the machine's speed). The thread is a daemon: an abort does not wait for it, and
        ``stopped()`` turns true then, so that the work gives up (a queue's next run would share
        the cores with it)."""
        if self.clock.virtual:
            return work(lambda: False)
        done: Future[Any] = Future()
        left = threading.Event()

        def run() -> None:
            try:
                done.set_result(work(left.is_set))
            except BaseException as exc:  # handed to the runner's thread, raised there
                done.set_exception(exc)

        threading.Thread(target=run, name=name, daemon=True).start()
        futures_wait([done], timeout=min(QUICK_S, self.cfg.control_period_s))
        try:
            if not done.done():
                self._hold(None, until=done.done)
        finally:
            left.set()
        return done.result()

    # -- ticking ----------------------------------------------------------------------------------
    def _hold(self, duration_s: float | None, *, until: Callable[[], bool] | None = None, hold_band: bool = False,
              planned_s: float | None = None, watch: Callable[[], object] | None = None) -> bool:
        """Tick every control period for ``duration_s`` (not counting held time) or until ``until()``:
        at a fixed rate (:class:`~castrig.recipe.cadence.FixedRate`), on the run's one schedule:
        the first tick when the run's next tick is due (at once if that has passed).
        ``planned_s``: how long the step should take, shown to readers when ``duration_s`` is only
        a time-out (a dispense's: its "left" counted down the time-out, 1.5× the planned time + 30 s).
        ``watch``: called at every tick, a pause's inside this hold too (:mod:`castrig.recipe.hold`:
        a pause counts toward the duration, and is watched as the rest of it).

        Returns True if ``until`` became true (or the duration passed without one).
        """
        self.status.step_duration_s = duration_s if planned_s is None else planned_s
        last = self.clock.now()
        # fixed rate: a tick's exchanges (~0.1 s of line time) are inside its period, not added to it
        ticks = self._ticks
        if ticks.due_t is None:  # the run's first tick: the schedule starts with it
            ticks.start(last)
        elif not ticks.due(last) and (duration_s is None or duration_s > 0):
            # (the step's own exchanges came between the last tick and this hold: they are inside the period too)
            self.clock.sleep_until(ticks.due_t if duration_s is None else min(ticks.due_t, last + duration_s))
        hold = HoldClock(duration_s, last, hold_band=hold_band, watch=watch)
        self._hold_now = hold
        try:
            while True:
                self._tick()  # (a pause taken in it ticks this hold on meanwhile: _tick_paused)
                self._hold_ticked(hold)
                if until is not None and until():
                    return True
                if hold.over:
                    return until is None
                now = self.clock.now()
                due = ticks.advance(now)
                if duration_s is not None:  # min(due, now + max(left, 1e-3)) as comparisons (every tick)
                    left = duration_s - hold.elapsed_s
                    end = now + (1e-3 if 1e-3 > left else left)
                    due = end if end < due else due
                self.clock.sleep_until(due)
        finally:
            self._hold_now = None

    def _hold_ticked(self, hold: HoldClock) -> None:
        """A tick of the hold under way, its own or a pause's: its clock, the status, its watch."""
        if hold.hold_band:
            self._check_hold_band()
        self.status.step_elapsed_s = hold.advance(self.clock.now(), counting=not self._holding)
        if hold.watch is not None:
            hold.watch()

    def _tick_paused(self) -> None:
        """A tick while paused on the wall clock (the Ctrl-C prompt, a pause through the channel):
        the rig kept under control, and the hold the pause came in goes on (its clock, the status
        readers see, an evaporate's band check: :mod:`castrig.recipe.hold`)."""
        self._tick()
        if self._hold_now is not None:
            self._hold_ticked(self._hold_now)

    def _check_hold_band(self) -> None:
        """Wait steps with RH control on: hold the step's clock while RH is out of band."""
        if self.loop is None or self._last_rh is None or self.loop.setpoint_rh_pct is None:
            return
        err = abs(self._last_rh - self.loop.setpoint_rh_pct)
        change = self._monitors["rh_band_hold"].update(self.t(), err > 3.0, err <= 1.5)
        if change == "tripped":
            self._holding = True
            self.event("interlock", "rh_band_hold", f"RH {self._last_rh:.1f} %RH out of band: holding", {"action": "hold"})
        elif change == "cleared":
            self._holding = False
            self.event("interlock_clear", "rh_band_hold", "RH back in band for 30 s: resuming", {"action": "resume"})

    def _tick(self) -> None:
        """One control period: requests, RH read + control, keep-alive, samples, interlocks; then
        the lines that reopened meanwhile are said (also when the tick ends in an abort: a
        restarted pump's power-up alarm comes in the same tick as the sensors' reopening)."""
        try:
            self._tick_exchanges()
        except BaseException:
            try:
                self._say_reopened()
            except Exception:  # noqa: BLE001 - the tick's own error is the one to raise
                pass
            raise
        finally:
            self._last_tick_end = self.clock.now()
        self._say_reopened()

    def _tick_exchanges(self) -> None:
        self._take_requests()
        if self._pause_requested and not self._in_pause and self._dispensing is None:
            self._pause()  # (during a dispense it waits for the pump step's end: see pause_point)
        now = self.clock.now()
        self._note_gap(now)
        # the sample goes with the tick that stands for its due time (on the twin exactly 5 s of
        # rig clock apart); a tick off the schedule (a capture's between views) takes none
        at = self._ticks.begin(now)
        sampling = at is not None and self._samples.due(at)
        rh = self._read_near()
        if self._silent and not sampling:
            # a device known silent is asked again every control period, as a pump is, not at the
            # next sample only: read every 5 s, a 6 s outage spanning two reads was judged 10 s of
            # silence (comms_lost_s) and aborted the night, the MFC long since answering again
            for dev in (self.rig.dry_mfc, self.rig.wet_mfc, self.rig.chamber):
                if dev is not None and dev.name in self._silent:
                    self._talk(dev.name, dev.read)
        if rh is not None and self.loop is not None and self.loop.active:
            loop = self.loop
            self._talk("rh_loop", lambda: loop.update(rh))
        if sampling and at is not None:
            self._sample(now)
            self._samples.taken(at)
        self._keep_pumps_alive(now)
        self._publish()

    def _note_gap(self, now: float) -> None:
        """Time outside the ticks far over their period: the process was stopped (SIGSTOP, a
        debugger) or the computer suspended, so RH went uncontrolled and the pumps unwatched
        meanwhile. The record says so and for how long; the membrane's hold went on counting (it
        kept drying). Measured from the end of the tick before, so a slow tick (a device that
        answers late, a silent one's tries, said by its own warning) is not taken for one; a stop
        inside a tick (its exchanges then finished, the next tick at once) is seen by the
        :class:`~castrig.recipe.stall.StallWatch`, whose thread a slow device does not hold."""
        last = self._last_tick_end
        if last is None or self.clock.virtual:
            return
        stood_s = self._stall.take(self._gap_said_t) if self._stall is not None else 0.0
        gap_s = max(now - last, stood_s)
        if gap_s > max(GAP_PERIODS * self.cfg.control_period_s, GAP_MIN_S):
            self._gap_said_t = now
            self.event("warning", "control_gap", f"no control for {gap_s:.1f} s (the process stopped, the computer "
                       "suspended, or a step held the loop): RH was not controlled and the pumps not watched meanwhile",
                       {"gap_s": round(gap_s, 3)})

    def _say_reopened(self) -> None:
        """Each line that reopened to the same device during the tick, and how long confirming
        that held the tick (two HMT330s' ``?`` listings: 2.8 s against a 0.2 s control period)."""
        period = self.cfg.control_period_s
        for link in self.rig.links:
            while link.reopen_notes:
                note = link.reopen_notes.pop(0)
                held = f" (control period {period:g} s: this tick was late by that much)" if note.confirm_s > period else ""
                self.event("link_reopened", note.name, note.text() + held,
                           {"resource": note.resource, "identity": note.identity, "confirm_s": round(note.confirm_s, 2)})

    def _keep_pumps_alive(self, now: float | None = None) -> None:
        """Ask every pump its state when a safe-mode watchdog's keep-alive is due (at every tick,
        with the tick's time, and between a dispense's set-up exchanges): at the last tick before
        it is due, not at the first after (that was up to a control period late: with the ticks at
        the fixed rate, a third of a 10 s watchdog rounded up to 4 s between the caster's talks).
        Pumps without a watchdog are asked at the first tick after (at the samples' period)."""
        now = self.clock.now() if now is None else now
        due_t = self._next_keepalive
        next_tick_late = self._watchdog_kept and now + self.cfg.control_period_s > due_t + EARLY_S
        if now >= due_t - EARLY_S or next_tick_late:
            answered = [self._pump_state(pump) is not None for pump in self.rig.pumps().values()]
            # a pump that did not answer is tried again next tick: its watchdog keeps counting
            self._next_keepalive = now + (self._keepalive_s if all(answered) else self.cfg.control_period_s)

    def _keepalive_period(self) -> float:
        """Talk to safe-mode pumps well inside their watchdog (a third of it), else every sample."""
        watchdog = self._pump_watchdog_s()
        return self.cfg.sample_period_s if watchdog is None else min(self.cfg.sample_period_s, watchdog / 3.0)

    def _pump_watchdog_s(self) -> float | None:
        """The shortest safe-mode watchdog of the rig's pumps (None: no pump in safe mode)."""
        configs = self.rig.profile.device_configs()
        w = [float(configs[name].safe_mode_s) for name in self.rig.pumps() if getattr(configs.get(name), "safe_mode_s", None)]
        return min(w) if w else None

    def _read_near(self) -> float | None:
        try:
            reading = self.rig.rh_near.read()
        except (DeviceError, LinkError) as exc:
            self.log.warning("near-membrane sensor read failed", error=str(exc))
            self._rh_failing = True
            self._check_deadlines()
            return None
        lo, hi = self.cfg.rh_sensor_range_pct
        if not (lo <= reading.rh_pct <= hi) or math.isnan(reading.rh_pct):
            raise InterlockTripped(Trip("sensor_range", "abort", f"near-membrane RH {reading.rh_pct} outside {lo}-{hi} %RH"))
        self._check_frozen((reading.rh_pct, reading.temperature_c))
        self._rh_failing = False
        self._last_good_rh_t = self.clock.now()
        self._last_rh = reading.rh_pct
        self._last_t_near = reading.temperature_c
        self.status.rh_pct = reading.rh_pct
        return reading.rh_pct

    def _check_frozen(self, pair: tuple[float, float]) -> None:
        """A live transmitter's noise moves its last digit; the same RH *and* T for
        ``control.sensor_frozen_s`` means a frozen sensor, and control would be blind."""
        limit = self.cfg.sensor_frozen_s
        now = self.clock.now()
        if not limit or self._frozen is None or self._frozen[0] != pair:
            self._frozen = (pair, now)
            return
        if now - self._frozen[1] >= limit:
            raise InterlockTripped(Trip("sensor_frozen", "abort",
                f"near-membrane reading stuck at {pair[0]:g} %RH, {pair[1]:g} degC for {now - self._frozen[1]:.0f} s"))

    def _sample(self, now: float) -> None:
        gone = self._folder.gone()
        if gone is not None:  # its micrographs, results and outcome cannot be written where they belong
            lost = "micrographs and outcome" if gone == "deleted" else "micrographs"  # (a moved one's outcome: where it went)
            raise RunAborted("faulted", f"the run folder {self._folder.path} was {gone} while the run went on: its "
                                        f"{lost} can no longer be written there (put it back, then `castrig resume` it)")
        values: dict[str, float] = {}
        if self._last_rh is not None:
            values["rh_near_pct"] = self._last_rh
            values["t_near_c"] = self._last_t_near
        sp = self.loop.current_setpoint() if self.loop is not None else None
        if sp is not None:
            values["rh_setpoint_pct"] = sp
        if isinstance(self.loop, MfcRhLoop) and self.loop.active:
            values["wet_fraction"] = self.loop.wet_fraction
        room = self.rig.rh_room
        if room is not None and self._room.due(self.clock.now()):
            try:
                r = room.read()
                values["rh_room_pct"], values["t_room_c"] = r.rh_pct, r.temperature_c
                if self._room.answered():
                    self.log.info("room sensor answers again")
            except (DeviceError, LinkError) as exc:
                wait_s = self._room.failed(self.clock.now(), self.cfg.sample_period_s)
                self.log.warning("room sensor read failed", error=str(exc), next_try_in_s=round(wait_s, 1))
                self._check_deadlines()  # its timeouts took time too
        for role, mfc in (("dry_mfc", self.rig.dry_mfc), ("wet_mfc", self.rig.wet_mfc)):
            if mfc is None:
                continue
            reading = self._talk(mfc.name, mfc.read)
            if reading is None:
                continue
            short = role.split("_")[0]
            values[f"{short}_flow_slpm"] = reading.mass_flow_slpm
            values[f"{short}_setpoint_slpm"] = reading.setpoint_slpm
            self.status.flows_slpm[short] = reading.mass_flow_slpm
            if "HLD" in reading.status and role not in self._held_said:
                # held at its front panel or by another client: our setpoints no longer move its
                # valve (the safe state cancels the hold; during the run it may be meant)
                self._held_said.add(role)
                self.event("warning", mfc.name, f"{mfc.name}: its valve is held (HLD): setpoints do not move it "
                           f"(flow {reading.mass_flow_slpm:g} slpm)", {"status": list(reading.status)})
            tol = max(0.1, 0.05 * mfc.full_scale_slpm)
            bad = abs(reading.mass_flow_slpm - reading.setpoint_slpm) > tol
            mon = self._monitors[f"mfc_following:{role}"]
            if mon.update(self.clock.now(), bad) == "tripped":
                raise InterlockTripped(Trip("mfc_following", "abort",
                    f"{mfc.name}: flow {reading.mass_flow_slpm:g} slpm vs setpoint {reading.setpoint_slpm:g} for {mon.for_s:g} s"))
        if self.rig.chamber is not None:
            c = self._talk(self.rig.chamber.name, self.rig.chamber.read)
            if c is not None:
                self._chamber_sample(c, values)
        answered = 0
        for name, pump in self.rig.pumps().items():
            dispensed = self._talk(name, pump.dispensed)
            if dispensed is None:
                continue
            answered += 1
            ml = dispensed.infused_ml
            values[f"{name}_infused_ml"] = ml
            self.status.pumps_ml[name] = ml
        self._note_pump_alarms()
        if answered == len(self.rig.pumps()):
            # Every pump answered a valid packet just now: that restarts a safe-mode pump's
            # watchdog as a keep-alive would (and an alarm shows in any reply's prompt).
            self._next_keepalive = max(self._next_keepalive, now + self._keepalive_s)
        self.rec.add_samples(self.t(), values)

    #: A chamber's RH or set point outside this (%RH) is no humidity: a real input reads a little
    #: beyond 0-100 (a 4-20 mA input under 4 mA in a dry purge, condensation near saturation).
    CHAMBER_RH_SOUND_PCT = (-2.0, 102.0)

    def _chamber_sample(self, c: Any, values: dict[str, float]) -> None:
        """A chamber's RH and set point as samples, if they are humidities: a controller shows a
        failed input as an extreme value (an F4's 3276.7 %RH), and those had been recorded as
        readings, into the report and `sim fit`'s inputs, without a word. Outside
        :data:`CHAMBER_RH_SOUND_PCT` a value is left out; the first time in a run, a warning event
        says so (once: a reading flickering at the edge must not flood the record)."""
        lo, hi = self.CHAMBER_RH_SOUND_PCT
        bad = []
        for channel, what, v in (("chamber_rh_pct", "RH", c.rh_pct), ("chamber_setpoint_rh_pct", "set point", c.setpoint_rh_pct)):
            if isinstance(v, (int, float)) and math.isfinite(v) and lo <= v <= hi:
                values[channel] = v
            else:
                bad.append(f"{what} {v!r}")
        if bad and not self._chamber_bad:
            self._chamber_bad = True
            name = self.rig.chamber.name  # type: ignore[union-attr]
            self.event("warning", name, f"{name}: {', '.join(bad)} %RH is no humidity (a failed input?): such readings "
                                        f"are not recorded (sound: {lo:g} to {hi:g} %RH); said once a run")

    def _at_the_prompt(self) -> float:
        """Called by the Ctrl-C prompt at least every second while it waits; returns the seconds
        until it should call again. On the wall clock it ticks when a tick is due (the rig stays
        under control, at the control period's fixed rate); on the virtual clock, where no time
        passes at the prompt, only the control channel is read — `castrig abort` from another
        terminal went unheard there."""
        if self.clock.virtual:
            self._take_requests()
            return 1.0
        ticks = self._ticks
        if ticks.due(self.clock.now()):
            self._tick_paused()
            ticks.advance(self.clock.now())
        return min(1.0, max(0.0, (ticks.due_t or 0.0) - self.clock.now()))

    def _take_requests(self) -> None:
        """The control channel read (pause, resume, abort); an abort asked is raised here."""
        self.remote.poll()
        if self._abort_reason is not None:
            reason, self._abort_reason = self._abort_reason, None
            raise RunAborted("aborted", reason)

    def _publish(self, step_setpoint_rh_pct: float | None = None) -> None:
        """``step_setpoint_rh_pct``: at a step's start, the RH it is about to set — shown while the
        loop holds none (after a purge a condition step's first line said "setpoint —")."""
        s = self.status
        s.t_s = self.t()
        # (a purge holds no RH: published at its start, before its dry air is set, it showed the
        # setpoint of the step before it)
        purging = s.step_name == "purge"
        s.setpoint_rh_pct = self.loop.current_setpoint() if self.loop is not None and not purging else None
        if s.setpoint_rh_pct is None and self.loop is not None:
            s.setpoint_rh_pct = step_setpoint_rh_pct
        s.wet_fraction = getattr(self.loop, "wet_fraction", None)
        if self.on_status is not None:
            self.on_status(s)

    # -- pause --------------------------------------------------------------------------------
    def _pause(self) -> None:
        t0 = self.t()
        try:
            self._pause_held()
        finally:
            self._pauses.append((t0, self.t()))

    def _pause_held(self) -> None:
        self._in_pause = True  # before clearing the request: ``pausing`` never reads False in between
        self._pause_requested = False
        self.status.state = "paused"
        where = "at a safe point" if self._paused_after is None else f"at a safe point ({self._paused_after})"
        if self.remote.paused_by is not None:  # paused through the control channel: resumed or aborted there
            try:
                return self.remote.wait_paused(where)
            finally:
                self._in_pause = False
                self._paused_after = None
        try:
            self.event("pause", "operator", f"paused {where} (Ctrl-C): resume or abort?")
            self.remote.publish()  # readers see 'paused' (on the virtual clock nothing ticks at the prompt)
            self._ticks.resume(self.clock.now())  # the tick the pause cut short made at once, on the run's grid
            answer = self.prompt(self._at_the_prompt)
        finally:
            self._in_pause = False
            self._paused_after = None
            self.status.state = "running"
        if answer == "abort":  # the operator chose to abort: like SIGTERM
            raise RunAborted("aborted", "aborted by the operator at the pause prompt (Ctrl-C, then 'a')")
        if answer != "resume":  # nobody to ask (no terminal): the run ends interrupted
            raise RunAborted("interrupted", "interrupted by the operator (Ctrl-C, with nobody to answer the pause prompt)")
        self.event("resume", "operator", "resumed by the operator")
