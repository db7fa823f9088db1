"""Two `castrig run`s, one after the other, on one folder camera (the microscope's software drops
its micrographs into the folder): each run takes only images no earlier run of the data root
took. Before, each run started at the folder's first file, and the second run's membrane was
imaged with the first run's micrograph (the same file, the same sha256), exit 0, no word."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

from conftest import ROOT, castrig, run_rows

#: One cast, imaged (its top view): the image is what the test follows.
ONE = """\
name: folder-one
support_pore_um: 5.0
steps:
  - {type: cast, volume_ml: 0.05, rate_ml_min: 0.5}
  - {type: capture, views: [reflected], fields: 1}
"""


def _images(run_dir: Path) -> list[str]:
    return [Path(json.loads(m)["source_path"]).name for (m,) in run_rows(run_dir, "SELECT metadata_json FROM images ORDER BY id")]


def test_a_second_run_on_a_folder_camera_takes_only_images_the_first_did_not(tmp_path: Path) -> None:
    from castrig.tiffio import write_micrograph

    folder = tmp_path / "micrographs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for k in (1, 2):  # two membranes' micrographs, the second's dropped after the first run
        write_micrograph(folder / f"m{k}_reflected.tif", rng.integers(0, 255, (32, 32), dtype=np.uint8), 0.25)
    # the folder as people write it, relative to where they start castrig: the second run is
    # started elsewhere and names it otherwise (its records must still say it is the same folder)
    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    profile["devices"]["camera"] = {"model": "folder", "folder": "micrographs"}
    (tmp_path / "folder.yaml").write_text(yaml.safe_dump(profile))
    (tmp_path / "elsewhere").mkdir()
    profile["devices"]["camera"]["folder"] = "../micrographs"
    (tmp_path / "elsewhere" / "folder.yaml").write_text(yaml.safe_dump(profile))
    (tmp_path / "one.yaml").write_text(ONE)
    data = tmp_path / "runs"

    def run(cwd: Path = tmp_path) -> tuple[int, Path, str]:
        before = set(data.glob("*/")) if data.is_dir() else set()
        done = castrig("run", str(tmp_path / "one.yaml"), "--data", str(data), "--profile", str(cwd / "folder.yaml"), "-q",
                       cwd=cwd)
        (run_dir,) = set(data.glob("*/")) - before
        return done.returncode, run_dir, done.stdout + done.stderr

    code, first, said = run()
    assert code == 0, said
    assert _images(first) == ["m1_reflected.tif"]
    code, second, said = run(tmp_path / "elsewhere")
    assert code == 0, said
    assert _images(second) == ["m2_reflected.tif"]  # (was m1_reflected.tif: the first run's micrograph)
    events = [m for (m,) in run_rows(second, "SELECT message FROM events WHERE kind = 'camera'")]
    assert len(events) == 1 and first.name in events[0] and "m1_reflected.tif" in events[0], events

    # none left that no earlier run took: the capture says so (the rig stopped safe), never m1's or m2's again
    code, third, said = run()
    assert code == 3 and _images(third) == [], said
    assert "were taken by earlier runs" in said and "m2_reflected.tif" in said, said
