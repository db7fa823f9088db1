"""The Watlow F4 / F4T emulators: raw frames from the standard, the silence rule, the drivers
against them in virtual time, pymodbus's client (not our framing) over a pty and TCP, and the
demo recipe on both Watlow profiles."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from castrig.clock import VirtualClock
from castrig.devices.modbus import ModbusExceptionReply, ModbusLinkError
from castrig.devices.watlow_f4 import WatlowF4
from castrig.devices.watlow_f4t import WatlowF4T
from castrig.links import SimLink
from castrig.sim.watlow import WatlowF4Emulator, WatlowF4TEmulator, modbus_crc

REPO = Path(__file__).resolve().parents[2]


def x(text: str) -> bytes:
    return bytes.fromhex(text)


def rtu(emu: WatlowF4Emulator, frame: bytes, t: float = 0.0) -> bytes:
    emu.receive(frame, t)
    return emu.transmit(t + 1.0)


def tcp(emu: WatlowF4TEmulator, frame: bytes, t: float = 0.0) -> bytes:
    emu.receive(frame, t)
    return emu.transmit(t + 1.0)


# -- F4 emulator: hand-built RTU frames --------------------------------------------------------
def test_emulator_crc_is_the_standards():
    assert modbus_crc(b"123456789") == bytes([0x37, 0x4B])
    assert modbus_crc(x("01 86 02")) == x("c3 a1")  # Watlow Communications Guide example


def test_f4_reads_every_register_of_the_map():
    emu = WatlowF4Emulator("chamber", initial_rh_pct=40.0, temperature_c=23.5)
    assert rtu(emu, x("01 03 00 68 00 01 05 d6")) == x("01 03 02 01 90 b9 b8")  # 104 -> 400 = 40.0 %RH
    assert rtu(emu, x("01 03 00 64 00 01 c5 d5")) == x("01 03 02 00 eb f8 0b")  # 100 -> 235 = 23.5 °C
    for address, value in {200: 0, 602: -400, 603: 1800, 606: 1, 608: 0, 612: 0, 613: 1000, 616: 1, 618: 1,
                           901: 1, 319: 0}.items():
        request = struct.pack(">BBHH", 1, 3, address, 1)
        reply = rtu(emu, request + modbus_crc(request))
        body = struct.pack(">BBBh", 1, 3, 2, value)
        assert reply == body + modbus_crc(body), address


def test_f4_write_single_echoes_and_sets_the_loop():
    emu = WatlowF4Emulator("chamber")
    assert rtu(emu, x("01 06 01 3f 01 c7 f8 38")) == x("01 06 01 3f 01 c7 f8 38")
    assert emu.setpoint_rh_pct == 45.5 and emu.output_on
    assert rtu(emu, x("01 06 01 3f 00 00 b8 3a")) == x("01 06 01 3f 00 00 b8 3a")
    assert emu.setpoint_rh_pct == 0.0 and not emu.output_on  # at the range low: dry purge


def test_f4_write_multiple():
    emu = WatlowF4Emulator("chamber")
    body = x("01 10 01 2c 00 01 02 00 fa")  # 300 <- 250 = 25.0 °C
    reply = rtu(emu, body + modbus_crc(body))
    assert reply == x("01 10 01 2c 00 01") + modbus_crc(x("01 10 01 2c 00 01"))
    assert emu.setpoint_temperature == 25.0


@pytest.mark.parametrize("request_hex, exception", [
    ("01 04 00 64 00 01", "01 84 01"),          # function 04 not supported: illegal function
    ("01 03 00 65 00 01", "01 83 02"),          # 101 is not in the map: illegal data address
    ("01 03 00 64 00 02", "01 83 02"),          # 100-101: 101 missing
    ("01 03 00 64 00 00", "01 83 03"),          # count 0: illegal data value
    ("01 03 00 64 00 7e", "01 83 03"),          # count 126 > 125
    ("01 06 01 3f 03 e9", "01 86 03"),          # 319 <- 100.1 %RH: out of range
    ("01 06 00 68 00 01", "01 86 02"),          # 104 is read-only
    ("01 10 01 2c 00 01 03 00 fa", "01 90 03"),  # byte count does not match
])
def test_f4_exception_responses(request_hex, exception):
    emu = WatlowF4Emulator("chamber")
    body = x(request_hex)
    assert rtu(emu, body + modbus_crc(body)) == x(exception) + modbus_crc(x(exception))


def test_f4_ignores_bad_crc_other_units_and_answers_no_broadcast():
    emu = WatlowF4Emulator("chamber")
    assert rtu(emu, x("01 03 00 68 00 01 05 d7")) == b""      # bad CRC
    assert rtu(emu, x("02 03 00 68 00 01 05 e5")[:6] + modbus_crc(x("02 03 00 68 00 01"))) == b""
    body = x("00 06 01 3f 01 f4")                               # broadcast 319 <- 50.0
    assert rtu(emu, body + modbus_crc(body)) == b""
    assert emu.setpoint_rh_pct == 50.0


def test_f4_frames_are_delimited_by_silence():
    emu = WatlowF4Emulator("chamber", baudrate=9600)
    t35 = 3.5 * 11 / 9600
    frame = x("01 03 00 68 00 01 05 d6")
    # Bytes apart by less than t3.5 are one frame, even split anywhere.
    emu.receive(frame[:3], 0.0)
    emu.receive(frame[3:], 0.001)
    assert emu.transmit(0.001 + t35 * 0.9) == b""              # not yet silent long enough
    assert emu.next_output_time(0.0015) == pytest.approx(0.001 + t35)
    out = emu.transmit(1.0)
    assert out[:2] == x("01 03") and len(out) == 7
    # The same bytes with a gap longer than t3.5: two frames, both damaged, both ignored.
    emu.receive(frame[:3], 2.0)
    emu.receive(frame[3:], 2.0 + 2 * t35)
    assert emu.transmit(3.0) == b""


def test_f4_silence_above_19200_is_fixed():
    assert WatlowF4Emulator("c", baudrate=38400).silence_s == 0.00175
    assert WatlowF4Emulator("c", baudrate=19200).silence_s == pytest.approx(3.5 * 11 / 19200)


# -- F4T emulator: hand-built MBAP frames --------------------------------------------------------
def test_f4t_read_write_float_both_word_orders():
    emu = WatlowF4TEmulator("chamber")
    assert tcp(emu, x("00 09 00 00 00 06 01 03 0b 78 00 02")) == x("00 09 00 00 00 07 01 03 04 00 00 42 c8")
    assert tcp(emu, x("00 0a 00 00 00 0b 01 10 0b 7e 00 02 04 00 00 42 36")) == x("00 0a 00 00 00 06 01 10 0b 7e 00 02")
    assert emu.setpoint_rh_pct == 45.5
    swapped = WatlowF4TEmulator("chamber", low_word_first=False)
    assert tcp(swapped, x("00 01 00 00 00 06 01 03 0b 78 00 02")) == x("00 01 00 00 00 07 01 03 04 42 c8 00 00")


def test_f4t_control_mode_drives_the_humidifier():
    emu = WatlowF4TEmulator("chamber")
    assert tcp(emu, x("00 01 00 00 00 06 01 03 0b 9e 00 01")) == x("00 01 00 00 00 05 01 03 02 00 3e")  # Off
    assert tcp(emu, x("00 02 00 00 00 06 01 06 0b 4a 00 0a")) == x("00 02 00 00 00 06 01 06 0b 4a 00 0a")
    assert emu.output_on
    assert tcp(emu, x("00 03 00 00 00 06 01 03 0b 9e 00 01")) == x("00 03 00 00 00 05 01 03 02 00 0a")
    assert tcp(emu, x("00 04 00 00 00 06 01 06 0b 4a 00 3f")) == x("00 04 00 00 00 03 01 86 03")  # 63: not a mode


@pytest.mark.parametrize("request_hex, response_hex", [
    ("00 06 01 06 0b 7e 00 00", "00 03 01 86 02"),                      # half a float written
    ("00 0b 01 10 0b 7e 00 02 04 00 00 42 ca", "00 03 01 90 03"),       # 2942 <- 101.0: over range high
    ("00 06 01 06 0b a4 00 00", "00 03 01 86 02"),                      # PV is read-only
    ("00 06 01 03 00 00 00 01", "00 03 01 83 02"),                      # register 0: not in the map
    ("00 06 01 2b 0e 01 00 00", "00 03 01 ab 01"),                      # function 43: illegal function
])
def test_f4t_exceptions(request_hex, response_hex):
    emu = WatlowF4TEmulator("chamber")
    assert tcp(emu, x("12 34 00 00") + x(request_hex)) == x("12 34 00 00") + x(response_hex)


def test_f4t_frames_split_and_joined():
    emu = WatlowF4TEmulator("chamber")
    a = x("00 01 00 00 00 06 01 03 0b 78 00 02")
    b = x("00 02 00 00 00 06 01 03 0b 76 00 02")
    stream = a + b
    for i, byte in enumerate(stream):
        emu.receive(bytes([byte]), 0.0)
    assert emu.transmit(1.0) == x("00 01 00 00 00 07 01 03 04 00 00 42 c8") + x("00 02 00 00 00 07 01 03 04 00 00 00 00")


# -- drivers against emulators, virtual time -----------------------------------------------------
def test_f4_driver_on_emulator_settles_and_goes_dry():
    clock = VirtualClock()
    emu = WatlowF4Emulator("chamber", tau_s=30.0, initial_rh_pct=40.0)
    drv = WatlowF4(SimLink(emu, clock, timeout_s=0.5), name="chamber", clock=clock)
    drv.connect()
    drv.set_rh_setpoint(75.0)
    assert drv.humidifier_on() and emu.output_on
    clock.sleep(300)
    r = drv.read()
    assert r.setpoint_rh_pct == 75.0 and abs(r.rh_pct - 75.0) < 0.2 and r.temperature_c == 23.0
    drv.set_humidifier(False)
    assert not drv.humidifier_on() and emu.setpoint_rh_pct == 0.0
    clock.sleep(300)
    assert drv.read_rh_pct() < 1.0
    drv.set_humidifier(True)
    assert emu.setpoint_rh_pct == 75.0


def test_f4t_driver_on_emulator_both_word_orders():
    for order in ("low_high", "high_low"):
        clock = VirtualClock()
        emu = WatlowF4TEmulator("chamber", tau_s=30.0, low_word_first=order == "low_high")
        drv = WatlowF4T(SimLink(emu, clock, timeout_s=0.5), name="chamber", clock=clock, word_order=order)
        drv.connect()
        drv.set_rh_setpoint(65.4)
        drv.set_humidifier(True)
        assert drv.humidifier_on() and emu.output_on
        assert drv.rh_setpoint_pct() == pytest.approx(65.4, abs=1e-4)
        assert drv.current_rh_setpoint_pct() == pytest.approx(65.4, abs=1e-4)
        drv.set_temperature_setpoint_c(30.0)
        assert drv.temperature_setpoint_c() == 30.0
        drv.set_humidifier(False)
        assert not drv.humidifier_on()


def test_identity_registers_tell_one_controller_from_another_and_are_read_only():
    """What a reopened line is checked against (castrig.devices.identity): the F4's model and
    serial number (registers 0-2), the F4T's part number (16-30, a character a register)."""
    clock = VirtualClock()
    f4 = WatlowF4Emulator("chamber", serial_number=(1001, 5005))
    request = struct.pack(">BBHH", 1, 3, 0, 3)
    body = struct.pack(">BBBHHH", 1, 3, 6, 5270, 1001, 5005)
    assert rtu(f4, request + modbus_crc(request)) == body + modbus_crc(body)
    drivers = [WatlowF4(SimLink(emu, clock, timeout_s=0.5), name="chamber", clock=clock)
               for emu in (f4, WatlowF4Emulator("chamber", serial_number=(1002, 5005)))]
    assert [d.identity() for d in drivers] == ["Watlow F4 (model number 5270) serial number 1001 5005",
                                               "Watlow F4 (model number 5270) serial number 1002 5005"]
    with pytest.raises(ModbusExceptionReply, match="illegal data address"):
        drivers[0].master.write_single(1, 1002)
    for order in ("low_high", "high_low"):  # (one character a register: no word order)
        f4t = WatlowF4TEmulator("chamber", low_word_first=order == "low_high", part_number="F4TSIM000000205")
        drv = WatlowF4T(SimLink(f4t, clock, timeout_s=0.5), name="chamber", clock=clock, word_order=order)
        assert drv.identity() == "Watlow F4T part number 'F4TSIM000000205'"
    with pytest.raises(ModbusExceptionReply, match="illegal data address"):
        drv.master.write_single(16, ord("X"))
    with pytest.raises(ValueError, match="up to 15 ASCII"):
        WatlowF4TEmulator("chamber", part_number="F4T" * 6)


def test_f4t_wrong_word_order_is_caught_at_connect():
    from castrig.devices.watlow_f4t import WatlowF4TError

    clock = VirtualClock()
    emu = WatlowF4TEmulator("chamber", low_word_first=False)
    drv = WatlowF4T(SimLink(emu, clock, timeout_s=0.5), name="chamber", clock=clock)
    with pytest.raises(WatlowF4TError, match="word order"):
        drv.connect()


def test_emulator_exception_reaches_driver_typed():
    clock = VirtualClock()
    emu = WatlowF4Emulator("chamber")
    drv = WatlowF4(SimLink(emu, clock, timeout_s=0.5), name="chamber", clock=clock)
    with pytest.raises(ModbusExceptionReply) as info:
        drv.master.read_holding(101)
    assert info.value.code == 2


@pytest.mark.parametrize("fault", ["no_reply", "garbage", "drop", "truncate"])
def test_faults_are_typed_and_bounded(fault):
    clock = VirtualClock()
    emu = WatlowF4Emulator("chamber")
    drv = WatlowF4(SimLink(emu, clock, timeout_s=0.5), name="chamber", clock=clock)
    drv.connect()
    emu.inject(fault)
    t0 = clock.now()
    with pytest.raises(ModbusLinkError) as info:
        drv.read_rh_pct()
    assert "chamber" in str(info.value) and "read 104" in str(info.value)
    assert clock.now() - t0 <= 2.0
    emu.clear(fault)
    assert 30.0 < drv.read_rh_pct() <= 40.0  # drifting dry from 40 %RH (set point at the dry level)


def test_stuck_freezes_readings():
    clock = VirtualClock()
    emu = WatlowF4TEmulator("chamber", tau_s=30.0)
    drv = WatlowF4T(SimLink(emu, clock, timeout_s=0.5), name="chamber", clock=clock)
    drv.connect()
    drv.set_rh_setpoint(80)
    drv.set_humidifier(True)
    clock.sleep(10)
    first = drv.read_rh_pct()
    emu.inject("stuck")
    clock.sleep(100)
    assert drv.read_rh_pct() == first
    emu.clear("stuck")
    assert drv.read_rh_pct() > first


# -- a generic Modbus client (pymodbus), not our framing, over real OS links -------------------
pymodbus_client = pytest.importorskip("pymodbus.client")


def test_pymodbus_tcp_client_against_f4t_emulator():
    from castrig.sim.serve import serve_tcp

    emu = WatlowF4TEmulator("chamber")
    with serve_tcp(emu) as server:
        client = pymodbus_client.ModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=0)
        assert client.connect()
        try:
            rr = client.read_holding_registers(2936, count=2, device_id=1)
            assert not rr.isError() and rr.registers == [0x0000, 0x42C8]
            assert client.convert_from_registers(rr.registers[::-1], client.DATATYPE.FLOAT32) == 100.0
            assert not client.write_registers(2942, [0x0000, 0x4236], device_id=1).isError()
            assert emu.setpoint_rh_pct == 45.5
            assert not client.write_register(2890, 10, device_id=1).isError()
            assert emu.output_on
            bad = client.read_holding_registers(0, count=1, device_id=1)
            assert bad.isError() and bad.exception_code == 2
            bad = client.write_register(2890, 63, device_id=1)
            assert bad.isError() and bad.exception_code == 3
        finally:
            client.close()


def test_pymodbus_rtu_client_against_f4_emulator_over_pty():
    from castrig.sim.serve import serve_pty

    # Wall time on a pty: the OS may deliver one frame in pieces a little apart, so the
    # emulator's silence is floored at 20 ms here (the bytes are still framed by silence).
    emu = WatlowF4Emulator("chamber", silence_floor_s=0.02)
    with serve_pty(emu) as server:
        client = pymodbus_client.ModbusSerialClient(server.address, baudrate=19200, timeout=1, retries=1)
        assert client.connect()
        try:
            rr = client.read_holding_registers(612, count=2, device_id=1)
            assert not rr.isError() and rr.registers == [0, 1000]
            assert not client.write_register(319, 455, device_id=1).isError()
            assert emu.setpoint_rh_pct == 45.5
            assert client.read_holding_registers(319, count=1, device_id=1).registers == [455]
            assert not client.write_registers(300, [250], device_id=1).isError()
            assert emu.setpoint_temperature == 25.0
            bad = client.read_holding_registers(101, count=1, device_id=1)
            assert bad.isError() and bad.exception_code == 2
        finally:
            client.close()


# -- the demo recipe on both Watlow profiles (in process, virtual time) --------------------------
@pytest.mark.parametrize("profile", ["sim-watlow-f4.yaml", "sim-watlow-f4t.yaml"])
def test_demo_completes_on_watlow_profile(profile, tmp_path):
    from castrig.recipe.session import run_recipe

    result = run_recipe(REPO / "recipes" / "demo.yaml", REPO / "hw_profiles" / profile, data_root=tmp_path / "runs",
                        quiet=True)
    assert result.outcome == "completed", result.reason
    assert result.safe is not None and result.safe.safe
    assert result.safe.verified.get("chamber.humidifier_off") is True


def test_a_controller_without_the_identity_registers_still_opens_and_is_told_by_that(monkeypatch):
    """Registers 0-2 (F4) and 16-30 (F4T) come from public drivers, not the manuals: a unit that
    refuses them (exception 02) failed to open on a serial path, where its identity is read at
    once, and ``castrig safe`` then left its humidifier on. It opens, told by the refusal."""
    from castrig.devices.identity import watch_identity

    monkeypatch.setattr(SimLink, "reopens", True)  # as a serial device path's link
    clock = VirtualClock()
    f4, f4t = WatlowF4Emulator("chamber"), WatlowF4TEmulator("chamber")
    for emu, registers in ((f4, range(0, 3)), (f4t, range(16, 31))):
        for k in registers:
            emu.params.pop(k)
    drivers = [WatlowF4(SimLink(f4, clock, timeout_s=0.5), name="chamber", clock=clock),
               WatlowF4T(SimLink(f4t, clock, timeout_s=0.5), name="chamber", clock=clock)]
    seen = []
    for drv in drivers:
        drv.connect()
        seen.append(watch_identity(drv.link, "chamber", drv.identity))
    assert seen == ["Watlow F4 without identity registers 0-2 (refused: illegal data address)",
                    "Watlow F4T without part-number registers 16-30 (refused: illegal data address)"]
