"""NE-1000 driver against the emulator: in-process (virtual time) and over a real pty / TCP socket."""

from __future__ import annotations

import pytest

from castrig.clock import VirtualClock, WallClock
from castrig.devices.ne1000 import NE1000Pump, PumpAlarm, PumpCommandError
from castrig.devices.roles import PumpState
from castrig.links import LinkClosed, LinkError, LinkTimeout, SimLink
from castrig.links.serial_link import SerialLink
from castrig.sim.ne1000 import NE1000Chain, NE1000Emulator
from castrig.sim.serve import serve_pty, serve_tcp


def sim_pump(emu=None, *, safe_mode_s=None, address=None):
    clock = VirtualClock()
    emu = emu or NE1000Emulator("caster")
    pump = NE1000Pump(SimLink(emu, clock), name="caster", clock=clock, safe_mode_s=safe_mode_s, address=address)
    pump.connect()
    return pump, emu, clock


def test_connect_dispense_and_stop_at_the_volume_target():
    pump, emu, clock = sim_pump()
    assert pump.connect_alarms == ["R"] and pump.firmware == "NE1000V3.928"
    pump.set_diameter_mm(26.59)
    pump.dispense(0.5, 0.25)
    assert pump.state() is PumpState.INFUSING
    assert pump.rate_ml_min() == pytest.approx(0.25)
    clock.sleep(60)
    assert pump.dispensed().infused_ml == pytest.approx(0.25, abs=1e-3)
    assert emu.flow_ml_min(clock.now()) == pytest.approx(0.25)
    clock.sleep(61)
    assert pump.state() is PumpState.STOPPED
    assert pump.dispensed().infused_ml == pytest.approx(0.5)
    assert emu.dispensed_ml(clock.now()) == pytest.approx(0.5)


def test_withdraw_pause_resume_and_small_syringe_units():
    pump, emu, clock = sim_pump(NE1000Emulator("water", diameter_mm=4.699))
    pump.set_diameter_mm(4.699)
    pump.set_direction(False)
    pump.set_rate_ml_min(0.01)
    pump.set_volume_ml(0.02)
    assert pump.volume_ml() == pytest.approx(0.02)
    assert emu.volume_units == "UL"
    pump.start()
    assert pump.state() is PumpState.WITHDRAWING
    clock.sleep(60)
    pump.pause()
    assert pump.state() is PumpState.PAUSED
    pump.start()
    clock.sleep(61)
    assert pump.state() is PumpState.STOPPED
    assert pump.dispensed().withdrawn_ml == pytest.approx(0.02)
    assert emu.dispensed_ml(clock.now()) == pytest.approx(-0.02)


def test_rate_change_while_running_takes_effect():
    pump, emu, clock = sim_pump()
    pump.set_rate_ml_min(0.5)
    pump.start()
    pump.state()
    pump.set_rate_ml_min(1.5)
    assert emu.flow_ml_min(clock.now()) == pytest.approx(1.5)
    pump.stop()
    assert pump.state() is PumpState.STOPPED and emu.flow_ml_min(clock.now()) == 0.0


def test_out_of_range_rate_is_a_typed_error():
    pump, emu, _ = sim_pump()
    with pytest.raises(PumpCommandError) as info:
        pump.set_rate_ml_min(5000)
    assert info.value.code == "OOR" and "caster" in str(info.value)


def test_safe_mode_keepalive_holds_and_silence_trips_the_watchdog():
    pump, emu, clock = sim_pump(safe_mode_s=5)
    assert pump.safe and emu.safe and emu.safe_mode_s == 5
    pump.set_rate_ml_min(1.0)
    pump.start()
    for _ in range(10):  # 40 s, a keepalive every 4 s
        clock.sleep(4)
        assert pump.keepalive() is PumpState.INFUSING
    t_last = clock.now()
    clock.sleep(6)  # silent longer than 5 s
    assert emu.flow_ml_min(clock.now()) == 0.0
    assert emu.dispensed_ml(clock.now()) == pytest.approx((t_last + 5 - 1.0) / 60, abs=0.05)
    with pytest.raises(PumpAlarm) as info:
        pump.keepalive()
    assert info.value.kind == "T"
    assert pump.unsolicited_alarms == ["T"]
    assert pump.keepalive() is PumpState.STOPPED  # acknowledged
    pump.leave_safe_mode()
    assert not emu.safe
    clock.sleep(100)
    assert pump.state() is PumpState.STOPPED


def test_daisy_chain_two_addresses_one_link():
    clock = VirtualClock()
    caster, water = NE1000Emulator("caster", address=1), NE1000Emulator("water", address=2)
    link = SimLink(NE1000Chain("pumps", [caster, water]), clock)
    p1 = NE1000Pump(link, name="caster", address=1, clock=clock)
    p2 = NE1000Pump(link, name="water", address=2, clock=clock, safe_mode_s=10)
    p1.connect()
    p2.connect()
    assert p1.connect_alarms == ["R"] and p2.connect_alarms == ["R"]
    assert water.safe and not caster.safe
    p1.dispense(1.0, 2.0)
    p2.dispense(0.1, 0.1)
    clock.sleep(5)
    assert p1.state() is PumpState.INFUSING and p2.keepalive() is PumpState.INFUSING
    assert caster.flow_ml_min(clock.now()) == pytest.approx(2.0)
    assert water.flow_ml_min(clock.now()) == pytest.approx(0.1)
    clock.sleep(60)  # the water pump's host went quiet: its watchdog stops it, not the caster
    assert p1.state() is PumpState.STOPPED  # reached its 1 mL
    with pytest.raises(PumpAlarm, match="water"):
        p2.state()
    assert water.dispensed_ml(clock.now()) == pytest.approx(0.1 * 15 / 60, abs=1e-3)


def test_closing_a_rig_disarms_both_stopped_pumps_of_a_daisy_chain_and_not_a_moving_one():
    """Pumps on one port share its link: the rig disarms every watchdog before the first device
    closed takes the link from the other (a finished run then left the second pump to alarm)."""
    from castrig.rig.build import Rig

    clock = VirtualClock()
    caster, water = NE1000Emulator("caster", address=1), NE1000Emulator("water", address=2)
    link = SimLink(NE1000Chain("pumps", [caster, water]), clock)
    p1 = NE1000Pump(link, name="caster", address=1, clock=clock, safe_mode_s=10)
    p2 = NE1000Pump(link, name="water", address=2, clock=clock, safe_mode_s=10)
    for pump in (p1, p2):
        pump.connect(arm=False)
    assert not caster.safe and not water.safe
    rig = Rig(None, clock, {"caster": p1, "water_pump": p2}, links=[link])  # type: ignore[arg-type]
    rig.arm_watchdogs()
    assert caster.safe and water.safe
    assert p1.state() is PumpState.STOPPED and p2.state() is PumpState.STOPPED
    rig.close()
    assert not caster.safe and not water.safe
    assert (p1.safe, p1.safe_mode_s) == (False, 10)  # the configured watchdog kept, for a later arm

    clock2 = VirtualClock()
    moving = NE1000Emulator("caster", address=1)
    pump = NE1000Pump(SimLink(moving, clock2), name="caster", address=1, clock=clock2, safe_mode_s=10)
    pump.connect()
    pump.dispense(1.0, 0.5)
    assert pump.state() is PumpState.INFUSING
    Rig(None, clock2, {"caster": pump}, links=[pump.link]).close()  # type: ignore[arg-type]
    assert moving.safe  # still moving as far as castrig knows: its watchdog stays armed


# -- faults -----------------------------------------------------------------------------------
def test_no_reply_times_out_naming_the_pump():
    pump, emu, _ = sim_pump()
    emu.inject("no_reply")
    with pytest.raises(LinkTimeout, match="caster"):
        pump.state()
    with pytest.raises(LinkTimeout, match="caster: 'RUN'"):
        pump.start()
    emu.clear()
    # After the timeouts the line was out of step: RUN was not sent until a VER marker came
    # back (it did not), so the pump never started; the next exchange confirms and reads it.
    assert pump.state() is PumpState.STOPPED
    assert pump.in_step.resyncs == 1 and not pump.in_step.suspect
    pump.start()
    assert pump.state() is PumpState.INFUSING


def test_stop_after_a_stall_that_outlasted_the_watchdog_is_answered_at_once():
    """The line stalls, the pump's safe-mode watchdog stops it (alarm T), the line comes back:
    the safe state's STP must not fail as "no reply" because the in-step VER was answered with
    the alarm (it was, and cost the 1 s reply timeout, before the marker took an alarm)."""
    pump, emu, clock = sim_pump(safe_mode_s=5)
    pump.set_diameter_mm(26.59)
    pump.set_rate_ml_min(1.0)
    pump.start()
    emu.inject("no_reply")
    with pytest.raises(LinkTimeout):
        pump.keepalive()
    clock.sleep(10)  # past the 5 s watchdog: the pump stopped itself with alarm T
    emu.clear()
    t0 = clock.now()
    pump.stop()
    assert clock.now() - t0 < 0.5  # under the 1 s reply timeout: no exchange waited it out
    assert pump.last_alarm == "T" and pump.state() is PumpState.STOPPED
    assert emu.flow_ml_min(clock.now()) == 0.0


def test_garbage_is_a_link_error_naming_the_pump():
    pump, emu, _ = sim_pump()
    emu.inject("garbage")
    with pytest.raises(LinkError, match="caster"):
        pump.version()
    emu.clear()
    assert pump.version() == "NE1000V3.928"


def test_drop_then_reconnect():
    pump, emu, clock = sim_pump()
    emu.inject("drop")
    with pytest.raises(LinkClosed, match="caster"):
        pump.state()
    emu.clear("drop")
    again = NE1000Pump(SimLink(emu, clock), name="caster", clock=clock)
    again.connect()
    assert again.connect_alarms == [] and again.state() is PumpState.STOPPED


def test_stall_raises_alarm_s_then_recovers():
    pump, emu, clock = sim_pump()
    pump.start()
    emu.inject("stall")
    clock.sleep(1)
    with pytest.raises(PumpAlarm) as info:
        pump.state()
    assert info.value.kind == "S"
    emu.clear("stall")
    pump.start()
    clock.sleep(1)
    assert pump.state() is PumpState.INFUSING


def test_power_cycle_mid_run_raises_reset_alarm_and_stop_still_works():
    pump, emu, clock = sim_pump()
    pump.start()
    emu.power_cycle(clock.now())
    with pytest.raises(PumpAlarm) as info:
        pump.dispensed()
    assert info.value.kind == "R"
    emu.power_cycle(clock.now())
    pump.stop()  # acknowledges the alarm and stops
    assert pump.state() is PumpState.STOPPED


# -- real OS links ----------------------------------------------------------------------------
@pytest.mark.parametrize("server", [serve_pty, serve_tcp])
def test_over_os_links(server):
    emu = NE1000Emulator("caster")
    with server(emu, WallClock()) as srv:
        link = SerialLink(srv.address, baudrate=19200, timeout_s=0.5)
        try:
            pump = NE1000Pump(link, name="caster", clock=WallClock())
            pump.connect()
            assert pump.firmware == "NE1000V3.928"
            pump.set_diameter_mm(26.59)
            pump.set_rate_ml_min(0.5)
            pump.start()
            assert pump.state() is PumpState.INFUSING
            pump.enter_safe_mode(2)
            assert pump.keepalive() is PumpState.INFUSING
            pump.leave_safe_mode()
            pump.stop()
            assert pump.state() is PumpState.STOPPED
            emu.inject("no_reply")
            with pytest.raises(LinkTimeout, match="caster"):
                pump.start()
            emu.clear()
        finally:
            link.close()


def test_chain_and_watchdog_over_tcp_in_wall_time():
    clock = WallClock()
    a, b = NE1000Emulator("caster", address=0), NE1000Emulator("water", address=1)
    with serve_tcp(NE1000Chain("pumps", [a, b]), clock) as srv:
        link = SerialLink(srv.address, baudrate=19200, timeout_s=0.5)
        try:
            p0 = NE1000Pump(link, name="caster", address=0, clock=clock)
            p1 = NE1000Pump(link, name="water", address=1, clock=clock, safe_mode_s=1)
            p0.connect()
            p1.connect()
            p1.start()
            assert p1.keepalive() is PumpState.INFUSING
            clock.sleep(1.3)  # silent > 1 s
            assert p0.state() is PumpState.STOPPED
            with pytest.raises(PumpAlarm) as info:
                p1.keepalive()
            assert info.value.kind == "T"
        finally:
            link.close()


def test_drop_and_reconnect_over_tcp():
    clock = WallClock()
    emu = NE1000Emulator("caster")
    with serve_tcp(emu, clock) as srv:
        link = SerialLink(srv.address, baudrate=19200, timeout_s=0.3)
        pump = NE1000Pump(link, name="caster", clock=clock)
        pump.connect()
        emu.inject("drop")
        clock.sleep(0.1)
        with pytest.raises(LinkError, match="caster"):
            pump.state()
        link.close()
        emu.clear("drop")
        link2 = SerialLink(srv.address, baudrate=19200, timeout_s=0.5)
        try:
            again = NE1000Pump(link2, name="caster", clock=clock)
            again.connect()
            assert again.state() is PumpState.STOPPED
        finally:
            link2.close()


# -- the pumping program a pump keeps ---------------------------------------------------------------
def _send_lines(emu: NE1000Emulator, clock: VirtualClock, *commands: str) -> list[str]:
    """Basic-mode commands as a terminal or another client sends them; the reply of each."""
    link = SimLink(emu, clock)
    replies = []
    for command in commands:
        link.write(command.encode() + b"\r")
        replies.append(link.read_until(b"\x03", timeout_s=1.0).decode())
    return replies


def test_a_program_runs_its_rate_phases_in_turn_and_stops_at_its_stp_phase():
    clock = VirtualClock()
    emu = NE1000Emulator("caster", diameter_mm=26.59)
    replies = _send_lines(emu, clock, "", "PHN", "FUN", "PHN2", "FUN",  # power-up: phase 1 RAT, phase 2 STP
                          "FUNRAT", "RAT2MM", "VOL1", "DIRINF", "PHN3", "FUNSTP", "PHN1", "RAT1MM", "VOL0.5",
                          "RUN")
    assert replies[:5] == ["\x0200A?R\x03", "\x0200S01\x03", "\x0200SRAT\x03", "\x0200S\x03", "\x0200SSTP\x03"]
    assert all(r == "\x0200S\x03" for r in replies[5:-1]) and replies[-1] == "\x0200I\x03"
    clock.sleep(29)  # phase 1: 0.5 mL at 1 mL/min
    assert emu.flow_ml_min(clock.now()) == pytest.approx(1.0)
    clock.sleep(2)  # phase 2: 1 mL at 2 mL/min
    assert emu.flow_ml_min(clock.now()) == pytest.approx(2.0)
    assert _send_lines(emu, clock, "PHN", "FUNSTP") == ["\x0200I02\x03", "\x0200I?NA\x03"]
    clock.sleep(30)  # phase 3 STP: stopped, phase 1 selected again
    assert emu.state(clock.now()) == "S" and emu.dispensed_ml(clock.now()) == pytest.approx(1.5)
    assert _send_lines(emu, clock, "PHN", "RUN2", "FUNPAS") == ["\x0200S01\x03", "\x0200I\x03", "\x0200I?NA\x03"]
    assert emu.flow_ml_min(clock.now()) == pytest.approx(2.0)


def test_a_cast_on_a_pump_left_with_someone_elses_program_dispenses_its_own_volume_and_stops(sim_serve):
    """A colleague's program left on the served caster (their script, or the keypad): phase 1
    10 µL, phase 2 pumping on without a volume target, phase 3 selected. castrig's cast set
    phase 3 and ran the colleague's phases 1 and 2: the pump never stopped. It now sets its one
    phase first, so it dispenses its own 5 µL and stops."""
    import socket

    with sim_serve("--tcp", "0") as served:
        url = served.addresses["caster"]
        host, port = url.removeprefix("socket://").rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=2.0) as colleague:
            for command in ("1", "1DIA4.699", "1PHN1", "1FUNRAT", "1RAT600UM", "1VOL10", "1DIRINF",
                            "1PHN2", "1FUNRAT", "1RAT300UM", "1VOL0", "1PHN3"):
                colleague.sendall(command.encode() + b"\r")
                reply = b""
                while not reply.endswith(b"\x03"):
                    reply += colleague.recv(64)
                assert b"?" not in reply[4:] or command == "1", (command, reply)  # "1": the power-up alarm
        clock = WallClock()
        pump = NE1000Pump(SerialLink(url, baudrate=19200, timeout_s=1.0), name="caster", clock=clock, address=1)
        try:
            pump.connect(arm=False)
            pump.dispense(0.005, 0.6)  # 0.5 s
            deadline = clock.now() + 5.0
            while pump.state() is not PumpState.STOPPED and clock.now() < deadline:
                clock.sleep(0.1)
            assert pump.state() is PumpState.STOPPED
            assert pump.dispensed().infused_ml == pytest.approx(0.005, abs=1e-4)
            assert pump.rate_ml_min() == pytest.approx(0.6) and pump.volume_ml() == pytest.approx(0.005)
        finally:
            pump.stop()
            pump.close()
