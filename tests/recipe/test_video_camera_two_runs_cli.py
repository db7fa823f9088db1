"""Two `castrig run`s, one after the other, on a camera that replays a video file (an OpenCV
source that is a path: a microscope's recording of its membranes): each run takes only frames no
earlier run of the data root took, as a folder camera's runs do
(tests/recipe/test_folder_camera_two_runs_cli.py). Before, each run opened the file at its first
frame, and the second run's membrane was imaged with the first run's frame, exit 0, no word."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, castrig, run_rows

#: One cast, imaged (its top view): the frame is what the test follows.
ONE = """\
name: video-one
support_pore_um: 5.0
steps:
  - {type: cast, volume_ml: 0.05, rate_ml_min: 0.5}
  - {type: capture, views: [reflected], fields: 1}
"""


def _frames(run_dir: Path) -> list[int]:
    return [json.loads(m)["frame_index"] for (m,) in run_rows(run_dir, "SELECT metadata_json FROM images ORDER BY id")]


def test_a_second_run_on_a_video_file_camera_takes_only_frames_the_first_did_not(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    video = tmp_path / "membranes.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (32, 24))
    assert writer.isOpened()
    for value in (40, 200):  # two membranes' frames
        writer.write(np.full((24, 32, 3), value, np.uint8))
    writer.release()
    profile = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    profile["devices"]["camera"] = {"model": "opencv", "source": str(video), "pixel_size_um": 0.25}
    (tmp_path / "video.yaml").write_text(yaml.safe_dump(profile))
    (tmp_path / "one.yaml").write_text(ONE)
    data = tmp_path / "runs"

    def run() -> tuple[int, Path, str]:
        before = set(data.glob("*/")) if data.is_dir() else set()
        done = castrig("run", str(tmp_path / "one.yaml"), "--data", str(data), "--profile", str(tmp_path / "video.yaml"), "-q")
        (run_dir,) = set(data.glob("*/")) - before
        return done.returncode, run_dir, done.stdout + done.stderr

    code, first, said = run()
    assert code == 0, said
    assert _frames(first) == [0]
    code, second, said = run()
    assert code == 0, said
    assert _frames(second) == [1]  # (was [0]: the first run's frame)
    events = [m for (m,) in run_rows(second, "SELECT message FROM events WHERE kind = 'camera'")]
    assert len(events) == 1 and first.name in events[0] and "frame 0" in events[0], events
    # (none left: the capture says so, as a folder's does -- tests/devices/test_cameras.py, without a third run)
