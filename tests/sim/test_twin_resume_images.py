"""A run killed at a membrane's capture and resumed images, on the twin, the membrane an
uninterrupted run images: the same field, the same truth, the same verdict.

Met by the audit: killed -9 at the start of m2's capture, then ``castrig resume``: m2's ground
truth was another realisation (support continuity 1.0 -> 0.0, pore communication 0.09 -> 0.31)
and its verdict flipped from claim1-4 met to not met. The camera's field number seeds each field's
rendering and started from 0 again in the resumed process. Same seed, same run.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import castrig, only_run_dir, run_rows, run_then_kill_9

RECIPE = """\
name: two
grade: claim1
concentration_mg_ml: 4.5
support_pore_um: 20.0
steps:
  - {type: condition, setpoint_rh_pct: 80, band_rh_pct: 1.0, stable_for_s: 30, timeout_s: 1200}
  - {type: cast, volume_ml: 0.2, rate_ml_min: 0.5}
  - {type: evaporate, setpoint_rh_pct: 80, band_rh_pct: 3.0, duration_s: 300, max_out_of_band_s: 120}
  - {type: capture, fields: 1, views: [reflected, transmitted, section]}
  - {type: analyse}
  - {type: cast, volume_ml: 0.2, rate_ml_min: 0.5}
  - {type: evaporate, setpoint_rh_pct: 80, band_rh_pct: 3.0, duration_s: 300, max_out_of_band_s: 120}
  - {type: capture, fields: 1, views: [reflected, transmitted, section]}
  - {type: analyse}
"""


def _membranes(run_dir: Path) -> list[tuple[str, dict, dict, str]]:
    out = []
    for (mid, grades) in run_rows(run_dir, "select membrane_id, grades_met from membranes order by k"):
        res = run_dir / "results" / mid
        out.append((mid.rsplit("-", 1)[1], json.loads((res / "truth.json").read_text()),
                    json.loads((res / "metrics.json").read_text()), grades))
    return out


def test_a_capture_resumed_after_kill_9_images_the_same_membrane(tmp_path):
    """Killed as m2's capture starts (step 7): m1 and m2 are the uninterrupted run's. (A cast
    after the resume may differ: the chamber stood uncontrolled meanwhile, as on a real rig.)"""
    step = 7
    recipe = tmp_path / "two.yaml"
    recipe.write_text(RECIPE)
    whole = castrig("run", str(recipe), "--data", str(tmp_path / "whole"), "--seed", "1", "-q")
    assert whole.returncode == 0, whole.stdout + whole.stderr

    def capturing(run_dir: Path) -> bool:
        return bool(run_rows(run_dir, f"select 1 from journal where step_index = {step} and state = 'started'"))

    run_dir = run_then_kill_9(recipe, tmp_path / "killed", capturing, args=("--seed", "1"))
    assert not run_rows(run_dir, f"select 1 from journal where step_index = {step} and state = 'done'")
    done = castrig("resume", str(run_dir), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    resumed, uninterrupted = _membranes(run_dir), _membranes(only_run_dir(tmp_path / "whole"))
    assert len(resumed) == 2 and resumed == uninterrupted
