"""`castrig check` says what `castrig run` would then do: a profile and recipe it calls valid
must not abort every run at its first tick (an outside tester found two that did).

* a setpoint outside ``control.rh_sensor_range_pct``: the loop drives the RH to where a reading
  counts as a broken sensor (``sensor_range``, exit 3 at once);
* ``control.sensor_frozen_s`` of 0.001 s: two equal readings a control period apart are "a
  frozen sensor" (exit 3 at once; 2 s aborted the twin's demo, its steady reading repeating).

Both are refused by `check` and by `run`, exit 2 naming the file, the field and the range, before
a run folder exists.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import ROOT, castrig_main


@pytest.mark.parametrize("edit, says", [
    (lambda c: c.update(rh_sensor_range_pct=[80, 100]),
     "steps[1] (condition).setpoint_rh_pct = 70: outside control.rh_sensor_range_pct = [80, 100]"),
    (lambda c: c.update(sensor_frozen_s=0.001),
     "control.sensor_frozen_s = 0.001: shorter than a steady sensor's reading may repeat (allowed: 0, off, or at least 30 s"),
])
def test_a_profile_that_would_abort_every_run_at_once_is_refused_by_check_and_run(tmp_path, capsys, edit, says):
    data = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    edit(data["control"])
    profile = tmp_path / "rig.yaml"
    profile.write_text(yaml.safe_dump(data))
    recipe = ROOT / "recipes" / "demo-short.yaml"
    for argv in (["check", str(recipe), "--profile", str(profile)],
                 ["run", str(recipe), "--profile", str(profile), "--data", str(tmp_path / "runs")]):
        done = castrig_main(capsys, *argv)
        said = " ".join(done.stderr.split())
        assert done.returncode == 2 and says in said and "Traceback" not in said, (argv, said)
    assert not (tmp_path / "runs").exists()


def test_a_control_period_inside_its_range_does_not_trip_mfc_following_by_itself(tmp_path, capsys):
    """``control.control_period_s: 60`` (allowed: up to 60): every run aborted at its first
    condition step on ``mfc_following``, whatever the seed: an MFC is read right after each new
    setpoint, and two readings 60 s apart counted as a minute of not following a 30 s window.
    The window is now 30 s or 3 control periods."""
    import json

    data = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    data["control"]["control_period_s"] = data["control"]["sample_period_s"] = 60
    for role in ("caster", "water_pump"):
        data["devices"][role]["safe_mode_s"] = 180
    data["control"]["sensor_frozen_s"] = 600
    profile = tmp_path / "rig.yaml"
    profile.write_text(yaml.safe_dump(data))
    assert castrig_main(capsys, "check", str(profile)).returncode == 0
    castrig_main(capsys, "run", str(ROOT / "recipes" / "demo-short.yaml"), "--profile", str(profile),
                 "--data", str(tmp_path / "runs"), "-q")
    (run_json,) = (tmp_path / "runs").glob("*/run.json")
    info = json.loads(run_json.read_text())
    assert "mfc_following" not in (info.get("outcome_reason") or ""), info["outcome_reason"]


def test_an_empty_serial_url_is_refused_by_check(tmp_path, capsys):
    """``url: ""`` passed `check`; `run` then could not open port '' (exit 5)."""
    data = yaml.safe_load((ROOT / "hw_profiles" / "sim-serial.yaml").read_text())
    data["devices"]["caster"]["link"]["url"] = ""
    profile = tmp_path / "rig.yaml"
    profile.write_text(yaml.safe_dump(data))
    done = castrig_main(capsys, "check", str(profile))
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "devices.caster.link.url = '': is empty" in said, said


def test_a_data_root_inside_a_run_folder_is_refused(finished_demo_run, tmp_path, capsys):
    """``--data RUN/control`` (another run's control channel): the run completed there, its folder
    and a catalog written into another run's folder, listed by no `castrig runs` of the outer
    data root (an outside tester). Refused, exit 2, nothing written."""
    import shutil

    data, run_id = finished_demo_run
    run_dir = Path(shutil.copytree(data / run_id, tmp_path / "runs" / run_id))
    before = sorted(p.name for p in run_dir.rglob("*"))
    for root, how in ((run_dir / "control", "lies inside the run folder"), (run_dir, "is the run folder")):
        done = castrig_main(capsys, "run", str(ROOT / "recipes" / "demo.yaml"), "--data", str(root), "-q")
        said = " ".join(done.stderr.split())
        assert done.returncode == 2 and f"--data {root}: {how} {run_dir}" in said, said
    assert sorted(p.name for p in run_dir.rglob("*")) == before


def test_a_camera_pixel_size_analyse_would_refuse_is_refused_by_check(tmp_path, capsys):
    """An outside tester: a profile could hold a camera pixel size of 50–100 µm (`calibrate camera
    --write` wrote one), every image of which `castrig analyse` refuses (0.0005–50 µm per pixel):
    the profile's bounds are analyse's."""
    data = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    data["devices"]["camera"]["pixel_size_um"] = 60
    profile = tmp_path / "rig.yaml"
    profile.write_text(yaml.safe_dump(data))
    done = castrig_main(capsys, "check", str(ROOT / "recipes" / "demo-short.yaml"), "--profile", str(profile))
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "camera" in said and "pixel_size_um" in said and "50" in said, said
