"""Does this recipe fit this rig? Checked before any run folder exists or anything moves."""

from __future__ import annotations

import math
from pathlib import Path

from castrig.errors import BadInput
from castrig.recipe import model as m
from castrig.rig.profile import NE1000Config, Profile

#: NE-1000 plunger speed limits (mm/min): the rate range is these times the syringe's area.
NE1000_MAX_SPEED_MM_MIN = 51.0


def max_rate_ml_min(cfg: NE1000Config) -> float:
    return math.pi / 4.0 * cfg.syringe_diameter_mm**2 * NE1000_MAX_SPEED_MM_MIN / 1000.0


def check_recipe_for_profile(recipe: m.Recipe, recipe_path: Path, profile: Profile, profile_path: Path) -> None:
    d = profile.devices
    problems: list[str] = []
    has_rh = (d.dry_mfc is not None and d.wet_mfc is not None) or d.chamber is not None
    for i, step in enumerate(recipe.steps):
        where = f"{recipe_path}: steps[{i}] ({step.type})"
        if isinstance(step, (m.ConditionStep, m.EvaporateStep)) and not has_rh:
            problems.append(f"{where}: needs RH control, but {profile_path} has neither dry_mfc/wet_mfc nor chamber")
        pump = {m.PrewetStep: ("water_pump", d.water_pump), m.CastStep: ("caster", d.caster)}.get(type(step))
        if pump is not None:
            role, cfg = pump
            if cfg is None:
                problems.append(f"{where}: needs devices.{role}, which {profile_path} does not have")
            else:
                top = max_rate_ml_min(cfg)
                if step.rate_ml_min > top:  # type: ignore[union-attr]
                    problems.append(
                        f"{where}.rate_ml_min = {step.rate_ml_min:g}: above what devices.{role} can pump with a "  # type: ignore[union-attr]
                        f"{cfg.syringe_diameter_mm:g} mm syringe (allowed: up to {top:.3g} mL/min)"
                    )
        if isinstance(step, m.CaptureStep) and d.camera is None:
            problems.append(f"{where}: needs devices.camera, which {profile_path} does not have")
    if problems:
        raise BadInput("\n".join(problems), file=str(recipe_path))
