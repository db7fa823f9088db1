"""The objective: a membrane that fails its grade never ranks above one that meets it; marginal
bounds are "not met yet" (a small penalty, never a reward); violations are >= 0 and scale-free
(a ``> 0`` bound is not divided by ~0); the reasons name only what actually holds."""

from __future__ import annotations

import math

import pytest

from castrig.analysis.verdict import judge
from castrig.explore.objective import FAILED_SCORE, NOT_MET_PENALTY, grade_violation, rank_key, score_run

from conftest import membrane_metrics as _metrics


#: Every metric flagged under-resolved: each passing bound becomes marginal (as on the twin at 15 µm).
_FLAGGED = {k: ("pores_under_resolved",) for k in _metrics(1.0)}


def _check(label: str, kind: str, limit: float, value: float, status: str, **kw) -> dict:
    margin = value - limit if kind in ("min", "gt") else limit - value
    return {"quantity": label, "label": label, "kind": kind, "limit": limit, "value": value, "margin": margin, "status": status, **kw}


def _verdict(*checks: dict) -> dict:
    return {"grades_met": [], "grades": [{"grade": "claim1", "checks": list(checks)}]}


def test_passing_checks_add_nothing():
    v, why = grade_violation(_verdict(_check("opening_ratio", "min", 0.1, 0.6, "pass"),
                                      _check("penetration_depth_um", "gt", 0.0, 2.0, "pass")), "claim1")
    assert v == 0.0 and why == []


def test_a_marginal_check_on_the_passing_side_is_a_small_penalty_not_a_reward():
    # the audit's case: passes by a wide margin (and by 2 µm on a '> 0' bound), but flagged
    v, why = grade_violation(_verdict(_check("opening_ratio", "min", 0.1, 0.578, "marginal", flags=["pores_under_resolved"]),
                                      _check("opening_ratio", "max", 0.9, 0.578, "marginal", flags=["pores_under_resolved"]),
                                      _check("penetration_depth_um", "gt", 0.0, 2.0, "marginal", flags=["pores_under_resolved"])),
                             "claim1")
    assert v == pytest.approx(3 * NOT_MET_PENALTY)
    assert len(why) == 3 and all("marginal" in w for w in why)
    assert not any(" < " in w or " > " in w for w in why)  # not "0.578 < 0.1; 0.578 > 0.9"
    assert "flagged pores_under_resolved" in why[0]


def test_failing_checks_add_their_relative_shortfall_bounded_and_scale_free():
    v1, why = grade_violation(_verdict(_check("through_pore_fraction", "min", 0.3, 0.15, "fail")), "claim1")
    assert v1 == pytest.approx(NOT_MET_PENALTY + 0.15 / 0.45)
    assert why == ["through_pore_fraction 0.15 < 0.3"]
    v2, _ = grade_violation(_verdict(_check("through_pore_fraction", "min", 0.3, 0.01, "fail")), "claim1")
    assert v2 > v1  # farther off, worse: a slope towards the window
    # the same relative miss at 1000× the scale is the same violation
    v3, _ = grade_violation(_verdict(_check("x", "min", 300.0, 150.0, "fail")), "claim1")
    assert v3 == pytest.approx(v1)
    # a '> 0' bound at 0 or below: a bounded violation, not a division by 1e-6
    v4, why4 = grade_violation(_verdict(_check("penetration_depth_um", "gt", 0.0, 0.0, "fail"),
                                        _check("pore_communication", "gt", 0.0, -0.5, "fail")), "claim1")
    assert v4 == pytest.approx(2 * (NOT_MET_PENALTY + 1.0))
    assert why4 == ["penetration_depth_um 0 <= 0", "pore_communication -0.5 <= 0"]
    # a marginal check on the failing side: penalty and shortfall, named as what holds
    v5, why5 = grade_violation(_verdict(_check("opening_ratio", "max", 0.9, 0.95, "marginal", interval=[0.85, 1.0])), "claim1")
    assert v5 == pytest.approx(NOT_MET_PENALTY + 0.05 / 1.85)
    assert why5 == ["opening_ratio 0.95 > 0.9 (marginal)"]


def test_unknown_and_unjudged_count_one():
    v, why = grade_violation(_verdict(_check("x", "min", 1.0, 0.0, "unknown") | {"value": None, "margin": None}), "claim1")
    assert v == 1.0 and why == ["x unknown"]
    assert grade_violation({"grades": []}, "claim1") == (1.0, ["claim1: not judged"])
    v, _ = grade_violation(_verdict(_check("x", "min", 1.0, float("nan"), "fail")), "claim1")
    assert v == 1.0


def test_violations_are_never_negative_for_any_judged_membrane():
    for d in (0.5, 3.0, 15.1, 49.0):
        for opening in (0.05, 0.578, 0.95):
            for flagged in (None, _FLAGGED):
                v, _ = grade_violation(judge(_metrics(d, opening=opening), flagged=flagged).to_dict(), "claim1")
                assert v >= 0 and math.isfinite(v)


def test_a_failing_trial_never_ranks_above_one_that_meets_the_grade():
    target = 2.5
    far_but_flagged = judge(_metrics(15.1), flagged=_FLAGGED).to_dict()  # every bound passes, all marginal
    assert "claim1" not in far_but_flagged["grades_met"]
    failing = score_run("completed", _metrics(15.1), far_but_flagged, grade="claim1", target_d_um=target)
    met_near = score_run("completed", _metrics(3.18), judge(_metrics(3.18)).to_dict(), grade="claim1", target_d_um=target)
    met_far = score_run("completed", _metrics(49.0), judge(_metrics(49.0)).to_dict(), grade="claim1", target_d_um=target)
    failing_near = score_run("completed", _metrics(2.5, through=0.29), judge(_metrics(2.5, through=0.29)).to_dict(),
                             grade="claim1", target_d_um=target)
    faulted = score_run("faulted", None, None, grade="claim1", target_d_um=target)
    assert met_near.grade_met and met_far.grade_met and not failing.grade_met and not failing_near.grade_met
    assert failing.score > 1.0 and failing.violation is not None and failing.violation >= 0
    for bad in (failing, failing_near):
        for good in (met_near, met_far):
            assert bad.score > good.score  # the optimiser's view
            assert rank_key(bad) > rank_key(good)  # the "best" the search reports
    assert faulted.score == FAILED_SCORE > max(failing.score, failing_near.score)
    ranked = sorted([failing, faulted, met_far, failing_near, met_near], key=rank_key)
    assert ranked[:2] == [met_near, met_far] and ranked[-1] is faulted


def test_best_prefers_a_met_trial_even_in_a_journal_scored_by_the_old_objective():
    from castrig.explore.objective import Outcome

    old_failing = Outcome("completed", -2_372_961.0, False, 15.1, 5.04, -2_372_962.0)
    met = Outcome("completed", 0.24, True, 3.18, 0.27, 0.0)
    assert min([old_failing, met], key=rank_key) is met
