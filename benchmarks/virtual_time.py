"""Virtual time on the twin: wall time and speed-up of recipes/overnight.yaml, and render time.

    python benchmarks/virtual_time.py

Goal (issue 6): the 8-hour overnight recipe in ≤ 10 s wall on 2 cores.
"""

from __future__ import annotations

import json
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np

from castrig.cli.main import main as castrig
from castrig.sim.micrograph import make_structure, render_section, render_surface

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        code = castrig(["run", str(ROOT / "recipes" / "overnight.yaml"), "--profile", str(ROOT / "hw_profiles" / "sim.yaml"),
                        "--data", tmp, "-q"])
        wall = time.perf_counter() - t0
        (run_dir,) = [p for p in Path(tmp).iterdir() if p.is_dir()]
        db = sqlite3.connect(run_dir / "run.sqlite")
        virtual = db.execute("select max(t_s) from samples").fetchone()[0]
        n_samples = db.execute("select count(*) from samples").fetchone()[0]
        n_events = db.execute("select count(*) from events").fetchone()[0]
        outcome = json.loads((run_dir / "run.json").read_text())["outcome"]
    print(f"overnight.yaml       exit {code}, outcome {outcome}")
    print(f"virtual time         {virtual / 3600:8.2f} h")
    print(f"wall time            {wall:8.2f} s   (goal ≤ 10 s)")
    print(f"speed-up             {virtual / wall:8.0f} ×")
    print(f"records              {n_samples} samples, {n_events} events")

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
