"""Lots are membranes: one per judged membrane that met a grade; simulated ones and exclusive uses guarded."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from castrig.analysis.verdict import judge
from castrig.errors import BadInput
from castrig.lots import assign_use, check_filter, get_lot, list_lots, load_filter, not_lots, unassign_use
from castrig.store import MembraneRecord, RunInfo, open_store

from conftest import membrane_metrics as _metrics

ROOT = Path(__file__).resolve().parents[2]


def _run_with_membranes(root: Path, name: str, *, simulated: bool, outcome: str = "completed") -> str:
    """A run folder with three membranes as the runner leaves them: judged (grades met), judged
    (none met), lost."""
    store = open_store(root)
    rec = store.create_run(RunInfo(run_id=f"20261201-000001-{name}", recipe_name=name, recipe_path="", profile_name="p",
                                   profile_path="", software_version="t", seed=1 if simulated else None, operator="",
                                   started_utc="2026-12-01T00:00:01Z", virtual_time=simulated))
    rid = rec.info.run_id
    for k, d, through in ((1, 3.0, 0.9), (2, 3.0, 0.1)):
        metrics = _metrics(d, through=through)
        verdict = judge(metrics).to_dict()
        met = judge(metrics).met
        rec.save_result(1.0, f"{rid}-m{k}/metrics", metrics)
        rec.save_membrane(MembraneRecord(f"{rid}-m{k}", k, 3, "judged", support_position=k, simulated=simulated,
                                         metrics=metrics, verdict=verdict, grades_met=list(met), target_grade="claim1",
                                         target_met="claim1" in met, lot_id=f"{rid}-m{k}" if met else None))
    rec.save_membrane(MembraneRecord(f"{rid}-m3", 3, 9, "lost", support_position=3, simulated=simulated,
                                     lost_reason="the cast film dried without RH control: the run stopped in step 11 (evaporate)"))
    rec.update_info(outcome=outcome, ended_utc="2026-12-01T08:00:00Z")
    store.index_run(rec, ["claim1"])
    rec.close()
    return rid


def test_each_judged_membrane_that_met_a_grade_is_a_lot_the_others_say_why(tmp_path):
    rid = _run_with_membranes(tmp_path, "night", simulated=False)
    lots = list_lots(tmp_path)
    assert [lot.lot_id for lot in lots] == [f"{rid}-m1"] and lots[0].membrane_id == f"{rid}-m1" and not lots[0].simulated
    why = dict(not_lots(tmp_path))
    assert why[f"{rid}-m2"].startswith("met no grade") and why[f"{rid}-m3"].startswith("lost: the cast film dried")


def test_a_simulated_lot_needs_allow_simulated_and_the_record_says_so(tmp_path):
    rid = _run_with_membranes(tmp_path, "twin", simulated=True)
    lot = f"{rid}-m1"
    with pytest.raises(BadInput, match="digital twin.*--allow-simulated"):
        assign_use(lot, "blood_filter", tmp_path)
    got = assign_use(lot, "blood_filter", tmp_path, allow_simulated=True)
    assert got.assignment["simulated"] is True and got.assignment["allow_simulated"] is True
    assert get_lot(lot, tmp_path).assignment["allow_simulated"] is True
    build = load_filter(ROOT / "examples" / "filter-build.yaml").model_copy(update={"lots": [lot]})
    lookup = lambda lot_id, where: get_lot(lot_id, tmp_path, field_name=where)  # noqa: E731
    refused = check_filter(build, lookup)
    assert any("simulated" in msg for _, msg in refused.problems)
    allowed = check_filter(build, lookup, allow_simulated=True)
    assert not allowed.problems and any("SIMULATED" in note for note in allowed.notes)


def test_one_lot_cannot_serve_two_exclusive_uses(tmp_path):
    rid = _run_with_membranes(tmp_path, "real", simulated=False)
    lot = f"{rid}-m1"
    assign_use(lot, "blood_filter", tmp_path)
    assign_use(lot, "blood_filter", tmp_path)  # the same use again: no change, no error
    with pytest.raises(BadInput, match="already assigned to blood_filter"):
        assign_use(lot, "coculture", tmp_path)
    unassign_use(lot, tmp_path)
    assert assign_use(lot, "coculture", tmp_path).intended_use == "coculture"
    assert yaml.safe_load((tmp_path / "lots.json").read_text())[lot]["intended_use"] == "coculture"


def test_each_lot_of_a_night_is_said_made_when_its_membrane_was_made(tmp_path, capsys):
    """``castrig lots``' "made (UTC)" was the run's start for every lot: a night on the rig's wall
    clock started at 22:00, its m1 made at 22:54 and its m3 at 05:14 the next morning, after a
    crash and a resume at 04:00, listed all three as made at 22:00 the day before. Each lot's own
    time: its part's start + (the end of its evaporation - the part's run-clock start)."""
    from conftest import castrig_main

    rec = open_store(tmp_path).create_run(RunInfo(
        run_id="20261201-220000-night", recipe_name="night", recipe_path="", profile_name="rig", profile_path="",
        software_version="t", seed=None, operator="", started_utc="2026-12-01T22:00:00Z",
        parts=[{"started_utc": "2026-12-01T22:00:00Z", "ended_utc": "2026-12-02T01:00:00Z", "t0_s": 0.0, "t1_s": 10800.0},
               {"started_utc": "2026-12-02T04:00:00Z", "ended_utc": "2026-12-02T06:00:00Z", "t0_s": 10801.0, "t1_s": 18001.0}]))
    rid, metrics = rec.info.run_id, _metrics(3.0)
    verdict = judge(metrics)
    for k, t_end_s in ((1, 3268.0), (2, 9000.0), (3, 15259.0)):  # 22:54:28; 00:30:00; 04:00:00 + 4458 s
        rec.save_membrane(MembraneRecord(f"{rid}-m{k}", k, 3, "judged", support_position=k, t_end_s=t_end_s, metrics=metrics,
                                         verdict=verdict.to_dict(), grades_met=list(verdict.met), target_grade="claim1",
                                         target_met=True, lot_id=f"{rid}-m{k}"))
    rec.update_info(outcome="completed", ended_utc="2026-12-02T06:00:00Z")
    open_store(tmp_path).index_run(rec, list(verdict.met))
    rec.close()
    done = castrig_main(capsys, "lots", "--data", tmp_path)
    assert done.returncode == 0, done.stderr
    made = {line.split()[1]: line.split()[5] for line in done.stdout.splitlines() if f"{rid}-m" in line}
    assert made == {f"{rid}-m1": "2026-12-01T22:54:28Z", f"{rid}-m2": "2026-12-02T00:30:00Z",
                    f"{rid}-m3": "2026-12-02T05:14:18Z"}, done.stdout
