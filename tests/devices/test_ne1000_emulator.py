"""NE-1000 emulator: raw bytes in, raw bytes out, against the manual's examples and rules."""

from __future__ import annotations

import pytest

from castrig.sim.ne1000 import NE1000Chain, NE1000Emulator
from conftest import ne1000_basic as basic, ne1000_packet as packet


def xfer(emu, data: bytes, t: float) -> bytes:
    emu.receive(data, t)
    return emu.transmit(t + 0.1)


@pytest.fixture
def emu():
    e = NE1000Emulator("caster")
    assert xfer(e, b"\r", 0.0) == basic("00A?R")  # power-up: the first reply is the reset alarm
    return e


def test_power_up_alarm_acknowledged_and_command_not_executed():
    e = NE1000Emulator("caster")
    assert xfer(e, b"RUN\r", 0.0) == basic("00A?R")
    assert e.state(0.2) == "S"  # the RUN that carried the alarm was not executed
    assert xfer(e, b"VER\r", 1.0) == basic("00SNE1000V3.928")


def test_spaces_case_and_address_ignored_or_optional(emu):
    assert xfer(emu, b"dia 26.59\r", 1.0) == basic("00S")
    assert xfer(emu, b"0 D I A\r", 2.0) == basic("00S26.59")
    assert xfer(emu, b"00dia\r", 3.0) == basic("00S26.59")
    assert xfer(emu, b"\r", 4.0) == basic("00S")
    assert xfer(emu, b"5DIA\r", 5.0) == b""  # another pump's address: silence


def test_manual_quick_start_sequence(emu):
    assert xfer(emu, b"DIA 26.59\r", 1.0) == basic("00S")
    assert xfer(emu, b"RAT 15.0 MH\r", 2.0) == basic("00S")
    assert xfer(emu, b"RAT\r", 3.0) == basic("00S15.00MH")
    assert xfer(emu, b"VOL 2.5\r", 4.0) == basic("00S")
    assert xfer(emu, b"VOL\r", 5.0) == basic("00S2.500ML")
    assert xfer(emu, b"DIR INF\r", 6.0) == basic("00S")
    assert xfer(emu, b"RUN\r", 7.0) == basic("00I")
    assert xfer(emu, b"\r", 8.0) == basic("00I")


def test_numbers_print_four_digits_with_a_decimal_point(emu):
    for sent, shown in [(b"1500", "1500."), (b"0.5", "0.500"), (b"20", "20.00"), (b"123.4", "123.4")]:
        assert xfer(emu, b"VOL" + sent + b"\r", 1.0) == basic("00S")
        assert xfer(emu, b"VOL\r", 1.0) == basic(f"00S{shown}ML")


def test_volume_units_follow_the_diameter_rule(emu):
    xfer(emu, b"DIA 14.00\r", 1.0)
    assert xfer(emu, b"VOL\r", 1.0).endswith(b"UL\x03")
    xfer(emu, b"DIA 14.01\r", 1.0)
    assert xfer(emu, b"VOL\r", 1.0).endswith(b"ML\x03")
    xfer(emu, b"VOL UL\r", 1.0)
    assert xfer(emu, b"VOL\r", 1.0).endswith(b"UL\x03")


def test_errors(emu):
    assert xfer(emu, b"XYZ\r", 1.0) == basic("00S?")
    assert xfer(emu, b"DIA 0.01\r", 1.0) == basic("00S?OOR")
    assert xfer(emu, b"DIA 12345\r", 1.0) == basic("00S?OOR")  # more than 4 digits
    assert xfer(emu, b"RAT 1.2345 MM\r", 1.0) == basic("00S?OOR")
    assert xfer(emu, b"RAT 9999 MM\r", 1.0) == basic("00S?OOR")  # faster than the syringe allows
    assert xfer(emu, b"CLD\r", 1.0) == basic("00S?")
    assert xfer(emu, b"DIR UP\r", 1.0) == basic("00S?")
    assert xfer(emu, b"ADR\r", 1.0) == basic("00S?")  # ADR is a system command: needs '*'
    assert xfer(emu, b"SAF 256\r", 1.0) == basic("00S?OOR")
    xfer(emu, b"RAT 1.0 MM\r", 1.0)
    xfer(emu, b"RUN\r", 2.0)
    assert xfer(emu, b"RAT 60 MH\r", 3.0) == basic("00I?NA")  # units cannot change while pumping
    assert xfer(emu, b"DIA 10\r", 3.0) == basic("00I?NA")
    assert xfer(emu, b"PUR\r", 3.0) == basic("00I?NA")


def test_stp_pauses_then_stops(emu):
    xfer(emu, b"RAT 1.0 MM\r", 1.0)
    xfer(emu, b"VOL 1.0\r", 1.0)
    assert xfer(emu, b"RUN\r", 10.0) == basic("00I")
    assert xfer(emu, b"STP\r", 40.0) == basic("00P")
    assert xfer(emu, b"RUN\r", 50.0) == basic("00I")  # resumes the remaining 0.5 mL
    assert emu.state(79.9) == "I" and emu.state(80.1) == "S"
    assert emu.dispensed_ml(100.0) == pytest.approx(1.0)
    xfer(emu, b"RUN\r", 100.0)
    assert xfer(emu, b"STP\r", 106.0) == basic("00P")
    assert xfer(emu, b"STP\r", 107.0) == basic("00S")
    assert xfer(emu, b"RUN\r", 110.0) == basic("00I")  # a new run: a whole new target
    assert emu.state(169.9) == "I" and emu.state(170.1) == "S"
    assert emu.dispensed_ml(200.0) == pytest.approx(2.1)


def test_dis_and_cld(emu):
    xfer(emu, b"RAT 6.0 MH\r", 1.0)  # 0.1 mL/min
    xfer(emu, b"RUN\r", 0.0 + 1.0)
    xfer(emu, b"STP\r", 61.0)
    assert xfer(emu, b"DIS\r", 62.0) == basic("00PI0.100W0.000ML")
    xfer(emu, b"DIR WDR\r", 62.0)
    xfer(emu, b"RUN\r", 62.0)
    assert xfer(emu, b"\r", 63.0) == basic("00W")
    xfer(emu, b"STP\r", 92.0)
    assert xfer(emu, b"DIS\r", 93.0) == basic("00PI0.100W0.050ML")
    assert emu.dispensed_ml(93.0) == pytest.approx(0.05)
    xfer(emu, b"CLD INF\r", 94.0)
    assert xfer(emu, b"DIS\r", 95.0) == basic("00PI0.000W0.050ML")
    assert emu.dispensed_ml(95.0) == pytest.approx(0.05)  # physical volume is not cleared


def test_direction_rev_stk_and_change_while_pumping(emu):
    assert xfer(emu, b"DIR REV\r", 1.0) == basic("00S")
    assert xfer(emu, b"DIR\r", 1.0) == basic("00SWDR")
    assert xfer(emu, b"DIR STK\r", 1.0) == basic("00S")
    assert xfer(emu, b"DIR\r", 1.0) == basic("00SSTK")
    xfer(emu, b"DIR INF\r", 1.0)
    xfer(emu, b"RAT 1 MM\r", 1.0)
    xfer(emu, b"RUN\r", 2.0)  # VOL 0: continuous, so direction may change while pumping
    assert xfer(emu, b"DIR REV\r", 3.0) == basic("00W")
    assert emu.flow_ml_min(3.5) == pytest.approx(-1.0)
    assert xfer(emu, b"DIR STK\r", 4.0) == basic("00W?NA")


def test_purge_runs_at_the_maximum_rate(emu):
    assert xfer(emu, b"PUR\r", 1.0) == basic("00X")
    assert emu.flow_ml_min(2.0) == pytest.approx(emu.max_rate_ml_min())
    assert xfer(emu, b"STP\r", 2.0) == basic("00S")
    assert emu.flow_ml_min(3.0) == 0.0


def test_max_rate_from_the_syringe_or_given():
    small = NE1000Emulator("p", diameter_mm=4.699)
    big = NE1000Emulator("p", diameter_mm=26.59)
    assert big.max_rate_ml_min() / small.max_rate_ml_min() == pytest.approx((26.59 / 4.699) ** 2)
    assert NE1000Emulator("p", max_rate_ml_min=12.0).max_rate_ml_min() == 12.0


def test_on_change_called_before_actuator_changes():
    calls = []
    e = NE1000Emulator("caster", on_change=calls.append)
    xfer(e, b"\r", 0.0)
    xfer(e, b"RAT 1 MM\r", 1.0)
    xfer(e, b"RUN\r", 2.0)
    xfer(e, b"RAT 2 MM\r", 3.0)
    xfer(e, b"STP\r", 4.0)
    assert calls == [2.0, 3.0, 4.0]


def test_ver_saf_al_queries(emu):
    assert xfer(emu, b"VER\r", 1.0) == basic("00SNE1000V3.928")
    assert xfer(emu, b"SAF\r", 1.0) == basic("00S0")
    assert xfer(emu, b"AL\r", 1.0) == basic("00S1")
    assert xfer(emu, b"AL 0\r", 1.0) == basic("00S")
    assert xfer(emu, b"AL\r", 1.0) == basic("00S0")


def test_system_adr_command(emu):
    assert xfer(emu, b"*ADR\r", 1.0) == basic("00S0")
    assert xfer(emu, b"*ADR 3\r", 1.0) == basic("03S")
    assert xfer(emu, b"VER\r", 1.0) == b""  # now only address 3 answers
    assert xfer(emu, b"3VER\r", 1.0) == basic("03SNE1000V3.928")
    assert xfer(emu, b"*ADR 5 B 1200\r", 2.0) == basic("05S")
    assert emu.baudrate == 1200


# -- safe mode ---------------------------------------------------------------------------------
def test_manual_return_to_basic_packet_answered_in_basic(emu):
    xfer(emu, b"SAF 5\r", 1.0)
    assert emu.safe
    assert xfer(emu, bytes([0x02, 0x08, 0x53, 0x41, 0x46, 0x30, 0x55, 0x43, 0x03]), 2.0) == basic("00S")
    assert not emu.safe
    assert xfer(emu, b"VER\r", 3.0) == basic("00SNE1000V3.928")


def test_safe_mode_framing_and_basic_text_ignored(emu):
    assert xfer(emu, packet("SAF10"), 1.0) == packet("00S")
    assert xfer(emu, packet("VER"), 2.0) == packet("00SNE1000V3.928")
    assert xfer(emu, b"VER\r", 3.0) == b""  # outside a packet, nothing is heard
    assert xfer(emu, packet("SAF"), 4.0) == packet("00S10")


def test_crc_error_answered_com(emu):
    xfer(emu, packet("SAF10"), 1.0)
    bad = bytearray(packet("RUN"))
    bad[-2] ^= 0x01
    assert xfer(emu, bytes(bad), 2.0) == packet("00S?COM")
    assert emu.state(2.5) == "S"


def test_inter_byte_gap_discards_a_partial_packet(emu):
    xfer(emu, packet("SAF10"), 1.0)
    p = packet("RUN")
    assert xfer(emu, p[:3], 2.0) == b""
    assert xfer(emu, p[3:], 2.4) == packet("00I")  # 0.4 s gap: still one packet
    q = packet("STP")
    assert xfer(emu, q[:3], 3.0) == b""
    assert xfer(emu, q[3:], 3.6) == b""  # 0.6 s gap: discarded, rest ignored
    assert xfer(emu, q, 4.0) == packet("00P")


def test_watchdog_stops_the_pump_and_sends_the_alarm_unprompted(emu):
    xfer(emu, b"RAT 1 MM\r", 0.5)
    xfer(emu, packet("SAF5"), 1.0)
    assert xfer(emu, packet("RUN"), 2.0) == packet("00I")
    assert emu.next_output_time(3.0) == pytest.approx(7.0)
    assert emu.transmit(6.99) == b""
    assert emu.transmit(7.1) == packet("00A?T")
    assert emu.flow_ml_min(8.0) == 0.0
    assert emu.dispensed_ml(100.0) == pytest.approx(5.0 / 60.0)
    assert emu.next_output_time(8.0) is None  # the timer waits for the next valid packet
    assert xfer(emu, packet(""), 20.0) == packet("00A?T")  # the unprompted alarm did not acknowledge
    assert xfer(emu, packet(""), 21.0) == packet("00S")


def test_power_up_in_safe_mode_sends_reset_alarm_unprompted():
    e = NE1000Emulator("caster", safe_mode_s=5)
    assert e.transmit(0.1) == packet("00A?R")
    assert e.next_output_time(1.0) is None  # the watchdog waits for the first valid packet
    assert xfer(e, packet("VER"), 100.0) == packet("00A?R")
    assert xfer(e, packet("VER"), 101.0) == packet("00SNE1000V3.928")


def test_power_cycle_stops_and_raises_reset(emu):
    xfer(emu, b"RUN\r", 1.0)
    emu.power_cycle(2.0)
    assert emu.flow_ml_min(2.5) == 0.0
    assert xfer(emu, b"\r", 3.0) == basic("00A?R")


# -- faults -----------------------------------------------------------------------------------
def test_stall_fault_stops_with_alarm_s(emu):
    xfer(emu, b"RUN\r", 1.0)
    emu.inject("stall")
    assert xfer(emu, b"\r", 2.0) == basic("00A?S")
    assert emu.flow_ml_min(2.5) == 0.0
    assert xfer(emu, b"RUN\r", 3.0) == basic("00I")  # still stalled: stops again shortly after
    assert xfer(emu, b"\r", 4.0) == basic("00A?S")
    emu.clear("stall")
    xfer(emu, b"RUN\r", 5.0)
    assert xfer(emu, b"\r", 10.0) == basic("00I")


def test_stall_in_safe_mode_is_reported_unprompted(emu):
    xfer(emu, packet("SAF60"), 1.0)
    xfer(emu, packet("RUN"), 1.0)
    emu.inject("stall")
    assert emu.transmit(1.5) == packet("00A?S")


@pytest.fixture
def one_ml():
    """The twin's caster: a 1 mL syringe (syringe_volume_ml), full when made."""
    e = NE1000Emulator("caster", diameter_mm=4.699, syringe_volume_ml=1.0)
    assert xfer(e, b"\r", 0.0) == basic("00A?R")
    assert xfer(e, b"VOL ML\r", 0.5) == basic("00S")  # volumes in mL (µL is this bore's default)
    return e


def test_the_plunger_stalls_at_the_end_of_the_syringe(one_ml):
    """A target beyond what the syringe holds: the pump infuses what is there, then the motor
    stalls against the syringe's end (alarm S), as a real one does -- the twin "dispensed 19 mL"
    from a 1 mL syringe before the profiles said what it holds."""
    xfer(one_ml, b"RAT 0.5 MM\r", 1.0)
    xfer(one_ml, b"VOL 1.5\r", 1.0)  # more than the 1 mL the syringe holds
    assert xfer(one_ml, b"RUN\r", 10.0) == basic("00I")
    assert one_ml.state(129.0) == "I"  # 1 mL at 0.5 mL/min: 120 s
    assert xfer(one_ml, b"\r", 131.0) == basic("00A?S")
    assert one_ml.flow_ml_min(132.0) == 0.0 and one_ml.dispensed_ml(200.0) == pytest.approx(1.0, abs=1e-5)


def test_what_is_left_in_the_syringe_is_dispensed_without_a_stall(one_ml):
    """Targets that add up to exactly the syringe (check's limit) end as targets; a rate change
    and a withdrawal (the syringe refilled by 0.3 mL) move the end of travel with them."""
    xfer(one_ml, b"RAT 0.8 MM\r", 1.0)
    xfer(one_ml, b"VOL 0.6\r", 1.0)
    xfer(one_ml, b"RUN\r", 2.0)
    xfer(one_ml, b"RAT 0.4 MM\r", 20.0)  # 0.24 mL at 0.8 mL/min, then 0.36 mL at 0.4: ends at 74 s
    assert one_ml.state(73.0) == "I" and xfer(one_ml, b"\r", 80.0) == basic("00S")
    xfer(one_ml, b"VOL 0.4\r", 81.0)
    xfer(one_ml, b"RUN\r", 82.0)  # exactly the 0.4 mL left: 60 s
    assert xfer(one_ml, b"\r", 150.0) == basic("00S") and one_ml.dispensed_ml(150.0) == pytest.approx(1.0)
    xfer(one_ml, b"DIR WDR\r", 151.0)
    xfer(one_ml, b"VOL 0.3\r", 151.0)
    xfer(one_ml, b"RUN\r", 152.0)  # 0.3 mL back in: 45 s
    assert xfer(one_ml, b"\r", 200.0) == basic("00S")
    xfer(one_ml, b"DIR INF\r", 201.0)
    xfer(one_ml, b"VOL 0.5\r", 201.0)
    assert xfer(one_ml, b"RUN\r", 202.0) == basic("00I")  # 0.3 mL there: 45 s at 0.4 mL/min
    assert one_ml.state(246.0) == "I" and xfer(one_ml, b"\r", 248.0) == basic("00A?S")
    assert one_ml.dispensed_ml(250.0) == pytest.approx(1.0, abs=1e-5)


def test_without_a_syringe_volume_the_plunger_has_no_end(emu):
    xfer(emu, b"RAT 50 MM\r", 1.0)
    xfer(emu, b"RUN\r", 2.0)  # VOL 0: continuous
    assert xfer(emu, b"\r", 3600.0) == basic("00I")


def test_generic_faults(emu):
    emu.inject("no_reply")
    assert xfer(emu, b"VER\r", 1.0) == b""
    emu.clear()
    emu.inject("garbage")
    out = xfer(emu, b"VER\r", 2.0)
    assert out and out != basic("00SNE1000V3.928")
    emu.clear()
    emu.inject("drop")
    assert not emu.connected
    emu.clear("drop")
    assert xfer(emu, b"VER\r", 3.0) == basic("00SNE1000V3.928")
    with pytest.raises(ValueError):
        emu.inject("melt")


# -- daisy chain ------------------------------------------------------------------------------
def test_chain_routes_by_address():
    caster, water = NE1000Emulator("caster", address=0), NE1000Emulator("water", address=1)
    chain = NE1000Chain("pumps", [caster, water])
    assert chain.pump(1) is water
    assert xfer(chain, b"0\r", 0.0) == basic("00A?R")
    assert xfer(chain, b"1\r", 0.0) == basic("01A?R")
    assert xfer(chain, b"1RAT 2 MM\r", 1.0) == basic("01S")
    assert xfer(chain, b"1RUN\r", 2.0) == basic("01I")
    assert xfer(chain, b"RAT\r", 3.0) == basic("00S1.000MM")  # no address: pump 0
    assert water.flow_ml_min(3.0) == pytest.approx(2.0) and caster.flow_ml_min(3.0) == 0.0
    assert xfer(chain, b"7VER\r", 4.0) == b""
    with pytest.raises(ValueError):
        NE1000Chain("bad", [NE1000Emulator("a"), NE1000Emulator("b")])


def test_chain_forwards_unprompted_alarms_and_faults():
    a, b = NE1000Emulator("a", address=0, safe_mode_s=3), NE1000Emulator("b", address=1)
    chain = NE1000Chain("pumps", [a, b])
    assert chain.transmit(0.1) == packet("00A?R")
    assert xfer(chain, packet("VER"), 1.0) == packet("00A?R")
    assert chain.next_output_time(2.0) == pytest.approx(4.0)
    assert chain.transmit(4.1) == packet("00A?T")
    b.inject("no_reply")
    assert xfer(chain, b"1VER\r", 5.0) == b""
