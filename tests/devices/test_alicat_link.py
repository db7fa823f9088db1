"""Alicat driver against its emulator: in virtual time over SimLink, and over a pty and TCP."""

from __future__ import annotations

import pytest

from castrig.clock import VirtualClock, WallClock
from castrig.devices.alicat import AlicatError, AlicatLinkError, AlicatMFC
from castrig.links import LinkClosed, SimLink
from castrig.links.serial_link import SerialLink
from castrig.sim.alicat import AlicatEmulator
from castrig.sim.serve import serve_pty, serve_tcp


def rig(firmware: str = "modern", **kwargs):
    clock = VirtualClock()
    emu = AlicatEmulator("wet_mfc", full_scale_slpm=5.0, firmware=firmware, response_tau_s=0.5, seed=1, **kwargs)
    form = "legacy" if firmware == "legacy" else "modern"
    mfc = AlicatMFC(SimLink(emu, clock), name="wet_mfc", full_scale_slpm=5.0, clock=clock, setpoint_form=form)
    return clock, emu, mfc


@pytest.mark.parametrize("firmware", ["modern", "legacy", "totalizer"])
def test_setpoint_and_flow_follow(firmware):
    clock, emu, mfc = rig(firmware)
    mfc.set_flow_slpm(3.2)
    assert mfc.setpoint_slpm() == pytest.approx(3.2)
    clock.sleep(5.0)
    reading = mfc.read()
    assert reading.setpoint_slpm == pytest.approx(3.2)
    assert reading.mass_flow_slpm == pytest.approx(3.2, abs=0.02)
    assert reading.mass_flow_slpm == pytest.approx(emu.flow_slpm(clock.now()), abs=0.02)
    assert reading.gas == "Air"
    assert len(reading.extra) == (2 if firmware == "totalizer" else 0)


def test_gas_by_every_form():
    clock, emu, mfc = rig()
    mfc.set_gas("N2")
    assert mfc.read().gas == "N2" and emu.gas_number == 8
    mfc.set_gas_by_register("Ar")
    assert mfc.gas_number() == 1 and mfc.gas().short_name == "Ar"
    assert mfc.control_point() == 37


def test_legacy_gas_select():
    clock, emu, mfc = rig("legacy")
    mfc.set_gas("He")
    assert mfc.read().gas == "He"


def test_legacy_unit_rejects_modern_query_with_typed_error():
    clock, emu, mfc = rig("legacy")
    with pytest.raises(AlicatError, match="wet_mfc"):
        mfc.setpoint()


def test_hold_and_lock_reach_the_frame():
    clock, emu, mfc = rig()
    mfc.set_flow_slpm(2.0)
    clock.sleep(5.0)
    assert mfc.hold_valve(closed=True).status == ("HLD",)
    clock.sleep(5.0)
    assert mfc.read().mass_flow_slpm < 0.05
    mfc.cancel_hold()
    assert mfc.lock_display().status == ("LCK",)


def test_stuck_valve_is_visible_in_the_readings():
    clock, emu, mfc = rig()
    mfc.set_flow_slpm(1.0)
    clock.sleep(5.0)
    emu.inject("stuck", clock.now())
    mfc.set_flow_slpm(4.0)
    clock.sleep(5.0)
    r = mfc.read()
    assert r.setpoint_slpm == pytest.approx(4.0) and r.mass_flow_slpm == pytest.approx(1.0, abs=0.02)


def test_streaming_through_the_driver():
    clock, emu, mfc = rig()
    mfc.set_flow_slpm(1.0)
    mfc.start_streaming()
    frames = [mfc.read_streamed() for _ in range(5)]
    assert all(f.unit_id is None and f.setpoint_slpm == 1.0 for f in frames)
    mfc.stop_streaming()
    assert not emu.streaming
    assert mfc.read().unit_id == "A"


def test_change_unit_id():
    clock, emu, mfc = rig()
    mfc.change_unit_id("K")
    assert emu.unit_id == "K" and mfc.read().unit_id == "K"


@pytest.mark.parametrize("fault", ["no_reply", "garbage"])
def test_fault_gives_typed_error_naming_the_device(fault):
    clock, emu, mfc = rig()
    emu.inject(fault)
    with pytest.raises(AlicatError) as err:
        mfc.read()
    assert err.value.device == "wet_mfc" and "wet_mfc" in str(err.value)
    emu.clear(fault)
    assert mfc.read().gas == "Air"


def test_drop_and_reconnect():
    clock, emu, mfc = rig()
    emu.inject("drop")
    with pytest.raises(AlicatLinkError) as err:
        mfc.set_flow_slpm(1.0)
    assert isinstance(err.value.cause, LinkClosed)
    emu.clear("drop")
    mfc.set_flow_slpm(1.0)
    assert mfc.read().setpoint_slpm == 1.0


# -- real OS links -----------------------------------------------------------------------------
def test_over_a_pty():
    emu = AlicatEmulator("dry_mfc", full_scale_slpm=5.0, response_tau_s=0.05)
    with serve_pty(emu) as server:
        link = SerialLink(server.address, baudrate=19200, timeout_s=0.5)
        try:
            mfc = AlicatMFC(link, name="dry_mfc", full_scale_slpm=5.0, clock=WallClock())
            mfc.set_flow_slpm(2.0)
            assert mfc.read().setpoint_slpm == 2.0
            assert mfc.gas().short_name == "Air"
        finally:
            link.close()


def test_over_tcp_with_drop_and_reconnect():
    emu = AlicatEmulator("dry_mfc", full_scale_slpm=5.0, firmware="legacy")
    with serve_tcp(emu) as server:
        link = SerialLink(server.address, timeout_s=0.3)
        mfc = AlicatMFC(link, name="dry_mfc", full_scale_slpm=5.0, setpoint_form="legacy", poll_attempts=2)
        mfc.set_flow_slpm(1.5)
        assert mfc.read().setpoint_slpm == 1.5
        emu.inject("drop")
        with pytest.raises(AlicatLinkError, match="dry_mfc"):
            mfc.read()
        link.close()
        emu.clear("drop")
        link = SerialLink(server.address, timeout_s=0.5)
        try:
            mfc = AlicatMFC(link, name="dry_mfc", full_scale_slpm=5.0, setpoint_form="legacy")
            assert mfc.read().setpoint_slpm == 1.5
        finally:
            link.close()


def test_the_safe_state_waits_for_a_closing_valve_and_names_a_stuck_one():
    """Wet air off is read from the measured flow: a valve closing from 3 slpm is given time to
    fall; one stuck open is reported not safe, with the flow it still passes."""
    clock, emu, mfc = rig()
    report = _made_safe_from(mfc, clock, 3.0)
    assert report.safe and emu.flow_slpm(clock.now()) <= 0.05, report.summary()
    report = _made_safe_from(mfc, clock, 3.0, stuck=emu)
    assert not report.safe and "3 slpm still flowing" in report.errors["wet_mfc.off"], report.summary()


def _made_safe_from(mfc, clock, flow_slpm: float, *, stuck=None):
    """The safe state of a wet MFC that delivered ``flow_slpm`` for 5 s (its valve then stuck
    where it is, when ``stuck`` is its emulator)."""
    from castrig.control.safety import make_safe

    mfc.set_flow_slpm(flow_slpm)
    clock.sleep(5.0)
    if stuck is not None:
        stuck.inject("stuck", clock.now())
    return make_safe(pumps={}, dry_mfc=None, wet_mfc=mfc, chamber=None, purge_flow_slpm=1.0, clock=clock)


def test_off_is_judged_against_the_purge_not_only_the_full_scale():
    """1 % of a 50 slpm unit's full scale is 0.5 slpm: a quarter of the chamber's air, wet. A
    valve stuck at 0.45 slpm is not off, whatever the unit's size."""
    clock = VirtualClock()
    emu = AlicatEmulator("wet_mfc", full_scale_slpm=50.0, response_tau_s=0.5, seed=1)
    mfc = AlicatMFC(SimLink(emu, clock), name="wet_mfc", full_scale_slpm=50.0, clock=clock)
    report = _made_safe_from(mfc, clock, 0.45, stuck=emu)
    assert not report.safe and "still flowing" in report.errors["wet_mfc.off"], report.summary()


def test_a_reverse_flow_is_no_closed_valve():
    from castrig.control.safety import make_safe
    from castrig.devices.roles import FlowController, FlowReading

    class Reversed(FlowController):
        """A controller whose air runs backwards through it at 0.3 slpm (a role-level stand-in)."""
        name, full_scale_slpm = "wet_mfc", 5.0

        def read(self) -> FlowReading:
            return FlowReading(14.7, 25.0, -0.3, -0.3, 0.0, "Air")

        def set_flow_slpm(self, flow_slpm: float) -> None:
            pass

    report = make_safe(pumps={}, dry_mfc=None, wet_mfc=Reversed(), chamber=None, purge_flow_slpm=1.0, clock=VirtualClock())
    assert not report.safe and "-0.3 slpm still flowing" in report.errors["wet_mfc.off"], report.summary()


def test_the_wet_airs_settle_keeps_alive_only_pumps_that_answer():
    """A review: while the wet flow fell, every pump was asked its state once a second, a dead
    one too (three 1 s tries each time): two dead pumps doubled the safe state's time (4.3 s ->
    9.2 s) and wet air was verified later. Only the pumps read back stopped are kept alive."""
    from castrig.control.safety import make_safe
    from castrig.devices.ne1000 import NE1000Pump
    from castrig.sim.ne1000 import NE1000Emulator

    clock, emu, mfc = rig()
    pumps = {}
    for name in ("caster", "water_pump"):
        pump_emu = NE1000Emulator(name)
        pumps[name] = NE1000Pump(SimLink(pump_emu, clock), name=name, clock=clock)
        pump_emu.inject("no_reply")  # its line cut
    mfc.set_flow_slpm(3.0)
    clock.sleep(5.0)
    t0 = clock.now()
    report = make_safe(pumps=pumps, dry_mfc=None, wet_mfc=mfc, chamber=None, purge_flow_slpm=1.0, clock=clock)
    assert report.verified["wet_mfc.off"] and not report.verified["caster.stopped"], report.summary()
    assert clock.now() - t0 < 7.0, clock.now() - t0
