"""What a pump step asks of its pump, and how long it takes, is checked before the run (exit 2, no
run folder), the way ``castrig check --profile`` and ``castrig run`` meet it.

Before: ``rate_ml_min: 0.0000001`` "fit" hw_profiles/sim.yaml; the run purged, conditioned,
pre-wetted, started membrane m1 and only then faulted (``RAT0.006UH`` → ``?OOR``, exit 3); 20 mL
at 0.0001 mL/min (139 days) "fit" and dispensed; ``setpoint_rh_pct: 99.5`` "fit" a twin whose
bubbler gives 98 %RH and faulted after the condition step's timeout.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from conftest import ROOT, castrig, castrig_main, refused
from castrig.clock import VirtualClock
from castrig.devices.ne1000 import NE1000Pump, PumpCommandError
from castrig.links import SimLink
from castrig.rig.profile import NE1000Config
from castrig.sim.ne1000 import NE1000Emulator

DEMO = (ROOT / "recipes" / "demo.yaml").read_text()
SIM = str(ROOT / "hw_profiles" / "sim.yaml")
CAST = "{type: cast, volume_ml: 0.2, rate_ml_min: 0.5}"


def _recipe(tmp_path: Path, name: str, old: str, new: str) -> Path:
    assert old in DEMO
    path = tmp_path / name
    path.write_text(DEMO.replace(old, new))
    return path

def _no_run_folder(data: Path) -> None:
    assert not data.exists() or not any(data.iterdir()), list(data.iterdir())


def test_a_rate_below_the_pumps_minimum_is_refused_before_the_run(tmp_path, capsys):
    # 0.1 µL at 1e-7 mL/min takes 1000 min (within the step cap): only the pump cannot do it
    recipe = _recipe(tmp_path, "below_min.yaml", CAST, "{type: cast, volume_ml: 0.0001, rate_ml_min: 0.0000001}")
    # without --profile, check uses the profile run uses (hw_profiles/sim.yaml), so it refuses too
    refused(castrig_main(capsys, "check", str(recipe)), "steps[3] (cast).rate_ml_min = 1e-07", "below what devices.caster can pump")
    from castrig.recipe.compat import lowest_settable_rate_ml_min

    low = lowest_settable_rate_ml_min(NE1000Config(model="ne1000", link={"kind": "sim"}, syringe_diameter_mm=4.699))
    err = refused(castrig_main(capsys, "check", str(recipe), "--profile", SIM), str(recipe), "steps[3] (cast).rate_ml_min = 1e-07",
                  "below what devices.caster can pump", "4.699 mm syringe", f"allowed: at least {low:.6g} mL/min, up to 0.884")
    assert "fits" not in err
    data = tmp_path / "runs"
    # (this run through castrig's own process, as the report met it; the other run refusals here
    # through its entry point in-process, castrig_main: refused before anything runs either way)
    refused(castrig("run", str(recipe), "--data", str(data), "-q"), "steps[3] (cast).rate_ml_min", "below what devices.caster")
    _no_run_folder(data)


@pytest.mark.parametrize("asked, asked_ml, quoted, volume_ml", [("0.0000001", 0.0001, "allowed: at least ", 0.0002),
                                                                ("40", 0.2, "allowed: up to ", 0.2)])
def test_the_quoted_bound_itself_fits(tmp_path, asked, asked_ml, quoted, volume_ml, capsys):
    """The bound the message quotes (minimum, maximum) is one the check accepts and the pump
    takes (no ?OOR)."""
    too = _recipe(tmp_path, "x.yaml", CAST, f"{{type: cast, volume_ml: {asked_ml!r}, rate_ml_min: {asked}}}")
    done = castrig_main(capsys, "check", str(too), "--profile", SIM)
    shown = float(" ".join(done.stderr.split()).split(quoted)[1].split(" mL/min")[0])
    recipe = _recipe(tmp_path, "at_bound.yaml", CAST, f"{{type: cast, volume_ml: {volume_ml!r}, rate_ml_min: {shown!r}}}")
    assert castrig_main(capsys, "check", str(recipe), "--profile", SIM).returncode == 0
    pump, _ = _sim_pump(4.699)
    pump.set_rate_ml_min(shown)  # no ?OOR


def test_a_dispense_that_takes_months_is_refused_by_check_and_run(tmp_path, capsys):
    recipe = _recipe(tmp_path, "months.yaml", CAST, "{type: cast, volume_ml: 20, rate_ml_min: 0.0001}")
    for args in (("check", str(recipe)), ("check", str(recipe), "--profile", SIM)):
        refused(castrig_main(capsys, *args), str(recipe), "steps[3].rate_ml_min = 0.0001", "takes 1.2e+07 s",
                "at most 86400 s per step", "rate_ml_min at least 0.01389", "line 15")
    data = tmp_path / "runs"
    refused(castrig_main(capsys, "run", str(recipe), "--data", str(data), "-q"), "steps[3].rate_ml_min", "86400 s")
    _no_run_folder(data)


def test_a_prewet_that_takes_longer_than_a_day_is_refused(tmp_path, capsys):
    recipe = _recipe(tmp_path, "prewet.yaml", "{type: prewet, volume_ml: 0.3, rate_ml_min: 1.0}",
                     "{type: prewet, volume_ml: 0.3, rate_ml_min: 0.0002}")  # 25 h
    refused(castrig_main(capsys, "check", str(recipe)), "steps[2].rate_ml_min = 0.0002", "90000 s", "at most 86400 s")


def test_a_setpoint_above_what_the_wet_line_gives_is_refused(tmp_path, capsys):
    recipe = _recipe(tmp_path, "rh995.yaml", "setpoint_rh_pct: 70, band_rh_pct: 1.0", "setpoint_rh_pct: 99.5, band_rh_pct: 0.5")
    refused(castrig_main(capsys, "check", str(recipe), "--profile", SIM), "steps[1] (condition).setpoint_rh_pct = 99.5",
            "allowed: 1.9 to 96.9 %RH", "sim.bubbler_rh_pct", "sim.leak_per_min")
    data = tmp_path / "runs"
    refused(castrig_main(capsys, "run", str(recipe), "--data", str(data), "-q"), "setpoint_rh_pct = 99.5")
    _no_run_folder(data)


def _sim_pump(diameter_mm: float) -> tuple[NE1000Pump, NE1000Emulator]:
    clock = VirtualClock()
    emu = NE1000Emulator("caster", diameter_mm=diameter_mm)
    pump = NE1000Pump(SimLink(emu, clock), name="caster", clock=clock)
    pump.connect()
    pump.set_diameter_mm(diameter_mm)
    return pump, emu


@pytest.mark.parametrize("diameter_mm", [4.699, 8.585, 14.57, 26.59, 0.5, 50.0])
def test_the_check_and_the_emulator_agree_on_the_rate_range(diameter_mm):
    """Every rate the check lets through is one the emulator (the pump's ?OOR) takes, and rates
    clearly outside the check's range are ones it refuses."""
    from castrig.recipe.compat import max_rate_ml_min, min_rate_ml_min, sent_rate_ml_min

    cfg = NE1000Config(model="ne1000", link={"kind": "sim"}, syringe_diameter_mm=diameter_mm)
    low, top = min_rate_ml_min(cfg), max_rate_ml_min(cfg)
    pump, _ = _sim_pump(diameter_mm)
    for factor in (0.5, 0.99, 0.9995, 1.0, 1.0004, 1.001, 1.01, 2.0):
        for bound in (low, top):
            rate = bound * factor
            passes = low <= (sent_rate_ml_min(rate) or 0.0) and rate <= top and (sent_rate_ml_min(rate) or math.inf) <= top
            try:
                pump.set_rate_ml_min(rate)
                taken = True
            except PumpCommandError as exc:
                assert exc.code == "OOR"
                taken = False
            if passes:
                assert taken, (diameter_mm, rate, "check passes, pump says ?OOR")
            elif abs(factor - 1.0) > 0.001:
                assert not taken, (diameter_mm, rate, "check refuses a rate the pump takes")


def test_a_volume_the_pump_would_take_as_zero_is_refused(tmp_path, capsys):
    """Before: 0.0004 mL with a 26.59 mm syringe (mL units) went out as ``VOL0.000`` — pump without
    end — and the run faulted at the cast ("caster still running"), exit 3."""
    sim = (ROOT / "hw_profiles" / "sim.yaml").read_text()
    old = "caster:      {model: ne1000, link: {kind: sim}, address: 1, syringe_diameter_mm: 4.699"
    assert old in sim
    profile = tmp_path / "big_syringe.yaml"
    profile.write_text(sim.replace(old, old.replace("4.699", "26.59")))
    recipe = _recipe(tmp_path, "tiny.yaml", CAST, "{type: cast, volume_ml: 0.0004, rate_ml_min: 0.5}")
    refused(castrig_main(capsys, "check", str(recipe), "--profile", str(profile)), "steps[3] (cast).volume_ml = 0.0004",
            "it would be set to 0, which means pumping without end", "allowed: a multiple of 0.001 mL")
    data = tmp_path / "runs"
    refused(castrig_main(capsys, "run", str(recipe), "--profile", str(profile), "--data", str(data), "-q"), "volume_ml = 0.0004")
    _no_run_folder(data)
    assert castrig_main(capsys, "check", str(recipe), "--profile", SIM).returncode == 0  # µL units: 0.4 µL is fine there


@pytest.mark.parametrize("diameter_mm, volume_ml", [(26.59, 0.0004), (26.59, 0.2), (26.59, 0.0015), (4.699, 0.0004),
                                                    (4.699, 12.5), (14.0, 0.01234), (14.01, 0.01234)])
def test_the_checked_volume_is_the_one_the_driver_sends(diameter_mm, volume_ml):
    from castrig.recipe.compat import sent_volume_ml

    pump, emu = _sim_pump(diameter_mm)
    pump.set_volume_ml(volume_ml)
    sent, units, _ = sent_volume_ml(volume_ml, NE1000Config(model="ne1000", link={"kind": "sim"}, syringe_diameter_mm=diameter_mm))
    assert (emu.volume_units, emu.volume_value * {"ML": 1.0, "UL": 1e-3}[emu.volume_units]) == (units, pytest.approx(sent, abs=1e-12))




def test_a_purge_flow_on_a_rig_without_a_dry_line_is_refused_and_its_purge_said_as_done(tmp_path: Path, capsys):
    """An outside tester: ``{type: purge, flow_slpm: 4.9}`` on the Watlow F4T chamber's twin (no
    mass-flow controllers). `castrig check --profile` said it fits, the run completed, and its log
    said "purge: dry air 4.9 slpm, wet air off" -- the chamber only turned its humidifier off, the
    flow was dropped without a word. Now check and run refuse it (exit 2, no run folder), naming
    the field; a purge without flow_slpm there says what it did."""
    profile = str(ROOT / "hw_profiles" / "sim-watlow-f4t.yaml")
    recipe = tmp_path / "purge.yaml"
    recipe.write_text("name: purge-flow\nsteps:\n  - {type: purge, duration_s: 5, flow_slpm: 4.9}\n")
    data = tmp_path / "data"
    for done in (castrig_main(capsys, "check", str(recipe), "--profile", profile),
                 castrig("run", str(recipe), "--profile", profile, "--data", str(data), "-q")):
        said = refused(done, "steps[0] (purge).flow_slpm = 4.9", "has no devices.dry_mfc to set that flow on",
                       "(allowed: no flow_slpm on this rig)")
        assert "humidifier off" in said, said
    assert not data.exists() or not any(data.iterdir())
    recipe.write_text("name: purge\nsteps:\n  - {type: purge, duration_s: 5}\n")
    done = castrig("run", str(recipe), "--profile", profile, "--data", str(data), "-q")
    assert done.returncode == 0, done.stderr
    log = next(data.glob("*/log.jsonl")).read_text()
    assert "purge: the chamber's humidifier off (no flow to set)" in log and "dry air" not in log, log
