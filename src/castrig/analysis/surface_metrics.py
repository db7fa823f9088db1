"""A surface's metrics as measured (:class:`SurfaceMetrics`, part of
:mod:`castrig.analysis.surface`): the opening ratio, D and σd from the pores' areas, the share
of through-pores from the transmitted view (:func:`_through`), and whether that transmitted view
belongs to this field at all (:func:`transmitted_mismatch`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any

import numpy as np

from ._filters import box_max
from .regions import otsu_split
from .surface_segment import _Segmentation


@dataclass
class SurfaceMetrics:
    """Results of one surface analysis; ``to_dict`` gives the specification's metric names."""

    opening_ratio: float | None  # None: not measured (no pores found by the SEM path)
    mean_pore_diameter_um: float | None
    pore_diameter_std_um: float | None
    pore_count: int  # pores measured (not cut by the border)
    through_pore_fraction: float | None  # None without a transmitted image
    pore_pitch_um: float | None
    pixel_size_um: float
    border_pore_count: int = 0
    diameters_um: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    centres_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)), repr=False)  # (row, col)
    through: np.ndarray | None = field(default=None, repr=False)  # per measured pore
    labels: np.ndarray | None = field(default=None, repr=False)  # label image (0 = film)
    measured_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)
    #: quality flags (see :mod:`castrig.analysis.quality`): metric → flags that affect it
    flags: list = field(default_factory=list)
    #: 95 % intervals (lo, hi) per metric name: statistical + half a pixel of edge shift
    intervals: dict = field(default_factory=dict)
    #: how the pores were measured: "optical" (partial volume) or "sem" (edges on radial profiles)
    appearance: str = "optical"
    #: rows of an SEM data bar found at the bottom and left out (castrig.analysis.databar)
    data_bar_rows: int = 0
    #: (top, bottom, left, right) rows and columns of uniform padding left out (databar.find_margins)
    margins_px: tuple = (0, 0, 0, 0)
    #: the transmitted view is not one of this field (:func:`transmitted_mismatch`)
    transmitted_mismatch: bool = False
    #: the walls between the pores are too thin to read the film's level field anywhere but in a
    #: few corners, even 1 px from the pores: it was taken as one level (:func:`_film_for_level`)
    thin_walls: bool = False
    #: the pores' floor no deeper below the film than the film's own texture reaches: pores, or a
    #: pore-free film's texture split at a level through it (:func:`~.surface_segment._texture_only`)
    low_contrast: bool = False
    #: under ``appearance="auto"``, a bright ridge round the pores that an SEM's rims and a defocus
    #: halo both make, the cores' test not passed (:func:`~.edges_rims.rim_reading`): measured as SEM
    #: where the ridge is strong, else as optical — the other reading gives other diameters
    appearance_ambiguous: bool = False
    #: the view was a binary mask, measured as segmented (:func:`~.masks.read_mask`): what it was read as
    mask_note: str | None = None
    #: the centres' :func:`~.lattice.delaunay_graph` when the analysis made it, for the quality
    #: assessment (which takes it and clears it)
    lattice_graph: tuple | None = field(default=None, repr=False, compare=False)

    def quality(self) -> dict:
        """``{"flags": [...], "flagged": {metric: [flags]}, "intervals": {metric: [lo, hi]}}``."""
        from .quality import SURFACE_FLAG_METRICS

        flagged: dict[str, list[str]] = {}
        for f in self.flags:
            for k in SURFACE_FLAG_METRICS.get(f, ()):
                flagged.setdefault(k, []).append(f)
        out = {"flags": list(self.flags), "flagged": flagged,
               "intervals": {k: [float(v[0]), float(v[1])] for k, v in self.intervals.items() if v is not None},
               "appearance": self.appearance, "data_bar_rows": self.data_bar_rows}
        if any(self.margins_px):
            out["margins_px"] = list(self.margins_px)
        if self.mask_note:
            out["binary_mask"] = self.mask_note
        return out

    def to_dict(self) -> dict:
        """Metric-name keyed values (JSON-ready)."""
        return {
            "opening_ratio": self.opening_ratio,
            "mean_pore_diameter_um": self.mean_pore_diameter_um,
            "pore_diameter_std_um": self.pore_diameter_std_um,
            "pore_count": self.pore_count,
            "through_pore_fraction": self.through_pore_fraction,
            "pore_pitch_um": self.pore_pitch_um,
        }


def transmitted_mismatch(t: np.ndarray, ft: np.ndarray | None, pores: np.ndarray, near: np.ndarray | None = None) -> bool:
    """Is the transmitted view not one of the field the reflected view shows (another file, a
    view not registered with it, the reflected view given twice)? Yes when:

    - the light only an opening passes (twice the film's) falls inside the reflected view's
      pores (grown by 2 px for blur and registration) no more often than halfway between chance
      (their share of the area) and always;
    - over half of the pores' pixels are darker than half the film's level (no pore passes less
      light than the film over it);
    - or the view is one grey throughout.

    Not told: a view in which nothing passes twice the film's light and the pores are not dark —
    a membrane without through-pores looks so. (A fuzzing run of the CLI: a transposed view read
    0.12 through for 0.50, the reflected view given as its own transmitted one 0, unflagged.)
    ``near``: the pores grown by 2 px (``box_max(pores, 2)``) where the caller has them."""
    t = np.asarray(t, np.float32)
    if not float(np.ptp(t)) > 0:
        return True
    film = np.asarray(ft, np.float32) if ft is not None else np.float32(np.median(t[~pores]) if (~pores).any() else t.mean())
    bright = t > 2 * film
    n_bright = int(np.count_nonzero(bright))
    if n_bright >= max(50, 1e-3 * t.size):
        near = box_max(pores, 2) if near is None else near
        # inside: all of it for the field's own view; the area share of the grown pores for a
        # view unrelated to them (in a dense field most of the area): halfway between
        chance = float(np.count_nonzero(near)) / near.size
        if np.count_nonzero(bright & near) < 0.5 * (1.0 + chance) * n_bright:
            return True
    if pores.any():
        dark = (t < 0.5 * film) & pores
        if np.count_nonzero(dark) > 0.5 * np.count_nonzero(pores):
            return True
    return False


#: the share of a pore's core that, brighter than twice the film in the transmitted view, makes
#: it a through-pore whatever the core's mean (a small window at the pore's bottom)
_THROAT_SHARE = 0.05


def _through(t: np.ndarray, ft: np.ndarray | None, lab: np.ndarray, n: int, seg: _Segmentation, pores, cores) -> np.ndarray:
    """Per pore: is it open in the transmitted view (much brighter than the film around it)?

    Through-pores pass the lamp directly; film and blind pores only what the polymer lets
    through. The ratio to the local film level is bimodal; Otsu on its log splits the modes when
    they are clearly apart (>2x), else a fixed 2x ratio decides (all or none through).

    ``pores`` = (flat indices, labels, per-pore counts) of all pore pixels, ``cores`` the same
    for the core pixels.
    """
    pix, lp, cnt = pores
    ci, cl, ccount = cores
    tf = t.ravel()
    if ft is None:
        film = tf[lab.ravel() == 0]
        lvl = float(np.median(film)) if film.size else float(t.mean())
        ftf = None
    else:
        np.maximum(ft, 1e-6, out=ft)
        ftf = ft.ravel()
    # pores with a core use it, small ones their whole mask (less contrast but still clear)
    has_core = ccount >= 3

    def ratio(ix):
        return tf[ix] / ftf[ix] if ftf is not None else tf[ix] / max(lvl, 1e-6)

    qc = np.bincount(cl, ratio(ci), minlength=n + 1)[1:]
    small = ~np.concatenate([[True], has_core])
    sel = small[lp]
    qa = np.bincount(lp[sel], ratio(pix[sel]), minlength=n + 1)[1:]
    qm = np.where(has_core, qc / np.maximum(ccount, 1), qa / np.maximum(cnt, 1))
    lq = np.log(np.maximum(qm, 1e-3))
    thr = math.log(2.0)
    if len(lq) >= 4 and np.ptp(lq) > 1e-6:
        t_o, lo_mean, hi_mean = otsu_split(lq)
        if hi_mean - lo_mean > math.log(2.0):
            thr = t_o
    # ... or a window smaller than the pore: a through-hole at its bottom, a fifth of its width,
    # passes the lamp through a spot of a few pixels, and the core's mean stayed below the split
    # (an outside tester's renderer: through 0.22 for 0.57). Through where at least
    # _THROAT_SHARE of the core (and 3 px) is brighter than twice the film
    lit = np.bincount(cl, ratio(ci) > 2.0, minlength=n + 1)[1:]
    spot = has_core & (lit >= np.maximum(3, _THROAT_SHARE * ccount))
    return (lq > thr) | spot


def _metrics(opening: float, d_um: np.ndarray, measured: np.ndarray, through_fraction: float | None,
             pitch_px: float | None, pixel_size_um: float, on_border: np.ndarray, centres: np.ndarray,
             through: np.ndarray | None, **rest: Any) -> SurfaceMetrics:
    """The result of either edge method: D and σd (µm) from the measured pores' diameters ``d_um``."""
    return SurfaceMetrics(
        opening_ratio=opening,
        mean_pore_diameter_um=float(d_um.mean()) if d_um.size else None,
        pore_diameter_std_um=float(d_um.std(ddof=1)) if d_um.size > 1 else None,
        pore_count=int(measured.sum()),
        through_pore_fraction=through_fraction,
        pore_pitch_um=pitch_px * pixel_size_um if pitch_px is not None else None,
        pixel_size_um=pixel_size_um,
        border_pore_count=int(on_border.sum()),
        diameters_um=d_um,
        centres_px=centres,
        through=through,
        **rest,
    )
