"""Virtual time on the twin: speed-up of recipes/overnight.yaml against a baseline source tree, where
the time goes (per part), and render time.

    python benchmarks/virtual_time.py [--baseline-src DIR] [--repeat 2] [--no-profile]

The overnight recipe runs in child processes, alternating baseline and current code, and each child
reports its own CPU time (process time): on a machine shared with other jobs, wall time measures the
neighbours as much as us, CPU time does not (wall time is printed too). The speed-up is the ratio of
the medians. The baseline is ``--baseline-src`` (a directory holding the ``castrig`` package, e.g.
``git archive HEAD src | tar -x -C /tmp/base`` then ``--baseline-src /tmp/base/src``); by default
``git archive HEAD`` is unpacked into a temporary directory (nothing in the checkout changes).
Both runs' records (samples, events, journal) are hashed: equal hashes mean the same answers.

The breakdown is one cProfile of the current code, its self time grouped by package (time in
builtins goes to the part that called them): physics (sim/world, sim/physics), emulators
(sim/* device emulators), links, drivers (devices/*), store, analysis (+ scipy/scikit-image),
rendering (sim/micrograph, the camera), runner and control, other (imports, CLI, YAML, pydantic).

Goals: issue 6 — 8 h in ≤ 10 s wall; issue 19 — ≥ 3× faster than the issue-6 twin (≤ 5 s, ≥ 6 000×).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "overnight.yaml"
PROFILE = ROOT / "hw_profiles" / "sim.yaml"


# -- the child: one run, measured -------------------------------------------------------------------
def child(profile_out: str | None) -> None:
    import cProfile

    from castrig.cli.main import main as castrig

    with tempfile.TemporaryDirectory() as tmp:
        prof = cProfile.Profile() if profile_out else None
        c0, w0 = time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
        code = castrig(["run", str(RECIPE), "--profile", str(PROFILE), "--data", tmp, "--seed", "7", "-q"])
        if prof:
            prof.disable()
            prof.dump_stats(profile_out)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        (run_dir,) = [p for p in Path(tmp).iterdir() if p.is_dir()]
        rid = run_dir.name.encode()
        db = sqlite3.connect(run_dir / "run.sqlite")
        virtual = db.execute("select max(t_s) from samples").fetchone()[0]
        hashes = {}
        for table, cols in (("samples", "t_s, channel, value"), ("events", "t_s, kind, source, message, data_json"),
                            ("journal", "t_s, step_index, state, data_json")):
            rows = db.execute(f"select {cols} from {table} order by rowid").fetchall()
            hashes[table] = hashlib.sha256(repr(rows).encode().replace(rid, b"RUN")).hexdigest()[:12]
        n_samples = db.execute("select count(*) from samples").fetchone()[0]
        outcome = json.loads((run_dir / "run.json").read_text())["outcome"]
    print(json.dumps({"code": code, "outcome": outcome, "cpu": cpu, "wall": wall, "virtual": virtual, "samples": n_samples,
                      "hashes": hashes}))


def run_child(src: Path, profile_out: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    cmd = [sys.executable, __file__, "--child"] + (["--profile-out", profile_out] if profile_out else [])
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if res.returncode != 0:
        raise SystemExit(f"child failed ({src}):\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- the breakdown -----------------------------------------------------------------------------------
PARTS = ("physics", "emulators", "links", "drivers", "store", "analysis", "rendering", "runner+control", "other")


def _part(filename: str) -> str | None:
    f = filename
    if "/castrig/sim/world.py" in f or "/castrig/sim/physics.py" in f:
        return "physics"
    if any(x in f for x in ("/castrig/sim/micrograph.py", "/castrig/sim/film_images.py", "/castrig/sim/camera.py",
                            "/castrig/sim/twin.py")):
        return "rendering"
    if "/castrig/sim/" in f:
        return "emulators"
    if "/castrig/links/" in f or "/castrig/clock/" in f:
        return "links"
    if "/castrig/devices/" in f:
        return "drivers"
    if "/castrig/store/" in f or "/castrig/tiffio.py" in f or "sqlite3" in f:
        return "store"
    if "/castrig/analysis/" in f or "/scipy/" in f or "/skimage/" in f:
        return "analysis"
    if "/castrig/recipe/" in f or "/castrig/control/" in f or "simple_pid" in f:
        return "runner+control"
    if f == "~" or f.startswith("<"):
        return None  # a builtin: charged to its callers
    return "other"


def breakdown(profile_path: str) -> dict[str, float]:
    """Self time per part; a builtin's time is shared among its callers by their share of its calls."""
    import pstats

    stats = pstats.Stats(profile_path).stats  # type: ignore[attr-defined]
    memo: dict = {}

    def parts_of(fn, depth: int = 0) -> dict[str, float]:
        if fn in memo:
            return memo[fn]
        p = _part(fn[0])
        if p is not None or depth > 6 or fn not in stats:
            res = {p or "other": 1.0}
        else:
            callers = stats[fn][4]
            total = sum(v[1] for v in callers.values()) or 1
            acc: collections.Counter = collections.Counter()
            for c, v in callers.items():
                for k, x in parts_of(c, depth + 1).items():
                    acc[k] += x * v[1] / total
            res = dict(acc) or {"other": 1.0}
        memo[fn] = res
        return res

    out: collections.Counter = collections.Counter()
    for fn, (_cc, _nc, tt, _ct, _callers) in stats.items():
        for k, w in parts_of(fn).items():
            out[k] += tt * w
    return dict(out)


def baseline_tree(arg: Path | None) -> Path | None:
    if arg is not None:
        return arg
    tmp = Path(tempfile.mkdtemp(prefix="castrig-baseline-"))
    try:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD", "src"], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return tmp / "src"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--profile-out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--baseline-src", type=Path, default=None, help="directory holding the baseline castrig package")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each (alternating)")
    ap.add_argument("--no-profile", action="store_true", help="skip the per-part breakdown")
    args = ap.parse_args()
    if args.child:
        child(args.profile_out)
        return
    current = ROOT / "src"
    base = baseline_tree(args.baseline_src)
    runs: dict[str, list[dict]] = {"baseline": [], "current": []}
    for _ in range(args.repeat):
        if base is not None:
            runs["baseline"].append(run_child(base))
        runs["current"].append(run_child(current))
    cur = runs["current"]
    virtual = cur[0]["virtual"]
    cpu = statistics.median(r["cpu"] for r in cur)
    wall = statistics.median(r["wall"] for r in cur)
    print(f"overnight.yaml       exit {cur[0]['code']}, outcome {cur[0]['outcome']}, {cur[0]['samples']} samples")
    print(f"virtual time         {virtual / 3600:8.2f} h")
    print(f"current              CPU {cpu:6.2f} s ({virtual / cpu:6.0f}×)   wall {wall:6.2f} s ({virtual / wall:6.0f}×; "
          f"load average {os.getloadavg()[0]:.1f})   goal ≤ 5 s, ≥ 6 000×")
    if runs["baseline"]:
        b = runs["baseline"]
        bcpu = statistics.median(r["cpu"] for r in b)
        bwall = statistics.median(r["wall"] for r in b)
        print(f"baseline ({base})  CPU {bcpu:6.2f} s ({virtual / bcpu:6.0f}×)   wall {bwall:6.2f} s")
        print(f"speed-up             {bcpu / cpu:8.2f}× CPU, {bwall / wall:.2f}× wall (medians of {args.repeat}, alternating)")
        same = {table: all(r["hashes"][table] == b[0]["hashes"][table] for r in b + cur) for table in b[0]["hashes"]}
        print("same answers         " + ", ".join(f"{table} {'identical' if ok else 'DIFFER'}" for table, ok in same.items())
              + " (every run of both; events hold the analysis results, so a baseline with other analysis code differs there)")
    if not args.no_profile:
        with tempfile.TemporaryDirectory() as tmp:
            prof = str(Path(tmp) / "run.prof")
            rows = [("current", breakdown(prof) if run_child(current, prof) else {})]
            if base is not None:
                rows.append(("baseline", breakdown(prof) if run_child(base, prof) else {}))
        print("where the time goes (cProfile self time, s; profiling slows small calls most):")
        print(f"  {'part':16s}" + "".join(f"{name:>18s}" for name, _ in rows))
        for part in PARTS:
            print(f"  {part:16s}" + "".join(f"{r.get(part, 0.0):10.2f} ({100 * r.get(part, 0.0) / sum(r.values()):4.1f}%)"
                                              for _, r in rows))
        print(f"  {'total':16s}" + "".join(f"{sum(r.values()):18.2f}" for _, r in rows))

    from castrig.sim.micrograph import make_structure, render_section, render_surface
    import numpy as np

    rng = np.random.default_rng(0)
    structure = make_structure(rng, mean_diameter_um=3.0, cv=0.08, opening_ratio=0.55, through_fraction=0.8,
                               thickness_um=1.5, support_pore_um=5.0, field_um=1024 * 0.25)
    t0 = time.perf_counter()
    render_surface(structure, 0.25, rng)
    t_surface = time.perf_counter() - t0
    t0 = time.perf_counter()
    render_section(structure, 0.05, rng)
    t_section = time.perf_counter() - t0
    print(f"render 1024² pair    {t_surface:8.3f} s   (reflected + transmitted, {len(structure.diameters_um)} pores)")
    print(f"render section       {t_section:8.3f} s   (0.05 µm/px)")


if __name__ == "__main__":
    main()
