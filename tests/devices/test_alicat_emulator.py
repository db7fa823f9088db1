"""Alicat emulator: raw bytes in, raw bytes out, as the Serial Primer and manuals print them."""

from __future__ import annotations

import math
import re

import pytest

from castrig.clock import VirtualClock
from castrig.links import SimLink
from castrig.sim.alicat import AlicatEmulator
from conftest import emulator_ask

FRAME_RE = re.compile(rb"^A( [+-]\d{3}\.\d{2}){5} +[A-Za-z0-9-]+( [A-Z]{3})*\r$")


def quiet(**kwargs) -> AlicatEmulator:
    """An emulator whose frame is exact: no measurement noise."""
    kwargs.setdefault("full_scale_slpm", 5.0)
    return AlicatEmulator(
        "mfc", noise_slpm=0.0, pressure_noise_psia=0.0, temperature_noise_c=0.0, **kwargs
    )


ask = emulator_ask(reply_s=0.05)


# -- the data frame --------------------------------------------------------------------------
def test_legacy_frame_has_the_design_form(clock):
    emu = quiet(firmware="legacy", gas="N2")
    assert ask(emu, clock, b"A\r") == b"A +014.70 +025.00 +000.00 +000.00 +000.00 N2\r"


def test_modern_frame_right_aligns_the_gas_in_six(clock):
    emu = quiet(gas="Air")
    assert ask(emu, clock, b"A\r") == b"A +014.70 +025.00 +000.00 +000.00 +000.00    Air\r"


def test_totalizer_firmware_adds_totalizer_and_valve_drive_before_the_gas(clock):
    emu = quiet(firmware="totalizer", gas="N2")
    assert ask(emu, clock, b"A\r") == b"A +014.70 +025.00 +000.00 +000.00 +000.00 +0000000.0 +000.00     N2\r"


def test_noisy_frame_keeps_the_number_format(clock):
    emu = AlicatEmulator("mfc", full_scale_slpm=5.0, seed=3)
    ask(emu, clock, b"AS2.5\r")
    for _ in range(20):
        assert FRAME_RE.match(ask(emu, clock, b"A\r", 0.2))


def test_unit_id_is_not_case_sensitive_and_other_ids_are_ignored(clock):
    emu = quiet(firmware="legacy")
    assert ask(emu, clock, b"a\r").startswith(b"A +014.70")
    assert ask(emu, clock, b"B\r") == b""
    assert ask(emu, clock, b"bs1\r") == b""
    assert emu.setpoint_slpm == 0.0


def test_command_split_over_several_writes(clock):
    emu = quiet(firmware="legacy")
    emu.receive(b"A", clock.now())
    emu.receive(b"S1", clock.now())
    assert ask(emu, clock, b".5\r") == b"A +014.70 +025.00 +000.00 +000.00 +001.50 Air\r"


# -- setpoint --------------------------------------------------------------------------------
def test_legacy_setpoint_answers_a_frame(clock):
    emu = quiet(firmware="legacy")
    assert ask(emu, clock, b"AS1.5\r") == b"A +014.70 +025.00 +000.00 +000.00 +001.50 Air\r"


def test_modern_als_set_and_query(clock):
    emu = quiet()
    assert ask(emu, clock, b"ALS 1.5\r") == b"A +001.50 +001.50 7 SLPM\r"
    assert ask(emu, clock, b"als\r") == b"A +001.50 +001.50 7 SLPM\r"


def test_setpoint_is_limited_to_the_range(clock):
    emu = quiet()
    assert ask(emu, clock, b"ALS 9\r") == b"A +005.00 +005.00 7 SLPM\r"
    assert ask(emu, clock, b"ALS -1\r") == b"A +000.00 +000.00 7 SLPM\r"


def test_integer_setpoint_in_counts(clock):
    emu = quiet(firmware="legacy")
    assert ask(emu, clock, b"A32000\r") == b"A +014.70 +025.00 +000.00 +000.00 +002.50 Air\r"


def test_legacy_rejects_modern_commands_with_question_mark(clock):
    emu = quiet(firmware="legacy")
    assert ask(emu, clock, b"ALS\r") == b"?\r"
    assert ask(emu, clock, b"AGS 8\r") == b"?\r"


def test_modern_rejects_unknown_and_bad_values_with_id(clock):
    emu = quiet()
    assert ask(emu, clock, b"AXYZ\r") == b"A ?\r"
    assert ask(emu, clock, b"ALS abc\r") == b"A ?\r"
    assert ask(emu, clock, b"AGS 99\r") == b"A ?\r"


# -- gas and registers -----------------------------------------------------------------------
def test_gas_select_forms(clock):
    emu = quiet()
    assert ask(emu, clock, b"AGS\r") == b"A 0 Air Air\r"
    assert ask(emu, clock, b"AGS 8\r") == b"A 8 N2 Nitrogen\r"
    assert ask(emu, clock, b"AG0\r") == b"A +014.70 +025.00 +000.00 +000.00 +000.00    Air\r"
    assert ask(emu, clock, b"A$$W46=8\r") == b"A   046 = 8\r"
    assert ask(emu, clock, b"A$$R46\r") == b"A   046 = 8\r"
    assert ask(emu, clock, b"AR46\r") == b"A   046 = 8\r"


def test_registers(clock):
    emu = quiet()
    assert ask(emu, clock, b"AR122\r") == b"A   122 = 37\r"
    assert ask(emu, clock, b"AW91=100\r") == b"A   091 = 100\r"
    assert ask(emu, clock, b"AR5\r") == b"A   005 = 0\r"
    assert ask(emu, clock, b"AW5=1\r") == b"A ?\r"  # not writable
    assert ask(emu, clock, b"AR1000\r") == b"A ?\r"


# -- status codes ----------------------------------------------------------------------------
def test_hold_and_lock_status(clock):
    emu = quiet(firmware="legacy")
    assert ask(emu, clock, b"AHP\r").endswith(b" Air HLD\r")
    assert ask(emu, clock, b"AL\r").endswith(b" Air HLD LCK\r")
    assert ask(emu, clock, b"AC\r").endswith(b" Air LCK\r")
    assert ask(emu, clock, b"A$$U\r").endswith(b" Air\r")


def test_hold_closed_stops_the_flow(clock):
    emu = quiet(response_tau_s=0.2)
    ask(emu, clock, b"ALS 4\r", 2.0)
    ask(emu, clock, b"AHC\r", 3.0)
    assert emu.flow_slpm(clock.now()) < 0.01
    ask(emu, clock, b"AC\r", 3.0)
    assert emu.flow_slpm(clock.now()) == pytest.approx(4.0, abs=0.01)


def test_totalizer_overflow_shows_ovr(clock):
    emu = quiet(firmware="totalizer", response_tau_s=0.01)
    emu.totalizer_max_sl = 0.1
    ask(emu, clock, b"ALS 5\r", 5.0)  # 5 SLPM for 5 s = 0.42 SL
    line = ask(emu, clock, b"A\r")
    assert line.endswith(b" +0000000.1 +080.00    Air OVR\r")


# -- streaming and unit id -------------------------------------------------------------------
def test_streaming_frames_drop_the_id_and_follow_register_91(clock):
    emu = quiet(firmware="legacy")
    assert ask(emu, clock, b"A@=@\r", 0.0) == b""
    clock.sleep(0.26)
    lines = emu.transmit(clock.now()).split(b"\r")[:-1]
    assert len(lines) == 5  # every 50 ms by default
    assert all(line == b"+014.70 +025.00 +000.00 +000.00 +000.00 Air" for line in lines)
    assert ask(emu, clock, b"A\r", 0.0) == b""  # no longer unit A
    emu.receive(b"@W91=100\r", clock.now())
    clock.sleep(1.0)
    out = emu.transmit(clock.now())
    assert b"@   091 = 100\r" in out
    assert 9 <= out.count(b"Air\r") <= 11
    emu.receive(b"@@=A\r", clock.now())
    clock.sleep(0.5)
    emu.transmit(clock.now())
    clock.sleep(0.5)
    assert emu.transmit(clock.now()) == b""
    assert ask(emu, clock, b"A\r").startswith(b"A +014.70")


def test_stream_backlog_is_bounded(clock):
    emu = quiet()
    ask(emu, clock, b"A@=@\r", 0.0)
    clock.sleep(3600.0)
    assert emu.transmit(clock.now()).count(b"\r") <= 70


def test_change_unit_id_and_broadcast(clock):
    emu = quiet()
    assert ask(emu, clock, b"A@=D\r") == b""
    assert ask(emu, clock, b"A\r") == b""
    assert ask(emu, clock, b"d\r").startswith(b"D +014.70")
    assert ask(emu, clock, b"*LS 2\r") == b"D +002.00 +002.00 7 SLPM\r"
    legacy = quiet(firmware="legacy")
    assert ask(legacy, clock, b"*\r") == b""


# -- physics for the twin --------------------------------------------------------------------
def test_flow_follows_setpoint_with_first_order_lag(clock):
    calls: list[float] = []
    emu = quiet(response_tau_s=2.0, on_change=calls.append)
    ask(emu, clock, b"ALS 4\r", 0.0)
    t0 = clock.now()
    assert calls == [t0]
    assert emu.flow_slpm(t0 + 2.0) == pytest.approx(4.0 * (1 - math.exp(-1)), rel=1e-9)
    assert emu.flow_slpm(t0 + 20.0) == pytest.approx(4.0, abs=1e-3)
    # totalizer: integral of the lagged flow
    expected_sl = (4.0 * 20.0 - 4.0 * 2.0 * (1 - math.exp(-10))) / 60.0
    assert emu.dispensed_sl(t0 + 20.0) == pytest.approx(expected_sl, rel=1e-9)


def test_frame_noise_is_small_and_seeded(clock):
    def run(seed):
        c = VirtualClock()
        emu = AlicatEmulator("mfc", full_scale_slpm=5.0, seed=seed, response_tau_s=0.1)
        return [ask(emu, c, b"AS2.5\r" if i == 0 else b"A\r", 1.0) for i in range(10)]

    assert run(1) == run(1)
    assert run(1) != run(2)
    masses = [float(line.split()[4]) for line in run(1)[3:]]
    assert all(abs(m - 2.5) < 0.02 for m in masses)


def test_stuck_fault_freezes_the_flow(clock):
    emu = quiet(response_tau_s=0.5)
    ask(emu, clock, b"ALS 2\r", 5.0)
    emu.inject("stuck")
    ask(emu, clock, b"ALS 4\r", 5.0)
    assert emu.flow_slpm(clock.now()) == pytest.approx(2.0, abs=0.01)
    assert ask(emu, clock, b"ALS\r") == b"A +004.00 +004.00 7 SLPM\r"  # the setpoint was taken
    emu.clear("stuck")
    clock.sleep(5.0)
    assert emu.flow_slpm(clock.now()) == pytest.approx(4.0, abs=0.01)


def test_generic_faults(clock):
    emu = quiet()
    emu.inject("no_reply")
    assert ask(emu, clock, b"A\r") == b""
    emu.clear()
    emu.inject("garbage")
    out = ask(emu, clock, b"A\r")
    assert out and not FRAME_RE.match(out)
    emu.clear("garbage")
    emu.inject("drop")
    assert not emu.connected
    emu.clear("drop")
    assert ask(emu, clock, b"A\r").startswith(b"A +014.70")
    with pytest.raises(ValueError):
        emu.inject("melted")


def test_sim_link_turnaround_is_virtual(clock):
    emu = quiet()
    link = SimLink(emu, clock)
    reply = link.query(b"A\r", b"\r")
    assert reply.startswith(b"A ")
    assert 0 < clock.now() < 0.1  # turnaround + 19200-baud wire time, in virtual seconds
