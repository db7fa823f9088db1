"""A pause inside a hold: its clock runs on, and so does what its ticks check (castrig.recipe.hold).

An evaporate: the film dries on, so the step's clock and its RH band check run on.

Met on the wall-clock twin: ``castrig pause`` 2.7 s into a 30 s evaporate at 75 %RH, resumed 12 s
later. ``castrig status`` said "left: step 0:00:28" all through the pause (the step's elapsed time
was not updated while paused), yet the step ended 30 s after its start, the pause counted; and the
film sat out of band for ~7 s of the pause (RH climbing from 46 to 73 %RH), while its record said
out of band 1.95 s: the band check ran only at the hold's own ticks, none while paused. What a pause
means for a hold is written once in :mod:`castrig.recipe.hold`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import castrig_main, run_dir_in_step, run_rows, run_status, start_castrig, wait_until

SETPOINT_RH_PCT, BAND_RH_PCT = 75.0, 3.0
RECIPE = f"""\
name: pause-in-an-evaporate
concentration_mg_ml: 5.0
support_pore_um: 5.0
steps:
  - {{type: cast, volume_ml: 0.05, rate_ml_min: 0.8}}
  - {{type: evaporate, setpoint_rh_pct: {SETPOINT_RH_PCT:g}, duration_s: 20, band_rh_pct: {BAND_RH_PCT:g}, max_out_of_band_s: 120}}
"""


@pytest.fixture
def fast_chamber_profile(wall_sim_profile: Path) -> Path:
    """The wall-clock twin with a 0.3 L chamber, a 2 s probe and a brisk loop: RH climbs from the
    room's 45 %RH into 75 ± 3 %RH in ~10 s, most of it inside a pause asked at the evaporate's start."""
    data = yaml.safe_load(wall_sim_profile.read_text())
    data["sim"].update(chamber_volume_l=0.3, sensor_tau_s=2.0)
    data["control"].update(kp=0.05, ki=0.01)
    wall_sim_profile.write_text(yaml.safe_dump(data, sort_keys=False))
    return wall_sim_profile


def test_a_pause_in_an_evaporate_counts_down_and_is_band_checked(tmp_path: Path, reap, capsys, fast_chamber_profile):
    recipe = tmp_path / "evaporate.yaml"
    recipe.write_text(RECIPE)
    data = tmp_path / "data"
    run = reap(start_castrig("run", str(recipe), "--profile", str(fast_chamber_profile), "--data", str(data), "-q"))
    run_dir = run_dir_in_step(data, "evaporate", timeout_s=60, what="the evaporate under way")
    assert castrig_main(capsys, "pause", str(run_dir)).returncode == 0
    wait_until(lambda: run_status(run_dir).get("state") == "paused", timeout_s=30, what="paused")

    def shown() -> dict:
        return json.loads(castrig_main(capsys, "status", str(run_dir), "--json").stdout)

    first = shown()
    later = wait_until(lambda: (s := shown())["step_left_s"] <= first["step_left_s"] - 1.5 and s, timeout_s=6,
                       what=f"the step's time left counting down while paused (stood at {first['step_left_s']} s)")
    assert later["status"] == "paused" and "runs on while paused" in (later.get("detail") or ""), later
    line = castrig_main(capsys, "status", str(run_dir)).stdout
    assert "paused" in line and "runs on while paused" in line, line
    # the film sits out of band while RH climbs; resumed once it is in
    wait_until(lambda: abs((run_status(run_dir).get("rh_pct") or 0) - SETPOINT_RH_PCT) <= BAND_RH_PCT, timeout_s=30,
               what="RH in band")
    assert castrig_main(capsys, "resume-paused", str(run_dir)).returncode == 0
    assert run.wait(timeout=60) == 0, run.stderr.read()[-3000:]  # type: ignore[union-attr]

    (evap,) = [json.loads(d) for (d,) in run_rows(run_dir, "SELECT data_json FROM journal WHERE step_index = 1 AND state = 'done'")]
    [(t0,)] = run_rows(run_dir, "SELECT t_s FROM journal WHERE step_index = 1 AND state = 'started'")
    [(t1,)] = run_rows(run_dir, "SELECT t_s FROM journal WHERE step_index = 1 AND state = 'done'")
    assert t1 - t0 == pytest.approx(20.0, abs=1.5)  # the pause counted toward its 20 s, as status said
    assert evap.get("paused_s", 0) >= 4.0, evap  # its record says it was paused, and how long
    # out of band as the samples (one a tick) saw it, the pause's included: the time up to each
    # reading out of band, as the step counts it
    samples = run_rows(run_dir, f"SELECT t_s, value FROM samples WHERE channel = 'rh_near_pct' AND t_s > {t0} AND t_s <= {t1} "
                                "ORDER BY t_s")
    times = [t0] + [t for t, _ in samples]
    out_s = sum(t - before for before, (t, v) in zip(times, samples) if abs(v - SETPOINT_RH_PCT) > BAND_RH_PCT)
    assert out_s >= 5.0, samples  # (the scenario: the film out of band through much of the pause)
    assert evap["out_of_band_s"] == pytest.approx(out_s, abs=1.5), (evap, samples)
    [(process,)] = run_rows(run_dir, "SELECT process_json FROM membranes")
    assert json.loads(process)["evaporation"]["paused_s"] == pytest.approx(evap["paused_s"])


def test_a_pause_in_a_condition_longer_than_its_time_out_goes_on_once_rh_held_the_band(tmp_path: Path, reap, capsys,
                                                                                         fast_chamber_profile):
    """``castrig pause`` at a condition's start, resumed 16 s later (its time-out 12 s): RH had
    come into the band and held it through the pause, yet the run faulted at the resume ("RH did
    not settle ... in 12 s"): the pause counted toward the time-out, but the band was checked only
    at the hold's own ticks, so its stable_for_s started afresh at the resume. Now it is checked
    through the pause: the condition is settled at the resume and the run goes on."""
    recipe = tmp_path / "condition.yaml"
    recipe.write_text("name: pause-in-a-condition\nsteps:\n"
                      f"  - {{type: condition, setpoint_rh_pct: {SETPOINT_RH_PCT:g}, band_rh_pct: 5, "
                      "stable_for_s: 3, timeout_s: 12}\n  - {type: purge, duration_s: 1}\n")
    data = tmp_path / "data"
    run = reap(start_castrig("run", str(recipe), "--profile", str(fast_chamber_profile), "--data", str(data), "-q"))
    run_dir = run_dir_in_step(data, "condition", timeout_s=60, what="the condition under way")
    assert castrig_main(capsys, "pause", str(run_dir)).returncode == 0
    wait_until(lambda: run_status(run_dir).get("state") == "paused", timeout_s=30, what="paused")
    [(t0,)] = run_rows(run_dir, "SELECT t_s FROM journal WHERE step_index = 0 AND state = 'started'")
    wait_until(lambda: run_status(run_dir).get("t_s", 0) > t0 + 16, timeout_s=40, what="paused past the time-out")
    assert castrig_main(capsys, "resume-paused", str(run_dir)).returncode == 0
    assert run.wait(timeout=60) == 0, "\n".join(map(str, run_rows(run_dir, "SELECT t_s, kind, message FROM events ORDER BY id")))
    (done,) = [json.loads(d) for (d,) in run_rows(run_dir, "SELECT data_json FROM journal WHERE step_index = 0 AND state = 'done'")]
    assert done["settled_after_s"] > 12, done  # (the pause counted: it settled during it)
