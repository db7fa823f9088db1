"""The recipe file: what the operator asks the rig to do, validated before anything moves.

Every number carries its unit in its name and its allowed range in its type, so a bad recipe is
rejected at load with the file, the step and the field named (see :mod:`castrig.inputs`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from castrig.inputs import load_model

#: The process window of the breath-figure method: RH near the membrane 20-100 %.
RH_MIN_PCT = 20.0
RH_MAX_PCT = 100.0

RhPct = Annotated[float, Field(ge=RH_MIN_PCT, le=RH_MAX_PCT)]
Grade = Literal["claim1", "claim2", "claim3", "claim4"]
View = Literal["reflected", "transmitted", "section"]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = ""


class PurgeStep(_Step):
    """Dry air through the chamber (wet air off) for a while."""

    type: Literal["purge"]
    duration_s: float = Field(..., gt=0, le=86_400)
    flow_slpm: float | None = Field(None, gt=0, le=100)


class ConditionStep(_Step):
    """Bring RH near the membrane to a setpoint and wait until it holds within a band."""

    type: Literal["condition"]
    setpoint_rh_pct: RhPct
    band_rh_pct: float = Field(1.0, gt=0, le=20)
    stable_for_s: float = Field(60.0, ge=0, le=86_400)
    timeout_s: float = Field(1800.0, gt=0, le=86_400)
    ramp_rh_pct_per_min: float | None = Field(None, gt=0, le=100)


class PrewetStep(_Step):
    """Wet the porous support with water from the water pump."""

    type: Literal["prewet"]
    volume_ml: float = Field(..., gt=0, le=50)
    rate_ml_min: float = Field(..., gt=0, le=50)


class CastStep(_Step):
    """Cast the polymer solution onto the wet support with the caster pump."""

    type: Literal["cast"]
    volume_ml: float = Field(..., gt=0, le=20)
    rate_ml_min: float = Field(..., gt=0, le=50)


class EvaporateStep(_Step):
    """Hold RH while the solvent evaporates and the breath figure forms."""

    type: Literal["evaporate"]
    setpoint_rh_pct: RhPct
    duration_s: float = Field(..., gt=0, le=86_400)
    band_rh_pct: float = Field(3.0, gt=0, le=20)
    max_out_of_band_s: float = Field(120.0, ge=0, le=86_400)


class CaptureStep(_Step):
    """Take micrographs of the membrane."""

    type: Literal["capture"]
    views: list[View] = Field(default_factory=lambda: ["reflected", "transmitted", "section"], min_length=1)
    fields: int = Field(1, ge=1, le=50)


class AnalyseStep(_Step):
    """Measure the captured micrographs and judge them against a grade of the specification."""

    type: Literal["analyse"]
    grade: Grade | None = None


class WaitStep(_Step):
    """Hold the current state (RH loop keeps running, samples keep coming)."""

    type: Literal["wait"]
    duration_s: float = Field(..., gt=0, le=86_400)


Step = Annotated[
    Union[PurgeStep, ConditionStep, PrewetStep, CastStep, EvaporateStep, CaptureStep, AnalyseStep, WaitStep],
    Field(discriminator="type"),
]


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=80)
    description: str = ""
    grade: Grade | None = None
    polymer: str = "polystyrene"
    solvent: Literal["chloroform", "dichloromethane", "carbon_disulfide", "toluene"] = "chloroform"
    concentration_mg_ml: float = Field(5.0, gt=0, le=200)
    support_pore_um: float | None = Field(None, gt=0, le=1000)
    steps: list[Step] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _analyse_after_capture(self) -> "Recipe":
        seen_capture = False
        for i, step in enumerate(self.steps):
            if isinstance(step, CaptureStep):
                seen_capture = True
            if isinstance(step, AnalyseStep) and not seen_capture:
                raise ValueError(f"steps[{i}] (analyse) needs a capture step before it")
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


def load_recipe(path: str | Path) -> Recipe:
    return load_model(Recipe, path)
