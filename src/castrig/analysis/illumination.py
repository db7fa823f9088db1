"""Uneven-light correction: smooth polynomial level fields fitted to chosen pixels.

Microscope illumination (vignetting, a tilted lamp) varies slowly and smoothly over the field,
so a low-order 2-D polynomial fitted to pixels known to be film (or known to be pore) gives the
local level everywhere, including where blur hides it (dense lattices).
"""

from __future__ import annotations

import math

import numpy as np

from ._quantiles import median

__all__ = ["measurable", "measurable_clipped", "robust_range", "as_float", "fit_level", "poly_field", "noise_sigma",
           "block_extremes"]


#: the share of the pixels at either end of the grey range that does not set it (0.1 %): up to
#: that many hot or dead pixels — 260 of a 512² image, 4000 of a 2048² one — are no part of it
OUTLIER_SHARE = 1e-3
#: how far beyond that range a pixel is an outlier, in units of the range: past half of it a
#: hot pixel is no film (a film's noise and a defocus halo stay well inside), and already from
#: twice the film's level a 2×2 block of them moved a twin surface's opening by 0.01 and its
#: pore count by 4 (the level fit's block maxima, Otsu's class means, a bright-pore image's
#: turning over all take an extreme at its word)
OUTLIER_MARGIN = 0.5


def measurable(image: np.ndarray) -> np.ndarray:
    """The image the analysis can measure: :func:`measurable_clipped` without the count."""
    return measurable_clipped(image)[0]


def measurable_clipped(image: np.ndarray) -> tuple[np.ndarray, int]:
    """(the image the analysis can measure, how many outlier pixels were clipped in it).

    Outliers — hot or dead pixels, a stray 1e30 in a float file, one -32768 in an int16 one —
    are the pixels more than :data:`OUTLIER_MARGIN` of the grey range beyond the range of all
    but the outermost :data:`OUTLIER_SHARE` of the pixels at either end (:func:`robust_range`),
    and lone pixels at the type's limits; they are replaced by their neighbours' median
    (:func:`_clip_outliers`), whatever the pixel type. One 65535 in 10-bit data
    in a 16-bit TIFF set the film level's scale and a twin surface measured opening 0.319 instead
    of 0.594, unflagged (an outside tester's find); the count is the ``outliers_clipped`` flag's.

    Then unsigned integers, and signed integers without negative values, of up to 32 bits as they
    are; floats, 64-bit integers, and signed integers with negative values, rescaled to [0, 1] (zero stays at zero unless
    there are negative values: then the minimum goes to 0), so film levels are positive and
    float32 can neither overflow nor underflow. Every ratio the analysis takes (pixel / local
    film level) is invariant under that scaling.
    Raises ValueError for NaN or infinite pixels (nothing honest can be measured there).
    """
    a = np.asarray(image)
    if a.dtype.kind == "b":
        return a, 0
    if a.dtype.kind not in "uif":
        raise ValueError(f"unsupported pixel type {a.dtype}")
    if a.size == 0:
        return a, 0
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            raise ValueError(f"{a.size - int(np.count_nonzero(finite))} pixels are NaN or infinite")
    a, clipped = _clip_outliers(a)
    if (a.dtype.kind == "u" or (a.dtype.kind == "i" and int(a.min()) >= 0)) and a.dtype.itemsize <= 4:
        # (a signed type holding only non-negative values — many SEM TIFFs — as it is; 64-bit
        # ones are rescaled: 1.8e19 in float32 squared overflowed, a warning on stderr)
        return a, clipped
    lo = min(float(a.min()), 0.0)
    hi = float(a.max())
    if hi <= lo:
        return a.astype(np.float32), clipped
    out = a.astype(np.float64)
    if not math.isfinite(hi - lo):
        # finite pixels whose range overflows float64 (±1e308 in a float64 file: an outside
        # tester's): halved first, exactly; the result is the same ratio
        out *= 0.5
        lo, hi = 0.5 * lo, 0.5 * hi
    out -= lo
    inv = 1.0 / (hi - lo)
    if math.isfinite(inv):
        out *= inv
    else:  # a range so narrow (subnormal) that its reciprocal overflows
        out /= hi - lo
    return out.astype(np.float32), clipped


def robust_range(a: np.ndarray) -> tuple[float, float] | None:
    """(low, high) grey range of all but the :data:`OUTLIER_SHARE` outermost pixels of ``a`` at
    either end; None for an image of under 1000 pixels (too few to tell) or with no range.
    From at most ~250 000 of its pixels (a histogram of them for integers of up to 16 bits)."""
    got = _grey_stats(a)
    return None if got is None else got[:2]


def _grey_stats(a: np.ndarray) -> tuple[float, float, float, float] | None:
    """(:func:`robust_range`, minimum, maximum) of ``a``; None as for :func:`robust_range`."""
    if a.size < 1000:
        return None
    step = max(1, a.size // 250_000) | 1  # (odd: a power-of-two width is not sampled in the same columns only)
    v = a.reshape(-1)[::step]
    if a.dtype.kind in "ui" and a.dtype.itemsize <= 2:
        off = -int(np.iinfo(a.dtype).min)
        if off:  # signed: offset binary, the histogram's bins from the type's minimum
            u = np.uint16 if a.dtype.itemsize == 2 else np.uint8
            v = v.view(u) ^ u(off)
        cum = np.cumsum(np.bincount(v))
        k = OUTLIER_SHARE * v.size
        q0 = float(np.searchsorted(cum, k, side="right")) - off
        q1 = float(np.searchsorted(cum, v.size - k, side="left")) - off
    else:
        q0, q1 = (float(x) for x in np.quantile(v, [OUTLIER_SHARE, 1 - OUTLIER_SHARE]))
    return (q0, q1, float(a.min()), float(a.max())) if q1 > q0 else None


#: half the side of the window whose other pixels replace an outlier (5×5: a 2×2 block of hot
#: pixels still has 21 good neighbours)
_OUTLIER_REACH = 2
#: a pixel at its type's limit (0, or 65535 for 16 bits) is a dead or hot one when each of its 8
#: neighbours not at the limit too lies farther from it than this share of the grey range, and
#: than :data:`_LONE_LIMIT_SIGMAS` times the pixel noise (no noise reaches that far)
_LONE_LIMIT_GAP = 0.1
_LONE_LIMIT_SIGMAS = 8.0
_RING = (np.array([-1, -1, -1, 0, 0, 1, 1, 1]), np.array([-1, 0, 1, -1, 1, -1, 0, 1]))


def _lone_at_limits(a: np.ndarray, q0: float, q1: float) -> np.ndarray | None:
    """Mask of the unsigned 2-D image's dead and hot pixels within the range of the rest, which
    no grey level tells from the data: pixels at 0 or at the type's maximum, alone or in a
    cluster of a few (each with at most 3 others of its kind beside it: a 2×2 block), whose other
    neighbours all lie far from them (:data:`_LONE_LIMIT_GAP`, :data:`_LONE_LIMIT_SIGMAS`).
    (50 dead pixels, 0.02 % of a twin's bright-pore view, dark film at 140-220 of 1023, moved
    its opening from 0.362 to 0.375 and its count by 7; one of them alone, in film at 196 with
    neighbours from 172 — within a quarter of the range, which let it pass — 9 pores: the film's
    lower envelope follows the blocks' darkest levels.) A pore's black floor, a clipped
    highlight, have neighbours at their level or near it: none of them. None when there are
    none."""
    if a.dtype.kind != "u" or a.ndim != 2 or min(a.shape) < 3:
        return None
    h, w = a.shape
    gap = None
    out = None
    for limit in (0, int(np.iinfo(a.dtype).max)):
        at = np.flatnonzero(a == limit)  # (sorted)
        if at.size == 0 or at.size > OUTLIER_SHARE * a.size:
            continue  # (more than a few: the image's own level, clipped; see quality.saturated)
        if gap is None:
            crop = a[max(h // 2 - 128, 0): h // 2 + 128, max(w // 2 - 128, 0): w // 2 + 128]
            gap = max(_LONE_LIMIT_GAP * (q1 - q0), _LONE_LIMIT_SIGMAS * noise_sigma(crop))
        r, c = np.divmod(at, w)
        rr, cc = r[:, None] + _RING[0], c[:, None] + _RING[1]
        inside = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
        nflat = np.clip(rr, 0, h - 1) * w + np.clip(cc, 0, w - 1)
        nb = a.reshape(-1)[nflat].astype(np.float64)
        same = inside & (nb == limit)
        far = ~inside | same | (np.abs(nb - limit) > gap)
        ok = far.all(axis=1) & (same.sum(axis=1) <= 3)
        # ... and so is every one of its kind beside it (the corner of a black floor passes alone)
        pos = np.minimum(np.searchsorted(at, nflat), at.size - 1)
        ok = ok & np.where(same, ok[pos], True).all(axis=1)
        if ok.any():
            out = np.zeros(a.shape, bool) if out is None else out
            out.flat[at[ok]] = True
    return out


def _clip_outliers(a: np.ndarray) -> tuple[np.ndarray, int]:
    """``a`` with its outliers replaced, and how many there were; ``a`` itself when there are
    none. Outliers: the pixels more than :data:`OUTLIER_MARGIN` of the :func:`robust_range`
    beyond it, and lone pixels at the type's limits (:func:`_lone_at_limits`).

    Each outlier of a 2-D image takes the median of the other pixels of its 5×5 window that are
    no outliers (what the pixel would have shown); one without any, and those of an image of
    other dimensions, the nearest end of the range of the rest. Clipping them all to that range
    alone left bright dots where a hot pixel sat in a dark pore: 50 of them in a twin section
    moved its support pores' D by 3 %."""
    got = _grey_stats(a)
    if got is None:
        return a, 0
    q0, q1, mn, mx = got
    lo_ok, hi_ok = q0 - OUTLIER_MARGIN * (q1 - q0), q1 + OUTLIER_MARGIN * (q1 - q0)
    high, low = mx > hi_ok, mn < lo_ok
    bad = _lone_at_limits(a, q0, q1) if a.dtype.kind == "u" and (mn == 0 or mx == np.iinfo(a.dtype).max) else None
    if not (high or low) and bad is None:
        return a, 0
    mn, mx = a.dtype.type(mn), a.dtype.type(mx)
    if a.dtype.kind in "ui":  # (compared in the image's own type: no float copy of it)
        hi_t = a.dtype.type(min(math.floor(hi_ok), int(mx))) if high else None
        lo_t = a.dtype.type(max(math.ceil(lo_ok), int(mn))) if low else None
    else:
        hi_t, lo_t = (a.dtype.type(hi_ok) if high else None), (a.dtype.type(lo_ok) if low else None)
    if high:
        bad = np.greater(a, hi_t) if bad is None else bad | np.greater(a, hi_t)
    if low:
        bad = np.less(a, lo_t) if bad is None else bad | np.less(a, lo_t)
    if a.ndim == 2 and np.count_nonzero(bad) >= 9:
        bad = _specks(bad)
        if not bad.any():
            return a, 0
    rest = a[~bad]
    out = np.clip(a, rest.min() if low else mn, rest.max() if high else mx)
    if a.ndim != 2:
        return out, int(np.count_nonzero(bad))
    h, w = a.shape
    r, c = np.nonzero(bad)
    d = np.arange(-_OUTLIER_REACH, _OUTLIER_REACH + 1)
    rr = np.clip(r[:, None, None] + d[None, :, None], 0, h - 1)
    cc = np.clip(c[:, None, None] + d[None, None, :], 0, w - 1)
    near = a[rr, cc].reshape(r.size, -1).astype(np.float64)
    near[bad[rr, cc].reshape(r.size, -1)] = np.nan  # (a window cut by the image's edge repeats its edge pixels)
    got = ~np.isnan(near).all(axis=1)
    if got.any():
        med = np.nanmedian(near[got], axis=1)
        out[r[got], c[got]] = np.rint(med) if a.dtype.kind in "ui" else med
    return out, int(r.size)


def _specks(bad: np.ndarray) -> np.ndarray:
    """``bad`` without its groups that hold a 3×3 block: structure, not hot or dead pixels (a
    view's pores when they are fewer than :data:`OUTLIER_SHARE` of its pixels: 20 bright discs of
    r 4 px at 1024², 0.09 %, were all replaced by the film round them — 0 pores read)."""
    from scipy import ndimage as ndi

    core = ndi.binary_erosion(bad, np.ones((3, 3), bool))
    if not core.any():
        return bad
    lab, _ = ndi.label(bad, np.ones((3, 3), bool))
    keep = np.unique(lab[core])
    return bad & ~np.isin(lab, keep)


#: a view whose darkest grey (0.1st percentile) lies above this share of its brightest (99.9th)
#: sits on an offset (see :func:`off_pedestal`); the twin's sections (every benchmark family) lie
#: at 0.001-0.11, its transmitted views at ~0.14
PEDESTAL_SHARE = 0.25


def off_pedestal(img: np.ndarray) -> np.ndarray:
    """The view with the offset it sits on taken out (float32), when its darkest grey lies above
    :data:`PEDESTAL_SHARE` of its brightest; else as it is. Where zero is, the image cannot say.

    For views whose levels are read as shares of a level, as if zero were no light: a section's
    (the background's and the support's shares of the film's) and a transmitted view's (a
    through-pore passes the lamp, at least twice the film's light). A camera's dark offset or an
    SEM's brightness set high lifts every grey by the same amount, and those shares with it: a
    16-bit section of 3000-3056 or 30105-31130 was refused (``interface_lost``), one of 1000-2000
    lost its support D, and a transmitted view on such an offset read through-pore fraction 0.0
    for 0.90, unflagged, where their 8-bit stretches measured right. Taken out only as far as
    brings the darkest grey to :data:`PEDESTAL_SHARE` of the brightest, within the levels the
    analysis is known on (a view there is measured as it is: no jump at the share)."""
    a = np.asarray(img)
    if not a.size or a.ndim != 2:
        return img
    sub = a[:: max(1, a.shape[0] // 512), :: max(1, a.shape[1] // 512)]
    lo, hi = (float(v) for v in np.percentile(sub, [0.1, 99.9]))
    if not hi > lo or lo < PEDESTAL_SHARE * hi:
        return img
    return a.astype(np.float32) - np.float32((lo - PEDESTAL_SHARE * hi) / (1 - PEDESTAL_SHARE))


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
