"""The recipe file: what the operator asks the rig to do, validated before anything moves.

Every number carries its unit in its name and its allowed range in its type, so a bad recipe is
rejected at load with the file, the step and the field named (see :mod:`castrig.inputs`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from castrig.analysis.spec import GradeName as Grade
from castrig.inputs import load_model

#: The process window of the breath-figure method: RH near the membrane 20-100 %.
RH_MIN_PCT = 20.0
RH_MAX_PCT = 100.0

#: The longest any step may take (s): every explicit duration is capped here, and a pump step's
#: dispensing time (volume / rate) too — a run does not silently last for weeks.
MAX_STEP_S = 86_400
#: ... and the whole recipe's least run time (:meth:`Recipe.total_duration_s`): 20 000 day-long
#: waits passed, a run of 55 years on the rig (36 h and ~130 GB of record on the twin). Longer
#: campaigns are several recipes, run one after another by `castrig queue`.
MAX_RECIPE_S = 7 * 86_400

RhPct = Annotated[float, Field(ge=RH_MIN_PCT, le=RH_MAX_PCT, json_schema_extra={"unit": "%RH"})]
View = Literal["reflected", "transmitted", "section"]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    label: str = Field("", description="Free text shown in the live display, the journal and the report.")


class PurgeStep(_Step):
    """Dry air through the chamber (wet air off) for a while."""

    type: Literal["purge"]
    duration_s: float = Field(..., gt=0, le=MAX_STEP_S, description="How long dry air flows through the chamber.",
                              json_schema_extra={"unit": "s"})
    flow_slpm: float | None = Field(None, gt=0, le=100, json_schema_extra={"unit": "SLPM"},
                                    description="Dry-air flow during the purge; default: the profile's control.purge_flow_slpm.")


class ConditionStep(_Step):
    """Bring RH near the membrane to a setpoint and wait until it holds within a band."""

    type: Literal["condition"]
    setpoint_rh_pct: RhPct = Field(..., description="RH near the membrane to reach; the breath-figure window is 20-100 %RH.")
    band_rh_pct: float = Field(1.0, gt=0, le=20, json_schema_extra={"unit": "%RH"},
                               description="RH counts as settled within setpoint ± this band.")
    stable_for_s: float = Field(60.0, ge=0, le=MAX_STEP_S, json_schema_extra={"unit": "s"},
                                description="How long RH must stay in the band before the step is done.")
    timeout_s: float = Field(1800.0, gt=0, le=MAX_STEP_S, json_schema_extra={"unit": "s"},
                             description="Not settled by then: the run faults and the rig goes to the safe state.")
    ramp_rh_pct_per_min: float | None = Field(None, gt=0, le=100, json_schema_extra={"unit": "%RH/min"},
                                              description="Move the setpoint at this rate; default: jump to it at once.")

    @model_validator(mode="after")
    def _can_settle(self) -> "ConditionStep":
        """RH must hold for ``stable_for_s`` before ``timeout_s`` ends the step: a longer hold
        than the timeout faults the run there, every time (a recorded recipe too: ``castrig
        resume`` refuses it, saying why, as it would stop at that step again)."""
        if self.stable_for_s > self.timeout_s:
            raise ValueError(
                f"stable_for_s = {self.stable_for_s:g}: RH must hold that long before timeout_s = {self.timeout_s:g} s "
                f"ends the step, so the step could never settle and the run would fault there (allowed: stable_for_s "
                f"<= timeout_s)")
        return self

    def least_time_s(self, from_rh_pct: float | None) -> float:
        """The shortest time the step can take with the setpoint starting at ``from_rh_pct``
        (None: unknown): the ramp to the setpoint, then the hold. The runner counts RH as settled
        only once the ramp has reached the setpoint (castrig.recipe.runner)."""
        ramp_s = 0.0
        if self.ramp_rh_pct_per_min and from_rh_pct is not None:
            ramp_s = abs(self.setpoint_rh_pct - from_rh_pct) / (self.ramp_rh_pct_per_min / 60.0)
        return ramp_s + self.stable_for_s


class _PumpStep(_Step):
    """A step that dispenses ``volume_ml`` at ``rate_ml_min``: it lasts volume / rate."""

    @model_validator(mode="after")
    def _dispensing_time_capped(self) -> "_PumpStep":
        volume, rate = self.volume_ml, self.rate_ml_min  # type: ignore[attr-defined]
        seconds = 60.0 * volume / rate
        if seconds > MAX_STEP_S:
            raise ValueError(
                f"rate_ml_min = {rate:g}: dispensing volume_ml = {volume:g} at this rate takes {seconds:.6g} s "
                f"({seconds / 86_400:.3g} days) (allowed: at most {MAX_STEP_S} s per step, so for {volume:g} mL "
                f"rate_ml_min at least {volume * 60.0 / MAX_STEP_S:.4g})")
        return self


class PrewetStep(_PumpStep):
    """Wet the porous support with water from the water pump."""

    type: Literal["prewet"]
    volume_ml: float = Field(..., gt=0, le=50, json_schema_extra={"unit": "mL"},
                             description="Water dispensed onto the support; films over water give through-pores.")
    rate_ml_min: float = Field(..., gt=0, le=50, json_schema_extra={"unit": "mL/min"},
                               description="Dispensing rate of the water pump.")


class CastStep(_PumpStep):
    """Cast the polymer solution onto the wet support with the caster pump."""

    type: Literal["cast"]
    volume_ml: float = Field(..., gt=0, le=20, json_schema_extra={"unit": "mL"},
                             description="Polymer solution cast on a fresh support position; every cast starts a new membrane.")
    rate_ml_min: float = Field(..., gt=0, le=50, json_schema_extra={"unit": "mL/min"},
                               description="Dispensing rate of the caster pump.")


class EvaporateStep(_Step):
    """Hold RH while the solvent evaporates and the breath figure forms."""

    type: Literal["evaporate"]
    setpoint_rh_pct: RhPct = Field(..., description="RH held near the film while it dries; higher RH gives larger pores.")
    duration_s: float = Field(..., gt=0, le=MAX_STEP_S, json_schema_extra={"unit": "s"},
                              description="How long to hold: until the solvent and the water are gone. Film time: a "
                                          "pause during it counts (the film dries on at the RH the loop holds, its "
                                          "band checked as the rest), and its record says how long it was paused.")
    band_rh_pct: float = Field(3.0, gt=0, le=20, json_schema_extra={"unit": "%RH"},
                               description="RH farther than this from the setpoint counts as out of band.")
    max_out_of_band_s: float = Field(120.0, ge=0, le=MAX_STEP_S, json_schema_extra={"unit": "s"},
                                     description="Out of band longer than this in one stretch: the interlock aborts the run.")


class CaptureStep(_Step):
    """Take micrographs of the membrane."""

    type: Literal["capture"]
    views: list[View] = Field(default_factory=lambda: ["reflected", "transmitted", "section"], min_length=1,
                              json_schema_extra={"uniqueItems": True},
                              description="What to image: reflected (top view, pores), transmitted (through-pores), "
                                          "section (thickness).")
    fields: int = Field(1, ge=1, le=50, description="Fields of view per view; more fields, more pores measured.")

    @field_validator("views")
    @classmethod
    def _each_view_once(cls, views: list[str], info: ValidationInfo) -> list[str]:
        """A view given twice passed check, and the run faulted at that capture hours in (its second
        image took the first's name: 'already recorded ... never overwritten'), the membrane never
        analysed and the recipe's later membranes never cast; ``fields`` takes more images of a view.

        A recorded recipe (``castrig resume`` of a run an earlier castrig took so) takes each view
        once, in its first place: refused, the run could not be finished at all (its membrane in
        progress lost), and what the recipe meant is plain — one image per field of each view."""
        twice = sorted({v for v in views if views.count(v) > 1})
        if twice and (info.context or {}).get("recorded"):
            return list(dict.fromkeys(views))
        if twice:
            raise ValueError(f"{' and '.join(repr(v) for v in twice)} given more than once (allowed: each of reflected, "
                             "transmitted, section at most once; for more images of a view raise fields)")
        return views


class AnalyseStep(_Step):
    """Measure the captured micrographs and judge them against a grade; RH control goes on meanwhile."""

    type: Literal["analyse"]
    grade: Grade | None = Field(None, description="Grade to judge against; default: the recipe's grade.")


class WaitStep(_Step):
    """Hold the current state (RH loop keeps running, samples keep coming)."""

    type: Literal["wait"]
    duration_s: float = Field(..., gt=0, le=MAX_STEP_S, json_schema_extra={"unit": "s"},
                              description="How long to hold; the RH loop keeps running and samples keep coming.")


Step = Annotated[
    Union[PurgeStep, ConditionStep, PrewetStep, CastStep, EvaporateStep, CaptureStep, AnalyseStep, WaitStep],
    Field(discriminator="type"),
]


#: A recipe's name, in characters at most: it names the run folder (``<stamp>-<name>``) and the lists.
NAME_MAX = 80


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)
    #: A file of another kind given as a recipe, known by a field of its own (see load_model).
    OTHER_KINDS: ClassVar[dict[str, str]] = {"devices": "a hardware profile (it has `devices:`): give it with --profile"}

    name: str = Field(..., min_length=1, max_length=NAME_MAX, description="Short name; names the run folder and the run lists.")
    description: str = Field("", description="Free text: what the recipe is for.")
    grade: Grade | None = Field(None, description="Target grade of the specification (claims 1-4); the run says which membranes met it.")
    polymer: str = Field("polystyrene", description="Polymer of the casting solution (recorded with every membrane).")
    solvent: Literal["chloroform", "dichloromethane", "carbon_disulfide", "toluene"] = Field(
        "chloroform", description="Solvent of the casting solution; it sets how fast the film dries.")
    concentration_mg_ml: float = Field(5.0, gt=0, le=200, json_schema_extra={"unit": "mg/mL"},
                                       description="Polymer concentration; dilute gives through-pores, concentrated thicker films.")
    support_pore_um: float | None = Field(None, gt=0, le=1000, json_schema_extra={"unit": "µm"},
                                          description="Pore size of the porous support (recorded; the twin uses it).")
    steps: list[Step] = Field(..., min_length=1, description="What the rig does, in order; see the step types.")

    @field_validator("name")
    @classmethod
    def _visible_name(cls, name: str) -> str:
        """A name of spaces only lists nothing to tell the run by (and named its folder "<stamp>-")."""
        if not name.strip():
            raise ValueError("only spaces: nothing to tell the run by in the lists (allowed: 1-80 characters, "
                             "at least one of them visible)")
        return name

    @model_validator(mode="after")
    def _analyse_after_capture(self, info: ValidationInfo) -> "Recipe":
        """Every analyse measures a capture of its own, once.

        An analyse measures the captures of the membrane of the last cast before it, each view's
        latest (with no cast before it: the run's captures, whatever is under the camera). That capture
        must lie between that cast and the analyse — a capture of an earlier membrane is not this
        one's (the run would fault there: "no micrographs of membrane …"). And a membrane is judged
        once: it has one record, one verdict and one lot, and its verdict lists every grade it
        meets whatever grade the analyse names, so a second analyse of it would not be recorded.
        Step numbers in the messages are 1-based, as everywhere people read them.

        A recorded recipe (validation context ``{"recorded": True}``: ``castrig resume``) may hold a
        second analyse of one membrane, as castrig took it before this rule: the runner passes
        over it ("already judged"), so its run resumes as it would have run.
        """
        recorded = bool((info.context or {}).get("recorded"))
        cast: int | None = None  # the last cast so far (0-based)
        k = 0  # membranes cast so far
        captured = False  # a capture since that cast (or since the start, before any cast)
        analysed: int | None = None  # the analyse of that membrane (or of the run, before any cast)
        prewet: int | None = None  # the next membrane's pre-wet, once it came after that cast
        for i, step in enumerate(self.steps):
            if isinstance(step, PrewetStep) and cast is not None:
                prewet = i
            elif isinstance(step, CastStep):
                cast, k, captured, analysed, prewet = i, k + 1, False, None, None
            if isinstance(step, (CaptureStep, AnalyseStep)) and prewet is not None and not recorded:
                # the pre-wet moves the stage to the next support position: the camera sees the
                # wet support of a membrane not cast yet, and the run would file it as m{k}
                raise ValueError(
                    f"steps[{i}] ({step.type}): step {i + 1} comes after the pre-wet at step {prewet + 1}, which "
                    f"wets the next membrane's support, and before that membrane's cast: it would {step.type} "
                    f"that bare support as membrane m{k} (cast at step {cast + 1}); put it before step "
                    f"{prewet + 1}")  # type: ignore[operator]
            if isinstance(step, CaptureStep):
                captured = True
            elif isinstance(step, AnalyseStep):
                if cast is None and not captured:
                    raise ValueError(f"steps[{i}] (analyse) needs a capture step before it")
                what = f"membrane m{k} (cast at step {cast + 1})" if cast is not None else \
                    "what is under the camera (no cast before it)"
                if not captured:
                    raise ValueError(
                        f"steps[{i}] (analyse): step {i + 1} would measure {what}, which has no capture: an analyse "
                        f"measures the captures of the membrane of the last cast before it (the run would fault "
                        f"at step {i + 1}, and the membranes after it would never be cast); add a capture step "
                        f"between step {cast + 1} and step {i + 1}")  # type: ignore[operator]
                if analysed is not None and not recorded:
                    raise ValueError(
                        f"steps[{i}] (analyse): step {i + 1} would analyse {what} a second time, after step "
                        f"{analysed + 1}: a membrane is judged once (one verdict, listing every grade it meets, "
                        f"whatever grade the analyse names); keep one analyse per membrane, after the capture it "
                        f"should measure")
                analysed = i
        return self

    @model_validator(mode="after")
    def _ramps_fit_their_timeout(self) -> "Recipe":
        """A condition step's ramp starts from the setpoint the step before left (a condition's
        or an evaporation's, unless a purge came between: the loop restarts from the measured
        RH, unknown here). Where that start is known and the ramp plus the hold cannot end
        before the step's timeout, the run would fault there, hours in: refused now (and on
        ``castrig resume`` of a run that recorded such a recipe: it would stop there again)."""
        setpoint: tuple[int, float] | None = None  # (step, setpoint) the loop holds when a step starts
        for i, step in enumerate(self.steps):
            if isinstance(step, ConditionStep):
                if setpoint is not None and step.ramp_rh_pct_per_min:
                    need_s = step.least_time_s(setpoint[1])
                    if need_s > step.timeout_s:
                        k, sp = setpoint
                        ramp_s = need_s - step.stable_for_s
                        fastest = _up_3(abs(step.setpoint_rh_pct - sp) * 60.0 / max(step.timeout_s - step.stable_for_s, 1e-9))
                        faster = f", or ramp_rh_pct_per_min >= {fastest:.3g}" if fastest <= 100 else ""  # (its own bound: 100)
                        raise ValueError(
                            f"steps[{i}].timeout_s = {step.timeout_s:g}: the setpoint ramps from {sp:g} %RH (step "
                            f"{k + 1}'s) to {step.setpoint_rh_pct:g} %RH at {step.ramp_rh_pct_per_min:g} %RH/min, "
                            f"{ramp_s:.0f} s, and RH must then hold for stable_for_s = {step.stable_for_s:g} s: the "
                            f"step cannot settle in under {need_s:.0f} s and the run would fault there (allowed: "
                            f"timeout_s >= {math.ceil(need_s)}{faster}; leave RH time to follow the ramp)")
                setpoint = (i, step.setpoint_rh_pct)
            elif isinstance(step, EvaporateStep):
                setpoint = (i, step.setpoint_rh_pct)
            elif isinstance(step, PurgeStep):
                setpoint = None
        return self

    @model_validator(mode="after")
    def _bounded(self, info: ValidationInfo) -> "Recipe":
        if (info.context or {}).get("recorded"):  # a run castrig took before this rule resumes as it was
            return self
        total_s = self.total_duration_s()
        if total_s > MAX_RECIPE_S:
            raise ValueError(f"steps: the recipe takes at least {total_s / 3600:.1f} h (its durations, RH holds and "
                             f"dispensing times together; allowed: at most {MAX_RECIPE_S / 3600:g} h = "
                             f"{MAX_RECIPE_S / 86_400:g} days); split it into recipes and run them with `castrig queue`")
        return self

    def total_duration_s(self) -> float:
        """A lower bound on the run time (for progress displays)."""
        total = 0.0
        for s in self.steps:
            total += getattr(s, "duration_s", 0.0) or 0.0
            if isinstance(s, ConditionStep):
                total += s.stable_for_s
            if isinstance(s, (PrewetStep, CastStep)):
                total += 60.0 * s.volume_ml / s.rate_ml_min
        return total


def _up_3(x: float) -> float:
    """``x`` rounded up at its third significant digit (a bound quoted in a message passes itself)."""
    if x <= 0:
        return x
    q = 10.0 ** (math.floor(math.log10(x)) - 2)
    return math.ceil(x / q - 1e-9) * q


def load_recipe(path: str | Path) -> Recipe:
    return load_model(Recipe, path)


def load_recipe_with_text(path: str | Path) -> tuple[Recipe, bytes]:
    """The recipe in ``path`` and the bytes it was validated from, read once: the run keeps those
    bytes as ``RUN/recipe.yaml`` (a pipe such as ``<(cat recipe.yaml)`` is empty when read again)."""
    from castrig.inputs import parse_yaml, read_yaml_bytes

    raw = read_yaml_bytes(path)
    return load_model(Recipe, path, data=parse_yaml(path, raw)), raw
