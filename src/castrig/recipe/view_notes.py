"""The views an analyse's grade needs that its membrane's captures do not take: a note of check and run.

Every grade includes claim 1, whose bounds need all three views: the through-pore fraction comes
from the transmitted view; T/D, the support's pores, the polymer's penetration and the joined
cavities from the section. A recipe whose captures took only the reflected view passed check
without a word, and every membrane of the night ended "NOT met": each bound of a view never taken
'unknown', no lot. Said before the run starts, as the other notes are (the recipe stays valid: a
quick look at the surface alone is a choice, not a mistake, once it is said).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from castrig.analysis.metric_views import VIEW_OF_METRIC  # (the view each metric comes from: the quality flags' table)
from castrig.analysis.spec import load_spec
from castrig.recipe import model as m

VIEWS = ("reflected", "transmitted", "section")


def needed_views(grade: str) -> dict[str, list[str]]:
    """View -> the labels of ``grade``'s bounds (its included grades' too) measured on it."""
    spec = load_spec()
    out: dict[str, list[str]] = {}
    for bound in spec.grades[grade].bounds:
        metrics = spec.ratios.get(bound.quantity, (bound.quantity,))
        label = spec.labels.get(bound.quantity, bound.quantity)
        for view in {VIEW_OF_METRIC[k] for k in metrics if k in VIEW_OF_METRIC}:
            if label not in out.setdefault(view, []):
                out[view].append(label)
    return out


def missing_view_notes(recipe: m.Recipe, recipe_path: Path | str, steps: Collection[int] | None = None) -> list[str]:
    """A note for each analyse (of ``steps``, all by default) whose membrane's captures lack a view its grade needs."""
    notes: list[str] = []
    k, cast, taken = 0, None, set()  # membranes cast so far, the last cast, views captured since it
    for i, step in enumerate(recipe.steps):
        if isinstance(step, m.CastStep):
            k, cast, taken = k + 1, i, set()
        elif isinstance(step, m.CaptureStep):
            taken |= set(step.views)
        elif isinstance(step, m.AnalyseStep) and (steps is None or i in steps):
            grade = step.grade or recipe.grade or "claim1"  # (no grade: every grade includes claim 1's bounds)
            need = needed_views(grade)
            missing = [v for v in VIEWS if v in need and v not in taken]
            if not missing:
                continue
            what = f"membrane m{k}'s captures (cast at step {cast + 1})" if cast is not None else "the captures before it"
            why = "; ".join(f"{v}: {', '.join(need[v])}" for v in missing)
            notes.append(f"{recipe_path}: steps[{i}] (analyse): {what} take no {' or '.join(missing)} view, so {grade}'s "
                         f"bounds measured on it cannot be judged ({why}) and {grade} can only come out unknown, never "
                         f"met; a capture with views [{', '.join(VIEWS)}] before step {i + 1} measures them")
    return notes
