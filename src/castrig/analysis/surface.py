"""Top-view (surface) analysis: opening ratio, pore diameters, through-pores, pitch.

Pores darker than the film are measured as they are; pores brighter than it (a mirror-like
support seen through them) on the image turned over (:func:`pores_brighter`, :func:`_turned_over`).

Why partial volume: a blurred edge spreads each pore's darkness over neighbouring pixels, so any
single threshold over- or under-counts depending on where it falls. Blur preserves the integral
of the darkness, so the area of pore i is Σ (F − I) / (F − P_i) over the pixels that belong to it
(its mask plus a ring wide enough for the blur tails), where F is the local film level and P_i the
pore's own floor. The threshold mask only decides which pixels belong to which pore.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
import math
import threading
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ._filters import box_max, box_mean3, box_min, gaussian
from ._quantiles import percentile as _percentile
from .illumination import block_extremes, measurable, measurable_clipped, fit_level, noise_sigma, poly_field
from .lattice import _pitch
from .regions import Pixels, fit_field, otsu_split, typical_radius
from .workers import pool

__all__ = ["SurfaceMetrics", "analyse_surface", "pores_brighter", "segment_pores"]


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
    #: under ``appearance="auto"``, a bright ridge round the pores that an SEM's rims and a defocus
    #: halo both make, the cores' test not passed (:func:`~.edges_rims.rim_reading`): measured as SEM
    #: where the ridge is strong, else as optical — the other reading gives other diameters
    appearance_ambiguous: bool = False

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


@dataclass
class _Segmentation:
    labels: np.ndarray  # pores > 0 (mask only), touching pores split
    n: int
    film: np.ndarray  # film level field F (raw units)
    ring: int  # ring radius (px) for partial volume
    far: np.ndarray  # film pixels at least ``ring`` px from any pore
    core: np.ndarray  # pore pixels at least ``ring`` px inside their pore
    dark_level: float  # median normalised pore floor P/F
    pores: Pixels | None = None  # the pore (mask) pixels, raster order
    side: Future | None = None  # result of ``side_job(far)``, run on a worker thread
    core_r: int = 1  # depth (px) of ``core`` inside the masks
    reach: int | None = 0  # how far the edges reach into the film (None: farther than the film lets see)
    #: how far from every pore the film pixels the level fields were fitted through lie (px):
    #: ``ring`` unless the walls are too thin to hold enough of them that far (:func:`_film_for_level`)
    level_ring: int = 0


_MAX_PAIRS: int | None = None  # (pixel, marker) pairs beyond which _split uses the feature transform


_TLS = threading.local()
_CACHE_MAX_PIXELS = 1 << 22


def _work_cache() -> dict:
    """Work buffers of the calling thread, reused from one analysis to the next (fresh large
    arrays cost a page fault per 4 KiB on every call). Only the calling thread fills them, and
    nothing built on them is handed back to the caller."""
    c = getattr(_TLS, "cache", None)
    if c is None:
        c = _TLS.cache = {}
    return c


def _buf(cache: dict | None, key: str, shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array: from ``cache`` under ``key`` (reused when shape and dtype match)."""
    if cache is None:
        return np.empty(shape, dtype)
    a = cache.get(key)
    if a is None or a.shape != tuple(shape) or a.dtype != np.dtype(dtype):
        a = cache[key] = np.empty(shape, dtype)
    return a


def row_bands(h: int, tiles: int, halo: int) -> list[tuple[int, int, int, int]]:
    """Split ``h`` rows into ``tiles`` bands for the worker threads.

    Returns ``(lo, hi, keep_lo, keep_hi)`` per non-empty band: the filter runs on rows
    ``lo:hi`` (the band widened by ``halo`` on each side, clipped to the image) and rows
    ``keep_lo:keep_hi`` of the result (absolute row numbers) are kept. The kept ranges tile
    ``0:h`` exactly, whatever ``h``, ``tiles`` and ``halo`` (a halo larger than a band, more
    tiles than rows: bands only overlap more, or are dropped when empty).
    """
    h, tiles, halo = int(h), max(1, int(tiles)), max(0, int(halo))
    out = []
    for i in range(tiles):
        c0, c1 = h * i // tiles, h * (i + 1) // tiles
        if c1 > c0:
            out.append((max(0, c0 - halo), min(h, c1 + halo), c0, c1))
    return out


def _parallel_rows(fn, a: np.ndarray, halo: int, tiles: int = 2, min_rows: int = 256) -> np.ndarray:
    """Apply a local filter (support within ``halo`` rows) in ``tiles`` row bands, the first on
    the calling thread and the others on the worker threads (numpy/scipy release the GIL)."""
    h = a.shape[0]
    bands = row_bands(h, tiles, halo)
    if h < min_rows or len(bands) < 2 or 2 * halo >= h // len(bands):
        return fn(a)  # too small to be worth splitting: one band would be mostly halo
    futs = [pool().submit(fn, a[lo:hi]) for lo, hi, _, _ in bands[1:]]
    lo, hi, k0, k1 = bands[0]
    first = fn(a[lo:hi])
    out = np.empty((h,) + first.shape[1:], first.dtype)
    out[k0:k1] = first[k0 - lo : k1 - lo]
    for (lo, hi, k0, k1), fut in zip(bands[1:], futs):
        out[k0:k1] = fut.result()[k0 - lo : k1 - lo]
    return out


def _square_max(a: np.ndarray, r: int) -> np.ndarray:
    return box_max(a, r)


def _square_min(a: np.ndarray, r: int) -> np.ndarray:
    return box_min(a, r)


def _f32(image: np.ndarray, cache: dict | None = None, key: str = "f32") -> np.ndarray:
    """2-D float32 view of an image; copies only when the dtype differs (never written to)."""
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D greyscale image, got shape {a.shape}")
    if cache is None or (a.dtype == np.float32 and a.flags.c_contiguous):
        return np.ascontiguousarray(a, dtype=np.float32)
    out = _buf(cache, key, a.shape, np.float32)
    np.copyto(out, a, casting="unsafe")
    return out


def segment_pores(
    image: np.ndarray,
    *,
    ring_px: int | None = None,
    degree: int = 2,
    min_contrast: float = 3.0,
    side_job=None,
) -> _Segmentation | None:
    """Pore labels (touching pores split) and the film level of a reflected-light image.

    Returns None when the image shows no pores (no dark structure above ``min_contrast`` times
    the noise). ``side_job(film, degree)``, if given, runs on a worker thread as soon as the film
    pixels the level is fitted through are known, with the degree to fit (the transmitted image's
    level fit); its future is ``seg.side``.
    """
    raw = measurable(image)
    return _segment(raw, _f32(raw), ring_px=ring_px, degree=degree, min_contrast=min_contrast, side_job=side_job)


def _segment(
    raw: np.ndarray,
    img: np.ndarray,
    *,
    ring_px: int | None = None,
    degree: int = 2,
    min_contrast: float = 3.0,
    side_job=None,
    cache: dict | None = None,
) -> _Segmentation | None:
    """:func:`segment_pores` of ``raw`` given its float32 copy ``img``; large intermediates in
    ``cache`` (see :func:`_work_cache`) when given."""
    h, w = img.shape
    if img.size < 16:
        return None
    if raw.dtype.kind == "f" and not np.isfinite(img).all():
        raise ValueError("the image has NaN or infinite pixels")
    if float(np.ptp(raw if raw.dtype.kind in "iuf" else img)) <= 0:
        return None  # a constant image has no structure to measure
    c0, c1 = h // 2, w // 2
    sig_job = pool().submit(noise_sigma, img[max(c0 - 128, 0) : c0 + 128, max(c1 - 128, 0) : c1 + 128])
    if cache is not None and h >= 2 and w >= 2:
        s = box_mean3(img, out=_buf(cache, "s", img.shape, np.float32), work=_buf(cache, "s_work", img.shape, np.float32))
    else:
        s = box_mean3(img)
    block = int(max(16, min(64, min(h, w) // 4)))
    rr, cc, mx, _ = block_extremes(s, block)
    f0 = poly_field(fit_level(mx, rr, cc, img.shape, degree=degree, upper=True), img.shape, degree,
                    out=_buf(cache, "f0", img.shape, np.float32) if cache is not None else None)
    sig = sig_job.result()
    np.maximum(f0, 1e-6, out=f0)
    n0 = np.divide(s, f0, out=s)
    # is there any dark structure at all? compare the darkest smoothed spot with the film, in
    # units of the pixel noise (a film-only image only has noise minima). (The smoothing — 3×3
    # mean, Gaussian σ 1 — leaves a tenth of the pixel noise: 3 pixel σ is ~30 of its own. At 6
    # a plain honeycomb of 20 px pores, film-to-core contrast 4.4 pixel σ, read no pore at all:
    # benchmarks/foreign_sem.py, noise 0.08)
    n0s = np.ascontiguousarray(n0[::2, ::2])
    gm = gaussian(n0s, 1.0)
    sig_n = max(sig / float(np.median(f0[::2, ::2])), 1e-6)
    gmin = float(gm.min())
    contrast = float(np.percentile(gm, 90)) - gmin
    if contrast < min_contrast * sig_n or contrast < 0.02:
        return None
    dark = min(float(np.percentile(n0s, 0.2)), gmin)
    mask = np.less(n0, dark + 0.5 * (1 - dark), out=_buf(cache, "mask", img.shape, bool) if cache is not None else None)
    # label on the worker thread (scipy releases the GIL) while the pore pixels are listed here
    if cache is not None:
        lab = _buf(cache, "lab", img.shape, np.int32)
        lab_job = pool().submit(ndi.label, mask, output=lab)
    else:
        lab_job = pool().submit(ndi.label, mask)
    px = Pixels.of(mask)
    if cache is not None:
        n = int(lab_job.result())
    else:
        lab, n = lab_job.result()
    if n == 0:
        return None
    lp = lab.ravel()[px.flat].astype(np.intp)
    areas = np.bincount(lp, minlength=n + 1)
    r_typ = typical_radius(lab, areas, px, lp)
    reach = _edge_reach(n0, mask, 1.0 - dark)
    if ring_px is not None:
        ring = int(ring_px)
    else:
        ring = max(int(max(3, min(6, round(0.33 * r_typ + 1.5)))), reach or 0)
    far = ~box_max(mask, ring)
    level_sel, level_ring = _film_for_level(mask, far, ring)
    side = pool().submit(side_job, level_sel, 2 if level_ring else 0) if side_job is not None else None
    # the floor of a pore is read where its own blurred edge no longer reaches: well inside it
    core_r = int(max(1, min(ring, round(0.45 * r_typ))))
    core = box_min(mask, core_r)
    # (film nowhere spread over the image even 1 px from the pores: its level is taken as one
    # number, not a field extrapolated from a few corners; flagged thin_walls)
    f = fit_field(img, level_sel, degree if level_ring else 0,
                  out=_buf(cache, "f", img.shape, np.float32) if cache is not None else None)
    if f is None:
        f = f0 * float(np.median(img[~mask]) / np.median(f0[~mask])) if (~mask).any() else f0
    f = np.maximum(f, 1e-6, out=f if f is not f0 else None)
    norm = np.divide(img, f, out=_buf(cache, "norm", img.shape, np.float32) if cache is not None else None)
    # the pore floor on the worker thread while the touching pores are split here
    p_job = pool().submit(lambda: float(np.median(norm[core])) if np.count_nonzero(core) > 10 else dark)
    lab, n = _split(lab, n, mask, norm, r_typ, px, lp, cache=cache)
    return _Segmentation(lab, n, f, ring, far, core, p_job.result(), px, side, core_r, reach, level_ring)


#: the film pixels a level field is fitted through: at least this many (or this share of a small
#: image) ...
_LEVEL_MIN_PX, _LEVEL_MIN_SHARE = 1000, 0.02
#: ... in at least this many of the 16 blocks of a 4 × 4 grid over the image
_LEVEL_MIN_BLOCKS = 12


def _film_for_level(mask: np.ndarray, far: np.ndarray, ring: int) -> tuple[np.ndarray, int]:
    """(the film pixels the film's level fields are fitted through, how far from every pore they
    are, px): ``far`` (``ring`` px away) where it holds enough pixels spread over the image, else
    the film a pixel nearer the pores at a time (its level read slightly low there, within the
    edges' blur; the result says so: ``thin_walls``); 0 with the film at 1 px when even that does not.

    Dense films with thin walls left a handful of film pixels ``ring`` px from every pore (2-224 of
    a 1024² view, opening 0.62-0.67, pores 15-30 px: an outside tester's own renderer), in a few
    corners: the degree-2 level field through them ran from 0 to 140 times the film's level, and D
    came out -34 % or +22 %, the opening ratio -0.22 or +0.31, the through-pore fraction 0.003 for
    0.61 — unflagged, the truth far outside the intervals."""
    h, w = mask.shape
    need = min(_LEVEL_MIN_PX, _LEVEL_MIN_SHARE * mask.size)

    def spread(sel: np.ndarray) -> bool:
        if np.count_nonzero(sel) < need:
            return False
        blocks = sum(bool(sel[i * h // 4:(i + 1) * h // 4, j * w // 4:(j + 1) * w // 4].any())
                     for i in range(4) for j in range(4))
        return blocks >= _LEVEL_MIN_BLOCKS

    sel = far
    for r in range(ring, 0, -1):
        if r != ring:
            sel = ~box_max(mask, r)
        if spread(sel):
            return sel, r
    return sel, 0


def pores_brighter(img: np.ndarray, crop: int = 256) -> bool:
    """Are the pores brighter than the film? Found from the image's topology, not its levels.

    The film is the matrix that holds the pores: one connected region, whatever its brightness;
    the openings are many separate discs. On a central ``crop``² window, lightly smoothed and
    split at Otsu's level, the phase whose largest connected part holds the smaller share of it
    is the pores' (film: ≳ 0.95, even where blur breaks the thinnest walls; pores: one pore's
    share, ≲ 0.1 where blur merges neighbours). A window holding fewer than 8 pores is widened
    (to the whole image at most)."""
    h, w = img.shape
    while crop < max(h, w):
        got = _phase_shares(img, crop)
        if got is None or got[2] >= 8:
            break
        crop *= 2
    else:
        got = _phase_shares(img, crop)
    return got is not None and got[1] < got[0]


def _phase_shares(img: np.ndarray, crop: int) -> tuple[float, float, int] | None:
    """(dark phase's, bright phase's largest-part share, parts of the more split one) on the central
    ``crop``² window split at Otsu's level; None when it is too small or flat."""
    h, w = img.shape
    r0, c0 = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    s = np.ascontiguousarray(img[r0: r0 + crop, c0: c0 + crop], dtype=np.float32)
    if min(s.shape) < 16:
        return None
    g = gaussian(s, 1.0)
    sub = g[::4, ::4].ravel() if g.size >= 65536 else g.ravel()
    if float(sub.max() - sub.min()) <= 0:
        return None
    low = g < otsu_split(sub)[0]

    def share(m: np.ndarray) -> tuple[float, int]:
        lab, n = ndi.label(m)
        if n == 0:
            return 1.0, 0
        cnt = np.bincount(lab.ravel())[1:]
        return float(cnt.max() / cnt.sum()), int(n)

    job = pool().submit(share, low)
    high, n_high = share(~low)
    low_s, n_low = job.result()
    return low_s, high, max(n_low, n_high)


def _turned_over(img: np.ndarray, cache: dict | None, degree: int = 2) -> np.ndarray:
    """A bright-pore image turned into a dark-pore one under the same light: ``K·L − img``.

    L is the film's level field (the lamp's unevenness times the film's reflectance: a lower
    envelope through the block minima of the lightly smoothed image, the film being the darker
    phase) and K the image's 99.9th percentile ratio to it (levels below 0 set to 0), so that
    every level stays ≥ 0 and film and pores keep the lamp's shape (a plain ``max − img`` would
    put the dim corners' pores closer to the film than the bright centre's). At each pixel the transform is affine, so the
    partial-volume area Σ (F − I) / (F − P_i) is that of the image as it was."""
    h, w = img.shape
    s = box_mean3(img) if h >= 2 and w >= 2 else img
    block = int(max(16, min(64, min(h, w) // 4)))
    rr, cc, _, mn = block_extremes(s, block)
    out = _buf(cache, "turned", img.shape, np.float32) if cache is not None else np.empty(img.shape, np.float32)
    lvl = poly_field(fit_level(mn, rr, cc, img.shape, degree=degree, upper=False), img.shape, degree, out=out)
    np.maximum(lvl, 1e-6 * max(float(img.max()), 1e-12), out=lvl)
    # K: the 99.9th percentile of the ratio, the brightest 0.1 % of the pores' floor clipped to
    # 0 (was the largest ratio: one pixel's, and a 1 % larger K from one pixel of a pore's edge —
    # a dead one, replaced by its neighbours' median, :func:`~.illumination.measurable_clipped`
    # — moved a twin bright-pore view's opening from 0.362 to 0.358 and its count by 10)
    ratio = np.divide(img, lvl)
    k = np.float32(float(_percentile(ratio, 99.9)))
    lvl *= k
    out = np.subtract(lvl, img, out=lvl)
    return np.maximum(out, 0.0, out=out)


_REACH_MAX = 10  # px: the farthest an edge's blur and halo are followed into the film


def _edge_reach(n0: np.ndarray, mask: np.ndarray, contrast: float, crop: int = 256) -> int | None:
    """How far (px, chessboard) the pores' edges reach beyond their masks into the film: the
    blur's tails and a defocus halo (a fringe in the film, brighter or darker than it) both
    belong to the pore's partial volume, so the ring must cover them.

    On a central ``crop``² window, the mean level of the shells 1, 2, … px outside the masks;
    the reach is the first shell from which the level changes by less than 1 % of the pores'
    contrast to the next. None when the shells run out first (a dense lattice: no film beyond
    the edges' reach anywhere; the ring is then left to the pores' size, and the edges reach
    deep into the pores too) or the level still changes at ``_REACH_MAX`` px; 0 for an empty
    or tiny image."""
    h, w = mask.shape
    r0, c0 = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    m = mask[r0: r0 + crop, c0: c0 + crop]
    v = n0[r0: r0 + crop, c0: c0 + crop]
    if m.size < 256 or not m.any():
        return 0
    prev_mean = None
    inner = m
    for k in range(1, _REACH_MAX + 2):
        dil = box_max(m, k)
        shell = dil & ~inner
        cnt = int(np.count_nonzero(shell))
        if cnt < 0.01 * m.size:
            return None
        mean = float(v[shell].mean())
        if prev_mean is not None and abs(mean - prev_mean) < 0.01 * contrast:
            return k - 1
        prev_mean, inner = mean, dil
    return None


def _marker_patches(peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Flat indices of the marker pixels, the 8-connected patch (1..npk, raster order) of each,
    and npk. Markers are nearly always isolated pixels; only then is ``ndi.label`` skipped."""
    h, w = peaks.shape
    idx = np.flatnonzero(peaks)
    if idx.size == 0:
        return idx, idx, 0
    col = idx % w
    nb = np.concatenate([idx[col < w - 1] + 1, idx + w, idx[col > 0] + (w - 1), idx[col < w - 1] + (w + 1)])
    pos = np.searchsorted(idx, nb)
    pos = np.minimum(pos, idx.size - 1)
    if not np.any(idx[pos] == nb):
        return idx, np.arange(1, idx.size + 1), int(idx.size)
    pk_lab, npk = ndi.label(peaks, structure=np.ones((3, 3)))
    return idx, pk_lab.ravel()[idx], int(npk)


def _split(
    lab: np.ndarray, n: int, mask: np.ndarray, norm: np.ndarray, r_typ: float, pores: Pixels | None = None,
    pore_lab: np.ndarray | None = None, cache: dict | None = None,
) -> tuple[np.ndarray, int]:
    """Split touching pores.

    Markers are the minima of the image smoothed at the pore scale (one per pore, however thin
    the wall between two pores is); a component holding several markers is shared out to the
    nearest marker of that component (exact Euclidean distance to the marker pixels).
    """
    h, w = lab.shape
    sg = max(1.0, 0.4 * r_typ)
    md = max(2, int(round(0.6 * r_typ)))

    def minima(x: np.ndarray) -> np.ndarray:
        gs = gaussian(x, sg, truncate=3.0)
        return gs == box_min(gs, md)

    # two row bands on two threads; the halo covers the Gaussian and the minimum window
    peaks = _parallel_rows(minima, norm, int(3 * sg + 0.5) + md + 1)
    peaks &= mask
    pk_idx, pk_id, npk = _marker_patches(peaks)
    if npk == 0:
        return lab, n
    flat = lab.ravel()
    pk_comp = flat[pk_idx].astype(np.int64)
    # count marker patches per component
    comp_of_pk = np.zeros(npk + 1, np.int64)
    comp_of_pk[pk_id] = pk_comp
    comp_of_pk = comp_of_pk[1:]
    per = np.bincount(comp_of_pk, minlength=n + 1)
    per[0] = 0
    multi_comp = per > 1
    if not multi_comp.any():
        return lab, n
    # markers inside multi components, relabelled: the first of each component keeps its label
    keep_pk = multi_comp[comp_of_pk]
    ids = np.nonzero(keep_pk)[0]  # marker index (0-based) in multi comps
    new_label = np.zeros(npk + 1, np.int64)
    comps = comp_of_pk[ids]
    _, first = np.unique(comps, return_index=True)
    is_first = np.zeros(ids.size, bool)
    is_first[first] = True
    new_label[ids[is_first] + 1] = comps[is_first]
    nxt = n + 1 + int((~is_first).sum())
    new_label[ids[~is_first] + 1] = np.arange(n + 1, nxt)
    odt = np.int64 if nxt > 2**31 - 1 else np.int32
    if cache is not None and lab.dtype == odt:
        out = lab  # the caller's own work buffer: relabel in place
    else:
        out = lab.astype(odt)
    # marker pixels of the multi components, grouped by component
    sel = multi_comp[pk_comp]
    m_idx, m_comp, m_lab = pk_idx[sel], pk_comp[sel], new_label[pk_id[sel]]
    order = np.argsort(m_comp, kind="stable")
    m_idx, m_comp, m_lab = m_idx[order], m_comp[order], m_lab[order]
    k_c = np.bincount(m_comp, minlength=n + 1)
    start_c = np.concatenate([[0], np.cumsum(k_c)[:-1]])
    if pores is None:
        pores = Pixels.of(mask)
        pore_lab = flat[pores.flat].astype(np.intp)
    in_multi = multi_comp[pore_lab]
    px, p_comp = pores.flat[in_multi], pore_lab[in_multi]
    kp = k_c[p_comp]
    if int(kp.sum()) > (_MAX_PAIRS if _MAX_PAIRS is not None else 8 * lab.size + 1_000_000):
        # huge merged networks: nearest marker through a Euclidean feature transform
        _assign_edt(out, lab, multi_comp, peaks, pk_idx, pk_id, new_label, r_typ)
        return out, nxt - 1
    # nearest marker pixel of the pixel's own component, one marker rank at a time over the
    # pixels of components that have that many markers (pixels sorted by marker count)
    kmax = int(kp.max())
    order = np.argsort((kmax - kp).astype(np.int16 if kmax < 2**15 else np.int64), kind="stable")
    px, kp = px[order], kp[order]
    base = start_c[p_comp[order]]
    it = np.int32 if max(h, w) < 30000 else np.int64
    py_ = pores.row[in_multi][order].astype(it)
    px_ = pores.col[in_multi][order].astype(it)
    my_, mx_ = (v.astype(it) for v in np.divmod(m_idx, w))
    best = np.full(px.size, np.iinfo(it).max, it)
    arg = base.copy()
    n_with = px.size - np.cumsum(np.bincount(kp))  # pixels with more than r markers
    for r in range(kmax):
        L = int(n_with[r])
        if L <= 0:
            break
        j = base[:L] + r
        dy = py_[:L] - my_[j]
        dx = px_[:L] - mx_[j]
        d2 = dy * dy
        d2 += dx * dx
        upd = d2 < best[:L]
        np.copyto(best[:L], d2, where=upd)
        np.copyto(arg[:L], j, where=upd)
    out.ravel()[px] = m_lab[arg]
    return out, nxt - 1


def _assign_edt(out, lab, multi_comp, peaks, pk_idx, pk_id, new_label, r_typ) -> None:
    """Nearest marker (any multi component) by exact Euclidean feature transform over the box
    holding the multi components."""
    multi = multi_comp[lab]
    pk_lab = np.zeros(lab.size, np.int64)
    pk_lab[pk_idx] = pk_id
    pk_lab = pk_lab.reshape(lab.shape)
    rows = np.nonzero(multi.any(axis=1))[0]
    cols = np.nonzero(multi.any(axis=0))[0]
    r0, r1 = rows[0], rows[-1] + 1
    c0, c1 = cols[0], cols[-1] + 1
    mk = (pk_lab[r0:r1, c0:c1] > 0) & multi[r0:r1, c0:c1]
    halo = int(3 * r_typ) + 8

    def feat(x):
        return ndi.distance_transform_edt(~x, return_distances=False, return_indices=True)

    bands = row_bands(r1 - r0, 2, halo)
    if r1 - r0 >= 256 and len(bands) == 2 and 2 * halo < (r1 - r0) // 2:
        parts = list(pool().map(feat, [mk[lo:hi] for lo, hi, _, _ in bands]))
        iy = np.concatenate([p[0][k0 - lo : k1 - lo] + lo for (lo, hi, k0, k1), p in zip(bands, parts)])
        ix = np.concatenate([p[1][k0 - lo : k1 - lo] for (lo, hi, k0, k1), p in zip(bands, parts)])
    else:
        iy, ix = feat(mk)
    near = new_label[pk_lab[r0:r1, c0:c1][iy, ix]]
    mb = multi[r0:r1, c0:c1]
    box = out[r0:r1, c0:c1]
    box[mb] = near[mb]


def analyse_surface(
    reflected: np.ndarray,
    pixel_size_um: float,
    transmitted: np.ndarray | None = None,
    *,
    ring_px: int | None = None,
    degree: int = 2,
    keep_labels: bool = False,
    appearance: str = "optical",
) -> SurfaceMetrics:
    """Measure a reflected-light top view (pores dark), optionally with a registered
    transmitted-light view (through-pores bright); see :func:`_analyse_surface`.

    An SEM data bar at the bottom (:mod:`castrig.analysis.databar`) is left out of both views;
    ``data_bar_rows`` says how many rows.

    ``appearance``: "optical" (pores a flat floor, darker or brighter than the film: which is
    found from the image, :func:`pores_brighter`; partial-volume areas, the ring reaching as far
    as the edges' blur and a defocus halo do), "sem" (secondary electrons: bright inner rims and
    dark cores, edges from radial profiles, see :mod:`castrig.analysis.edges`) or "auto" (sem
    when bright rims are detected: a bright defocus halo can pass for one, so "auto" is no
    choice for defocused optical views).
    """
    if appearance not in ("optical", "sem", "auto"):
        raise ValueError(f"appearance must be optical, sem or auto, got {appearance!r}")
    from .databar import crop, find_data_bar, strip_margins

    bar_top = find_data_bar(reflected) if np.ndim(reflected) == 2 else None
    if bar_top is not None:  # an SEM's data bar is not part of the image (DESIGN §4)
        bar_rows = int(np.shape(reflected)[0]) - bar_top
        reflected = np.asarray(reflected)[:bar_top]
        if transmitted is not None and np.ndim(transmitted) == 2 and np.shape(transmitted)[0] == bar_top + bar_rows:
            transmitted = np.asarray(transmitted)[:bar_top]
    shape = np.shape(reflected)
    reflected, margins = strip_margins(reflected)  # padding round the image is not part of it either
    if transmitted is not None and np.shape(transmitted) == shape:
        transmitted = crop(transmitted, margins)
    # hot and dead pixels replaced once, here (ValueError for NaN/Inf; signed and float images
    # rescaled), and counted for the outliers_clipped flag
    reflected, clipped = measurable_clipped(reflected)
    if transmitted is not None:
        transmitted, t_clipped = measurable_clipped(transmitted)
        clipped += t_clipped
    try:
        m = _analyse_surface(reflected, pixel_size_um, transmitted, ring_px=ring_px, degree=degree,
                             keep_labels=keep_labels, appearance=appearance, measured=True)
    except BaseException:
        # A background job of the failed call may still write into this thread's work
        # buffers: forget them, so the next call starts from fresh arrays.
        _TLS.cache = {}
        raise
    _assess(m, reflected, clipped)
    if m.opening_ratio is None:
        m.intervals.pop("opening_ratio", None)  # not measured: no interval either
    if bar_top is not None:
        m.data_bar_rows = bar_rows
    if any(margins):  # positions in the image as given
        t, b, l, r = margins
        m.margins_px = margins
        m.centres_px = np.asarray(m.centres_px, float) + [t, l]
        if m.labels is not None:
            m.labels = np.pad(m.labels, ((t, b), (l, r)))
    return m


def _assess(m: SurfaceMetrics, raw: np.ndarray, clipped: int = 0) -> None:
    """Set the quality flags and the 95 % intervals of a surface result (``raw``: the reflected
    view as measured, :func:`~.illumination.measurable_clipped`; ``clipped``: the outlier pixels
    it and the transmitted view had)."""
    from .quality import (MIN_PORES, MIN_PX_PER_PORE, edge_blur_px, lattice_disorder, saturated,
                          surface_intervals)

    flags = []
    px = m.pixel_size_um
    d_px = (m.mean_pore_diameter_um / px) if m.mean_pore_diameter_um else None
    if d_px is not None and d_px < MIN_PX_PER_PORE:
        flags.append("under_resolved")
    if m.pore_count < MIN_PORES:
        flags.append("too_few_pores")
    if m.pore_count >= 10:
        dis = lattice_disorder(m.centres_px)
        if dis is not None and dis > 0.25:
            flags.append("no_lattice_order")
    if d_px is not None:
        a = np.asarray(raw)
        h, w = a.shape
        crop = np.asarray(a[max(0, h // 2 - 128): h // 2 + 128, max(0, w // 2 - 128): w // 2 + 128], np.float32)
        lo, hi = np.percentile(crop, [1, 99])
        sig = edge_blur_px(crop, float(hi - lo))
        if sig is not None and sig > max(0.25 * d_px / 2, 3.0):
            flags.append("blurred")
    if saturated(raw):
        flags.append("saturated")
    if clipped:
        flags.append("outliers_clipped")
    if m.thin_walls:
        flags.append("thin_walls")
    if m.appearance_ambiguous:
        flags.append("appearance_ambiguous")
    if m.transmitted_mismatch:
        flags.append("transmitted_mismatch")
    m.flags = flags
    m.intervals = surface_intervals(m.diameters_um, m.opening_ratio, m.through, px)


def _analyse_surface(
    reflected: np.ndarray,
    pixel_size_um: float,
    transmitted: np.ndarray | None = None,
    *,
    ring_px: int | None = None,
    degree: int = 2,
    keep_labels: bool = False,
    appearance: str = "optical",
    measured: bool = False,
) -> SurfaceMetrics:
    """Measure a reflected-light top view (pores dark), optionally with a registered
    transmitted-light view (through-pores bright); ``measured``: both are
    :func:`~.illumination.measurable` already.

    Pores cut by the image border count in the opening ratio but not in the diameter statistics,
    the pore count or the through-pore fraction.
    """
    if pixel_size_um is None or not pixel_size_um > 0:
        raise ValueError("pixel_size_um must be > 0")
    raw = reflected if measured else measurable(reflected)  # ValueError for NaN/Inf; signed and float images rescaled
    # reuse this thread's work buffers for images up to 2048² (larger ones: fresh arrays, so a
    # huge image does not pin its buffers for the life of the thread)
    cache = _work_cache() if raw.size <= _CACHE_MAX_PIXELS else None
    img = _f32(raw, cache, "img")
    if transmitted is not None and np.shape(transmitted) != img.shape:
        raise ValueError(f"transmitted image shape {np.shape(transmitted)} != reflected {img.shape}")
    from .edges_rims import rim_reading

    # (auto: a ridge round the pores that is no rim by the rim tests is an SEM's rim over flat
    # dark cores or a defocus halo — measured as SEM where the ridge is strong, else as optical,
    # and flagged: an SEM view of rims over flat cores, no metadata, was read as optical, D 25 %
    # short, opening 0.29 for 0.50, nothing said)
    rims, ambiguous = rim_reading(img) if appearance == "auto" else (False, False)
    if appearance == "sem" or (appearance == "auto" and rims):
        t_meas = transmitted if measured or transmitted is None else measurable(transmitted)
        m = _analyse_rimmed(img, pixel_size_um, t_meas, keep_labels)
        m.appearance_ambiguous = ambiguous
        return m
    if ambiguous:
        m = _analyse_surface(reflected, pixel_size_um, transmitted, ring_px=ring_px, degree=degree,
                             keep_labels=keep_labels, appearance="optical", measured=measured)
        m.appearance_ambiguous = True
        return m
    if pores_brighter(img):
        # pores a bright floor on a darker film (a mirror-like support seen through them): the
        # same partial-volume measure on the image turned over, K·L − I. The area of pore i,
        # Σ (F − I) / (F − P_i), is unchanged by it (numerator and denominator both change sign)
        raw = img = _turned_over(img, cache)
    side_job = None
    if transmitted is not None:

        # work buffers taken here, on the calling thread, and filled on the worker
        traw = transmitted if measured else measurable(transmitted)
        t_buf = None if traw.dtype == np.float32 and traw.flags.c_contiguous else _buf(cache, "t32", img.shape, np.float32)
        ft_buf = _buf(cache, "ft", img.shape, np.float32)

        def side_job(film: np.ndarray, degree: int):
            if t_buf is None:
                t = _f32(traw)
            else:
                np.copyto(t_buf, traw, casting="unsafe")
                t = t_buf
            return t, fit_field(t, film, degree, out=ft_buf)

    seg = _segment(raw, img, ring_px=ring_px, degree=degree, side_job=side_job, cache=cache)
    if seg is None or seg.n == 0:
        return SurfaceMetrics(
            opening_ratio=0.0,
            mean_pore_diameter_um=None,
            pore_diameter_std_um=None,
            pore_count=0,
            through_pore_fraction=None,
            pore_pitch_um=None,
            pixel_size_um=pixel_size_um,
            through=None if transmitted is None else np.zeros(0, bool),
            labels=np.zeros(img.shape, np.int32) if keep_labels else None,
        )
    lab, n, f = seg.labels, seg.n, seg.film
    if keep_labels:
        lab = lab.astype(np.uint16) if n < 65535 else lab.astype(np.int32)
    else:
        lab16 = _buf(cache, "lab16", lab.shape, np.uint16 if n < 65535 else np.int32)
        np.copyto(lab16, lab, casting="unsafe")
        lab = lab16
    h, w = img.shape
    ulab = lab if lab.dtype == np.uint16 else lab.view(np.uint32)
    flat = ulab.ravel()
    idx = np.arange(1, n + 1)
    # ring pixels (film within ``ring`` of a pore): split between the nearest labels (square
    # ring; ties shared equally). The smallest label comes from labels - 1 wrapping 0 to the top.
    # the label max/min filters run on the worker threads while the per-pore sums are taken here
    # (jobs are only ever submitted from this thread: no worker waits on another)
    ring_px_idx = np.flatnonzero(~seg.far.ravel() & (flat == 0))
    if ring_px_idx.size:
        def ring_max():
            lmax = box_max(ulab, seg.ring).ravel()[ring_px_idx].astype(np.intp)
            dv = f.ravel()[ring_px_idx].astype(np.float64)
            dv -= img.ravel()[ring_px_idx]
            dv *= 0.5
            return lmax, dv

        lmax_job = pool().submit(ring_max)
        lmin_job = pool().submit(
            lambda: box_min(ulab - ulab.dtype.type(1), seg.ring).ravel()[ring_px_idx].astype(np.intp) + 1
        )
    # pore pixels: counts, film level, deficit and position sums per pore
    pores = seg.pores if seg.pores is not None else Pixels.of(lab > 0)
    pix = pores.flat
    lp = flat[pix].astype(np.intp)
    fp = f.ravel()[pix].astype(np.float64)
    cnt = np.bincount(lp, minlength=n + 1)[1:]
    fsum = np.bincount(lp, fp, minlength=n + 1)
    fp -= img.ravel()[pix]
    num = np.bincount(lp, fp, minlength=n + 1)
    cy = np.bincount(lp, pores.row, minlength=n + 1)[1:]
    cx = np.bincount(lp, pores.col, minlength=n + 1)[1:]
    centres = np.column_stack([cy, cx]) / np.maximum(cnt, 1)[:, None]
    # per-pore floor P_i from its core, else the typical normalised floor times F
    ci = np.flatnonzero(seg.core.ravel())
    cl = flat[ci].astype(np.intp)
    if seg.reach is None or seg.reach > seg.core_r:
        # the edges' blur and halo reach deeper than the core: the floor is read at each
        # pore's centre, the core pixels within max(1.5, R − reach) of its centroid (R from its
        # mask): those farthest from its edge, where a defocus fringe's light (taken from or
        # given to the pore just inside its edge) and the blur's tails weigh least
        rc = np.maximum(1.5, np.sqrt(cnt / math.pi) - (seg.reach if seg.reach is not None else np.inf))
        k = cl - 1
        rr, cc = np.divmod(ci, w)
        dr = rr - centres[k, 0]
        dc = cc - centres[k, 1]
        sel = dr * dr + dc * dc <= (rc * rc)[k]
        ci, cl = ci[sel], cl[sel]
    ccount = np.bincount(cl, minlength=n + 1)[1:]
    csum = np.bincount(cl, img.ravel()[ci], minlength=n + 1)[1:]
    through_job = None
    if transmitted is not None:
        t, ft = seg.side.result() if seg.side is not None else (_f32(transmitted), fit_field(_f32(transmitted), seg.far, 2))
        through_job = pool().submit(_through, t, ft, lab, n, seg, (pix, lp, cnt), (ci, cl, ccount))
    pitch = _pitch(centres)
    if ring_px_idx.size:
        lmax, dv = lmax_job.result()
        num += np.bincount(lmax, dv, minlength=n + 1)
        num += np.bincount(lmin_job.result(), dv, minlength=n + 1)
    num = num[1:]
    fmean = fsum[1:] / np.maximum(cnt, 1)
    p_i = np.where(ccount >= 3, csum / np.maximum(ccount, 1), seg.dark_level * fmean)
    area_px = np.maximum(num / np.maximum(fmean - p_i, 1e-6), 0.0)
    opening = float(np.clip(area_px.sum() / img.size, 0.0, 1.0))

    # border pores: mask touches the image edge
    edge = np.unique(np.concatenate([flat[:w], flat[-w:], flat[::w], flat[w - 1 :: w]]))
    on_border = np.zeros(n + 1, bool)
    on_border[edge] = True
    on_border = on_border[1:]
    measured = ~on_border & (cnt >= 2)
    d_um = 2 * np.sqrt(area_px[measured] / math.pi) * pixel_size_um

    through = None
    tfrac = None
    mismatch = False
    if through_job is not None:
        through_all = through_job.result()
        through = through_all[measured]
        tfrac = float(through.mean()) if through.size else None
        mismatch = transmitted_mismatch(t, ft, lab > 0)
    return _metrics(opening, d_um, measured, tfrac, pitch, pixel_size_um, on_border, centres, through,
                    labels=lab if keep_labels else None, measured_labels=idx[measured], transmitted_mismatch=mismatch,
                    thin_walls=seg.level_ring == 0)


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


def _sem_norm(img: np.ndarray, unit: float, film: str, levels: dict | None = None) -> tuple[np.ndarray, float]:
    """The SEM view over its film level above its black level, float32, and its noise σ
    (:func:`_sem_lips`); the mode film from ``levels["mode_raw"]`` (a future) where given."""
    from .edges_levels import black_field, film_mode_field, film_upper_field

    if film == "upper":
        fr = film_upper_field(img, unit=unit)
    elif levels is not None and "mode_raw" in levels:
        fr = levels["mode_raw"].result()
    else:
        fr = film_mode_field(img)
    f = np.maximum(fr, 1e-6).astype(np.float32)
    # the image over its film above the view's black level, not above 0
    # (:func:`~castrig.analysis.edges_levels.black_field`): a grey-level gain and offset and an
    # illumination ramp then leave it as it is. (The rimless path, each pore by its own depth,
    # divided by the film alone: its floors are grey, so the deepest level is no black, and its
    # lips' levels were held relative to the film's 1, a black of 0 (the twin's backscatter views:
    # D 1.3 -> 2.2 % over the black). Now its lips take their levels from each pore's own profile
    # (:func:`~castrig.analysis.edges.lip_radii`), and over the film alone a gain and offset moved
    # each pore's relative depth where the film varies: a nanoporous gold view, film 162-222,
    # lost the same 8 shallow dimples under every transform, count 3.3 -> 0.4 %; a polymer
    # section's D 1.7 -> 0.1 % under gain.)
    b = black_field(img, f, unit)
    norm = ((img - b) / np.maximum(f - b, 1e-6)).astype(np.float32)
    return norm, noise_sigma(norm)


def _sem_lips(img: np.ndarray, unit: float, film: str, local: bool, rims: bool | None, confirm=None, rimless: bool = True,
              levels: dict | None = None):
    """Film level, cores and lips of an SEM top view (:mod:`castrig.analysis.edges`).

    ``unit``: the pores' size unit of the view (:func:`~castrig.analysis.edges_cores.pore_unit`, the
    same for both passes); ``film``: "mode" (the commonest bright level: rims shine above it) or "upper" (the
    brightest level: nothing shines above the film of a view without rims); ``local``: each core
    by its own pore's depth, else one threshold for the image; ``rims``/``confirm``: as
    :func:`~castrig.analysis.edges.lip_radii`. Returns (cores, n, centres, core counts, lip
    radii, the pixels used (batches of (flat index, owner, ρ), as :func:`~castrig.analysis.edges.lip_radii` returns them), rims or not, (core pixels, their labels)), n = 0 without pores; None when the pores' fits
    voted for rims and ``confirm()`` did not, or (``rimless=False``) voted against rims.

    ``levels`` (optional dict, shared by the caller's passes): "mode_raw", a future of
    :func:`~castrig.analysis.edges_levels.film_mode_field` of ``img`` (started early on a worker), and
    per film kind the normalised view and its noise, so that a second pass on the same film
    does not compute them again."""
    from .edges import lip_radii
    from .edges_cores import pore_cores

    h, w = img.shape
    cached = levels.get(film) if levels is not None else None
    if cached is not None:
        norm, sig = cached
    else:
        norm, sig = _sem_norm(img, unit, film, levels)
        if levels is not None:
            levels[film] = (norm, sig)
    lab, n = pore_cores(norm, sig, local=local)
    if n == 0:
        return lab, 0, None, None, None, None, False, None
    # cores numbered by size, then by their summed level: an order the view rotated keeps (in
    # raster order a rotation reordered the cores, and the lip fit's choice among cores of equal
    # size for its blur stage with it: D moved 0.5 % on a real top view rotated by 90°)
    # (sums over the core pixels alone, in raster order as over the whole view: the same sums)
    cpx = Pixels.of(lab > 0)
    cl = lab.ravel()[cpx.flat]
    cnt0 = np.bincount(cl, minlength=n + 1)[1:]
    lev = np.bincount(cl, norm.ravel()[cpx.flat], minlength=n + 1)[1:]
    remap = np.zeros(n + 1, np.int32)
    remap[np.lexsort((lev, -cnt0)) + 1] = np.arange(1, n + 1, dtype=np.int32)
    lab = remap[lab]
    cl = remap[cl].astype(np.intp)
    cnt = np.bincount(cl, minlength=n + 1)[1:]
    cy = np.bincount(cl, cpx.row, minlength=n + 1)[1:] / np.maximum(cnt, 1)
    cx = np.bincount(cl, cpx.col, minlength=n + 1)[1:] / np.maximum(cnt, 1)
    centres = np.column_stack([cy, cx])
    r_core = np.sqrt(np.maximum(cnt, 1) / math.pi)
    r_typ = float(np.median(r_core))
    # a pore's pixels reach beyond its core by the rim, the blur and the film around the lip:
    # 3 px more than 0.6 r_typ for small pores, and for larger ones at least the fitted window's
    # film side (it ends ~0.9 r_typ beyond the core: lip start + ¾ r_core). Was 0.6 r_typ + 3
    # alone: the window's outer bins went empty on large pores, less so at a coarser pixel size,
    # and D moved with the pixel size (a real top view: +5 % at half the pixels)
    ring = int(max(3, round(0.6 * r_typ + 3), round(1.2 * r_typ)))
    info: dict = {}
    r_edge, px = lip_radii(norm, lab, n, centres, r_core, ring, info, rims=rims, confirm=confirm, rimless=rimless)
    if r_edge is None:
        return None
    return lab, n, centres, cnt, r_edge, px, bool(info["rimmed"][0]) if n else False, (cpx, cl)


def _analyse_rimmed(img: np.ndarray, pixel_size_um: float, transmitted: np.ndarray | None, keep_labels: bool,
                    rims: bool | None = None) -> SurfaceMetrics:
    """SEM top views (pores with a bright inner rim, SE edge effect, or without: backscatter-
    like, each pore its own level): one pore per dark core, each lip fitted on its pore's radial
    profile (:mod:`castrig.analysis.edges`, :func:`_sem_lips`); the opening ratio from the same
    lips.

    The pores' fits on the mode film vote for rims, and the whole view
    (:func:`~castrig.analysis.edges_rims.rim_decision`) must agree: where it shows a clear ridge a
    plain majority of the pores makes rims, where it shows a faint one only a vote clearing its
    threshold by a margin (:func:`~castrig.analysis.edges_rims.vote_clears`: a vote near its
    threshold flipped with the pixel size on a real section), where none, no vote. (The whole
    view alone is not enough: an illumination ramp of ±20 % raised a real section's ridge from
    0 to 0.16.) With rims the film is the mode (rims shine above it) and
    the cores one threshold. Without, each core is found by its own pore's depth (one threshold
    misses the lighter pores and joins dense neighbours through thin blurred walls) and the
    film is the mode, or the brightest level where the pores' vote clears its margin although
    the view shows no rim (a dense flat view: the mode is a pore level and the "rims" the
    film's own blurred walls) or where the mode leaves no pore below it or lies nearer the darkest
    level than the brightest (thin bright walls and no film plateau: the commonest level is a pore
    level, :func:`~castrig.analysis.edges_rims.mode_is_pore_level`). The faint-ridge margin slides
    from 0.6 to a plain majority as the ridge grows (:func:`~castrig.analysis.edges_rims.vote_needed`)."""
    from .edges_rims import VOTE_MARGIN, mode_is_pore_level, rim_decision, rim_overshoot, vote_clears, vote_needed
    from .edges_levels import film_mode_field
    from .edges_cores import pore_unit

    h, w = img.shape
    # the whole view's rim check (its ridge over the film) is needed only once the pores have
    # voted: on a worker thread meanwhile (cores, pore pixels and the blur stage come first)
    view = pool().submit(rim_overshoot, img) if rims is None else None
    vote: list = []

    def confirm(ridge_share: float, lift_share: float) -> bool:
        if view is None:
            vote.append(vote_clears(ridge_share, lift_share, VOTE_MARGIN))
            return bool(rims)
        ov = view.result()
        r = rim_decision(ov)
        vote.append(vote_clears(ridge_share, lift_share, vote_needed(ov)))
        return r is True or (r is None and vote[-1])

    # (a view voted rimless is measured again below: not measured here). The mode film on a
    # worker meanwhile (it needs no unit); both passes share it and, on the same film, the
    # normalised view
    levels: dict = {"mode_raw": pool().submit(film_mode_field, img)}
    unit = pore_unit(img)  # (both passes' film and black level are in these units)
    out = _sem_lips(img, unit, "mode", False, None, confirm=confirm, rimless=False, levels=levels)
    if out is None or not out[6]:
        film = "upper" if (vote and vote[0]) or (out is not None and out[1] == 0) or \
            mode_is_pore_level(img, levels["mode_raw"].result(), unit) else "mode"
        out = _sem_lips(img, unit, film, True, False, levels=levels)
    if view is not None:
        view.result()  # (done by now; its errors are the caller's, as before it ran on a thread)
    if out[1] == 0:
        # no pores found: the opening could not be measured (None, not 0)
        return SurfaceMetrics(None, None, None, 0, None, None, pixel_size_um,
                              through=None if transmitted is None else np.zeros(0, bool),
                              labels=np.zeros(img.shape, np.int32) if keep_labels else None, appearance="sem")
    lab, n, centres, cnt, r_edge, pixels, _, (cpx, cl) = out
    flat = lab.ravel()
    edge_ids = np.unique(np.concatenate([flat[:w], flat[-w:], flat[::w], flat[w - 1:: w]]))
    on_border = np.zeros(n + 1, bool)
    on_border[edge_ids] = True
    on_border = on_border[1:]
    ok = np.isfinite(r_edge) & (cnt >= 2)
    # a pore whose lip lies beyond the image border is cut too, even when its core is not
    cut = (centres[:, 0] + 0.5 - r_edge < 0) | (centres[:, 0] + 0.5 + r_edge > h) | \
          (centres[:, 1] + 0.5 - r_edge < 0) | (centres[:, 1] + 0.5 + r_edge > w)
    on_border |= ok & cut
    measured = ~on_border & ok
    # the opening: the pixels inside their pore's lip, each weighted by how much of it lies
    # inside (its centre's distance to the lip, ±½ px), so the area is the lip's to sub-pixel
    # precision; border pores are measured the same way, on the pixels they have in the image
    # (batch by batch of pores, :func:`~castrig.analysis.edges.lip_radii`: a view in one batch
    # sums as before; a larger one's sum adds its batches' sums)
    re_all = np.where(ok, r_edge, 0.0)
    area = 0.0
    plab = np.zeros(img.shape, np.int32)
    for pflat, own, rho in pixels:
        cov = np.clip(re_all[own - 1] - rho + 0.5, 0.0, 1.0)
        area += cov.sum()
        inside = cov >= 0.5
        plab.ravel()[pflat[inside]] = own[inside]  # (1-D: cheaper than [rows, cols])
        del cov, inside
    opening = float(np.clip(area / img.size, 0.0, 1.0))
    d_um = 2 * r_edge[measured] * pixel_size_um
    through = tfrac = None
    mismatch = False
    if transmitted is not None:
        t = _f32(transmitted)  # (measurable already: _analyse_surface)
        pores = plab > 0
        near = box_max(pores, 2)
        ft = fit_field(t, ~near, 2)
        ppx = Pixels.of(pores)
        lp = plab.ravel()[ppx.flat].astype(np.intp)
        pcnt = np.bincount(lp, minlength=n + 1)[1:]
        thr_all = _through(t, ft, plab, n, None, (ppx.flat, lp, pcnt), (cpx.flat, cl, cnt))
        through = thr_all[measured]
        tfrac = float(through.mean()) if through.size else None
        mismatch = transmitted_mismatch(t, ft, pores, near)
    pitch = _pitch(centres)
    return _metrics(opening, d_um, measured, tfrac, pitch, pixel_size_um, on_border, centres, through,
                    labels=plab if keep_labels else None,
                    measured_labels=np.arange(1, n + 1)[measured], appearance="sem", transmitted_mismatch=mismatch)


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
