"""A film's statistics → one field of micrographs (top views and section) with ground truth.

Shared by the twin's camera and ``castrig sim render``, so both show the same films.
"""

from __future__ import annotations

import threading
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
    # the ground truth (geometry alone, no draws) on a thread of its own while the views are
    # rendered: ~25 ms a field of the twin's overnight, its support's clusters labelled on a
    # fine grid, beside the images' ~60 ms (numpy and scipy release the GIL in their loops)
    truth: list[Any] = []
    worker = threading.Thread(target=lambda: truth.append(_or_error(ground_truth, structure, section_pixel_size_um)),
                              name="castrig-truth", daemon=True)
    worker.start()
    try:
        reflected, transmitted = render_surface(structure, pixel_size_um, rng, bit_depth=bit_depth)
        section = render_section(structure, section_pixel_size_um, rng, bit_depth=bit_depth)
    finally:
        worker.join()
    if isinstance(truth[0], BaseException):
        raise truth[0]
    return {
        "reflected": reflected,
        "transmitted": transmitted,
        "section": section,
        "truth": truth[0],
    }


def _or_error(truth_of: Any, structure: Any, section_pixel_size_um: float) -> Any:
    """``truth_of(structure, …)``, or the exception it raised (handed to the rendering thread)."""
    try:
        return truth_of(structure, section_pixel_size_um=section_pixel_size_um)
    except BaseException as exc:  # noqa: BLE001 - raised by render_field in the caller's thread
        return exc
