"""The safe state: pumps stopped, wet air off, dry purge on — reached and then read back.

Called on every exit path of a run (completion, fault, abort, exception, Ctrl-C, SIGTERM) and
first thing on resume. Each action is tried on its own, so one dead device does not keep the
others from being made safe; the report says what was verified and what could not be. A pump
whose stop fails (no reply, garbage) is sent its best-effort stop
(:meth:`~castrig.devices.roles.SyringePump.best_effort_stop`), counted verified only when it reads
back stopped; what it sent and what came back are in the report (``best_effort_stops``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from castrig.clock import Clock
from castrig.devices.roles import FlowController, FlowReading, HumidityChamber, PumpState, SyringePump
from castrig.errors import CastrigError

#: Setpoints at or below this are "off" when read back, slpm.
FLOW_OFF_SLPM = 0.02
#: A measured flow is "off" at or below this share of the controller's full scale (an MFC's
#: zero reads a few tenths of a percent of it), capped below (see wet_air_off_limit_slpm).
FLOW_OFF_SHARE_OF_FULL_SCALE = 0.01
#: ... and at most this share of the dry purge flow (see wet_air_off_limit_slpm).
FLOW_OFF_SHARE_OF_PURGE = 0.05
#: How long a closing valve's flow may take to fall to "off" before the safe state says it is
#: still flowing (s, on the run's clock; the valve and the flow sensor answer within ~1 s).
FLOW_SETTLE_S = 5.0
FLOW_SETTLE_POLL_S = 0.25


class NotSafe(CastrigError):
    """A device read back in a state that is not its safe one; the message says what it shows."""


@dataclass
class SafeStateReport:
    verified: dict[str, bool] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    #: Pumps whose stop failed, by name: the best-effort stop sent then (``sent``), whether it
    #: read back stopped (``stopped``, the only way it counts as verified) and what came back.
    best_effort: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def safe(self) -> bool:
        return bool(self.verified) and all(self.verified.values()) and not self.errors

    def to_dict(self) -> dict[str, Any]:
        out = {"safe": self.safe, "verified": dict(self.verified), "errors": dict(self.errors)}
        if self.best_effort:
            out["best_effort_stops"] = {k: dict(v) for k, v in self.best_effort.items()}
        return out

    def summary(self) -> str:
        if self.safe:
            return "safe state verified: " + ", ".join(sorted(self.verified))
        bad = [f"{k}: {v}" for k, v in self.errors.items()] + [k for k, ok in self.verified.items() if not ok and k not in self.errors]
        return "safe state NOT verified: " + "; ".join(bad)


def make_safe(
    *,
    pumps: dict[str, SyringePump],
    dry_mfc: FlowController | None,
    wet_mfc: FlowController | None,
    chamber: HumidityChamber | None,
    purge_flow_slpm: float,
    clock: Clock | None = None,
    retry_for_s: float = 0.0,
    retry_every_s: float = 1.0,
    on_first_try: Callable[[SafeStateReport], None] | None = None,
) -> SafeStateReport:
    """Bring every device to its safe setting and read it back.

    With a ``clock``, actions that could not be verified (a port that vanished for a moment, a
    garbled reply) are tried again every ``retry_every_s`` for up to ``retry_for_s``: a device
    whose cable comes back within that time is still made safe. Bounded, so a dead device
    cannot keep the run from ending; the report then names it. ``on_first_try`` is given the
    report of the first try when it is not safe and retries follow, so the attempt is on record
    at once rather than only after every retry (``retry_for_s`` plus the retries' own timeouts).
    """
    report = SafeStateReport()
    actions: dict[str, Any] = {}

    def attempt(key: str, action: Any) -> None:
        actions[key] = action
        try:
            report.verified[key] = bool(action())
            report.errors.pop(key, None)
        except (CastrigError, OSError) as exc:
            report.verified[key] = False
            report.errors[key] = str(exc)

    # Stop everything that moves liquid first.
    for name, pump in pumps.items():
        def stop_pump(pump: SyringePump = pump, name: str = name) -> bool:
            try:
                pump.stop()
            except (CastrigError, OSError) as exc:
                # a pump whose replies are lost may still hear: its driver's stop sent only the
                # line's in-step check, and the pump went on infusing (kept alive by those)
                blind = pump.best_effort_stop()
                if blind is None:
                    raise
                report.best_effort[name] = {"stop_failed": str(exc), "sent": blind.sent, "stopped": blind.stopped,
                                            "detail": blind.detail}
                if blind.stopped:  # (read back stopped: verified as any stop is)
                    return True
                raise NotSafe(f"{exc}; a best-effort stop: {blind.detail}") from exc
            # an earlier try's best-effort stop is history once the pump's own stop went through
            # (the report said both "verified stopped" and "best effort: not stopped")
            report.best_effort.pop(name, None)
            # stopped, not only "not moving": a pump paused mid-program (or in a timed pause)
            # finishes its dispense at a RUN from its keypad or another client
            return pump.state() is PumpState.STOPPED

        attempt(f"{name}.stopped", stop_pump)
    if wet_mfc is not None:
        # closed at once; read back once every other device has been told (the flow takes a
        # moment to fall, and a stuck valve must not keep the purge and the chamber waiting)
        try:
            wet_mfc.set_flow_slpm(0.0)
        except (CastrigError, OSError):
            pass  # (sent again, and its error recorded, when the wet air is verified below)
    if dry_mfc is not None:
        def purge() -> bool:
            dry_mfc.set_flow_slpm(purge_flow_slpm)
            reading = _unheld(dry_mfc)
            return abs(reading.setpoint_slpm - purge_flow_slpm) <= max(0.01, 0.01 * purge_flow_slpm)

        attempt(f"{dry_mfc.name}.purge", purge)
    if chamber is not None:
        def humidifier_off() -> bool:
            chamber.set_humidifier(False)
            return not chamber.humidifier_on()

        attempt(f"{chamber.name}.humidifier_off", humidifier_off)
    if wet_mfc is not None:
        settle_s = FLOW_SETTLE_S

        def wet_off() -> bool:
            nonlocal settle_s
            wet_mfc.set_flow_slpm(0.0)
            # the first reading back is given the settling time; a retry reads at once (the
            # time between retries is the valve's), so a stuck valve does not slow each pass
            wait_s, settle_s = settle_s, 0.0
            # (kept alive meanwhile: the pumps read back stopped; a dead one's tries cost seconds each)
            stopped = {n: p for n, p in pumps.items() if report.verified.get(f"{n}.stopped")}
            return wet_air_stopped(wet_mfc, clock, purge_flow_slpm=purge_flow_slpm, settle_s=wait_s, pumps=stopped)

        attempt(f"{wet_mfc.name}.off", wet_off)
    if clock is not None and retry_for_s > 0:
        deadline = clock.now() + retry_for_s
        if on_first_try is not None and not report.safe:
            on_first_try(SafeStateReport(dict(report.verified), dict(report.errors), dict(report.best_effort)))
        # (retried while something is left to retry: a rig with nothing opened to make safe --
        # castrig safe, its one pump reached but failed -- slept its 15 s for nothing)
        while not report.safe and not all(report.verified.values()) and clock.now() < deadline:
            clock.sleep(min(retry_every_s, max(0.0, deadline - clock.now())))
            for key, ok in list(report.verified.items()):
                if not ok:
                    attempt(key, actions[key])
    return report


def make_rig_safe(rig: Any, *, retry_for_s: float = 0.0) -> SafeStateReport:
    """:func:`make_safe` of every device of ``rig`` (a ``castrig.rig.build.Rig``: its pumps, MFCs
    and chamber, its profile's purge flow, its clock): what ``castrig resume``, ``tune rh`` and
    ``castrig safe`` bring a rig to, one call for all (control does not import the rig)."""
    return make_safe(pumps=rig.pumps(), dry_mfc=rig.dry_mfc, wet_mfc=rig.wet_mfc, chamber=rig.chamber,
                     purge_flow_slpm=rig.profile.control.purge_flow_slpm, clock=rig.clock, retry_for_s=retry_for_s)


def _unheld(mfc: FlowController) -> FlowReading:
    """The controller's reading once no valve hold keeps its setpoint from governing the valve:
    a hold (HLD, set at the front panel or by another client) outlasts any setpoint we send."""
    reading = mfc.read()
    if "HLD" in reading.status:
        mfc.release_hold()
        reading = mfc.read()
        if "HLD" in reading.status:
            raise NotSafe(f"{mfc.name}: its valve is held (HLD) and a cancel did not end the hold")
    return reading


def wet_air_off_limit_slpm(mfc: FlowController, purge_flow_slpm: float) -> float:
    """The most flow a closed wet valve may read: a controller's zero reads a few tenths of a
    percent of its full scale, but never more than a twentieth of the purge (a 50 slpm unit's
    1 %, 0.5 slpm, would be a quarter of a 2 slpm chamber's air, wet)."""
    return max(FLOW_OFF_SLPM, min(FLOW_OFF_SHARE_OF_FULL_SCALE * mfc.full_scale_slpm, FLOW_OFF_SHARE_OF_PURGE * purge_flow_slpm))


def wet_air_stopped(mfc: FlowController, clock: Clock | None, *, purge_flow_slpm: float, settle_s: float = FLOW_SETTLE_S,
                    pumps: dict[str, SyringePump] | None = None) -> bool:
    """Wet air is off when the flow the controller measures is, not only its setpoint: a valve
    held open (HLD) or stuck reads setpoint 0 while air still flows (either way: a reverse flow
    is no closed valve either). The flow is given ``settle_s`` on ``clock`` to fall (without a
    clock it is read once); meanwhile the ``pumps`` are asked their state once a second, which
    keeps a safe-mode pump's watchdog from running out while we wait."""
    reading = _unheld(mfc)
    if reading.setpoint_slpm > FLOW_OFF_SLPM:
        return False
    off_slpm = wet_air_off_limit_slpm(mfc, purge_flow_slpm)
    if clock is not None:
        deadline = clock.now() + settle_s
        next_keepalive = clock.now() + 1.0
        while abs(reading.mass_flow_slpm) > off_slpm and clock.now() < deadline:
            clock.sleep(FLOW_SETTLE_POLL_S)
            if pumps and deadline > clock.now() >= next_keepalive:
                next_keepalive = clock.now() + 1.0
                for pump in pumps.values():
                    try:
                        pump.state()
                    except (CastrigError, OSError):
                        pass  # (its own action says what it is)
            reading = mfc.read()
    if abs(reading.mass_flow_slpm) > off_slpm:
        raise NotSafe(f"{mfc.name}: setpoint 0 but {reading.mass_flow_slpm:g} slpm still flowing "
                      f"(off is at most {off_slpm:g} slpm; a valve stuck open?)")
    return True
