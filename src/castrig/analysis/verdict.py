"""Does a membrane meet a grade? Every bound, its measured value, margin and status.

A metric that could not be measured makes its bound "unknown", and a grade with any unknown
bound is not met (never a pass by default); so does a metric whose quality flag says it was not
measured at all (:data:`~castrig.analysis.quality.UNMEASURABLE_FLAGS`: a saturated image, a
transmitted view of another field), whatever number the analysis returned. With the metrics'
95 % intervals (issue 16) a bound
that lies inside its metric's interval is "marginal", and so is a passing bound on a metric that
carries a quality flag (never silently trusted), and so is a "present" bound on a feature not
seen whose interval reaches above zero (its absence is not shown either); a grade is met only
when every bound passes.
A marginal bound says what would settle it: more fields (the statistical part dominates) or a
finer pixel size (the half-pixel edge part dominates, or the pores are under-resolved).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .quality import UNMEASURABLE_FLAGS
from .spec import Spec, load_spec, quantity_value

__all__ = ["BoundCheck", "GradeVerdict", "Verdict", "judge"]

PASS, FAIL, UNKNOWN, MARGINAL = "pass", "fail", "unknown", "marginal"
_REL_TOL = 1e-9  # inclusive bounds survive floating-point rounding of derived ratios


@dataclass(frozen=True)
class BoundCheck:
    quantity: str
    label: str
    kind: str  # "min" | "max" | "gt" (a "present" bound: value > limit)
    limit: float
    value: float | None
    margin: float | None  # value - limit for min, limit - value for max; >= 0 passes
    status: str  # pass | fail | unknown | marginal
    source: str  # grade that declared the bound
    interval: tuple[float, float] | None = None  # 95 % interval of the value
    flags: tuple[str, ...] = ()  # quality flags of the metric(s) behind the value
    advice: str | None = None  # for a marginal bound: what would settle it

    def to_dict(self) -> dict:
        d = {
            "quantity": self.quantity,
            "label": self.label,
            "kind": self.kind,
            "limit": self.limit,
            "value": self.value,
            "margin": self.margin,
            "status": self.status,
            "source": self.source,
        }
        if self.interval is not None:
            d["interval"] = [self.interval[0], self.interval[1]]
        if self.flags:
            d["flags"] = list(self.flags)
        if self.advice:
            d["advice"] = self.advice
        return d


@dataclass(frozen=True)
class GradeVerdict:
    grade: str
    description: str
    checks: tuple[BoundCheck, ...]

    @property
    def status(self) -> str:
        s = {c.status for c in self.checks}
        return FAIL if FAIL in s else UNKNOWN if UNKNOWN in s else MARGINAL if MARGINAL in s else PASS

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
    margin = value - limit if kind in ("min", "gt") else limit - value
    if kind == "gt":  # a "present" bound: strictly above the limit
        return margin, PASS if margin > 0 else FAIL
    tol = _REL_TOL * max(1.0, abs(limit))
    return margin, PASS if margin >= -tol else FAIL


def _interval(quantity: str, intervals: dict, spec: Spec) -> tuple[float, float] | None:
    """95 % interval of a metric, or of a derived ratio from its parts' intervals."""
    def get(k):
        v = intervals.get(k)
        return (float(v[0]), float(v[1])) if v is not None and len(v) == 2 else None

    if quantity in spec.ratios:
        num, den = (get(k) for k in spec.ratios[quantity])
        if num is None or den is None or den[0] <= 0:
            return None
        return (num[0] / den[1], num[1] / den[0])
    return get(quantity)


def _flags_of(quantity: str, flagged: dict, spec: Spec) -> tuple[str, ...]:
    keys = spec.ratios.get(quantity, (quantity,))
    return tuple(dict.fromkeys(f for k in keys for f in flagged.get(k, ())))


#: what settles a pore communication the section's pixel size cannot show (its own flag)
_FINER_SECTION = ("image the section at a finer pixel size (its cavities under 9.5 px high: an opening between two, "
                  "about a fifth of them, is under the 1.9 px a section shows, so more fields at this pixel size would "
                  "see no more of them)")


def _advice(flags: tuple[str, ...], value: float, interval: tuple[float, float], stat_dominant: bool | None) -> str:
    if "communication_under_resolved" in flags:
        return _FINER_SECTION
    if any(f.endswith("under_resolved") for f in flags) or "blurred" in flags:
        return "image at a finer pixel size (pores under-resolved or blurred)"
    if "too_few_pores" in flags:
        return "measure more fields (too few pores)"
    if stat_dominant is False:
        return "image at a finer pixel size (the half-pixel edge uncertainty dominates)"
    return "measure more fields (the statistical uncertainty dominates)"


def _unresolved(flags: tuple[str, ...]) -> bool:
    return any(f.endswith("under_resolved") for f in flags) or "blurred" in flags


def _flag_advice(flags: tuple[str, ...]) -> str | None:
    if "communication_under_resolved" in flags:
        return _FINER_SECTION
    if any(f.endswith("under_resolved") for f in flags) or "blurred" in flags:
        return "image at a finer pixel size (pores under-resolved or blurred)"
    if "too_few_pores" in flags:
        return "measure more fields (too few pores)"
    if "thin_walls" in flags:
        return "image at a finer pixel size (the walls between the pores are too thin to read the film's level)"
    if "low_contrast" in flags:
        return ("image with more contrast between pores and film (the pores stand no deeper than the film's own "
                "texture: pores or a pore-free film, the image does not tell)")
    if "appearance_ambiguous" in flags:
        return ("say which microscope made the top view: --appearance sem or optical (a bright ridge round the "
                "pores is an SEM's rim or a defocus halo; the image alone does not tell)")
    if "no_lattice_order" in flags:
        return "check the field (the pores show no honeycomb order)"
    if "interface_lost" in flags:
        return "check the section (its edges were lost over more than a tenth of it)"
    if "no_background" in flags:
        return "check the section view (no background above the film: a top view, or cut at the film's top)"
    if "transmitted_mismatch" in flags:
        return "check the transmitted view (it does not show this field's pores: another file, or not registered)"
    return None


def _unproven_absence(kind: str, limit: float, value: float | None, iv: tuple[float, float]) -> bool:
    """A "present" bound (value > limit) measured at the limit, with an interval that reaches
    above it: nothing was seen, yet the data do not show it absent (the interval's lower end sits
    at the limit only because the quantity cannot go below it: none joined of the cavities seen,
    95 % interval [0, 0.13]). Marginal, not failed: more fields would settle it."""
    return kind == "gt" and value is not None and value <= limit and iv[0] <= limit < iv[1]


def judge(metrics: dict, grades: list[str] | None = None, spec: Spec | None = None, *,
          intervals: dict | None = None, flagged: dict | None = None, stat_dominant: dict | None = None) -> Verdict:
    """Judge metric-name keyed values (``SurfaceMetrics.to_dict() | SectionMetrics.to_dict()``)
    against every grade (or the named ones).

    ``intervals``: metric → (lo, hi) 95 % interval; ``flagged``: metric → quality flags (as
    ``SurfaceMetrics.quality()["flagged"]``); ``stat_dominant``: metric → True when its interval
    is mostly statistical (used only for the advice of a marginal bound)."""
    intervals = intervals or {}
    flagged = flagged or {}
    stat_dominant = stat_dominant or {}
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
            iv = _interval(b.quantity, intervals, spec) if v is not None else None
            fl = _flags_of(b.quantity, flagged, spec) if v is not None else ()
            advice = None
            # (pores under-resolved or blurred match their transmitted view poorly whatever it is: the
            # mismatch may be the pixel size's, and a finer one is what to do — the twin's own pair at
            # 0.25 µm for 1 µm pores is flagged so)
            lost = [f for f in fl if f in UNMEASURABLE_FLAGS and not (f == "transmitted_mismatch" and _unresolved(fl))]
            if lost:  # a number came out, but nothing was measured: not a pass, not a fail
                v, margin, status, iv = None, None, UNKNOWN, None
                advice = ("not measured: image again with exposure and gain inside the detector's range" if "saturated" in lost
                          else f"not measured: {_flag_advice(tuple(lost))}")
            inside = iv is not None and (iv[0] < b.limit < iv[1] or _unproven_absence(b.kind, b.limit, v, iv))
            if status != UNKNOWN and (inside or (status == PASS and fl)):
                status = MARGINAL
                keys = spec.ratios.get(b.quantity, (b.quantity,))
                sd = [stat_dominant[k] for k in keys if k in stat_dominant]
                advice = _advice(fl, v, iv or (v, v), all(sd) if sd else None)
                if not inside:  # the bound is outside the interval:
                    advice = f"passes, but flagged {', '.join(fl)}: {_flag_advice(fl) or advice}"  # the flag made it marginal
            checks.append(BoundCheck(b.quantity, spec.labels.get(b.quantity, b.quantity), b.kind, b.limit, v, margin,
                                     status, b.source, iv, fl, advice))
        out.append(GradeVerdict(name, g.description, tuple(checks)))
    return Verdict(tuple(out), dict(metrics))
