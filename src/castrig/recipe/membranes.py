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


def plan_resume(recipe: m.Recipe, journal: list[Any], *, elapsed_s: float | None = None, gap: str = "") -> ResumePlan:
    """The resume plan from the journal.

    A step that finished (``done``) or was ``skipped`` is never run again. A started, unfinished
    step that is harmless to repeat (purge, condition, wait, capture, analyse) is repeated. A
    membrane whose steps began but whose evaporation did not end under control is lost (``gap``
    words how long it was left, e.g. "for 3 min of wall clock until the resume").
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
        reason = f"{what}: the run stopped {where}" + (f", {gap}" if gap else "")
        plan.lost.append(LostMembrane(p, reason, at))
        plan.skip |= {j for j in p.steps if j not in done}
    plan.first = next((i for i in range(len(steps)) if i not in done and i not in plan.skip), len(steps))
    return plan


def target_summary(membranes: list[dict[str, Any]], target: str | None) -> tuple[str, bool | None]:
    """(one line on what the run made against its target grade, whether every membrane met it).

    ``None`` when the run has no target grade or no membrane.
    """
    if not membranes:
        return "", None
    short = {mb["membrane_id"]: "m" + str(mb["k"]) for mb in membranes}
    met = [short[mb["membrane_id"]] for mb in membranes if target and target in (mb.get("grades_met") or [])]
    lost = [short[mb["membrane_id"]] for mb in membranes if mb.get("status") == "lost"]
    unjudged = [short[mb["membrane_id"]] for mb in membranes if mb.get("status") in ("forming", "made")]
    missed = [short[mb["membrane_id"]] for mb in membranes if mb.get("status") == "judged" and target
              and target not in (mb.get("grades_met") or [])]
    parts = [f"{len(membranes)} membrane{'s' if len(membranes) != 1 else ''}"]
    if target:
        parts.append(f"target grade {target} met by {len(met)}" + (f" ({', '.join(met)})" if met else ""))
        if missed:
            parts.append(f"NOT met by {', '.join(missed)}")
    else:
        judged = [short[mb["membrane_id"]] + ":" + (",".join(mb.get("grades_met") or []) or "none")
                  for mb in membranes if mb.get("status") == "judged"]
        if judged:
            parts.append("grades " + " ".join(judged))
    if unjudged:
        parts.append(f"not judged: {', '.join(unjudged)}")
    if lost:
        parts.append(f"lost: {', '.join(lost)}")
    ok = None if not target else len(met) == len(membranes)
    return "; ".join(parts), ok
