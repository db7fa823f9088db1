"""A disk that fills as a micrograph is written, in an overnight queue: the run is a disk-full
fault and the queue stops there, its next recipes left pending -- never a cast onto a full disk."""

from __future__ import annotations

import json

from conftest import castrig

#: One membrane, then one section view (a 512 px twin section: ~263 kB of TIFF); the run's other
#: files stay under ~180 kB, so a file-size limit between the two fails only the micrograph.
CAST_AND_CAPTURE = """name: night
steps:
  - {type: cast, volume_ml: 0.05, rate_ml_min: 0.5}
  - {type: evaporate, setpoint_rh_pct: 60, duration_s: 5}
  - {type: capture, views: [section], fields: 1}
"""


def test_a_micrograph_refused_for_room_stops_the_queue_as_a_full_disk(tmp_path):
    """`castrig queue R --repeat 2` where a file may grow to 220 kB only (``ulimit -f``; a full disk
    is met the same way): the section TIFF's write failed inside numpy with no errno ("262144
    requested and 239168 written"), so the run was an ordinary fault, and the queue went on to
    cast the second membrane onto the same disk. Now the fault says disk full, the queue stops
    (exit 3, the rig safe) with the second recipe pending, and no part of the image is left."""
    recipe, data = tmp_path / "night.yaml", tmp_path / "runs"
    recipe.write_text(CAST_AND_CAPTURE)
    done = castrig("queue", str(recipe), "--repeat", "2", "--data", str(data), file_size=220_000, timeout_s=60)
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 3 and "Traceback" not in said, said[-3000:]
    assert "safe state verified" in said and "queue stopped (free space first)" in said, said[-3000:]
    (run_json,) = data.glob("*/run.json")  # the second membrane was never cast
    info = json.loads(run_json.read_text())
    assert info["outcome"] == "faulted" and info["outcome_reason"].startswith("disk full"), info["outcome_reason"]
    assert not any((run_json.parent / "images").glob("*"))  # no half-written TIFF, no temporary
    (state,) = data.glob("queue-*.json")
    assert [i["status"] for i in json.loads(state.read_text())["items"]] == ["faulted", "pending"]
