"""A film's statistics → one field of micrographs (top views and section) with ground truth.

Shared by the twin's camera and ``castrig sim render``, so both show the same films.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from castrig.sim.micrograph import ground_truth, make_structure, render_section, render_surface
from castrig.sim.world import FilmTargets


def render_field(
    targets: FilmTargets,
    rng: np.random.Generator,
    *,
    pixel_size_um: float,
    section_pixel_size_um: float,
    width_px: int,
    bit_depth: int,
) -> dict[str, Any]:
    """``{"reflected", "transmitted", "section", "truth"}`` for one field of view.

    The section is rendered at its own (finer) pixel size: a film a few µm thick needs a higher
    magnification than the top view.
    """
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
        penetration_depth_um=targets.penetration_depth_um,
        penetration_fraction=targets.penetration_fraction,
        communication=targets.communication,
        support_link_prob=targets.support_link_prob,
    )
    reflected, transmitted = render_surface(structure, pixel_size_um, rng, bit_depth=bit_depth)
    section = render_section(structure, section_pixel_size_um, rng, bit_depth=bit_depth)
    return {
        "reflected": reflected,
        "transmitted": transmitted,
        "section": section,
        "truth": ground_truth(structure, section_pixel_size_um=section_pixel_size_um),
    }
