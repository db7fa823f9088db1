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

from castrig.explore.journal import SearchSettings
from castrig.explore.objective import Outcome, score_run
from castrig.explore.optimiser import propose
from castrig.explore.search import template_point
from castrig.explore.space import apply_point, profile_for
from castrig.rig.profile import Profile
from castrig.store import open_store
from castrig.store.base import latest_results


@dataclass
class StoredRun:
    run_id: str
    params: dict[str, float]
    outcome: Outcome


def point_of_run(recipe: dict[str, Any], profile: dict[str, Any]) -> dict[str, float] | None:
    """The four process parameters of a stored run (None if it had no cast/evaporate)."""
    steps = recipe.get("steps") or []
    evap = next((s for s in steps if s.get("type") == "evaporate"), None)
    cast = next((s for s in steps if s.get("type") == "cast"), None)
    if evap is None or cast is None:
        return None
    return {"rh_pct": float(evap["setpoint_rh_pct"]), "concentration_mg_ml": float(recipe.get("concentration_mg_ml", 5.0)),
            "cast_volume_ml": float(cast["volume_ml"]),
            "total_flow_slpm": float((profile.get("control") or {}).get("total_flow_slpm", 2.0))}


def store_history(root: str | Path | None, *, grade: str, target_d_um: float) -> list[StoredRun]:
    """Completed runs in the store, scored for this grade and target (the measured outcomes)."""
    store = open_store(root)
    out = []
    for r in store.list_runs():
        if r.outcome != "completed":
            continue
        rec = store.open_run(Path(r.run_dir))
        try:
            point = point_of_run(rec.info.recipe, rec.info.profile)
            results = latest_results(rec)  # one cast per explored recipe: its membrane
        finally:
            rec.close()
        if point is None or "metrics" not in results:
            continue
        out.append(StoredRun(r.run_id, point, score_run(r.outcome, results.get("metrics"), results.get("verdict"),
                                                        grade=grade, target_d_um=target_d_um)))
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
    recipe = apply_point(settings.template, params, name=f"explore-{settings.grade}-p{n:04d}", grade=settings.grade,
                         description=f"proposed by castrig explore from {n} stored runs ({settings.grade} at D {settings.target_d_um:g} µm)")
    (d / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True))
    prof = profile_for(profile, params["total_flow_slpm"])
    prof["store"] = profile.store
    (d / "profile.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return params, d / "recipe.yaml", d / "profile.yaml"
