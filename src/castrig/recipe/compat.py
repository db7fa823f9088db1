"""Does this recipe fit this rig? Checked before any run folder exists or anything moves."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from castrig.devices.ne1000 import RATE_UNITS, VOLUME_UNITS, best_units, format_number, rate_setting, volume_setting
from castrig.errors import BadInput
from castrig.recipe import model as m
from castrig.rig.profile import NE1000Config, Profile
from castrig.recipe.approach import approach_findings
from castrig.rig.twin_approach import reading_allowance_pct, twin_chamber_of
from castrig.rig.twin_reach import chamber_twin_reach_pct, mfc_twin_reach_pct

#: NE-1000 plunger speed limits (mm/min): the pump's rate range is these times the syringe's area.
#: From the manual's rate range: 1699 mL/h at most with a 60 mL syringe (26.59 mm), 0.73 µL/h at
#: least with a 1 mL one (4.699 mm). The emulator (castrig.sim.ne1000) keeps its own copy of these
#: and answers ``?OOR`` outside them; tests/recipe/test_pump_limits_check.py holds the two together.
NE1000_MAX_SPEED_MM_MIN = 51.0
NE1000_MIN_SPEED_MM_MIN = 7.0e-4


def _area_mm2(cfg: NE1000Config) -> float:
    """The syringe's area as the pump computes it: from the diameter as ``DIA`` sends it."""
    return math.pi / 4.0 * float(format_number(cfg.syringe_diameter_mm)) ** 2


def max_rate_ml_min(cfg: NE1000Config) -> float:
    return _area_mm2(cfg) * NE1000_MAX_SPEED_MM_MIN / 1000.0


def min_rate_ml_min(cfg: NE1000Config) -> float:
    return _area_mm2(cfg) * NE1000_MIN_SPEED_MM_MIN / 1000.0


def sent_rate_ml_min(rate_ml_min: float) -> float | None:
    """The rate the pump receives for ``rate_ml_min``: the driver's ``RAT`` in the units it picks,
    cut to the pump's 4 digits (``None``: no units show it)."""
    try:
        units, text = rate_setting(rate_ml_min)
        return float(text) * RATE_UNITS[units]
    except ValueError:
        return None


def sent_volume_ml(volume_ml: float, cfg: NE1000Config) -> tuple[float, str, float]:
    """The volume target the pump receives for ``volume_ml`` (the driver's own
    :func:`castrig.devices.ne1000.volume_setting`, cut to the pump's 4 digits — ``VOL0.000``
    would mean: pump without end), its units and the step of its last digit, in mL."""
    units, shown = volume_setting(volume_ml, float(format_number(cfg.syringe_diameter_mm)))
    step = 10.0 ** -len(shown.split(".")[1]) * VOLUME_UNITS[units]
    return float(shown) * VOLUME_UNITS[units], units, step


#: A volume the pump's 4 digits would change by more than this (relative) is refused.
VOLUME_ROUNDING = 0.005


def lowest_settable_rate_ml_min(cfg: NE1000Config) -> float:
    """The lowest rate (as a recipe would write it) that reaches the pump at or above its minimum
    after the driver cuts it to 4 digits in its units: the bound a message quotes passes itself."""
    low = min_rate_ml_min(cfg)
    units, value = best_units(low, RATE_UNITS)
    shown = format_number(value)
    step = 10.0 ** -len(shown.split(".")[1]) if not shown.endswith(".") else 1.0
    k = math.ceil(value / step - 1e-9)
    while True:
        rate = float(f"{k * step * RATE_UNITS[units]:.6g}")
        sent = sent_rate_ml_min(rate)
        if sent is not None and sent >= low:
            return rate
        k += 1


def _down_3_digits(value: float) -> float:
    step = 10.0 ** (math.floor(math.log10(value)) - 2)
    return math.floor(value / step + 1e-9) * step


def rh_reach_pct(profile: Profile) -> tuple[float, float] | None:
    """(low, high) %RH the two-line chamber levels off at, where the profile states its lines' RH:
    the twin's mass-flow controllers on sim links, within the loop's wet fraction limits and with
    the chamber's leak to the room (:func:`castrig.rig.twin_reach.mfc_twin_reach_pct`). ``None``
    for a rig whose lines' RH the profile does not state (hardware MFCs: nothing in the profile
    says what the bubbler gives)."""
    return mfc_twin_reach_pct(profile)


def rh_start_problem(steps: list[m.Step], i: int, step: m.EvaporateStep) -> str | None:
    """Why an evaporate with ``max_out_of_band_s: 0`` aborts at its first reading, if it does: the
    interlock trips at once on a reading out of band, so the RH must already be at the set point
    when the step starts — brought there by the last condition or evaporate before it, with no
    purge between (pumps, captures, analyses and waits leave the RH where it was). ``None``: it is."""
    if step.max_out_of_band_s > 0:
        return None
    for j in range(i - 1, -1, -1):
        before = steps[j]
        if isinstance(before, m.PurgeStep):
            return f"steps[{j}] (purge) before it leaves the chamber dry"
        if isinstance(before, (m.ConditionStep, m.EvaporateStep)):
            lo = before.setpoint_rh_pct - before.band_rh_pct
            hi = before.setpoint_rh_pct + before.band_rh_pct
            if step.setpoint_rh_pct - step.band_rh_pct <= lo and hi <= step.setpoint_rh_pct + step.band_rh_pct:
                return None
            return (f"steps[{j}] ({before.type}) before it leaves the RH within {before.setpoint_rh_pct:g} ± "
                    f"{before.band_rh_pct:g} %RH, not all inside this step's band")
    return "no condition step before it brings the RH there (the chamber starts at the room's RH)"


#: Set points each chamber kind accepts (%RH). The SCPI chamber's are fixed by its driver; a
#: Watlow's humidity loop range is read from the controller when it is opened (0-100 is the widest).
CHAMBER_RH_RANGE_PCT = {"scpi_chamber": (0.0, 100.0), "watlow_f4": (0.0, 100.0), "watlow_f4t": (0.0, 100.0)}


def _reach_finding(where: str, step: m.ConditionStep | m.EvaporateStep, reach: tuple[float, float], allowance: float,
                   what: str, source: str) -> tuple[str, str] | None:
    """("problem" or "note", why) for a set point beyond ``reach`` (where the chamber levels off, %RH),
    else ``None``. The chamber then sits at the level it reaches, so what counts is whether the
    step's band reaches there: a condition settles only when its readings stay within the band for
    ``stable_for_s``, so the level must be inside the band; an evaporate aborts only when no reading
    comes into the band for ``max_out_of_band_s``, so a level ``allowance`` (how far the probe's
    reading strays, 0 where unknown) outside it is let through (so is a condition that settles on
    one reading, ``stable_for_s: 0``). Beyond that: a problem; a band that reaches it: a note."""
    sp, band = step.setpoint_rh_pct, step.band_rh_pct
    if reach[0] - 1e-9 <= sp <= reach[1] + 1e-9:
        return None
    up = sp > reach[1]
    level = reach[1] if up else reach[0]
    one_reading = isinstance(step, m.EvaporateStep) or step.stable_for_s == 0
    need = allowance if one_reading else 0.0
    short = (sp - band - need - level) if up else (level - sp - band - need)  # > 0: the band does not reach it
    if short > 1e-9:
        least = math.ceil((band + short) * 10 - 1e-9) / 10  # a quoted bound that passes itself
        why = ("an evaporate aborts when no reading comes into it for max_out_of_band_s" if isinstance(step, m.EvaporateStep)
               else "a condition settles on its first reading within it" if one_reading
               else "a condition settles only when its readings stay within it for stable_for_s")
        noise = f", nor with the probe's noise ({allowance:g} %RH)" if need > 0 else ""
        return "problem", (f"{where}.setpoint_rh_pct = {sp:g}: beyond {what}, and its band_rh_pct = "
                           f"{band:g} does not reach there{noise}: {why} (allowed: {reach[0]:g} to {reach[1]:g} %RH: "
                           f"{source}; beyond it, a band_rh_pct of at least {least:g} %RH here)")
    edge = sp - band if up else sp + band
    inside = edge <= level + 1e-9 if up else level <= edge + 1e-9
    if not inside:
        fails = ("the run aborts if none comes in for max_out_of_band_s" if isinstance(step, m.EvaporateStep)
                 else "the step times out if none comes in within timeout_s")
        sits = f"just outside its band's edge ({edge:g} %RH): only the probe's noise brings readings into the band, and {fails}"
    elif isinstance(step, m.ConditionStep) and abs(level - edge) < allowance:
        sits = (f"inside its band's edge ({edge:g} %RH), within the probe's noise ({allowance:g} %RH) of it: a reading "
                f"beyond the edge starts stable_for_s again")
    else:
        sits = f"inside its band's edge ({edge:g} %RH)"
    return "note", (f"{where}.setpoint_rh_pct = {sp:g}: beyond {what} ({reach[0]:g} to {reach[1]:g} "
                    f"%RH: {source}): the chamber will sit at ~{level:g} %RH, not at the set point, {sits}")


def _reach_findings(where: str, step: m.Step, profile: Profile, profile_path: Path | str,
                    reach: tuple[float, float] | None, twin_reach: tuple[float, float] | None) -> list[tuple[str, str]]:
    """:func:`_reach_finding` against each reach the profile gives: the MFC twin's, the chamber
    twin's, and a real chamber's stated ``reach_rh_pct``."""
    if not isinstance(step, (m.ConditionStep, m.EvaporateStep)):
        return []
    d = profile.devices
    stated = None if d.chamber is None else d.chamber.reach_rh_pct
    noise = reading_allowance_pct()  # the twins' probe; a real chamber's probe: not in its profile
    reaches = (
        # the lines alone mix up to 98 %RH on sim.yaml, the leaky chamber levels off at 96.96: a
        # 98 %RH condition that check passed timed out after 1800 s ("last 96.7")
        (reach, noise, "what the twin's chamber levels off at", "control.total_flow_slpm mixed at control.wet_fraction_min/max from "
         "sim.dry_line_rh_pct and sim.bubbler_rh_pct, each line within its MFC's full_scale_slpm, with the leak to "
         f"the room, sim.leak_per_min and sim.room_rh_pct, in {profile_path}"),
        # the twin's chamber levelled off at 96.9 %RH: a 100 %RH evaporate that check passed
        # aborted after max_out_of_band_s, a condition timed out
        (twin_reach, noise, "what the twin's chamber levels off at", "all-dry to all-wet air of control.total_flow_slpm, from "
         "sim.dry_line_rh_pct and sim.bubbler_rh_pct, with the leak to the room, sim.leak_per_min and "
         f"sim.room_rh_pct, in {profile_path}"),
        (stated, 0.0, "what the chamber reaches", f"devices.chamber.reach_rh_pct in {profile_path}"))
    found = []
    for levels, allowance, what, source in reaches:
        if levels is not None:
            finding = _reach_finding(where, step, (float(levels[0]), float(levels[1])), allowance, what, source)
            if finding is not None:
                found.append(finding)
    return found


def setpoint_problems(where: str, step: m.Step, profile: Profile, profile_path: Path | str,
                      reach: tuple[float, float] | None, twin_reach: tuple[float, float] | None) -> list[str]:
    """Why ``step``'s RH set point is beyond what this rig's chamber accepts or can read, or its
    band does not reach where the chamber levels off (``where`` names the step; ``reach``/
    ``twin_reach``: :func:`rh_reach_pct` and :func:`~castrig.rig.twin_reach.chamber_twin_reach_pct`
    of ``profile``, found once per recipe; :func:`_reach_finding`). ``castrig check`` and ``run``
    ask it of every step, ``castrig resume`` of the steps it has left."""
    if not isinstance(step, (m.ConditionStep, m.EvaporateStep)):
        return []
    d = profile.devices
    if (d.dry_mfc is None or d.wet_mfc is None) and d.chamber is None:
        return []  # (no RH control: said once by the caller)
    problems: list[str] = []
    if d.chamber is not None:
        lo, hi = CHAMBER_RH_RANGE_PCT.get(d.chamber.model, (0.0, 100.0))
        if not lo <= step.setpoint_rh_pct <= hi:
            problems.append(f"{where}.setpoint_rh_pct = {step.setpoint_rh_pct:g}: outside what a {d.chamber.model} "
                            f"chamber accepts (allowed: {lo:g}-{hi:g} %RH)")
    problems += [why for kind, why in _reach_findings(where, step, profile, profile_path, reach, twin_reach)
                 if kind == "problem"]
    lo, hi = profile.control.rh_sensor_range_pct
    if not lo <= step.setpoint_rh_pct <= hi:  # readings there are "a broken sensor": every run aborted
        problems.append(f"{where}.setpoint_rh_pct = {step.setpoint_rh_pct:g}: outside control.rh_sensor_range_pct "
                        f"= [{lo:g}, {hi:g}] in {profile_path}, where a reading is taken for a broken sensor "
                        f"(allowed: {lo:g}-{hi:g} %RH)")
    return problems


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


def _approach(recipe: m.Recipe, profile: Profile) -> list[tuple[int, str, str]]:
    return approach_findings(recipe, twin_chamber_of(profile), profile.control.purge_flow_slpm,
                             profile.control.control_period_s, rh_start_problem)


def recipe_notes(recipe: m.Recipe, recipe_path: Path | str, profile: Profile, profile_path: Path | str,
                 steps: Collection[int] | None = None) -> list[str]:
    """What ``castrig check`` cannot promise of a recipe that fits: a set point beyond where the
    chamber levels off, with a band that reaches there (the chamber sits at its level, not at the
    set point: :func:`_reach_finding`); an evaporate that can start out of its band, where no model
    says the readings come into it within ``max_out_of_band_s`` (:mod:`castrig.recipe.approach`).
    ``steps``: only those (a resume's steps left); all by default. And an analyse whose membrane's
    captures lack a view its grade needs (:mod:`castrig.recipe.view_notes`)."""
    from castrig.recipe.view_notes import missing_view_notes

    return _rh_notes(recipe, recipe_path, profile, profile_path, steps) + missing_view_notes(recipe, recipe_path, steps)


def _rh_notes(recipe: m.Recipe, recipe_path: Path | str, profile: Profile, profile_path: Path | str,
              steps: Collection[int] | None) -> list[str]:
    d = profile.devices
    if not ((d.dry_mfc is not None and d.wet_mfc is not None) or d.chamber is not None):
        return []
    reach, twin_reach = rh_reach_pct(profile), chamber_twin_reach_pct(profile)
    notes = [why for i, step in enumerate(recipe.steps) if steps is None or i in steps
             for kind, why in _reach_findings(f"{recipe_path}: steps[{i}] ({step.type})", step, profile, profile_path,
                                              reach, twin_reach) if kind == "note"]
    return notes + [f"{recipe_path}: steps[{i}] (evaporate).max_out_of_band_s = {recipe.steps[i].max_out_of_band_s:g}: {what}"  # type: ignore[union-attr]
                    for i, kind, what in _approach(recipe, profile) if kind == "note" and (steps is None or i in steps)]


def check_recipe_for_profile(recipe: m.Recipe, recipe_path: Path, profile: Profile, profile_path: Path) -> None:
    """Every limit the rig imposes, known before the run starts: devices present, pump rates (both
    ends of the pump's range for its syringe) and syringe volumes, flows against the mass-flow
    controllers' full scale, set points against the chamber's range (and against what the twin's
    chamber levels off at, where the profile states its lines' RH: :func:`setpoint_problems`)."""
    d = profile.devices
    problems: list[str] = profile_limit_problems(profile, profile_path)
    has_rh = (d.dry_mfc is not None and d.wet_mfc is not None) or d.chamber is not None
    dispensed_ml = {"water_pump": 0.0, "caster": 0.0}
    reach = rh_reach_pct(profile)
    twin_reach = chamber_twin_reach_pct(profile)
    approach = _approach(recipe, profile) if has_rh else []
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
                volume = step.volume_ml  # type: ignore[union-attr]
                sent_ml, vol_units, vol_step = sent_volume_ml(volume, cfg)
                if abs(sent_ml - volume) > VOLUME_ROUNDING * volume:
                    unit = {"UL": "µL", "ML": "mL"}[vol_units]
                    then = "0, which means pumping without end" if sent_ml == 0 else f"{sent_ml:g} mL"
                    problems.append(
                        f"{where}.volume_ml = {volume:g}: devices.{role} takes volumes in {unit} with its "
                        f"{cfg.syringe_diameter_mm:g} mm syringe, to 4 digits: it would be set to {then} (allowed: "
                        f"a multiple of {vol_step:g} mL here, from {vol_step:g} mL)")
                top, low = max_rate_ml_min(cfg), min_rate_ml_min(cfg)
                rate = step.rate_ml_min  # type: ignore[union-attr]
                sent = sent_rate_ml_min(rate)
                lowest = f"{lowest_settable_rate_ml_min(cfg):.6g}"
                highest = f"{_down_3_digits(top):.3g}"  # a quoted bound that passes itself
                syringe = f"for devices.{role} with its {cfg.syringe_diameter_mm:g} mm syringe in {profile_path}"
                if rate > top or (sent is not None and sent > top):
                    problems.append(f"{where}.rate_ml_min = {rate:g}: above what devices.{role} can pump "
                                    f"(allowed: up to {highest} mL/min, at least {lowest}, {syringe})")
                elif sent is None or sent < low:  # the pump would answer ?OOR mid-run (the emulator does)
                    problems.append(f"{where}.rate_ml_min = {rate:g}: below what devices.{role} can pump "
                                    f"(allowed: at least {lowest} mL/min, up to {highest}, {syringe})")
        if isinstance(step, m.PurgeStep) and step.flow_slpm is not None and d.dry_mfc is None:
            # a chamber's purge turns its humidifier off and sets no flow: the flow asked was
            # dropped without a word, and the run's log said "purge: dry air 4.9 slpm"
            dries = "its chamber's purge turns the humidifier off, with no flow to set" if d.chamber is not None \
                else "it has no dry air line"
            problems.append(f"{where}.flow_slpm = {step.flow_slpm:g}: {profile_path} has no devices.dry_mfc to set "
                            f"that flow on ({dries}) (allowed: no flow_slpm on this rig)")
        if isinstance(step, m.PurgeStep) and step.flow_slpm is not None and d.dry_mfc is not None \
                and step.flow_slpm > d.dry_mfc.full_scale_slpm:
            problems.append(f"{where}.flow_slpm = {step.flow_slpm:g}: above devices.dry_mfc.full_scale_slpm = "
                            f"{d.dry_mfc.full_scale_slpm:g} in {profile_path} (allowed: up to {d.dry_mfc.full_scale_slpm:g})")
        problems += setpoint_problems(where, step, profile, profile_path, reach, twin_reach)
        if isinstance(step, m.EvaporateStep) and has_rh:
            why = rh_start_problem(recipe.steps, i, step)
            if why is not None:
                problems.append(f"{where}.max_out_of_band_s = 0: the run aborts at the step's first reading out of "
                                f"{step.setpoint_rh_pct:g} ± {step.band_rh_pct:g} %RH, and {why} (allowed: a condition "
                                f"step at {step.setpoint_rh_pct:g} %RH right before it, or a max_out_of_band_s as long as "
                                f"the chamber takes to get there from where it is left)")
        if isinstance(step, m.EvaporateStep) and has_rh:
            problems += [f"{where}.max_out_of_band_s = {step.max_out_of_band_s:g}: {what}"
                         for j, kind, what in approach if j == i and kind == "problem"]
        if isinstance(step, m.CaptureStep) and d.camera is None:
            problems.append(f"{where}: needs devices.camera, which {profile_path} does not have")
    if problems:
        raise BadInput("\n".join(problems), file=str(recipe_path))


def chamber_range_problems(recipe: m.Recipe, chamber: object | None, profile_path: Path | str, *,
                           where: Callable[[int, m.Step], str], steps: Iterable[int] | None = None,
                           when: str = "at run start") -> list[str]:
    """Every RH set point of ``steps`` (all by default) against the range the chamber's controller
    reports (a Watlow's input 2 range low/high, ``rh_range()``, which it reads at connect). A real
    chamber's profile need not state its reach (``reach_rh_pct``), and the controller refuses a set
    point beyond its range (Modbus exception 03): the run faulted at the step, after its purge,
    conditioning or cast. A chamber without ``rh_range`` is not asked. ``where(i, step)`` names a
    step in the message, ``when`` says when the range was read."""
    rh_range = getattr(chamber, "rh_range", None)
    if not callable(rh_range):
        return []
    try:
        lo, hi = rh_range()
    except Exception:  # noqa: BLE001 - a refinement: the run's own writes still meet the controller's answer
        return []
    wanted = range(len(recipe.steps)) if steps is None else steps
    return [f"{where(i, step)}.setpoint_rh_pct = {step.setpoint_rh_pct:g}: outside the set point range devices.chamber's "
            f"controller reports (allowed: {lo:g} to {hi:g} %RH, read from it {when}; the controller refuses a set "
            f"point beyond it) in {profile_path}"
            for i in wanted for step in [recipe.steps[i]]
            if isinstance(step, (m.ConditionStep, m.EvaporateStep)) and not lo <= step.setpoint_rh_pct <= hi]


def check_setpoints_on_chamber(recipe: m.Recipe, recipe_path: Path, chamber: object | None, profile_path: Path) -> None:
    """At run start, before a run folder exists or anything moves: :func:`chamber_range_problems`."""
    problems = chamber_range_problems(recipe, chamber, profile_path,
                                      where=lambda i, step: f"{recipe_path}: steps[{i}] ({step.type})")
    if problems:
        raise BadInput("\n".join(problems), file=str(recipe_path))


def resume_setpoint_problems(recipe: m.Recipe, steps: Iterable[int], profile: Profile, profile_path: str,
                             chamber: object | None, label: str) -> list[str]:
    """What ``castrig run`` refuses at its start, asked of the steps a resume has left: each RH set
    point against what the profile's chamber accepts, levels off at and can read
    (:func:`setpoint_problems`) and against the range its controller reports now
    (:func:`chamber_range_problems`). ``label`` names the recipe (``RUN/run.json: recipe``)."""
    steps = list(steps)
    reach, twin_reach = rh_reach_pct(profile), chamber_twin_reach_pct(profile)
    problems = [p for i in steps for p in setpoint_problems(f"{label}.steps[{i}] ({recipe.steps[i].type})",
                                                              recipe.steps[i], profile, profile_path, reach, twin_reach)]
    return problems + chamber_range_problems(recipe, chamber, profile_path, steps=steps, when="as the resume began",
                                             where=lambda i, step: f"{label}.steps[{i}] ({step.type})")


#: The pumps a recipe dispenses from, by step type.
PUMP_OF_STEP = {m.PrewetStep: "water_pump", m.CastStep: "caster"}


def dispensed_ml(recipe: m.Recipe, steps: set[int] | None = None) -> dict[str, float]:
    """What ``recipe`` dispenses from each pump (mL): all its steps, or only those in ``steps``."""
    out = {"water_pump": 0.0, "caster": 0.0}
    for i, step in enumerate(recipe.steps):
        role = PUMP_OF_STEP.get(type(step))
        if role is not None and (steps is None or i in steps):
            out[role] += step.volume_ml  # type: ignore[union-attr]
    return out


def check_queue_syringes(runs: list[tuple[str, dict[str, float]]], profile: Profile, profile_path: Path, *,
                         resumed: bool = False) -> None:
    """A queue runs unattended all night and nobody refills a syringe between its runs (there is
    no refill step): what all its runs dispense from a pump together must fit in that pump's
    syringe (``syringe_volume_ml``), as a single recipe's steps must. ``runs``: (what the run
    is, mL per pump) for every run the queue will make, in order. ``resumed``: only the runs left
    (``queue --resume``), against a full syringe — the operator may have refilled it since."""
    problems = []
    for role in ("caster", "water_pump"):
        cfg = getattr(profile.devices, role)
        held = None if cfg is None else cfg.syringe_volume_ml
        total = sum(ml[role] for _, ml in runs)
        if held is None or total <= held + 1e-9:
            continue
        per: dict[str, list[float]] = {}
        for name, ml in runs:
            if ml[role] > 0:
                per.setdefault(name, []).append(ml[role])
        parts = ", ".join(f"{name} {v[0]:g} mL" + (f" × {len(v)}" if len(v) > 1 and len(set(v)) == 1 else
                                                    f" in {len(v)} runs" if len(v) > 1 else "")
                          for name, v in per.items())
        fit, acc = 0, 0.0  # how many runs, in order, fit in one syringe
        for _, ml in runs:
            if acc + ml[role] > held + 1e-9:
                break
            acc, fit = acc + ml[role], fit + 1
        what = ("the runs left to make" if resumed else "the queue's runs") + f" ({len(runs)})"
        advice = (f"only the first {fit} of them fit" if fit > 1 else "only the first fits" if fit else
                  "not even the first fits") + \
            "; queue fewer repetitions (--repeat) or fewer recipes, or split the queue into parts that fit and refill " \
            "the syringe between them"
        if resumed:
            advice += ("; --resume counts only what is left (a run it goes on with, its steps not done), against a "
                       "full syringe, as if it was refilled since the queue began: refill it before resuming")
        problems.append(
            f"devices.{role}: {what} dispense {total:g} mL from it in all ({parts}), more than its syringe holds "
            f"(devices.{role}.syringe_volume_ml = {held:g} mL in {profile_path}): the queue runs unattended and "
            f"nothing refills the syringe between runs; {advice}")
    if problems:
        raise BadInput("\n".join(problems), file=str(profile_path), field="syringe_volume_ml")
