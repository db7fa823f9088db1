"""The safe state's report says what the last try found: a pump whose stop failed at first (its
best-effort STP read back nothing) and then went through on a retry is verified stopped, with no
leftover "best effort: not stopped" beside it. The pump here is a stand-in for the pump role
(castrig.devices.roles), as make_safe sees any pump; the drivers' own paths are tested over their
lines in test_safe_state_best_effort_cli.py."""

from __future__ import annotations

from castrig.control.safety import make_safe
from castrig.devices.blind_stop import BlindStop
from castrig.devices.roles import PumpState
from castrig.errors import CastrigError


class _Clock:
    virtual = True

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


class _PumpLostOnce:
    """Its first stop gets no reply, and the best-effort STP reads back nothing; then it answers."""
    name = "caster"

    def __init__(self) -> None:
        self.stops = 0

    def stop(self) -> None:
        self.stops += 1
        if self.stops == 1:
            raise CastrigError("caster: 'STP': no reply")

    def best_effort_stop(self) -> BlindStop:
        return BlindStop(True, False, "STP sent twice, no stopped state came back")

    def state(self) -> PumpState:
        return PumpState.STOPPED


def test_a_pump_stopped_on_a_retry_is_reported_stopped_without_its_first_tries_best_effort_record():
    first = []
    report = make_safe(pumps={"caster": _PumpLostOnce()}, dry_mfc=None, wet_mfc=None, chamber=None,
                       purge_flow_slpm=1.0, clock=_Clock(), retry_for_s=5, on_first_try=first.append)
    assert first and not first[0].safe and first[0].best_effort["caster"]["stopped"] is False  # the first try, on record
    assert report.safe and report.verified == {"caster.stopped": True}
    assert report.best_effort == {}, report.to_dict()
