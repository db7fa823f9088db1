"""Can an evaporate's readings come into its band before ``max_out_of_band_s`` runs out?

``castrig check`` passed an evaporate right after a 60 s purge with 30 s out of band on
sim.yaml, and the run aborted (``RH 48.0 %RH outside 70 ± 3 %RH for more than 30 s``); so with a
95 %RH evaporate 60 s after a 70 %RH condition (``RH 85.3``). Walks the recipe with where each step
can leave the chamber (an interval holding its RH and the probe's reading) and, on a twin, asks
its model (:mod:`castrig.rig.twin_approach`, passed in as ``chamber``) the least time the
readings need: beyond ``max_out_of_band_s`` the run surely aborts (a problem); an evaporate that
can start out of its band otherwise gets a note: check cannot promise it (the loop is slower
than saturated, and a real chamber's speed is not in its profile).
"""

from __future__ import annotations

import math
from typing import Any

from castrig.recipe import model as m


def _pump_s(step: Any) -> float:
    return step.volume_ml / step.rate_ml_min * 60.0


def approach_findings(recipe: m.Recipe, chamber: Any | None, purge_flow_slpm: float, control_period_s: float,
                      start_problem: Any) -> list[tuple[int, str, str]]:
    """(step index, "problem" or "note", what: after the step's ``…max_out_of_band_s = N: ``) for
    each evaporate with ``max_out_of_band_s`` > 0 that can start out of its band. ``chamber``: the
    twin's (:class:`castrig.rig.twin_approach.TwinChamber`), ``None`` on a real rig;
    ``start_problem``: :func:`castrig.recipe.compat.rh_start_problem` (why a step can start out of
    band, by the steps before it)."""
    out: list[tuple[int, str, str]] = []
    a = chamber.reading_allowance_pct if chamber is not None else 0.0
    lo = hi = chamber.room_rh_pct if chamber is not None else None
    toward: tuple[float, float] | None = (lo, lo) if lo is not None else None  # where it goes while nothing is set
    purging: tuple[float, float] | None = None  # (rate, level) while a purge's dry air flows
    left_by = "the room's RH, where the chamber starts"
    wet = False
    for i, step in enumerate(recipe.steps):
        if isinstance(step, m.PurgeStep):
            if chamber is not None and lo is not None:
                purging = chamber.purge(step.flow_slpm or purge_flow_slpm)
                lo, hi = chamber.after(lo, hi, purging[0], purging[1], step.duration_s)
                toward = (purging[1], purging[1])
            left_by = f"steps[{i}] (purge)"
        elif isinstance(step, m.ConditionStep):
            lo, hi = step.setpoint_rh_pct - step.band_rh_pct - a, step.setpoint_rh_pct + step.band_rh_pct + a
            toward, left_by = (lo, hi), f"steps[{i}] (condition)"
        elif isinstance(step, m.EvaporateStep):
            band = (step.setpoint_rh_pct - step.band_rh_pct, step.setpoint_rh_pct + step.band_rh_pct)
            if step.max_out_of_band_s > 0:
                out += _finding(i, step, band, chamber, lo, hi, wet, left_by, control_period_s, start_problem(
                    recipe.steps, i, step.model_copy(update={"max_out_of_band_s": 0})))
            held = (band[0] - a, band[1] + a)
            if lo is not None:
                lo, hi = min(lo, held[0]), max(hi, held[1])
            toward, left_by = held, f"steps[{i}] (evaporate)"
        else:  # pumps, waits, captures, analyses: what is set goes on (a purge's dry air, a set point)
            wet = wet or isinstance(step, m.PrewetStep)
            if lo is not None and toward is not None:
                lo, hi = min(lo, toward[0]), max(hi, toward[1])
    return out


def _finding(i: int, step: m.EvaporateStep, band: tuple[float, float], chamber: Any | None, lo: float | None,
             hi: float | None, wet: bool, left_by: str, period_s: float, why: str | None) -> list[tuple[int, str, str]]:
    if chamber is None or lo is None or hi is None:
        if why is None:
            return []
        return [(i, "note", f"check cannot promise the readings come into {step.setpoint_rh_pct:g} ± "
                            f"{step.band_rh_pct:g} %RH within it: {why}, and how fast this chamber gets there is "
                            "not in its profile")]
    if band[0] <= lo and hi <= band[1]:
        return []
    least = chamber.least_s_into(lo, hi, band[0], band[1], wet)
    if least is None:
        return []  # beyond what the chamber levels off at: the reach check says so
    where = f"{left_by} leaves it at {lo:.1f} to {hi:.1f} %RH (chamber and probe)"
    if least == 0:
        return [] if why is None else [(i, "note", f"check cannot promise the readings come into {step.setpoint_rh_pct:g} "
                                                   f"± {step.band_rh_pct:g} %RH within it: {where}, not all inside it")]
    if least > step.max_out_of_band_s + period_s:
        return [(i, "problem", f"the run aborts before the readings can come into {step.setpoint_rh_pct:g} ± "
                               f"{step.band_rh_pct:g} %RH: {where}, and the twin's chamber needs at least {least:.0f} s "
                               f"to bring them there, its loop saturated (allowed: a condition step at "
                               f"{step.setpoint_rh_pct:g} %RH right before it, or a max_out_of_band_s above "
                               f"{math.ceil(least + period_s)} s, with room to spare: the loop comes in slower than "
                               "saturated)")]
    return [(i, "note", f"check cannot promise the readings come into {step.setpoint_rh_pct:g} ± {step.band_rh_pct:g} "
                        f"%RH within it: {where}, and the twin's chamber needs at least {least:.0f} s to bring them "
                        "there (its loop saturated; the loop itself is slower)")]
