"""``castrig queue``: unattended production, one recipe after another.

All recipes are validated against the profile before the first one starts. A run that fails is
recorded (its folder says why) and the queue goes on — provided the rig was verified safe after
it; if the safe state could not be verified, nobody is there to look, so the queue stops.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from castrig.recipe.compat import check_recipe_for_profile
from castrig.recipe.model import load_recipe
from castrig.recipe.runner import RunResult
from castrig.recipe.session import run_recipe
from castrig.rig.profile import load_profile
from castrig.store import data_root as resolve_root
from castrig.store.atomic import atomic_write_json


def run_queue(
    recipes: list[Path],
    *,
    repeat: int,
    profile: Path,
    data_root: Path | None,
    seed: int | None,
    operator: str,
) -> int:
    prof = load_profile(profile)
    for path in recipes:
        check_recipe_for_profile(load_recipe(path), Path(path), prof, Path(profile))
    base_seed = prof.sim.seed if seed is None else seed
    rows: list[dict[str, object]] = []
    stopped = None
    k = 0
    for rep in range(repeat):
        for path in recipes:
            result: RunResult = run_recipe(path, profile, data_root=data_root, seed=base_seed + k, operator=operator, quiet=True)
            k += 1
            verdict = result.verdict or {}
            report = None
            if result.run_dir:
                try:
                    from castrig.report import build_report

                    report = str(build_report(Path(result.run_dir)))
                except Exception as exc:  # noqa: BLE001 - a report failing must never stop production
                    report = f"report failed: {exc}"
            rows.append({
                "recipe": str(path), "repeat": rep + 1, "seed": base_seed + k - 1, "run_dir": result.run_dir,
                "outcome": result.outcome, "reason": result.reason,
                "grades_met": verdict.get("grades_met", []),
                "safe": None if result.safe is None else result.safe.safe,
                "report": report,
            })
            if result.outcome == "interrupted":
                stopped = "interrupted by the operator"
            elif result.safe is not None and not result.safe.safe:
                stopped = f"safe state not verified after {result.run_dir}: queue stopped"
            if stopped:
                break
        if stopped:
            break
    root = resolve_root(data_root or prof.store)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    summary = {"profile": str(profile), "runs": rows, "stopped": stopped}
    atomic_write_json(root / f"queue-{stamp}.json", summary)
    table = Table(title=f"queue summary ({len(rows)} runs) — {root / f'queue-{stamp}.json'}")
    for col in ("#", "recipe", "outcome", "grades met", "report"):
        table.add_column(col)
    for i, r in enumerate(rows, 1):
        table.add_row(str(i), Path(str(r["recipe"])).name, str(r["outcome"]), ", ".join(r["grades_met"]) or "—", str(r["report"] or r["run_dir"]))  # type: ignore[arg-type]
    Console(width=200).print(table)
    if stopped:
        Console(stderr=True).print(f"[red]{stopped}[/]")
    if stopped == "interrupted by the operator":
        return 130
    return 0 if all(r["outcome"] == "completed" for r in rows) else 3
