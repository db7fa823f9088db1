"""From a run's results to one number the optimiser minimises, and to "found or not".

A membrane meeting the grade scores ``x / (1 + x)`` with ``x = |ln(D / D_target)|``: 0 on target,
below 1 however far off. One that does not meet it scores ``1 + x / (1 + x) + violation`` (the
violation capped at 5), so every membrane meeting the grade beats every one that does not, and
among those that fail the nearer ones score better: the optimiser sees a slope even far from
the window. The violation (:func:`grade_violation`) is >= 0 and scale-free: each failed bound
adds its shortfall relative to the size of value and limit (at most 1, no division by a zero
limit) plus :data:`NOT_MET_PENALTY`; a marginal bound (inside its metric's interval, or passing
on a flagged metric) is not met yet and adds that penalty (and its shortfall, if on the wrong
side); an unknown one adds 1. A run that made no measurable membrane (faulted, no analysis)
scores :data:`FAILED_SCORE`, above every judged membrane.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

FAILED_SCORE = 10.0
#: What a bound that is not met yet adds at least (a marginal one that passes adds only this).
NOT_MET_PENALTY = 0.1
#: What an unknown bound adds (nothing says how far it is).
UNKNOWN_PENALTY = 1.0
#: The violation counted in a score at most (so a failing membrane stays below FAILED_SCORE).
MAX_VIOLATION = 5.0

#: The objective's version, kept with every outcome: a stored outcome of another version is
#: scored again on load (:func:`rescored`). 1: before 2026-12-02 (no version kept; a marginal
#: bound could subtract up to millions); 2: the violation bounded and >= 0.
OBJECTIVE = 2

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
    objective: int = OBJECTIVE  # the version that scored it (a stored outcome without one: 1)

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
        return cls(**{"objective": 1, **{k: data[k] for k in cls.__dataclass_fields__ if k in data}})


def rank_key(o: Outcome) -> tuple[bool, float]:
    """Order of outcomes, best first: meeting the grade before anything else, then the score (so a
    journal scored by an older objective still never ranks a failing membrane first)."""
    return (not o.grade_met, o.score if math.isfinite(o.score) else math.inf)


def _shortfall(c: dict[str, Any]) -> float:
    """How far a bound's value is on the wrong side of its limit, relative to their size: in [0, 1]."""
    value, limit = float(c["value"]), float(c["limit"])
    miss = max(0.0, -float(c["margin"]))
    if c["kind"] == "gt" and value <= limit:  # a "present" bound at its limit (0 > 0): fully missing
        return 1.0
    scale = abs(value) + abs(limit)
    return min(1.0, miss / scale) if scale > 0 else 0.0


def _relation(c: dict[str, Any]) -> str:
    """The bound the value misses, as a person reads it: ``<`` a min, ``>`` a max, ``<=`` a gt."""
    return {"min": "<", "max": ">", "gt": "<="}.get(c["kind"], "?")


def _known(c: dict[str, Any]) -> bool:
    try:
        return all(math.isfinite(float(c[k])) for k in ("value", "limit", "margin"))
    except (KeyError, TypeError, ValueError):
        return False


def grade_violation(verdict: dict[str, Any], grade: str) -> tuple[float, list[str]]:
    """How far a membrane is from meeting ``grade`` (>= 0; 0 when it is met), and why, bound by bound.

    A failed bound adds :data:`NOT_MET_PENALTY` plus its relative shortfall; a marginal bound
    (the value passes but is not trusted, or lies within its interval of the limit) adds the
    penalty plus its shortfall (0 when it passes); an unknown bound adds :data:`UNKNOWN_PENALTY`.
    The reasons name the bounds that fail (``value < limit``) first, then the marginal and
    unknown ones, each with the relation that actually holds.
    """
    g = next((g for g in verdict.get("grades", []) if g.get("grade") == grade), None)
    if g is None:
        return UNKNOWN_PENALTY, [f"{grade}: not judged"]
    total, failed, unsure = 0.0, [], []
    for c in g.get("checks", []):
        status = c.get("status")
        if status == "pass":
            continue
        if status == "unknown" or not _known(c):
            total += UNKNOWN_PENALTY
            unsure.append(f"{c['label']} unknown")
            continue
        total += NOT_MET_PENALTY + _shortfall(c)
        value = f"{c['label']} {float(c['value']):.3g}"
        if float(c["margin"]) < 0 or (c["kind"] == "gt" and float(c["value"]) <= float(c["limit"])):
            text = f"{value} {_relation(c)} {float(c['limit']):g}"
            (unsure if status == "marginal" else failed).append(text + (" (marginal)" if status == "marginal" else ""))
        else:  # marginal on the passing side: not trusted yet
            why = f"flagged {', '.join(c['flags'])}" if c.get("flags") else "the limit is within its 95 % interval"
            unsure.append(f"{value} marginal ({why}; limit {float(c['limit']):g})")
    return total, failed + unsure


def score_run(run_outcome: str, metrics: dict[str, Any] | None, verdict: dict[str, Any] | None, *, grade: str,
              target_d_um: float) -> Outcome:
    """Score one run's results for a grade at a target pore diameter."""
    metrics = metrics or {}
    kept = {k: (float(metrics[k]) if metrics.get(k) is not None else None) for k in KEPT_METRICS}
    d = kept.get("mean_pore_diameter_um")
    if verdict is None or not d or not math.isfinite(d) or d <= 0:
        return Outcome(run_outcome, FAILED_SCORE, False, d, None, None, [], kept, ["no measurable membrane"])
    violation, failed = grade_violation(verdict, grade)
    met = grade in verdict.get("grades_met", [])
    distance = abs(math.log(d / target_d_um))
    near = distance / (1.0 + distance)  # in [0, 1): a met membrane, however far from the target, scores below 1
    score = near if met else 1.0 + near + min(max(violation, 0.0), MAX_VIOLATION)
    return Outcome(run_outcome, score, met, d, d / target_d_um - 1.0, violation, list(verdict.get("grades_met", [])), kept, failed)


def rescored(o: Outcome, *, grade: str, target_d_um: float, verdict: dict[str, Any] | None = None) -> Outcome:
    """A stored outcome scored by this objective (itself when it already was).

    With the run's ``verdict`` it is scored as a new run is (the kept metrics hold D). Without it
    (the run folder gone) the old violation cannot be trusted (version 1 could be hugely
    negative): a membrane that met the grade is scored from D alone, exactly; one that did not
    counts its violation as one unknown bound (:data:`UNKNOWN_PENALTY`); no D stays failed."""
    if o.objective == OBJECTIVE:
        return o
    if verdict is not None:
        return score_run(o.run_outcome, o.metrics, verdict, grade=grade, target_d_um=target_d_um)
    d = o.d_um
    if d is None or not math.isfinite(d) or d <= 0:
        return Outcome(o.run_outcome, FAILED_SCORE, False, d, None, None, [], dict(o.metrics), ["no measurable membrane"])
    distance = abs(math.log(d / target_d_um))
    near = distance / (1.0 + distance)
    violation = 0.0 if o.grade_met else UNKNOWN_PENALTY
    score = near if o.grade_met else 1.0 + near + violation
    return Outcome(o.run_outcome, score, o.grade_met, d, d / target_d_um - 1.0, violation, list(o.grades_met), dict(o.metrics),
                   list(o.failed_bounds) if not o.grade_met else [])
