"""On a real rig: propose the next recipe from the runs already in the store.

A rig run takes an operator, a support and half an hour, so nothing runs by itself: the
measured outcomes of the store's completed runs (whoever made them) are the optimiser's
history, the optimiser proposes one recipe, and the operator confirms before it is run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from castrig.explore.distributed import trial_recipe_name
from castrig.explore.journal import SearchSettings
from castrig.explore.objective import Outcome, score_run
from castrig.explore.optimiser import propose
from castrig.explore.search import template_point
from castrig.explore.space import apply_point, profile_for
from castrig.rig.profile import Profile
from castrig.store import open_store
from castrig.store.sqlite_store import open_run_folder


@dataclass
class StoredRun:
    """One measured membrane of the store: its own cast's settings and its own outcome."""

    run_id: str
    params: dict[str, float]
    outcome: Outcome
    #: The membrane (``RUN-mK``); None for a run from before membranes (one result per run).
    membrane_id: str | None = None

    @property
    def name(self) -> str:
        return f"membrane {self.membrane_id}" if self.membrane_id else f"run {self.run_id}"


def point_of_run(recipe: dict[str, Any], profile: dict[str, Any], cast_step: int | None = None) -> dict[str, float] | None:
    """The four process parameters of a stored cast: the cast at step ``cast_step`` (0-based)
    and the first evaporate after it — by default the recipe's first cast (None if it has no
    cast followed by an evaporate)."""
    steps = recipe.get("steps") or []
    casts = [i for i, s in enumerate(steps) if isinstance(s, dict) and s.get("type") == "cast"]
    i = cast_step if cast_step is not None else (casts[0] if casts else None)
    if i is None or not 0 <= i < len(steps) or steps[i].get("type") != "cast":
        return None
    # its evaporate: after its cast, before the next cast
    evap = next((s for s in steps[i + 1:] if s.get("type") in ("evaporate", "cast")), None)
    if evap is None or evap.get("type") != "evaporate":
        return None
    return {"rh_pct": float(evap["setpoint_rh_pct"]), "concentration_mg_ml": float(recipe.get("concentration_mg_ml", 5.0)),
            "cast_volume_ml": float(steps[i]["volume_ml"]),
            "total_flow_slpm": float((profile.get("control") or {}).get("total_flow_slpm", 2.0))}


def store_history(root: str | Path | None, *, grade: str, target_d_um: float) -> list[StoredRun]:
    """The judged membranes of the store's completed runs, each scored for this grade and target
    at its own cast's settings (a run of four casts at four RH is four points, not one: its first
    cast's settings beside its last membrane's D had mixed two membranes)."""
    store = open_store(root)
    out = []
    for r in store.list_runs():
        if r.outcome != "completed":
            continue
        rec = open_run_folder(Path(r.run_dir))  # read only (not a fleet recorder)
        try:
            recipe, profile = rec.info.recipe, rec.info.profile
            judged = [m for m in rec.membranes() if m.status == "judged"]
            results = rec.results()
        finally:
            rec.close()
        if not judged:  # a run from before membranes: its one result
            point = point_of_run(recipe, profile)
            if point is not None and "metrics" in results:
                out.append(StoredRun(r.run_id, point, score_run(r.outcome, results.get("metrics"), results.get("verdict"),
                                                                grade=grade, target_d_um=target_d_um)))
            continue
        for mb in judged:
            point = point_of_run(recipe, profile, mb.cast_step)
            metrics = results.get(f"{mb.membrane_id}/metrics", mb.metrics)
            if point is None or not metrics:
                continue
            verdict = results.get(f"{mb.membrane_id}/verdict", mb.verdict)
            out.append(StoredRun(r.run_id, point, score_run(r.outcome, metrics, verdict, grade=grade, target_d_um=target_d_um),
                                 membrane_id=mb.membrane_id))
    return out


def propose_next(settings: SearchSettings, history: list[StoredRun], folder: Path,
                 profile: dict[str, Any] | None = None) -> tuple[dict[str, float], Path, Path]:
    """Write the proposed recipe and its profile copy under ``FOLDER/proposals/pNNNN``.
    ``profile``: the operator's profile (with the device passwords ``settings.profile`` does not
    hold), copied into the proposal's profile file, which the operator runs on the rig."""
    profile = Profile.model_validate(profile if profile is not None else settings.profile)
    n = len(history)
    params = propose(settings.space, [(h.params, h.outcome.score) for h in history], seed=settings.seed, number=n,
                     first=template_point(settings.template, profile))
    d = Path(folder) / "proposals" / f"p{n:04d}"
    d.mkdir(parents=True, exist_ok=True)
    # (named after the study's folder: proposals of two studies run on one rig were all explore-claim1-p0000)
    recipe = apply_point(settings.template, params, name=trial_recipe_name(Path(folder).name, f"p{n:04d}"), grade=settings.grade,
                         description=f"proposed by castrig explore from {n} stored runs ({settings.grade} at D {settings.target_d_um:g} µm)")
    (d / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True))
    prof = profile_for(profile, params["total_flow_slpm"])
    prof["store"] = profile.store
    (d / "profile.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return params, d / "recipe.yaml", d / "profile.yaml"
