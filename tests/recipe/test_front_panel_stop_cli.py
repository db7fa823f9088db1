"""Someone at the bench presses the caster's STOP key mid-cast (the pump pauses; no alarm, no
error on the line), seen from the outside: ``castrig run`` notices the pump stopped short,
faults naming how much of the cast went out, records that membrane lost (its film is not the
recipe's), leaves the rig safe; ``castrig resume`` goes on with the next membrane."""

from __future__ import annotations

import json

import yaml

from conftest import castrig, only_run_dir, run_rows, with_sitecustomize

#: The caster's front panel: STOP pressed once, when the cast is 40 % out (a sitecustomize in the
#: run's process: the twin's pump emulator is what the key is on).
PRESS_STOP_AT_40_PCT = """
import castrig.sim.ne1000 as ne
_receive = ne.NE1000Emulator.receive_bytes
_pressed = []
def _receive_then_press(self, data, t):
    _receive(self, data, t)
    if not _pressed and self.name == "caster" and self.prompt == "I" and self.dispensed_ml(t) >= 0.04:
        _pressed.append(t)
        self.press_stop(t)
ne.NE1000Emulator.receive_bytes = _receive_then_press
"""

STEPS = [
    {"type": "condition", "setpoint_rh_pct": 60, "band_rh_pct": 1.5, "stable_for_s": 20, "timeout_s": 900},
    {"type": "prewet", "volume_ml": 0.2, "rate_ml_min": 1.0},
    {"type": "cast", "volume_ml": 0.1, "rate_ml_min": 0.5},
    {"type": "evaporate", "setpoint_rh_pct": 60, "duration_s": 600},
    {"type": "prewet", "volume_ml": 0.2, "rate_ml_min": 1.0},
    {"type": "cast", "volume_ml": 0.1, "rate_ml_min": 0.5},
    {"type": "evaporate", "setpoint_rh_pct": 60, "duration_s": 600},
]


def test_a_cast_stopped_at_the_pump_faults_the_run_loses_that_membrane_and_resume_goes_on(tmp_path):
    recipe = tmp_path / "two.yaml"
    recipe.write_text(yaml.safe_dump({"name": "two", "steps": STEPS}, sort_keys=False))
    data = tmp_path / "runs"

    run = castrig("run", str(recipe), "--data", str(data), **with_sitecustomize(tmp_path, PRESS_STOP_AT_40_PCT))
    said = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 3, said
    assert "faulted" in said and "caster dispensed 0.04" in said and "of 0.1 mL" in said, said
    assert "safe state verified" in said and "Traceback" not in said
    run_dir = only_run_dir(data)
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "faulted"
    membranes = dict(run_rows(run_dir, "SELECT membrane_id, status FROM membranes"))
    assert list(membranes.values()) == ["lost"], membranes
    (reason,) = [r for (r,) in run_rows(run_dir, "SELECT lost_reason FROM membranes")]
    assert "ended faulted" in reason, reason
    # the pump stopped where the key was pressed: nothing more went out of the caster
    caster_ml = [v for (v,) in run_rows(run_dir, "SELECT value FROM samples WHERE channel = 'caster_infused_ml'")]
    assert max(caster_ml) < 0.05

    again = castrig("resume", str(run_dir))
    assert again.returncode == 0, again.stdout + again.stderr
    membranes = dict(run_rows(run_dir, "SELECT membrane_id, status FROM membranes ORDER BY k"))
    assert list(membranes.values()) == ["lost", "made"], membranes


def test_a_queue_whose_run_lost_its_membrane_says_lost_in_its_target_column(tmp_path):
    """The same stop under `castrig queue`: the queue's target column said "claim1: 0 of 0 met
    (1 not judged)" of a membrane that was lost, as if it were only waiting for its analysis. It
    says "none judged (1 lost)", as the run's own summary says "lost: m1"."""
    recipe = tmp_path / "two.yaml"
    recipe.write_text(yaml.safe_dump({"name": "two", "grade": "claim1", "steps": STEPS[:4]}, sort_keys=False))
    data = tmp_path / "runs"

    q = castrig("queue", str(recipe), "--data", str(data), **with_sitecustomize(tmp_path, PRESS_STOP_AT_40_PCT))
    said = q.stdout + q.stderr
    assert q.returncode == 3 and "Traceback" not in said, said
    (state_file,) = data.glob("queue-*.json")
    item = json.loads(state_file.read_text())["items"][0]
    assert item["target"] == "claim1: none judged (1 lost)", item
    assert "not judged" not in item["target"] and "0 of 0" not in said, said
