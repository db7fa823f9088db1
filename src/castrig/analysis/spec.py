"""The membrane specification, loaded from ``spec.yaml`` (claims as data, not code)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
import math
from pathlib import Path
from typing import Literal, get_args

__all__ = ["GRADE_NAMES", "Bound", "Grade", "GradeName", "Spec", "load_spec", "quantity_value"]

#: The grades ``spec.yaml`` defines (claims 1-4), as recipes, lot checks and the CLI name them.
GradeName = Literal["claim1", "claim2", "claim3", "claim4"]
GRADE_NAMES: tuple[str, ...] = get_args(GradeName)


@dataclass(frozen=True)
class Bound:
    """One bound: ``kind`` is "min" or "max" (inclusive) or "gt" (strictly above: a "present"
    bound, the limit 0)."""

    quantity: str
    kind: str
    limit: float
    source: str  # grade that declared it (claim1 for inherited bounds)


@dataclass(frozen=True)
class Grade:
    name: str
    description: str
    bounds: tuple[Bound, ...]


@dataclass(frozen=True)
class Spec:
    grades: dict[str, Grade]
    ratios: dict[str, tuple[str, str]]
    labels: dict[str, str]


def _parse(doc: dict) -> Spec:
    ratios: dict[str, tuple[str, str]] = {}
    labels: dict[str, str] = {}
    for name, q in (doc.get("quantities") or {}).items():
        if q.get("ratio") is not None:
            num, den = q["ratio"]
            ratios[name] = (num, den)
        labels[name] = q.get("label", name)
    raw = doc["grades"]

    def own(name: str) -> list[Bound]:
        out = []
        for b in raw[name].get("bounds", []):
            for kind in ("min", "max"):
                if b.get(kind) is not None:
                    out.append(Bound(b["quantity"], kind, float(b[kind]), name))
            if b.get("present"):  # the feature is there: value > 0 (kind "gt")
                out.append(Bound(b["quantity"], "gt", 0.0, name))
        return out

    def collect(name: str, seen: tuple[str, ...] = ()) -> list[Bound]:
        if name in seen:
            raise ValueError(f"spec: grade {name} includes itself")
        if name not in raw:
            raise ValueError(f"spec: unknown grade {name!r}")
        out: list[Bound] = []
        for inc in raw[name].get("includes", []) or []:
            out += collect(inc, seen + (name,))
        return out + own(name)

    grades = {
        name: Grade(name, raw[name].get("description", name), tuple(collect(name)))
        for name in raw
    }
    return Spec(grades, ratios, labels)


@lru_cache(maxsize=None)
def _default() -> Spec:
    import yaml  # (here: the grades' names are read by commands that read no YAML, `castrig runs`)

    text = resources.files("castrig.analysis").joinpath("spec.yaml").read_text(encoding="utf-8")
    return _parse(yaml.safe_load(text))


def load_spec(path: str | Path | None = None) -> Spec:
    """The packaged specification, or one from a YAML file of the same layout."""
    if path is None:
        return _default()
    import yaml

    return _parse(yaml.safe_load(Path(path).read_text(encoding="utf-8")))


def quantity_value(metrics: dict, quantity: str, spec: Spec) -> float | None:
    """A measured metric or a derived ratio; None when any input is missing or not finite."""

    def get(k: str) -> float | None:
        v = metrics.get(k)
        if v is None:
            return None
        try:
            f = float(v)
        except (TypeError, ValueError):
            return None
        return f if math.isfinite(f) else None

    if quantity in spec.ratios:
        num, den = (get(k) for k in spec.ratios[quantity])
        if num is None or den is None or den == 0:
            return None
        return num / den
    return get(quantity)
