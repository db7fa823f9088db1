"""Quantiles of whole images without sorting them: the same values as ``np.percentile`` (linear
method) and ``np.median``, for the analysis hot paths.

``np.percentile`` partitions a copy of the whole array (~10 ms per 1024² float64 image), and the
SEM path asks for about ten quantiles per view. Two cheaper routes to the same order statistics:

* integer grey levels (8- or 12-bit data, as most micrographs are): a histogram of the levels
  (one ``bincount``), the order statistics read off its cumulative counts;
* any data, a quantile in the tails or the middle: a bracket about it from a strided subsample,
  one pass counting the values below the bracket and picking those inside, and a partition of
  those few only (the whole array's partition where the bracket misses).

The interpolation between the two order statistics is numpy's own arithmetic (``_lerp``: the
result's dtype and rounding as ``np.percentile`` gives them), so the results are identical.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["int_levels", "percentile", "median", "percentile_from_counts"]

MAX_LEVELS = 4096  # integer data with more levels than this: the general route


def int_levels(a: np.ndarray, max_levels: int = MAX_LEVELS) -> np.ndarray | None:
    """``a`` as int32 grey levels when every value is a whole number in [0, max_levels), else
    None (a float image of 8-bit data passes; a normalised or 16-bit one does not)."""
    a = np.asarray(a)
    if a.size == 0:
        return None
    if a.dtype.kind in "ui":
        if a.dtype.itemsize <= 1:
            return a.astype(np.int32)
        lo, hi = int(a.min()), int(a.max())
        return a.astype(np.int32) if lo >= 0 and hi < max_levels else None
    if a.dtype.kind != "f":
        return None
    lo, hi = float(a.min()), float(a.max())
    if not (lo >= 0 and hi < max_levels):
        return None
    v = a.astype(np.int32)
    return v if np.array_equal(v, a) else None


def _lerp(a, b, t):
    """numpy's linear interpolation of quantiles (``numpy.lib._function_base_impl._lerp``):
    a + (b − a)·t, from b's side where t ≥ 0.5."""
    diff = b - a
    out = np.asanyarray(a + diff * t)
    out = np.where(np.asarray(t) >= 0.5, b - diff * (1 - t), out).astype(out.dtype, copy=False)
    return out[()] if out.ndim == 0 else out


def _positions(n: int, q, dtype):
    """numpy's virtual index, the two order statistics' positions and gamma for quantiles ``q``
    (percent) of ``n`` values; ``weak``: a Python scalar q (numpy then interpolates in the
    data's own dtype)."""
    weak = np.ndim(q) == 0 and isinstance(q, (int, float))
    qq = np.true_divide(np.asarray(q, np.float64), 100)
    virt = (n - 1) * qq
    prev = np.floor(virt)
    nxt = prev + 1
    above = virt >= n - 1
    prev = np.where(above, n - 1, np.where(virt < 0, 0, prev)).astype(np.intp)
    nxt = np.where(above, n - 1, np.where(virt < 0, 0, nxt)).astype(np.intp)
    gamma = np.asanyarray(virt - np.floor(virt), dtype=virt.dtype)
    return prev, nxt, (float(gamma) if weak else gamma), weak


def percentile_from_counts(counts: np.ndarray, q, dtype=np.float64):
    """``np.percentile`` of the values whose histogram over the levels 0, 1, 2, … is ``counts``
    (an array of ``dtype`` holding them), from the cumulative counts. 2-D ``counts``: one
    histogram per row, a scalar ``q``, as ``np.percentile(rows, q, axis=1)``."""
    counts = np.asarray(counts)
    if counts.ndim == 2:
        cum = np.cumsum(counts, axis=1)
        n = int(cum[0, -1])
        prev, nxt, gamma, _ = _positions(n, q, dtype)
        a = np.count_nonzero(cum <= int(prev), axis=1).astype(dtype)
        b = np.count_nonzero(cum <= int(nxt), axis=1).astype(dtype)
        return _lerp(a, b, gamma)
    cum = np.cumsum(counts)
    n = int(cum[-1])
    prev, nxt, gamma, _ = _positions(n, q, dtype)
    a = np.searchsorted(cum, prev, side="right").astype(dtype)
    b = np.searchsorted(cum, nxt, side="right").astype(dtype)
    return _lerp(a, b, gamma)


def _order_stats(x: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """The order statistics ``ks`` (0-based) of the 1-D array ``x``: each group of nearby ones
    by a bracket from a strided subsample (one pass over ``x`` and a partition of the values
    inside it); the whole array's partition where a bracket misses."""
    n = x.size
    ks = np.asarray(ks, np.intp)
    if n < 65536:
        return np.partition(x, np.unique(ks))[ks]
    stride = max(1, n // 16384)
    sub = np.sort(x[::stride])
    m = sub.size

    def at(k_full, side):
        # the subsample's own quantile widened by ~6 binomial s.d. and 8 places
        p = k_full / max(n - 1, 1)
        sd = math.sqrt(max(p * (1 - p), 1.0 / m) / m)
        j = (p + side * (6 * sd)) * (m - 1) + side * 8
        return sub[int(min(max(j, 0), m - 1))]

    out = np.empty(ks.size, x.dtype)
    order = np.argsort(ks)
    groups, cur = [], [order[0]]
    for i in order[1:]:
        if ks[i] - ks[cur[-1]] <= n // 64:
            cur.append(i)
        else:
            groups.append(cur)
            cur = [i]
    groups.append(cur)
    for g in groups:
        kg = ks[g]
        lo_k, hi_k = int(kg.min()), int(kg.max())
        lo_v = at(lo_k, -1) if lo_k > 0 else None
        hi_v = at(hi_k, +1) if hi_k < n - 1 else None
        if lo_v is None and hi_v is None:
            return np.partition(x, np.unique(ks))[ks]
        if lo_v is None:
            below, inside = 0, x[x <= hi_v]
        else:
            m_lo = x < lo_v
            below = int(np.count_nonzero(m_lo))
            if hi_v is not None:
                np.logical_or(m_lo, x > hi_v, out=m_lo)
            inside = x[~m_lo]
        kk = kg - below
        if kk.min() < 0 or kk.max() >= inside.size:
            return np.partition(x, np.unique(ks))[ks]
        out[g] = np.partition(inside, np.unique(kk))[kk]
    return out


def percentile(a: np.ndarray, q):
    """``np.percentile(a, q)`` (whole array, linear method), the same values."""
    x = np.asarray(a).reshape(-1)
    if x.size == 0 or x.dtype.kind not in "fiu" or (x.dtype.kind == "f" and not np.isfinite(np.sum(x))):
        return np.percentile(a, q)  # (NaN or infinite values: numpy's own handling)
    prev, nxt, gamma, weak = _positions(x.size, q, x.dtype)
    ks = np.concatenate([np.ravel(prev), np.ravel(nxt)])
    v = _order_stats(x, ks)
    k = np.size(prev)
    va, vb = v[:k].reshape(np.shape(prev)), v[k:].reshape(np.shape(prev))
    if x.dtype.kind in "iu":
        va, vb = va.astype(np.float64), vb.astype(np.float64)
    return _lerp(va, vb, gamma)


def median(a: np.ndarray):
    """``np.median(a)`` of the whole array (the mean of the two middle values for an even
    count): the same value and type (a numpy scalar of the data's dtype)."""
    x = np.asarray(a).reshape(-1)
    n = x.size
    if n < 65536 or x.dtype.kind != "f" or not np.isfinite(np.sum(x)):
        return np.median(x)
    v = _order_stats(x, np.array([(n - 1) // 2, n // 2]))
    return np.mean(v) if n % 2 == 0 else v[0]
