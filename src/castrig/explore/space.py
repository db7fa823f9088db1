"""What the search may change, and how a point of the search becomes a recipe and a profile.

Four process parameters shape the pores (DESIGN §3, ``castrig.sim.world.FilmModel``): the RH
near the membrane while the film forms, the polymer concentration, the cast volume, and the
total flow through the chamber (solvent evaporation speed). The first three live in the recipe;
the total flow is a profile setting (``control.total_flow_slpm``), so a point gets its own
profile copy. Each parameter is a range (searched) or a fixed number (held).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from castrig.errors import BadInput
from castrig.inputs import load_model
from castrig.recipe import model as rm
from castrig.rig.profile import ControlConfig, Profile

PARAMS: tuple[str, ...] = ("rh_pct", "concentration_mg_ml", "cast_volume_ml", "total_flow_slpm")

UNITS = {"rh_pct": "%RH", "concentration_mg_ml": "mg/mL", "cast_volume_ml": "mL", "total_flow_slpm": "slpm"}


def field_range(model: type, name: str) -> tuple[float, float]:
    """(low, high) of a pydantic model's numeric field, from its ``ge``/``gt`` and ``le``
    annotations: the model is the one place that holds a limit. A low of 0 from ``gt=0`` means
    "above 0" (:func:`within`); any other low is inclusive (``ge``)."""
    import annotated_types as at

    lo = hi = None
    for m in model.model_fields[name].metadata:  # type: ignore[attr-defined]
        if isinstance(m, at.Ge):
            lo = float(m.ge)
        elif isinstance(m, at.Gt):
            if m.gt != 0:
                raise ValueError(f"{model.__name__}.{name}: gt={m.gt} (only gt=0, 'above 0', is a range's low here)")
            lo = 0.0
        elif isinstance(m, at.Le):
            hi = float(m.le)
    if lo is None or hi is None:
        raise ValueError(f"{model.__name__}.{name} has no ge/gt and le: not a range")
    return lo, hi


#: What a recipe (and the profile's control.total_flow_slpm) takes for each parameter: (low, high),
#: inclusive; a low of 0 means "above 0". Read from the recipe's and the profile's models.
RECIPE_LIMITS: dict[str, tuple[float, float]] = {"rh_pct": field_range(rm.EvaporateStep, "setpoint_rh_pct"),
                                                 "concentration_mg_ml": field_range(rm.Recipe, "concentration_mg_ml"),
                                                 "cast_volume_ml": field_range(rm.CastStep, "volume_ml"),
                                                 "total_flow_slpm": field_range(ControlConfig, "total_flow_slpm")}


def within(name: str, value: float, limits: dict[str, tuple[float, float]] | None = None) -> bool:
    lo, hi = (limits or RECIPE_LIMITS)[name]
    return math.isfinite(value) and (lo < value if lo == 0 else lo <= value) and value <= hi


def rh_reach_at(profile: Profile, total_flow_slpm: float | None = None) -> tuple[float, float] | None:
    """(low, high) %RH the twin's chamber levels off at with the loop's total flow at
    ``total_flow_slpm`` (the profile's own by default): the twin's reach depends on it (sim.yaml:
    89.1 %RH at most at 0.2 slpm, 95.4 at 0.8, 96.9 at 2.0), and a trial runs on the profile with
    its point's flow (:func:`profile_for`). Its MFC pair's (:func:`castrig.recipe.compat.rh_reach_pct`)
    or its own chamber's (:func:`castrig.rig.twin_reach.chamber_twin_reach_pct`); ``None``: not a twin."""
    from castrig.recipe.compat import rh_reach_pct
    from castrig.rig.twin_reach import chamber_twin_reach_pct

    at = profile if total_flow_slpm is None else Profile.model_validate(profile_for(profile, total_flow_slpm))
    return rh_reach_pct(at) or chamber_twin_reach_pct(at)


def point_limits(profile: Profile, total_flow_slpm: float | None = None) -> dict[str, tuple[float, float]]:
    """What a point may hold with this profile: the recipe's limits, RH narrowed to what the
    twin's chamber levels off at with the point's total flow (:func:`rh_reach_at`). A trial's set
    point is held to the level itself, not to a band reaching it: the point's RH is what the map
    and the search say the membrane formed at."""
    limits = dict(RECIPE_LIMITS)
    reach = rh_reach_at(profile, total_flow_slpm)
    if reach is not None:
        lo, hi = limits["rh_pct"]
        limits["rh_pct"] = (max(lo, reach[0]), min(hi, reach[1]))
    return limits


class _Range(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    log: bool = Field(False, description="Search on a log scale (for ranges spanning decades).")

    @model_validator(mode="after")
    def _ordered(self) -> "_Range":
        if not self.low < self.high:  # type: ignore[attr-defined]
            raise ValueError(f"low ({self.low:g}) must be below high ({self.high:g})")  # type: ignore[attr-defined]
        return self


class RhRange(_Range):
    """RH setpoint near the membrane, %: the recipe's limits (breath-figure window)."""

    low: float = Field(55.0, ge=rm.RH_MIN_PCT, le=rm.RH_MAX_PCT, json_schema_extra={"unit": "%RH"}, description="Lowest RH setpoint tried.")
    high: float = Field(92.0, ge=rm.RH_MIN_PCT, le=rm.RH_MAX_PCT, json_schema_extra={"unit": "%RH"}, description="Highest RH setpoint tried.")


class ConcentrationRange(_Range):
    low: float = Field(1.0, gt=0, le=200, json_schema_extra={"unit": "mg/mL"}, description="Lowest concentration tried.")
    high: float = Field(40.0, gt=0, le=200, json_schema_extra={"unit": "mg/mL"}, description="Highest concentration tried.")
    log: bool = Field(True, description="Search on a log scale (for ranges spanning decades).")


class CastVolumeRange(_Range):
    low: float = Field(0.05, gt=0, le=20, json_schema_extra={"unit": "mL"}, description="Smallest cast volume tried.")
    high: float = Field(1.0, gt=0, le=20, json_schema_extra={"unit": "mL"}, description="Largest cast volume tried.")
    log: bool = Field(True, description="Search on a log scale (for ranges spanning decades).")


class FlowRange(_Range):
    low: float = Field(0.8, gt=0, le=100, json_schema_extra={"unit": "SLPM"}, description="Lowest total flow tried.")
    high: float = Field(4.0, gt=0, le=100, json_schema_extra={"unit": "SLPM"}, description="Highest total flow tried.")


class SearchSpace(BaseModel):
    """The ``--space`` file: a range ``{low, high, log}`` or a fixed number per parameter."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    rh_pct: RhRange | float = Field(default_factory=RhRange, json_schema_extra={"unit": "%RH"},
                                    description="RH setpoint of conditioning and evaporation: a range or a fixed value.")
    concentration_mg_ml: ConcentrationRange | float = Field(default_factory=ConcentrationRange, json_schema_extra={"unit": "mg/mL"},
                                                            description="Polymer concentration: a range or a fixed value.")
    cast_volume_ml: CastVolumeRange | float = Field(default_factory=CastVolumeRange, json_schema_extra={"unit": "mL"},
                                                    description="Cast volume: a range or a fixed value.")
    total_flow_slpm: FlowRange | float = Field(default_factory=FlowRange, json_schema_extra={"unit": "SLPM"},
                                               description="Total chamber flow (profile control.total_flow_slpm): a range or a fixed value.")

    @model_validator(mode="after")
    def _fixed_in_limits(self) -> "SearchSpace":
        for name in PARAMS:
            v = getattr(self, name)
            lo, hi = RECIPE_LIMITS[name]
            if isinstance(v, float) and not within(name, v):
                raise ValueError(f"{name} = {v:g}: fixed value outside {lo:g} to {hi:g} {UNITS[name]}")
        return self

    def searched(self) -> dict[str, _Range]:
        return {n: getattr(self, n) for n in PARAMS if isinstance(getattr(self, n), _Range)}

    def fixed(self) -> dict[str, float]:
        return {n: float(getattr(self, n)) for n in PARAMS if not isinstance(getattr(self, n), _Range)}

    def bounds(self, name: str) -> tuple[float, float]:
        v = getattr(self, name)
        return (v.low, v.high) if isinstance(v, _Range) else (float(v), float(v))

    def with_fixed(self, fixes: dict[str, float]) -> "SearchSpace":
        data = self.model_dump()
        for k, v in fixes.items():
            if k not in PARAMS:
                raise BadInput(f"--fix {k}=...: unknown parameter (allowed: one of {', '.join(PARAMS)})", field="--fix")
            data[k] = v
        try:
            return SearchSpace.model_validate(data)
        except ValidationError as exc:
            msgs = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise BadInput(f"--fix {', '.join(f'{k}={v:g}' for k, v in fixes.items())}: {msgs}", field="--fix") from None


def load_space(path: str | Path) -> SearchSpace:
    return load_model(SearchSpace, path)


def parse_fixes(items: list[str]) -> dict[str, float]:
    """``["total_flow_slpm=2"]`` → ``{"total_flow_slpm": 2.0}`` with a clear error otherwise."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            number = float(value)
        except ValueError:
            raise BadInput(f"--fix {item!r}: expected NAME=NUMBER with NAME one of {', '.join(PARAMS)}", field="--fix") from None
        key = name.strip()
        if key in out and out[key] != number and not (math.isnan(number) and math.isnan(out[key])):
            # (the last one was taken without a word: the search ran at a value the user may not have meant)
            raise BadInput(f"--fix {key} given twice, = {out[key]:g} and = {number:g} (allowed: one value per parameter)", field="--fix")
        out[key] = number
    return out


def default_template(support_pore_um: float) -> dict[str, Any]:
    """The demo's full cycle (condition, pre-wet, cast, evaporate, capture, analyse) as a template."""
    return {
        "name": "explore",
        "description": "",
        "polymer": "polystyrene",
        "solvent": "chloroform",
        "concentration_mg_ml": 5.0,
        "support_pore_um": support_pore_um,
        "steps": [
            {"type": "purge", "duration_s": 60},
            {"type": "condition", "setpoint_rh_pct": 70, "band_rh_pct": 1.0, "stable_for_s": 60, "timeout_s": 1200},
            {"type": "prewet", "volume_ml": 0.3, "rate_ml_min": 1.0},
            {"type": "cast", "volume_ml": 0.2, "rate_ml_min": 0.5},
            {"type": "evaporate", "setpoint_rh_pct": 70, "duration_s": 300, "band_rh_pct": 3.0, "max_out_of_band_s": 120},
            {"type": "capture", "views": ["reflected", "transmitted", "section"], "fields": 2},
            {"type": "analyse"},
            {"type": "purge", "duration_s": 60},
        ],
    }


def check_template(recipe: rm.Recipe, path: Path) -> None:
    """A template needs exactly one cast, an evaporate after it, and an analyse step."""
    kinds = [s.type for s in recipe.steps]
    if kinds.count("cast") != 1:
        raise BadInput(f"{path}: steps: a search template needs exactly one cast step (found {kinds.count('cast')})", file=str(path), field="steps")
    if "evaporate" not in kinds[kinds.index("cast"):]:
        raise BadInput(f"{path}: steps: a search template needs an evaporate step after its cast step", file=str(path), field="steps")
    if "analyse" not in kinds:
        raise BadInput(f"{path}: steps: a search template needs an analyse step (the search scores its verdict)", file=str(path), field="steps")


def evaporation_hold_s(cast_volume_ml: float, total_flow_slpm: float, template_s: float) -> float:
    """How long to hold RH after the cast: the solvent takes longer for more liquid and less flow
    (evaporation time ∝ √(volume/flow), DESIGN §3), so the hold grows with it — with a factor of
    safety, since a film that dries after RH control ends is a spoiled membrane."""
    scale = math.sqrt(cast_volume_ml / 0.2) * math.sqrt(2.0 / max(total_flow_slpm, 0.05))
    return float(min(86_400.0, max(template_s, 30.0 * math.ceil(300.0 * scale / 30.0))))


def apply_point(template: dict[str, Any], point: dict[str, float], *, name: str, grade: str, description: str = "") -> dict[str, Any]:
    """The template with the point's RH, concentration and cast volume, judged against ``grade``."""
    r = yaml.safe_load(yaml.safe_dump(template))  # deep copy of plain data
    r["name"] = name
    r["grade"] = grade
    if description:
        r["description"] = description
    r["concentration_mg_ml"] = round(point["concentration_mg_ml"], 4)
    rh = round(point["rh_pct"], 2)
    vol = round(point["cast_volume_ml"], 4)
    for s in r["steps"]:
        if s["type"] in ("condition", "evaporate"):
            s["setpoint_rh_pct"] = rh
        if s["type"] == "cast":
            s["volume_ml"] = vol
        if s["type"] == "evaporate":
            s["duration_s"] = evaporation_hold_s(vol, point["total_flow_slpm"], float(s.get("duration_s", 300)))
        if s["type"] == "analyse":
            s["grade"] = grade
    rm.Recipe.model_validate(r)  # a point inside the space always makes a valid recipe
    return tidy_recipe(r)


_RECIPE_ORDER = ("name", "description", "grade", "polymer", "solvent", "concentration_mg_ml", "support_pore_um", "steps")


def tidy_recipe(r: dict[str, Any]) -> dict[str, Any]:
    """Keys in the order a person reads a recipe (name first, each step's type first)."""
    out = {k: r[k] for k in _RECIPE_ORDER if k in r}
    out.update({k: v for k, v in r.items() if k not in out})
    out["steps"] = [{"type": st["type"], **{k: v for k, v in st.items() if k != "type"}} for st in r["steps"]]
    return out


def profile_for(profile: Profile, total_flow_slpm: float) -> dict[str, Any]:
    """A copy of the profile with the point's total flow (the store is chosen by the caller)."""
    data = profile.model_dump(mode="json")
    data["control"]["total_flow_slpm"] = round(total_flow_slpm, 4)
    data["store"] = None
    Profile.model_validate(data)
    return data


def check_space_for_profile(space: SearchSpace, profile: Profile, profile_path: Path, *,
                            space_file: Path | None = None, given: dict[str, str] | None = None) -> None:
    """The MFC pair must be able to carry the whole flow on either line (wet fraction 0 to 1), and
    the caster's syringe (``syringe_volume_ml``) the largest cast tried (one cast per trial):
    a trial beyond it would be refused by ``run``'s own check.

    A refusal names where the bound came from: ``given[name]`` (a flag, e.g. ``--fix
    cast_volume_ml``), else the field of ``space_file`` (``cast_volume_ml.high``), else the
    default search space's; and the profile's field that limits it."""
    d = profile.devices

    def where(name: str) -> tuple[str, str | None, str]:
        """How the bound was given (for the message), the file holding it, the field."""
        if given and name in given:
            return given[name], None, given[name].split()[0]
        field = f"{name}.high" if isinstance(getattr(space, name), _Range) else name
        if space_file is not None:
            return f"{space_file}: {field}", str(space_file), field
        return f"{field} (of the default search space, as no --space was given)", None, field

    _, v_hi = space.bounds("cast_volume_ml")
    held = None if d.caster is None else d.caster.syringe_volume_ml
    if held is not None and round(v_hi, 4) > held + 1e-9:
        said, file, field = where("cast_volume_ml")
        raise BadInput(
            f"{said} = {v_hi:g} mL: more than devices.caster's syringe holds (devices.caster.syringe_volume_ml "
            f"= {held:g} mL in {profile_path}) (allowed: up to {held:g} mL)", file=file or str(profile_path), field=field)
    _, q_hi = space.bounds("total_flow_slpm")
    for role in ("dry_mfc", "wet_mfc"):
        cfg = getattr(d, role)
        if cfg is not None and q_hi > cfg.full_scale_slpm:
            said, file, field = where("total_flow_slpm")
            raise BadInput(
                f"{said} = {q_hi:g} slpm: above devices.{role}.full_scale_slpm = {cfg.full_scale_slpm:g} in "
                f"{profile_path} (allowed: up to {cfg.full_scale_slpm:g} slpm)", file=file or str(profile_path), field=field)


def check_space_rh_reach(space: SearchSpace, profile: Profile, profile_path: Path, *,
                         space_file: Path | None = None, given: dict[str, str] | None = None) -> None:
    """The space's RH range within what the twin's chamber levels off at, at the space's lowest
    and its highest total flow (the reach moves monotonically with the flow within the MFCs' full
    scale: :func:`check_space_for_profile` holds the flow there first): a trial beyond it was
    refused by ``run``'s own check, the search ending (exit 2) with its folder made, the map
    retrying every point. Said before any folder is made."""
    q_lo, q_hi = space.bounds("total_flow_slpm")
    r_lo, r_hi = space.bounds("rh_pct")
    for q in sorted({q_lo, q_hi}):
        reach = rh_reach_at(profile, q)
        if reach is None or reach[0] - 1e-9 <= r_lo and r_hi <= reach[1] + 1e-9:
            continue
        bad = r_hi if r_hi > reach[1] + 1e-9 else r_lo
        end = "high" if bad == r_hi else "low"
        name = "rh_pct"
        if given and name in given:
            said, file, field = given[name], None, given[name].split()[0]
        else:
            field = f"{name}.{end}" if isinstance(space.rh_pct, _Range) else name
            said, file = ((f"{space_file}: {field}", str(space_file)) if space_file is not None else
                          (f"{field} (of the default search space, as no --space was given)", None))
        if given and "total_flow_slpm" in given:
            flow = f"{given['total_flow_slpm']} = {q:g} slpm"
        else:
            flow = f"total_flow_slpm{'' if q_lo == q_hi else '.low' if q == q_lo else '.high'} = {q:g} slpm"
        raise BadInput(f"{said} = {bad:g} %RH: beyond what the twin's chamber levels off at with the space's {flow} "
                       f"(allowed: {reach[0]:g} to {reach[1]:g} %RH at {q:g} slpm: the loop's driest to wettest air with the leak "
                       f"to the room, in {profile_path}; every trial's RH must be reached at every flow it may be "
                       f"tried with)", file=file or str(profile_path), field=field)


def point_label(point: dict[str, float]) -> str:
    return (f"RH {point['rh_pct']:.1f} %, c {point['concentration_mg_ml']:.2f} mg/mL, "
            f"V {point['cast_volume_ml']:.3f} mL, Q {point['total_flow_slpm']:.2f} slpm")
