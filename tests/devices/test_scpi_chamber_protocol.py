"""Exact bytes of the SCPI chamber driver, and the emulator's answers to raw lines."""

from __future__ import annotations

import math

import pytest

from castrig.devices.roles import ChamberReading, DeviceError
from castrig.devices.scpi_chamber import (
    ChamberCommandError,
    ChamberLinkError,
    ChamberRangeError,
    ChamberReplyError,
    ScpiHumidityChamber,
)
from castrig.links import expected_protocol
from castrig.sim.scpi_chamber import ScpiChamberEmulator

OK = (b"SYST:ERR?\n", b'0,"No error"\n')


def chamber(link):
    return ScpiHumidityChamber(link, name="chamber")


# -- driver: exact bytes -----------------------------------------------------------------------
def test_identify():
    with expected_protocol(chamber, [(b"*IDN?\n", b"CASTRIG,HC-SCPI-1,000001,1.00\n")]) as c:
        assert c.identify() == "CASTRIG,HC-SCPI-1,000001,1.00"


def test_set_setpoint_checks_error_queue():
    with expected_protocol(chamber, [(b"SOUR:HUM:SET 45.5\n", None), OK]) as c:
        c.set_rh_setpoint(45.5)


def test_set_setpoint_rounds_to_controller_resolution():
    with expected_protocol(chamber, [(b"SOUR:HUM:SET 80.0\n", None), OK]) as c:
        c.set_rh_setpoint(80.04)


def test_set_setpoint_accepts_plus_zero_no_error():
    with expected_protocol(chamber, [(b"SOUR:HUM:SET 0.0\n", None), (b"SYST:ERR?\n", b'+0,"No error"\n')]) as c:
        c.set_rh_setpoint(0)


@pytest.mark.parametrize("bad", [-0.1, 100.1, math.nan, math.inf])
def test_setpoint_out_of_range_is_refused_before_sending(bad):
    with expected_protocol(chamber, []) as c:
        with pytest.raises(ChamberRangeError) as info:
            c.set_rh_setpoint(bad)
    assert isinstance(info.value, DeviceError) and isinstance(info.value, ValueError)
    assert info.value.device == "chamber" and "SOUR:HUM:SET" in info.value.command


def test_controller_error_after_set_raises_with_code_and_drains_queue():
    script = [
        (b"SOUR:HUM:SET 45.0\n", None),
        (b"SYST:ERR?\n", b'-222,"Data out of range"\n'),
        (b"SYST:ERR?\n", b'-113,"Undefined header"\n'),
        OK,
    ]
    with expected_protocol(chamber, script) as c:
        with pytest.raises(ChamberCommandError) as info:
            c.set_rh_setpoint(45)
    err = info.value
    assert err.code == -222 and err.error_message == "Data out of range"
    assert err.errors == [(-222, "Data out of range"), (-113, "Undefined header")]
    assert "chamber" in str(err) and "SOUR:HUM:SET 45.0" in str(err)


def test_humidifier_on_off_and_query():
    script = [
        (b"OUTP ON\n", None),
        OK,
        (b"OUTP?\n", b"1\n"),
        (b"OUTP OFF\n", None),
        OK,
        (b"OUTP?\n", b"0\n"),
    ]
    with expected_protocol(chamber, script) as c:
        c.set_humidifier(True)
        assert c.humidifier_on() is True
        c.set_humidifier(False)
        assert c.humidifier_on() is False


def test_humidifier_query_accepts_on_off_words():
    with expected_protocol(chamber, [(b"OUTP?\n", b"ON\n"), (b"OUTP?\n", b"OFF\n")]) as c:
        assert c.humidifier_on() is True
        assert c.humidifier_on() is False


def test_read_all_three_values():
    script = [
        (b"MEAS:HUM?\n", b"44.87\n"),
        (b"MEAS:TEMP?\n", b"23.02\n"),
        (b"SOUR:HUM:SET?\n", b"45.5\n"),
    ]
    with expected_protocol(chamber, script) as c:
        assert c.read() == ChamberReading(rh_pct=44.87, temperature_c=23.02, setpoint_rh_pct=45.5)


def test_reply_with_crlf_and_nr3_number():
    with expected_protocol(chamber, [(b"MEAS:HUM?\n", b"+4.487E+01\r\n")]) as c:
        assert c.read_rh_pct() == pytest.approx(44.87)


def test_reset_and_clear_status():
    with expected_protocol(chamber, [(b"*RST\n", None), OK, (b"*CLS\n", None)]) as c:
        c.reset()
        c.clear_status()


def test_errors_reads_queue_until_empty():
    script = [(b"SYST:ERR?\n", b'-113,"Undefined header"\n'), OK]
    with expected_protocol(chamber, script) as c:
        assert c.errors() == [(-113, "Undefined header")]


#: The in-step marker after a failed exchange.
IDN = (b"*IDN?\n", b"CASTRIG,HC-SCPI-1,000001,1.00\n")


def test_no_reply_is_retried_then_typed_error():
    # Queries are retried once; two silent tries give a typed error naming device and command.
    # The second try is preceded by the in-step marker *IDN?, unanswered too.
    with expected_protocol(chamber, [(b"MEAS:HUM?\n", None), (b"*IDN?\n", None)]) as c:
        with pytest.raises(ChamberLinkError) as info:
            c.read_rh_pct()
    assert info.value.device == "chamber" and info.value.command == "MEAS:HUM?"
    assert "LinkTimeout" in str(info.value)


def test_garbled_reply_retried_once_then_good():
    with expected_protocol(chamber, [(b"MEAS:TEMP?\n", b"#x!\n"), IDN, (b"MEAS:TEMP?\n", b"23.00\n")]) as c:
        assert c.read_temperature_c() == 23.0


def test_a_late_reply_is_not_taken_for_the_next_query():
    # MEAS:HUM? timed out; its late reply comes before the marker's: both dropped in turn.
    pairs = [(b"MEAS:HUM?\n", None), (b"*IDN?\n", b"44.87\n" + IDN[1]), (b"MEAS:HUM?\n", b"51.20\n")]
    with expected_protocol(chamber, pairs) as c:
        assert c.read_rh_pct() == 51.2


def test_garbled_reply_twice_is_reply_error():
    with expected_protocol(chamber, [(b"OUTP?\n", b"2\n"), IDN, (b"OUTP?\n", b"\xff\xfe\n")]) as c:
        with pytest.raises(ChamberReplyError) as info:
            c.humidifier_on()
    assert "chamber" in str(info.value) and "OUTP?" in str(info.value)


def test_bad_error_reply_is_reply_error():
    with expected_protocol(
        chamber, [(b"OUTP ON\n", None), (b"SYST:ERR?\n", b"what\n"), IDN, (b"SYST:ERR?\n", b"what\n")]
    ) as c:
        with pytest.raises(ChamberReplyError):
            c.set_humidifier(True)


# -- emulator: raw lines in, raw bytes out -----------------------------------------------------
def talk(emu: ScpiChamberEmulator, line: bytes, t: float = 0.0) -> bytes:
    emu.receive(line, t)
    return emu.transmit(t + 1.0)


@pytest.fixture
def emu():
    return ScpiChamberEmulator("chamber", seed=1)


def test_emulator_idn_and_opc(emu):
    assert talk(emu, b"*IDN?\n") == b"CASTRIG,HC-SCPI-1,000001,1.00\n"
    assert talk(emu, b"*OPC?\n") == b"1\n"


def test_emulator_long_short_and_optional_forms(emu):
    for line in (b"SOUR:HUM:SET 45.5\n", b":SOURce:HUMidity:SETpoint 45.5\n", b"hum 45.5\n", b"HUM:SET 4.55E+01\r\n"):
        emu.setpoint_rh_pct = 0.0
        assert talk(emu, line) == b""
        assert emu.setpoint_rh_pct == 45.5, line
    assert talk(emu, b"sour:hum:set?\n") == b"45.5\n"
    assert talk(emu, b"SOURCE:HUMIDITY?\n") == b"45.5\n"
    assert talk(emu, b"SYST:ERR?\n") == b'0,"No error"\n'


def test_emulator_min_max_def(emu):
    talk(emu, b"SOUR:HUM:SET MAX\n")
    assert emu.setpoint_rh_pct == 100.0
    talk(emu, b"SOUR:HUM:SET min\n")
    assert emu.setpoint_rh_pct == 0.0
    talk(emu, b"SOUR:HUM:SET DEF\n")
    assert emu.setpoint_rh_pct == 50.0


def test_emulator_out_of_range_and_errors(emu):
    emu.setpoint_rh_pct = 30.0
    assert talk(emu, b"SOUR:HUM:SET 100.5\n") == b""
    assert emu.setpoint_rh_pct == 30.0
    assert talk(emu, b"SOUR:HUM:SET abc\n") == b""
    assert talk(emu, b"SOUR:HUM:SET\n") == b""
    assert talk(emu, b"FOO:BAR 1\n") == b""
    assert talk(emu, b"OUTP MAYBE\n") == b""
    assert talk(emu, b"MEAS:HUM? 3\n") == b""  # a query with an error answers nothing
    assert talk(emu, b"SYST:ERR?\n") == b'-222,"Data out of range"\n'
    assert talk(emu, b"SYST:ERR?\n") == b'-104,"Data type error"\n'
    assert talk(emu, b"SYST:ERR?\n") == b'-109,"Missing parameter"\n'
    assert talk(emu, b"SYST:ERR?\n") == b'-113,"Undefined header"\n'
    assert talk(emu, b"SYST:ERR?\n") == b'-224,"Illegal parameter value"\n'
    assert talk(emu, b"SYSTem:ERRor:NEXT?\n") == b'-108,"Parameter not allowed"\n'
    assert talk(emu, b"SYST:ERR?\n") == b'0,"No error"\n'


def test_emulator_error_queue_overflow_and_cls(emu):
    for _ in range(12):
        talk(emu, b"NOPE\n")
    assert len(emu.errors) == 10
    assert emu.errors[-1] == (-350, "Queue overflow")
    talk(emu, b"*CLS\n")
    assert talk(emu, b"SYST:ERR?\n") == b'0,"No error"\n'


def test_emulator_output_and_rst(emu):
    assert talk(emu, b"OUTP?\n") == b"0\n"
    talk(emu, b"OUTP ON\n")
    assert emu.output_on and talk(emu, b"OUTPUT:STATE?\n") == b"1\n"
    talk(emu, b"OUTP 0\n")
    assert not emu.output_on
    talk(emu, b"OUTP:STAT 1\n")
    talk(emu, b"SOUR:HUM:SET 70\n")
    talk(emu, b"*RST\n")
    assert not emu.output_on and emu.setpoint_rh_pct == 50.0


def test_emulator_several_commands_on_one_line(emu):
    assert talk(emu, b"SOUR:HUM:SET 60;OUTP ON;OUTP?;SOUR:HUM:SET?\n") == b"1;60.0\n"


def test_emulator_measurement_format_and_physics():
    emu = ScpiChamberEmulator("chamber", seed=1, tau_s=60.0, initial_rh_pct=40.0, dry_rh_pct=3.0)
    assert talk(emu, b"MEAS:HUM?\n", 0.0) == b"40.00\n"
    assert talk(emu, b"MEAS:TEMP?\n", 0.0) == b"23.00\n"
    emu.receive(b"SOUR:HUM:SET 80;OUTP ON\n", 0.0)
    # After one time constant 63 % of the way from 40 to 80.
    assert emu.rh_pct(60.0) == pytest.approx(80 - 40 * math.exp(-1))
    assert talk(emu, b"MEAS:HUM?\n", 60.0) == f"{80 - 40 * math.exp(-1):.2f}\n".encode()
    # Output off: dry purge from where it was, towards dry_rh_pct.
    emu.receive(b"OUTP OFF\n", 600.0)
    rh600 = emu.rh_pct(600.0)
    assert rh600 == pytest.approx(80.0, abs=0.01)
    assert emu.rh_pct(660.0) == pytest.approx(3 + (rh600 - 3) * math.exp(-1))


def test_emulator_on_change_called_before_each_change():
    seen: list[tuple[float, float, bool]] = []
    emu = ScpiChamberEmulator("chamber", seed=0)
    emu.on_change = lambda t: seen.append((t, emu.setpoint_rh_pct, emu.output_on))
    emu.receive(b"SOUR:HUM:SET 70\n", 1.0)
    emu.receive(b"OUTP ON\n", 2.0)
    emu.receive(b"*RST\n", 3.0)
    emu.receive(b"SOUR:HUM:SET 170\n", 4.0)  # rejected: no change
    assert seen == [(1.0, 50.0, False), (2.0, 70.0, False), (3.0, 70.0, True)]


def test_emulator_source_override():
    emu = ScpiChamberEmulator("chamber", seed=0, source=lambda t: (12.345 + t, 30.5))
    assert talk(emu, b"MEAS:HUM?\n", 1.0) == b"13.35\n"
    assert talk(emu, b"MEAS:TEMP?\n", 1.0) == b"30.50\n"


def test_emulator_noise_is_seeded():
    a = ScpiChamberEmulator("c", seed=7, noise_rh_pct=0.3)
    b = ScpiChamberEmulator("c", seed=7, noise_rh_pct=0.3)
    ra = [talk(a, b"MEAS:HUM?\n", t) for t in range(5)]
    assert ra == [talk(b, b"MEAS:HUM?\n", t) for t in range(5)]
    assert len(set(ra)) > 1


def test_emulator_stuck_freezes_readings():
    emu = ScpiChamberEmulator("chamber", seed=0, initial_rh_pct=40.0)
    emu.receive(b"SOUR:HUM:SET 80;OUTP ON\n", 0.0)
    first = talk(emu, b"MEAS:HUM?\n", 10.0)
    emu.inject("stuck")
    assert talk(emu, b"MEAS:HUM?\n", 100.0) == first
    assert talk(emu, b"MEAS:HUM?\n", 500.0) == first
    emu.clear("stuck")
    assert talk(emu, b"MEAS:HUM?\n", 500.0) != first


def test_emulator_unknown_fault_rejected():
    with pytest.raises(ValueError, match="stuck"):
        ScpiChamberEmulator("chamber").inject("melt")
