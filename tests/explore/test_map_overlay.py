"""The process-window map with the membranes a real rig made drawn over it (issue 19).

The store's records are made through the store's API (``create_run`` / ``save_membrane``), one
with ``simulated=False`` on a wall-clock run (a real rig's) and one made on the twin; only the
real one may be drawn, where its evaporation setpoint and concentration put it, filled on the pass
region of a grade it met and hollow on the others.
"""

from __future__ import annotations

import re
from pathlib import Path

from castrig.explore.gridmap import Grid, map_html, real_membranes
from castrig.store import MembraneRecord, RunInfo, open_store

GRID = Grid([60.0, 70.0], [5.0, 10.0], [0.2], 2.0, [1])


def recipe(rh: float, conc: float) -> dict:
    return {"name": "rig", "grade": "claim1", "concentration_mg_ml": conc,
            "steps": [{"type": "purge", "duration_s": 60}, {"type": "prewet", "volume_ml": 0.3, "rate_ml_min": 1.0},
                      {"type": "cast", "volume_ml": 0.2, "rate_ml_min": 0.5},
                      {"type": "evaporate", "setpoint_rh_pct": rh, "duration_s": 300, "band_rh_pct": 3.0}]}


def add_rig_or_twin_membrane(root: Path, name: str, *, real: bool, rh: float, conc: float, grades: list[str], d_um: float = 3.0,
                     status: str = "judged") -> str:
    """A run with one membrane, as the runner records it (run.json, membranes row), without running."""
    store = open_store(root)
    rec = store.create_run(RunInfo(run_id=f"20261201-1800{len(list(Path(root).glob('*/run.json'))):02d}-{name}", recipe_name=name,
                                   recipe_path="", profile_name="rig" if real else "sim", profile_path="", software_version="t",
                                   seed=None if real else 1, operator="ada", started_utc="2026-12-01T18:00:00Z",
                                   virtual_time=not real, recipe=recipe(rh, conc)))
    mid = f"{rec.info.run_id}-m1"
    rec.save_membrane(MembraneRecord(mid, 1, 2, status, support_position=1, simulated=not real, t_start_s=0.0, t_end_s=400.0,
                                     process={"rh_mean_pct": rh - 0.4, "evaporation": {"setpoint_rh_pct": rh}},
                                     metrics={"mean_pore_diameter_um": d_um, "pore_diameter_std_um": 0.1 * d_um},
                                     verdict={"grades_met": grades}, grades_met=grades))
    rec.update_info(outcome="completed", ended_utc="2026-12-01T18:40:00Z")
    rec.close()
    return mid


def twin_results() -> list[dict]:
    out = []
    for rh in GRID.rh:
        for c in GRID.concentration:
            grades = ["claim1", "claim2"] if c == 5.0 else []
            out.append({"point": {"rh_pct": rh, "concentration_mg_ml": c, "cast_volume_ml": 0.2, "total_flow_slpm": 2.0}, "seed": 1,
                        "outcome": {"metrics": {"mean_pore_diameter_um": rh / 20, "pore_diameter_std_um": 0.2}, "grades_met": grades}})
    return out


def circles(page: str) -> list[str]:
    return re.findall(r'<circle class="real"[^>]*>.*?</circle>', page)


def test_real_membranes_are_read_from_the_store_and_simulated_ones_are_not(tmp_path: Path):
    root = tmp_path / "data"
    real = add_rig_or_twin_membrane(root, "rig-run", real=True, rh=65.0, conc=5.0, grades=["claim1"])
    add_rig_or_twin_membrane(root, "twin-run", real=False, rh=65.0, conc=10.0, grades=["claim1", "claim2"])
    add_rig_or_twin_membrane(root, "unjudged", real=True, rh=60.0, conc=5.0, grades=[], status="made")
    got = real_membranes(root)
    assert [m.membrane_id for m in got] == [real]
    m = got[0]
    assert (m.rh_pct, m.concentration_mg_ml, m.cast_volume_ml, m.grades_met) == (65.0, 5.0, 0.2, ["claim1"])
    assert m.rh_measured_pct == 64.6 and m.d_um == 3.0
    assert real_membranes(tmp_path / "nowhere") == []


def test_map_draws_a_real_membrane_filled_where_it_met_the_grade_and_hollow_where_not(tmp_path: Path):
    root = tmp_path / "data"
    real = add_rig_or_twin_membrane(root, "rig-run", real=True, rh=65.0, conc=5.0, grades=["claim1"])
    sim = add_rig_or_twin_membrane(root, "twin-run", real=False, rh=70.0, conc=10.0, grades=["claim1"])
    page = map_html(GRID, twin_results(), title="t", real=real_membranes(root))
    marks = circles(page)
    assert len(marks) == 6  # D, σd/D and four pass regions, one row (one volume)
    assert all(real in m for m in marks) and not any(sim in m for m in marks) and sim not in page
    by_grade = {g: next(m for m in marks if f"{g} met" in m or f"{g} NOT met" in m) for g in ("claim1", "claim2", "claim3", "claim4")}
    assert 'fill="#000"' in by_grade["claim1"] and "claim1 met" in by_grade["claim1"]
    for g in ("claim2", "claim3", "claim4"):
        assert 'fill="none"' in by_grade[g] and f"{g} NOT met" in by_grade[g]
    # RH 65 lies halfway between the 60 and 70 columns; c 5 is the bottom row's centre
    xs = {re.search(r'cx="([\d.]+)"', m).group(1) for m in marks}  # type: ignore[union-attr]
    assert xs == {f"{58 + 0.5 * (430 - 58 - 82):.1f}"}
    assert "a membrane a real rig made (1 in the store, 1 drawn)" in page


def test_map_without_real_membranes_draws_none_and_says_so(tmp_path: Path):
    root = tmp_path / "data"
    add_rig_or_twin_membrane(root, "twin-run", real=False, rh=65.0, conc=5.0, grades=["claim1"])
    page = map_html(GRID, twin_results(), title="t", real=real_membranes(root))
    assert circles(page) == [] and "<circle" not in page
    assert "No membrane from a real rig in the store" in page


def test_real_membrane_outside_the_grid_is_counted_not_drawn(tmp_path: Path):
    root = tmp_path / "data"
    add_rig_or_twin_membrane(root, "far", real=True, rh=90.0, conc=5.0, grades=["claim1"])
    inside = add_rig_or_twin_membrane(root, "near", real=True, rh=70.0, conc=10.0, grades=[])
    page = map_html(GRID, twin_results(), title="t", real=real_membranes(root))
    marks = circles(page)
    assert len(marks) == 6 and all(inside in m for m in marks)
    assert "(2 in the store, 1 drawn, 1 outside this grid)" in page
