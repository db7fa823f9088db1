"""From a run's results to one number the optimiser minimises, and to "found or not".

The score is ``|ln(D / D_target)|`` when the membrane meets the grade, plus a penalty of
``1 + violation`` when it does not, where the violation adds up each failed bound's shortfall
relative to its limit (an unknown value counts 1). So every membrane meeting the grade beats
every one that does not, and among those that fail, the nearer ones score better: the
optimiser sees a slope even far from the window. A run that made no measurable membrane
(faulted, no analysis) scores :data:`FAILED_SCORE`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

FAILED_SCORE = 10.0

#: The metrics kept in the journal and drawn on the maps.
KEPT_METRICS = ("mean_pore_diameter_um", "pore_diameter_std_um", "opening_ratio", "through_pore_fraction",
                "mean_thickness_um", "thickness_std_um", "support_pore_diameter_um", "pore_count")


@dataclass
class Outcome:
    """What one trial gave, in the terms of the search."""

    run_outcome: str
    score: float
    grade_met: bool
    d_um: float | None
    d_error: float | None  # D / D_target - 1
    violation: float | None
    grades_met: list[str] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)
    failed_bounds: list[str] = field(default_factory=list)

    def hit(self, tolerance: float) -> bool:
        """The grade is met and D is within the tolerance of its target."""
        return self.grade_met and self.d_error is not None and abs(self.d_error) <= tolerance

    @property
    def cv(self) -> float | None:
        d, s = self.metrics.get("mean_pore_diameter_um"), self.metrics.get("pore_diameter_std_um")
        return s / d if d and s is not None else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Outcome":
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


def grade_violation(verdict: dict[str, Any], grade: str) -> tuple[float, list[str]]:
    """Sum of the relative shortfalls of the grade's failed bounds, and their labels."""
    g = next((g for g in verdict.get("grades", []) if g.get("grade") == grade), None)
    if g is None:
        return 1.0, [f"{grade}: not judged"]
    total, failed = 0.0, []
    for c in g.get("checks", []):
        if c["status"] == "pass":
            continue
        if c["status"] == "unknown" or c.get("margin") is None:
            total += 1.0
            failed.append(f"{c['label']} unknown")
            continue
        total += -float(c["margin"]) / max(abs(float(c["limit"])), 1e-6)
        failed.append(f"{c['label']} {c['value']:.3g} {'<' if c['kind'] == 'min' else '>'} {c['limit']:g}")
    return total, failed


def score_run(run_outcome: str, metrics: dict[str, Any] | None, verdict: dict[str, Any] | None, *, grade: str,
              target_d_um: float) -> Outcome:
    """Score one run's results for a grade at a target pore diameter."""
    metrics = metrics or {}
    kept = {k: (float(metrics[k]) if metrics.get(k) is not None else None) for k in KEPT_METRICS}
    d = kept.get("mean_pore_diameter_um")
    if verdict is None or not d or d <= 0:
        return Outcome(run_outcome, FAILED_SCORE, False, d, None, None, [], kept, ["no measurable membrane"])
    violation, failed = grade_violation(verdict, grade)
    met = grade in verdict.get("grades_met", [])
    distance = abs(math.log(d / target_d_um))
    score = distance if met else distance + 1.0 + min(violation, 5.0)
    return Outcome(run_outcome, score, met, d, d / target_d_um - 1.0, violation, list(verdict.get("grades_met", [])), kept, failed)
