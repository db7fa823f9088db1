"""A condition step's ramp (``ramp_rh_pct_per_min``), from the outside: the run's recorded
setpoint moves at the asked rate from the setpoint the step before left, RH follows it, and the
step settles only after the ramp and the hold. A condition step that can never settle — a hold
longer than its timeout, or a ramp from a known setpoint too slow for it — is refused by
``castrig check`` and ``castrig run`` before a run folder exists (it used to fault the run there,
hours in)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, castrig, castrig_main, only_run_dir, run_rows


def _recipe(tmp_path, steps, name="ramp"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "steps": steps}, sort_keys=False))
    return path


HOLD_50 = {"type": "condition", "setpoint_rh_pct": 50, "band_rh_pct": 1.0, "stable_for_s": 60, "timeout_s": 1800}
RAMP_30 = {"type": "condition", "setpoint_rh_pct": 30, "ramp_rh_pct_per_min": 4, "band_rh_pct": 1.0,
           "stable_for_s": 60, "timeout_s": 900}


#: the MFC pair's PID; the chamber's own controller; that controller under castrig's outer loop on
#: the near-membrane sensor (the gains `castrig tune rh --profile hw_profiles/sim-chamber.yaml` gives)
PROFILES = {"mfc": ("sim.yaml", {}), "chamber": ("sim-chamber.yaml", {}),
            "chamber trimmed": ("sim-chamber.yaml", {"chamber_kp": 1.073, "chamber_ki": 0.02708})}


@pytest.mark.parametrize("rig", list(PROFILES))
def test_the_setpoint_ramps_at_its_rate_from_the_last_setpoint_and_rh_follows(tmp_path, rig):
    name, gains = PROFILES[rig]
    profile = yaml.safe_load((ROOT / "hw_profiles" / name).read_text())
    profile["control"] = {**profile.get("control", {}), **gains}
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(profile))
    recipe = _recipe(tmp_path, [HOLD_50, RAMP_30])
    data = tmp_path / "runs"
    done = castrig("run", str(recipe), "--profile", str(tmp_path / "rig.yaml"), "--data", str(data), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    run = only_run_dir(data)
    t0 = next(t for t, i, s in run_rows(run, "SELECT t_s, step_index, state FROM journal") if i == 1 and s == "started")
    settled = [json.loads(d)["settled_after_s"] for i, s, d in run_rows(run, "SELECT step_index, state, data_json FROM journal")
               if i == 1 and s == "done"]
    sp = np.array(run_rows(run, "SELECT t_s, value FROM samples WHERE channel = 'rh_setpoint_pct' ORDER BY t_s"))
    rh = dict(run_rows(run, "SELECT t_s, value FROM samples WHERE channel = 'rh_near_pct'"))

    # from 50 %RH (the hold's setpoint, not the measured RH) down to 30 at 4 %RH/min: 300 s
    on_ramp = sp[(sp[:, 0] > t0 + 5) & (sp[:, 0] < t0 + 295)]
    slope_per_min, start = np.polyfit(on_ramp[:, 0] - t0, on_ramp[:, 1], 1)
    assert slope_per_min * 60 == pytest.approx(-4.0, abs=0.02)
    assert start == pytest.approx(50.0, abs=0.1)
    assert np.all(sp[sp[:, 0] > t0 + 301, 1] == 30.0)
    # RH follows the ramp once the loop has picked it up (its second half): at its rate, close behind
    late = np.array([(t, rh[t], v) for t, v in on_ramp if t in rh and t > t0 + 150])
    assert np.polyfit(late[:, 0], late[:, 1], 1)[0] * 60 == pytest.approx(-4.0, rel=0.1)
    assert np.max(np.abs(late[:, 1] - late[:, 2])) < 1.5
    if rig.startswith("chamber"):  # trimmed: the outer loop moves the chamber's own set point off the ramp
        sent = dict(run_rows(run, "SELECT t_s, value FROM samples WHERE channel = 'chamber_setpoint_rh_pct'"))
        off = max(abs(sent[t] - v) for t, v in on_ramp if t in sent)
        assert (off > 0.5) if gains else (off < 0.06), off
    # settled only after the ramp and the 60 s hold
    assert settled and settled[0] >= 300 + 60


def test_a_hold_longer_than_the_timeout_is_refused_before_anything_runs(tmp_path, capsys):
    recipe = _recipe(tmp_path, [{**HOLD_50, "stable_for_s": 600, "timeout_s": 300}])
    data = tmp_path / "runs"

    for args in (("check", str(recipe)), ("run", str(recipe), "--data", str(data))):
        got = castrig_main(capsys, *args) if args[0] == "check" else castrig(*args)  # (check: in-process)
        assert got.returncode == 2, got.stdout + got.stderr
        assert str(recipe) in got.stderr and "steps[0].stable_for_s = 600" in got.stderr
        assert "timeout_s = 300" in got.stderr and "allowed: stable_for_s <= timeout_s" in got.stderr
        assert "Traceback" not in got.stderr
    assert not data.exists() or not any(data.iterdir())


def test_a_ramp_too_slow_for_its_timeout_is_refused_naming_the_bound(tmp_path, capsys):
    slow = {**RAMP_30, "timeout_s": 300}  # 300 s of ramp from 50 %RH, then 60 s of hold
    got = castrig_main(capsys, "check", str(_recipe(tmp_path, [HOLD_50, slow])))
    assert got.returncode == 2, got.stdout + got.stderr
    assert "steps[1].timeout_s = 300" in got.stderr and "from 50 %RH (step 1's) to 30 %RH at 4 %RH/min" in got.stderr
    assert "timeout_s >= 360" in got.stderr and "ramp_rh_pct_per_min >= 5" in got.stderr

    # each bound the message quotes passes itself
    for fixed in ({**slow, "timeout_s": 360}, {**slow, "ramp_rh_pct_per_min": 5}):
        ok = castrig_main(capsys, "check", str(_recipe(tmp_path, [HOLD_50, fixed], name="fixed")))
        assert ok.returncode == 0, ok.stdout + ok.stderr
    # after a purge the ramp starts from the measured RH, unknown before the run: not refused
    purged = castrig_main(capsys, "check", str(_recipe(tmp_path, [HOLD_50, {"type": "purge", "duration_s": 60}, slow], name="purged")))
    assert purged.returncode == 0, purged.stdout + purged.stderr


@pytest.fixture(scope="module")
def crashed_before_step_2(tmp_path_factory):
    """A run of a hold then a long wait, killed -9 in the wait: made once for this module, each
    test resumes its own copy (the three recipes they record are this run's with a step added)."""
    from conftest import run_then_kill_9, step_running

    folder = tmp_path_factory.mktemp("crashed")
    recipe = _recipe(folder, [HOLD_50, {"type": "wait", "duration_s": 36000}])
    return run_then_kill_9(recipe, folder / "runs", step_running(1, after_s=60))


@pytest.mark.parametrize("bad", [
    pytest.param({**HOLD_50, "stable_for_s": 600, "timeout_s": 300}, id="hold longer than timeout"),
    pytest.param({**RAMP_30, "timeout_s": 300}, id="ramp too slow"),
    pytest.param({"type": "analyse"}, id="analyse with no capture of its own"),  # the older rule, same path
])
def test_resume_of_a_run_whose_recorded_recipe_would_stop_there_again_is_refused_saying_why(tmp_path, bad, crashed_before_step_2, capsys):
    """A run started by an earlier castrig, which took a recipe that can never get past one of
    its steps, crashed before that step: `castrig resume` refuses it before the rig is touched,
    naming the step and saying why, and what the run made stays (it used to fault at that step).
    The earlier castrig is stood for by the run's recorded recipe, rewritten after the crash (in
    a copy of one crashed run the three share: its crash is the same for each)."""
    import shutil

    run = Path(shutil.copytree(crashed_before_step_2, tmp_path / "runs" / crashed_before_step_2.name))
    info = json.loads((run / "run.json").read_text())
    info["recipe"]["steps"].append(bad)
    (run / "run.json").write_text(json.dumps(info))
    journal = run_rows(run, "SELECT count(*) FROM journal")

    got = castrig_main(capsys, "resume", str(run))
    assert got.returncode == 2, got.stdout + got.stderr
    said = " ".join(got.stderr.split())
    assert "steps[2]" in said and "cannot be resumed: this castrig refuses its recipe" in said, said
    assert "Traceback" not in said
    assert run_rows(run, "SELECT count(*) FROM journal") == journal  # nothing driven, nothing recorded
