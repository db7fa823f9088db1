"""`castrig sim fit`: runs recorded on a twin with hidden chamber parameters (the "real rig"),
fitted from the default twin: parameters recovered within 10 %, replay RMS <= 0.5 %RH, the
fitted profile written with the start profile's comments, and a run folder that is not one
refused naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from castrig.rig.profile import load_profile
from conftest import ROOT, castrig

HIDDEN = {"chamber_volume_l": 1.4, "leak_per_min": 0.06, "sensor_tau_s": 14.0, "bubbler_rh_pct": 85.0}

RECIPES = {
    "steps": ("name: fit-steps\nsteps:\n"
              "  - {type: purge, duration_s: 120}\n"
              "  - {type: condition, setpoint_rh_pct: 40, band_rh_pct: 1.5, stable_for_s: 60, timeout_s: 900}\n"
              "  - {type: condition, setpoint_rh_pct: 75, band_rh_pct: 1.5, stable_for_s: 120, timeout_s: 900}\n"
              "  - {type: condition, setpoint_rh_pct: 55, band_rh_pct: 1.5, stable_for_s: 120, timeout_s: 900}\n"),
    # A long low-flow purge: the leak to the room shows where the flow is small.
    "purge": ("name: fit-purge\nsteps:\n"
              "  - {type: condition, setpoint_rh_pct: 70, band_rh_pct: 1.5, stable_for_s: 120, timeout_s: 900}\n"
              "  - {type: prewet, volume_ml: 0.1, rate_ml_min: 2}\n"
              "  - {type: purge, duration_s: 900, flow_slpm: 0.3}\n"),
}


def _hidden_profile(tmp_path: Path) -> Path:
    text = (ROOT / "hw_profiles" / "sim.yaml").read_text()
    from castrig.rig.profile_edit import set_value

    for key, value in HIDDEN.items():
        text = set_value(text, ("sim", key), value)
    text = set_value(text, ("sim", "seed"), 7)
    text = set_value(text, ("control", "sample_period_s"), 1.0)  # sampled at the control period
    path = tmp_path / "hidden.yaml"
    path.write_text(text)
    return path


def test_fit_recovers_hidden_chamber_parameters(tmp_path):
    from castrig.recipe.session import run_recipe

    hidden = _hidden_profile(tmp_path)
    for name, text in RECIPES.items():
        recipe = tmp_path / f"{name}.yaml"
        recipe.write_text(text)
        result = run_recipe(recipe, hidden, data_root=tmp_path / "runs", quiet=True)
        assert result.outcome == "completed", result.reason
    run_dirs = sorted(str(p) for p in (tmp_path / "runs").iterdir() if (p / "run.sqlite").is_file())
    assert len(run_dirs) == 2
    out = tmp_path / "fitted.yaml"
    done = castrig("sim", "fit", *run_dirs, "--out", str(out), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    for key, truth in HIDDEN.items():
        assert result["start"][key] != pytest.approx(truth, rel=0.1)  # the default twin is not the rig
        assert result["params"][key] == pytest.approx(truth, rel=0.10), key
    assert result["rms_total_pct"] <= 0.5
    assert all(rms <= 0.5 for rms in result["rms_pct"].values())
    assert all(rms > 1.0 for rms in result["start_rms_pct"].values())
    fitted = load_profile(out)
    assert fitted.name == "sim-fitted"
    assert fitted.sim.chamber_volume_l == pytest.approx(HIDDEN["chamber_volume_l"], rel=0.1)
    assert "# tau = V/Q" in out.read_text()  # the start profile's comments are kept
    done = castrig("sim", "fit", *run_dirs)  # the human form prints the RMS per run
    assert done.returncode == 0 and "replay RMS over all runs" in done.stdout


def test_fit_refuses_a_folder_that_is_not_a_run(tmp_path):
    done = castrig("sim", "fit", str(tmp_path))
    assert done.returncode == 2 and str(tmp_path) in done.stderr and "run.sqlite" in done.stderr
