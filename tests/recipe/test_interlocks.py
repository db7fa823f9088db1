"""Every interlock trips on a real (emulated) fault and leaves the rig safe — read back from the
devices themselves, not from the runner's own bookkeeping."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from castrig.devices.roles import PumpState
from castrig.recipe.model import Recipe
from castrig.recipe.runner import Runner, Status
from castrig.rig.build import build_rig
from castrig.rig.profile import load_profile
from castrig.store import RunInfo, SqliteRunStore

ROOT = Path(__file__).resolve().parents[2]


def _recipe(*steps: dict) -> Recipe:
    return Recipe.model_validate({"name": "t", "steps": list(steps)})


CONDITION = {"type": "condition", "setpoint_rh_pct": 60, "band_rh_pct": 1.5, "stable_for_s": 20, "timeout_s": 900}
PREWET = {"type": "prewet", "volume_ml": 0.2, "rate_ml_min": 1.0}
CAST = {"type": "cast", "volume_ml": 0.1, "rate_ml_min": 0.5}
EVAP = {"type": "evaporate", "setpoint_rh_pct": 60, "duration_s": 600, "band_rh_pct": 3, "max_out_of_band_s": 20}


def _run(tmp_path: Path, recipe: Recipe, on_status: Callable[[Runner, Status], None] | None = None, profile_changes=None):
    profile = load_profile(ROOT / "hw_profiles" / "sim.yaml")
    if profile_changes:
        profile = profile.model_copy(update=profile_changes, deep=True)
    rig = build_rig(profile)
    store = SqliteRunStore(tmp_path, synchronous="NORMAL")
    rec = store.create_run(RunInfo("t", "t", "-", "sim", "-", "test", 1, "", "now"))
    runner: Runner | None = None

    def status(s: Status) -> None:
        if on_status is not None and runner is not None:
            on_status(runner, s)

    runner = Runner(recipe, rig, rec, on_status=status)
    result = runner.run()
    return result, rig, rec


def _assert_safe_on_the_devices(rig) -> None:
    for pump in rig.pumps().values():
        assert not pump.state().moving
    assert rig.wet_mfc.read().setpoint_slpm == 0.0
    assert rig.dry_mfc.read().setpoint_slpm == pytest.approx(rig.profile.control.purge_flow_slpm)


def _interlock_events(rec):
    return [(e.source, e.data.get("action")) for e in rec.events("interlock")]


def test_stale_sensor_aborts(tmp_path):
    def fault(runner, s):
        if s.step_name == "condition" and s.t_s > 60:
            runner.rig.twin.emulators["rh_near"].inject("no_reply")

    result, rig, rec = _run(tmp_path, _recipe(CONDITION), fault)
    assert result.outcome == "aborted" and "sensor_stale" in result.reason
    assert _interlock_events(rec) == [("sensor_stale", "abort")]
    rig.twin.emulators["rh_near"].clear()
    _assert_safe_on_the_devices(rig)
    assert result.safe.safe


def test_sensor_reading_stars_is_stale_then_abort(tmp_path):
    def fault(runner, s):
        if s.t_s > 30:
            runner.rig.twin.emulators["rh_near"].inject("sensor_error")

    result, rig, rec = _run(tmp_path, _recipe(CONDITION), fault)
    assert result.outcome == "aborted" and "sensor_stale" in result.reason
    _assert_safe_on_the_devices(rig)


def test_sensor_out_of_range_aborts(tmp_path):
    profile = load_profile(ROOT / "hw_profiles" / "sim.yaml")
    control = profile.control.model_copy(update={"rh_sensor_range_pct": (0.0, 55.0)})
    result, rig, rec = _run(tmp_path, _recipe(CONDITION), profile_changes={"control": control})
    assert result.outcome == "aborted" and "sensor_range" in result.reason
    _assert_safe_on_the_devices(rig)


def test_mfc_not_following_aborts(tmp_path):
    def fault(runner, s):
        # stuck at zero flow during the purge: the condition step then asks for wet air in vain
        if s.step_name == "purge" and s.t_s > 5 and "stuck" not in runner.rig.twin.emulators["wet_mfc"].faults:
            runner.rig.twin.emulators["wet_mfc"].inject("stuck")

    result, rig, rec = _run(tmp_path, _recipe({"type": "purge", "duration_s": 10}, CONDITION), fault)
    assert result.outcome == "aborted" and "mfc_following" in result.reason
    assert ("mfc_following", "abort") in _interlock_events(rec)


def test_pump_stall_aborts_and_the_pump_is_stopped(tmp_path):
    def fault(runner, s):
        if s.step_name == "cast" and "stall" not in runner.rig.twin.emulators["caster"].faults:
            runner.rig.twin.emulators["caster"].inject("stall")

    result, rig, rec = _run(tmp_path, _recipe(CONDITION, PREWET, CAST, EVAP), fault)
    assert result.outcome == "aborted" and "pump_alarm" in result.reason
    assert rig.caster.state() is PumpState.STOPPED
    _assert_safe_on_the_devices(rig)


def test_rh_out_of_band_during_evaporation_aborts(tmp_path):
    def fault(runner, s):
        if s.step_name == "evaporate" and s.step_elapsed_s > 30:
            runner.rig.twin.world.chamber.bubbler_rh_pct = 20.0  # the bubbler ran dry

    result, rig, rec = _run(tmp_path, _recipe(CONDITION, PREWET, CAST, EVAP), fault)
    assert result.outcome == "aborted" and "rh_band" in result.reason
    assert ("rh_band", "abort") in _interlock_events(rec)
    _assert_safe_on_the_devices(rig)


def test_camera_failure_aborts(tmp_path):
    def fault(runner, s):
        runner.rig.twin.emulators["camera"].inject("no_frame")

    result, rig, rec = _run(tmp_path, _recipe({"type": "wait", "duration_s": 5}, {"type": "capture", "fields": 1}), fault)
    assert result.outcome == "aborted" and "camera_missing" in result.reason
    _assert_safe_on_the_devices(rig)


def test_rh_out_of_band_during_a_wait_holds_then_resumes(tmp_path):
    events: list[str] = []

    def fault(runner, s):
        world = runner.rig.twin.world
        if s.step_name == "wait" and s.t_s > 400 and not events:
            world.chamber.bubbler_rh_pct = 20.0
            events.append("dry")
        elif events == ["dry"] and runner._holding and s.t_s > 700:  # noqa: SLF001 - watching the hold
            world.chamber.bubbler_rh_pct = 98.0
            events.append("restored")

    wait = {"type": "wait", "duration_s": 600}
    result, rig, rec = _run(tmp_path, _recipe(CONDITION, wait), fault)
    assert result.outcome == "completed"
    kinds = [(e.kind, e.source) for e in rec.events() if e.kind.startswith("interlock")]
    assert kinds == [("interlock", "rh_band_hold"), ("interlock_clear", "rh_band_hold")]
    starts = {e.data.get("step"): e.t_s for e in rec.events("step_start")}
    ends = {e.data.get("step"): e.t_s for e in rec.events("step_end")}
    assert ends[1] - starts[1] > 600 + 30  # the held time did not count towards the wait
