"""The report's "What went wrong" for a run of 20 membranes that missed their grade: a bound
that fails several grades (the grades include one another) was named once per grade -- a run
without membranes listed "Grade claimN not met: through_pore_fraction ..." four times -- while a
membrane's line named its target grade's bounds only, so a bound failing claim 3 or 4 alone was
not named at all. Now each failing bound is named once per membrane, with the grades it fails
where that is not every grade the line names; the section grows with the membranes, not with
membranes x grades."""

from __future__ import annotations

from castrig.report.html import report_data
from conftest import add_graded_run, add_membrane_run, membrane_metrics


def test_what_went_wrong_names_each_failing_bound_once_per_membrane_with_its_grades(tmp_path):
    from castrig.analysis.verdict import judge
    from castrig.store.export import verdict_rows

    data = tmp_path / "runs"
    # 20 casts, each under claim 1's through-pore bound and claim 4's opening bound; the later
    # ones over claim 3's and 4's pore diameter (and thickness) bounds as well
    metrics = [membrane_metrics(3.0 + 2 * k, through=0.2, opening=0.12) for k in range(20)]
    add_membrane_run(data, "20260101-000001-twenty", metrics)
    said = report_data(data / "20260101-000001-twenty")["problems"]
    lines = [p for p in said if p.startswith("Membrane ")]
    assert len(lines) == 20, said
    assert sum(map(len, said)) <= 20 * 320, sum(map(len, said))  # (bounded by the membranes, each line short)
    for k, (m, line) in enumerate(zip(metrics, lines), 1):
        assert line.startswith(f"Membrane 20260101-000001-twenty-m{k}: grade claim1 not met (nor claim2, claim3, claim4): "), line
        failing: dict[tuple[str, str], set[str]] = {}  # (metric, bound) -> the grades it fails
        for r in verdict_rows(judge(m).to_dict()):
            if r["pass"] is False:
                failing.setdefault((r["metric"], r["bound"]), set()).add(r["grade"])
        for (metric, bound), grades in failing.items():
            words = f"(bound {bound}, margin "
            assert line.count(f"{metric} ") == sum(1 for (mm, _) in failing if mm == metric) and words in line, (metric, line)
            if grades != {"claim1", "claim2", "claim3", "claim4"}:
                assert f"; for {', '.join(sorted(grades))})" in line, (metric, grades, line)
    assert "mean_pore_diameter_um 41 (bound ≤ 20, margin -21; for claim3, claim4)" in lines[-1], lines[-1]

    # a run from before membranes (its verdict the run's): the bound once, not once per grade
    add_graded_run(data, "old", membrane_metrics(3.0, through=0.2, opening=0.12))
    (line,) = [p for p in report_data(data / "20260101-000001-old")["problems"] if "not met" in p]
    assert line == ("Grades claim1, claim2, claim3, claim4 not met: through_pore_fraction 0.2 (bound ≥ 0.3, margin -0.1); "
                    "opening_ratio 0.12 (bound ≥ 0.15, margin -0.03; for claim4)"), line
