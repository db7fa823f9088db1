"""Cross-section analysis: film thickness profile T(x), the support's pore size, and the rest of
claim 1 (issue 16): polymer penetration into the support, pore communication, support continuity.

Layout assumed: dark background above, the film as a bright band, the textured grey support
below (an image with the support on top is flipped first). Pores cut by the section plane are
dark holes inside the film or notches open to the top; they belong to the film, so the upper
surface is the *envelope* bridging the notches (a grey opening of the top-edge row profile) and
the interface is the envelope bridging holes that sit on it (a grey closing of the bottom-edge
profile). Edges are located to sub-pixel precision at the half level between the two phases
either side, which a symmetric blur does not move.

Claim 1 from the same image (definitions in DESIGN §4):
- penetration: polymer (film-bright) continuing below the interface into the support's surface
  pores. The film's bottom edge per column dips below the interface there; the interface is the
  grey opening of the bottom edge (a flat element a quarter of the width long removes tongues
  narrower than that, a linear slope passes unchanged). Depth = mean over the tongues ("sites") of
  each tongue's median depth over its central half; fraction = columns entered / columns measured.
- communication: the film's dark cavities between the upper envelope and the interface, as the
  column profile of their height; one cavity per bump, a dip below 0.75 of the lower neighbouring
  bump splits two cavities joined by an opening. Neighbours: consecutive cavities whose wall is
  thinner than their mean width. Fraction = joined / neighbouring pairs.
- support continuity: the support's pore phase (with the channels joining pores) labelled as one;
  the area fraction in clusters that reach from within one median pore diameter of the interface
  to the bottom of the image.
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
    #: claim 1: mean depth of the polymer tongues in the support (µm; 0 when none), fraction of
    #: the interface length entered, joined / neighbouring cavity pairs, support pore area
    #: fraction connected through the section (None: could not be measured)
    penetration_depth_um: float | None = None
    penetration_fraction: float | None = None
    pore_communication: float | None = None
    support_continuity: float | None = None
    penetration_sites: int = 0
    cavity_pairs: int = 0
    penetration_rows: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # bottom edge, px
    data_bar_rows: int = 0  # rows of an SEM data bar found at the bottom and left out

    def quality(self) -> dict:
        """``{"flags": [...], "flagged": {metric: [flags]}, "intervals": {metric: [lo, hi]}}``."""
        from .quality import SECTION_FLAG_METRICS

        flagged: dict[str, list[str]] = {}
        for f in self.flags:
            for k in SECTION_FLAG_METRICS.get(f, ()):
                flagged.setdefault(k, []).append(f)
        return {"flags": list(self.flags), "flagged": flagged,
                "intervals": {k: [float(v[0]), float(v[1])] for k, v in self.intervals.items()},
                "data_bar_rows": self.data_bar_rows}

    def to_dict(self) -> dict:
        """Metric-name keyed values (JSON-ready)."""
        return {
            "mean_thickness_um": self.mean_thickness_um,
            "thickness_std_um": self.thickness_std_um,
            "support_pore_diameter_um": self.support_pore_diameter_um,
            "penetration_depth_um": self.penetration_depth_um,
            "penetration_fraction": self.penetration_fraction,
            "pore_communication": self.pore_communication,
            "support_continuity": self.support_continuity,
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
    An SEM data bar at the bottom (:mod:`castrig.analysis.databar`) is left out.
    """
    if pixel_size_um is None or not pixel_size_um > 0:
        raise ValueError("pixel_size_um must be > 0")
    from .databar import strip_data_bar

    image, bar_rows = strip_data_bar(image) if np.ndim(image) == 2 else (image, 0)
    m = _analyse_section(image, pixel_size_um, ball_radius_px=ball_radius_px, orientation=orientation)
    m.data_bar_rows = bar_rows
    return m


def _analyse_section(image: np.ndarray, pixel_size_um: float, *, ball_radius_px: float | None,
                     orientation: str) -> SectionMetrics:
    """:func:`analyse_section` of an image without a data bar."""
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
    # the support matrix level: its bright phase (its pores, dark, may fill much of the bottom band)
    sup_lvl = float(np.percentile(sn[-k:], 90))
    # the background level: the darkest phase of the top band (it may be a thin strip above a
    # thin film with polymer tongues below it)
    bg_lvl = float(np.percentile(sn[:k], 10))
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
    # small pieces above the film's bottom stay (wall tops cut off by an opening between
    # cavities); below it they are bright texture of the support
    if film.any():
        cols_f = film.any(axis=0)
        bottom = float(np.median(h - 1 - np.argmax(film[::-1], axis=0)[cols_f]))
        lowest = ndi.maximum(np.broadcast_to(np.arange(h)[:, None], lab.shape), lab, np.arange(1, n + 1))
        small = np.nonzero((areas >= 20) & (areas < max(20, 0.01 * areas.max())) & (np.asarray(lowest) < bottom))[0] + 1
        if small.size:
            film |= np.isin(lab, small)
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
    # polymer tongues in the support: the bottom edge dips far below the interface there
    tongue = _tongues(y_bot, has, w)
    has_b = has & ~tongue
    if has_b.sum() < max(8, 0.05 * w):  # the interface is seen between tongues and cavities
        return _empty(pixel_size_um)
    # bridge notches, holes and gaps with a rolling ball far larger than a pore but far smaller
    # than the curvature radius of real thickness variations
    yt = np.where(has, y_top, h)
    yb = np.where(has_b, y_bot, 0)
    if tongue.any():
        xb = np.nonzero(has_b)[0]
        yb = np.where(tongue, np.interp(np.arange(w), xb, y_bot[xb]), yb)
    radius = ball_radius_px if ball_radius_px else 10.0 * thick_px
    top_env = -_envelope(-yt, radius, thick_px)
    bot_env = _envelope(yb, radius, thick_px)
    top_env = _bridge(yt, has, top_env, sign=1.0)
    bot_env = _bridge(yb, has_b, bot_env, sign=-1.0)
    t_px = bot_env - top_env
    valid = (t_px > 0) & (top_env < h) & (bot_env > 0)
    if valid.sum() < 0.2 * w:
        return _empty(pixel_size_um)
    prof = np.where(valid, t_px * pixel_size_um, np.nan)
    # a tongue is polymer clearly below the interface found: at least 3 px deep and, like a
    # pore, at least 9 px wide (narrower dips are the blurred feet of necks on the interface)
    tongue &= np.nan_to_num(y_bot - bot_env, nan=0.0) >= 3.0
    tongue = ndi.binary_opening(tongue, structure=np.ones(9, bool))
    # the support's pores are looked for outside the tongues (polymer, brighter than its matrix)
    in_tongue = ndi.binary_dilation(tongue, iterations=3)[None, :] & (rows <= np.nan_to_num(y_bot, nan=0.0)[None, :] + 4)
    sup_d, sup_n, sup_cont, sup_k = _support_pores(s, bot_env, valid, pixel_size_um, exclude=in_tongue)
    pen_depths, pen_frac = _penetration(y_bot, bot_env, tongue, valid)
    pairs, joined = _communication(sn, top_env, bot_env, valid, bg_lvl)
    from .quality import MIN_PX_PER_PORE, claim1_intervals, saturated, section_intervals

    flags = []
    if float(np.nanmean(t_px[valid])) < MIN_PX_PER_PORE:
        flags.append("under_resolved")
    if valid.mean() < 0.9 or has.mean() < 0.9:
        flags.append("interface_lost")
    if saturated(measurable(image)):
        flags.append("saturated")
    if pen_depths.size and float(pen_depths.mean()) < MIN_PX_PER_PORE:
        flags.append("penetration_under_resolved")  # tongues under 9 px deep: partly missed
    iv = section_intervals(prof, pixel_size_um, thick_px)
    iv.update(claim1_intervals(pen_depths * pixel_size_um, pen_frac, int(valid.sum()), joined, sup_cont, sup_k,
                               pixel_size_um))
    return SectionMetrics(
        flags=flags,
        intervals=iv,
        penetration_depth_um=float(pen_depths.mean() * pixel_size_um) if pen_depths.size else 0.0,
        penetration_fraction=pen_frac,
        pore_communication=float(joined.mean()) if joined.size else None,
        support_continuity=sup_cont,
        penetration_sites=int(pen_depths.size),
        cavity_pairs=int(joined.size),
        penetration_rows=np.where(tongue, y_bot, np.nan),
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
    k = max(1, h // 30)  # thin bands: a thin film over a deep support leaves a thin background
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


def _support_pores(s: np.ndarray, interface: np.ndarray, valid: np.ndarray, px: float, exclude: np.ndarray | None = None
                   ) -> tuple[float | None, int, float | None, int]:
    """Mean equivalent-circle diameter of dark pores in the support below the interface, their
    count, the continuity (area fraction of the pore phase in clusters spanning the support)
    and the number of pore clusters."""
    h, w = s.shape
    margin = 3
    top = np.where(valid, np.ceil(interface) + margin, h).astype(int)
    rows = np.arange(h)[:, None]
    region = rows >= top[None, :]
    if exclude is not None:
        region &= ~exclude
    if region.sum() < 100:
        return None, 0, None, 0
    from skimage.filters import threshold_otsu

    from .illumination import fit_level, poly_field

    vals = s[region]
    if float(np.ptp(vals)) <= 0:
        return None, 0, None, 0
    t = float(threshold_otsu(vals))
    # flatten the uneven light over the support: quadratic fit through its matrix (bright) pixels
    sel = region & (s >= t)
    step = max(1, int(math.sqrt(sel.sum() / 20000)))
    rr, cc = np.nonzero(sel[::step, ::step])
    if rr.size < 30:
        return None, 0, None, 0
    coef = fit_level(s[::step, ::step][sel[::step, ::step]], rr * step, cc * step, s.shape, degree=2)
    sn = s / np.maximum(poly_field(coef, s.shape, 2), 1e-9)
    vals = sn[region]
    t = float(threshold_otsu(vals))
    dark_lvl = float(np.median(vals[vals < t])) if (vals < t).any() else float(vals.min())
    matrix = float(np.median(vals[vals >= t]))
    # a texture without pores has no clearly darker phase
    if matrix - dark_lvl < 0.25 * max(abs(matrix), 1e-9):
        return None, 0, None, 0
    pores = region & (sn < (matrix + dark_lvl) / 2)
    pores = cross_dilate(cross_erode(pores))  # == ndi.binary_opening(pores)
    cont, k_cl = _continuity(pores, top, h)
    # channels joining pores (continuous support) would merge them: open by a disc of 0.45 ×
    # the typical inscribed radius (a disc survives an opening by a smaller disc unchanged)
    pores = _open_channels(pores)
    lab, n = ndi.label(pores)
    if n == 0:
        return None, 0, cont, k_cl
    # exclude pores touching the region's border (interface side, image sides, bottom)
    edge = ~region | np.pad(np.zeros((h - 2, w - 2), bool), 1, constant_values=True)
    touching = np.unique(lab[cross_dilate(edge) & pores])
    areas = np.bincount(lab.ravel(), minlength=n + 1).astype(float)
    keep = np.ones(n + 1, bool)
    keep[0] = False
    keep[touching] = False
    keep &= areas >= max(12.0, 0.1 * float(areas[keep].max()) if keep.any() else 12.0)
    if not keep.any():
        return None, 0, cont, k_cl
    d = 2 * np.sqrt(areas[keep] / math.pi) * px
    return float(d.mean()), int(keep.sum()), cont, k_cl


def _open_channels(pores: np.ndarray) -> np.ndarray:
    """Pores joined by channels (a continuous support) separated again: over the box around the
    networks (nothing to do without one), each pore is rebuilt as the part of the mask within
    its inscribed circle (a peak of the Euclidean distance transform) — a disc pore whole, its
    channels cut at its rim. Single pores are left as they are."""
    lab, n = ndi.label(pores)
    if n == 0:
        return pores
    areas = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    objs = ndi.find_objects(lab)
    box = np.array([(o[0].stop - o[0].start) * (o[1].stop - o[1].start) for o in objs], float)
    # networks: pores joined by channels fill little of their bounding box (a disc fills 0.785)
    net = (areas < 0.6 * box) & (areas > 24)
    if not net.any():
        return pores
    # only the box around the networks, with a margin for the distance transforms
    idx = np.nonzero(net)[0]
    r0, r1 = min(objs[i][0].start for i in idx), max(objs[i][0].stop for i in idx)
    c0, c1 = min(objs[i][1].start for i in idx), max(objs[i][1].stop for i in idx)
    m = int(math.ceil(0.5 * max(r1 - r0, c1 - c0) ** 0.5)) + 4
    r0, r1, c0, c1 = max(r0 - m, 0), min(r1 + m, pores.shape[0]), max(c0 - m, 0), min(c1 + m, pores.shape[1])
    sub = pores[r0:r1, c0:c1]
    dist = ndi.distance_transform_edt(sub)
    # the typical pore radius: the distance transform's peaks (pore centres; a channel's ridge
    # is lower) above 0.4 of the highest
    peaks = (dist >= ndi.maximum_filter(dist, size=5)) & (dist >= 0.4 * float(dist.max()))
    r_typ = float(np.median(dist[peaks])) if peaks.any() else float(dist.max())
    if r_typ < 3:
        return pores
    # one peak per pore (a window of 1.2 typical radii; plateaus count once); each pore is
    # the part of the mask within its inscribed circle's radius of its centre — a disc pore
    # whole, the channels that join it cut at its rim
    size = int(2 * round(0.6 * r_typ) + 1)
    pk = (dist >= ndi.maximum_filter(dist, size=size)) & (dist >= 0.65 * r_typ)  # not a channel crossing
    plab, npk = ndi.label(pk, structure=np.ones((3, 3)))
    if npk == 0:
        return pores
    ids = np.arange(1, npk + 1)
    cen = np.array(ndi.center_of_mass(pk, plab, ids)).reshape(-1, 2)
    rad = np.asarray(ndi.maximum(dist, plab, ids), float)
    keep = np.zeros_like(sub)
    for (cy, cx), r in zip(cen, rad):
        y0, y1 = max(int(cy - r - 3), 0), min(int(cy + r + 4), sub.shape[0])
        x0, x1 = max(int(cx - r - 3), 0), min(int(cx + r + 4), sub.shape[1])
        yy, xx = np.ogrid[y0:y1, x0:x1]
        keep[y0:y1, x0:x1] |= (yy - cy) ** 2 + (xx - cx) ** 2 <= (r + 1.5) ** 2  # + the rim pixels
    out = pores.copy()
    out[r0:r1, c0:c1] = sub & keep
    return out


def _continuity(pores: np.ndarray, top: np.ndarray, h: int) -> tuple[float | None, int]:
    """Area fraction of the pore phase in clusters that reach from within one median pore
    diameter of the region's top (the interface) to the image's bottom row; the cluster count."""
    lab, n = ndi.label(pores)
    if n == 0:
        return None, 0
    areas = np.bincount(lab.ravel(), minlength=n + 1)
    big = areas[1:][areas[1:] >= 12]
    d_med = 2 * math.sqrt(float(np.median(big if big.size else areas[1:])) / math.pi)
    rows = np.arange(h)[:, None]
    near_top = pores & (rows - top[None, :] <= d_med)
    reach_top = np.zeros(n + 1, bool)
    reach_top[np.unique(lab[near_top])] = True
    reach_bot = np.zeros(n + 1, bool)
    reach_bot[np.unique(lab[-2:])] = True
    span = reach_top & reach_bot
    span[0] = False
    total = float(areas[1:].sum())
    return (float(areas[span].sum()) / total if total > 0 else None), int(n)


def _tongues(y_bot: np.ndarray, has: np.ndarray, w: int) -> np.ndarray:
    """Columns where the film's bottom edge dips below the interface (polymer entering the
    support): more than max(2 px, 4 × the edge's column noise) below the interface's level (a
    robust straight line), in runs of at least 3 columns."""
    ok = has & np.isfinite(y_bot)
    if ok.sum() < 8:
        return np.zeros(w, bool)
    x = np.arange(w)
    y = np.interp(x, x[ok], y_bot[ok])
    # the interface: a straight line (tilt allowed). Tongues lie below it (each at its own
    # depth, together up to ~60 % of the columns), through-pore necks and cavities on it above
    # (scattered, a few columns each): the interface is the shallowest level that many columns
    # share — the first peak of the detrended edge's histogram (1 px bins, smoothed) at least
    # 0.3 × the highest and 5 % of the columns; the slope refined on the columns within 2 px
    xo, yo = x[ok].astype(np.float64), y[ok]
    slope, level = 0.0, float(np.median(yo))
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
    base = slope * x + level
    d = np.diff(y[ok])
    sig = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2) if d.size > 4 else 0.0
    t = ok & (y - base > max(2.0, 4 * sig))
    return ndi.binary_opening(t, structure=np.ones(3, bool))


def _runs(b: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of the runs of True in a 1-D bool array."""
    d = np.diff(np.concatenate([[0], b.astype(np.int8), [0]]))
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))


def _penetration(y_bot: np.ndarray, interface: np.ndarray, tongue: np.ndarray, valid: np.ndarray
                 ) -> tuple[np.ndarray, float | None]:
    """Per tongue its depth (px; median over the central half of its columns) and the fraction
    of the measured columns entered."""
    n_valid = int(valid.sum())
    if n_valid == 0:
        return np.zeros(0), None
    depths = []
    for a, b in _runs(tongue):
        q = (b - a) // 4
        seg = (y_bot - interface)[a + q: b - q]
        seg = seg[np.isfinite(seg)]
        if seg.size:
            depths.append(float(np.median(seg)))
    return np.array(depths, float), float((tongue & valid).sum() / n_valid)


def _split_bumps(v: np.ndarray, ratio: float = 0.75) -> list[int]:
    """Split points of a 1-D height profile with several bumps: a dip below ``ratio`` × the
    lower of the highest points either side (recursively)."""
    if v.size < 5:
        return []
    lmax = np.maximum.accumulate(v)
    rmax = np.maximum.accumulate(v[::-1])[::-1]
    k = np.arange(1, v.size - 1)
    rel = v[k] / np.maximum(np.minimum(lmax[k - 1], rmax[k + 1]), 1e-9)
    i = int(np.argmin(rel))
    if rel[i] >= ratio:
        return []
    c = int(k[i])
    return _split_bumps(v[:c], ratio) + [c] + [c + 1 + j for j in _split_bumps(v[c + 1:], ratio)]


def _communication(sn: np.ndarray, top: np.ndarray, bottom: np.ndarray, valid: np.ndarray, bg_lvl: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Neighbouring cavity pairs along the section and whether each pair is joined: returns
    (pairs (P, 2) of cavity (start, stop) columns — for inspection — and joined (P,) bool)."""
    h, w = sn.shape
    rows = np.arange(h)[:, None]
    band = (rows > top[None, :] + 3) & (rows < bottom[None, :] - 2) & valid[None, :]
    dark = band & (sn < (1 + bg_lvl) / 2)
    hcol = ndi.uniform_filter1d(dark.sum(axis=0).astype(np.float64), 3, mode="nearest")
    cav = []  # (start, stop, run id)
    for rid, (a, b) in enumerate(_runs(hcol >= 1.0)):
        cuts = [a] + [a + c for c in _split_bumps(hcol[a:b])] + [b]
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            if hi - lo >= 2:
                cav.append((lo, hi, rid, float(hcol[lo:hi].max())))
    if len(cav) < 2:
        return np.zeros((0, 2), int), np.zeros(0, bool)
    peak_min = max(3.0, 0.25 * float(np.median([c[3] for c in cav])))
    cav = [c for c in cav if c[3] >= peak_min]
    pairs, joined = [], []
    for c0, c1 in zip(cav[:-1], cav[1:]):
        same = c0[2] == c1[2]
        if same or c1[0] - c0[1] < 0.5 * ((c0[1] - c0[0]) + (c1[1] - c1[0])):
            pairs.append((c0[0], c1[1]))
            joined.append(same)
    return np.array(pairs, int).reshape(-1, 2), np.array(joined, bool)
