"""The analyse step's verdict is the one ``castrig analyse membrane`` gives: quality flags and
95 % intervals count in a run too (issue 16: a flagged metric is never silently trusted)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from castrig.recipe.analyse import AnalysisStopped, analyse_capture, latest_capture, pool_quality
from castrig.sim.micrograph import make_structure, render_section, render_surface
from castrig.store import RunInfo
from castrig.store.sqlite_store import SqliteRunStore
from tests.conftest import run_with_twin_field

PX_UM = 0.25


def _analysed(rec, **kw):
    """The analyse step's outcome for the run's latest capture, as the runner computes it."""
    return analyse_capture(Path(rec.run_dir), latest_capture(rec), grade="claim1", **kw)


def _checks(result, quantity):
    (claim1,) = [g for g in result["verdict"]["grades"] if g["grade"] == "claim1"]
    return [c for c in claim1["checks"] if c["quantity"] == quantity]


def test_a_saturated_top_view_is_not_judged_from_its_numbers(tmp_path):
    """A reflected view clipped white: before, the run judged the opening ratio it produced
    (pass or fail); now its bounds are unknown and the grade is not met, as in the CLI."""
    rec = run_with_twin_field(tmp_path, reflected=np.full((512, 512), 255, np.uint8))
    result = _analysed(rec)
    assert "saturated" in result["quality"]["flags"]
    assert {c["status"] for c in _checks(result, "opening_ratio")} == {"unknown"}
    assert result["verdict"]["target_met"] is False


def test_a_good_capture_carries_its_intervals_into_the_verdict(tmp_path):
    result = _analysed(run_with_twin_field(tmp_path))
    (d_min, d_max) = _checks(result, "mean_pore_diameter_um")
    lo, hi = d_min["interval"]
    assert lo < result["metrics"]["mean_pore_diameter_um"] < hi
    assert d_min["status"] == "pass"


def test_pooled_quality_is_never_surer_than_its_fields():
    a = {"flags": [], "flagged": {}, "intervals": {"opening_ratio": [0.40, 0.50]}}
    b = {"flags": ["blurred"], "flagged": {"opening_ratio": ["blurred"]}, "intervals": {"opening_ratio": [0.44, 0.56]}}
    q = pool_quality([a, b])
    assert q["flags"] == ["blurred"] and q["flagged"] == {"opening_ratio": ["blurred"]}
    assert np.allclose(q["intervals"]["opening_ratio"], [0.42, 0.53])
    assert pool_quality([]) == {"flags": [], "flagged": {}, "intervals": {}}


def test_an_analysis_the_run_left_stops_before_its_next_field(tmp_path):
    """On a real-time rig the analysis computes on a worker thread; once the run left the step
    (abort, interlock) it gives up at the next field instead of computing for nobody."""
    rec = run_with_twin_field(tmp_path)
    asked: list[int] = []

    def stopped() -> bool:
        asked.append(1)
        return True

    with pytest.raises(AnalysisStopped, match="before field 0"):
        _analysed(rec, stopped=stopped)
    assert asked == [1]
    assert _analysed(rec)["metrics"]["pore_count"] > 0


def test_more_fields_of_a_section_with_no_joined_cavities_narrow_its_pore_communication(tmp_path):
    """Four sections of an overnight film (pores 3.3 µm, film 1.5 µm, 0.05 µm px) with no window
    drawn, none of their 35 neighbouring cavity pairs joined. One field's verdict is marginal,
    "measure more fields" (95 % interval [0, 0.28] over 10 pairs); the run pooled the fields'
    intervals as their mean, [0, 0.31], wider than the first field's alone: the advice followed
    could never settle it. Pooled over all 35 pairs it is [0, 0.10]."""
    from castrig.analysis.quality import wilson

    rec = SqliteRunStore(tmp_path).create_run(RunInfo("t", "t", "-", "sim", "-", "test", 1, "", "now"))
    for field, seed in enumerate((0, 1, 3, 4)):  # (10, 6, 10 and 9 pairs)
        rng = np.random.default_rng(seed)
        st = make_structure(rng, mean_diameter_um=3.3, cv=0.07, opening_ratio=0.59, thickness_um=1.5, thickness_cv=0.1,
                            field_um=1.2 * 1024 * 0.05, section_length_um=1024 * 0.05, support_pore_um=5.0)
        rec.save_image(1.0, f"s3_field{field}_section", render_section(st, 0.05, rng, bit_depth=8), pixel_size_um=0.05,
                       illumination="section", metadata={"step": 3, "field": field})
    result = _analysed(rec)
    (check,) = _checks(result, "pore_communication")
    assert [f["pore_communication"] for f in result["per_field"]] == [0.0] * 4
    assert check["status"] == "marginal" and check["value"] == 0.0
    assert check["interval"] == pytest.approx(list(wilson(0.0, 35))), check


def test_more_fields_settle_a_through_pore_fraction_one_field_leaves_marginal(tmp_path):
    """Top views of a film whose pores are 37 % open through (claim 1 asks 30 %), about 75
    pores a field: each field alone reads 0.37-0.38, 95 % interval about [0.27, 0.49], marginal,
    "measure more fields". The run pooled four fields' intervals as their mean, [0.275, 0.489]:
    still marginal, however many fields were taken. Over the 303 pores of all four, [0.32, 0.43]:
    it passes, as the advice said it would."""
    rec = SqliteRunStore(tmp_path).create_run(RunInfo("t", "t", "-", "sim", "-", "test", 1, "", "now"))
    for field, seed in enumerate((0, 3, 4, 5)):
        rng = np.random.default_rng(seed)
        st = make_structure(rng, mean_diameter_um=5.0, opening_ratio=0.45, through_fraction=0.37, thickness_um=3.0,
                            field_um=256 * PX_UM, section_length_um=256 * 0.05)
        refl, trans = render_surface(st, PX_UM, rng, bit_depth=8)
        meta = {"step": 3, "field": field}
        rec.save_image(1.0, f"s3_field{field}_reflected", refl, pixel_size_um=PX_UM, illumination="reflected", metadata=meta)
        rec.save_image(1.0, f"s3_field{field}_transmitted", trans, pixel_size_um=PX_UM, illumination="transmitted",
                       metadata=meta)
    result = _analysed(rec)
    (check,) = _checks(result, "through_pore_fraction")
    assert all(0.36 < f["through_pore_fraction"] < 0.39 for f in result["per_field"]), result["per_field"]
    assert check["status"] == "pass" and check["interval"][0] > 0.3, check
