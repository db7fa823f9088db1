"""The runner's end of the control channel (:mod:`castrig.store.commands`).

Every control period (at most four times a wall second, so a virtual 8-hour run is not slowed)
the runner calls :meth:`RemoteControl.poll`: pending commands become the same requests a signal
makes — ``abort`` is :meth:`Runner.request_abort` (ends exactly like SIGTERM), ``pause`` is
:meth:`Runner.request_pause` — and the runner's status is published to ``control/status.json``
for ``castrig status|watch`` and ``castrig serve``, which never talk to the rig.

Channel states, written once (Bluesky's state machine is the model)::

    running --pause--> pausing --(next safe point)--> paused(by) --resume--> running
    running|pausing|paused --abort--> aborted (safe state, outcome ``aborted``, event names who)

A pause asked through the channel waits for ``resume`` or ``abort`` through the channel (the
rig is kept under control meanwhile on the wall clock); a pause asked with Ctrl-C is answered at
the run's terminal as before, and a ``resume`` sent then is refused with that reason.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from castrig.store.commands import PER_POLL, Command, CommandInbox

if TYPE_CHECKING:  # pragma: no cover
    from castrig.recipe.runner import Runner

#: Event kinds an operator must see (the same set ``castrig serve`` highlights).
WARNING_KINDS = frozenset({"interlock", "warning", "membrane_lost", "fault", "error"})
POLL_WALL_S = 0.25
STATUS_WALL_S = 1.0


def estimate_step_s(step: Any) -> float | None:
    """Planned duration of a step in seconds (a lower bound for ``condition``); None if unknown."""
    d = step.model_dump() if hasattr(step, "model_dump") else dict(step)
    if d.get("duration_s"):
        return float(d["duration_s"])
    if d.get("type") == "condition":
        return float(d.get("stable_for_s") or 0.0)
    if d.get("volume_ml") and d.get("rate_ml_min"):
        return 60.0 * float(d["volume_ml"]) / float(d["rate_ml_min"])
    return None


class RemoteControl:
    def __init__(self, runner: "Runner", run_dir: Path | None):
        self.runner = runner
        self.inbox: CommandInbox | None = None
        if run_dir is not None:
            try:
                self.inbox = CommandInbox(Path(run_dir))
            except (OSError, TypeError, ValueError):  # a read-only folder (or no folder): the run goes on, without a channel
                self.inbox = None
        self.paused_by: str | None = None
        self._resume_by: str | None = None
        self._next_poll = 0.0
        self._next_status = 0.0
        self.last_warning: dict[str, Any] | None = None
        self._snap_step = -2
        self._stale: tuple[Any, Any] | None = None
        self._refused_said: str | None = None

    def saw_event(self, t_s: float, kind: str, source: str, message: str, data: dict[str, Any] | None) -> None:
        """Every event the runner records: keep the last one an operator must see."""
        if kind in WARNING_KINDS or (kind == "run_end" and (data or {}).get("outcome") not in (None, "completed")):
            self.last_warning = {"t_s": round(t_s, 3), "kind": kind, "source": source, "message": message}

    # -- every control period ---------------------------------------------------------------
    def poll(self, *, force: bool = False) -> None:
        if self.inbox is None:
            return
        now = time.monotonic()
        if not force and now < self._next_poll:
            return
        self._next_poll = now + POLL_WALL_S
        acted = False
        for cmd in self.inbox.pending(limit=PER_POLL):
            self._apply(cmd)
            acted = True
        if self.inbox.refused != self._refused_said:  # said once each time it changes, in the run's events
            self._refused_said = self.inbox.refused
            if self.inbox.refused is not None:
                self.runner.event("warning", "control", f"control channel refused: {self.inbox.refused}; pause, resume and "
                                  "abort from outside cannot reach this run until it is a real folder again (Ctrl-C at "
                                  "its terminal and SIGTERM still can)", {"refused": self.inbox.refused})
        if force or acted or now >= self._next_status:  # a command answered: the status says what it did at once
            self._next_status = now + STATUS_WALL_S
            self.inbox.write_status(self.snapshot())

    def _apply(self, cmd: Command) -> None:
        r, by = self.runner, cmd.by
        assert self.inbox is not None
        data = {"command": cmd.action, "by": by, "id": cmd.id, "requested_utc": cmd.requested_utc}
        if cmd.action == "abort":
            r.event("command", by, f"abort requested by {by}", data)
            r.request_abort(f"aborted by {by} through the control channel")
            self.inbox.answer(cmd, True, "aborting to the safe state", r.t())
        elif cmd.action == "pause":
            if r.pausing:
                self.inbox.answer(cmd, False, "already paused or pausing", r.t())
                return
            if r.safe_progress is not None:  # the run is ending: there is no step left to pause
                self.inbox.answer(cmd, False, "the run is ending (the rig is being made safe): nothing to pause; "
                                              "castrig abort stops the safe-state tries", r.t())
                return
            r.event("command", by, f"pause requested by {by}", data)
            self.paused_by = by
            r.request_pause()
            self.publish()  # before the answer: whoever reads the status once answered sees "pausing"
            self.inbox.answer(cmd, True, f"pausing {r.pause_point()}", r.t())
        elif cmd.action == "resume":
            if self.paused_by is not None and r.pausing:
                r.event("command", by, f"resume requested by {by}", data)
                self._resume_by = by
                self.inbox.answer(cmd, True, "resuming", r.t())
            elif r.pausing:
                self.inbox.answer(cmd, False, "paused at the run's own terminal (Ctrl-C): answer there, or abort", r.t())
            else:
                self.inbox.answer(cmd, False, "not paused", r.t())
        else:
            self.inbox.answer(cmd, False, cmd.problem or f"unknown command {cmd.action!r} in {cmd.name} (allowed action: "
                                                          "pause, resume, abort)", r.t())

    def publish(self) -> None:
        """Write the status now (the run's state changed: readers must not wait for a poll)."""
        if self.inbox is not None:
            self.inbox.write_status(self.snapshot())

    # -- a pause asked through the channel -------------------------------------------------------
    def wait_paused(self, where: str = "at a safe point") -> None:
        """Hold at the safe point until ``resume`` (returns) or ``abort`` (raises, via the tick)."""
        from castrig.recipe.runner import RunAborted

        r = self.runner
        by = self.paused_by
        r.event("pause", "operator", f"paused {where} by {by}: waiting for resume or abort "
                                     "(castrig resume-paused / castrig abort, or the web page)", {"by": by})
        ticks = r._ticks  # the run's one schedule (resumed, the hold goes on with it, in phase)
        ticks.resume(r.clock.now())
        try:
            while self._resume_by is None:
                self.poll(force=True)
                if r._abort_reason is not None:
                    reason, r._abort_reason = r._abort_reason, None
                    raise RunAborted("aborted", reason)
                if r.clock.virtual:
                    time.sleep(POLL_WALL_S)  # virtual time stands still while paused
                else:
                    r._tick_paused()  # the rig stays under control (RH loop, pump keep-alive, samples), the hold goes on
                    r.clock.sleep_until(ticks.advance(r.clock.now()))  # (fixed rate: the tick's exchanges inside its period)
            r.event("resume", "operator", f"resumed by {self._resume_by}", {"by": self._resume_by})
        finally:
            self.paused_by = self._resume_by = None
            r.status.state = "running"
            r._in_pause = False  # the runner's own ``finally`` says so too; the status written now must not
            self.poll(force=True)

    # -- what readers see -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        r = self.runner
        s = r.status
        steps = r.recipe.steps
        i = s.step_index
        step = steps[i] if 0 <= i < len(steps) else None
        if i != self._snap_step:  # a new step: the hold figures are the last step's until its hold starts
            self._snap_step, self._stale = i, (s.step_duration_s, s.step_elapsed_s)
        fresh = (s.step_duration_s, s.step_elapsed_s) != self._stale
        if fresh:
            self._stale = None
        elapsed = s.step_elapsed_s if fresh else 0.0
        planned = s.step_duration_s if fresh and s.step_duration_s is not None else (estimate_step_s(step) if step is not None else None)
        step_left = None if planned is None else max(0.0, planned - elapsed)
        later = [estimate_step_s(st) for st in steps[i + 1:]] if i >= 0 else [estimate_step_s(st) for st in steps]
        run_left = (step_left or 0.0) + sum(x or 0.0 for x in later)
        state = s.state
        if state == "running" and r.pausing:
            state = "pausing"
        safe = r.safe_progress
        if safe is not None:
            state = safe["state"]
        return {
            "pid": os.getpid(),
            "state": state,
            "paused_by": self.paused_by,
            "virtual_time": bool(r.clock.virtual),
            "step_index": i,
            "n_steps": len(steps),
            "step_type": s.step_name,
            "step_label": (getattr(step, "label", "") or s.step_name) if step is not None else "",
            "t_s": round(s.t_s, 3),
            "step_elapsed_s": round(elapsed, 3),
            "step_duration_s": planned,
            "step_left_s": None if step_left is None else round(step_left, 1),
            "run_left_s": round(run_left, 1),
            "run_left_is_estimate": any(x is None for x in later) or any(getattr(st, "type", "") == "condition" for st in steps[i:]),
            "rh_pct": s.rh_pct,
            "setpoint_rh_pct": s.setpoint_rh_pct,
            "band_rh_pct": getattr(step, "band_rh_pct", None),
            "wet_fraction": s.wet_fraction,
            "flows_slpm": dict(s.flows_slpm),
            "pumps_ml": dict(s.pumps_ml),
            "last_warning": self.last_warning,
            "detail": self._detail(state),
            "safe_state": None if safe is None else dict(safe),
        }

    def _detail(self, state: str) -> str | None:
        """What the state means now, in words (``castrig status|watch`` and the web page show it)."""
        r = self.runner
        if state == "pausing":
            return f"pausing {r.pause_point()}"
        if state == "paused":
            said = [f"paused at a safe point ({r._paused_after})"] if r._paused_after is not None else []
            hold = r.hold_now
            if hold is not None and hold.duration_s is not None and not r.clock.virtual:
                # a film dries on through a pause: the step's clock counts it (castrig.recipe.hold)
                said.append(f"the {r.status.step_name}'s time runs on while paused (the rig held under control)"
                            + (": it is over, the step ends when resumed" if hold.over else ""))
            return "; ".join(said) or None
        safe = r.safe_progress
        if safe is not None:
            return safe["message"]
        return None
