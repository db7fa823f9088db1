"""On a real rig: the history is the store's runs, and the next recipe is proposed, not run."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from castrig.analysis.verdict import judge
from castrig.cli.main import main
from castrig.explore import make_settings
from castrig.explore.rig import propose_next, store_history
from castrig.explore.space import apply_point, default_template
from castrig.recipe.model import Recipe
from castrig.store import RunInfo, open_store

ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / "hw_profiles" / "sim.yaml"


def _stored_run(root: Path, n: int, rh: float, d: float) -> None:
    """A completed run as a rig leaves it: its recipe, profile and measured results."""
    point = {"rh_pct": rh, "concentration_mg_ml": 5.0, "cast_volume_ml": 0.2, "total_flow_slpm": 1.5}
    recipe = apply_point(default_template(10.0), point, name=f"hand-{n}", grade="claim1")
    store = open_store(root)
    rec = store.create_run(RunInfo(run_id=f"20260101-00000{n}-hand", recipe_name=recipe["name"], recipe_path="", profile_name="rig-1",
                                   profile_path="", software_version="t", seed=None, operator="ann", started_utc="2026-01-01T00:00:01Z",
                                   recipe=recipe, profile={"control": {"total_flow_slpm": 1.5}}))
    metrics = {"opening_ratio": 0.6, "mean_pore_diameter_um": d, "pore_diameter_std_um": 0.1 * d, "through_pore_fraction": 0.9,
               "mean_thickness_um": 1.0, "thickness_std_um": 0.1, "support_pore_diameter_um": 10.0, "pore_count": 300,
               "penetration_depth_um": 1.0, "penetration_fraction": 0.2, "pore_communication": 0.5, "support_continuity": 0.6}  # claim 1 from the section (issue 16)
    verdict = judge(metrics).to_dict()
    rec.save_result(1.0, "metrics", metrics)
    rec.save_result(1.0, "verdict", verdict)
    rec.update_info(outcome="completed")
    store.index_run(rec, verdict["grades_met"])
    rec.close()


def test_store_runs_are_the_history_and_proposals_are_written_not_run(tmp_path):
    root = tmp_path / "data"
    for n, (rh, d) in enumerate([(70, 3.3), (80, 5.0), (85, 6.5)]):
        _stored_run(root, n, rh, d)
    hist = store_history(root, grade="claim1", target_d_um=8.0)
    assert [h.params["rh_pct"] for h in hist] == [70, 80, 85]
    assert all(h.params["total_flow_slpm"] == 1.5 for h in hist)
    assert hist[2].outcome.score < hist[0].outcome.score  # 6.5 µm is nearer 8 µm than 3.3 µm
    s = make_settings(grade="claim1", target_d_um=8.0, profile_path=SIM, seed=2)
    p1, recipe, profile = propose_next(s, hist, tmp_path / "f")
    p2, _, _ = propose_next(s, hist, tmp_path / "g")
    assert p1 == p2  # reproducible from the seed and the store
    taken = Recipe.model_validate(yaml.safe_load(recipe.read_text()))
    assert (taken.grade, taken.name) == ("claim1", "explore-f-p0003")  # (its study's folder names the run: not explore-claim1-p0003)
    assert yaml.safe_load(profile.read_text())["control"]["total_flow_slpm"] == round(p1["total_flow_slpm"], 4)
    assert len(list(root.glob("*/run.json"))) == 3  # nothing was run


def test_explore_with_a_wall_clock_profile_proposes_and_asks(tmp_path, capsys, monkeypatch):
    prof = yaml.safe_load(SIM.read_text())
    prof["clock"] = "wall"
    rig = tmp_path / "rig.yaml"
    rig.write_text(yaml.safe_dump(prof))
    root = tmp_path / "data"
    _stored_run(root, 0, 70, 3.3)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)  # no operator at the keyboard: propose only
    code = main(["explore", "--target-grade", "claim1", "--target-d-um", "8", "--profile", str(rig), "--data", str(root),
                 "--folder", str(tmp_path / "f")])
    out = capsys.readouterr().out
    assert code == 0 and "proposal from 1 stored runs" in out and "castrig run" in out
    assert (tmp_path / "f" / "proposals" / "p0001" / "recipe.yaml").is_file()
    assert len(list(root.glob("*/run.json"))) == 1


def _two_cast_run(root: Path, d_um: tuple[float, float]) -> str:
    """A completed run of docs/examples/two-rh-screening.yaml as the runner leaves it: m1 cast at
    62 %RH (step 3), m2 at 75 %RH (step 9), each judged with its own D."""
    from castrig.store import MembraneRecord
    from conftest import membrane_metrics

    recipe = yaml.safe_load((ROOT / "docs" / "examples" / "two-rh-screening.yaml").read_text())
    assert [i for i, s in enumerate(recipe["steps"]) if s["type"] == "cast"] == [3, 9]
    run_id = "20260101-000001-screen-62-75"
    store = open_store(root)
    rec = store.create_run(RunInfo(run_id=run_id, recipe_name=recipe["name"], recipe_path="", profile_name="rig-1",
                                   profile_path="", software_version="t", seed=None, operator="ann",
                                   started_utc="2026-01-01T00:00:01Z", recipe=recipe, profile={"control": {"total_flow_slpm": 2.0}}))
    for k, (cast_step, d) in enumerate(zip((3, 9), d_um), 1):
        m = membrane_metrics(d)
        verdict = judge(m)
        mid = f"{run_id}-m{k}"
        rec.save_result(1.0, f"{mid}/metrics", m)
        rec.save_result(1.0, f"{mid}/verdict", verdict.to_dict())
        rec.save_membrane(MembraneRecord(mid, k, cast_step, "judged", support_position=k, metrics=m, verdict=verdict.to_dict(),
                                         grades_met=list(verdict.met), target_grade="claim1", target_met=True, lot_id=mid))
    rec.update_info(outcome="completed", ended_utc="2026-01-01T08:00:00Z")
    store.index_run(rec, ["claim1"])
    rec.close()
    return run_id


def test_a_stored_run_of_two_casts_is_two_points_and_the_one_that_met_is_named(tmp_path):
    """Audit 4: a run of two casts at 62 and 75 %RH was one point, its first cast's settings beside
    its last membrane's D (so 'met at D 8 µm' came with 62 %RH, the cast that made 4 µm), the
    message named the run ('run its recipe again': two casts) and --out was not written. Now each
    judged membrane is a point at its own cast's settings; the hit names the membrane and writes
    one cast at its settings to FOLDER/found.yaml and --out."""
    from conftest import castrig

    root = tmp_path / "data"
    run_id = _two_cast_run(root, (4.0, 8.0))
    hist = store_history(root, grade="claim1", target_d_um=8.0)
    assert sorted((h.membrane_id, h.params["rh_pct"], h.outcome.d_um) for h in hist) == \
        [(f"{run_id}-m1", 62.0, 4.0), (f"{run_id}-m2", 75.0, 8.0)]
    for target, k, rh in ((8.0, 2, 75.0), (4.0, 1, 62.0)):
        out = tmp_path / f"found-{k}.yaml"
        done = castrig("explore", "--target-grade", "claim1", "--target-d-um", str(target), "--profile",
                       str(ROOT / "docs" / "examples" / "wall-clock-rig.yaml"), "--data", str(root), "--folder",
                       str(tmp_path / f"f{k}"), "--out", str(out))
        assert done.returncode == 0, done.stdout + done.stderr
        flat = " ".join(done.stdout.split())
        assert f"met: membrane {run_id}-m{k} made claim1" in flat, flat
        found = Recipe.model_validate(yaml.safe_load(out.read_text()))
        casts = [s for s in found.steps if s.type == "cast"]
        evaporates = [s for s in found.steps if s.type == "evaporate"]
        assert len(casts) == 1 and [s.setpoint_rh_pct for s in evaporates] == [rh]
        assert out.read_text() == (tmp_path / f"f{k}" / "found.yaml").read_text()


def test_a_sigterm_as_the_confirmed_runs_rig_opens_aborts_it_safe_as_castrig_run_does(tmp_path, terminal_run, wall_sim_profile, monkeypatch):
    """An outside tester: ``castrig explore`` on a rig, the proposal confirmed, SIGTERM (or SIGHUP:
    the ssh session dropped) while its rig opened -- before the run's own handlers -- killed the
    process where it stood: exit 143, not a word, its rig left as found. As in castrig run and queue
    (stop_requests), the stop is now the run's: aborted at its first control period, the rig made
    safe and said so, exit 3."""
    from conftest import SIGNAL_AT_RIG_OPEN, with_sitecustomize

    env = with_sitecustomize(tmp_path, SIGNAL_AT_RIG_OPEN)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([env["PYTHONPATH"], str(ROOT / "src")]))  # (this tree's castrig)
    monkeypatch.setenv("SIGNAL_AT_RIG_OPEN", "SIGTERM")
    run = terminal_run(["explore", "--target-grade", "claim1", "--profile", str(wall_sim_profile), "--data",
                        str(tmp_path / "runs"), "--budget", "3"], cwd=tmp_path)
    run.expect("Run it on the rig now?", timeout_s=30)
    run.send("y\r")
    code = run.wait(60)

    assert code == 3, run.output[-2000:]
    said = " ".join(run.output.split())
    assert "SIGTERM received by castrig explore" in said and "safe state verified" in said, said[-2000:]
    (run_json,) = (tmp_path / "runs").glob("*/run.json")
    assert '"outcome": "aborted"' in run_json.read_text()

