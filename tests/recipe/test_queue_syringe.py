"""`castrig queue`: the syringes must hold what the whole queue dispenses (audit 4).

A syringe's capacity (``syringe_volume_ml``) was checked per run only: ``castrig queue r.yaml
--repeat 2`` dispensed twice what one run does from a syringe that held one run's worth, with
nobody there to refill it (there is no refill step). Now the queue refuses before it starts,
naming the pump, the total and what its syringe holds; ``--resume`` counts what is left.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from conftest import castrig, castrig_main

ROOT = Path(__file__).resolve().parents[2]
SHORT = ROOT / "tests" / "data" / "short.yaml"  # pre-wet 0.2 mL (water_pump), cast 0.1 mL (caster)


def _profile(tmp_path: Path, **held: float) -> Path:
    """The twin's profile with ``syringe_volume_ml`` set for the pumps named (caster=…, water_pump=…)."""
    data = yaml.safe_load((ROOT / "hw_profiles" / "sim.yaml").read_text())
    for role, ml in held.items():
        data["devices"][role]["syringe_volume_ml"] = ml
    path = tmp_path / "syr.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_queue_repeats_beyond_the_caster_syringe_are_refused_before_anything_runs(tmp_path, capsys):
    profile = _profile(tmp_path, caster=0.25)
    data = tmp_path / "runs"
    assert castrig_main(capsys, "check", SHORT, "--profile", profile).returncode == 0  # one run fits
    done = castrig_main(capsys, "queue", SHORT, "--repeat", "3", "--profile", profile, "--data", data)
    assert done.returncode == 2, done.stdout + done.stderr
    err = " ".join(done.stderr.split())
    assert "devices.caster" in err and "dispense 0.3 mL" in err and f"{SHORT} 0.1 mL × 3" in err
    assert "devices.caster.syringe_volume_ml = 0.25 mL" in err and str(profile) in err
    assert "only the first 2 of them fit" in err and "--repeat" in err and "split the queue" in err
    assert "water_pump" not in err  # its syringe is not stated: not checked
    assert not data.exists() or not list(data.iterdir())  # no state file, no run folder


def test_several_recipes_together_beyond_the_water_syringe_are_refused(tmp_path, capsys):
    other = tmp_path / "other.yaml"
    other.write_text(SHORT.read_text().replace("name: short", "name: other").replace("volume_ml: 0.2", "volume_ml: 0.25"))
    profile = _profile(tmp_path, water_pump=0.4, caster=1.0)
    data = tmp_path / "runs"
    done = castrig_main(capsys, "queue", SHORT, other, "--profile", profile, "--data", data)
    assert done.returncode == 2, done.stdout + done.stderr
    err = " ".join(done.stderr.split())
    assert "devices.water_pump" in err and "dispense 0.45 mL" in err and f"{SHORT} 0.2 mL" in err and f"{other} 0.25 mL" in err
    assert "syringe_volume_ml = 0.4 mL" in err and "only the first fits" in err and "devices.caster" not in err
    assert not data.exists() or not list(data.iterdir())


def test_queue_resume_counts_what_is_left_against_a_refilled_syringe(tmp_path, capsys):
    """A queue stopped after its first run, two runs left: the three together would not fit the
    0.25 mL caster syringe, the two left do (the operator refills it before --resume), so the
    resume runs them. With three left, --resume refuses, saying it counted only what is left."""
    profile = _profile(tmp_path, caster=0.25)
    data = tmp_path / "runs"
    first = castrig("queue", str(SHORT), "--profile", str(profile), "--data", str(data), "--seed", "3")
    assert first.returncode == 0, first.stdout + first.stderr
    (state_path,) = data.glob("queue-*.json")
    state = json.loads(state_path.read_text())
    (done_item,) = state["items"]
    pending = {**done_item, "status": "pending", "run_dir": None, "outcome": "not run", "started_utc": None}

    def with_left(n: int) -> Path:
        path = data / f"queue-left{n}.json"
        items = [done_item] + [{**pending, "repeat": k + 2, "seed": 4 + k} for k in range(n)]
        path.write_text(json.dumps({**state, "items": items, "stopped": "SIGTERM: queue stopped before short.yaml started"}))
        return path

    three = with_left(3)
    refused = castrig_main(capsys, "queue", "--resume", str(three))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    err = " ".join(refused.stderr.split())
    assert "devices.caster" in err and "the runs left to make (3)" in err and "dispense 0.3 mL" in err
    assert "counts only what is left" in err and "refill" in err and "Traceback" not in err
    assert [i["status"] for i in json.loads(three.read_text())["items"]] == ["completed", "pending", "pending", "pending"]

    two = with_left(2)
    resumed = castrig("queue", "--resume", str(two), timeout_s=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [i["outcome"] for i in json.loads(two.read_text())["items"]] == ["completed"] * 3
