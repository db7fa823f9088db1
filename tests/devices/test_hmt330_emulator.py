"""HMT330 emulator: raw bytes in, raw bytes out, against the user's guide's own examples."""

from __future__ import annotations

import re
import statistics

import pytest

from castrig.clock import VirtualClock
from castrig.sim.hmt330 import HMT330Emulator, dewpoint_c
from conftest import emulator_ask


def exact(rh: float = 45.2, t: float = 23.1, **kwargs) -> HMT330Emulator:
    """An emulator without measurement noise reading a constant source."""
    return HMT330Emulator("rh", source=lambda _t: (rh, t), rh_noise_pct=0.0, t_noise_c=0.0, **kwargs)


ask = emulator_ask(reply_s=0.5)


# -- the guide's examples ----------------------------------------------------------------------
def test_guide_form_example_rh_and_fahrenheit(clock):
    emu = exact(16.03, 23.7, echo=False)
    assert ask(emu, clock, b'form "RH=" 4.2 rh U5 #t "T=" t U3 #r #n\r') == b"OK\r\n"
    assert ask(emu, clock, b"unit n\r") == b"Output units : non metric\r\n"
    assert ask(emu, clock, b"send\r") == b"RH= 16.03%RH  \tT= 74.66'F \r\n"


def test_guide_form_example_frost_point_with_joined_modifiers(clock):
    emu = exact(60.0, 31.0, echo=False)
    assert ask(emu, clock, b'form "Tfrost=" tdf U3 #t "Temp=" t U3 #r#n\r') == b"OK\r\n"
    td = dewpoint_c(60.0, 31.0)
    assert ask(emu, clock, b"send\r") == f"Tfrost={td:5.1f}'C \tTemp= 31.0'C \r\n".encode()


def test_guide_default_form_example(clock):
    emu = exact(98.4, 31.1)
    assert ask(emu, clock, b"form /\r") == b"form /\r\nOK\r\n>"
    assert ask(emu, clock, b"send\r") == b"send\r\nRH= 98.4 %RH T= 31.1 'C\r\n>"


def test_design_send_example(clock):
    emu = exact(45.2, 23.1, echo=False)
    assert ask(emu, clock, b"SEND\r") == b"RH= 45.2 %RH T= 23.1 'C\r\n"


def test_echo_example(clock):
    emu = exact()
    assert ask(emu, clock, b"echo off\r") == b"echo off\r\nEcho : OFF\r\n"
    assert ask(emu, clock, b"send\r") == b"RH= 45.2 %RH T= 23.1 'C\r\n"
    assert ask(emu, clock, b"echo on\r") == b"Echo : ON\r\n>"


def test_setting_replies(clock):
    emu = exact(echo=False)
    assert ask(emu, clock, b"intv 10 s\r") == b"Output interval: 10 S\r\n"
    assert ask(emu, clock, b"INTV 2 min\r") == b"Output interval: 2 MIN\r\n"
    assert ask(emu, clock, b"intv\r") == b"Output interval: 2 MIN\r\n"
    assert ask(emu, clock, b"smode\r") == b"Serial mode : STOP\r\n"
    assert ask(emu, clock, b"smode poll\r") == b"Serial mode : POLL\r\n"
    assert ask(emu, clock, b"unit m\r") == b"Output units : metric\r\n"
    assert ask(emu, clock, b"addr 7\r") == b"Address : 7\r\n"
    assert ask(emu, clock, b"form\r") == b'"RH=" RH " " U3 " T=" T " " U2 #r #n\r\n'
    assert ask(emu, clock, b"vers\r") == b"HMT330 / 5.16\r\n"


def test_errors_as_printed(clock):
    emu = exact()
    assert ask(emu, clock, b"xyzzy\r") == b"xyzzy\r\nUnknown command\r\n>"
    assert ask(emu, clock, b"intv 300 s\r") == b"intv 300 s\r\nInvalid parameter\r\n>"
    assert ask(emu, clock, b"smode fast\r") == b"smode fast\r\nInvalid parameter\r\n>"
    assert ask(emu, clock, b"form bogus\r") == b"form bogus\r\nInvalid parameter\r\n>"
    assert ask(emu, clock, b"\r") == b"\r\n>"


def test_info_block_is_label_colon_value(clock):
    emu = exact(echo=False, serial_number="X7654321")
    out = ask(emu, clock, b"?\r", 2.0).decode()
    lines = out.split("\r\n")
    assert lines[0] == "HMT330 / 5.16" and lines[-1] == ""
    assert "Serial number  : X7654321" in lines
    assert "Baud P D S     : 4800 E 7 1" in lines
    assert "Output interval: 1 S" in lines
    assert all(re.fullmatch(r".{15}: .+", line) for line in lines[1:-1])


# -- continuous output -----------------------------------------------------------------------
def test_r_streams_at_intv_without_echo_and_only_s_stops_it(clock):
    emu = exact(echo=False, interval=(2, "S"))
    assert ask(emu, clock, b"r\r", 0.1) == b"RH= 45.2 %RH T= 23.1 'C\r\n"
    clock.sleep(6.0)
    assert emu.transmit(clock.now()) == b"RH= 45.2 %RH T= 23.1 'C\r\n" * 3
    assert ask(emu, clock, b"send\r", 0.1) == b""  # ignored while outputting
    assert ask(emu, clock, b"S\r", 10.0) == b""
    assert ask(emu, clock, b"send\r") == b"RH= 45.2 %RH T= 23.1 'C\r\n"


def test_escape_stops_output(clock):
    emu = exact()
    ask(emu, clock, b"r\r", 0.1)
    assert ask(emu, clock, b"\x1b", 5.0) == b">"
    assert emu.running is False


def test_smode_run_takes_effect_at_power_up(clock):
    emu = exact(echo=False)
    ask(emu, clock, b"smode run\r")
    clock.sleep(3.0)
    assert emu.transmit(clock.now()) == b""
    emu.power_cycle(clock.now())
    clock.sleep(3.1)
    assert emu.transmit(clock.now()) == b"RH= 45.2 %RH T= 23.1 'C\r\n" * 3


def test_poll_mode_answers_only_its_address(clock):
    emu = exact(address=4, smode="POLL")
    assert ask(emu, clock, b"send\r") == b""
    assert ask(emu, clock, b"send 3\r") == b""
    assert ask(emu, clock, b"send 4\r") == b"RH= 45.2 %RH T= 23.1 'C\r\n"
    assert ask(emu, clock, b"open 4\r") == b"HMT330  4 line opened for operator commands\r\n>"
    assert ask(emu, clock, b"send\r") == b"send\r\nRH= 45.2 %RH T= 23.1 'C\r\n>"
    assert ask(emu, clock, b"close\r") == b"close\r\nline closed\r\n"
    assert ask(emu, clock, b"send\r") == b""


def test_stream_backlog_is_bounded(clock):
    emu = exact(echo=False, smode="RUN")
    clock.sleep(10 * 3600.0)
    assert emu.transmit(clock.now()).count(b"\r\n") <= 70


# -- the measurement ---------------------------------------------------------------------------
def test_reads_the_source_at_the_time_with_seeded_noise(clock):
    def run(seed: int) -> list[float]:
        c = VirtualClock()
        emu = HMT330Emulator("rh", source=lambda t: (50.0 + t / 100.0, 23.0), seed=seed, echo=False)
        return [float(ask(emu, c, b"send\r", 1.0).split()[1]) for _ in range(200)]

    a = run(5)
    assert a == run(5) and a != run(6)
    residuals = [v - (50.0 + i / 100.0) for i, v in enumerate(a)]
    assert abs(statistics.mean(residuals)) < 0.05
    assert 0.1 < statistics.stdev(residuals) < 0.2  # sigma 0.15 %RH, +/-0.3 at 2 sigma
    assert all(round(v, 1) == v for v in a)  # 0.1 %RH resolution


def test_rh_is_clipped_to_100(clock):
    emu = HMT330Emulator("rh", source=lambda t: (100.0, 20.0), echo=False, rh_noise_pct=1.0, seed=1)
    values = [float(ask(emu, clock, b"send\r")[3:8]) for _ in range(30)]
    assert max(values) == 100.0


def test_stuck_fault_freezes_the_reading(clock):
    source_rh = [40.0]
    emu = HMT330Emulator("rh", source=lambda t: (source_rh[0], 22.0), echo=False, rh_noise_pct=0.0, t_noise_c=0.0)
    assert ask(emu, clock, b"send\r") == b"RH= 40.0 %RH T= 22.0 'C\r\n"
    emu.inject("stuck")
    source_rh[0] = 70.0
    assert ask(emu, clock, b"send\r") == b"RH= 40.0 %RH T= 22.0 'C\r\n"
    emu.clear("stuck")
    assert ask(emu, clock, b"send\r") == b"RH= 70.0 %RH T= 22.0 'C\r\n"


def test_sensor_error_prints_stars(clock):
    emu = exact(echo=False)
    emu.inject("sensor_error")
    assert ask(emu, clock, b"send\r") == b"RH=***.* %RH T=***.* 'C\r\n"


def test_generic_faults(clock):
    emu = exact(echo=False)
    emu.inject("no_reply")
    assert ask(emu, clock, b"send\r") == b""
    emu.clear()
    emu.inject("garbage")
    assert ask(emu, clock, b"send\r") not in (b"", b"RH= 45.2 %RH T= 23.1 'C\r\n")
    emu.clear()
    emu.inject("drop")
    assert not emu.connected
    emu.clear("drop")
    assert ask(emu, clock, b"send\r") == b"RH= 45.2 %RH T= 23.1 'C\r\n"


def test_wire_time_at_4800_baud(clock):
    emu = exact(echo=False)
    emu.receive(b"send\r", 0.0)
    line = b"RH= 45.2 %RH T= 23.1 'C\r\n"
    ready = emu.next_output_time(0.0)
    assert ready == pytest.approx(emu.turnaround_s + len(line) * 10 / 4800)
