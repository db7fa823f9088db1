"""Small kernels on a section's edge rows that several of its parts share (part of
:mod:`castrig.analysis.section`): an edge row's noise, the straight line most of its columns lie
on (the tilt), runs of true columns, a median over the columns with a value.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi


def _filled_median(y: np.ndarray, ok: np.ndarray, size: int) -> np.ndarray:
    """``y`` where ``ok``, the columns between filled in linearly, then a running median over
    ``size`` columns."""
    x = np.nonzero(ok)[0]
    return ndi.median_filter(np.interp(np.arange(y.size), x, y[x]), size=size, mode="nearest")


def _edge_noise(rows: np.ndarray) -> float:
    """An edge's noise per column (px): the robust s.d. of its steps between neighbouring seen
    columns over √2 (0 with too few of them)."""
    d = np.diff(rows)
    return 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2) if d.size > 4 else 0.0


#: Columns the interface's slope is searched on at most (see :func:`_interface_line`).
SLOPE_COLUMNS = 4096


def _interface_line(xo: np.ndarray, yo: np.ndarray, w: int) -> tuple[float, float]:
    """(slope, level) of the straight line the film's bottom edge follows outside the tongues:
    columns ``xo``, edge rows ``yo`` (the section ``w`` columns wide)."""
    # a tilted section (up to ±5°): the first slope is the one under which most columns share
    # one level (the sharpest peak of the detrended edge's histogram, 1 px bins); the smallest
    # slope wins ties, so an untilted section keeps slope 0
    # (a section wider than SLOPE_COLUMNS: the search on every k-th column, in steps of half a
    # pixel over SLOPE_COLUMNS — its cost grew with the square of the width, 245 s for 300 000
    # columns; the slope is refined on all the columns below)
    k = -(-w // SLOPE_COLUMNS)
    grid = np.arange(0.0, math.tan(math.radians(5.0)) + 1e-9, 0.5 / max(min(w, SLOPE_COLUMNS), 1))
    grid = np.concatenate([[0.0], np.ravel(np.c_[grid[1:], -grid[1:]])])
    sub = slice(None) if k == 1 else slice(None, None, k)
    slope = float(grid[_best_slope(xo[sub], yo[sub], grid)])  # (the first of the best)
    level = float(np.median(yo - slope * xo))
    for _ in range(3):
        r = yo - slope * xo
        lo = float(r.min())
        hist = np.bincount(np.clip((r - lo).astype(np.intp), 0, None))
        hist = ndi.uniform_filter1d(hist.astype(np.float64), 3, mode="constant")
        peak = (hist >= ndi.maximum_filter1d(hist, 5, mode="constant")) & (hist >= max(0.3 * hist.max(), 0.05 * r.size / 3))
        level = lo + float(np.argmax(peak)) + 0.5
        near = np.abs(r - level) <= 2.0
        if near.sum() < 8:
            break
        coef = np.polyfit(xo[near], yo[near], 1)
        slope = float(coef[0])
        level = float(np.median(yo[near] - slope * xo[near]))
    return slope, level


def _slope_scores(xo: np.ndarray, yo: np.ndarray, grid: np.ndarray, chunk: int = 64) -> np.ndarray:
    """For each slope of ``grid``: the columns in the shallowest peak of the detrended edge's
    histogram — 3 neighbouring 1-px bins, ``win = np.convolve(bincount(r - r.min()), ones(3),
    "same")`` with ``r = yo - slope * xo``; the first window reaching 0.3 × the highest and 5 %
    of the columns, its count the most over it and the next 4 — for many slopes at once (one
    bincount over a block of slopes, each histogram with a zero bin either side).

    The shallowest peak, not the highest: the interface lies above the tongues, and wide tongues
    whose flat bottoms line up under some slope made a higher peak than the interface's
    columns (a film of through-pores between thin walls over many tongues: the slope came out
    0.6° off, the interface was read through the film)."""
    return _slope_windows(xo, yo, grid, 0, chunk)[0]


def _slope_windows(xo: np.ndarray, yo: np.ndarray, grid: np.ndarray, wide: int,
                   chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(:func:`_slope_scores`, and with ``wide`` > 0 the most columns in any ``wide`` neighbouring
    bins of each slope's histogram; zeros without)."""
    # (in blocks of 64 slopes into arrays reused from block to block; each histogram as wide as
    # the edge's span allows, (max y - min y) + |slope|·(max x - min x), not as its own maximum
    # bin: the extra bins are zeros past the last window, which no score reads, and the pass that
    # found the maximum is saved. The same scores, 25-30 % less CPU: the bincount is the rest)
    out = np.empty(grid.size)
    top = np.zeros(grid.size, np.int64)
    floor = 0.05 * xo.size
    xo = np.asarray(xo, np.float64)
    yo = np.asarray(yo, np.float64)
    y_span = float(yo.max() - yo.min())
    x_span = float(xo.max() - xo.min())
    rows = min(chunk, grid.size)
    r = np.empty((rows, xo.size))
    b = np.empty(r.shape, np.intp)
    low = np.empty(rows)
    for c0 in range(0, grid.size, chunk):
        sl = grid[c0:c0 + chunk]
        k = sl.size
        rk, bk = r[:k], b[:k]
        np.multiply(sl[:, None], xo[None, :], out=rk)
        np.subtract(yo[None, :], rk, out=rk)  # r = yo - slope·xo
        rk.min(axis=1, out=low[:k])
        rk -= low[:k, None]
        nb = int(y_span + float(np.abs(sl).max()) * x_span) + 5 + wide  # (bins 1 .. max + 1 and zeros either side)
        np.copyto(bk, rk, casting="unsafe")  # (truncation: the floor of r ≥ 0)
        bk += (1 + nb * np.arange(k))[:, None]
        hist = np.bincount(bk.reshape(-1), minlength=nb * k).reshape(k, nb)
        win = hist[:, :-2] + hist[:, 1:-1]
        win += hist[:, 2:]
        thr = np.maximum(0.3 * win.max(axis=1), floor)
        i0 = np.argmax(win >= thr[:, None], axis=1)
        near = np.minimum(i0[:, None] + np.arange(5)[None, :], win.shape[1] - 1)
        out[c0:c0 + k] = np.take_along_axis(win, near, axis=1).max(axis=1)
        if wide:
            cum = np.zeros((k, nb + 1), np.int64)
            np.cumsum(hist, axis=1, out=cum[:, 1:])
            top[c0:c0 + k] = (cum[:, wide:] - cum[:, :-wide]).max(axis=1)
    return out, top


#: every how many slopes (in order of value) :func:`_best_slope` scores first
SLOPE_ANCHOR_EVERY = 6


def _best_slope(xo: np.ndarray, yo: np.ndarray, grid: np.ndarray) -> int:
    """``int(np.argmax(_slope_scores(xo, yo, grid)))``, the same index, scoring only the slopes
    that can reach the best: every :data:`SLOPE_ANCHOR_EVERY`-th slope first, then only those
    whose bound is at least the best score so far.

    The bound: a slope s' within Δ of a scored slope s moves each column's detrended row by
    −Δ·x, so the columns of any 3-bin window under s' lie within an interval 3 + |Δ|·(max x −
    min x) long under s, in at most 4 + ⌈that excess⌉ of s's bins; a score is at most its
    highest window, so it is at most the most columns in that many neighbouring bins of s's
    histogram. A slope whose bound is below the best is never the first of the best (ties are
    scored). On the twin's overnight sections ~10 % of the slopes are scored after the first
    sixth: ~3× less CPU for the slope search, ~5 % of a 2560-px section's analysis."""
    order = np.argsort(grid, kind="stable")
    anchors = order[::SLOPE_ANCHOR_EVERY]
    xo = np.asarray(xo, np.float64)
    x_span = float(xo.max() - xo.min())
    av = grid[anchors]  # (ascending)
    pos = np.searchsorted(av, grid)
    below, above = np.clip(pos - 1, 0, av.size - 1), np.clip(pos, 0, av.size - 1)
    nearest = np.where(np.abs(grid - av[below]) <= np.abs(grid - av[above]), below, above)
    shift = float(np.max(np.abs(grid - av[nearest]))) * x_span
    wide = 4 + int(math.ceil(shift + 1e-6))  # (1e-6 px: the rounding of the rows, ~1e-13 px, many times over)
    a_score, a_top = _slope_windows(xo, yo, grid[anchors], wide)
    score = np.full(grid.size, -1.0)
    score[anchors] = a_score
    rest = np.nonzero((a_top[nearest] >= float(a_score.max())) & (score < 0))[0]
    if rest.size:
        score[rest] = _slope_windows(xo, yo, grid[rest], 0)[0]
    return int(np.argmax(score))


def _runs(b: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the runs of True in a 1-D bool array."""
    d = np.diff(np.concatenate([[0], b.astype(np.int8), [0]]))
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))
