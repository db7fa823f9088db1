"""Drivers on imperfect lines, over the real ``castrig sim serve`` (TCP on loopback and ptys).

* NE-1000 in safe mode: the host stops sending keep-alives, the pump's watchdog raises alarm T
  (sent unprompted, split by the socket at any byte), then ``stop()`` must still work and the
  pump read back STOPPED.
* A stalled line: ``sim serve`` SIGSTOPped long enough for the drivers to time out, then
  SIGCONT: the late replies must not be taken for the next commands' (setpoints taken, polls
  show them).
"""

from __future__ import annotations

import time

import pytest

from castrig.clock import WallClock
from castrig.devices.alicat import AlicatMFC
from castrig.devices.hmt330 import HMT330
from castrig.devices.ne1000 import NE1000Pump
from castrig.devices.roles import DeviceCommsError, PumpState
from castrig.devices.scpi_chamber import ScpiHumidityChamber
from castrig.errors import CastrigError
from castrig.links import LinkError
from castrig.links.serial_link import SerialLink
from conftest import campaign

SAFE_MODE_S = 1  # the pump's watchdog, short so the test is


@pytest.mark.parametrize("transport", ["--tcp", "--pty"])
def test_pump_stops_and_reads_back_stopped_after_the_safe_mode_watchdog_alarm(sim_serve, transport):
    args = [transport, "0"] if transport == "--tcp" else [transport]
    with sim_serve(*args) as served:
        pump = NE1000Pump(SerialLink(served.addresses["caster"], baudrate=19200, timeout_s=1.0), name="caster",
                          address=1, clock=WallClock(), safe_mode_s=SAFE_MODE_S)
        try:
            pump.connect()
            assert pump.safe and pump.safe_mode_timeout_s() == SAFE_MODE_S
            pump.set_diameter_mm(4.699)
            pump.set_rate_ml_min(0.1)
            pump.start()
            assert pump.keepalive() is PumpState.INFUSING
            time.sleep(SAFE_MODE_S + 0.5)  # the host stalls: no keep-alive, the watchdog fires
            pump.stop()
            assert pump.last_alarm == "T"
            assert "T" in pump.unsolicited_alarms  # the unprompted packet was read whole
            assert pump.state() is PumpState.STOPPED
            assert pump.state() is PumpState.STOPPED  # and again: the replies stay in step
            pump.leave_safe_mode()
            assert pump.state() is PumpState.STOPPED
        finally:
            pump.close()


def _expect_comms_error(action) -> None:
    try:
        action()
    except (DeviceCommsError, LinkError):
        return
    except CastrigError as exc:  # pragma: no cover - reported with its type
        raise AssertionError(f"{type(exc).__name__}: {exc}") from exc
    raise AssertionError("the stalled device answered")


def test_alicat_and_hmt330_are_back_in_step_after_sim_serve_was_stalled(sim_serve):
    with sim_serve("--tcp", "0") as served:
        mfc = AlicatMFC(SerialLink(served.addresses["dry_mfc"], baudrate=19200, timeout_s=0.3), name="dry_mfc",
                        unit_id="A", full_scale_slpm=5.0)
        hmt = HMT330(SerialLink(served.addresses["rh_near"], baudrate=4800, timeout_s=0.3), name="rh_near")
        try:
            mfc.set_flow_slpm(1.0)
            assert mfc.read().setpoint_slpm == pytest.approx(1.0)
            hmt.read()
            served.stall()
            try:
                # Every command reaches the stalled simulator, none is answered in time.
                _expect_comms_error(lambda: mfc.set_flow_slpm(2.0))
                _expect_comms_error(mfc.read)
                _expect_comms_error(hmt.read)
            finally:
                served.resume()
            # The late replies now arrive; each exchange below must get its own reply.
            for setpoint in (3.0, 0.5, 4.0):
                mfc.set_flow_slpm(setpoint)  # raises AlicatSetpointNotTaken when one behind
                assert mfc.read().setpoint_slpm == pytest.approx(setpoint)
                assert mfc.setpoint().requested == pytest.approx(setpoint)
                reading = hmt.read()
                assert 0 < reading.rh_pct < 100
            assert hmt.serial_mode() == "STOP"
            assert mfc.in_step.resyncs >= 1 and hmt.in_step.resyncs >= 1
        finally:
            mfc.close()
            hmt.close()


def test_scpi_chamber_is_back_in_step_after_sim_serve_was_stalled(sim_serve):
    with sim_serve("--tcp", "0", profile="hw_profiles/sim-chamber.yaml") as served:
        port = served.addresses["chamber"].split("::")[2]
        chamber = ScpiHumidityChamber(SerialLink(f"socket://127.0.0.1:{port}", timeout_s=0.3), name="chamber")
        try:
            chamber.set_rh_setpoint(40.0)
            assert chamber.rh_setpoint_pct() == pytest.approx(40.0)
            served.stall()
            try:
                _expect_comms_error(chamber.read_rh_pct)
                _expect_comms_error(chamber.read_temperature_c)
            finally:
                served.resume()
            # Late humidity and temperature readings parse as numbers too: one behind, the
            # setpoint query would read one of them.
            assert chamber.rh_setpoint_pct() == pytest.approx(40.0)
            for setpoint in (60.0, 45.5, 70.0):
                chamber.set_rh_setpoint(setpoint)
                assert chamber.rh_setpoint_pct() == pytest.approx(setpoint)
                assert 0 < chamber.read_rh_pct() <= 100
            assert chamber.in_step.resyncs >= 1
        finally:
            chamber.close()


@pytest.mark.parametrize("command", campaign([b"CLD", b"RUN"], ci={0}))
def test_a_line_dropped_in_a_dispense_set_up_or_start_is_ridden_out(tmp_path, sim_serve, command):
    """The caster behind a TCP serial server that drops its connection as a dispense is set up
    (``CLDINF``, an outside tester) or started (``RUN``): the set-up commands were sent once, and
    the run faulted (LinkClosed, membrane lost) before the pump had moved, where every other
    exchange rides out a lost line for ``control.comms_lost_s``. Through the real `castrig run`:
    the run completes with the cast dispensed once, in full."""
    import json

    from conftest import run_recipe_through_a_proxy, run_rows

    recipe = {"name": "dropped", "steps": [{"type": "cast", "volume_ml": 0.02, "rate_ml_min": 0.8},
                                           {"type": "purge", "duration_s": 1}]}
    done, proxy = run_recipe_through_a_proxy(tmp_path, sim_serve, "caster", recipe, control={"control_period_s": 0.5},
                                             cut_on=command)
    assert proxy.cuts == 0, "the line was never cut: the test shows nothing"
    (run_dir,) = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
    assert done.returncode == 0, (done.stdout, done.stderr[-2000:])
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "completed"
    [(dispensed,)] = run_rows(run_dir, "SELECT json_extract(data_json, '$.dispensed_ml') FROM events "
                                       "WHERE kind = 'pump' AND message LIKE 'caster: dispensed%'")
    assert dispensed == pytest.approx(0.02, rel=0.02), dispensed
    assert run_rows(run_dir, "SELECT count(*) FROM events WHERE kind = 'warning' AND source = 'caster'")[0][0] >= 1


def test_a_slow_line_to_one_pump_does_not_run_out_the_other_pumps_watchdog(tmp_path, sim_serve):
    """Every reply of the water pump arriving in two halves 0.9 s apart (within the link's 1 s
    timeout, an outside tester): its pre-wet's set-up, a dozen exchanges, took 11 s with nothing
    said to the caster meanwhile, whose 10 s safe-mode watchdog ran out (alarm T) and aborted
    the run. The caster is kept alive between the set-up's exchanges.

    Here at 0.44 of that scale, the same ratios (halves 0.4 s apart, 4 s watchdogs, ticks every
    0.5 s): 16 s of wall time, not 36 (it still aborts on alarm T without the keep-alives)."""
    from conftest import run_recipe_through_a_proxy, run_rows

    def halves(request: bytes, data: bytes) -> list:
        cut = max(1, len(data) // 2)
        return [data[:cut], 0.4, data[cut:]]

    recipe = {"name": "slow-line", "steps": [{"type": "prewet", "volume_ml": 0.03, "rate_ml_min": 2.0}]}
    done, _ = run_recipe_through_a_proxy(tmp_path, sim_serve, "water_pump", recipe, reply=halves,
                                         control={"control_period_s": 0.5},
                                         devices={"caster": {"safe_mode_s": 4}, "water_pump": {"safe_mode_s": 4}})
    (run_dir,) = [p.parent for p in (tmp_path / "runs").glob("*/run.json")]
    alarms = run_rows(run_dir, "SELECT message FROM events WHERE message LIKE '%alarm T%'")
    assert not alarms, alarms
    assert done.returncode == 0, (done.stdout, done.stderr[-2000:])
