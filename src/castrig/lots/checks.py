"""Filter builds and co-culture set-ups: their files (pydantic) and their checks against the claims.

A lot already assigned to the other use (``castrig lots assign``) is refused by the check of
this use, naming the use it has: the two uses exclude each other. A lot must come from a run
that ended ``completed`` (as the example files say): a lot of a crashed run is refused, naming the
run and its outcome (``castrig resume`` it to the end first), as is one of an aborted, faulted or
interrupted run. A filter build lists each lot once (``layers`` says how many layers are cut).

Two layers, as for recipes: the model rejects what is not physically meaningful (a negative
area, no lots, a missing field) with the file, field and allowed range; the check then judges a
valid build against the claims' bounds, each bound with its value and margin, and names every
bound it misses in the same file/field/allowed-range form.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from castrig.analysis.spec import GradeName as Grade
from castrig.errors import BadInput
from castrig.inputs import load_model
from castrig.lots.registry import SUITABLE_GRADES, Lot, open_run_refusal

# -- blood filtration (claims 5, 9-13) --------------------------------------------------------
#: (field, label, min, max, unit): inclusive bounds of the second-stage leukocyte filter.
FILTER_BOUNDS: tuple[tuple[str, str, float | None, float | None, str], ...] = (
    ("effective_area_cm2", "effective filtration area", 4.0, 300.0, "cm²"),
    ("element_volume_cm3", "filter element volume", 2.0, 18.0, "cm³"),
    ("first_stage.log_removal", "first-stage filter leukocyte removal (log per 450 cm³ of hemocyte suspension)", 1.0, 3.5, "log"),
    ("device.log_removal", "device leukocyte removal (log)", 4.0, None, "log"),
)
_REL_TOL = 1e-9  # inclusive bounds survive rounding (log10 of counts, unit conversions)


class LeukocyteCounts(BaseModel):
    """Leukocytes in the whole suspension before and after filtration (same volume basis)."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    before: float = Field(..., gt=0, le=1e15, description="Leukocytes in the suspension before filtration.")
    after: float = Field(..., gt=0, le=1e15, description="Leukocytes after filtration; at the detection limit if none were found.")

    @property
    def log_removal(self) -> float:
        return math.log10(self.before / self.after)


#: The hemocyte suspension volume the claims' first-stage removal bound refers to (claim 9).
CLAIM_SUSPENSION_CM3 = 450.0


class Removal(BaseModel):
    """A leukocyte removal capability: stated as a log reduction, or measured as counts."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    log_removal: float | None = Field(None, ge=-20, le=20, json_schema_extra={"unit": "log"},
                                      description="Stated leukocyte removal, log10 (give this or counts).")
    counts: LeukocyteCounts | None = Field(None, description="Measured counts before and after (give this or log_removal).")
    suspension_volume_cm3: float = Field(450.0, gt=0, le=10_000, json_schema_extra={"unit": "cm³"},
                                         description="Volume of hemocyte suspension the removal refers to.")

    @model_validator(mode="after")
    def _one_source(self) -> "Removal":
        if (self.log_removal is None) == (self.counts is None):
            raise ValueError("give either log_removal or counts (before, after), not both and not neither")
        return self

    @property
    def value(self) -> float:
        return self.counts.log_removal if self.counts is not None else float(self.log_removal)  # type: ignore[arg-type]


class FilterBuild(BaseModel):
    """A second-stage leukocyte filter built from composite membrane lots."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = Field(..., min_length=1, max_length=80, description="Name of the filter build.")
    lots: list[str] = Field(..., min_length=1, description="Membrane lots the layers are cut from (castrig lots).")
    layers: int = Field(..., ge=1, le=1000, description="Membrane layers stacked in the element (at least one per lot).")
    effective_area_cm2: float = Field(..., gt=0, le=100_000, json_schema_extra={"unit": "cm²"},
                                      description="Effective filtration area of the element.")
    element_volume_cm3: float = Field(..., gt=0, le=100_000, json_schema_extra={"unit": "cm³"},
                                      description="Volume of the filter element.")
    first_stage: Removal = Field(..., description="Leukocyte removal of the first-stage filter.")
    device: Removal = Field(..., description="Leukocyte removal of the whole device.")
    required_grade: Grade | None = Field(None, description="Grade every lot must have met; default: any that suits blood filtration.")
    notes: str = Field("", description="Free text.")

    @model_validator(mode="after")
    def _layers_cover_lots(self) -> "FilterBuild":
        if self.layers < len(self.lots):
            raise ValueError(f"layers = {self.layers}: fewer layers than lots ({len(self.lots)}); each lot gives at least one layer")
        return self

    @model_validator(mode="after")
    def _first_stage_per_claim_volume(self) -> "FilterBuild":
        """The claim bounds the first stage's removal per 450 cm³ of suspension; a log removal
        measured with another volume does not convert to it (it was passed, and the table still
        said "per 450 cm³")."""
        v = self.first_stage.suspension_volume_cm3
        if abs(v - CLAIM_SUSPENSION_CM3) > 1e-9:
            raise ValueError(f"first_stage.suspension_volume_cm3 = {v:g}: the claim's removal is per "
                             f"{CLAIM_SUSPENSION_CM3:g} cm³ of hemocyte suspension (allowed: {CLAIM_SUSPENSION_CM3:g}); "
                             f"give the removal measured with {CLAIM_SUSPENSION_CM3:g} cm³")
        return self


def load_filter(path: str | Path) -> FilterBuild:
    return load_model(FilterBuild, path)


@dataclass(frozen=True)
class BoundResult:
    field: str
    label: str
    value: float
    min: float | None
    max: float | None
    unit: str

    @property
    def margin(self) -> float:
        """Distance inside the nearest bound (negative: outside)."""
        m = [self.value - self.min] if self.min is not None else []
        m += [self.max - self.value] if self.max is not None else []
        return min(m)

    @property
    def ok(self) -> bool:
        lim = max(abs(x) for x in (self.min, self.max, 1.0) if x is not None)
        return self.margin >= -_REL_TOL * lim

    def allowed(self) -> str:
        if self.min is not None and self.max is not None:
            return f"{self.min:g} to {self.max:g} {self.unit}"
        return f">= {self.min:g} {self.unit}" if self.min is not None else f"<= {self.max:g} {self.unit}"


@dataclass
class CheckReport:
    """Every bound with its value, and every other problem, of one build or set-up."""

    file: str
    bounds: list[BoundResult] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (field, sentence naming the field)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(b.ok for b in self.bounds)

    def errors(self) -> list[str]:
        out = [f"{self.file}: {b.field} = {b.value:.4g}: outside the claimed {b.label} (allowed: {b.allowed()})"
               for b in self.bounds if not b.ok]
        return out + [f"{self.file}: {msg}" for _, msg in self.problems]

    def raise_if_failed(self) -> None:
        if not self.ok:
            first = next((b.field for b in self.bounds if not b.ok), self.problems[0][0] if self.problems else None)
            raise BadInput("\n".join(self.errors()), file=self.file, field=first)


LotLookup = Callable[[str, str], Lot]  # (lot id, field) -> Lot, raising BadInput if unknown


def _check_lot(report: CheckReport, lot_id: str, where: str, use: str, required: str | None, lookup: LotLookup,
               allow_simulated: bool = False) -> None:
    try:
        lot = lookup(lot_id, where)
    except BadInput as exc:
        report.problems.append((where, str(exc)))
        return
    outcome = getattr(lot, "run_outcome", "completed")
    refusal = open_run_refusal(lot)
    if refusal is not None:  # a build's record could not say how the run that made its lot ended
        report.problems.append((where, f"{where} = {lot_id!r}: {refusal} (allowed: a lot of a run that has ended)"))
        return
    if outcome != "completed":
        report.notes.append(f"{where} = {lot_id}: made by run {lot.run_id or lot.run_dir}, which ended {outcome} after "
                            "this membrane was judged")
    if getattr(lot, "simulated", False):
        if not allow_simulated:
            report.problems.append((where, f"{where} = {lot_id!r}: made on the digital twin (simulated), not a real membrane "
                                           "(allowed: a real lot, or --allow-simulated for a drill)"))
            return
        report.notes.append(f"{where} = {lot_id}: SIMULATED (made on the digital twin), accepted with --allow-simulated")
    if lot.intended_use and lot.intended_use != use:  # the uses exclude each other (castrig.lots.registry)
        report.problems.append((where, f"{where} = {lot_id!r}: this lot is assigned to {lot.intended_use}, not {use}; a lot has one use "
                                       f"(blood_filter and coculture exclude each other) (allowed: a lot with no use or assigned to {use}; "
                                       f"`castrig lots unassign {lot_id}` first if that is really meant)"))
        return
    if not lot.suits(use, required):
        allowed = required or ", ".join(SUITABLE_GRADES[use])
        report.problems.append((where, f"{where} = {lot_id!r}: this lot met {', '.join(lot.grades_met) or 'no grade'}, which does not suit {use} "
                                       f"(allowed: a lot meeting {allowed})"))
    else:
        d = lot.metrics.get("mean_pore_diameter_um")
        report.notes.append(f"{where} = {lot_id}: grades {', '.join(lot.grades_met)}" + (f", D {d:.2f} µm" if d else ""))


def check_filter(build: FilterBuild, lookup: LotLookup, *, file: str = "filter", allow_simulated: bool = False) -> CheckReport:
    """Judge a filter build against the blood-filtration bounds and check its lots."""
    report = CheckReport(file)
    values = {"effective_area_cm2": build.effective_area_cm2, "element_volume_cm3": build.element_volume_cm3,
              "first_stage.log_removal": build.first_stage.value, "device.log_removal": build.device.value}
    for f, label, lo, hi, unit in FILTER_BOUNDS:
        report.bounds.append(BoundResult(f, label, values[f], lo, hi, unit))
    for stage, r in (("first_stage", build.first_stage), ("device", build.device)):
        if r.counts is not None:
            report.notes.append(f"{stage}: log removal {r.value:.3f} = log10({r.counts.before:.4g} / {r.counts.after:.4g}) "
                                f"from the counts in {r.suspension_volume_cm3:g} cm³")
    first: dict[str, int] = {}
    for i, lot_id in enumerate(build.lots):
        if lot_id in first:
            report.problems.append((f"lots[{i}]", f"lots[{i}] = {lot_id!r}: the same lot as lots[{first[lot_id]}]; a lot is one "
                                                  "membrane: list each lot once (layers says how many layers the element has) "
                                                  "(allowed: distinct lots)"))
            continue
        first[lot_id] = i
        _check_lot(report, lot_id, f"lots[{i}]", "blood_filter", build.required_grade, lookup, allow_simulated)
    return report


# -- cell co-culture (claims 6, 14) -----------------------------------------------------------
#: Cell groups one region may list: a region holds a few; a list of thousands is refused as it is read.
MAX_CELL_GROUPS = 50

class CultureRegion(BaseModel):
    """One side of the diaphragm and the cell groups cultured there."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = Field(..., min_length=1, max_length=80, description="Name of the culture region (one side of the diaphragm).")
    cell_groups: list[str] = Field(..., min_length=1, max_length=MAX_CELL_GROUPS, description="Cell groups cultured in this region.")

    @field_validator("name")
    @classmethod
    def _visible_name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("only spaces: a region needs a name (allowed: 1-80 characters, at least one visible)")
        return v

    @field_validator("cell_groups")
    @classmethod
    def _visible_groups(cls, v: list[str]) -> list[str]:
        for i, g in enumerate(v):
            if not g.strip():
                raise ValueError(f"[{i}] = {g!r}: a cell group needs a name (at least one visible character)")
        return v


def _name_key(a: str) -> str:
    """How names are compared: case and runs of spaces aside (``Astrocytes`` and ``astrocytes ``
    are the same cells, ``upper`` and ``Upper `` the same region: they passed as different)."""
    return " ".join(a.split()).casefold()


class CocultureSetup(BaseModel):
    """A co-culture: a membrane lot as the diaphragm between two culture regions."""

    model_config = ConfigDict(extra="forbid", defer_build=True)
    name: str = Field(..., min_length=1, max_length=80, description="Name of the co-culture set-up.")
    lot: str = Field(..., min_length=1, description="Membrane lot used as the diaphragm (castrig lots).")
    regions: list[CultureRegion] = Field(..., min_length=2, max_length=2, description="The two culture regions the diaphragm separates.")
    required_grade: Grade | None = Field(None, description="Grade the lot must have met; default: any that suits co-culture.")
    notes: str = Field("", description="Free text.")

    @model_validator(mode="after")
    def _two_distinct_regions(self) -> "CocultureSetup":
        a, b = self.regions
        if _name_key(a.name) == _name_key(b.name):
            raise ValueError(f"regions: both regions are named {a.name!r}; the diaphragm separates two different regions")
        return self


def load_coculture(path: str | Path) -> CocultureSetup:
    return load_model(CocultureSetup, path)


def check_coculture(setup: CocultureSetup, lookup: LotLookup, *, file: str = "coculture", allow_simulated: bool = False) -> CheckReport:
    """The lot must suit a co-culture diaphragm, and the two regions must hold different cells."""
    report = CheckReport(file)
    _check_lot(report, setup.lot, "lot", "coculture", setup.required_grade, lookup, allow_simulated)
    a, b = setup.regions
    if {_name_key(g) for g in a.cell_groups} == {_name_key(g) for g in b.cell_groups}:
        report.problems.append(("regions", f"regions: both regions hold the same cell groups ({', '.join(a.cell_groups)}); "
                                           "a co-culture needs different cell groups on the two sides"))
    return report
