"""Alicat driver: the exact bytes of every command, reply form, rejection and failure."""

from __future__ import annotations

import pytest

from castrig.devices.alicat import (
    AlicatError,
    AlicatLinkError,
    AlicatMFC,
    AlicatRangeError,
    AlicatRejected,
    AlicatReplyError,
    parse_frame,
)
from castrig.devices.roles import DeviceError, FlowController
from castrig.links import LinkTimeout, expected_protocol

FRAME = b"A +014.70 +025.00 +016.67 +015.44 +015.44 N2\r"


def mfc(pairs, **kwargs):
    kwargs.setdefault("name", "dry_mfc")
    kwargs.setdefault("full_scale_slpm", 20.0)  # (FRAME's 15.44 slpm is inside its range)
    return expected_protocol(AlicatMFC, pairs, **kwargs)


# -- poll ------------------------------------------------------------------------------------
def test_poll_design_frame():
    with mfc([(b"A\r", FRAME)]) as dev:
        assert isinstance(dev, FlowController)
        r = dev.read()
    assert (r.pressure_psia, r.temperature_c, r.volumetric_flow_lpm) == (14.70, 25.00, 16.67)
    assert (r.mass_flow_slpm, r.setpoint_slpm, r.gas, r.status) == (15.44, 15.44, "N2", ())
    assert r.unit_id == "A" and r.extra == ()


def test_poll_padded_gas_totalizer_and_status_codes():
    reply = b"A +014.70 +025.00 +002.49 +002.49 +002.50 +0000012.3 +049.93     N2 HLD LCK\r"
    with mfc([(b"A\r", reply)]) as dev:
        r = dev.read()
    assert r.setpoint_slpm == 2.50 and r.gas == "N2"
    assert r.extra == (12.3, 49.93)
    assert r.status == ("HLD", "LCK")


@pytest.mark.parametrize("code", ["ADC", "EXH", "HLD", "LCK", "MOV", "OPL", "OVR", "POV", "TMF", "TOV", "VOV"])
def test_every_status_code_is_parsed(code):
    with mfc([(b"A\r", b"A +014.70 +025.00 +000.00 +000.00 +000.00 Air " + code.encode() + b"\r")]) as dev:
        assert dev.read().status == (code,)


def test_unit_id_is_sent_upper_case_and_matched_case_insensitively():
    with mfc([(b"B\r", b"b +014.70 +025.00 +000.00 +000.00 +000.00 Air\r")], unit_id="b") as dev:
        assert dev.read().gas == "Air"


def marker(n: int) -> tuple[bytes, bytes]:
    """The in-step marker after a failed exchange: read register ``n``; its reply names it."""
    return f"AR{n}\r".encode(), f"A   {n:03d} = 0\r".encode()


def test_poll_retries_after_timeout():
    # The late reply to the first poll may still come: the retry first reads a marker register.
    with mfc([(b"A\r", None), marker(1), (b"A\r", FRAME)]) as dev:
        assert dev.read().mass_flow_slpm == 15.44
        assert not dev.in_step.suspect and dev.in_step.resyncs == 1


def test_late_replies_are_dropped_until_the_markers_own_reply():
    # A stalled line: the first poll's frame arrives late, with the marker's, then an old
    # register reply; only the marker naming register 1 says the replies line up again.
    late = FRAME.replace(b"+015.44 N2", b"+001.00 N2")
    pairs = [(b"A\r", None), (b"AR1\r", late + b"A   002 = 0\r" + marker(1)[1]), (b"A\r", FRAME)]
    with mfc(pairs) as dev:
        assert dev.read().setpoint_slpm == 15.44


def test_poll_retries_after_garbled_line():
    with mfc([(b"A\r", b"A +01#.70 +0\r"), marker(1), (b"A\r", FRAME)]) as dev:
        assert dev.read().mass_flow_slpm == 15.44


def test_poll_gives_up_with_typed_error_naming_device():
    # After the first timeout the marker is not answered either: the poll is not sent again.
    with mfc([(b"A\r", None), (b"AR1\r", None), (b"AR2\r", None)]) as dev:
        with pytest.raises(AlicatLinkError) as err:
            dev.read()
    assert isinstance(err.value, DeviceError)
    assert isinstance(err.value.cause, LinkTimeout)
    assert err.value.device == "dry_mfc" and err.value.command == "A"
    assert "dry_mfc" in str(err.value)


def test_frame_of_another_unit_is_a_reply_error():
    other = b"B +014.70 +025.00 +016.67 +015.44 +015.44 N2\r"
    with mfc([(b"A\r", other), marker(1), (b"A\r", other), marker(2), (b"A\r", other)]) as dev:
        with pytest.raises(AlicatReplyError, match="dry_mfc"):
            dev.read()


@pytest.mark.parametrize("reply", [b"?\r", b"A ?\r", b"A?\r"])
def test_rejection_forms(reply):
    with mfc([(b"A\r", reply)]) as dev:
        with pytest.raises(AlicatRejected) as err:
            dev.read()
    assert err.value.device == "dry_mfc" and err.value.command == "A"


# -- setpoint --------------------------------------------------------------------------------
def test_modern_setpoint():
    with mfc([(b"ALS 1.500\r", b"A +001.50 +001.50 7 SLPM\r")]) as dev:
        dev.set_flow_slpm(1.5)


def test_modern_setpoint_query():
    with mfc([(b"ALS\r", b"A +001.20 +001.50 7 SLPM\r"), (b"ALS\r", b"A +001.20 +001.50 7 SLPM\r")]) as dev:
        assert dev.setpoint_slpm() == 1.20
        reply = dev.setpoint()
    assert (reply.current, reply.requested, reply.unit_code, reply.unit_label) == (1.2, 1.5, 7, "SLPM")


def test_legacy_setpoint_answered_with_frame():
    reply = b"A +014.70 +025.00 +000.01 +000.01 +002.25 Air\r"
    with mfc([(b"AS2.250\r", reply)], setpoint_form="legacy") as dev:
        dev.set_flow_slpm(2.25)


def test_legacy_setpoint_query_reads_the_frame():
    reply = b"A +014.70 +025.00 +000.01 +000.01 +002.25 Air\r"
    with mfc([(b"A\r", reply)], setpoint_form="legacy") as dev:
        assert dev.setpoint_slpm() == 2.25


@pytest.mark.parametrize("value", [-0.1, 5.01, float("nan"), float("inf")])
def test_setpoint_out_of_range_is_refused_before_sending(value):
    with mfc([], full_scale_slpm=5.0) as dev:
        with pytest.raises(AlicatRangeError) as err:
            dev.set_flow_slpm(value)
    assert err.value.device == "dry_mfc" and "0-5" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_setpoint_rejected():
    with mfc([(b"ALS 1.000\r", b"A ?\r")]) as dev:
        with pytest.raises(AlicatRejected) as err:
            dev.set_flow_slpm(1.0)
    assert err.value.command == "ALS 1.000"


def test_setpoint_not_taken_is_an_error():
    with mfc([(b"ALS 1.000\r", b"A +000.00 +000.00 7 SLPM\r")]) as dev:
        with pytest.raises(AlicatError, match="not taken"):
            dev.set_flow_slpm(1.0)


def test_setpoint_is_not_retried_on_timeout():
    with mfc([(b"ALS 1.000\r", None)]) as dev:
        with pytest.raises(AlicatLinkError, match="dry_mfc"):
            dev.set_flow_slpm(1.0)


# -- gas -------------------------------------------------------------------------------------
def test_modern_gas_select_by_name_and_number():
    with mfc([(b"AGS 8\r", b"A 8 N2 Nitrogen\r"), (b"AGS 0\r", b"A 0 Air Air\r"), (b"AGS\r", b"A 0 Air Air\r")]) as dev:
        dev.set_gas("N2")
        dev.set_gas(0)
        gas = dev.gas()
    assert (gas.number, gas.short_name, gas.long_name) == (0, "Air", "Air")


def test_legacy_gas_select():
    with mfc([(b"AG8\r", b"A +014.70 +025.00 +000.00 +000.00 +000.00 N2\r")], setpoint_form="legacy") as dev:
        dev.set_gas("n2")


def test_gas_by_register_46_in_dollar_form():
    with mfc([(b"A$$W46=8\r", b"A   046 = 8\r"), (b"A$$R46\r", b"A   046 = 8\r")]) as dev:
        dev.set_gas_by_register("N2")
        assert dev.gas_number() == 8


def test_unknown_gas_refused_before_sending():
    with mfc([]) as dev:
        with pytest.raises(AlicatRangeError):
            dev.set_gas("Unobtainium")


def test_gas_rejected():
    with mfc([(b"AGS 19\r", b"A ?\r")]) as dev:
        with pytest.raises(AlicatRejected):
            dev.set_gas(19)


# -- registers and more ----------------------------------------------------------------------
def test_register_read_and_write():
    pairs = [
        (b"AR122\r", b"A   122 = 37\r"),
        (b"AW91=100\r", b"A   091 = 100\r"),
        (b"A$$R91\r", b"A   091 = 100\r"),
    ]
    with mfc(pairs) as dev:
        assert dev.control_point() == 37
        assert dev.write_register(91, 100) == 100
        assert dev.read_register(91, dollar_form=True) == 100


def test_register_reply_naming_another_register_is_an_error():
    wrong = (b"AR122\r", b"A   046 = 8\r")
    with mfc([wrong, marker(1), wrong, marker(2), wrong]) as dev:
        with pytest.raises(AlicatReplyError):
            dev.read_register(122)


def test_hold_cancel_lock_and_firmware():
    pairs = [
        (b"AHP\r", b"A +014.70 +025.00 +001.00 +001.00 +002.00 Air HLD\r"),
        (b"AHC\r", b"A +014.70 +025.00 +000.50 +000.50 +002.00 Air HLD\r"),
        (b"AC\r", b"A +014.70 +025.00 +000.50 +000.50 +002.00 Air\r"),
        (b"AL\r", b"A +014.70 +025.00 +000.50 +000.50 +002.00 Air LCK\r"),
        (b"AU\r", b"A +014.70 +025.00 +000.50 +000.50 +002.00 Air\r"),
        (b"AVE\r", b"A   10v20.0-R24 Jan  9 2025,15:04:07\r"),
    ]
    with mfc(pairs) as dev:
        assert dev.hold_valve().status == ("HLD",)
        assert dev.hold_valve(closed=True).status == ("HLD",)
        assert dev.cancel_hold().status == ()
        assert dev.lock_display().status == ("LCK",)
        assert dev.lock_display(False).status == ()
        assert dev.firmware().startswith("10v20")


def test_change_unit_id():
    with mfc([(b"A@=C\r", None), (b"C\r", b"C +014.70 +025.00 +000.00 +000.00 +000.00 Air\r")]) as dev:
        dev.change_unit_id("c")
        assert dev.unit_id == "C"


def test_streaming_start_read_stop():
    streamed = b"+014.70 +025.00 +000.00 +000.00 +000.00 Air\r"
    pairs = [
        (b"A@=@\r", streamed + b"+014.70 +025.00 +000.01 +000.01 +000.00 Air\r"),
        (b"@@=A\r", None),
        (b"A\r", b"A +014.70 +025.00 +000.00 +000.00 +000.00 Air\r"),
    ]
    with mfc(pairs) as dev:
        dev.start_streaming()
        first = dev.read_streamed()
        second = dev.read_streamed()
        dev.stop_streaming()
    assert first.unit_id is None and first.gas == "Air"
    assert second.mass_flow_slpm == 0.01


def test_streamed_partial_first_line_is_skipped():
    with mfc([(b"A@=@\r", b"5.44 N2\r+014.70 +025.00 +000.00 +000.00 +000.00 Air\r")]) as dev:
        dev.start_streaming()
        assert dev.read_streamed().gas == "Air"


# -- the parser on its own -------------------------------------------------------------------
@pytest.mark.parametrize(
    "line",
    [
        "",
        "A",
        "A +014.70 +025.00 +016.67 +015.44 N2",  # a meter's frame: no setpoint
        "A +014.70 +025.00 +016.67 +015.44 +015.44",  # no gas
        "A +014.70 +025.00 +016.67 +015.44 +015.44 HLD",  # status where the gas belongs
        "A +014.70 +025.00 +016.67 +015.44 +015.44 N2 XYZ",  # unknown status
        "AB +014.70 +025.00 +016.67 +015.44 +015.44 N2",
    ],
)
def test_parse_frame_rejects(line):
    with pytest.raises(ValueError):
        parse_frame(line)


def test_a_streamed_frame_is_not_taken_for_the_polled_units_answer():
    """On a shared line, a unit left streaming sends frames without an id: one arriving before
    the polled unit's own was taken for its answer (another unit's flow and setpoint recorded
    as this one's). It is a reply error now: the line is put back in step and asked again."""
    streamed = b"+014.70 +025.00 +001.00 +001.00 +001.00 Air\r"
    with mfc([(b"A\r", streamed), marker(1), (b"A\r", FRAME)]) as dev:
        assert dev.read().mass_flow_slpm == 15.44
    for line in ("+014.70 +025.00 +001.00 +001.00 +001.00 Air", "@ +014.70 +025.00 +001.00 +001.00 +001.00 Air"):
        with pytest.raises(ValueError, match="expected 'B'"):
            parse_frame(line, unit_id="B")


@pytest.mark.parametrize("garbled", [b"+815.44 +015.44", b"+01544 +015.44", b"-015.44 +015.44", b"+015.44 +815.44"])
def test_a_frame_no_controller_of_its_range_shows_is_asked_again(garbled):
    """The ASCII protocol has no checksum: a flipped bit (``+815.44``), a dropped dot, a sign,
    a setpoint beyond full scale were recorded as readings. Asked again instead."""
    with mfc([(b"A\r", FRAME.replace(b"+015.44 +015.44", garbled)), marker(1), (b"A\r", FRAME)]) as dev:
        r = dev.read()
    assert (r.mass_flow_slpm, r.setpoint_slpm) == (15.44, 15.44)


def test_flow_over_range_is_a_reading_when_the_unit_says_so():
    with mfc([(b"A\r", b"A +014.70 +025.00 +026.10 +026.00 +020.00 N2 MOV\r")]) as dev:
        assert dev.read().mass_flow_slpm == 26.0


def test_parse_frame_negative_and_unpadded_numbers():
    r = parse_frame("-000.01 +25.0 -0.02 -000.01 0 Air TOV")
    assert r.unit_id is None and r.mass_flow_slpm == -0.01 and r.status == ("TOV",)


def test_constructor_validates():
    with pytest.raises(ValueError):
        AlicatMFC(None, name="x", unit_id="1", full_scale_slpm=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AlicatMFC(None, name="x", full_scale_slpm=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        AlicatMFC(None, name="x", full_scale_slpm=5, setpoint_form="odd")  # type: ignore[arg-type]
