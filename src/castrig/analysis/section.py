"""Cross-section analysis: film thickness profile T(x) and the support's pore size.

Layout assumed: dark background above, the film as a bright band, the textured grey support
below (an image with the support on top is flipped first). Pores cut by the section plane are
dark holes inside the film or notches open to the top; they belong to the film, so the upper
surface is the *envelope* bridging the notches (a grey opening of the top-edge row profile) and
the interface is the envelope bridging holes that sit on it (a grey closing of the bottom-edge
profile). Edges are located to sub-pixel precision at the half level between the two phases
either side, which a symmetric blur does not move.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math

import numpy as np
from scipy import ndimage as ndi

from ._filters import cross_dilate, cross_erode, gaussian
from .illumination import as_float, measurable

__all__ = ["SectionMetrics", "analyse_section"]


@dataclass
class SectionMetrics:
    """Results of one section analysis; ``to_dict`` gives the specification's metric names."""

    mean_thickness_um: float | None
    thickness_std_um: float | None
    support_pore_diameter_um: float | None
    pixel_size_um: float
    support_pore_count: int = 0
    thickness_profile_um: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    top_row: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # envelope, px
    interface_row: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    flags: list = field(default_factory=list)  # quality flags (castrig.analysis.quality)
    intervals: dict = field(default_factory=dict)  # metric → 95 % interval (lo, hi)

    def quality(self) -> dict:
        """``{"flags": [...], "flagged": {metric: [flags]}, "intervals": {metric: [lo, hi]}}``."""
        from .quality import SECTION_FLAG_METRICS

        flagged: dict[str, list[str]] = {}
        for f in self.flags:
            for k in SECTION_FLAG_METRICS.get(f, ()):
                flagged.setdefault(k, []).append(f)
        return {"flags": list(self.flags), "flagged": flagged,
                "intervals": {k: [float(v[0]), float(v[1])] for k, v in self.intervals.items()}}

    def to_dict(self) -> dict:
        """Metric-name keyed values (JSON-ready)."""
        return {
            "mean_thickness_um": self.mean_thickness_um,
            "thickness_std_um": self.thickness_std_um,
            "support_pore_diameter_um": self.support_pore_diameter_um,
        }


def _empty(px: float) -> SectionMetrics:
    return SectionMetrics(None, None, None, px, flags=["interface_lost"])



def _crossing(s: np.ndarray, start: np.ndarray, level: np.ndarray, rising: bool, span: int) -> np.ndarray:
    """Sub-pixel row (pixel centres at k+0.5) where each column first crosses ``level``
    scanning down from ``start - span`` over ``2*span`` rows; NaN where it does not."""
    h, w = s.shape
    ok = np.isfinite(start)
    st = np.where(ok, start, 0).astype(int) - span
    offs = np.arange(2 * span + 1)
    rows = np.clip(st[None, :] + offs[:, None], 0, h - 1)
    v = np.take_along_axis(s, rows, axis=0)
    above = v >= level[None, :] if rising else v <= level[None, :]
    first = np.argmax(above[1:] & ~above[:-1], axis=0) + 1
    has = (above[1:] & ~above[:-1]).any(axis=0)
    cols = np.arange(w)
    v0 = v[first - 1, cols]
    v1 = v[first, cols]
    den = v1 - v0
    frac = np.where(np.abs(den) > 1e-12, (level - v0) / np.where(den == 0, 1, den), 0.5)
    y = rows[first - 1, cols] + np.clip(frac, 0, 1) + 0.5
    return np.where(ok & has, y, np.nan)


def analyse_section(
    image: np.ndarray,
    pixel_size_um: float,
    *,
    ball_radius_px: float | None = None,
    orientation: str = "auto",
) -> SectionMetrics:
    """Thickness profile of a film cross-section and the support's mean pore size.

    ``ball_radius_px``: curvature radius of the envelope that bridges pores cut by the section
    (default 10 film thicknesses: it must exceed the pores and stay below the curvature radius of
    real thickness variations).
    ``orientation``: "auto" (dark background side on top), "up" (as given) or "down" (flip).
    """
    if pixel_size_um is None or not pixel_size_um > 0:
        raise ValueError("pixel_size_um must be > 0")
    img = as_float(measurable(image))
    if orientation == "down" or (orientation == "auto" and _support_on_top(img)):
        img = img[::-1]
    h, w = img.shape
    if h < 8 or w < 8 or float(np.ptp(img)) <= 0:
        return _empty(pixel_size_um)
    s = gaussian(img, 1.0)
    # film level per column: the brightest phase; a closing along x bridges columns without film
    f_col = _film_level(s)
    sn = s / np.maximum(f_col[None, :], 1e-9)
    k = max(2, h // 8)
    sup_lvl = float(np.median(sn[-k:]))
    bg_lvl = float(np.median(sn[:k]))
    if 1 - sup_lvl < 0.1 or 1 - bg_lvl < 0.1:
        return _empty(pixel_size_um)
    t2 = (1 + max(sup_lvl, bg_lvl)) / 2
    film = sn > t2
    lab, n = ndi.label(film)
    if n == 0:
        return _empty(pixel_size_um)
    areas = np.bincount(lab.ravel())[1:]
    big = np.nonzero(areas >= max(20, 0.01 * areas.max()))[0] + 1
    film = np.isin(lab, big)
    has = film.any(axis=0)
    if has.sum() < 0.2 * w:
        return _empty(pixel_size_um)
    top_raw = np.where(has, np.argmax(film, axis=0), np.nan)
    bot_raw = np.where(has, h - 1 - np.argmax(film[::-1], axis=0), np.nan)
    thick_px = float(np.nanmedian(bot_raw - top_raw)) + 1
    rows = np.arange(h)[:, None]
    # background above / support below, per column, then smoothed along x
    above = (rows < top_raw[None, :] - 3) & has[None, :]
    below = (rows > bot_raw[None, :] + 3) & (rows <= bot_raw[None, :] + 3 + max(4, 0.15 * thick_px)) & has[None, :]
    b_col = _col_stat(s, above, w)
    s_col = _col_stat(s, below, w)
    if b_col is None or s_col is None:
        return _empty(pixel_size_um)
    f_lvl = _col_stat(s, film & has[None, :], w, pct=75)
    span = 3
    y_top = _crossing(s, top_raw, (b_col + f_lvl) / 2, rising=True, span=span)
    y_bot = _crossing(s, bot_raw + 1, (f_lvl + s_col) / 2, rising=False, span=span)
    y_top = np.where(np.isfinite(y_top), y_top, top_raw + 0.5)
    y_bot = np.where(np.isfinite(y_bot), y_bot, bot_raw + 0.5)
    # bridge notches, holes and gaps with a rolling ball far larger than a pore but far smaller
    # than the curvature radius of real thickness variations
    yt = np.where(has, y_top, h)
    yb = np.where(has, y_bot, 0)
    radius = ball_radius_px if ball_radius_px else 10.0 * thick_px
    top_env = -_envelope(-yt, radius, thick_px)
    bot_env = _envelope(yb, radius, thick_px)
    top_env = _bridge(yt, has, top_env, sign=1.0)
    bot_env = _bridge(yb, has, bot_env, sign=-1.0)
    t_px = bot_env - top_env
    valid = (t_px > 0) & (top_env < h) & (bot_env > 0)
    if valid.sum() < 0.2 * w:
        return _empty(pixel_size_um)
    prof = np.where(valid, t_px * pixel_size_um, np.nan)
    sup_d, sup_n = _support_pores(s, bot_env, valid, pixel_size_um)
    from .quality import MIN_PX_PER_PORE, saturated, section_intervals

    flags = []
    if float(np.nanmean(t_px[valid])) < MIN_PX_PER_PORE:
        flags.append("under_resolved")
    if valid.mean() < 0.9 or has.mean() < 0.9:
        flags.append("interface_lost")
    if saturated(measurable(image)):
        flags.append("saturated")
    return SectionMetrics(
        flags=flags,
        intervals=section_intervals(prof, pixel_size_um, thick_px),
        mean_thickness_um=float(np.nanmean(prof)),
        thickness_std_um=float(np.nanstd(prof)),
        support_pore_diameter_um=sup_d,
        pixel_size_um=pixel_size_um,
        support_pore_count=sup_n,
        thickness_profile_um=prof,
        top_row=top_env,
        interface_row=bot_env,
    )


def _envelope(e: np.ndarray, radius: float, depth: float) -> np.ndarray:
    """Upper envelope of a 1-D profile e (dips bridged): a grey closing with a parabolic cap of
    curvature radius ``radius`` px, as wide as needed to bridge dips ``depth`` deep.

    The profile is mirrored at the image's sides; a pore cut by a side becomes one twice as wide,
    which the ball still bridges.
    """
    half = int(min(e.size, math.ceil(math.sqrt(2 * radius * max(depth, 1.0))) + 1))
    y = np.arange(-half, half + 1, dtype=np.float64)
    cap = -(y * y) / (2 * radius)
    p = np.pad(e.astype(np.float64), half, mode="symmetric")
    return ndi.grey_closing(p, structure=cap, mode="nearest")[half:-half]


def _bridge(raw: np.ndarray, has: np.ndarray, env: np.ndarray, sign: float) -> np.ndarray:
    """Keep the raw edge where it follows the envelope; interpolate across the columns where it
    dips into a pore (or there is no film), plus two columns of shoulder either side.

    Taking the envelope everywhere would bias the edge by the column-to-column noise (an
    opening/closing picks the extreme of the noise), hence only the dips are replaced.
    """
    dev = sign * (raw - env)
    ok = has & np.isfinite(raw)
    d = np.diff(raw[ok])
    sig = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2) if d.size > 4 else 0.0
    flag = ~ok | (dev > 1.0 + min(3 * sig, 1.5))
    flag = ndi.binary_dilation(flag, iterations=2) | ~ok
    good = ~flag
    if good.sum() < 2:
        return env
    x = np.arange(raw.size)
    return np.where(flag, np.interp(x, x[good], raw[good]), raw)


def _film_level(s: np.ndarray) -> np.ndarray:
    """Film level per column: a smooth (quadratic) fit through the column maxima of the
    columns that show film. Columns cut by a through-pore show only the support, whose maximum is
    lower; Otsu on the column maxima separates them when both kinds are present."""
    from skimage.filters import threshold_otsu

    w = s.shape[1]
    cm = s.max(axis=0).astype(np.float64)
    x = np.linspace(-1, 1, w)
    keep = np.ones(w, bool)
    if np.ptp(cm) > 0:
        t = float(threshold_otsu(cm))
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


def _support_on_top(img: np.ndarray) -> bool:
    """True when the bright-textured support is at the top (the image is upside down)."""
    h = img.shape[0]
    k = max(1, h // 10)
    return float(img[:k].mean()) > float(img[-k:].mean())


def _col_stat(s: np.ndarray, sel: np.ndarray, w: int, pct: float = 50) -> np.ndarray | None:
    """Per-column percentile of the selected pixels, filled and smoothed along x."""
    ok = sel.any(axis=0)
    if ok.sum() == 0:
        return None
    col = _col_percentile(s, sel, ok, pct)
    full = np.interp(np.arange(w), np.nonzero(ok)[0], col)
    return ndi.median_filter(full, size=min(31, w | 1), mode="nearest")


def _col_percentile(s: np.ndarray, sel: np.ndarray, ok: np.ndarray, pct: float) -> np.ndarray:
    """``np.nanpercentile(where(sel, s, nan)[:, ok], pct, axis=0)`` (linear method) without the
    per-column Python loop: one row-wise sort of the transposed selection, unselected pixels
    pushed to the end as +inf."""
    rows = np.nonzero(sel[:, ok].any(axis=1))[0]
    r0, r1 = int(rows[0]), int(rows[-1]) + 1  # only the rows holding selected pixels
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


def _support_pores(s: np.ndarray, interface: np.ndarray, valid: np.ndarray, px: float) -> tuple[float | None, int]:
    """Mean equivalent-circle diameter of dark pores in the support below the interface."""
    h, w = s.shape
    margin = 3
    top = np.where(valid, np.ceil(interface) + margin, h).astype(int)
    rows = np.arange(h)[:, None]
    region = rows >= top[None, :]
    if region.sum() < 100:
        return None, 0
    from skimage.filters import threshold_otsu

    from .illumination import fit_level, poly_field

    vals = s[region]
    if float(np.ptp(vals)) <= 0:
        return None, 0
    t = float(threshold_otsu(vals))
    # flatten the uneven light over the support: quadratic fit through its matrix (bright) pixels
    sel = region & (s >= t)
    step = max(1, int(math.sqrt(sel.sum() / 20000)))
    rr, cc = np.nonzero(sel[::step, ::step])
    if rr.size < 30:
        return None, 0
    coef = fit_level(s[::step, ::step][sel[::step, ::step]], rr * step, cc * step, s.shape, degree=2)
    sn = s / np.maximum(poly_field(coef, s.shape, 2), 1e-9)
    vals = sn[region]
    t = float(threshold_otsu(vals))
    dark_lvl = float(np.median(vals[vals < t])) if (vals < t).any() else float(vals.min())
    matrix = float(np.median(vals[vals >= t]))
    # a texture without pores has no clearly darker phase
    if matrix - dark_lvl < 0.25 * max(abs(matrix), 1e-9):
        return None, 0
    pores = region & (sn < (matrix + dark_lvl) / 2)
    pores = cross_dilate(cross_erode(pores))  # == ndi.binary_opening(pores)
    lab, n = ndi.label(pores)
    if n == 0:
        return None, 0
    # exclude pores touching the region's border (interface side, image sides, bottom)
    edge = ~region | np.pad(np.zeros((h - 2, w - 2), bool), 1, constant_values=True)
    touching = np.unique(lab[cross_dilate(edge) & pores])
    areas = np.bincount(lab.ravel(), minlength=n + 1).astype(float)
    keep = np.ones(n + 1, bool)
    keep[0] = False
    keep[touching] = False
    keep &= areas >= max(12.0, 0.1 * float(areas[keep].max()) if keep.any() else 12.0)
    if not keep.any():
        return None, 0
    d = 2 * np.sqrt(areas[keep] / math.pi) * px
    return float(d.mean()), int(keep.sum())
