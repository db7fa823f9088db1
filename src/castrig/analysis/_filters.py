"""Fast local filters for the analysis hot paths (numpy slicing, no per-pixel Python).

``scipy.ndimage`` min/max/uniform filters run one line at a time through a double-precision
buffer and are slow across the fast axis; these do the same arithmetic with whole-array
numpy operations:

* running max/min over a (2r+1) window by doubling (van Herk style): ⌈log2(2r+1)⌉ + 1 array ops
  per axis, exact for any dtype (booleans use logical or/and);
* a 3×3 box mean;
* a Gaussian whose vertical pass is a symmetric tap sum over whole rows and whose horizontal
  pass is scipy's contiguous 1-D correlation.

Borders: max/min clip the window at the image edge (identical to scipy's default "reflect" for
these order filters); the box mean and the Gaussian use scipy's "reflect" (numpy "symmetric").
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["box_max", "box_min", "box_mean3", "column_min", "gaussian", "cross_erode", "cross_dilate"]


def _sl(axis: int, start: int | None, stop: int | None) -> tuple[slice, ...]:
    return (slice(None),) * axis + (slice(start, stop),)


def _run(x: np.ndarray, r: int, op, axis: int) -> np.ndarray:
    """Running ``op`` (max/min) over windows of 2r+1 along ``axis``, window clipped at edges."""
    n = x.shape[axis]
    k = 2 * r + 1
    if n < k + 1:
        pad = [(0, 0)] * x.ndim
        pad[axis] = (r, r)
        x, m = np.pad(x, pad, mode="edge"), n
    else:
        m = n - 2 * r  # windows wholly inside the image
    # doubling: cur[i] = op(x[i : i + w])
    cur = x
    w = 1
    while 2 * w <= k:
        cur = op(cur[_sl(axis, 0, cur.shape[axis] - w)], cur[_sl(axis, w, None)])
        w *= 2
    if m == n:
        return cur[_sl(axis, 0, m)] if w == k else op(cur[_sl(axis, 0, m)], cur[_sl(axis, k - w, k - w + m)])
    out = np.empty_like(x)
    mid = out[_sl(axis, r, n - r)]
    if w == k:
        mid[...] = cur[_sl(axis, 0, m)]
    else:
        op(cur[_sl(axis, 0, m)], cur[_sl(axis, k - w, k - w + m)], out=mid)
    # the first and last r windows are clipped at the edge: grow them one line at a time
    head = x[_sl(axis, 0, 1)].copy()
    tail = x[_sl(axis, n - 1, n)].copy()
    for j in range(1, r + 1):
        op(head, x[_sl(axis, j, j + 1)], out=head)
        op(tail, x[_sl(axis, n - 1 - j, n - j)], out=tail)
    out[_sl(axis, 0, 1)] = head
    out[_sl(axis, n - 1, n)] = tail
    for i in range(1, r):
        op(head, x[_sl(axis, i + r, i + r + 1)], out=head)
        op(tail, x[_sl(axis, n - 1 - i - r, n - i - r)], out=tail)
        out[_sl(axis, i, i + 1)] = head
        out[_sl(axis, n - 1 - i, n - i)] = tail
    return out


def _ops(a: np.ndarray, maximum: bool):
    if a.dtype == bool:
        return np.logical_or if maximum else np.logical_and
    return np.maximum if maximum else np.minimum


def box_max(a: np.ndarray, r: int) -> np.ndarray:
    """Maximum over the (2r+1)² square around each pixel (== ``ndi.maximum_filter(a, 2r+1)``)."""
    if r <= 0:
        return a.copy()
    op = _ops(a, True)
    return _run(_run(a, r, op, 1), r, op, 0)


def box_min(a: np.ndarray, r: int) -> np.ndarray:
    """Minimum over the (2r+1)² square around each pixel (== ``ndi.minimum_filter(a, 2r+1)``)."""
    if r <= 0:
        return a.copy()
    op = _ops(a, False)
    return _run(_run(a, r, op, 1), r, op, 0)



def column_min(a: np.ndarray, r: int) -> np.ndarray:
    """Running minimum over 2r+1 rows down each column, clipped at the edges: equal to
    ``ndi.grey_erosion(a, size=(2r+1, 1))``, by whole-row numpy ops (scipy walks each column
    across the fast axis)."""
    return _run(a, r, np.minimum, 0)


def box_mean3(a: np.ndarray, *, out: np.ndarray | None = None, work: np.ndarray | None = None) -> np.ndarray:
    """3×3 mean of a float32 image (== ``ndi.uniform_filter(a, 3)`` up to float32 rounding).

    ``out`` and ``work`` (arrays like ``a``, not ``a`` itself) are optional reusable buffers."""
    h, w = a.shape
    if h < 2 or w < 2:
        return ndi.uniform_filter(a, 3)
    # vertical 3-sums (the edge row counts twice: scipy's "reflect"), then horizontal
    v = np.empty_like(a) if work is None else work
    np.add(a[:-2], a[1:-1], out=v[1:-1])
    v[1:-1] += a[2:]
    np.add(a[0], a[0], out=v[0])
    v[0] += a[1]
    np.add(a[-1], a[-1], out=v[-1])
    v[-1] += a[-2]
    if out is None:
        out = np.empty_like(a)
    np.add(v[:, :-2], v[:, 1:-1], out=out[:, 1:-1])
    out[:, 1:-1] += v[:, 2:]
    np.add(v[:, 0], v[:, 0], out=out[:, 0])
    out[:, 0] += v[:, 1]
    np.add(v[:, -1], v[:, -1], out=out[:, -1])
    out[:, -1] += v[:, -2]
    out *= np.asarray(1.0 / 9.0, out.dtype)
    return out


def gaussian(a: np.ndarray, sigma: float, truncate: float = 4.0) -> np.ndarray:
    """Gaussian blur of a float32 image (scipy's kernel and "reflect" border), float32 out."""
    r = int(truncate * float(sigma) + 0.5)
    h = a.shape[0]
    if r < 1 or r >= h:
        return ndi.gaussian_filter(a, sigma, truncate=truncate)
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    k = (k / k.sum()).astype(a.dtype)
    p = np.pad(a, ((r, r), (0, 0)), mode="symmetric")
    out = np.empty_like(a)
    # the vertical tap sum one block of rows at a time, so that the block stays in cache
    # across the taps (same arithmetic, same order: bit-identical to whole-array passes)
    chunk = max(8, (1 << 18) // max(a[0].nbytes, 1))
    tmp = np.empty((min(chunk, h),) + a.shape[1:], a.dtype)
    for s0 in range(0, h, chunk):
        s1 = min(s0 + chunk, h)
        o = out[s0:s1]
        t = tmp[: s1 - s0]
        np.multiply(p[r + s0 : r + s1], k[r], out=o)
        for i in range(1, r + 1):
            np.add(p[r - i + s0 : r - i + s1], p[r + i + s0 : r + i + s1], out=t)
            t *= k[r + i]
            o += t
    # along the rows (contiguous lines: scipy filters each line through its own buffer, so
    # writing back in place is safe)
    return ndi.gaussian_filter1d(out, sigma, axis=1, truncate=truncate, output=out)


def cross_erode(m: np.ndarray) -> np.ndarray:
    """``ndi.binary_erosion(m)`` (3×3 cross, outside counted as background)."""
    m = np.asarray(m, bool)
    e = m.copy()
    e[1:] &= m[:-1]
    e[:-1] &= m[1:]
    e[:, 1:] &= m[:, :-1]
    e[:, :-1] &= m[:, 1:]
    e[0] = e[-1] = False
    e[:, 0] = e[:, -1] = False
    return e


def cross_dilate(m: np.ndarray) -> np.ndarray:
    """``ndi.binary_dilation(m)`` (3×3 cross)."""
    m = np.asarray(m, bool)
    d = m.copy()
    d[1:] |= m[:-1]
    d[:-1] |= m[1:]
    d[:, 1:] |= m[:, :-1]
    d[:, :-1] |= m[:, 1:]
    return d
