"""A run that images from a folder (replays, micrographs brought from another microscope), killed
-9 between two casts and resumed: each membrane is judged on its own images.

Met from outside: three membranes' micrographs in a folder camera's folder, a night of casts,
kill -9 in the hold after m1 was judged, ``castrig resume``: the resumed process started the
folder over, and m2 was measured and judged on m1's micrograph (the same file, the same metrics).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from conftest import ROOT, castrig, run_rows, run_then_kill_9, step_running

#: Two casts, each imaged (the reflected view) and judged, a hold between them (step 6, 0-based).
RECIPE = """\
name: folder-night
grade: claim1
support_pore_um: 5.0
steps:
  - {type: condition, setpoint_rh_pct: 70, band_rh_pct: 1.5, stable_for_s: 10, timeout_s: 900}
  - {type: prewet, volume_ml: 0.1, rate_ml_min: 1.0}
  - {type: cast, volume_ml: 0.1, rate_ml_min: 0.5}
  - {type: evaporate, setpoint_rh_pct: 70, duration_s: 60}
  - {type: capture, views: [reflected], fields: 1}
  - {type: analyse}
  - {type: wait, duration_s: 600, label: hold}
  - {type: prewet, volume_ml: 0.1, rate_ml_min: 1.0}
  - {type: cast, volume_ml: 0.1, rate_ml_min: 0.5}
  - {type: evaporate, setpoint_rh_pct: 70, duration_s: 60}
  - {type: capture, views: [reflected], fields: 1}
  - {type: analyse}
"""


def test_a_resumed_run_judges_the_next_membrane_on_the_next_folder_image(tmp_path, rendered_membrane):
    from castrig.tiffio import read_micrograph, write_micrograph

    image, pixel_um, _ = read_micrograph(rendered_membrane / "m000_reflected.tif")
    folder = tmp_path / "micrographs"
    folder.mkdir()
    for k, (y, x) in enumerate(((0, 0), (128, 128))):  # two membranes' top views: two windows of one render
        write_micrograph(folder / f"m{k + 1}_reflected.tif", image[y:y + 384, x:x + 384], pixel_um)
    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    profile["devices"]["camera"] = {"model": "folder", "folder": str(folder)}
    (tmp_path / "folder.yaml").write_text(yaml.safe_dump(profile))
    (tmp_path / "night.yaml").write_text(RECIPE)

    run_dir = run_then_kill_9(tmp_path / "night.yaml", tmp_path / "runs", step_running(6),
                              args=("--profile", str(tmp_path / "folder.yaml")))
    done = castrig("resume", str(run_dir), "-q")
    assert done.returncode == 0, done.stdout + done.stderr

    sources = run_rows(run_dir, "select json_extract(metadata_json, '$.membrane_id'), json_extract(metadata_json, '$.source_path')"
                                " from images order by id")
    assert [(mid.rsplit("-", 1)[1], Path(src).name) for mid, src in sources] == [
        ("m1", "m1_reflected.tif"), ("m2", "m2_reflected.tif")], sources
    d = {mid: json.loads(m)["mean_pore_diameter_um"] for mid, m in run_rows(run_dir, "select membrane_id, metrics_json from membranes")}
    assert len(d) == 2 and len(set(d.values())) == 2, d  # each its own measurement, not m1's twice
