"""The process-window search on the twin: for each claimed grade and each target D, how many
trials and how long it takes to find a recipe, and whether the found recipe, run again (a fresh
data root, the profile's own seed — what `castrig run` does), still meets it.

    python benchmarks/explore.py [--budget 60] [--seed 0] [--grades claim1,claim2] [--d 3,10]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

from castrig.explore import Search, make_settings
from castrig.recipe.session import run_recipe

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--budget", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--grades", default="claim1,claim2,claim3,claim4")
    ap.add_argument("--d", default="3,10", help="target diameters, µm")
    ap.add_argument("--keep", type=Path, default=None, help="keep the search folders here")
    args = ap.parse_args()
    profile = ROOT / "hw_profiles" / "sim.yaml"
    work = args.keep or Path(tempfile.mkdtemp(prefix="castrig-explore-"))
    print(f"{'grade':7s} {'D target':>8s} {'found D':>8s} {'trials':>6s} {'runs':>4s} {'wall s':>7s} {'rerun D':>8s} rerun meets  recipe")
    failures = 0
    t_all = time.monotonic()
    for grade in args.grades.split(","):
        for d in (float(x) for x in args.d.split(",")):
            settings = make_settings(grade=grade, target_d_um=d, profile_path=profile, budget=args.budget, seed=args.seed)
            folder = work / f"{grade}-d{d:g}"
            t0 = time.monotonic()
            res = Search(folder, settings).run()
            wall = time.monotonic() - t0
            if res.found is None:
                failures += 1
                print(f"{grade:7s} {d:8g} {'—':>8s} {res.search_trials:6d} {res.runs:4d} {wall:7.1f} not found")
                continue
            rerun_profile = res.profile_path or profile
            with contextlib.redirect_stdout(io.StringIO()):
                again = run_recipe(res.recipe_path, rerun_profile, data_root=folder / "rerun", quiet=True)
            from castrig.store import open_store
            from castrig.store.base import latest_results

            rec = open_store(folder / "rerun").open_run(Path(again.run_dir))
            d_again = latest_results(rec)["metrics"]["mean_pore_diameter_um"]
            rec.close()
            meets = grade in (again.verdict or {}).get("grades_met", []) and abs(d_again / d - 1) <= settings.tolerance
            failures += not meets
            p = res.found.params
            print(f"{grade:7s} {d:8g} {res.found.outcome.d_um:8.2f} {res.search_trials:6d} {res.runs:4d} {wall:7.1f} "
                  f"{d_again:8.2f} {'yes' if meets else 'NO':>11s}  RH {p['rh_pct']:.1f} %, c {p['concentration_mg_ml']:.2f} mg/mL, "
                  f"V {p['cast_volume_ml']:.3f} mL, Q {p['total_flow_slpm']:.2f} slpm", flush=True)
    print(f"total wall time {time.monotonic() - t_all:.0f} s; folders in {work}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
