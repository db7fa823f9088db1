"""The twin's physics: qualitatively right, and quantitatively as documented in castrig.sim.world."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from castrig.sim.physics import rh_from_vapour, saturation_vapour_pressure_hpa, vapour_from_rh
from castrig.sim.world import ChamberModel, FilmConditions, FilmModel, World, film_targets

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from virtual_time import open_loop_trace  # noqa: E402


def _world(**chamber) -> World:
    w = World(ChamberModel(temperature_drift_c=0.0, **chamber))
    return w


def test_magnus_formula_reference_values():
    # es(0 °C) = 6.112 hPa exactly by construction; es(20 °C) = 23.39 hPa, es(40 °C) = 73.84 hPa
    # (Wexler/IAPWS tables) — the Magnus form holds them within 0.5 %.
    assert saturation_vapour_pressure_hpa(0.0) == pytest.approx(6.112)
    assert saturation_vapour_pressure_hpa(20.0) == pytest.approx(23.39, rel=0.005)
    assert saturation_vapour_pressure_hpa(40.0) == pytest.approx(73.84, rel=0.005)
    # DESIGN §3: a 1 °C difference is ≈ 6 %RH at high RH
    p = vapour_from_rh(90.0, 22.0)
    assert 5.0 < rh_from_vapour(p, 21.0) - 90.0 < 6.5


def test_chamber_step_response_has_the_documented_time_constant():
    w = _world(volume_l=2.0, leak_per_min=0.0, room_rh_pct=45.0, bubbler_rh_pct=98.0, dry_line_rh_pct=1.0)
    w.dry_flow_slpm = lambda t: 2.0
    w.advance(1800)
    start = w.chamber_rh_pct()
    w.wet_flow_slpm = lambda t: 1.0
    w.dry_flow_slpm = lambda t: 1.0
    t0 = w.t
    tau = 2.0 / 2.0 * 60.0  # V/Q = 1 min
    w.advance(t0 + tau)
    final = 0.5 * 98.0 + 0.5 * 1.0
    fraction = (w.chamber_rh_pct() - start) / (final - start)
    assert fraction == pytest.approx(1 - math.exp(-1), abs=0.01)
    w.advance(t0 + 10 * tau)
    assert w.chamber_rh_pct() == pytest.approx(final, abs=0.05)


def test_sensor_lags_the_chamber_with_its_time_constant():
    w = _world(leak_per_min=0.0, sensor_tau_s=10.0)
    w.dry_flow_slpm = lambda t: 2.0
    w.advance(1800)
    w.dry_flow_slpm = lambda t: 0.0
    w.wet_flow_slpm = lambda t: 2.0
    w.advance(w.t + 5.0)
    assert w.sensor_rh_pct < w.chamber_rh_pct() - 1.0  # the probe trails the air


def test_evaporation_from_the_wet_support_raises_rh():
    dry = _world()
    wet = _world()
    for w in (dry, wet):
        w.dry_flow_slpm = lambda t: 2.0
    wet.water_dispensed_ml = lambda t: 0.3 if t > 10 else 0.0
    dry.advance(1200)
    wet.advance(1200)
    assert wet.chamber_rh_pct() > dry.chamber_rh_pct() + 1.0
    assert 0.0 < wet.support_water_ml < 0.3


def test_temperature_moves_rh_at_constant_moisture():
    w = World(ChamberModel(temperature_drift_c=2.0, temperature_period_s=3600.0, leak_per_min=0.0))
    w.dry_flow_slpm = lambda t: 0.0
    w.advance(900)  # drift peak (+1 °C) at a quarter period: same vapour, warmer air
    warm = w.chamber_rh_pct()
    w.advance(2700)  # trough (-1 °C)
    cold = w.chamber_rh_pct()
    assert cold > warm + 4.0


def _conditions(**kw) -> FilmConditions:
    base = dict(cast_volume_ml=0.2, concentration_mg_ml=5.0, solvent="chloroform", evaporation_s=90.0,
                surface_rh_mean_pct=78.0, surface_rh_std_pct=0.3, chamber_rh_mean_pct=70.0, support_wet=True,
                mean_flow_slpm=2.0, temperature_c=22.0)
    base.update(kw)
    return FilmConditions(**base)


def test_pore_size_rises_with_rh_and_falls_with_concentration():
    m = FilmModel()
    d_rh = [film_targets(_conditions(surface_rh_mean_pct=rh), m).mean_diameter_um for rh in (60, 70, 80, 90)]
    assert np.all(np.diff(d_rh) > 0)
    d_c = [film_targets(_conditions(concentration_mg_ml=c), m).mean_diameter_um for c in (2, 5, 10, 20)]
    assert np.all(np.diff(d_c) < 0)
    assert film_targets(_conditions(), m).mean_diameter_um == pytest.approx(m.d_ref_um, rel=0.01)


def test_no_ordered_pores_below_the_threshold():
    m = FilmModel()
    assert not film_targets(_conditions(surface_rh_mean_pct=m.threshold_rh_pct - 1), m).ordered
    assert film_targets(_conditions(surface_rh_mean_pct=m.threshold_rh_pct + 1), m).ordered


def test_thin_films_over_a_wet_support_give_more_through_pores():
    m = FilmModel()
    thin_wet = film_targets(_conditions(cast_volume_ml=0.1, support_wet=True), m).through_fraction
    thick_wet = film_targets(_conditions(cast_volume_ml=0.6, support_wet=True), m).through_fraction
    thin_dry = film_targets(_conditions(cast_volume_ml=0.1, support_wet=False), m).through_fraction
    assert thin_wet > thick_wet and thin_wet > thin_dry


def test_rh_drift_makes_a_worse_membrane():
    m = FilmModel()
    steady = film_targets(_conditions(surface_rh_std_pct=0.2), m)
    drifting = film_targets(_conditions(surface_rh_std_pct=5.0), m)
    assert drifting.cv > steady.cv and drifting.defect_rate > steady.defect_rate


def test_spread_grows_near_saturation():
    m = FilmModel()
    assert film_targets(_conditions(surface_rh_mean_pct=99.0), m).cv > film_targets(_conditions(surface_rh_mean_pct=85.0), m).cv


def test_unknown_model_parameters_are_refused():
    with pytest.raises(ValueError, match="unknown ChamberModel parameter"):
        World(params={"chamber": {"volume_litres": 3}})
    with pytest.raises(ValueError, match="allowed: chamber, film"):
        World(params={"sensor": {}})


def test_quiet_phases_integrate_exactly_against_a_fine_step_reference():
    """Issue 19: long steps between queries (closed-form chamber, probe and support water; the
    MFCs' mean flow from what they delivered) give the trace of 10 ms steps within 0.01 %RH
    (the schedule: benchmarks/virtual_time.py, which prints the same figure)."""
    coarse = open_loop_trace(None)
    fine = open_loop_trace(0.01)
    d = np.abs(np.array(coarse) - np.array(fine))
    assert max(coarse) > 60 and min(coarse[100:]) < 50  # the schedule moved RH a lot
    assert d.max() <= 0.01, (d.max(), int(d.argmax()))


def _water_after_a_quiet_spell(pumps_report_changes: bool) -> tuple[list[tuple[float, float]], dict]:
    """The sim rig: 30 s with the pumps still (kept alive), then the water pump's pre-wet;
    the probe's reading and the water on the support every second."""
    from castrig.clock.virtual import VirtualClock
    from castrig.rig.build import build_rig
    from castrig.rig.profile import load_profile

    rig = build_rig(load_profile(Path(__file__).resolve().parents[2] / "hw_profiles" / "sim.yaml"),
                    clock=VirtualClock(), seed=3)
    world, clock = rig.twin.world, rig.clock
    world.pumps_report_changes = pumps_report_changes
    pumps = list(rig.pumps().values())
    out = []
    for i in range(90):
        if i == 30:
            rig.water_pump.set_rate_ml_min(1.0)
            rig.water_pump.set_volume_ml(0.3)
            rig.water_pump.start()
        elif i % 3 == 0:
            for pump in pumps:
                pump.keepalive()
        out.append((rig.rh_near.read().rh_pct, world.support_water_ml))
        clock.sleep(1.0)
    return out, world.snapshot()


def test_a_pump_starting_after_a_quiet_spell_is_seen_as_when_asked_every_step():
    """Quiet steps stop asking still pumps once they found them still (World.pump_changing, the
    pumps' on_change, says when one moves): a pre-wet after a quiet spell wets the support at
    the same moments, to the bit, as in a world that asks the pumps at every step."""
    cached, cached_world = _water_after_a_quiet_spell(True)
    asked, asked_world = _water_after_a_quiet_spell(False)
    assert max(water for _, water in cached) > 0.2  # the pre-wet reached the support
    assert cached == asked
    assert cached_world == asked_world


def test_a_control_tick_steps_the_chamber_once():
    """Issue 19: the RH loop's two setpoints a tick fall between the sensor's reads; in a quiet
    phase they no longer end the chamber's step (World.mfc_changing: the step's mean flows come
    from what the MFCs delivered), so a tick is one quiet step, not three — with the readings
    of a world that steps at every change within 0.05 %RH (the open-loop check above: 0.01)."""
    from castrig.clock.virtual import VirtualClock
    from castrig.rig.build import build_rig
    from castrig.rig.profile import load_profile

    def ticks(world_steps_at_changes: bool) -> tuple[list[float], int]:
        rig = build_rig(load_profile(Path(__file__).resolve().parents[2] / "hw_profiles" / "sim.yaml"),
                        clock=VirtualClock(), seed=3)
        world, clock = rig.twin.world, rig.clock
        if world_steps_at_changes:  # every MFC change ends the step, as before mfc_changing
            for mfc in (rig.twin.emulators["dry_mfc"], rig.twin.emulators["wet_mfc"]):
                mfc.on_change = world.advance
        steps = []
        step_quiet = world._step_quiet
        world._step_quiet = lambda dt: (steps.append(dt), step_quiet(dt))[1]
        readings = []
        for i in range(120):
            readings.append(rig.rh_near.read().rh_pct)
            wet = 1.3 + 0.002 * (i % 7) if i >= 10 else 0.0
            rig.dry_mfc.set_flow_slpm(round(2.0 - wet, 3))
            rig.wet_mfc.set_flow_slpm(round(wet, 3))
            clock.sleep(1.0)
        return readings, len(steps)

    once, n_once = ticks(False)
    every, n_every = ticks(True)
    assert n_every >= 3 * 110  # the old way: the read and each setpoint ended a step
    assert n_once <= 120 + 5
    assert max(once) > 50  # the humid air moved RH
    assert max(abs(a - b) for a, b in zip(once, every)) <= 0.05
