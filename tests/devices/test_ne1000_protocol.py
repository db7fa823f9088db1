"""NE-1000 driver against exact bytes (ordered write/reply pairs, PyMeasure style)."""

from __future__ import annotations

import pytest

from castrig.clock import VirtualClock
from castrig.devices.ne1000 import NE1000Pump, PumpAlarm, PumpCommandError, PumpError, best_units, format_number
from castrig.devices.roles import Dispensed, PumpState
from castrig.links import LinkError, LinkTimeout, ProtocolError, expected_protocol
from conftest import ne1000_basic as basic, ne1000_packet as packet


def pump(link, **kw):
    kw.setdefault("name", "caster")
    return NE1000Pump(link, clock=VirtualClock(), **kw)


OK = basic("00S")


def test_manual_return_to_basic_packet_is_what_the_driver_sends():
    assert packet("SAF0") == bytes([0x02, 0x08, 0x53, 0x41, 0x46, 0x30, 0x55, 0x43, 0x03])


@pytest.mark.parametrize(
    "value, text",
    [(1500, "1500."), (26.59, "26.59"), (0.5, "0.500"), (100, "100.0"), (9.9996, "10.00"), (0.001, "0.001")],
)
def test_number_format(value, text):
    assert format_number(value) == text


def test_number_format_rejects_what_does_not_fit():
    with pytest.raises(ValueError):
        format_number(10000)


@pytest.mark.parametrize(
    "rate_ml_min, units, shown",
    [(0.5, "MH", "30.00"), (35.0, "MM", "35.00"), (100.0, "MM", "100.0"), (1e-4, "UH", "6.000"), (0.01, "UM", "10.00"),
     (2e-5, "UH", "1.200")],
)
def test_rate_units_keep_four_significant_digits(rate_ml_min, units, shown):
    u, v = best_units(rate_ml_min, {"MM": 1.0, "MH": 1 / 60, "UM": 1e-3, "UH": 1 / 60000})
    assert (u, format_number(v)) == (units, shown)


def test_connect_acknowledges_power_up_alarm_and_reads_version():
    pairs = [
        (packet("SAF0"), basic("00A?R")),
        (packet("SAF0"), OK),
        (b"VER\r", basic("00SNE1000V3.928")),
    ]
    with expected_protocol(pump, pairs) as p:
        p.connect()
        assert p.connect_alarms == ["R"]
        assert p.firmware == "NE1000V3.928"


def test_connect_recovers_a_pump_left_in_safe_mode_and_enters_safe_mode():
    pairs = [
        (None, packet("01A?T")),  # stale auto-alarm, flushed on connect
        (packet("1SAF0"), packet("01A?T")),
        (packet("1SAF0"), OK.replace(b"00", b"01")),
        (packet("1SAF20"), packet("01S")),
        (packet("1VER"), packet("01SNE1000V3.928")),
    ]
    with expected_protocol(pump, pairs, address=1, safe_mode_s=20) as p:
        p.connect()
        assert p.connect_alarms == ["T"]
        assert p.safe and p.safe_mode_s == 20


def test_settings_exact_bytes():
    pairs = [
        (b"DIA26.59\r", OK),
        (b"RAT30.00MH\r", OK),
        (b"VOLML\r", OK),
        (b"VOL1.500\r", OK),
        (b"DIRINF\r", OK),
        (b"DIRWDR\r", OK),
        (b"CLDINF\r", OK),
        (b"CLDWDR\r", OK),
    ]
    with expected_protocol(pump, pairs) as p:
        p.set_diameter_mm(26.59)
        p.set_rate_ml_min(0.5)
        p.set_volume_ml(1.5)
        p.set_direction(True)
        p.set_direction(False)
        p.clear_dispensed()


def test_volume_in_microlitres_for_small_syringes():
    pairs = [(b"DIA\r", basic("00S4.699")), (b"VOLUL\r", OK), (b"VOL250.0\r", OK), (b"VOLML\r", OK), (b"VOL20.00\r", OK)]
    with expected_protocol(pump, pairs) as p:
        p.set_volume_ml(0.25)
        p.set_volume_ml(20.0)  # 20000 µL does not fit 4 digits: mL instead


def test_address_prefix_and_reply_address():
    pairs = [(b"7RAT35.00MM\r", basic("07S")), (b"7\r", basic("07I"))]
    with expected_protocol(pump, pairs, address=7) as p:
        p.set_rate_ml_min(35.0)
        assert p.state() is PumpState.INFUSING


def test_rate_change_while_pumping_keeps_units():
    pairs = [(b"RUN\r", basic("00I")), (b"RAT\r", basic("00I500.0UM")), (b"RAT1000.UM\r", basic("00I"))]
    with expected_protocol(pump, pairs) as p:
        p.start()
        p.set_rate_ml_min(1.0)  # best units would be MM; the pump refuses a unit change while pumping


@pytest.mark.parametrize("prompt, state", [(s.value, s) for s in PumpState])
def test_every_prompt(prompt, state):
    with expected_protocol(pump, [(b"\r", basic("00" + prompt))]) as p:
        assert p.state() is state


def test_queries():
    pairs = [
        (b"DIA\r", basic("00S26.59")),
        (b"RAT\r", basic("00S2.500MH")),
        (b"VOL\r", basic("00S250.0UL")),
        (b"DIR\r", basic("00SWDR")),
        (b"DIS\r", basic("00SI0.974W0.959ML")),
        (b"DIS\r", basic("00SI12.50W0.000UL")),
        (b"SAF\r", basic("00S0")),
        (b"VER\r", basic("00SNE1000V3.928")),
    ]
    with expected_protocol(pump, pairs) as p:
        assert p.diameter_mm() == 26.59
        assert p.rate_ml_min() == pytest.approx(2.5 / 60)
        assert p.volume_ml() == pytest.approx(0.25)
        assert p.direction() == "WDR"
        assert p.dispensed() == Dispensed(0.974, 0.959)
        d = p.dispensed()
        assert d.infused_ml == pytest.approx(0.0125) and d.withdrawn_ml == 0.0
        assert p.safe_mode_timeout_s() == 0
        assert p.version() == "NE1000V3.928"


def test_run_stop_pause_purge():
    pairs = [
        (b"RUN\r", basic("00I")),
        (b"STP\r", basic("00P")),
        (b"STP\r", basic("00S")),
        (b"STP\r", basic("00S")),
        (b"RUN\r", basic("00W")),
        (b"STP\r", basic("00P")),
        (b"PUR\r", basic("00X")),
    ]
    with expected_protocol(pump, pairs) as p:
        p.start()
        p.stop()  # pause, then stop
        p.stop()  # already stopped: one STP
        p.start()
        p.pause()
        p.purge()


def test_dispense_sequence_of_the_role():
    pairs = [
        (b"STP\r", OK),
        # one rate phase, then STP: whatever program the pump kept, the cast is phase 1 alone
        (b"PHN2\r", OK),
        (b"FUNSTP\r", OK),
        (b"PHN1\r", OK),
        (b"FUNRAT\r", OK),
        (b"DIRINF\r", OK),
        (b"RAT1.000MM\r", OK),
        (b"DIA\r", basic("00S26.59")),
        (b"VOLML\r", OK),
        (b"VOL2.000\r", OK),
        (b"CLDINF\r", OK),
        (b"CLDWDR\r", OK),
        (b"RUN\r", basic("00I")),
    ]
    with expected_protocol(pump, pairs) as p:
        p.dispense(2.0, 1.0)


@pytest.mark.parametrize("code", ["", "NA", "OOR", "COM", "IGN"])
def test_errors_are_typed(code):
    with expected_protocol(pump, [(b"RAT9999.MM\r", basic("00S?" + code))]) as p:
        with pytest.raises(PumpCommandError) as info:
            p.set_rate_ml_min(9999)
    assert info.value.code == code
    assert "caster" in str(info.value) and "RAT9999.MM" in str(info.value)


@pytest.mark.parametrize("kind", ["R", "S", "T", "E", "O"])
def test_alarms_are_typed(kind):
    with expected_protocol(pump, [(b"RUN\r", basic("00A?" + kind))]) as p:
        with pytest.raises(PumpAlarm) as info:
            p.start()
        assert p.last_alarm == kind
    assert info.value.kind == kind
    assert "caster" in str(info.value) and "RUN" in str(info.value)


def test_stop_acknowledges_an_alarm_and_still_stops():
    pairs = [(b"STP\r", basic("00A?S")), (b"STP\r", OK)]
    with expected_protocol(pump, pairs) as p:
        p.stop()
        assert p.last_alarm == "S"


VER = (b"VER\r", basic("00SNE1000V3.928"))  # the in-step marker sent after a timeout


def test_queries_are_retried_a_bounded_number_of_times():
    # No reply, then a frame that is not one: each timeout puts the line out of step, so the
    # next try is preceded by VER, whose reply confirms the replies line up again.
    pairs = [(b"DIS\r", None), VER, (b"DIS\r", b"\x02junk\x03"), VER, (b"DIS\r", basic("00SI1.000W0.000ML"))]
    with expected_protocol(pump, pairs) as p:
        assert p.dispensed().infused_ml == 1.0


def test_garbage_before_a_query_reply_is_dropped_and_the_query_asked_again():
    pairs = [(b"DIS\r", b"\xff\x02\x0201S" + basic("00SI1.000W0.000ML")), (b"DIS\r", basic("00SI2.000W0.000ML"))]
    with expected_protocol(pump, pairs) as p:
        assert p.dispensed().infused_ml == 2.0


def test_query_gives_up_after_retries_with_the_pump_named():
    # After the first timeout each try starts with the VER marker, which is not answered either.
    pairs = [(b"\r", None), (b"VER\r", None), (b"VER\r", None)]
    with expected_protocol(pump, pairs) as p:
        with pytest.raises(LinkTimeout, match="caster"):
            p.state()


def test_run_is_never_retried():
    with expected_protocol(pump, [(b"RUN\r", None)]) as p:
        with pytest.raises(LinkTimeout, match="caster: 'RUN'"):
            p.start()


def test_garbage_and_wrong_address_are_protocol_errors():
    pairs = [(b"RUN\r", b"\xff\xfe\x01"), VER, (b"RUN\r", basic("03I"))]
    with expected_protocol(pump, pairs) as p:
        with pytest.raises(LinkError, match="caster"):  # garbage and no frame: a timeout
            p.start()
        with pytest.raises(ProtocolError, match="address 03"):
            p.start()


def test_safe_mode_framing_keepalive_and_back_to_basic():
    pairs = [
        (packet("SAF10"), packet("00S")),
        (packet(""), packet("00I")),
        (packet("RAT"), packet("00I1.000MM")),
        (bytes([0x02, 0x08, 0x53, 0x41, 0x46, 0x30, 0x55, 0x43, 0x03]), basic("00I")),
        (b"\r", basic("00I")),
    ]
    with expected_protocol(pump, pairs) as p:
        p.enter_safe_mode(10)
        assert p.keepalive() is PumpState.INFUSING
        assert p.rate_ml_min() == 1.0
        p.leave_safe_mode()
        assert not p.safe
        assert p.state() is PumpState.INFUSING


def test_safe_mode_crc_error_in_reply_is_a_protocol_error():
    bad = bytearray(packet("00S"))
    bad[-2] ^= 0xFF
    with expected_protocol(pump, [(packet("SAF5"), packet("00S")), (packet("RUN"), bytes(bad))]) as p:
        p.enter_safe_mode(5)
        with pytest.raises(ProtocolError, match="CRC"):
            p.start()


def test_unsolicited_alarm_is_collected_and_next_reply_raises():
    pairs = [
        (packet("SAF5"), packet("00S")),
        (None, packet("00A?T")),
        (packet(""), packet("00A?T")),
    ]
    with expected_protocol(pump, pairs) as p:
        p.enter_safe_mode(5)
        with pytest.raises(PumpAlarm) as info:
            p.keepalive()
        assert info.value.kind == "T"
        assert p.unsolicited_alarms == ["T"]


def test_an_alarm_sent_unprompted_then_reported_in_a_late_reply_is_one_alarm():
    """Safe mode: the watchdog's ``A?T`` comes unprompted, then again as the reply to a command
    sent while the line stalled (it acknowledges the alarm), read late, before the next command.
    Both were kept as alarms the pump sent on its own: the run recorded one watchdog alarm twice
    (``castrig sim serve`` SIGSTOPped). The late reply also puts the line out of step: VER first."""
    pairs = [
        (packet("SAF5"), packet("00S")),
        (None, packet("00A?T") + packet("00A?T")),
        (packet("VER"), packet("00SNE1000V3.928")),
        (packet(""), packet("00S")),
    ]
    with expected_protocol(pump, pairs) as p:
        p.enter_safe_mode(5)
        p.keepalive()
        assert p.unsolicited_alarms == ["T"]


def test_the_safe_states_stop_past_an_alarm_keeps_it_once():
    """``STP`` answered by the watchdog's alarm sent unprompted, then by the reply reporting it
    (to that first ``STP``), then stopped: one alarm, kept (it was in no record: the safe state
    goes on past an alarm and nothing raised it)."""
    pairs = [
        (packet("SAF5"), packet("00S")),
        (packet("STP"), packet("00A?T")),
        (packet("STP"), packet("00A?T")),
        (packet("STP"), packet("00S")),
    ]
    with expected_protocol(pump, pairs) as p:
        p.enter_safe_mode(5)
        p.stop()
        assert p.unsolicited_alarms == ["T"]


def test_connect_gives_up_if_alarms_keep_coming():
    pairs = [(packet("SAF0"), basic("00A?S"))] * 4
    with expected_protocol(pump, pairs) as p:
        with pytest.raises(PumpError, match="alarms kept coming"):
            p.connect()


def test_bad_arguments_rejected_before_any_byte():
    with expected_protocol(pump, []) as p:
        with pytest.raises(ValueError):
            p.set_rate_ml_min(0)
        with pytest.raises(ValueError):
            p.set_volume_ml(-1)
        with pytest.raises(ValueError):
            p.enter_safe_mode(256)
    with pytest.raises(ValueError):
        pump(None, address=100)


def test_a_marker_answered_by_an_alarm_is_confirmed_by_a_second_ver():
    """Out of step (a timeout) in safe mode: the marker VER is answered A?T. That may be the
    pump's unprompted watchdog alarm (which acknowledges nothing) with VER's own A?T still to
    come, so the driver asks VER once more — now answered with the version — before it trusts
    the reply to STP."""
    with expected_protocol(pump, [
        (packet("VER"), packet("00A?T")),  # the alarm: acknowledged by this reply
        (packet("VER"), packet("00SNE1000V3.928")),  # in step: the version alone
        (packet("STP"), packet("00S")),
    ]) as p:
        p.safe = True
        p.in_step.mark()
        p.stop()
        assert p.last_alarm == "T" and p.in_step.resyncs == 2


def test_stop_goes_on_until_the_pump_says_stopped():
    """An outside tester: with the replies one behind, the safe state's STP read an earlier
    command's 'I' and, that not being 'paused', stop() returned after one STP: the pump was left
    paused mid-program (a RUN at its keypad finishes the dispense), and the safe state, which
    asked only 'not moving', said it was verified. STP is sent until the pump says stopped."""
    pairs = [(b"STP\r", basic("00I")), (b"STP\r", basic("00P")), (b"STP\r", basic("00S"))]
    with expected_protocol(pump, pairs) as p:
        p.stop()
        assert p.last_state is PumpState.STOPPED


def test_the_safe_state_counts_a_paused_pump_as_not_stopped():
    from castrig.control.safety import make_safe

    pairs = [(b"STP\r", basic("00S")), (b"\r", basic("00P"))]  # (a pump that answers 'paused' when asked)
    with expected_protocol(pump, pairs) as p:
        report = make_safe(pumps={"caster": p}, dry_mfc=None, wet_mfc=None, chamber=None, purge_flow_slpm=1.0)
    assert report.verified == {"caster.stopped": False}
