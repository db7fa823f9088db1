"""Which steps of a recipe make which membrane, and what a crash does to them.

Every ``cast`` step starts a new membrane (a specimen) on a fresh support position. Its steps are
the pre-wet before it (after the previous membrane's steps), the cast, the evaporation after it,
and the captures and analyses before the next membrane begins; waits, purges and conditioning
belong to the rig, not to a membrane. A capture or analyse belongs to the last cast before it.

Ids: ``<run id>-m<k>``, k = 1, 2, … in cast order. Step numbers shown to people are 1-based
(``step 5``), as in the terminal, the log and the report; ``journal.step_index`` is 0-based.

Resume (DESIGN §6): a membrane whose steps began but whose evaporation did not finish under
control is ``lost`` — the film (or the wet support) dried without RH control — and its remaining
steps are journaled ``skipped``; the run goes on with the next step that is not one of them.
Capture and analyse of a membrane that was made are repeated idempotently.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from castrig.recipe import model as m

#: Steps that make or judge a membrane (the others condition the rig).
_MEMBRANE_KINDS = (m.PrewetStep, m.CastStep, m.EvaporateStep, m.CaptureStep, m.AnalyseStep)


@dataclass(frozen=True)
class MembranePlan:
    """The steps of membrane ``k`` (0-based step indexes)."""

    k: int
    cast_step: int
    first_step: int  # its pre-wet, else its cast
    evaporate_step: int | None
    steps: tuple[int, ...]

    def membrane_id(self, run_id: str) -> str:
        return membrane_id(run_id, self.k)

    @property
    def made_at_step(self) -> int:
        """The step whose end means the membrane exists (its evaporation, else its cast)."""
        return self.evaporate_step if self.evaporate_step is not None else self.cast_step


def membrane_id(run_id: str, k: int) -> str:
    return f"{run_id}-m{k}"


def step_label(i: int, step: Any | None = None, n: int | None = None) -> str:
    """``step 5`` / ``step 5/27 (evaporate)``: 1-based, the same everywhere."""
    out = f"step {i + 1}" + (f"/{n}" if n else "")
    return out + (f" ({step.type})" if step is not None else "")


def plan_membranes(recipe: m.Recipe) -> list[MembranePlan]:
    steps = recipe.steps
    casts = [i for i, s in enumerate(steps) if isinstance(s, m.CastStep)]
    plans: list[MembranePlan] = []
    prev_end = -1  # last step of the previous membrane
    for k, c in enumerate(casts, 1):
        nxt = casts[k] if k < len(casts) else len(steps)
        # the pre-wet of this membrane: the last one between the previous membrane and this cast
        prewet = next((j for j in range(c - 1, prev_end, -1) if isinstance(steps[j], m.PrewetStep)), None)
        # after the cast: up to the next membrane's pre-wet (or cast)
        nxt_first = next((j for j in range(c + 1, nxt) if isinstance(steps[j], m.PrewetStep)), nxt)
        evap = next((j for j in range(c + 1, nxt_first) if isinstance(steps[j], m.EvaporateStep)), None)
        own = [j for j in range(c, nxt_first) if isinstance(steps[j], _MEMBRANE_KINDS) and not isinstance(steps[j], m.PrewetStep)]
        if prewet is not None:
            own.insert(0, prewet)
        plans.append(MembranePlan(k, c, prewet if prewet is not None else c, evap, tuple(own)))
        prev_end = max(own)
    return plans


def membrane_of_step(plans: list[MembranePlan], i: int) -> MembranePlan | None:
    """The membrane a step belongs to; a capture/analyse: the last cast before it."""
    for p in plans:
        if i in p.steps:
            return p
    before = [p for p in plans if p.cast_step < i]
    return before[-1] if before else None


@dataclass
class LostMembrane:
    plan: MembranePlan
    reason: str
    stopped_step: int  # 0-based: the step running (or last finished) when the run stopped


@dataclass
class ResumePlan:
    """What ``castrig resume`` does: where it goes on, which membranes it records lost."""

    first: int  # the first step to run (len(steps): nothing left)
    lost: list[LostMembrane] = field(default_factory=list)
    skip: set[int] = field(default_factory=set)  # steps of lost membranes, journaled ``skipped``


def plan_resume(recipe: m.Recipe, journal: list[Any], *, elapsed_s: float | None = None, gap: str = "",
                stopped: str = "the run stopped") -> ResumePlan:
    """The resume plan from the journal.

    A step that finished (``done``) or was ``skipped`` is never run again. A started, unfinished
    step that is harmless to repeat (purge, condition, wait, capture, analyse) is repeated. A
    membrane whose steps began but whose evaporation did not end under control is lost (``gap``
    words how long it was left, e.g. "for 3 min of wall clock until the resume"; ``stopped`` how
    the run stopped, e.g. "the run ended aborted" when a run that ended records its own losses).
    """
    steps = recipe.steps
    done = {e.step_index for e in journal if e.state == "done"}
    skipped = {e.step_index for e in journal if e.state == "skipped"}
    started = {e.step_index for e in journal if e.state == "started"}
    last_started = max(started) if started else None
    plan = ResumePlan(len(steps), skip=set(skipped))
    for p in plan_membranes(recipe):
        if p.made_at_step in done:
            continue  # made: its capture/analyse are repeated idempotently
        if all(j in done or j in skipped for j in p.steps):
            continue  # already recorded lost by an earlier resume
        span = [j for j in p.steps if j <= p.made_at_step]
        begun = [j for j in span if j in started]
        if not begun:
            continue  # not begun: it is made as planned
        at = max(begun)
        st = steps[at]
        if at in done:
            where = f"after {step_label(at, st)} finished and before {step_label(at + 1, steps[at + 1])} began"
        else:
            where = f"in {step_label(at, st)}" + (f" after {elapsed_s:.0f} s of it" if elapsed_s is not None and at == last_started else "")
        what = "the cast film dried without RH control" if any(j >= p.cast_step for j in begun) else \
            "the pre-wetted support dried without RH control (its water content is unknown)"
        reason = f"{what}: {stopped} {where}" + (f", {gap}" if gap else "")
        plan.lost.append(LostMembrane(p, reason, at))
        plan.skip |= {j for j in p.steps if j not in done}
    plan.first = next((i for i in range(len(steps)) if i not in done and i not in plan.skip), len(steps))
    return plan


def process_record(rec: Any, recipe: m.Recipe, plan: MembranePlan, t0: float | None, t1: float,
                   evap_data: dict[str, Any] | None = None, *, lost: str | None = None,
                   pump_counts: dict[str, float] | None = None) -> dict[str, Any]:
    """The membrane's process record (DESIGN §5): RH history from its pre-wet (else its cast) to the
    end of its evaporation, time out of band, volumes and rates dispensed.

    ``evap_data``: what its evaporate step journaled (out of band, RH error). ``lost``: the reason a
    membrane was lost before its evaporation ended under control; its record is then partial, up to
    its last RH record at or before ``t1`` (``partial``), with the evaporation statistics computed
    from the samples up to there and only the dispenses that began (a dispense cut short: volume
    unknown, at least its pump's last count, ``volume_at_least_ml``: the highest of its samples in
    the step and of ``pump_counts``, role -> mL infused read from the pumps once they were stopped,
    since a pump goes on until its watchdog stops it when its process stops talking)."""
    journal = rec.journal()

    def started_at(i: int | None) -> float | None:
        starts = [e.t_s for e in journal if e.step_index == i and e.state == "started"]
        return starts[-1] if starts else None

    series = [(t, v) for t, _, v in rec.samples("rh_near_pct") if v is not None and (t0 is None or t >= t0) and t <= t1]
    rh = [v for _, v in series]
    evap_t0 = started_at(plan.evaporate_step) if plan.evaporate_step is not None else None
    t_stop = t1
    if lost is not None and series:
        t1 = series[-1][0]  # its last record before it was lost
    out: dict[str, Any] = {
        "t_start_s": t0, "t_end_s": t1,
        "rh_mean_pct": sum(rh) / len(rh) if rh else None,
        "rh_min_pct": min(rh) if rh else None,
        "rh_max_pct": max(rh) if rh else None,
        "evaporation": {},
        "dispensed": {},
    }
    evap = recipe.steps[plan.evaporate_step] if plan.evaporate_step is not None else None
    if isinstance(evap, m.EvaporateStep) and (lost is None or evap_t0 is not None):
        if evap_data is None:  # its evaporation did not end: from the samples, as the step counts them
            evap_data = _band_stats([(t, v) for t, v in series if evap_t0 is not None and t >= evap_t0], evap, evap_t0)
        out["evaporation"] = {"setpoint_rh_pct": evap.setpoint_rh_pct, "band_rh_pct": evap.band_rh_pct,
                              "duration_s": None if evap_t0 is None else t1 - evap_t0,
                              "out_of_band_s": evap_data.get("out_of_band_s"),
                              "rh_error_mean_pct": evap_data.get("rh_error_mean_pct"),
                              "rh_error_rms_pct": evap_data.get("rh_error_rms_pct")}
        if evap_data.get("paused_s"):  # counted toward its duration (castrig.recipe.hold)
            out["evaporation"]["paused_s"] = evap_data["paused_s"]
        if lost is not None:
            out["evaporation"]["planned_duration_s"] = evap.duration_s
    done = {e.step_index: e.data for e in journal if e.state == "done"}
    for j in plan.steps:
        st = recipe.steps[j]
        if not isinstance(st, (m.PrewetStep, m.CastStep)):
            continue
        if lost is not None and j not in done and started_at(j) is None:
            continue  # never began
        entry: dict[str, Any] = {"volume_ml": (done.get(j) or {}).get("dispensed_ml"),
                                 "planned_volume_ml": st.volume_ml, "rate_ml_min": st.rate_ml_min}
        if lost is not None and j not in done:
            entry["finished"] = False  # cut short: how much went out in all is not known
            # but at least what the pump counted at its last sample in the step (its counter is
            # cleared as a dispense starts): a kill -9 mid-cast recorded the cast as volume null
            # beside a sampled 0.48 mL
            role = "caster" if isinstance(st, m.CastStep) else "water_pump"
            t_j = started_at(j)
            counted = [v for t, _, v in rec.samples(f"{role}_infused_ml") if v is not None and t_j is not None and t_j < t <= t_stop]
            if (pump_counts or {}).get(role) is not None:
                counted.append(pump_counts[role])  # (its counter is cleared as the dispense starts)
            if counted:
                entry["volume_at_least_ml"] = max(counted)
        out["dispensed"][st.type] = entry
    if lost is not None:
        out["partial"] = {"up_to_t_s": t1, "why": f"lost: {lost}"}
    return out


def _band_stats(series: list[tuple[float, float]], evap: m.EvaporateStep, t0: float | None) -> dict[str, Any]:
    """Time out of band and RH error of an evaporation, from its samples (as the step counts them)."""
    if not series:
        return {}
    out_s, errs, last = 0.0, [], t0 if t0 is not None else series[0][0]
    for t, v in series:
        err = v - evap.setpoint_rh_pct
        errs.append(err)
        if abs(err) > evap.band_rh_pct:
            out_s += t - last
        last = t
    return {"out_of_band_s": out_s, "rh_error_mean_pct": sum(errs) / len(errs),
            "rh_error_rms_pct": (sum(e * e for e in errs) / len(errs)) ** 0.5}


def membrane_targets(recipe: m.Recipe) -> dict[int, str | None]:
    """Each membrane's target grade (k -> grade): its analyse step's, else the recipe's."""
    out: dict[int, str | None] = {}
    for p in plan_membranes(recipe):
        grades = [recipe.steps[j].grade for j in p.steps if isinstance(recipe.steps[j], m.AnalyseStep)]
        out[p.k] = next((g for g in grades if g), recipe.grade)
    return out


def target_groups(membranes: list[dict[str, Any]], targets: str | dict[int, str | None] | None
                  ) -> list[tuple[str, list[str], list[str]]]:
    """(target grade, membranes that met it, every membrane aiming at it), each grade in cast order.

    A judged membrane's target is the one it was judged against; the others' come from
    ``targets`` (the recipe's grade, or per membrane k: :func:`membrane_targets`)."""
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for mb in membranes:
        if mb.get("status") == "judged":
            target = mb.get("target_grade")
        else:
            target = targets.get(mb.get("k")) if isinstance(targets, dict) else targets
        if not target:
            continue
        met, aimed = groups.setdefault(str(target), ([], []))
        short = "m" + str(mb["k"])
        aimed.append(short)
        if mb.get("status") == "judged" and target in (mb.get("grades_met") or []):
            met.append(short)
    return [(g, met, aimed) for g, (met, aimed) in groups.items()]


def target_column(membranes: list[dict[str, Any]], targets: str | dict[int, str | None] | None) -> str:
    """Per target grade, how many of the judged membranes aiming at it met it, and how many more
    were lost or not judged (``claim1: 2 of 3 met``, ``claim1: 0 of 1 met (1 lost, 1 not judged)``,
    ``claim1: none judged (1 lost)``): the queue's
    summary, which says what ``castrig runs --grade G`` says (a run is listed when some membrane
    met G) without calling a partly met run "NOT met", and counts as the run's own summary line
    (:func:`target_summary`) does: a membrane lost or not analysed is not one that missed."""
    status = {"m" + str(mb["k"]): mb.get("status") for mb in membranes}
    parts = []
    for g, met, aimed in target_groups(membranes, targets):
        n_judged = sum(status[x] == "judged" for x in aimed)
        lost = sum(status[x] == "lost" for x in aimed)
        rest = len(aimed) - n_judged - lost
        # a lost membrane said as lost ("0 of 0 met (1 not judged)" was all a queue said of one)
        why = ", ".join(f"{n} {what}" for what, n in (("lost", lost), ("not judged", rest)) if n)
        parts.append((f"{g}: {len(met)} of {n_judged} met" if n_judged else f"{g}: none judged") + (f" ({why})" if why else ""))
    return "; ".join(parts)


def target_summary(membranes: list[dict[str, Any]], targets: str | dict[int, str | None] | None
                   ) -> tuple[str, bool | None]:
    """(one line on what the run made, each membrane against its own target grade; whether every
    membrane met its target).

    ``targets``: the recipe's grade, or each membrane's (k -> grade, :func:`membrane_targets`); a
    judged membrane is held to the grade it was judged against. Membranes with different targets
    are grouped by target: ``claim1 met by m2, m3; claim3 NOT met by m1``. ``None`` (the flag) when
    no membrane has a target grade; ``("", None)`` when the run has no membrane.
    """
    if not membranes:
        return "", None
    short = {mb["membrane_id"]: "m" + str(mb["k"]) for mb in membranes}
    groups = target_groups(membranes, targets)
    judged_ids = {short[mb["membrane_id"]] for mb in membranes if mb.get("status") == "judged"}
    lost = [short[mb["membrane_id"]] for mb in membranes if mb.get("status") == "lost"]
    unjudged = [short[mb["membrane_id"]] + (" (made, not analysed)" if mb.get("status") == "made" else "")
                for mb in membranes if mb.get("status") in ("forming", "made")]
    parts = [f"{len(membranes)} membrane{'s' if len(membranes) != 1 else ''}"]
    judged_groups = [(g, met, judged) for g, met, aimed in groups if (judged := [x for x in aimed if x in judged_ids])]
    if groups and not judged_groups:  # none judged yet (lost, not analysed): said below
        parts.append(f"target grade {groups[0][0]} met by 0")
    elif len(judged_groups) == 1:
        g, met, aimed = judged_groups[0]
        missed = [x for x in aimed if x not in met]
        parts.append(f"target grade {g} met by {len(met)}" + (f" ({', '.join(met)})" if met else ""))
        if missed:
            parts.append(f"NOT met by {', '.join(missed)}")
    else:
        for g, met, aimed in judged_groups:
            missed = [x for x in aimed if x not in met]
            if met:
                parts.append(f"{g} met by {', '.join(met)}")
            if missed:
                parts.append(f"{g} NOT met by {', '.join(missed)}")
    no_target = [short[mb["membrane_id"]] + ":" + (",".join(mb.get("grades_met") or []) or "none")
                 for mb in membranes if mb.get("status") == "judged" and not mb.get("target_grade")]
    if no_target:
        parts.append("grades " + " ".join(no_target))
    if unjudged:
        parts.append(f"not judged: {', '.join(unjudged)}")
    if lost:
        parts.append(f"lost: {', '.join(lost)}")
    # a membrane without a target (judged against none) has nothing to miss
    ok = None if not groups else all(len(met) == len(aimed) for _, met, aimed in groups)
    return "; ".join(parts), ok
