"""A folder of simulated micrographs with their ground truth, for anyone testing an analysis.

Each membrane comes from process conditions through the twin's film model (the same path a
simulated run takes), so the set spans what the rig would make; ``truth.json`` holds the
metrics computed from the geometry.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from castrig.sim.film_images import render_field
from castrig.sim.world import FilmConditions, FilmModel, film_targets
from castrig.atomic import atomic_write_json


def render_set(
    out: Path,
    *,
    n: int,
    seed: int,
    rh_pct: float | None = None,
    concentration_mg_ml: float = 5.0,
    pixel_size_um: float = 0.25,
    section_pixel_size_um: float = 0.05,
    width_px: int = 1024,
    bit_depth: int = 8,
) -> dict[str, Any]:
    from castrig.tiffio import write_micrograph

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = FilmModel()
    rng = np.random.default_rng(seed)
    truth: dict[str, Any] = {}
    for k in range(n):
        rh = float(rh_pct) if rh_pct is not None else float(rng.uniform(60.0, 90.0))
        cond = FilmConditions(
            cast_volume_ml=0.2,
            concentration_mg_ml=concentration_mg_ml,
            solvent="chloroform",
            evaporation_s=model.evaporation_ref_s,
            surface_rh_mean_pct=min(100.0, rh + model.surface_rh_offset_pct),
            surface_rh_std_pct=float(rng.uniform(0.1, 1.0)),
            chamber_rh_mean_pct=rh,
            support_wet=True,
            mean_flow_slpm=2.0,
            temperature_c=22.0,
        )
        targets = film_targets(cond, model)
        if not targets.ordered:
            from castrig.errors import BadInput

            lowest = model.threshold_rh_pct - model.surface_rh_offset_pct
            raise BadInput(f"--rh = {rh:g}: below the breath-figure threshold, no pores form (allowed: {lowest:g} to 100 %RH)",
                           field="--rh")
        field = render_field(targets, rng, pixel_size_um=pixel_size_um, section_pixel_size_um=section_pixel_size_um,
                             width_px=width_px, bit_depth=bit_depth)
        gt = field["truth"]
        name = f"m{k:03d}"
        meta = {"truth": gt, "conditions": asdict(cond), "seed": seed}
        for view in ("reflected", "transmitted", "section"):
            px = section_pixel_size_um if view == "section" else pixel_size_um
            write_micrograph(out / f"{name}_{view}.tif", field[view], px, {**meta, "view": view})
        truth[name] = {**gt, "chamber_rh_pct": rh, "concentration_mg_ml": concentration_mg_ml}
    atomic_write_json(out / "truth.json", truth)
    return truth
