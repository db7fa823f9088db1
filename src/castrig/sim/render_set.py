"""A folder of simulated micrographs with their ground truth, for anyone testing an analysis.

Each membrane comes from process conditions through the twin's film model (the same path a
simulated run takes), so the set spans what the rig would make; ``truth.json`` holds the
metrics computed from the geometry.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from castrig.sim.micrograph import ground_truth, make_structure, render_section, render_surface
from castrig.sim.world import FilmConditions, FilmModel, film_targets
from castrig.store.atomic import atomic_write_json


def render_set(
    out: Path,
    *,
    n: int,
    seed: int,
    rh_pct: float | None = None,
    concentration_mg_ml: float = 5.0,
    pixel_size_um: float = 0.25,
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
            raise ValueError(f"RH {rh:g} %RH is below the breath-figure threshold: no pores to render")
        structure = make_structure(
            rng,
            mean_diameter_um=targets.mean_diameter_um,
            cv=targets.cv,
            opening_ratio=targets.opening_ratio,
            through_fraction=targets.through_fraction,
            thickness_um=targets.thickness_um,
            thickness_cv=targets.thickness_cv,
            support_pore_um=targets.support_pore_um,
            field_um=width_px * pixel_size_um,
            defect_rate=targets.defect_rate,
        )
        reflected, transmitted = render_surface(structure, pixel_size_um, rng, bit_depth=bit_depth)
        section = render_section(structure, pixel_size_um, rng, bit_depth=bit_depth)
        gt = ground_truth(structure, section_pixel_size_um=pixel_size_um)
        name = f"m{k:03d}"
        meta = {"truth": gt, "conditions": asdict(cond), "seed": seed}
        for view, img in (("reflected", reflected), ("transmitted", transmitted), ("section", section)):
            write_micrograph(out / f"{name}_{view}.tif", img, pixel_size_um, {**meta, "view": view})
        truth[name] = {**gt, "chamber_rh_pct": rh, "concentration_mg_ml": concentration_mg_ml}
    atomic_write_json(out / "truth.json", truth)
    return truth
