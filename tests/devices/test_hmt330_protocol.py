"""HMT330 driver: the exact bytes of every command, reply form, refusal and failure."""

from __future__ import annotations

import pytest

from castrig.devices.hmt330 import (
    HMT330,
    HMT330CommandError,
    HMT330LinkError,
    HMT330RangeError,
    HMT330ReplyError,
    HMT330SensorError,
    parse_info,
    parse_reading,
)
from castrig.devices.roles import DeviceError, HumiditySensor
from castrig.links import LinkTimeout, expected_protocol

READING = b"RH= 45.2 %RH T= 23.1 'C\r\n"
CONNECT_TAIL = [
    (b"ECHO OFF\r", b"ECHO OFF\r\nEcho : OFF\r\n"),
    (b"SMODE STOP\r", b"Serial mode : STOP\r\n"),
    (b"UNIT M\r", b"Output units : metric\r\n"),
    (b"FORM /\r", b"OK\r\n"),
]


def hmt(pairs, **kwargs):
    kwargs.setdefault("name", "rh_membrane")
    kwargs.setdefault("connect", False)
    return expected_protocol(HMT330, pairs, **kwargs)


# -- connect ---------------------------------------------------------------------------------
def test_connect_from_streaming_state():
    pairs = [(None, b"RH= 44.9 %RH T= 23.0 'C\r\nRH= 4"), (b"\rS\r", b"5.0 %RH T= 23.0 'C\r\n"), *CONNECT_TAIL]
    with hmt(pairs, connect=True) as dev:
        assert isinstance(dev, HumiditySensor)
        assert dev.metric and not dev.streaming


def test_connect_from_echoing_stop_state():
    pairs = [(b"\rS\r", b"\r\n>S\r\n>"), *CONNECT_TAIL]
    with hmt(pairs, connect=True):
        pass


def test_connect_on_a_poll_bus_only_drains():
    with hmt([(None, b"garbage from power-up\r\n")], connect=True, address=3):
        pass


def test_connect_with_unexpected_mode_reply_is_typed():
    pairs = [(b"\rS\r", None), CONNECT_TAIL[0], (b"SMODE STOP\r", b"Serial mode : RUN\r\n")]
    with hmt(pairs) as dev:
        with pytest.raises(HMT330ReplyError, match="rh_membrane"):
            dev.connect()


# -- readings --------------------------------------------------------------------------------
def test_send():
    with hmt([(b"SEND\r", READING)]) as dev:
        r = dev.read()
    assert (r.rh_pct, r.temperature_c) == (45.2, 23.1)


def test_send_with_address():
    with hmt([(b"SEND 5\r", READING)], address=5) as dev:
        assert dev.read().rh_pct == 45.2


@pytest.mark.parametrize(
    "reply, rh, t",
    [
        (b"RH=  5.0 %RH T= -3.5 'C\r\n", 5.0, -3.5),
        (b"RH=100.0 %RH\tT= 23.1 'C\r\n", 100.0, 23.1),
        (b"RH= 54.4 %RH Ta= 26.8 'C\r\n", 54.4, 26.8),
        (b"T= 22.6 'C RH= 22.8 %RH Td= 0.3 'C\r\n", 22.8, 22.6),
        (b"RH= 16.03%RH  \tT= 74.66'F \r\n", 16.03, pytest.approx((74.66 - 32) * 5 / 9)),
        (b"Tdf= 1.0 'C RH= 30.1 %RH T= 20.0 'C\r\n", 30.1, 20.0),
    ],
)
def test_send_parses_other_forms(reply, rh, t):
    with hmt([(b"SEND\r", reply)]) as dev:
        r = dev.read()
    assert r.rh_pct == rh and r.temperature_c == t


def test_starred_reading_is_a_sensor_error_not_retried():
    with hmt([(b"SEND\r", b"RH= ***.* %RH T= 23.1 'C\r\n")]) as dev:
        with pytest.raises(HMT330SensorError) as err:
            dev.read()
    assert err.value.device == "rh_membrane" and err.value.command == "SEND"


#: The in-step marker after a failed exchange: ``SMODE`` (a query), until its own reply.
SMODE = (b"SMODE\r", b"Serial mode : STOP\r\n")


def test_send_retries_timeout_and_garble():
    with hmt([(b"SEND\r", None), SMODE, (b"SEND\r", b"R#= 4\r\n"), SMODE, (b"SEND\r", READING)]) as dev:
        assert dev.read().rh_pct == 45.2


def test_a_late_reading_is_not_taken_for_the_next_one():
    late = READING.replace(b"45.2", b"99.9")
    with hmt([(b"SEND\r", None), (b"SMODE\r", late + SMODE[1]), (b"SEND\r", READING)]) as dev:
        assert dev.read().rh_pct == 45.2


def test_send_gives_up_with_typed_error():
    with hmt([(b"SEND\r", None), (b"SMODE\r", None), (b"SMODE\r", None)]) as dev:
        with pytest.raises(HMT330LinkError) as err:
            dev.read()
    assert isinstance(err.value, DeviceError) and isinstance(err.value.cause, LinkTimeout)
    assert "rh_membrane" in str(err.value)


def test_echo_and_prompts_are_skipped():
    pairs = [
        (b"ECHO ON\r", b"ECHO ON\r\nEcho : ON\r\n>"),
        (b"SEND\r", b"SEND\r\n" + READING + b">"),
        (b"ECHO OFF\r", b"ECHO OFF\r\nEcho : OFF\r\n"),
    ]
    with hmt(pairs) as dev:
        dev.set_echo(True)
        assert dev.read().temperature_c == 23.1
        dev.set_echo(False)


# -- settings --------------------------------------------------------------------------------
def test_settings():
    pairs = [
        (b"INTV 5 S\r", b"Output interval: 5 S\r\n"),
        (b"INTV 1 MIN\r", b"Output interval: 1 MIN\r\n"),
        (b"SMODE RUN\r", b"Serial mode : RUN\r\n"),
        (b"SMODE\r", b"Serial mode : RUN\r\n"),
        (b"UNIT N\r", b"Output units : non metric\r\n"),
        (b'FORM "RH=" 4.2 RH #t "T=" T U3 #r #n\r', b"OK\r\n"),
    ]
    with hmt(pairs) as dev:
        dev.set_interval(5)
        dev.set_interval(1, "min")
        dev.set_serial_mode("run")
        assert dev.serial_mode() == "RUN"
        dev.set_metric(False)
        dev.set_form('"RH=" 4.2 RH #t "T=" T U3 #r #n')
    assert not dev.metric


@pytest.mark.parametrize(
    "call",
    [
        lambda d: d.set_interval(256),
        lambda d: d.set_interval(5, "DAY"),
        lambda d: d.set_serial_mode("FAST"),
    ],
)
def test_out_of_range_settings_refused_before_sending(call):
    with hmt([]) as dev:
        with pytest.raises(HMT330RangeError):
            call(dev)


@pytest.mark.parametrize("reply", [b"Unknown command\r\n", b"Invalid parameter\r\n"])
def test_refusals_are_command_errors(reply):
    with hmt([(b"FORM bogus\r", reply)]) as dev:
        with pytest.raises(HMT330CommandError) as err:
            dev.set_form("bogus")
    assert err.value.command == "FORM bogus" and err.value.device == "rh_membrane"


def test_info_block():
    block = (
        b"HMT330 / 5.16\r\n"
        b"Serial number  : K1234567\r\n"
        b"Serial mode    : STOP\r\n"
        b"Baud P D S     : 4800 E 7 1\r\n"
        b"Output interval: 1 S\r\n"
        b"Time           : 13:42:01\r\n"
    )
    with hmt([(b"?\r", block)]) as dev:
        info = dev.info()
    assert info == {
        "model": "HMT330 / 5.16",
        "Serial number": "K1234567",
        "Serial mode": "STOP",
        "Baud P D S": "4800 E 7 1",
        "Output interval": "1 S",
        "Time": "13:42:01",
    }


def test_info_without_reply_is_typed():
    with hmt([(b"?\r", None)]) as dev:
        with pytest.raises(HMT330LinkError):
            dev.info()


# -- streaming -------------------------------------------------------------------------------
def test_streaming():
    pairs = [
        (b"INTV 2 S\r", b"Output interval: 2 S\r\n"),
        (b"R\r", READING),
        (None, b"RH= 45.4 %RH T= 23.1 'C\r\n"),
        (b"S\r", None),
    ]
    with hmt(pairs) as dev:
        dev.start_streaming(2)
        assert dev.read_streamed().rh_pct == 45.2
        assert dev.read_streamed().rh_pct == 45.4
        dev.stop_streaming()
    assert not dev.streaming


def test_streamed_line_cut_at_start_is_skipped():
    with hmt([(None, b"%RH T= 2\r\nRH= 45.4 %RH T= 23.1 'C\r\n")]) as dev:
        assert dev.read_streamed().rh_pct == 45.4


# -- parsers ---------------------------------------------------------------------------------
@pytest.mark.parametrize("line", ["", "OK", "RH= 45.2 %RH", "T= 23.1 'C", "Tdf= 1.0 'C RH= 3.0 %RH"])
def test_parse_reading_rejects(line):
    with pytest.raises(ValueError):
        parse_reading(line)


def test_parse_info_keeps_colons_in_values():
    assert parse_info(["Time : 13:42:01", "", ">"]) == {"Time": "13:42:01"}
