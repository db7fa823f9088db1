"""The process-window search on the twin: for each claimed grade and each target D, how many
trials and how long it takes to find a recipe, and whether the found recipe, run again (a fresh
data root, the profile's own seed — what `castrig run` does), still meets it.

    python benchmarks/explore.py [--budget 60] [--seed 0] [--grades claim1,claim2] [--d 3,10]

With ``--workers N``: throughput instead — the same set of twin trials (a grid of recipes, queued in
an Optuna journal study) run by one worker process and by N, side by side in one run, as trials
per minute of wall time and their ratio (goal, issue 19: ≥ 1.8× with 2 workers on 2 cores).

    python benchmarks/explore.py --workers 2 [--trials 24]
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
    ap.add_argument("--workers", type=int, default=0, help="compare trials per minute of 1 and N worker processes")
    ap.add_argument("--trials", type=int, default=24, help="trials per throughput measurement (with --workers)")
    args = ap.parse_args()
    if args.workers:
        return throughput(args.workers, args.trials, args.keep)
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


def _timed_map(n_workers: int, n_trials: int, folder: Path) -> tuple[float, int, float]:
    """(wall s, trials done, CPU s of the workers) for ``n_trials`` grid trials on ``n_workers`` processes."""
    import os

    from castrig.explore.distributed import map_results, start_map, storage_url, worker_processes
    from castrig.explore.gridmap import Grid
    from castrig.explore.search import make_settings

    profile = ROOT / "hw_profiles" / "sim.yaml"
    settings = make_settings(grade="claim1", target_d_um=3.0, profile_path=profile, support_pore_um=5.0)
    side = int(n_trials**0.5 + 0.999)
    rhs = [round(60 + 25 * i / max(side - 1, 1), 3) for i in range(side)]
    cs = [round(2 + 10 * j / max(side - 1, 1), 3) for j in range(side)]
    grid = Grid(rhs, cs, [0.2], 2.0, [1])
    url = storage_url(None, folder)
    study, _ = start_map(url, "bench", settings, grid)
    # Only the first n_trials points: the rest are dropped from the queue before the clock starts.
    from castrig.explore.distributed import _states

    for t in study.get_trials(deepcopy=False)[n_trials:]:
        study._storage.set_trial_state_values(t._trial_id, _states().FAIL)
    c0 = os.times()
    t0 = time.monotonic()
    with worker_processes(url, "bench", folder, n_workers) as procs:
        for p in procs:
            p.wait()
    wall = time.monotonic() - t0
    c1 = os.times()
    return wall, len(map_results(study)), (c1.children_user + c1.children_system) - (c0.children_user + c0.children_system)


def throughput(workers: int, n_trials: int, keep: Path | None) -> int:
    work = keep or Path(tempfile.mkdtemp(prefix="castrig-explore-tp-"))
    rows = []
    for n in (1, workers):
        wall, done, cpu = _timed_map(n, n_trials, work / f"w{n}")
        rows.append((n, done, wall, 60.0 * done / wall, cpu))
    print(f"{'workers':>7s} {'trials':>6s} {'wall s':>7s} {'trials/min':>10s} {'worker CPU s':>12s}")
    for n, done, wall, rate, cpu in rows:
        print(f"{n:7d} {done:6d} {wall:7.1f} {rate:10.1f} {cpu:12.1f}")
    ratio = rows[1][3] / rows[0][3]
    print(f"speed-up with {workers} workers: {ratio:.2f}× trials per minute (goal ≥ 1.8× with 2 workers on 2 cores); "
          f"load average now {' '.join(f'{x:.1f}' for x in __import__('os').getloadavg())}; folders in {work}")
    return 0 if ratio >= 1.8 or workers < 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
