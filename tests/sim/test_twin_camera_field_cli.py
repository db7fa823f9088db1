"""The twin's camera field against what the twin renders: the advice names the profile's camera.

A profile with ``devices.camera.pixel_size_um: 5`` (inside its 0.0005-50 µm range) puts a 2560 µm
field under the twin's camera; at the capture the twin refused to render ~465 000 pores and the
run aborted saying "a lower concentration or a higher RH is inside" -- the recipe's pores were
fine, the field was the profile's. Now the abort names the widest field the twin renders and the
profile's pixel_size_um and width_px that make the field.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT, castrig


@pytest.mark.slow  # a castrig run (~0.95 s of CPU) for a message of the twin's alone: -m slow runs it
def test_a_field_too_wide_for_the_twin_names_the_cameras_pixel_size(tmp_path: Path) -> None:
    profile = tmp_path / "wide.yaml"
    profile.write_text((ROOT / "hw_profiles" / "sim.yaml").read_text().replace("pixel_size_um: 0.25", "pixel_size_um: 5"))
    recipe = tmp_path / "one.yaml"
    recipe.write_text("name: one\ngrade: claim1\nconcentration_mg_ml: 5.0\nsupport_pore_um: 5.0\nsteps:\n"
                      "  - {type: condition, setpoint_rh_pct: 70, band_rh_pct: 1.5, stable_for_s: 10, timeout_s: 300}\n"
                      "  - {type: prewet, volume_ml: 0.1, rate_ml_min: 2.0}\n"
                      "  - {type: cast, volume_ml: 0.1, rate_ml_min: 0.8}\n"
                      "  - {type: evaporate, setpoint_rh_pct: 70, duration_s: 300, band_rh_pct: 3, max_out_of_band_s: 120}\n"
                      "  - {type: capture, views: [reflected], fields: 1}\n")
    done = castrig("run", str(recipe), "--profile", str(profile), "--data", str(tmp_path / "runs"), "-q", timeout_s=60)
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 3 and "outside the model" in said and "in the 2560 µm field" in said, said[-2000:]
    assert "devices.camera.pixel_size_um = 5 × width_px = 512 in the profile" in said and "a field of at most" in said, said[-2000:]
    assert "safe state verified" in said, said[-2000:]
