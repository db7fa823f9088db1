"""What the report draws of an analysed micrograph: the outlines as classes, and the caption's values.

The analyse step makes it from the very analysis the verdict comes from and keeps it in the run
(:mod:`castrig.store.segmentation`); the report draws it, or makes it the same way from an image
it has to measure itself (a run from before, an image replaced). Numpy only: the report that
draws what was kept imports no scipy.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from castrig.pngio import palette_png_bytes

#: Overlay colours (RGB): measured pores, pores cut by the border, through-pores, section lines.
MEASURED_RGB = (0, 200, 83)
BORDER_RGB = (255, 145, 0)
THROUGH_RGB = (0, 184, 255)
TOP_RGB = (255, 64, 129)
INTERFACE_RGB = (0, 184, 255)
#: Overlay classes → RGB: 1 cut by the border, 2 measured, 3 through-pore, 4 upper envelope, 5 interface.
OVERLAY_PALETTE = (BORDER_RGB, MEASURED_RGB, THROUGH_RGB, TOP_RGB, INTERFACE_RGB)
#: Longest side of a micrograph as the page shows it (larger ones are subsampled evenly).
SHOWN_MAX_PX = 1600
#: The caption's values by view (numbers or null).
SURFACE_VALUES = ("pore_count", "border_pore_count", "mean_pore_diameter_um", "opening_ratio")
SECTION_VALUES = ("mean_thickness_um", "thickness_std_um", "penetration_depth_um", "penetration_fraction",
                  "pore_communication", "support_continuity")


def shown_step(shape: tuple[int, ...], max_px: int = SHOWN_MAX_PX) -> int:
    """The subsampling step that brings the longest side to at most ``max_px``."""
    return max(1, -(-max(int(shape[0]), int(shape[1])) // max_px))


def boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels of a label whose 4-neighbour has another label (the pore's inner outline)."""
    lab = np.asarray(labels)
    edge = np.zeros(lab.shape, bool)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[1:] |= lab[1:] != lab[:-1]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    return edge & (lab > 0)


def pore_kinds(labels: np.ndarray, measured_labels: np.ndarray, through_labels: np.ndarray | None = None) -> np.ndarray:
    """Per label: 0 background, 1 cut by the border (not measured), 2 measured, 3 through-pore."""
    n = int(np.asarray(labels).max()) if np.asarray(labels).size else 0
    kind = np.full(n + 1, 1, np.uint8)
    kind[0] = 0
    kind[np.asarray(measured_labels, int)] = 2
    if through_labels is not None and len(through_labels):
        kind[np.asarray(through_labels, int)] = 3
    return kind


def surface_classes(labels: np.ndarray, measured_labels: np.ndarray, through_labels: np.ndarray | None = None,
                    step: int = 1) -> np.ndarray:
    """The pores' outlines as overlay classes (1 border, 2 measured, 3 through), subsampled by ``step``.

    Outlines are two pixels wide at the shown size, so they stay visible when the browser scales
    the picture down.
    """
    lab = np.asarray(labels)[::step, ::step]
    edge = boundaries(lab)
    inner = np.zeros_like(edge)  # one more pixel inwards
    inner[1:-1, 1:-1] = (edge[:-2, 1:-1] | edge[2:, 1:-1] | edge[1:-1, :-2] | edge[1:-1, 2:])[:, :] & (lab[1:-1, 1:-1] > 0)
    edge |= inner
    return np.where(edge, pore_kinds(labels, measured_labels, through_labels)[lab], 0).astype(np.uint8)


def section_classes(shape: tuple[int, int], top_row: np.ndarray, interface_row: np.ndarray, flipped: bool = False,
                    step: int = 1) -> np.ndarray:
    """A section's upper envelope (4) and support interface (5) as overlay classes, subsampled by ``step``."""
    h, w = int(shape[0]), int(shape[1])
    hs, ws = -(-h // step), -(-w // step)
    out = np.zeros((hs, ws), np.uint8)
    for rows, value in ((top_row, 4), (interface_row, 5)):
        r = np.asarray(rows, float)
        if r.size != w:
            continue
        if flipped:
            r = h - 1 - r
        r = r[::step] / step
        cols = np.arange(r.size)
        ok = np.isfinite(r)
        for dy in (-1, 0, 1):
            y = np.clip(np.rint(r[ok]).astype(int) + dy, 0, hs - 1)
            out[y, cols[ok]] = value
    return out


def _number(x: Any) -> float | int | None:
    if x is None or isinstance(x, bool):
        return None
    v = float(x)
    return None if not math.isfinite(v) else (int(v) if isinstance(x, (int, np.integer)) else v)


def surface_view(m: Any, step: int) -> dict[str, Any]:
    """What the report draws of a surface analysed with ``keep_labels=True``: the outlines
    (border, measured, through-pores) subsampled by ``step``, as an indexed PNG, the diameters,
    the caption's values."""
    through = None
    if m.through is not None and len(m.measured_labels) == len(m.through):
        through = np.asarray(m.measured_labels)[np.asarray(m.through, bool)]
    png = None
    if m.labels is not None:
        png = palette_png_bytes(surface_classes(m.labels, m.measured_labels, through, step), OVERLAY_PALETTE)
    return {"kind": "reflected", "step": int(step), "overlay_png": png,
            "diameters_um": [float(d) for d in np.asarray(m.diameters_um, float)],
            "values": {k: _number(getattr(m, k, None)) for k in SURFACE_VALUES}}


def section_view(sec: Any, image: np.ndarray, step: int) -> dict[str, Any]:
    """What the report draws of a section: its upper envelope and interface subsampled by
    ``step`` (the image's own orientation: the analysis turns one with the support on top
    upside down), and the caption's values."""
    from castrig.analysis.illumination import as_float, measurable
    from castrig.analysis.section_levels import read_orientation

    flipped = False
    try:
        flipped = bool(read_orientation(as_float(measurable(image)))[1])
    except Exception:  # noqa: BLE001 - only the drawing depends on it
        pass
    png = None
    if len(sec.top_row):
        png = palette_png_bytes(section_classes(image.shape[:2], sec.top_row, sec.interface_row, flipped, step),
                                OVERLAY_PALETTE)
    return {"kind": "section", "step": int(step), "overlay_png": png, "diameters_um": [],
            "values": {k: _number(getattr(sec, k, None)) for k in SECTION_VALUES}}
