"""Sets of pixels and the dark regions of a view: which regions look like single discs, their
typical radius, the exact Otsu split of a sample, and a smooth level through selected pixels.

Shared by the top-view paths (:mod:`castrig.analysis.surface`, the threshold pores) and the SEM
lips (:mod:`castrig.analysis.edges`): both size their windows by the same typical radius.
"""

from __future__ import annotations

from dataclasses import dataclass
import math

import numpy as np
from scipy import ndimage as ndi

from .illumination import fit_level, poly_field


@dataclass
class Pixels:
    """Coordinates of a set of pixels in raster order: flat index, row, column (intp)."""

    flat: np.ndarray
    row: np.ndarray
    col: np.ndarray

    @classmethod
    def of(cls, sel: np.ndarray) -> Pixels:
        h, w = sel.shape
        flat = np.flatnonzero(sel)
        row = np.repeat(np.arange(h, dtype=np.intp), np.count_nonzero(sel, axis=1))
        return cls(flat, row, flat - row * w)


def disc_components(lab: np.ndarray, areas: np.ndarray, px: Pixels | None = None,
                     lp: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(areas of the components 1..n, which of them look like a single disc): filling over 68 %
    of their bounding box, its sides within 1.2 of each other, 5 px at least."""
    n = areas.size - 1
    if px is None or lp is None:
        objs = ndi.find_objects(lab)
        bh = np.array([o[0].stop - o[0].start if o else 0 for o in objs], float)
        bw = np.array([o[1].stop - o[1].start if o else 0 for o in objs], float)
    else:
        # bounding boxes from the pore pixels (cheaper than find_objects over the whole image)
        big = np.iinfo(np.intp).max
        lo_r, hi_r = np.full(n + 1, big), np.full(n + 1, -1)
        lo_c, hi_c = np.full(n + 1, big), np.full(n + 1, -1)
        np.minimum.at(lo_r, lp, px.row)
        np.maximum.at(hi_r, lp, px.row)
        np.minimum.at(lo_c, lp, px.col)
        np.maximum.at(hi_c, lp, px.col)
        bh = np.maximum(hi_r - lo_r + 1, 0)[1:].astype(float)
        bw = np.maximum(hi_c - lo_c + 1, 0)[1:].astype(float)
    a = areas[1:].astype(float)
    fill = a / np.maximum(bh * bw, 1)
    aspect = np.maximum(bh, bw) / np.maximum(np.minimum(bh, bw), 1)
    return a, (fill > 0.68) & (aspect < 1.2) & (a >= 5)


def typical_radius(lab: np.ndarray, areas: np.ndarray, px: Pixels | None = None, lp: np.ndarray | None = None,
                   comps: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Equivalent radius of the typical component that looks like a single disc (area-weighted
    median). ``comps``: :func:`disc_components` of ``lab`` where the caller has them already."""
    a, disc = comps if comps is not None else disc_components(lab, areas, px, lp)
    sel = a[disc] if disc.sum() >= 3 else a[a >= 3]
    if sel.size == 0:
        return 2.0
    # the area-weighted median: the size of the component holding the median pore pixel. Specks
    # of noise or texture (many, tiny) barely weigh, whatever the pixel size — a plain median
    # of areas let them decide once an upsampled image made them ≥ 5 px (issue 16)
    sel = np.sort(sel)
    cw = np.cumsum(sel)
    return float(math.sqrt(sel[int(np.searchsorted(cw, 0.5 * cw[-1]))] / math.pi))


def otsu_split(v: np.ndarray) -> tuple[float, float, float]:
    """Exact Otsu split of a 1-D sample (no histogram binning): the threshold halfway across
    the chosen gap, and the two class means."""
    s = np.sort(v.astype(np.float64))
    n = s.size
    c = np.cumsum(s)
    k = np.arange(1, n)  # size of the lower class
    m0 = c[:-1] / k
    m1 = (c[-1] - c[:-1]) / (n - k)
    between = k * (n - k) * (m0 - m1) ** 2
    i = int(np.argmax(between))
    return float((s[i] + s[i + 1]) / 2), float(m0[i]), float(m1[i])


def otsu_split_large(v: np.ndarray, bins: int = 4096, halo: int = 3) -> tuple[float, float, float]:
    """:func:`otsu_split` of a large sample without sorting all of it: the between-class variance
    on a fine histogram's bin edges picks the region of the split, and only the values of the
    ``halo`` bins on either side are sorted, the split searched exactly among them (the lower
    class's sums from the bins below plus the sorted values' running sum). Falls back to the
    full sort where the best split lies at the window's edge or the sample is small. The same
    split as :func:`otsu_split` up to the summation order of the class sums (a tie between two
    adjacent splits, equal to the last bits, may go the other way)."""
    x = np.asarray(v, np.float64).ravel()
    n = x.size
    if n < 65536:
        return otsu_split(x)
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        return otsu_split(x)
    idx = ((x - lo) * ((bins - 1e-9) / (hi - lo))).astype(np.intp)
    np.minimum(idx, bins - 1, out=idx)
    cnt = np.bincount(idx, minlength=bins)
    sm = np.bincount(idx, x, minlength=bins)
    kc, cc = np.cumsum(cnt)[:-1], np.cumsum(sm)[:-1]  # lower class below each inner bin edge
    ok = (kc > 0) & (kc < n)
    if not ok.any():
        return otsu_split(x)
    kk = np.maximum(kc, 1).astype(np.float64)
    b_edge = np.where(ok, kk * (n - kk) * (cc / kk - (cc[-1] + sm[-1] - cc) / np.maximum(n - kk, 1)) ** 2, -np.inf)
    j = int(np.argmax(b_edge))  # the edge after bin j
    b0, b1 = max(j - halo + 1, 0), min(j + halo, bins - 1)  # the window's bins
    base_k = int(cnt[:b0].sum())
    base_c = float(sm[:b0].sum())
    w = np.sort(x[(idx >= b0) & (idx <= b1)])
    if w.size < 2:
        return otsu_split(x)
    total = float(sm.sum())
    k = base_k + np.arange(1, w.size)  # lower class sizes whose last value lies in the window
    c = base_c + np.cumsum(w)[:-1]
    valid = (k > 0) & (k < n)
    m0 = c / np.maximum(k, 1)
    m1 = (total - c) / np.maximum(n - k, 1)
    between = np.where(valid, k * (n - k) * (m0 - m1) ** 2, -np.inf)
    i = int(np.argmax(between))
    if (i == 0 and b0 > 0) or (i == w.size - 2 and b1 < bins - 1):
        return otsu_split(x)  # the best split at the window's edge: it may lie beyond
    return float((w[i] + w[i + 1]) / 2), float(m0[i]), float(m1[i])


def fit_field(img: np.ndarray, sel: np.ndarray, deg: int, max_samples: int = 20000, out: np.ndarray | None = None) -> np.ndarray | None:
    """Polynomial level through the selected pixels of ``img`` (subsampled for speed)."""
    total = int(np.count_nonzero(sel))
    if total < 30:
        return None
    step = max(1, int(math.sqrt(total / max_samples)))
    sub = np.ascontiguousarray(sel[::step, ::step])
    pts = Pixels.of(sub)
    if pts.flat.size < 30:
        return None
    # at most max_samples: every k-th of the grid samples (raster order)
    k = -(-pts.flat.size // max_samples)
    flat, row, col = pts.flat[::k], pts.row[::k], pts.col[::k]
    vals = np.ascontiguousarray(img[::step, ::step]).ravel()[flat]
    coef = fit_level(vals, row * step, col * step, img.shape, degree=deg)
    return poly_field(coef, img.shape, deg, out=out)
