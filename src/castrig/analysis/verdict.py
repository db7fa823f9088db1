"""Does a membrane meet a grade? Every bound, its measured value, margin and status.

A metric that could not be measured makes its bound "unknown", and a grade with any unknown
bound is not met (never a pass by default).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .spec import Spec, load_spec, quantity_value

__all__ = ["BoundCheck", "GradeVerdict", "Verdict", "judge"]

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"
_REL_TOL = 1e-9  # inclusive bounds survive floating-point rounding of derived ratios


@dataclass(frozen=True)
class BoundCheck:
    quantity: str
    label: str
    kind: str  # "min" | "max"
    limit: float
    value: float | None
    margin: float | None  # value - limit for min, limit - value for max; >= 0 passes
    status: str  # pass | fail | unknown
    source: str  # grade that declared the bound

    def to_dict(self) -> dict:
        return {
            "quantity": self.quantity,
            "label": self.label,
            "kind": self.kind,
            "limit": self.limit,
            "value": self.value,
            "margin": self.margin,
            "status": self.status,
            "source": self.source,
        }


@dataclass(frozen=True)
class GradeVerdict:
    grade: str
    description: str
    checks: tuple[BoundCheck, ...]

    @property
    def status(self) -> str:
        s = {c.status for c in self.checks}
        return FAIL if FAIL in s else UNKNOWN if UNKNOWN in s else PASS

    @property
    def met(self) -> bool:
        return self.status == PASS

    def to_dict(self) -> dict:
        return {
            "grade": self.grade,
            "description": self.description,
            "status": self.status,
            "met": self.met,
            "checks": [c.to_dict() for c in self.checks],
        }


@dataclass(frozen=True)
class Verdict:
    grades: tuple[GradeVerdict, ...]
    metrics: dict = field(default_factory=dict)

    @property
    def met(self) -> list[str]:
        """Names of the grades the membrane meets."""
        return [g.grade for g in self.grades if g.met]

    def grade(self, name: str) -> GradeVerdict:
        for g in self.grades:
            if g.grade == name:
                return g
        raise KeyError(name)

    def to_dict(self) -> dict:
        met = self.met
        return {"grades_met": met, "met": met, "grades": [g.to_dict() for g in self.grades]}


def _check(value: float | None, kind: str, limit: float) -> tuple[float | None, str]:
    if value is None:
        return None, UNKNOWN
    margin = value - limit if kind == "min" else limit - value
    tol = _REL_TOL * max(1.0, abs(limit))
    return margin, PASS if margin >= -tol else FAIL


def judge(metrics: dict, grades: list[str] | None = None, spec: Spec | None = None) -> Verdict:
    """Judge metric-name keyed values (``SurfaceMetrics.to_dict() | SectionMetrics.to_dict()``)
    against every grade (or the named ones)."""
    spec = spec or load_spec()
    names = list(spec.grades) if grades is None else list(grades)
    out = []
    for name in names:
        if name not in spec.grades:
            raise KeyError(f"unknown grade {name!r}; choose from {', '.join(spec.grades)}")
        g = spec.grades[name]
        checks = []
        for b in g.bounds:
            v = quantity_value(metrics, b.quantity, spec)
            margin, status = _check(v, b.kind, b.limit)
            checks.append(BoundCheck(b.quantity, spec.labels.get(b.quantity, b.quantity), b.kind, b.limit, v, margin, status, b.source))
        out.append(GradeVerdict(name, g.description, tuple(checks)))
    return Verdict(tuple(out), dict(metrics))
