"""`castrig check` says what `castrig run` would then do: a profile and recipe it calls valid
must not abort every run at its first tick (an outside tester found two that did).

* a setpoint outside ``control.rh_sensor_range_pct``: the loop drives the RH to where a reading
  counts as a broken sensor (``sensor_range``, exit 3 at once);
* ``control.sensor_frozen_s`` of 0.001 s: two equal readings a control period apart are "a
  frozen sensor" (exit 3 at once).

Both are refused by `check` and by `run`, exit 2 naming the file, the field and the range, before
a run folder exists.
"""

from __future__ import annotations

import pytest
import yaml

from conftest import ROOT, castrig_main


@pytest.mark.parametrize("edit, says", [
    (lambda c: c.update(rh_sensor_range_pct=[80, 100]),
     "steps[1] (condition).setpoint_rh_pct = 70: outside control.rh_sensor_range_pct = [80, 100]"),
    (lambda c: c.update(sensor_frozen_s=0.001),
     "control.sensor_frozen_s = 0.001: shorter than 10 control periods"),
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
