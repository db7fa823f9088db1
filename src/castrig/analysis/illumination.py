"""Uneven-light correction: smooth polynomial level fields fitted to chosen pixels.

Microscope illumination (vignetting, a tilted lamp) varies slowly and smoothly over the field,
so a low-order 2-D polynomial fitted to pixels known to be film (or known to be pore) gives the
local level everywhere, including where blur hides it (dense lattices).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from ._quantiles import median

__all__ = ["as_float", "fit_level", "poly_field", "noise_sigma", "block_extremes"]


def measurable(image: np.ndarray) -> np.ndarray:
    """The image the analysis can measure: unsigned integers, and signed integers without
    negative values, as they are; floats, and signed integers with negative values, rescaled to
    [0, 1] (zero stays at zero unless there are negative values: then the minimum goes to 0), so
    film levels are positive and float32 can neither overflow nor underflow.

    Every ratio the analysis takes (pixel / local film level) is invariant under that scaling.
    A lone extreme pixel does not set the scale (:func:`_without_lone_extremes`).
    Raises ValueError for NaN or infinite pixels (nothing honest can be measured there).
    """
    a = np.asarray(image)
    if a.dtype.kind == "b" or (a.dtype.kind == "u" and a.dtype.itemsize == 1):
        return a  # (8 bits: a lone 255 is no more than 10 grey ranges above any data)
    if a.dtype.kind == "u":
        # 10- or 12-bit data in a 16-bit file, with a hot pixel at 65535: that one pixel set the
        # film and black levels' scale, and a twin surface measured opening 0.319 instead of 0.594,
        # unflagged (an outside tester's find). Clipped to the range of the rest, as for floats
        if a.size == 0:
            return a
        lo, hi, lone = _without_lone_extremes(a, 0.0, float(a.max()))
        return np.minimum(a, np.asarray(math.ceil(hi), a.dtype)) if lone else a
    if a.dtype.kind not in "if":
        raise ValueError(f"unsupported pixel type {a.dtype}")
    if a.size == 0:
        return a
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            raise ValueError(f"{a.size - int(np.count_nonzero(finite))} pixels are NaN or infinite")
    lo = min(float(a.min()), 0.0)
    hi = float(a.max())
    lo, hi, lone = _without_lone_extremes(a, lo, hi)
    if a.dtype.kind == "i" and lo >= 0:
        # a signed type holding only non-negative values (many SEM TIFFs): as it is
        return np.maximum(a, 0) if lone else a
    if hi <= lo:
        return a.astype(np.float32)
    out = a.astype(np.float64)
    out -= lo
    out *= 1.0 / (hi - lo)
    if lone:
        np.clip(out, 0.0, 1.0, out=out)
    return out.astype(np.float32)


def _without_lone_extremes(a: np.ndarray, lo: float, hi: float) -> tuple[float, float, bool]:
    """(lo, hi) with a lone extreme pixel left out, and whether one was: a pixel beyond 10 times
    the grey range of all but the outermost 0.01 % of the pixels (a hot or dead pixel, a stray
    1e30 in a float file, one -32768 in an int16 one) set the scale alone, and squeezed every
    other grey into a sliver of it — a fuzzing run of the CLI lost every pore of a surface, and
    the whole of a section, to one such pixel. Such pixels are clipped to the range of the rest."""
    if a.size < 1000:
        return lo, hi, False
    step = max(1, a.size // 1_000_000)
    q0, q1 = (float(v) for v in np.quantile(a.reshape(-1)[::step], [1e-4, 1 - 1e-4]))
    q0 = min(q0, 0.0)
    span = max(q1 - q0, 0.0)
    lone = False
    if hi > q1 + 10 * span:
        hi, lone = q1, True
    if lo < q0 - 10 * span:
        lo, lone = q0, True
    return lo, hi, lone


def as_float(image: np.ndarray) -> np.ndarray:
    """A 2-D float32 copy of a greyscale image, in its raw units (no rescaling)."""
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D greyscale image, got shape {a.shape}")
    return a.astype(np.float32, copy=True)


def _design(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    cols = [x**i * y**j for i in range(degree + 1) for j in range(degree + 1 - i)]
    return np.stack(cols, axis=-1)


def poly_field(coef: np.ndarray, shape: tuple[int, int], degree: int, *, out: np.ndarray | None = None) -> np.ndarray:
    """Evaluate a polynomial (from :func:`fit_level`) on the full pixel grid.

    Separable: Σ_j y^j · (Σ_i c_ij x^i) is one small matrix product (einsum: single-threaded
    SIMD, unlike BLAS whose spinning threads stall on a loaded machine).
    """
    h, w = shape
    x = np.linspace(-1, 1, w, dtype=np.float64)
    y = np.linspace(-1, 1, h, dtype=np.float64)
    xc = np.zeros((degree + 1, w))
    k = 0
    for i in range(degree + 1):
        for j in range(degree + 1 - i):
            xc[j] += coef[k] * x**i
            k += 1
    yp = np.stack([y**j for j in range(degree + 1)], axis=1)
    if out is not None:
        return np.einsum("hj,jw->hw", yp.astype(np.float32), xc.astype(np.float32), out=out)
    return np.einsum("hj,jw->hw", yp.astype(np.float32), xc.astype(np.float32))


def _median(a: np.ndarray) -> float:
    """``float(np.median(a))`` of a 1-D float array, through one partition (no extra passes)."""
    n = a.size
    k = n // 2
    if n % 2:
        return float(np.partition(a, k)[k])
    p = np.partition(a, k)
    return float((p[:k].max() + p[k]) / 2)


def fit_level(
    values: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
    shape: tuple[int, int],
    *,
    degree: int = 2,
    upper: bool | None = None,
    iterations: int = 3,
) -> np.ndarray:
    """Robust least-squares polynomial coefficients through (row, col, value) samples.

    ``upper=True`` fits an upper envelope (drops samples far below the fit: blocks whose maximum
    is a blurred wall, not film), ``upper=False`` a lower one, ``None`` symmetric outlier removal.
    """
    h, w = shape
    x = np.asarray(cols, np.float64) * (2.0 / max(w - 1, 1)) - 1
    y = np.asarray(rows, np.float64) * (2.0 / max(h - 1, 1)) - 1
    n = len(values)
    deg = degree
    while deg > 0 and (deg + 1) * (deg + 2) // 2 * 3 > n:
        deg -= 1
    # design matrix stored column-major (one contiguous row per monomial x^i y^j)
    expo = [(i, j) for i in range(deg + 1) for j in range(deg + 1 - i)]
    m = len(expo)
    xp = [np.ones_like(x)]
    yp = [np.ones_like(y)]
    for _ in range(2 * deg):
        xp.append(xp[-1] * x)
        yp.append(yp[-1] * y)
    at = np.empty((m, n))
    for k, (i, j) in enumerate(expo):
        np.multiply(xp[i], yp[j], out=at[k])
    # the normal matrix Σ x^(i+i') y^(j+j') needs only the monomials up to degree 2·deg: their
    # (weighted) sums are one matrix-vector product per iteration, however many samples are kept
    pairs = sorted({(i + i2, j + j2) for i, j in expo for i2, j2 in expo})
    pos = {p: k for k, p in enumerate(pairs)}
    mom = np.empty((len(pairs), n))
    for k, (i, j) in enumerate(pairs):
        np.multiply(xp[i], yp[j], out=mom[k])
    gram_ix = np.array([[pos[(i + i2, j + j2)] for i2, j2 in expo] for i, j in expo])
    v = np.asarray(values, np.float64)
    keep = None  # all samples
    coef = np.zeros(m)
    for _ in range(iterations):
        wk = np.ones(n) if keep is None else keep.astype(np.float64)
        # einsum matrix-vector products, not BLAS (whose spinning threads stall on a loaded
        # machine); the system is tiny (≤ 15 unknowns) and well scaled on [-1, 1]
        gram = np.einsum("in,n->i", mom, wk)[gram_ix]
        try:
            coef = np.linalg.solve(gram, np.einsum("in,n->i", at, v * wk))
        except np.linalg.LinAlgError:
            ak = at if keep is None else at[:, keep]
            coef, *_ = np.linalg.lstsq(ak.T, v if keep is None else v[keep], rcond=None)
        res = v - np.einsum("i,in->n", coef, at)
        rk = res if keep is None else res[keep]
        med = _median(rk)
        mad = 1.4826 * _median(np.abs(rk - med)) + 1e-12
        if upper is True:
            new = res > -2.5 * mad
        elif upper is False:
            new = res < 2.5 * mad
        else:
            new = np.abs(res) < 3 * mad
        if new.sum() < m * 2 or (new.all() if keep is None else np.array_equal(new, keep)):
            break
        keep = new
    full = np.zeros((degree + 1) * (degree + 2) // 2)
    # map the possibly reduced-degree coefficients into the full layout
    k = kf = 0
    for i in range(degree + 1):
        for j in range(degree + 1 - i):
            if i + j <= deg:
                full[kf] = coef[k]
                k += 1
            kf += 1
    return full


def noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of white noise, robust to edges (Immerkær 1996, median variant)."""
    # the kernel [1 -2 1]ᵀ[1 -2 1] as second differences along the rows, then the columns (the
    # interior only, as the full 3×3 convolution's [1:-1, 1:-1] was; ~3× cheaper)
    a = np.asarray(image, np.float32)
    v = a[:-2] - 2 * a[1:-1] + a[2:]
    c = v[:, :-2] - 2 * v[:, 1:-1] + v[:, 2:]
    # for white noise, c has std 6 sigma; the median of |c| is 0.6745 std
    return float(median(np.abs(c)) / 0.6745 / 6.0) if c.size else 0.0  # (np.median's value, without sorting)


def block_extremes(image: np.ndarray, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, max, min) of each whole block of a 2-D image."""
    h, w = image.shape
    nb_r, nb_c = max(h // block, 1), max(w // block, 1)
    br, bc = h // nb_r, w // nb_c
    a = image[: nb_r * br, : nb_c * bc].reshape(nb_r, br, nb_c, bc)
    mx = a.max(axis=(1, 3)).ravel()
    mn = a.min(axis=(1, 3)).ravel()
    rr, cc = np.meshgrid((np.arange(nb_r) + 0.5) * br, (np.arange(nb_c) + 0.5) * bc, indexing="ij")
    return rr.ravel(), cc.ravel(), mx, mn
