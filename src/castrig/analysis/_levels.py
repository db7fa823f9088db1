"""An SEM view's passes over its pixels for its film and black levels and its cores, compiled
(numba; :mod:`.edges_levels`, :func:`.surface_sem._sem_norm`, :func:`.surface_sem._sem_lips`).

Why compiled: in numpy each was several passes over the whole view, each writing a temporary:
each block's histogram of grey levels (the blocks copied out as rows, a key per pixel, a
bincount: ~5 ms of CPU a 1024² view, three times per SEM analysis), the deepest pixels' depth
ratio and the black level (four and three passes), the view over its film above its black level
(four), the cores' pixels, sizes and levels and their renumbering (~10 passes, ~8 ms); here one
or two passes each. The same values: the same expressions in the same order and types
(float32 where numpy kept float32), and counts are whole numbers.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def block_counts(lv, r0, c0, nr, nc, br, bc):
    """The histograms (nr·nc, levels) of the whole blocks (``br`` × ``bc`` px, from row ``r0``
    and col ``c0``, numbered row by row) of the whole-number grey levels ``lv`` (≥ 0), levels
    up to the blocks' highest."""
    top = 0
    for r in range(r0, r0 + nr * br):
        for c in range(c0, c0 + nc * bc):
            if lv[r, c] > top:
                top = lv[r, c]
    out = np.zeros((nr * nc, top + 1), np.int64)
    for i in range(nr):
        for r in range(r0 + i * br, r0 + (i + 1) * br):
            for j in range(nc):
                row = out[i * nc + j]
                for c in range(c0 + j * bc, c0 + (j + 1) * bc):
                    row[lv[r, c]] += 1
    return out


@njit(cache=True, nogil=True)
def depth_ratio(film, img, dark, out):
    """``(film − img) / max(film − dark, 10⁻⁶)`` (float32 film and view, float64 dark field: the
    first difference in float32, the rest in float64, as numpy types them) into ``out``."""
    f, a, d, o = film.ravel(), img.ravel(), dark.ravel(), out.ravel()
    for i in range(f.size):
        num = f[i] - a[i]
        den = np.float64(f[i]) - d[i]
        if not den >= 1e-6:
            den = 1e-6 if den == den else den
        o[i] = np.float64(num) / den


@njit(cache=True, nogil=True)
def black_level(film, dark, lam, out):
    """The black level ``film − λ·(film − dark)`` (float64, as numpy computes it) as float32 into ``out``."""
    f, d, o = film.ravel(), dark.ravel(), out.ravel()
    for i in range(f.size):
        ff = np.float64(f[i])
        o[i] = np.float32(ff - lam * (ff - d[i]))


@njit(cache=True, nogil=True)
def over_black(img, film, black, out):
    """The view over its film above its black level, ``(img − b) / max(film − b, 10⁻⁶)``, all in
    float32 as numpy computes it for float32 arrays, into ``out``."""
    a, f, b, o = img.ravel(), film.ravel(), black.ravel(), out.ravel()
    eps = np.float32(1e-6)
    for i in range(a.size):
        num = a[i] - b[i]
        den = f[i] - b[i]
        if not den >= eps:
            den = eps if den == den else den
        o[i] = num / den


@njit(cache=True, nogil=True)
def core_sums(lab, norm, n):
    """The cores' pixels of the labels ``lab`` (1..n, in raster order: flat index, row, col) and
    each core's pixel count and summed level ``norm`` (float64 sums in raster order, as
    bincount adds them), in two passes over the view."""
    lf, nf = lab.ravel(), norm.ravel()
    w = lab.shape[1]
    cnt = np.zeros(n + 1, np.int64)
    lev = np.zeros(n + 1)
    for i in range(lf.size):
        g = lf[i]
        if g > 0:
            cnt[g] += 1
            lev[g] += np.float64(nf[i])
    m = 0
    for g in range(1, n + 1):
        m += cnt[g]
    flat = np.empty(m, np.intp)
    row = np.empty(m, np.intp)
    col = np.empty(m, np.intp)
    k = 0
    for i in range(lf.size):
        if lf[i] > 0:
            flat[k] = i
            r = i // w
            row[k] = r
            col[k] = i - r * w
            k += 1
    return flat, row, col, cnt, lev


@njit(cache=True, nogil=True)
def relabel(lab, flat, remap):
    """The cores ``lab`` renumbered by ``remap`` in place, at their pixels ``flat`` (all of
    them); their new labels returned."""
    lf = lab.ravel()
    out = np.empty(flat.size, np.intp)
    for k in range(flat.size):
        g = remap[lf[flat[k]]]
        lf[flat[k]] = g
        out[k] = g
    return out


def compile_now() -> None:
    """Compile them (or load them from their cache) with the signatures the SEM path uses."""
    block_counts(np.zeros((4, 4), np.int32), 0, 0, 2, 2, 2, 2)
    f, a, d = np.ones((4, 4), np.float32), np.zeros((4, 4), np.float32), np.zeros((4, 4))
    depth_ratio(f, a, d, np.empty((4, 4)))
    black_level(f, d, 0.5, np.empty((4, 4), np.float32))
    over_black(a, f, a, np.empty((4, 4), np.float32))
    lab = np.zeros((4, 4), np.int32)
    lab[1, 1] = 1
    flat = core_sums(lab, f, 1)[0]
    relabel(lab, flat, np.arange(2, dtype=np.int32))
