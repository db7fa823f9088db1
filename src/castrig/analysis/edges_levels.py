"""The film's grey level over an SEM or optical top view, and its black level (part of the
physical pore edges, :mod:`castrig.analysis.edges`).

The film is the flat top between the openings, so its level is the *mode* of the grey levels in
blocks centred on the view (:func:`film_mode_field`): the same view under another gain and
offset, or rotated by 90°, gives the same level. Where the mode is a pore level (thin bright
walls without a film plateau) the film is the upper envelope instead (:func:`film_upper_field`:
nothing is brighter than the film); :func:`black_field` is the level under the deepest cores,
over which a view is taken to absorb a gain/offset change or an illumination ramp.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from ._filters import gaussian
from ._quantiles import int_levels, percentile, percentile_from_counts
from .illumination import fit_level, poly_field

__all__ = ["film_mode_field", "film_upper_field", "black_field"]


def _block_grid(shape: tuple[int, int], block: int):
    """Whole blocks of about ``block`` px (at most a quarter of the shorter side, at least 16),
    centred on the image (the margins split evenly on both sides, so that the view rotated by
    90° has the same blocks rotated: a grid anchored at the top-left corner moves by the
    remainder): (r0, c0, nr, nc, br, bc, block centres' rows, cols)."""
    h, w = shape
    b = int(max(16, min(block, min(h, w) // 4)))
    nr, nc = max(h // b, 1), max(w // b, 1)
    br, bc = h // nr, w // nc
    r0, c0 = (h - nr * br) // 2, (w - nc * bc) // 2
    rr, cc = np.meshgrid(r0 + (np.arange(nr) + 0.5) * br - 0.5, c0 + (np.arange(nc) + 0.5) * bc - 0.5, indexing="ij")
    return r0, c0, nr, nc, br, bc, rr.ravel(), cc.ravel()


def _blocks(a: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The whole blocks of :func:`_block_grid`, each a row of its pixels, and their centres'
    rows and cols."""
    r0, c0, nr, nc, br, bc, rr, cc = _block_grid(a.shape, block)
    m = a[r0: r0 + nr * br, c0: c0 + nc * bc].reshape(nr, br, nc, bc).transpose(0, 2, 1, 3).reshape(nr * nc, br * bc)
    return m, rr, cc


def _block_counts(lv: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each whole block's (:func:`_block_grid`) histogram of the whole-number grey levels ``lv``
    (rows: the blocks as :func:`_blocks` orders them; levels up to their highest), and the
    blocks' centres' rows and cols: the same counts as a bincount of :func:`_blocks`' rows, in
    one compiled pass over the view in place (:mod:`._levels`)."""
    from ._levels import block_counts

    r0, c0, nr, nc, br, bc, rr, cc = _block_grid(lv.shape, block)
    return block_counts(np.ascontiguousarray(lv, np.int32), r0, c0, nr, nc, br, bc), rr, cc


MODE_BANDWIDTH = 0.015  # the film mode's kernel: this share of the view's grey range (1st–99th percentile)


def film_mode_field(img: np.ndarray, block: int = 64, degree: int = 2) -> np.ndarray:
    """Film level field: in each block the brightest well-populated grey level (the brightest
    peak of the value density holding at least 30 % of the highest peak's density), a robust
    quadratic through the block levels.

    The film's flat top is one level, so its values pile up; the openings either spread theirs
    (a rim decaying into a dark core) or pile them up below the film's (a flat floor, which in a
    dense view can be the commoner level: the plain mode would then be the floor). A rim's
    brightest values are few and differ from pore to pore, so they make no peak of their own.

    The density is a Gaussian kernel estimate over all the block's pixels, its width a fixed
    share of the view's grey range (:data:`MODE_BANDWIDTH`; and at least one grey level of
    integer data): the same view under another gain and offset gives the same level, and the
    comb that a gain change leaves in an 8-bit histogram (levels alternately hit once and twice)
    is smoothed away (a density from the gaps between sorted samples, as before, saw each grey
    level of 8-bit data as a spike and its peak moved by ~5 levels with the gain)."""
    a0 = np.asarray(img)
    lv = int_levels(a0)
    if lv is not None:
        # whole grey levels (8-bit data): each block's histogram of its levels (one bincount),
        # and the density's linear binning done per level, not per pixel (the same estimate:
        # each pixel's share of a bin is its level's)
        counts, rr, cc = _block_counts(lv, block)
        nbk, nl = counts.shape
        lo, hi = percentile_from_counts(counts.sum(axis=0), [1.0, 99.0])
        span = float(hi - lo)
        if not span > 0:
            return np.full(a0.shape, float(np.median(_blocks(lv, block)[0])), np.float64)
        bw = max(MODE_BANDWIDTH * span, 1.0)  # integer grey levels: no narrower than their step
        step = bw / 4.0
        present = np.flatnonzero(counts.any(axis=0))
        lo_b = float(present[0]) - 4.0 * bw
        nb = int(math.ceil((float(present[-1]) + 4.0 * bw - lo_b) / step)) + 1
        v = np.arange(nl, dtype=np.float64)
        k = np.clip(((v - lo_b) / step).astype(np.intp), 0, nb - 1)
        fr = (v - lo_b) / step - k
        key = (np.arange(nbk)[:, None] * (nb + 1) + k[None, :]).ravel()
        c = counts.astype(np.float64)
        hist = (np.bincount(key, (c * (1.0 - fr)).ravel(), minlength=nbk * (nb + 1))
                + np.bincount(key + 1, (c * fr).ravel(), minlength=nbk * (nb + 1))).reshape(nbk, nb + 1)
    else:
        a, rr, cc = _blocks(np.asarray(a0, np.float64), block)
        lo, hi = percentile(a, [1.0, 99.0])
        span = float(hi - lo)
        if not span > 0:
            return np.full(a0.shape, float(np.median(a)), np.float64)
        bw = MODE_BANDWIDTH * span
        if np.array_equal(a[:, :64], np.rint(a[:, :64])):
            bw = max(bw, 1.0)  # integer grey levels: no narrower than their step
        step = bw / 4.0
        lo_b = float(a.min()) - 4.0 * bw
        nb = int(math.ceil((float(a.max()) + 4.0 * bw - lo_b) / step)) + 1
        k = np.minimum(((a - lo_b) / step).astype(np.intp), nb - 1)
        # linear binning (each value shared between its two bins) keeps the estimate smooth in the data
        fr = (a - lo_b) / step - k
        key = (np.arange(a.shape[0])[:, None] * (nb + 1) + k).ravel()
        hist = (np.bincount(key, (1.0 - fr).ravel(), minlength=a.shape[0] * (nb + 1))
                + np.bincount(key + 1, fr.ravel(), minlength=a.shape[0] * (nb + 1))).reshape(a.shape[0], nb + 1)
    dens = ndi.gaussian_filter1d(hist, 4.0, axis=1, mode="constant", truncate=4.0)
    good = dens >= 0.3 * dens.max(axis=1, keepdims=True)
    idx = np.arange(dens.shape[1])[None, :]
    last = dens.shape[1] - 1 - np.argmax(good[:, ::-1], axis=1)
    start = np.where(~good & (idx < last[:, None]), idx, -1).max(axis=1) + 1
    run = (idx >= start[:, None]) & (idx <= last[:, None])
    j = np.argmax(np.where(run, dens, -np.inf), axis=1)
    # the peak to a fraction of a bin: the parabola through it and its neighbours
    rows = np.arange(dens.shape[0])
    jm, jp = np.maximum(j - 1, 0), np.minimum(j + 1, dens.shape[1] - 1)
    y0, y1, y2 = dens[rows, jm], dens[rows, j], dens[rows, jp]
    den = y0 - 2 * y1 + y2
    off = np.where(den < 0, np.clip(0.5 * (y0 - y2) / np.where(den < 0, den, -1.0), -0.5, 0.5), 0.0)
    mode = lo_b + (j + off) * step
    coef = fit_level(mode, rr, cc, a0.shape, degree=degree)
    return poly_field(coef, a0.shape, degree)


def film_upper_field(img: np.ndarray, block: int = 64, degree: int = 2, unit: float = 1.0) -> np.ndarray:
    """Film level field of a view without rims: the upper envelope of the blocks' brightest
    levels, as for a reflected-light view. Without a rim nothing in the view is brighter than the
    film; the mode (:func:`film_mode_field`) can be a pore level there instead: in a dense
    backscatter-like view the pores' own levels pile up and the thin blurred walls never settle
    on the film's. Blocks centred on the view (:func:`_block_grid`).

    A block's brightest level is a noise extreme: its level depends on how many independent
    samples the block holds and how much the smoothing evened them out. Both are in units of the
    pores' scale (``unit``, :func:`pore_unit`: blocks of ``block`` units, at least 16 px, and a
    Gaussian of 0.82 units, as a 3×3 mean is of 1 px): the same view at another pixel size gives
    the same level (in pixels alone, porous silicon's film moved by 8 % at twice the pixels)."""
    a = np.asarray(img, np.float32)
    sm = gaussian(a, 0.82 * unit)
    m, rr, cc = _blocks(sm, int(round(block * unit)))
    mx = m.max(axis=1)
    coef = fit_level(mx.astype(np.float64), rr, cc, a.shape, degree=degree, upper=True)
    return poly_field(coef, a.shape, degree)


def black_field(img: np.ndarray, film: np.ndarray, unit: float, block: int = 64, degree: int = 2,
                q: float = 1.0, deep: float = 0.2) -> np.ndarray:
    """The view's black level b (field), for ``norm = (img − b) / (film − b)`` in place of
    ``img / film`` (which assumes black 0: a gain and offset change then changes each pore's
    relative depth wherever the film level varies).

    The dark field D is a lower envelope through the blocks' darkest levels (``q`` % quantile,
    blocks of ``block`` pore units, :func:`pore_unit`); the black lies below it by a share of
    the local contrast, b = film − λ·(film − D), with λ the deepest pixels' (``deep`` %) depth
    (film − img)/(film − D). Every step is covariant with a gain and offset (quantiles, the
    affine fit, a ratio of differences) and follows a multiplicative illumination ramp (the
    fields scale with it): norm is unchanged under both."""
    a = np.asarray(img, np.float32)
    lv = int_levels(a)
    if lv is not None:
        # whole grey levels: each block's quantile from its histogram (the same values)
        counts, rr, cc = _block_counts(lv, int(round(block * unit)))
        qv = percentile_from_counts(counts, q, np.float32).astype(np.float64)
    else:
        m, rr, cc = _blocks(a, int(round(block * unit)))
        qv = np.percentile(m, q, axis=1).astype(np.float64)
    d = poly_field(fit_level(qv, rr, cc, a.shape, degree=degree, upper=False), a.shape, degree)
    fast = isinstance(film, np.ndarray) and film.dtype == np.float32 and film.shape == a.shape and d.dtype == np.float64
    if not (fast and film.flags.c_contiguous and a.flags.c_contiguous and d.flags.c_contiguous):
        lam = float(percentile((film - a) / np.maximum(film - d, 1e-6), 100.0 - deep))
        return (film - lam * (film - d)).astype(np.float32)
    # (the same expressions, one compiled pass each, :mod:`._levels`)
    from ._levels import black_level, depth_ratio

    ratio = np.empty(a.shape)
    depth_ratio(film, a, d, ratio)
    lam = float(percentile(ratio, 100.0 - deep))
    del ratio
    out = np.empty(a.shape, np.float32)
    black_level(film, d, lam, out)
    return out
