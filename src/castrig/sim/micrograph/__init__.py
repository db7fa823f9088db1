"""Synthetic micrographs of honeycomb films with known ground truth.

The digital twin maps process conditions to a :class:`FilmStructure` (pure geometry, in µm) and
renders it here; :func:`ground_truth` computes the specification metrics from that geometry, never
from pixels, so the analysis can be measured against it.

Only numpy, scipy and scikit-image are used: the twin must stay independent of devices and links.

The parts: the geometry (:mod:`.structure`), the top views in each appearance family
(:mod:`.surface`), the cross-section (:mod:`.section`), what the renderers share — coverage,
blur, illumination, noise (:mod:`.kernels`) — and the ground truth (:mod:`.truth`).
"""

from .section import render_section, section_shear_px
from .structure import FilmStructure, cavity_pairs, make_structure, section_cavities, support_spanning
from .surface import (
    render_surface, render_surface_bright, render_surface_bse, render_surface_halo, render_surface_sem,
)
from .truth import claim1_truth, communication_range, disc_rect_area, ground_truth

__all__ = [
    "FilmStructure",
    "make_structure",
    "render_surface",
    "render_surface_sem",
    "render_surface_bse",
    "render_surface_bright",
    "render_surface_halo",
    "render_section",
    "section_shear_px",
    "ground_truth",
    "disc_rect_area",
    "claim1_truth",
    "section_cavities",
    "cavity_pairs",
    "communication_range",
    "support_spanning",
]
