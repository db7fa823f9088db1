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


#: Set points each chamber kind accepts (%RH). The SCPI chamber's are fixed by its driver; a
#: Watlow's humidity loop range is read from the controller when it is opened (0-100 is the widest).
CHAMBER_RH_RANGE_PCT = {"scpi_chamber": (0.0, 100.0), "watlow_f4": (0.0, 100.0), "watlow_f4t": (0.0, 100.0)}


def profile_limit_problems(profile: Profile, profile_path: Path) -> list[str]:
    """What the profile asks of its own devices beyond what they can do: the RH loop's total flow
    and the purge flow against the mass-flow controllers' full scale."""
    problems: list[str] = []
    c, d = profile.control, profile.devices
    if d.dry_mfc is not None and d.wet_mfc is not None:
        dry_max = c.total_flow_slpm * (1.0 - c.wet_fraction_min)
        wet_max = c.total_flow_slpm * c.wet_fraction_max
        if dry_max > d.dry_mfc.full_scale_slpm:
            problems.append(
                f"{profile_path}: control.total_flow_slpm = {c.total_flow_slpm:g}: the dry line would need up to "
                f"{dry_max:g} slpm, above devices.dry_mfc.full_scale_slpm = {d.dry_mfc.full_scale_slpm:g} "
                f"(allowed: total_flow_slpm × (1 - wet_fraction_min) <= {d.dry_mfc.full_scale_slpm:g})")
        if wet_max > d.wet_mfc.full_scale_slpm:
            problems.append(
                f"{profile_path}: control.total_flow_slpm = {c.total_flow_slpm:g}: the wet line would need up to "
                f"{wet_max:g} slpm, above devices.wet_mfc.full_scale_slpm = {d.wet_mfc.full_scale_slpm:g} "
                f"(allowed: total_flow_slpm × wet_fraction_max <= {d.wet_mfc.full_scale_slpm:g})")
        if c.purge_flow_slpm > d.dry_mfc.full_scale_slpm:
            problems.append(
                f"{profile_path}: control.purge_flow_slpm = {c.purge_flow_slpm:g}: above devices.dry_mfc.full_scale_slpm "
                f"= {d.dry_mfc.full_scale_slpm:g} (allowed: up to {d.dry_mfc.full_scale_slpm:g})")
    return problems


def check_profile_limits(profile: Profile, profile_path: Path) -> None:
    problems = profile_limit_problems(profile, profile_path)
    if problems:
        raise BadInput("\n".join(problems), file=str(profile_path))


def check_recipe_for_profile(recipe: m.Recipe, recipe_path: Path, profile: Profile, profile_path: Path) -> None:
    """Every limit the rig imposes, known before the run starts: devices present, pump rates and
    syringe volumes, flows against the mass-flow controllers' full scale, set points against the
    chamber's range."""
    d = profile.devices
    problems: list[str] = profile_limit_problems(profile, profile_path)
    has_rh = (d.dry_mfc is not None and d.wet_mfc is not None) or d.chamber is not None
    dispensed_ml = {"water_pump": 0.0, "caster": 0.0}
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
                dispensed_ml[role] += step.volume_ml  # type: ignore[union-attr]
                held = cfg.syringe_volume_ml
                if held is not None and dispensed_ml[role] > held + 1e-9:
                    problems.append(
                        f"{where}.volume_ml = {step.volume_ml:g}: brings what devices.{role} dispenses in this recipe "  # type: ignore[union-attr]
                        f"to {dispensed_ml[role]:g} mL, more than its syringe holds (allowed: up to {held:g} mL in all, "
                        f"devices.{role}.syringe_volume_ml in {profile_path})")
                top = max_rate_ml_min(cfg)
                if step.rate_ml_min > top:  # type: ignore[union-attr]
                    problems.append(
                        f"{where}.rate_ml_min = {step.rate_ml_min:g}: above what devices.{role} can pump with a "  # type: ignore[union-attr]
                        f"{cfg.syringe_diameter_mm:g} mm syringe (allowed: up to {top:.3g} mL/min)"
                    )
        if isinstance(step, m.PurgeStep) and step.flow_slpm is not None and d.dry_mfc is not None \
                and step.flow_slpm > d.dry_mfc.full_scale_slpm:
            problems.append(f"{where}.flow_slpm = {step.flow_slpm:g}: above devices.dry_mfc.full_scale_slpm = "
                            f"{d.dry_mfc.full_scale_slpm:g} in {profile_path} (allowed: up to {d.dry_mfc.full_scale_slpm:g})")
        if isinstance(step, (m.ConditionStep, m.EvaporateStep)) and d.chamber is not None:
            lo, hi = CHAMBER_RH_RANGE_PCT.get(d.chamber.model, (0.0, 100.0))
            if not lo <= step.setpoint_rh_pct <= hi:
                problems.append(f"{where}.setpoint_rh_pct = {step.setpoint_rh_pct:g}: outside what a {d.chamber.model} "
                                f"chamber accepts (allowed: {lo:g}-{hi:g} %RH)")
        if isinstance(step, m.CaptureStep) and d.camera is None:
            problems.append(f"{where}: needs devices.camera, which {profile_path} does not have")
    if problems:
        raise BadInput("\n".join(problems), file=str(recipe_path))
