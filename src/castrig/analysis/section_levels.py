"""A section's grey levels and its orientation (part of :mod:`castrig.analysis.section`).

The background may lie above or below (an image with the support on top is flipped first), and
the film may be brighter or darker than the support: found from the image, not assumed. A
coarse support texture whose grains reach the film's level is recognised by its local spread:
the film is then told by being smooth as well as bright. A local standard deviation is computed
on only the rows it is asked for (:class:`_RowsLocalSD`), bit-identical to the whole image's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ._quantiles import median as _median, percentile as _percentile
from .illumination import noise_sigma
from .section_lines import _filled_median


def _film_level(s: np.ndarray) -> np.ndarray:
    """Film level per column: a smooth (quadratic) fit through the column maxima of the
    columns that show film. Columns cut by a through-pore show only the support, whose maximum is
    lower; Otsu on the column maxima separates them when both kinds are present."""
    w = s.shape[1]
    cm = s.max(axis=0).astype(np.float64)
    x = np.linspace(-1, 1, w)
    keep = np.ones(w, bool)
    if np.ptp(cm) > 0:
        t = _otsu(cm)
        hi, lo = cm[cm > t], cm[cm <= t]
        if lo.size and hi.size and hi.mean() - lo.mean() > 0.1 * hi.mean():
            keep = cm > t
    for _ in range(3):
        coef = np.polyfit(x[keep], cm[keep], 2) if keep.sum() > 3 else np.array([0, 0, cm[keep].mean()])
        res = cm - np.polyval(coef, x)
        mad = 1.4826 * float(np.median(np.abs(res[keep]))) + 1e-12
        new = keep & (res > -4 * mad)
        if new.sum() < 4 or np.array_equal(new, keep):
            break
        keep = new
    return np.polyval(coef, x)


def _plain_film_share(sn: np.ndarray, k: int, last_row: np.ndarray | None = None) -> float:
    """The plain film's level as a share of the film level found from the columns' maxima: where
    an SE edge glow lights every free surface of the polymer (its top, the cavities' walls) the
    walls between cavities, bright over their whole height, set that level, and the film's flat
    body lies well under it. The brightest grey level that holds at least 2 % of the pixels above
    the bottom band, when it lies under 0.9 of the found level and clear of the support's bright
    end; else, the same among the image's smooth pixels (below); else 1 (the film is the
    brightest phase: its level is the one found — in every section of the twin's seven families
    over five seeds). ``sn``: the image over that level; ``k``: the bottom band's rows (ending at
    each column's ``last_row``, :func:`_bottom_band`)."""
    above = _above_band(sn.shape, k, last_row)
    sup_hi = float(_percentile(_bottom_band(sn, k, last_row), 90))
    vals = sn[above].ravel()
    if vals.size < 100:
        return 1.0
    level = _brightest_level(vals)
    if level is not None and sup_hi + 0.05 < level < 0.9:
        return level
    # a support whose bright grains outshine the film (their eroded maxima set its level): the
    # film's body is smooth, the grains' matrix rough — the brightest level of the smooth pixels
    # (local s.d. over 7 × 7 under 2.5 × the image's quiet quartile), when it lies between 0.6
    # and 0.9 of the level found and above every smooth level of the bottom band (a smooth
    # support's matrix, 0.6-0.8 of the film in the twin's sections, is no film). Only where the
    # support's bright end comes near the level found (0.75 of it; 0.82-0.89 over such views,
    # 0.50-0.65 in the twin's overnight sections, which need not pay for the local s.d.)
    if sup_hi < 0.75:
        return 1.0
    lsd = _local_sd(sn, 7)
    quiet = lsd < 2.5 * float(_percentile(lsd, 25))
    if quiet[above].sum() < 100:
        return 1.0
    level = _brightest_level(sn[above][quiet[above]])
    band = _bottom_band(sn, k, last_row)[_bottom_band(quiet, k, last_row)]
    band_hi = float(_percentile(band, 99)) if band.size else 0.0
    return level if level is not None and 0.6 <= level < 0.9 and level > band_hi + 0.05 else 1.0


def _bottom_band(a: np.ndarray, k: int, last_row: np.ndarray | None = None) -> np.ndarray:
    """The ``k`` rows of ``a`` (k, w) ending at each column's last row of the image: a
    straightened section's (:func:`_unshear`) hold rows repeated below it, which the band's
    levels would count again; else the image's bottom ``k`` rows."""
    if last_row is None:
        return a[-k:]
    rows = np.clip(np.asarray(last_row, np.intp)[None, :] + np.arange(1 - k, 1)[:, None], 0, a.shape[0] - 1)
    return np.take_along_axis(a, rows, axis=0)


def _above_band(shape: tuple[int, int], k: int, last_row: np.ndarray | None = None) -> slice | np.ndarray:
    """Index of the rows above :func:`_bottom_band` (a slice; a mask per column with ``last_row``)."""
    if last_row is None:
        return np.s_[:-k]
    return np.arange(shape[0])[:, None] < (np.asarray(last_row, np.intp) - (k - 1))[None, :]


def _brightest_level(vals: np.ndarray) -> float | None:
    """The brightest grey level (hundredths, windows of three) holding 2 % of ``vals``, or None."""
    hist = np.bincount(np.clip((vals * 100).astype(np.intp), 0, 150), minlength=151).astype(np.float64)
    win = hist[:-2] + hist[1:-1] + hist[2:]  # win[i]: levels i..i+2 hundredths
    peak = (win >= 0.02 * vals.size) & (win >= np.r_[0.0, win[:-1]]) & (win >= np.r_[win[1:], 0.0])
    idx = np.nonzero(peak)[0]
    return (idx[-1] + 1.5) / 100 if idx.size else None  # (the window's centre)


def _local_sd(a: np.ndarray, size: int) -> np.ndarray:
    """Standard deviation over a size × size window (uniform filters)."""
    if a.dtype != np.float64 or a.shape[0] <= size:
        m = ndi.uniform_filter(a, size)
        return np.sqrt(np.maximum(ndi.uniform_filter(a * a, size) - m * m, 0.0))
    # (== the above: the filters' column pass by _uniform_down, their row pass scipy's own)
    h = a.shape[0]
    m = ndi.uniform_filter1d(_uniform_down(a, size, h), size, axis=1)
    q = ndi.uniform_filter1d(_uniform_down(a, size, h, square=True), size, axis=1)
    m *= m
    q -= m
    np.maximum(q, 0.0, out=q)
    return np.sqrt(q, out=q)


def _uniform_down(a: np.ndarray, size: int, r1: int, square: bool = False) -> np.ndarray:
    """Rows [0, r1) of ``ndi.uniform_filter1d(a, size, axis=0)`` (of ``a * a`` with ``square``;
    float64 ``a``, more than ``size`` rows), bit-identical: scipy's running sum down each line —
    the first window summed in order, then + (incoming - outgoing), each output that sum / size
    — done on whole rows (scipy walks the columns one by one through a buffer, across the fast
    axis). Only the rows down to ``size // 2`` below ``r1`` are read."""
    h = a.shape[0]
    r = size // 2
    lo = r
    hi = size - 1 - r
    x = a[:min(h, r1 + hi)]
    if square:
        x = x * x
    p = np.pad(x, ((lo, hi if r1 + hi >= h else 0), (0, 0)), mode="symmetric")
    out = np.empty((r1,) + a.shape[1:])
    tmp = np.zeros(a.shape[1:])
    for k in range(size):
        tmp += p[k]
    np.divide(tmp, size, out=out[0])
    d = np.empty_like(tmp)
    for i in range(1, r1):
        np.subtract(p[i + size - 1], p[i - 1], out=d)
        tmp += d
        np.divide(tmp, size, out=out[i])
    return out


class _RowsLocalSD:
    """``_local_sd(a, size)`` computed only on the rows that are asked for, bit-identical.

    ``uniform_filter`` runs a running sum down the columns, then along the rows: a row's value
    depends on the rows above it (the running sum starts at the top) and on ``size // 2`` rows
    below it, and on its own row only in the second pass. So the first pass is run on the rows
    from the top to ``size // 2 + 1`` below the last row wanted (the image's bottom border, which
    scipy reflects, is then not seen by them), the second only on the rows wanted."""

    def __init__(self, a: np.ndarray, size: int):
        self.a, self.size = a, size
        self.r0 = self.r1 = 0
        self.sd = a[:0]

    def _rows(self, r0: int, r1: int) -> None:
        if r0 >= self.r0 and r1 <= self.r1 and self.r1 > self.r0:
            return
        if self.r1 > self.r0:
            r0, r1 = min(r0, self.r0), max(r1, self.r1)
        a, size = self.a, self.size
        if a.dtype == np.float64 and a.shape[0] > size:
            m = _uniform_down(a, size, r1)[r0:]
            q = _uniform_down(a, size, r1, square=True)[r0:]
        else:
            top = a[:min(a.shape[0], r1 + size // 2 + 1)]
            m = ndi.uniform_filter1d(top, size, axis=0)[r0:r1]
            q = ndi.uniform_filter1d(top * top, size, axis=0)[r0:r1]
        m = ndi.uniform_filter1d(m, size, axis=1, output=m)
        q = ndi.uniform_filter1d(q, size, axis=1, output=q)
        m *= m
        q -= m
        np.maximum(q, 0.0, out=q)
        self.sd, self.r0, self.r1 = np.sqrt(q, out=q), r0, r1

    def on(self, mask: np.ndarray) -> np.ndarray:
        """The local s.d. at the pixels of ``mask`` (row-major order, as ``sd[mask]``)."""
        rows = np.nonzero(mask.any(axis=1))[0]
        if not rows.size:
            return np.zeros(0)
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        self._rows(r0, r1)
        return self.sd[r0 - self.r0:r1 - self.r0][mask[r0:r1]]

    def full_where(self, mask: np.ndarray) -> np.ndarray:
        """The local s.d. on the rows of ``mask`` (+inf on the other rows)."""
        out = np.full(mask.shape, np.inf)
        rows = np.nonzero(mask.any(axis=1))[0]
        if rows.size:
            r0, r1 = int(rows[0]), int(rows[-1]) + 1
            self._rows(r0, r1)
            out[r0:r1] = self.sd[r0 - self.r0:r1 - self.r0]
        return out


def _otsu(v: np.ndarray) -> float:
    """``threshold_otsu(v)`` (the first value when all are equal), the same bits: its own
    histogram of the values (256 bins over their range, as scikit-image's ``histogram`` asks of
    np.histogram) handed to it, without its flattened copy and equality pass over the values."""
    from skimage.filters import threshold_otsu

    mn, mx = v.min(), v.max()
    if not mn < mx:  # (all equal, or NaN: as before, the first value)
        return float(v.flat[0])
    if v.dtype.kind != "f":  # (integers: scikit-image counts each level)
        return float(threshold_otsu(v))
    try:
        counts, edges = _histogram(v, mn, mx)
    except ValueError:  # a range too narrow for 256 distinct float bins: the values are one level
        return float(mn)
    return float(threshold_otsu(hist=(counts, (edges[:-1] + edges[1:]) / 2.0)))


#: values from which :func:`_histogram` looks for whole numbers first
_WHOLE_MIN_SIZE = 65536


def _histogram(v: np.ndarray, mn: Any, mx: Any) -> tuple[np.ndarray, np.ndarray]:
    """``np.histogram(v, 256, range=(mn, mx))``, the same counts and edges. A float32 image of
    whole grey levels (an 8- or 16-bit micrograph made measurable) is counted level by level
    (``np.bincount``) and only its distinct levels are binned, by np.histogram itself (each
    value's bin depends on the value alone): the whole image's np.histogram, ~10 ns a value,
    was ~25 ms of a 2560-px section's analysis (its orientation and its support's two splits)."""
    if v.dtype == np.float32 and v.size >= _WHOLE_MIN_SIZE and float(mx) - float(mn) <= 1 << 16:
        flat = v.reshape(-1)
        head = flat[:4096]
        if np.array_equal(head, np.trunc(head)):
            lo = int(mn)
            iv = flat.astype(np.int32)
            if lo == float(mn) and np.array_equal(iv, flat):
                iv -= lo
                n = np.bincount(iv)
                levels = (np.arange(n.size) + lo).astype(np.float32)
                seen = n > 0
                counts, edges = np.histogram(levels[seen], 256, range=(mn, mx), weights=n[seen])
                return counts.astype(np.int64), edges
    return np.histogram(v, 256, range=(mn, mx))


def _dark_film_level(s: np.ndarray) -> float | None:
    """The film's level when it is darker than the support (None when it is the brighter).

    Three classes (3-level Otsu on a subsample): dark (background, cavities, the support's
    pores), mid, bright. Below the background (on top), each column meets the film first: its
    class a few pixels under the first non-dark pixel, by majority over the columns, tells
    whether the film is the mid class (darker than the support) or the bright one; the film is
    taken as darker only when the support's matrix (the bottom band) is clearly brighter than
    that first-met level."""
    from skimage.filters import threshold_multiotsu

    h, w = s.shape
    sub = s[::4, ::4]
    if float(np.ptp(sub)) <= 0:
        return None
    try:
        t1, t2 = threshold_multiotsu(sub, classes=3, nbins=128)
    except ValueError:
        return None
    above = s > t1
    has = above.any(axis=0)
    if has.sum() < 0.2 * w:
        return None
    first = np.argmax(above, axis=0)
    # only the columns meeting the film's top surface: within 6 px of the highest first row
    # nearby (101 columns; a tilt of 3° moves it 5 px). Under a cavity a column meets the film
    # first where it is a thin strip (its grey blurred into the support's) or, where the cavity
    # cuts through, the support: in a film mostly cut by cavities those columns outvoted the
    # walls, and a dark film was taken for a bright one (the support its brightest phase)
    f = np.where(has, first, h).astype(np.float64)
    top_near = ndi.minimum_filter1d(f, 101, mode="nearest")
    cols = np.nonzero(has & (f <= top_near + 6))[0]
    v = s[np.minimum(first[cols] + 4, h - 1), cols]
    v = v[v > t1]
    if v.size < 0.2 * w or float(np.median(v)) >= t2:
        return None
    # and the support (the bottom band's matrix, its pixels not dark) clearly brighter than what
    # the columns meet first: where cavities cut through a bright film, most columns meet the
    # support first, which is then as bright as itself
    band = s[-max(2, h // 8):]
    matrix = band[band > t1]
    if matrix.size == 0 or float(_median(matrix)) < 1.2 * float(np.median(v)):
        return None
    # the level: the mid-class grey met first over all the columns (under a cavity, too, the
    # film's strip is met first where it is one)
    cols = np.nonzero(has)[0]
    va = s[np.minimum(first[cols] + 4, h - 1), cols]
    mid = va[(va > t1) & (va < t2)]
    return float(np.median(mid if mid.size else v[v < t2]))


def read_orientation(img: np.ndarray, orientation: str = "auto") -> tuple[np.ndarray, bool]:
    """The section as the analysis reads it: the image, as its positive where it is a negative
    (:func:`_negative`), and whether it is read upside down ("auto": the support on top,
    :func:`_support_on_top`; "down": always; "up": never). The report draws its overlays by it."""
    if orientation != "auto" or not img.size:
        return img, orientation == "down"
    t = _otsu(img[:: max(1, img.shape[0] // 512)].ravel())
    if _negative(img, t):
        img = float(img.max()) + float(img.min()) - img  # read as the positive
        t = _otsu(img[:: max(1, img.shape[0] // 512)].ravel())
    return img, _support_on_top(img, t)


def _negative(img: np.ndarray, t: float) -> bool:
    """True when the background is the bright phase (a negative, or a section in transmitted
    light): one end of the image is all above the image's Otsu threshold, as only a background
    is, and the other end is on both sides of it, as only a support's matrix and pores are.
    (Read as it was, a negative took the bright background for the support: T 120 µm for 20,
    unflagged, in a fuzzing run of the CLI.) An end all dark and the other all bright is left
    as it is: a dark background over a support whose end rows happen to hold no pore."""
    h = img.shape[0]
    k2 = max(2, h // 100)
    rows = (img[:k2], img[-k2:])
    ends = [float(np.mean(r > t)) for r in rows]
    cand = [i for i in (0, 1) if ends[i] > 0.98 and 0.05 < ends[1 - i] < 0.95]
    if not cand:  # (every positive section ends here: its background end is dark)
        return False
    sample = img[:: max(1, h // 512)].ravel()
    lo, hi = sample[sample <= t], sample[sample > t]
    if not (lo.size and hi.size):
        return False
    contrast = float(np.median(hi)) - float(np.median(lo))
    r = rows[cand[0]]
    med = float(np.median(r))
    # a background's grey: its noise only, far below the contrast
    if 1.4826 * float(np.median(np.abs(r - med))) < 0.08 * contrast:
        return True
    # ... or, where the contrast is weak (a resin-embedded section in transmitted light: the
    # resin only 0.3 of full scale above the support) or the noise strong, no more than the
    # image's own white noise there (Immerkær's estimate on those rows) once the light's slow
    # change along the rows is taken out: a support's grain texture, correlated over its grains,
    # adds to the spread and far less to the noise estimate. (Tested on the contrast alone, an
    # embedded section under a ±4 % light gradient failed it — spread 0.09–0.15 of the contrast —
    # and was read with its resin for the support: T +210 %, flagged no_background)
    k3 = max(3, r.shape[0])
    end = img[:k3] if cand[0] == 0 else img[-k3:]
    return _detrended_spread(r) <= NEGATIVE_NOISE_RATIO * noise_sigma(end)


#: :func:`_negative`: a bright end is background when its spread is at most this × the noise
NEGATIVE_NOISE_RATIO = 1.5


def _detrended_spread(rows: np.ndarray, block: int = 32) -> float:
    """Robust s.d. of ``rows`` about their median in each block of ``block`` columns (a slow
    change of the light along the rows taken out)."""
    n = rows.shape[1] // block * block
    if n == 0:
        return 1.4826 * float(np.median(np.abs(rows - np.median(rows))))
    b = rows[:, :n].reshape(rows.shape[0], -1, block)
    return 1.4826 * float(np.median(np.abs(b - np.median(b, axis=(0, 2), keepdims=True))))


def _support_on_top(img: np.ndarray, t: float | None = None) -> bool:
    """True when the bright-textured support is at the top (the image is upside down). ``t``:
    the image's Otsu threshold (on every ``h // 512``-th row), when the caller has it."""
    h = img.shape[0]
    # The background is dark across the whole width at its end of the image; the support's
    # matrix shows at its end however large its pores (they are dark too). So the share of the
    # outermost rows above the image's Otsu threshold tells the ends apart first: comparing the
    # bands' means took a support whose pores filled half its end (a 50 µm support under a
    # 3 µm film, seed 1000 sec_thin case 11) for the background and read the section upside
    # down (T 143 µm)
    k2 = max(2, h // 100)
    if t is None:
        t = _otsu(img[:: max(1, h // 512)].ravel())
    top_bright, bottom_bright = float(np.mean(img[:k2] > t)), float(np.mean(img[-k2:] > t))
    if abs(top_bright - bottom_bright) >= 0.2:
        return top_bright > bottom_bright
    k = max(1, h // 30)  # thin bands: a thin film over a deep support leaves a thin background
    return float(img[:k].mean()) > float(img[-k:].mean())


def _col_stat(s: np.ndarray, sel: np.ndarray, w: int, pct: float = 50) -> np.ndarray | None:
    """Per-column percentile of the selected pixels, filled and smoothed along x."""
    ok = sel.any(axis=0)
    if ok.sum() == 0:
        return None
    full = np.zeros(w)
    full[ok] = _col_percentile(s, sel, ok, pct)
    return _filled_median(full, ok, min(31, w | 1))


def _col_percentile(s: np.ndarray, sel: np.ndarray, ok: np.ndarray, pct: float) -> np.ndarray:
    """``np.nanpercentile(where(sel, s, nan)[:, ok], pct, axis=0)`` (linear method) without the
    per-column Python loop: one row-wise sort of the transposed selection, unselected pixels
    pushed to the end as +inf."""
    # only the rows holding selected pixels (a row selected outside ``ok`` only adds +inf
    # entries past each column's count: the same values)
    rows = np.nonzero(sel.any(axis=1))[0]
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    st = sel[r0:r1, ok].T
    v = np.where(st, s[r0:r1, ok].T, np.inf)
    v.sort(axis=1)
    k = np.count_nonzero(st, axis=1)
    idx = (k - 1) * (pct / 100.0)
    lo = np.floor(idx).astype(np.intp)
    hi = np.minimum(lo + 1, k - 1)
    t = idx - lo
    i = np.arange(v.shape[0])
    a, b = v[i, lo].astype(np.float64), v[i, hi].astype(np.float64)
    d = b - a
    # numpy's lerp: exact at both ends
    return np.where(t >= 0.5, b - d * (1 - t), a + d * t)
