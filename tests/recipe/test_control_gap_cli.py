"""A run on the wall clock whose process is stopped for a while (SIGSTOP, as a debugger or a
suspended computer stops it): RH went uncontrolled and the pumps unwatched, and the record said
nothing of it. Now the first tick after the gap records a ``control_gap`` warning with its length."""

from __future__ import annotations

import json
import os
import signal
import time

import yaml

from conftest import only_run_dir, run_rows, start_castrig, step_running, wait_until


def test_a_run_stopped_for_seconds_records_the_gap_in_control(tmp_path, wall_sim_profile):
    profile = wall_sim_profile
    rig = yaml.safe_load(profile.read_text())
    rig["control"]["control_period_s"] = 0.5
    profile.write_text(yaml.safe_dump(rig))
    recipe = {"name": "stopped", "steps": [
        {"type": "evaporate", "setpoint_rh_pct": 50, "duration_s": 4, "band_rh_pct": 20, "max_out_of_band_s": 60}]}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    data = tmp_path / "runs"
    proc = start_castrig("run", str(tmp_path / "recipe.yaml"), "--profile", str(profile), "--data", str(data), "-q")
    try:
        def evaporating():
            assert proc.poll() is None, proc.communicate()
            return (d := only_run_dir(data)) is not None and step_running(0, after_s=1)(d) and d

        run_dir = wait_until(evaporating, what="the evaporation under way")
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(6.0)  # over GAP_MIN_S (5 s) and 5 control periods
        os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, (out, err[-2000:])
    gaps = [json.loads(d) for (d,) in run_rows(run_dir, "select data_json from events where source = 'control_gap'")]
    assert len(gaps) == 1 and 5.5 <= gaps[0]["gap_s"] < 30, gaps
    others = run_rows(run_dir, "select message from events where kind = 'warning' and source != 'control_gap'")
    assert others == [], others
