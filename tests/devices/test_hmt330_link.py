"""HMT330 driver against its emulator: in virtual time over SimLink, and over a pty and TCP."""

from __future__ import annotations

import pytest

from castrig.clock import VirtualClock
from castrig.devices.hmt330 import HMT330, HMT330Error, HMT330LinkError, HMT330SensorError
from castrig.links import LinkClosed, SimLink
from castrig.links.serial_link import SerialLink
from castrig.sim.hmt330 import HMT330Emulator
from castrig.sim.serve import serve_pty, serve_tcp


def ramp(t: float) -> tuple[float, float]:
    """True RH rising 1 %RH per 10 s from 40 %RH; 23 degC."""
    return 40.0 + t / 10.0, 23.0


def rig(**kwargs):
    clock = VirtualClock()
    emu = HMT330Emulator("rh_membrane", source=ramp, seed=2, **kwargs)
    link = SimLink(emu, clock, timeout_s=2.0)
    dev = HMT330(link, name="rh_membrane", clock=clock, quiet_s=0.3)
    return clock, emu, dev


@pytest.mark.parametrize("smode", ["STOP", "RUN"])
def test_connect_brings_a_known_state_from_any_mode(smode):
    clock, emu, dev = rig(smode=smode, interval=(0, "S"))
    assert not emu.running and not emu.echo and emu.smode == "STOP" and emu.metric
    r = dev.read()
    assert r.rh_pct == pytest.approx(ramp(clock.now())[0], abs=0.6)
    assert r.temperature_c == pytest.approx(23.0, abs=0.2)


def test_connect_while_echoing_in_non_metric_with_custom_form():
    clock = VirtualClock()
    emu = HMT330Emulator("rh", source=ramp, echo=True, metric=False)
    emu.form = '"T=" T U3 #t "RH=" 4.2 RH U4 #r #n'
    dev = HMT330(SimLink(emu, clock), name="rh", clock=clock)
    assert emu.metric and emu.form.startswith('"RH="')
    assert dev.read().temperature_c == pytest.approx(23.0, abs=0.2)


def test_readings_follow_the_source_in_virtual_time():
    clock, emu, dev = rig()
    readings = []
    for _ in range(10):
        clock.sleep(60.0)
        readings.append((clock.now(), dev.read().rh_pct))
    for t, rh in readings:
        assert rh == pytest.approx(ramp(t)[0], abs=0.6)


def test_non_metric_readings_come_back_in_celsius():
    clock, emu, dev = rig()
    dev.set_metric(False)
    assert dev.read().temperature_c == pytest.approx(23.0, abs=0.2)


def test_info_settings_and_interval():
    clock, emu, dev = rig(serial_number="M0000001")
    dev.set_interval(10, "s")
    info = dev.info()
    assert info["model"].startswith("HMT330")
    assert info["Serial number"] == "M0000001"
    assert info["Output interval"] == "10 S"
    assert info["Echo"] == "OFF" and info["Serial mode"] == "STOP"
    assert dev.serial_mode() == "STOP"


def test_streaming_in_virtual_time():
    clock, emu, dev = rig()
    dev.start_streaming(5)
    t0 = clock.now()
    first = dev.read_streamed(timeout_s=6)
    second = dev.read_streamed(timeout_s=6)
    assert clock.now() - t0 == pytest.approx(5.0, abs=0.2)
    assert second.rh_pct > first.rh_pct - 0.6
    dev.stop_streaming()
    assert not emu.running
    assert dev.read().temperature_c == pytest.approx(23.0, abs=0.2)


def test_poll_bus_with_address():
    clock = VirtualClock()
    emu = HMT330Emulator("room", source=ramp, smode="POLL", address=7)
    dev = HMT330(SimLink(emu, clock), name="room", address=7, clock=clock)
    assert dev.read().rh_pct == pytest.approx(40.0, abs=0.6)


def test_stuck_sensor_reads_the_same():
    clock, emu, dev = rig()
    emu.inject("stuck")
    first = dev.read()
    clock.sleep(600.0)
    assert dev.read() == first


def test_sensor_error_is_typed():
    clock, emu, dev = rig()
    emu.inject("sensor_error")
    with pytest.raises(HMT330SensorError, match="rh_membrane"):
        dev.read()


@pytest.mark.parametrize("fault", ["no_reply", "garbage"])
def test_faults_give_typed_errors_naming_the_device(fault):
    clock, emu, dev = rig()
    emu.inject(fault)
    with pytest.raises(HMT330Error) as err:
        dev.read()
    assert err.value.device == "rh_membrane"
    emu.clear(fault)
    assert dev.read().rh_pct > 0


def test_drop_and_reconnect():
    clock, emu, dev = rig()
    emu.inject("drop")
    with pytest.raises(HMT330LinkError) as err:
        dev.read()
    assert isinstance(err.value.cause, LinkClosed)
    emu.clear("drop")
    dev.connect()
    assert dev.read().rh_pct > 0


# -- real OS links -----------------------------------------------------------------------------
def test_over_a_pty():
    # A pty carries no parity: Linux refuses 7E1 on it (termios EINVAL), so 4800 8N1 here.
    emu = HMT330Emulator("room", source=ramp, smode="RUN", interval=(0, "S"), baudrate=None)
    with serve_pty(emu) as server:
        link = SerialLink(server.address, baudrate=4800, timeout_s=0.5)
        try:
            dev = HMT330(link, name="room", quiet_s=0.1)
            assert 0 < dev.read().rh_pct <= 100
            assert dev.info()["Baud P D S"] == "4800 E 7 1"
        finally:
            link.close()


def test_over_tcp_with_drop_and_reconnect():
    emu = HMT330Emulator("room", source=ramp, baudrate=None)
    with serve_tcp(emu) as server:
        link = SerialLink(server.address, timeout_s=0.3)
        dev = HMT330(link, name="room", quiet_s=0.05, query_attempts=2)
        assert dev.read().temperature_c == pytest.approx(23.0, abs=0.2)
        emu.inject("drop")
        with pytest.raises(HMT330LinkError, match="room"):
            dev.read()
        link.close()
        emu.clear("drop")
        link = SerialLink(server.address, timeout_s=0.5)
        try:
            dev = HMT330(link, name="room", quiet_s=0.05)
            assert dev.read().temperature_c == pytest.approx(23.0, abs=0.2)
        finally:
            link.close()
