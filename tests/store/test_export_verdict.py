"""Audit 4: `castrig export`'s verdict.csv tells a marginal check from an unknown one (status), with
the value's 95 % interval and quality flags, after the columns scripts already read; membranes.csv
ends with the lot's intended use."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from conftest import castrig_main
from conftest import membrane_metrics as _metrics

RUN_ID = "20260101-000001-marg"
OLD_COLUMNS = ["run_id", "membrane_id", "grade", "metric", "bound", "measured", "margin", "pass"]


@pytest.fixture
def judged_run(tmp_path: Path) -> Path:
    """A completed run with one judged membrane: D = 19 µm with a 95 % interval 17-21 µm across
    claim 3's D <= 20 (marginal), the through-pore fraction flagged (a flagged pass: marginal),
    the support continuity not measured (unknown); its folder."""
    from castrig.analysis.verdict import judge
    from castrig.store import MembraneRecord, RunInfo, open_store

    root = tmp_path / "data"
    store = open_store(root)
    rec = store.create_run(RunInfo(run_id=RUN_ID, recipe_name="marg", recipe_path="", profile_name="p", profile_path="",
                                   software_version="t", seed=None, operator="", started_utc="2026-01-01T00:00:01Z"))
    m = {**_metrics(19.0), "support_continuity": None}
    verdict = judge(m, intervals={"mean_pore_diameter_um": (17.0, 21.0)}, flagged={"through_pore_fraction": ["too_few_pores"]})
    mid = f"{RUN_ID}-m1"
    rec.save_result(1.0, f"{mid}/metrics", m)
    rec.save_result(1.0, f"{mid}/verdict", verdict.to_dict())
    rec.save_membrane(MembraneRecord(mid, 1, 3, "judged", support_position=1, metrics=m, verdict=verdict.to_dict(),
                                     grades_met=list(verdict.met), target_grade="claim1", target_met="claim1" in verdict.met,
                                     lot_id=mid if verdict.met else None))
    rec.update_info(outcome="completed", ended_utc="2026-01-01T08:00:00Z")
    store.index_run(rec, sorted(verdict.met))
    rec.close()
    return rec.run_dir


def _rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def test_verdict_csv_tells_marginal_from_unknown_with_interval_and_flags(judged_run, tmp_path, capsys):
    done = castrig_main(capsys, "export", str(judged_run), "--to", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    cols, rows = _rows(tmp_path / "out" / "verdict.csv")
    assert cols[:len(OLD_COLUMNS)] == OLD_COLUMNS  # what scripts read stays where it was
    assert cols[len(OLD_COLUMNS):] == ["status", "interval_low", "interval_high", "flags", "advice"]
    d = next(r for r in rows if r["grade"] == "claim3" and r["metric"] == "mean_pore_diameter_um" and r["bound"] == "≤ 20")
    assert d["pass"] == "" and d["status"] == "marginal"
    assert (float(d["interval_low"]), float(d["interval_high"])) == (17.0, 21.0) and d["advice"]
    unknown = [r for r in rows if r["status"] == "unknown"]
    assert unknown and all(r["pass"] == "" and r["measured"] == "" for r in unknown)
    flagged = [r for r in rows if r["flags"] == "too_few_pores"]
    assert flagged and all(r["status"] == "marginal" and r["pass"] == "" for r in flagged)
    assert {r["status"] for r in rows} >= {"pass", "marginal", "unknown"}
    assert all(r["status"] == ("pass" if r["pass"] == "True" else "fail") for r in rows if r["pass"])


def test_membranes_csv_ends_with_the_lots_intended_use(tmp_path, capsys):
    from conftest import add_membrane_run

    root = tmp_path / "data"
    lot, other = add_membrane_run(root, "20260101-000001-two", [_metrics(3.0), _metrics(4.0)])
    done = castrig_main(capsys, "lots", "--data", str(root), "assign", lot, "--use", "coculture")
    assert done.returncode == 0, done.stderr
    done = castrig_main(capsys, "export", str(root / "20260101-000001-two"), "--to", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    cols, rows = _rows(tmp_path / "out" / "membranes.csv")
    # (new columns only ever at the end: made_utc came after intended_use)
    assert cols[-2:] == ["intended_use", "made_utc"] and cols[:4] == ["run_id", "membrane_id", "k", "status"]
    assert {r["membrane_id"]: r["intended_use"] for r in rows} == {lot: "coculture", other: ""}


def test_a_damaged_lots_json_beside_the_run_does_not_stop_its_export(tmp_path, capsys):
    """Review: intended_use came from the data root's lots.json, and a lots.json that is not JSON
    (or a copy of the run beside someone's unrelated file) made `castrig export` refuse the run
    (exit 2). The run is exported; the column is empty and a warning names the file."""
    from conftest import add_membrane_run

    root = tmp_path / "data"
    add_membrane_run(root, "20260101-000001-two", [_metrics(3.0)])
    (root / "lots.json").write_text("{bad")
    done = castrig_main(capsys, "export", str(root / "20260101-000001-two"), "--to", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert "intended_use left empty" in done.stderr and "lots.json" in done.stderr
    _, rows = _rows(tmp_path / "out" / "membranes.csv")
    assert [r["intended_use"] for r in rows] == [""]
