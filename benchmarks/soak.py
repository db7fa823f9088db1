"""Soak: the overnight queue on the twin for a week of virtual time, with faults along the way.

    python benchmarks/soak.py                # 7 virtual days (~20 overnight runs, ~3-4 min)
    python benchmarks/soak.py --days 1       # a shorter soak

Runs ``recipes/overnight.yaml`` back to back in one process (as ``castrig queue --repeat``
does), each run with a few seeded transient faults (link glitches, a port that vanishes and
comes back, a noisy sensor) injected through the emulators. Prints samples written, peak and
per-run memory (resident memory after each run must stay flat: no growth from run to run), store
size growth per virtual hour, and faults injected vs recovered. Exits 1 if memory grows, a
sample is lost, or a run fails.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from castrig.recipe.model import load_recipe  # noqa: E402
from castrig.reliability.faults import DURATIONS, Fault, FaultPoint, nominal_step_s  # noqa: E402
from castrig.reliability.harness import default_profile, drive  # noqa: E402
from castrig.store import SqliteRunStore  # noqa: E402

#: Transient faults a week of nights brings (all recoverable: within retries or comms tolerance).
SOAK_FAULTS = [("timeout", "rh_near"), ("garbage", "dry_mfc"), ("truncated", "wet_mfc"), ("timeout", "caster"),
               ("port_vanishes", "rh_room"), ("port_vanishes", "dry_mfc"), ("rh_noisy", "rh_near"), ("garbage", "water_pump")]


def _rss() -> int:
    """Resident memory now (bytes), from /proc: the peak alone would hide a slow leak."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize()


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--days", type=float, default=7.0, help="virtual days to run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--faults-per-run", type=int, default=3)
    ap.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "overnight.yaml")
    ap.add_argument("--tracemalloc", action="store_true", help="measure the Python heap too (about 4x slower)")
    args = ap.parse_args(argv)
    recipe = load_recipe(args.recipe)
    profile = default_profile()
    rng = random.Random(args.seed)
    target_s = args.days * 86400.0
    virtual_s = 0.0
    injected = recovered = samples = lost = runs = failed_runs = 0
    heap_after: list[int] = []
    sizes: list[tuple[float, int]] = []
    if args.tracemalloc:
        tracemalloc.start()
    t_wall = time.perf_counter()
    what = "heap" if args.tracemalloc else "RSS"
    with tempfile.TemporaryDirectory(prefix="castrig-soak-") as tmp:
        root = Path(tmp)
        store = SqliteRunStore(root, synchronous=profile.store_sync)
        while virtual_s < target_s:
            faults = []
            for _ in range(args.faults_per_run):
                kind, target = rng.choice(SOAK_FAULTS)
                step = rng.randrange(len(recipe.steps))
                span = nominal_step_s(recipe.steps[step])
                faults.append((Fault(kind, target, DURATIONS[kind]), FaultPoint(step, round(rng.uniform(0, 0.8 * span), 1))))
            d = drive(recipe, profile, args.seed + runs, store, faults)
            runs += 1
            fired = [i for i in d.injectors if i.fired]
            injected += len(fired)
            ok = d.result.outcome == "completed" and not d.escaped and not d.log.tracebacks
            recovered += len(fired) if ok else 0
            failed_runs += not ok
            stored = {(t, ch) for t, ch, _ in d.inner.samples()}
            lost += sum(1 for t, ch, _ in d.rec.acked_samples if (t, ch) not in stored)
            samples += len(d.rec.acked_samples)
            virtual_s += d.runner.t()
            if not ok:
                print(f"  run {runs}: {d.result.outcome}: {d.result.reason}", flush=True)
            d.inner.close()
            d.rig.close()
            del d
            gc.collect()
            heap_after.append(tracemalloc.get_traced_memory()[0] if args.tracemalloc else _rss())
            sizes.append((virtual_s / 3600.0, _size(root)))
            print(f"run {runs:3d}: t = {virtual_s / 3600:7.1f} h virtual, {what} {heap_after[-1] / 1e6:6.2f} MB, "
                  f"store {sizes[-1][1] / 1e6:7.1f} MB", flush=True)
    peak_heap = tracemalloc.get_traced_memory()[1] if args.tracemalloc else 0
    tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    wall = time.perf_counter() - t_wall
    hours = virtual_s / 3600.0
    # flat = after warm-up (the first runs import the analysis stack and fill the allocator's
    # arenas), memory after the last quarter of the runs is no larger than after the second
    q = max(1, len(heap_after) // 4)
    warm = heap_after[q:] if len(heap_after) > q + 1 else heap_after
    q2 = max(1, len(warm) // 3)
    # medians: the allocator gives memory back in bursts (single-run spikes); a leak raises them all
    first, last = statistics.median(warm[:q2]), statistics.median(warm[-q2:])
    growth_pct = 100.0 * (last - first) / first if first else 0.0
    per_hour = [(b2 - b1) / (h2 - h1) for (h1, b1), (h2, b2) in zip(sizes, sizes[1:]) if h2 > h1]
    print()
    print(f"virtual time           {hours:.1f} h ({hours / 24:.2f} days) in {wall:.0f} s wall ({runs} overnight runs)")
    print(f"samples written        {samples}  (lost: {lost})")
    print(f"peak memory            {rss_mb:.0f} MB RSS" + (f"; Python heap peak {peak_heap / 1e6:.1f} MB" if peak_heap else ""))
    print(f"{what} after each run     median after warm-up {first / 1e6:.2f} MB, at the end {last / 1e6:.2f} MB ({growth_pct:+.1f} %); "
          f"per run: {', '.join(f'{h / 1e6:.0f}' for h in heap_after)} MB")
    print(f"store growth per hour  {sizes[-1][1] / hours / 1e6:.2f} MB/h overall"
          + (f" (per run: min {min(per_hour) / 1e6:.2f}, max {max(per_hour) / 1e6:.2f} MB/h)" if per_hour else ""))
    print(f"faults                 {injected} injected, {recovered} recovered ({failed_runs} runs not completed)")
    bad = lost or failed_runs or growth_pct > 10.0
    print("RESULT:", "FAIL" if bad else "PASS")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
