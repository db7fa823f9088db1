"""A night imaged through a folder camera (replays, micrographs brought from another microscope,
or dropped there by its software): each membrane is judged on its own images, across a kill -9
and a resume, and across the runs of a queue.

Met from outside: three membranes' micrographs in a folder camera's folder, a two-cast night
killed -9 in the hold after m1 was judged, then ``castrig resume``: the resumed process started
the folder over and m2 was measured and judged on m1's micrograph (the same file, the same
metrics, D 10.32 µm for both). In a queue each run opens the rig anew, and every run's m1 was
judged on the first run's micrograph too.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from conftest import ROOT, castrig, castrig_killed_9, run_rows, step_running

#: Two casts, each imaged (the reflected view) and judged, a hold between them (step 6, 0-based).
NIGHT = """\
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
#: The queue's next run: one cast, imaged and judged.
ONE = """\
name: folder-one
grade: claim1
support_pore_um: 5.0
steps:
  - {type: cast, volume_ml: 0.05, rate_ml_min: 0.5}
  - {type: capture, views: [reflected], fields: 1}
  - {type: analyse}
"""


def test_each_membrane_of_a_queue_resumed_after_kill_9_is_judged_on_its_own_folder_image(tmp_path, rendered_membrane):
    from castrig.tiffio import read_micrograph, write_micrograph

    image, pixel_um, _ = read_micrograph(rendered_membrane / "m000_reflected.tif")
    folder = tmp_path / "micrographs"
    folder.mkdir()
    for k, (y, x) in enumerate(((0, 0), (128, 128), (64, 0))):  # three membranes' top views: windows of one render
        write_micrograph(folder / f"m{k + 1}_reflected.tif", image[y:y + 384, x:x + 384], pixel_um)
    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    profile["devices"]["camera"] = {"model": "folder", "folder": str(folder)}
    (tmp_path / "folder.yaml").write_text(yaml.safe_dump(profile))
    (tmp_path / "night.yaml").write_text(NIGHT)
    (tmp_path / "one.yaml").write_text(ONE)
    data = tmp_path / "runs"

    castrig_killed_9("queue", str(tmp_path / "night.yaml"), str(tmp_path / "one.yaml"), "--data", str(data),
                     "--profile", str(tmp_path / "folder.yaml"), data=data, ready=step_running(6))  # in the night's hold, m1 judged
    (state,) = data.glob("queue-*.json")
    done = castrig("queue", "--resume", str(state))
    assert done.returncode == 0, done.stdout + done.stderr

    runs = [Path(i["run_dir"]) for i in json.loads(state.read_text())["items"]]
    assert len(json.loads((runs[0] / "run.json").read_text())["parts"]) == 2  # the night was resumed, not rerun
    seen = [(mid.rsplit("-", 1)[1], Path(src).name) for run in runs for mid, src in run_rows(
        run, "select json_extract(metadata_json, '$.membrane_id'), json_extract(metadata_json, '$.source_path') from images order by id")]
    assert seen == [("m1", "m1_reflected.tif"), ("m2", "m2_reflected.tif"), ("m1", "m3_reflected.tif")], seen
    d = [json.loads(m)["mean_pore_diameter_um"] for run in runs for (m,) in run_rows(run, "select metrics_json from membranes order by k")]
    assert len(d) == 3 and len(set(d)) == 3, d  # each its own measurement, not m1's again
