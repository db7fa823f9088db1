"""Physical pore edges for appearances whose pores are not a flat dark floor (issue 16).

DESIGN §4: an opening's edge is where the film's flat top ends. In a secondary-electron SEM top
view the steep wall just inside the lip shines (edge effect): each opening is a bright inner rim
around a dark core, and the film is the flat level between the openings. A threshold on grey
level splits such a pore along whichever contour it happens to cross (between rim and core),
which is why a dark-pore recipe underestimates D there by ~35 %. A rim can also be narrower than
the blur: then its brightness ridge sits inside the lip and is barely above the film, and
neither the ridge nor a half-level crossing marks the lip.

Here the film level is the *mode* of the grey levels (the flat top is the most common level,
whatever the pores look like), a kernel density estimate whose width is a share of the view's
grey range, in blocks centred on the view (:func:`film_mode_field`): the same view under another
gain and offset, or rotated, gives the same level. Each opening is found by its dark core (the cavity, whose
electrons mostly do not escape: clearly below the film whatever the rim does, and never joined
to a neighbour's core, since rims and walls lie between). Around each core its pixels (those
nearer to it than to any other core) give an angle-averaged radial profile, and the lip is
located on it by a least-squares fit of what the microscope sees across a lip, blurred by the
image's own point spread (:func:`lip_radii`):

* the flat film F outside radius R; inside it a level c plus a rim of height A decaying inward
  over a length w. Secant law: the wall tilting down at the lip emits more than the flat film,
  so c + A ≥ F. Where the image's pores show no rim at all (another detector, flat contrast),
  A = 0: a plain blurred step;
* deeper inside, optionally, a floor or a through-pore's black neck (a second step, radius R2
  and level c2 ≤ c), tried only where the profile's core lies darker than the uniform cavity's
  fit by more than its noise, and kept only where an F-test says the profile needs it and the
  step lies 2σ or more inside the lip;
* the blur σ is one value for the whole image (one microscope, one focus), found first on the
  larger pores with their floor or neck free (a step held at the fit window's inner edge would
  be smoothed by the fitted blur too): the σ that minimises their total cost (profile
  likelihood over a grid of σ); the curvature of a disc moves its blurred edge inward by
  σ²/2R, in the model;
* the rim's width is held near one share of the lip radius for the whole image (a soft prior,
  30 %; the share from the same larger pores at that σ, the median over those whose rim is
  narrower than :data:`RIM_SPAN` of their lip radius): a cavity's wall has the same shape at
  any size, and on its own a small pore's profile trades a narrower, taller rim against a lip
  further in (w down, A up, R down).

Each profile's fit runs to its own tolerance (a cap of 200 iterations only as a safety net: some take 100–150),
from two starts of the lip (halfway between the ridge and the half-level crossing, then the
ridge where the first fits poorly, unless its lip ended within a bin of the ridge), keeping the
lower cost: from the ridge alone some pores settle in a basin well inside the lip.

The fit uses the whole flank, so the edge found is where the film ends, not where the blurred
rim peaks nor where the grey level crosses some threshold. The opening ratio comes from the
same lips (each pixel weighted by its share inside its pore's lip).

Whether the view shows rims at all: the largest pores' fits vote, and the whole view must agree
(:func:`rim_decision`: a ridge beside the dark regions above the film plateau, beyond its noise,
:func:`rim_overshoot`, on a window, smoothing and bins in units of the dark regions' own size,
:func:`pore_scale`, found on the window over its film level): with a clear ridge (over 10 % of
the pores' depth) a plain majority makes rims, with none (up to 2.5 %) nothing does, and with a
faint ridge between only a vote clearing its threshold by a margin that shrinks as the ridge
grows (:func:`vote_needed`, 0.6 at 2.5 % to 0.5 at 10 %: thin blurred walls between dense pores
look like ridges to the vote, and a real section's vote at its threshold flipped with the pixel
size; a margin jumping at 10 % flipped views near both thresholds). With rims the film level is the brightest well-populated grey level
(:func:`film_mode_field`) and the cores one threshold for the image; without them
(backscatter-like: flat, weak contrast, each pore its own level) each core is the darker third
of its own pore's depth (:func:`_local_cores`: one threshold for the image missed the lighter
pores and joined dense neighbours through thin blurred walls; smoothing and windows follow the
typical core radius continuously, so the same view at another pixel size finds the same cores), and the film the same mode, or
the upper envelope (:func:`film_upper_field`: nothing is brighter than the film) where the mode
is a pore level: the pores' vote clears its margin although the view shows no rim (a dense flat
view), or nothing lies clearly below the mode, or the mode lies nearer the darkest level than the
brightest (:func:`mode_is_pore_level`: thin bright walls without a film plateau, etched porous
silicon or a polymer section; a ratio of levels, the same at any gain or pixel size, where "no
pore 8 pixel-noise σ below the mode" alone flipped with the pixel size: D −42 % at 2×). The upper
envelope's blocks and smoothing are in units of the pores' size (:func:`pore_unit`). A core holding two touching pores is split between its markers
(:func:`_split_cores`). Nothing depends on the raster order (cores numbered by size and level,
ties between markers to the darker): a view rotated by 90° measures the same to rounding.

Whether a view shows SE rims at all (``appearance="auto"``, :func:`has_bright_rims`) asks also
where the ridge lies: inside the lip an SE rim decays into the cavity, lifting the cores' middle
ring above their centres (:func:`core_lift`); a bright defocus fringe of a reflected-light view
lies outside the edge, in the film, over a flat floor. Known limit: on a dense defocused view the
neighbours' fringes and blur can lift the cores' ring too (optical_halo, seed 2000, case 4: 0.10,
taken for SEM; seed 1000: all 14 optical).

Known limit: in the densest rimless views (opening 0.6 at 10 px per pore, walls of 2 px) D and
the opening come out 1–2 % low: the neighbour's blurred step darkens the outer flank of each
profile, and the fitted film level and the step's middle follow it inward.

Known limits (the measurements behind each, and what was tried and dropped:
docs/records/sem-edges.md). On real micrographs rotation is exact, and a gain/offset change or an
illumination ramp is absorbed by taking the view over its black level (:func:`black_field`); a
dense real section with walls thinner than the blur measures D ~5 % apart at twice the pixels and
its count 9–12 % apart at twice or half; a plant section's lip fits are ill-conditioned (rim
height and width trade) and move 1–3 % under a ramp, gain or half the pixels. Rimless views
whose dark regions join through thin walls take their scale from the image's autocorrelation
(:func:`acf_radius`) rather than from the few discs left separate. Foreign rims narrower than the
blur, or too faint to show a ridge, miss D by 6–34 % (the lip sits at the rim's centroid, and where
the edge lies relative to it is the rim's shape, which the blurred flank does not show). Speed
(open): the SEM path takes ~0.2 s CPU (sparse, 20 px pores) to ~0.5 s (dense, 10 px pores) per
1024² pair against issue 16's 0.1 s; about half is the Levenberg–Marquardt fits, whose cost is
the numpy calls per iteration and the special functions: a compiled per-profile fit (sized with
a numba prototype: the same lips to 10⁻¹⁰ px in a third of the fits' CPU) is the way on, not
more trimming.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from scipy.special import erfcx, ndtr

from ._filters import gaussian
from ._quantiles import int_levels, median, percentile, percentile_from_counts
from .illumination import fit_level, noise_sigma, poly_field
from .regions import Pixels, disc_components, fit_field, otsu_split_large, typical_radius
from .workers import pool

__all__ = ["acf_radius", "black_field", "core_lift", "mode_is_pore_level", "pore_scale", "pore_unit", "film_mode_field", "film_upper_field", "has_bright_rims", "rim_reading", "rim_decision", "vote_clears", "rim_overshoot", "vote_needed", "pore_cores", "pore_pixels", "lip_radii"]


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
        m, rr, cc = _blocks(lv, block)
        nl = int(m.max()) + 1
        counts = np.bincount((np.arange(m.shape[0], dtype=np.intp)[:, None] * nl + m).ravel(),
                             minlength=m.shape[0] * nl).reshape(m.shape[0], nl)
        lo, hi = percentile_from_counts(counts.sum(axis=0), [1.0, 99.0])
        span = float(hi - lo)
        if not span > 0:
            return np.full(a0.shape, float(np.median(m)), np.float64)
        bw = max(MODE_BANDWIDTH * span, 1.0)  # integer grey levels: no narrower than their step
        step = bw / 4.0
        present = np.flatnonzero(counts.any(axis=0))
        lo_b = float(present[0]) - 4.0 * bw
        nb = int(math.ceil((float(present[-1]) + 4.0 * bw - lo_b) / step)) + 1
        v = np.arange(nl, dtype=np.float64)
        k = np.clip(((v - lo_b) / step).astype(np.intp), 0, nb - 1)
        fr = (v - lo_b) / step - k
        key = (np.arange(m.shape[0])[:, None] * (nb + 1) + k[None, :]).ravel()
        c = counts.astype(np.float64)
        hist = (np.bincount(key, (c * (1.0 - fr)).ravel(), minlength=m.shape[0] * (nb + 1))
                + np.bincount(key + 1, (c * fr).ravel(), minlength=m.shape[0] * (nb + 1))).reshape(m.shape[0], nb + 1)
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
        m, rr, cc = _blocks(lv, int(round(block * unit)))
        nl = int(m.max()) + 1
        counts = np.bincount((np.arange(m.shape[0], dtype=np.intp)[:, None] * nl + m).ravel(),
                             minlength=m.shape[0] * nl).reshape(m.shape[0], nl)
        qv = percentile_from_counts(counts, q, np.float32).astype(np.float64)
    else:
        m, rr, cc = _blocks(a, int(round(block * unit)))
        qv = np.percentile(m, q, axis=1).astype(np.float64)
    d = poly_field(fit_level(qv, rr, cc, a.shape, degree=degree, upper=False), a.shape, degree)
    lam = float(percentile((film - a) / np.maximum(film - d, 1e-6), 100.0 - deep))
    return (film - lam * (film - d)).astype(np.float32)


def pore_unit(img: np.ndarray, crop: int = 512) -> float:
    """The pores' scale unit of a view (px): an eighth of its dark regions' typical radius
    (:func:`_view_cores`, :func:`pore_scale`; at least ¼ px)."""
    v = _view_cores(np.asarray(img), crop, flat=True)
    return 1.0 if v is None else max(0.25, float(v[3]) / 8.0)


def pore_scale(mask: np.ndarray) -> float:
    """Typical radius (px) of the dark regions ``mask``.

    Where single round regions hold most of the dark area (separate pores), the area-weighted
    median radius of those (as before); where most of it lies in joined regions (a dense view,
    thin blurred walls sunk below the level), 3 × the mean distance of the dark pixels to the
    nearest pixel outside, less 1 px (a disc of radius r gives r/3 + ⅓ px): continuous in the mask,
    and two pores joined through a thin wall keep their own widths. The few regions that pass as
    discs in a joined view are an unrepresentative handful: on etched porous silicon (1 % of the
    dark area in discs) their median was 12–13 px or 6.5 px for the same view under another gain,
    and every window scaled by it followed. Between 25 % and 50 % of the area in discs the two
    blend linearly (no switch): the twin's views hold 50–95 %, the shipped real ones 1–13 %."""

    n_px = np.count_nonzero(mask)
    if n_px == 0:
        return 1.0
    lab, n = ndi.label(mask)
    areas, comps = _components(lab, n)
    wt = min(max((_disc_share(comps) - 0.25) / 0.25, 0.0), 1.0)
    r_disc = typical_radius(lab, areas, comps=comps) if wt > 0 else 0.0
    if wt >= 1.0:
        return r_disc
    e = ndi.distance_transform_edt(mask)
    r_edt = max(1.0, 3.0 * float(e.sum()) / n_px - 1.0)
    return wt * r_disc + (1.0 - wt) * r_edt


def mode_is_pore_level(img: np.ndarray, mode: np.ndarray | None = None, unit: float | None = None) -> bool:
    """Whether the view's film mode (:func:`film_mode_field`) is a pore level rather than the
    film: across the view (median) it lies nearer the darkest level (0.2 % quantile) than the
    brightest (:func:`film_upper_field`). Thin bright walls without a film plateau pile the
    view's values up in the pores (etched porous silicon 0.32–0.38, a polymer section 0.38–0.43
    under the invariance benchmark's transforms); a film seen between openings piles them up at
    its own top (the twin's rimless views 0.9 and more, a nanoporous gold top view 0.75–0.87).
    A ratio of level differences: the same under any gain and offset, and at any pixel size (the
    test it replaces, "no pore 8 pixel-noise σ below the mode", flipped with the pixel size: the
    noise of an interpolated view is ~14× lower). ``mode``, ``unit``: :func:`film_mode_field`
    and :func:`pore_unit` of ``img`` where the caller has them already."""
    a = np.asarray(img, np.float32)
    m = film_mode_field(a) if mode is None else mode
    up = film_upper_field(a, unit=pore_unit(a) if unit is None else unit)
    dark = float(percentile(a, 0.2))
    return bool(median((m - dark) / np.maximum(up - dark, 1e-9)) < 0.5)


def _view_cores(img: np.ndarray, crop: int, flat: bool = False):
    """The central window of ``crop``² pixels at the pores' scale (the unit u: 1 px, or an eighth
    of the dark regions' typical radius where that is larger) and its dark regions (Otsu on the
    window smoothed at u): (window, dark mask, u, typical radius px), None without both classes."""

    h, w = img.shape
    u = 1.0
    for _ in range(2):
        cr = int(round(crop * u))
        # the window's sides of the image's parities, so its margins are even on both sides and
        # the view rotated by 90° has the same window rotated
        ch, cw = min(h, cr - (h - cr) % 2), min(w, cr - (w - cr) % 2)
        r0, c0 = (h - ch) // 2, (w - cw) // 2
        s = np.ascontiguousarray(img[r0: r0 + ch, c0: c0 + cw], dtype=np.float32)
        if min(s.shape) < 32:
            return None
        # (flat: Otsu on the window over its film level, where a ramp of the illumination would
        # move the split, and which regions are dark, by more than the pores' contrast at its
        # ends; not for the rim check: there it found the lighter pores of dense backscatter-like
        # views too, whose far-from-core bins then fell like a ridge, twin bse_jpeg seed 2000
        # case 2: ridge 0 -> 0.053 and rims, D +30 %)
        g = gaussian(s / np.maximum(film_mode_field(s), 1e-6).astype(np.float32) if flat else s, u)
        sub = g.ravel()
        if float(sub.max() - sub.min()) <= 0:
            return None
        core = g < otsu_split_large(sub)[0]  # (exact Otsu, only the values near the split sorted)
        if not core.any() or core.all():
            return None
        r_typ = pore_scale(core)
        if u > 1.0:
            break
        u_new = max(1.0, r_typ / 8.0)
        if u_new <= 1.0:
            break
        u = u_new
    return s, core, u, r_typ


def core_lift(img: np.ndarray, crop: int = 512) -> float:
    """How far the dark regions' middle ring (0.3–0.6 of their typical radius inside their edge)
    lies above their centres (deeper), relative to the film above the centres.

    An SE rim lies inside the lip and decays into the cavity over about a third of its radius:
    the grey falls from it into the core, so the core's middle ring still carries part of it. A
    defocus fringe of a reflected-light view lies outside the edge, in the film; the floor inside
    stays flat (or dips where the fringe took its light from). Median film level from the pixels
    2 units or more outside (as :func:`rim_overshoot`)."""
    v = _view_cores(np.asarray(img), crop)
    if v is None:
        return 0.0
    s, core, u, r_typ = v
    d_in = ndi.distance_transform_edt(core) / max(r_typ, 1.0)
    film = ndi.distance_transform_edt(~core) >= 2.0 * u
    ring = core & (d_in >= 0.3) & (d_in < 0.6)
    centre = core & (d_in >= 0.6)
    if np.count_nonzero(ring) < 32 or np.count_nonzero(centre) < 32 or np.count_nonzero(film) < 64:
        return 0.0
    f, c = float(np.median(s[film])), float(np.mean(s[centre]))
    if not f > c:
        return 0.0
    return (float(np.mean(s[ring])) - c) / (f - c)


def rim_overshoot(img: np.ndarray, crop: int = 512) -> float:
    """How far the pores' edges rise above the film plateau, relative to the pores' depth.

    On a central window of ``crop``² pixels at the pores' scale: the dark regions (Otsu on the
    lightly smoothed window), each pixel's distance to the nearest of them, the image divided
    by a quadratic through the pixels 2 units or more from any (uneven illumination), and the
    mean level per half unit of distance. A secondary-electron top view shows a ridge next to
    the dark core (the bright lip) and the level then falls back to the film plateau; a
    reflected-light view rises from the dark floor to the film and stays there (a blurred step,
    whose walls can only be darker than the film). Returns (ridge − plateau beyond it) /
    (plateau − dark core), 0 when the level never falls back, when nothing is 10 % (and 4 noise
    σ) darker than the film or when the ridge is within its noise.

    The unit is 1 px, or an eighth of the dark regions' typical radius where that is larger (the
    window, smoothing, film margin and bins then grow with it): the same view at a finer pixel
    size gives the same answer. The ridge's noise is its bin's own spread (the pixel noise
    estimate falls with the pixel size of an interpolated view, whose noise is smooth)."""

    v = _view_cores(img, crop)
    if v is None:
        return 0.0
    s, core, u, _ = v
    d = ndi.distance_transform_edt(~core) / u
    film = d >= 2.0
    if np.count_nonzero(film) < 64:
        return 0.0
    fld = fit_field(s, film, 2)
    if fld is None:
        fld = np.full(s.shape, float(np.median(s[film])), np.float32)
    if not float(fld.min()) > 0:
        return 0.0  # no positive film level: not an image of a film with pores
    n = (s / fld).ravel().astype(np.float64)
    nb = 41
    k = np.minimum((d * 2.0).astype(np.intp), nb - 1).ravel()
    cnt = np.bincount(k, minlength=nb)
    m = np.bincount(k, n, minlength=nb) / np.maximum(cnt, 1)
    sd = np.sqrt(np.maximum(np.bincount(k, n * n, minlength=nb) / np.maximum(cnt, 1) - m * m, 0.0))
    # bins with enough pixels for a steady mean (the first is the dark core itself)
    ok = np.flatnonzero(cnt >= max(64, 0.002 * cnt.sum()))
    if ok.size < 4 or ok[0] != 0:
        return 0.0
    prof = m[ok]
    j = 1 + int(np.argmax(prof[1:]))
    if j >= prof.size - 2:
        return 0.0  # the level rises to its end: no ridge
    plateau = float(np.median(prof[j + 1:]))
    depth = plateau - float(prof[0])
    sig = noise_sigma((s / fld)[:: max(1, int(u)), :: max(1, int(u))])
    # (4 noise σ of the window smoothed at u, where the dark regions were found: white noise σ
    # averaged by the Gaussian's 2√π·u² pixels. Against the pixels' σ an SEM view of pixel noise
    # 0.16 of its film, its pores 0.62 of it deep, showed no ridge, though its bins' ridge stood
    # 0.04 above the plateau, 25 of their standard errors)
    if depth < max(0.1 * plateau, 4.0 * sig / (2.0 * math.sqrt(math.pi) * u)):
        return 0.0  # nothing clearly darker than the film (beyond its noise): no pores to judge
    # the ridge must stand above the plateau by more than its bin's spread allows
    if float(prof[j]) - plateau < 4.0 * float(sd[ok[j]]) / math.sqrt(float(cnt[ok[j]])):
        return 0.0
    return max(0.0, (float(prof[j]) - plateau) / depth)


RIM_MIN = 0.025  # whole-view overshoot (share of the pores' depth) from which a view may show rims
RIM_CLEAR = 0.1  # ... and from which it shows them whatever its pores' fits vote
VOTE_MARGIN = 0.6  # between the two: rims where the pores' vote clears its 0.5 by this margin


CORE_LIFT_MIN = 0.06  # an SE rim's decay lifts the cores' middle ring by this share at least
#: whole-view overshoot from which a view that shows no rims by the two tests above still shows a
#: ridge round its pores that ``auto`` cannot place (an SEM's faint rims, or a defocus halo):
#: flagged appearance_ambiguous (castrig.analysis.surface). The twin's plain optical views: 0 to
#: 0.003; benchmarks/foreign_sem.py's SEM views with faint rims (0.15 of the contrast): 0.015-0.017
RIM_AMBIGUOUS = 0.01


def has_bright_rims(img: np.ndarray) -> bool:
    """True when the pores show a bright lip above the film plateau (SE edge effect): a ridge
    next to the dark cores standing at least 2.5 % of the pores' depth above the film beyond it
    (:func:`rim_overshoot`; a blurred dark-floor pore rises monotonically to the film), and
    inside the lip: the grey falls from it into the cores, whose middle ring stands above their
    centres (:func:`core_lift`, 6 % of the depth; the twin's SE views 8–34 %). A bright defocus
    fringe of a reflected-light view is such a ridge too, but outside the edge, in the film: the
    floor inside stays flat (−1 to +4 % on the halo views that passed the first test)."""
    return _rim_tests(img)[1]


def _rim_tests(img: np.ndarray) -> tuple[float, bool]:
    """(the whole-view ridge, :func:`rim_overshoot`; both tests of :func:`has_bright_rims` passed)."""
    a = np.asarray(img)
    ridge = rim_overshoot(a)
    return ridge, ridge > RIM_MIN and core_lift(a) > CORE_LIFT_MIN


def rim_reading(img: np.ndarray) -> tuple[bool, bool]:
    """``(rims, ambiguous)`` of a view whose microscope is not known (``appearance="auto"``).

    Rims: :func:`has_bright_rims`, or a ridge round the pores from :data:`RIM_CLEAR` whatever the
    cores show (an SEM's rims over flat dark cores: benchmarks/foreign_sem.py 0.12-0.14 and an
    independent probe's 0.16-0.38, a real Hitachi SEM section 0.156; the twin's defocus halos
    reach 0.072). Ambiguous: the two tests not both passed, yet a ridge from
    :data:`RIM_AMBIGUOUS` — an SEM's rims over flat cores, faint ones, or a defocus halo: the image
    alone does not tell, and an SEM's view read as optical is far off (D 11-42 % short)."""
    ridge, both = _rim_tests(img)
    return both or ridge > RIM_CLEAR, not both and ridge > RIM_AMBIGUOUS


def rim_decision(overshoot: float) -> bool | None:
    """Whether an SEM view may show rims, from its whole-view ridge ``overshoot``
    (:func:`rim_overshoot`, computed by the caller: it runs on a worker thread): True where it stands
    clearly above the film (:func:`rim_overshoot` over :data:`RIM_CLEAR`: a plain majority of
    the pores' fits then makes rims, :func:`lip_radii`), False where none does (up to
    :data:`RIM_MIN`: no rims whatever they vote), None in between: only a vote clearing its
    threshold by a margin (:func:`vote_clears`) makes rims. A faint whole-view ridge with a split vote is no rim: thin
    bright walls between dense cells (a real section: cells of grey floors in a net of bright
    walls) give such a ridge, and their vote, at its threshold, flipped with the pixel size
    (ridge share 0.18 at the image's pixel size, 0.50 at twice it: D 19 %, opening 26 points)."""
    if overshoot > RIM_CLEAR:
        return True
    return None if overshoot > RIM_MIN else False


def vote_needed(overshoot: float) -> float:
    """The share of the pores' rim vote that makes rims at a whole-view ridge of ``overshoot``
    (:func:`rim_overshoot`): :data:`VOTE_MARGIN` at :data:`RIM_MIN`, falling linearly to a plain
    majority (0.5) at :data:`RIM_CLEAR` and above. Continuous: a requirement jumping from 0.6 to
    0.5 at RIM_CLEAR made two thresholds meet at one corner, and a view near both (the twin's
    SEM case 2, seed 1000: ridge 0.099, vote 0.595–0.685 depending on the film estimate) flipped
    to no rims on any small change of the film level (D −30 %)."""
    t = min(max((RIM_CLEAR - overshoot) / (RIM_CLEAR - RIM_MIN), 0.0), 1.0)
    return 0.5 + (VOTE_MARGIN - 0.5) * t


def vote_clears(ridge_share: float, lift_share: float, need: float = VOTE_MARGIN) -> bool:
    """The pores' rim vote counts only where both its shares clear 0.5 by a margin (``need``,
    :func:`vote_needed`): near its threshold it is noise and would flip the measurement with the
    pixel size."""
    return ridge_share >= need and lift_share >= need


# --------------------------------------------------------------------------------------------
# Lip radii from a fit of the blurred lip across each pore's radial profile
# --------------------------------------------------------------------------------------------

PROFILE_BIN_PX = 0.5  # at least; an eighth of the typical core radius when that is larger
_SQRT1_2 = 1.0 / math.sqrt(2.0)


RIMLESS_SHARE = 0.25  # a rimless pore's cavity in the lower, its film in the upper quarter of its own profile's range
LOCAL_CORE_SHARE = 0.35  # a rimless pore's core: the darker third of its own depth (:func:`_local_cores`)


def _local_cores(g: np.ndarray, r_typ: float, sigma_g: float, deepest: float) -> tuple[np.ndarray, int, np.ndarray]:
    """Cores by each pore's own depth: the pixels of the smoothed image ``g`` in the darker third
    between the darkest level within about a pore radius and the brightest within about a pitch
    (the pore's floor and the film or wall around it), where those differ by more than 8 noise σ
    of ``g`` (``sigma_g``), a tenth of the brighter and 30 % of the ``deepest`` pores' depth (a
    dip of the noise or of the film's texture is no pore). A third, not half: the half level of
    a blurred step is the lip itself, and the lip is sought outside the core (:func:`lip_radii`).

    Where the pores' levels differ from pore to pore (backscatter-like contrast) one threshold for
    the image misses the lighter pores and, in a dense view, joins the darker ones through thin
    blurred walls; a wall is the local bright level, so it never lies in the darker half of
    either pore beside it. Windows in units of the typical core radius (the same pores at a finer
    pixel size give the same cores). Returns labels, count and areas (index 0 the background)."""
    from ._filters import box_max, box_min

    def box(f, r, r_min):
        # a square of half-width r px (not rounded): the filters at the two whole widths about
        # r, weighted linearly, so the levels follow r_typ continuously (rounded, r_typ 14.49
        # and 14.51 gave windows of 14 and 15 px and a real view 298 or 278 cores)
        r = max(float(r), r_min)
        k = int(math.floor(r))
        t = r - k
        out = f(g, k)
        return out if t < 1e-6 else (1.0 - t) * out + t * f(g, k + 1)

    lo = box(box_min, r_typ, 1.0)
    hi = box(box_max, 1.5 * r_typ + 1.0, 2.0)
    depth = hi - lo
    core = (g < lo + LOCAL_CORE_SHARE * depth) & (depth > np.maximum(max(8.0 * sigma_g, 0.3 * deepest), 0.1 * hi))
    lab, n = ndi.label(core, output=np.int32)
    return lab, int(n), np.bincount(lab.ravel(), minlength=n + 1)


def _split_cores(lab: np.ndarray, n: int, norm: np.ndarray, r_typ: float) -> tuple[np.ndarray, int, np.ndarray]:
    """Cores holding several pores split between them: one marker per pore (a minimum of the
    image smoothed at the pore scale, 0.4 r_typ, over ±0.6 r_typ; touching minima one marker),
    and a core holding several markers shared out to the nearest (a perpendicular bisector
    between two pores). Two pores that overlap, or whose wall the blur has sunk below the core
    level, otherwise give one core and one profile with two centres (one pore twice too large in
    D, one missing). Returns labels, count and areas (index 0 the background)."""
    from ._filters import box_min

    sg = max(1.0, 0.4 * r_typ)
    gs = gaussian(norm, sg, truncate=3.0)
    pk = (gs == box_min(gs, max(2, int(round(0.6 * r_typ))))) & (lab > 0)
    plab, npk = ndi.label(pk, structure=np.ones((3, 3)))
    if npk == 0:
        return lab, n, np.bincount(lab.ravel(), minlength=n + 1)
    pr, pc = np.nonzero(plab)
    pid = plab[pr, pc] - 1
    cnt = np.bincount(pid, minlength=npk)
    my = np.bincount(pid, pr, minlength=npk) / cnt
    mx = np.bincount(pid, pc, minlength=npk) / cnt
    comp = lab[np.rint(my).astype(np.intp), np.rint(mx).astype(np.intp)]
    ok = comp > 0
    my, mx, comp = my[ok], mx[ok], comp[ok]
    per = np.bincount(comp, minlength=n + 1)
    multi = per >= 2
    if not multi[1:].any():
        return lab, n, np.bincount(lab.ravel(), minlength=n + 1)
    # markers ordered by core, and within a core by their level (the darker first: a pixel as
    # near to two markers goes to the darker; by raster order, as before, a rotated view split
    # its cores otherwise); each pixel of a shared core tries its core's markers in turn
    lvl = gs[np.rint(my).astype(np.intp), np.rint(mx).astype(np.intp)]
    o = np.lexsort((lvl, comp))
    my, mx, comp = my[o], mx[o], comp[o]
    first = np.cumsum(per) - per
    rr, cc = np.nonzero(multi[lab])
    cl = lab[rr, cc]
    best = np.full(rr.size, np.inf)
    arg = np.zeros(rr.size, np.intp)
    for k in range(int(per.max())):
        has = per[cl] > k
        m = first[cl[has]] + k
        d = (rr[has] - my[m]) ** 2 + (cc[has] - mx[m]) ** 2
        b = d < best[has]
        hb = np.flatnonzero(has)[b]
        best[hb], arg[hb] = d[b], m[b]
    # new labels: each marker of a shared core its own; the others keep theirs
    new = lab.copy()
    new[rr, cc] = n + 1 + arg
    keep = np.bincount(new.ravel(), minlength=n + 1 + comp.size) > 0
    keep[0] = True
    remap = (np.cumsum(keep) - 1).astype(np.int32)
    new = remap[new]
    n2 = int(keep.sum() - 1)
    return new, n2, np.bincount(new.ravel(), minlength=n2 + 1)


def _components(lab: np.ndarray, n: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The areas of the regions 0..n of ``lab`` (0's left at 0) and their
    :func:`~castrig.analysis.regions.disc_components`, once for both the disc share and the
    typical radius: bounding boxes from the regions' own pixels (the dark regions are a fraction
    of the view: ~2× cheaper than find_objects over the whole label image)."""
    px = Pixels.of(lab > 0)
    lp = lab.ravel()[px.flat]
    areas = np.bincount(lp, minlength=n + 1)
    return areas, disc_components(lab, areas, px, lp)


def _disc_share(comps: tuple[np.ndarray, np.ndarray]) -> float:
    """Share of the labelled area in components that look like a single disc (as
    :func:`~castrig.analysis.regions.typical_radius` selects them), from their
    :func:`~castrig.analysis.regions.disc_components`."""

    a, disc = comps
    tot = float(a.sum())
    return float(a[disc].sum()) / tot if tot > 0 else 0.0


DISC_SHARE_LO = 0.025  # under this share of the dark area in single discs their median is no sample (:func:`pore_cores`)
ACF_DISC = 0.808  # a disc's covariogram falls to half at 0.808 of its radius


def acf_radius(norm: np.ndarray) -> float:
    """The pores' radius (px) from the image's own autocorrelation: the lag at which the
    radially averaged autocovariance of ``norm`` falls to half its value at zero lag (the white
    noise's spike there left out: zero lag extrapolated from lags 1 and 2), over
    :data:`ACF_DISC` (where a disc's covariogram is at half). It depends on no threshold, mask or
    smoothing: a rescaled view gives it rescaled, a rotated one the same (a radial average), and
    a gain or a film-normalised ramp only scale the covariance. Rounded to 6 significant digits
    (the FFT of a rotated view differs in the last bits)."""
    x = np.asarray(norm, np.float64)
    x = x - x.mean()
    h, w = x.shape
    L = int(max(8, min(h, w) // 4))
    from scipy import fft as sfft

    sh = (sfft.next_fast_len(h + L), sfft.next_fast_len(w + L))
    c = sfft.irfft2(np.abs(sfft.rfft2(x, s=sh)) ** 2, s=sh)
    n = sfft.irfft2(np.abs(sfft.rfft2(np.ones_like(x), s=sh)) ** 2, s=sh)
    idx = np.r_[0:L, -L:0]
    c = c[np.ix_(idx, idx)] / np.maximum(n[np.ix_(idx, idx)], 1.0)
    yy, xx = np.meshgrid(idx, idx, indexing="ij")
    rb = np.rint(np.hypot(yy, xx)).astype(np.intp)
    prof = np.bincount(rb.ravel(), c.ravel()) / np.maximum(np.bincount(rb.ravel()), 1)
    c0 = 2.0 * prof[1] - prof[2]
    if not c0 > 0:
        return 2.0
    p = prof[:L] / c0
    below = np.flatnonzero(p[1:] < 0.5)
    if below.size == 0:
        return float(L) / ACF_DISC
    k = int(below[0]) + 1
    lag = (k - 1) + (p[k - 1] - 0.5) / max(p[k - 1] - p[k], 1e-12)
    return float(f"{max(lag, 0.5) / ACF_DISC:.4g}")


def pore_cores(norm: np.ndarray, sigma: float, local: bool = False) -> tuple[np.ndarray, int]:
    """Labels (int32, 1..n) of the pores' dark cores: the image (film level = 1), smoothed,
    below halfway between the film and the darkest cores (the 0.2 % quantile). (0 labels when
    nothing is clearly darker than the film: less than 8 noise σ or 10 % of it.) ``local``
    (views without rims): each pore by its own depth instead (:func:`_local_cores`), and a core
    holding several pores split between them (:func:`_split_cores`).

    Smoothing at 1 px, or at a tenth of the typical core radius when that is larger (``local``:
    at a tenth of it whatever it is, down to 0.3 px, iterated to 2 %; the typical radius from
    the image's autocorrelation where few dark regions are single discs, :func:`acf_radius`), and cores
    under 5 % of the typical core's area dropped as specks: the same pores imaged at a finer
    pixel size give the same cores (noise that the smoothing no longer evens out would
    otherwise split them or add specks)."""

    sg = 1.0
    passes = 4 if local else 2
    r_acf = None
    for it in range(passes):
        g = gaussian(norm, sg)
        dark = float(percentile(g, 0.2))
        # (8 noise σ of g, not of the pixels: white noise σ averaged by the Gaussian's 2√π·sg²
        # pixels, as :func:`_local_cores` has it. Against the pixels' σ an SEM view of pixel
        # noise 0.16 of its film, its pores 0.7 of it deep, found no pore at all)
        if 1.0 - dark < max(8.0 * sigma / (2.0 * math.sqrt(math.pi) * sg), 0.1):
            return np.zeros(norm.shape, np.int32), 0
        lab, n = ndi.label(g < dark + 0.5 * (1.0 - dark), output=np.int32)
        if n == 0:
            return lab, 0
        areas, comps = _components(lab, n)
        r_typ = typical_radius(lab, areas, comps=comps)
        if local:
            # the single discs' median is a fair sample of the pores only where they hold a fair
            # share of the dark area; in a view whose pores join through thin walls at the half
            # level (etched porous silicon: 0.5-1.4 % in ~35 discs) the few left separate are a
            # biased handful, and which of them pass as discs follows the smoothing they set: a
            # loop with several fixed points (half the pixels: 13.5, 9.4, 8.8 px where the scale
            # says 3.3; the rescaled views' cores 5.8 % and 25 % off). There the radius comes from
            # the image's autocorrelation (:func:`acf_radius`), which no threshold or smoothing
            # made; blended linearly between 2.5 % and 5 % of the area in discs (the shipped
            # real sections and gold top view hold 8-12 %, the twin's views 50-95 %)
            wt = min(max((_disc_share(comps) - DISC_SHARE_LO) / DISC_SHARE_LO, 0.0), 1.0)
            if wt < 1.0:
                if r_acf is None:
                    r_acf = acf_radius(norm)
                r_typ = wt * r_typ + (1.0 - wt) * r_acf
        # without rims each core is found by its own pore's depth on g: smoothed at a tenth of
        # the typical core radius whatever that is (down to 0.3 px), so that the same pores at
        # half the pixels are smoothed alike (at 1 px or more a real section's cores took a
        # larger share of each pore there: opening −2.2 to −2.8 points at half the pixels);
        # up to four passes, to within 2 % (two passes left the scale 5 % apart at twice the
        # pixels, where the first pass at 1 px smoothed half as much)
        nxt = max(0.1 * r_typ, 0.3) if local else (0.1 * r_typ if 0.1 * r_typ > 1.25 * sg else sg)
        if it == passes - 1 or abs(nxt - sg) <= (0.02 if local else 1e-3) * sg:
            break
        sg = nxt
    if local:
        # the noise of g: white noise σ averaged by the Gaussian's 2√π·sg² pixels
        lab, n, areas = _local_cores(g, r_typ, sigma / (2.0 * math.sqrt(math.pi) * sg), 1.0 - dark)
        if n == 0:
            return lab, 0
        # (with rims a bright rim parts any two cores; without, two touching pores share one)
        lab, n, areas = _split_cores(lab, n, norm, r_typ)
    small = areas < 0.05 * math.pi * r_typ ** 2
    small[0] = False
    if small.any():
        keep = np.cumsum(~small) - 1
        keep[small] = 0
        keep[0] = 0
        lab = keep.astype(np.int32)[lab]
        n = int((~small[1:]).sum())
    return lab, int(n)


def pore_pixels(lab: np.ndarray, centres: np.ndarray, r_core: np.ndarray, ring: int):
    """The pixels of each pore: (rows, cols, owner 0..n-1, ρ from its centre).

    A pixel belongs to the core whose edge is nearest, the edge taken as the core's equivalent
    circle (ρ − r_core, within ``ring``): two pores share the wall between them at its middle,
    whatever their sizes, and a core's own pixels are its own. Each pore's candidates are the
    pixel offsets of its disc, and one scatter-minimum per pixel of (distance, pore) picks the
    owner: a few passes over the pores' pixels instead of a feature transform of the image (the
    pores in two halves on two threads, the minima merged).

    The pores are taken in groups of equal disc size, each group one (pores, offsets) array: no
    per-candidate index arrays (repeat, gathers), and the image-border checks only on groups that
    reach the border. Each pore's pixels come out in the order of its offsets, as before (the
    profiles' sums per bin add in the same order); the pores in the order of their groups."""

    flat, own, rho, _ = _pore_pixels_flat(lab, centres, r_core, ring)
    rows, cols = np.divmod(flat, lab.shape[1])
    return rows, cols, own, rho


def _pore_pixels_flat(lab: np.ndarray, centres: np.ndarray, r_core: np.ndarray, ring: int):
    """:func:`pore_pixels` as (flat index, owner 0..n-1, ρ, whether the pixel lies in its owner's
    core): the SEM path indexes by flat index only (rows and columns by an integer division, and
    back, cost ~10 ms per 1024² view), and the core flag is known from the owner's choice. All
    the pores at once (:func:`_pore_pixel_batches` with no limit)."""
    (out,) = _pore_pixel_batches(lab, centres, r_core, ring, budget=None)
    return out[:4]


PIXEL_BATCH = 1 << 22  # candidate pixels per batch of pores (:func:`_pore_pixel_batches`; ~45 bytes each while chosen)


def _pore_pixel_batches(lab: np.ndarray, centres: np.ndarray, r_core: np.ndarray, ring: int,
                        budget: int | None = PIXEL_BATCH):
    """:func:`_pore_pixels_flat` in batches of pores, each batch's (flat index, owner 0..n-1, ρ,
    in its owner's core): every pore in exactly one batch, its pixels in the order of its offsets,
    as all at once. Where the pores' candidate pixels (their discs) number no more than
    ``budget`` (None: any number), one batch: all the pores, exactly :func:`_pore_pixels_flat`.
    Else the pores in bands of rows of their centres, each band's candidates about ``budget``:
    a band's owners are chosen among its pores and those of the rows next to it that reach its
    pixels (2 discs' reach either way), over a minimum of those rows only. Memory then stays that
    of one band whatever the image's size (a 64 Mpx dense SEM view: ~120 M candidate pixels of
    ~45 bytes each at once, 5.9 GB); the choice of each pixel's owner is the same."""
    h, w = lab.shape
    n = centres.shape[0]
    reach = r_core + ring
    kmax = int(math.ceil(float(reach.max()))) + 1
    oy, ox = np.mgrid[-kmax: kmax + 1, -kmax: kmax + 1]
    o_d = np.hypot(oy, ox).ravel()
    order = np.argsort(o_d, kind="stable")
    oy, ox, o_d = oy.ravel()[order].astype(np.int32), ox.ravel()[order].astype(np.int32), o_d[order]
    of = oy.astype(np.int64) * w + ox  # the offsets as flat-index steps
    cr, cc0 = np.rint(centres[:, 0]).astype(np.int32), np.rint(centres[:, 1]).astype(np.int32)
    # (cr + oy) − cy as oy + (cr − cy): cr − cy is exact (cr is cy rounded), so both round once
    # to the same value
    fy, fx = cr - centres[:, 0], cc0 - centres[:, 1]
    # each pore takes the offsets of its disc (offsets sorted by length: a prefix of them) about
    # its centre's pixel, with its centre's own fraction as margin (|o| ≤ |o + f| + |f|; was
    # √½ px for all: ~7 % more candidates, all of them beyond reach)
    k = np.searchsorted(o_d, reach + np.hypot(fy, fx) + 1e-6, side="right")
    bits = max(int(n).bit_length(), 1)
    lf = lab.ravel()

    def choose(sub: np.ndarray, emit: np.ndarray | None, r0: int, r1: int):
        """The pixels of pores ``sub`` (whose candidates lie in rows r0..r1−1) that are theirs,
        of those in ``emit`` (a mask over ``sub``'s pores; None: all)."""
        base, size = r0 * w, (r1 - r0) * w
        by_k = sub[np.argsort(k[sub], kind="stable")]
        ks, first = np.unique(k[by_k], return_index=True)
        ends = np.append(first[1:], by_k.size)
        groups = [(int(kk), by_k[a: b]) for kk, a, b in zip(ks, first, ends)]

        def candidates(grs):
            """(flat index, pore, ρ, code, per-pixel minimum of code) of the candidate pixels of
            the pore groups ``grs``: inside the image and within reach."""
            # (each group's selection written straight into one buffer: no concatenated copies)
            cap = sum(kk * g.size for kk, g in grs)
            flat, pore, rho_o = np.empty(cap, np.int64), np.empty(cap, np.int32), np.empty(cap)
            m = 0
            for kk, g in grs:
                # ρ as the square root of the squares, in place (np.hypot is ~4× dearer; its last bit
                # differs on a sixth of the pixels, which moved a real top view's opening by 0.0002)
                rho = oy[None, :kk] + fy[g, None]
                rho *= rho
                dx = ox[None, :kk] + fx[g, None]
                dx *= dx
                rho += dx
                np.sqrt(rho, out=rho)
                dg = rho - r_core[g, None]
                sel = dg <= ring
                gr, gc = cr[g], cc0[g]
                if int(gr.min()) - kmax < 0 or int(gr.max()) + kmax >= h or int(gc.min()) - kmax < 0 or int(gc.max()) + kmax >= w:
                    # the unsigned view of a row or column makes a negative one large
                    sel &= (gr[:, None] + oy[None, :kk]).view(np.uint32) < h
                    sel &= (gc[:, None] + ox[None, :kk]).view(np.uint32) < w
                sf = sel.ravel()
                per = np.count_nonzero(sel, axis=1)
                e = m + int(per.sum())
                np.compress(sf, ((gr.astype(np.int64) * w + gc)[:, None] + of[None, :kk]).ravel(), out=flat[m:e])
                pore[m:e] = np.repeat(g, per)  # (row-major selection: each pore's count in a row)
                np.compress(sf, rho.ravel(), out=rho_o[m:e])
                m = e
            flat, pore, rho = flat[:m], pore[:m], rho_o[:m]
            d = rho - r_core[pore]  # (the same operands as dg: the same values)
            # a core pixel is its own core's, whatever the circles say
            own_core = lf[flat] == pore + 1
            d[own_core] = -1e3
            d += 2e3
            d *= 65536.0
            code = d.astype(np.int64)  # (d > 0: truncation is the floor)
            code <<= bits
            code |= pore
            best = np.full(size, np.iinfo(np.int64).max, np.int64)
            np.minimum.at(best, flat - base if base else flat, code)
            return flat, pore, rho, code, best, own_core

        # two halves of the candidates (by count) for the two threads
        tot = np.cumsum([kk * g.size for kk, g in groups])
        cut = int(np.searchsorted(tot, 0.5 * tot[-1])) + 1 if groups else 0
        job = pool().submit(candidates, groups[cut:])
        parts = [candidates(groups[:cut]), job.result()]
        best = np.minimum(parts[0][4], parts[1][4], out=parts[0][4])
        # each part's winners written straight into the outputs (no concatenated copies)
        mines = [best[pt[0] - base if base else pt[0]] == pt[3] for pt in parts]
        if emit is not None:
            keep = np.zeros(n, bool)
            keep[sub[emit]] = True
            for mine, pt in zip(mines, parts):
                mine &= keep[pt[1]]
        tot = sum(int(np.count_nonzero(mine)) for mine in mines)
        out = (np.empty(tot, np.int64), np.empty(tot, np.int32), np.empty(tot), np.empty(tot, bool))
        m = 0
        for (flat, pore, rho, _, _, own_core), mine in zip(parts, mines):
            e = m + int(np.count_nonzero(mine))
            for src, dst in zip((flat, pore, rho, own_core), out):
                np.compress(mine, src, out=dst[m:e])
            m = e
        return out[0], out[1].astype(np.intp), out[2], out[3]

    total = int(k.sum())
    if budget is None or total <= budget:
        yield choose(np.arange(n), None, 0, h) + (True,)
        return
    # bands of rows of the pores' centre pixels, each about ``budget`` candidates
    by_row = np.argsort(cr, kind="stable")
    cum = np.cumsum(k[by_row])
    nband = -(-total // budget)
    cuts = cr[by_row][np.searchsorted(cum, np.arange(1, nband) * (total / nband))]
    edges_r = np.unique(np.concatenate([[0], cuts, [h]]))
    rows_sorted = cr[by_row]
    for r0, r1 in zip(edges_r[:-1], edges_r[1:]):
        # the band's pores, and those whose discs reach the rows the band's discs reach
        a, b = np.searchsorted(rows_sorted, [r0 - 2 * kmax, r1 + 2 * kmax])
        sub = np.sort(by_row[a:b])
        emit = (cr[sub] >= r0) & (cr[sub] < r1)
        if not emit.any():
            continue
        yield choose(sub, emit, max(int(r0) - 3 * kmax, 0), min(int(r1) + 3 * kmax, h)) + (False,)


NP = 7  # R, c, A, w, F, R2, c2
ITERS = 200  # a safety cap: each profile's fit stops at its own tolerance (:func:`_fit_lips`; some converge after 100–150)
W_PRIOR = 0.3  # relative spread of a pore's rim width about the image's share of its lip radius
RETRY_COST = 1.5  # the second start of the lip on pores fitting worse than this × the median ...
RETRY_ALL = 400  # ... or on all when there are no more than these
SIGMA_PORES = 200  # pores in the blur's profile likelihood
SPLIT = 2000  # profiles fitted in two halves on two threads from this many on
FIT_CHUNK = 16384  # profiles fitted at once at most (a large view's pores chunk by chunk: the same fits)
RIM_SPAN = 0.9  # a blur-stage fit whose rim width reaches this share of its lip radius has no rim of its own (the cavity's slope)
PRIOR_MIN_PORES = 20  # fewer pores in the blur stage: no common rim width (each pore on its own)


def _lip_value(rho: np.ndarray, p: np.ndarray, s, rim: bool, S2=None):
    """The blurred lip's values (:func:`_lip_model`) and the terms its Jacobian shares with
    them. ``S2`` (optional): the inner step's blurred profile, where it is known already."""
    R, c, A, w, F, R2, c2 = (p[:, k: k + 1] for k in range(NP))
    Rc = np.maximum(R, 1.0)
    Re = R - s * s / (2 * Rc)
    z = (Re - rho) / s
    S = ndtr(z)
    phi = np.exp(-0.5 * z * z)
    phi *= 1.0 / math.sqrt(2 * math.pi)
    Q = None
    if rim:
        # Q = exp(-t/w + s²/2w²)·Φ(b) = ½·erfcx(-b/√2)·exp(-z²/2) (t = Re - ρ, b = z - σ/w):
        # finite while b² < 1400, i.e. anywhere within 26 σ inside the lip (the window is far
        # shallower)
        b = np.minimum(z - s / w, 26.0)
        b *= -_SQRT1_2
        Q = erfcx(b)
        Q *= phi
        Q *= 0.5 * math.sqrt(2 * math.pi)
    z2 = None
    if S2 is None:
        R2e = R2 - s * s / (2 * np.maximum(R2, 1.0))
        z2 = (R2e - rho) / s
        S2 = ndtr(z2)
    # m = F + (c - F)·S + A·Q + (c2 - c)·S2
    m = (c - F) * S
    m += F
    if rim:
        m += A * Q
    m += (c2 - c) * S2
    return m, [rho, p, s, Rc, Re, z, S, phi, Q, z2, S2]


def _lip_jac(t: list, cols: tuple, rows=None) -> np.ndarray:
    """The Jacobian (n, len(cols), m) of :func:`_lip_value` from its shared terms ``t``, on
    ``rows`` (a boolean mask or index array; all when None). Only the terms the wanted columns
    use are gathered (each gather is a pass over (rows, m) values)."""
    rho, p, s, Rc, Re, z, S, phi, Q, z2, S2 = t
    if rows is not None:
        def g(v):
            return v[rows] if isinstance(v, np.ndarray) and v.ndim == 2 else v
        cs = set(cols)
        p, s, Rc, Re = g(p), g(s), g(Rc), g(Re)
        rho = g(rho) if 3 in cs else None
        z = g(z) if 7 in cs else None
        z2 = g(z2) if cs & {5, 7} else None
        S = g(S) if cs & {1, 4} else None
        S2 = g(S2) if cs & {1, 6} else None
        phi = g(phi) if cs & {0, 3, 7} else None
        Q = g(Q) if Q is not None and cs & {0, 2, 3, 7} else Q
    R, c, A, w, F, R2, c2 = (p[:, k: k + 1] for k in range(NP))
    rim = Q is not None
    n_, m_ = Re.shape[0], t[0].shape[1]
    J = np.empty((n_, len(cols), m_), t[0].dtype)
    for j, k in enumerate(cols):
        if k == 0:
            ps = phi / s
            dRe = 1.0 + s * s / (2 * Rc * Rc)
            v = (c - F) * ps
            if rim:
                v += A * (ps - Q / w)
            J[:, j] = v * dRe
        elif k == 1:
            np.subtract(S, S2, out=J[:, j])
        elif k == 2:
            J[:, j] = Q
        elif k == 3:
            # A·(Q·((Re − ρ)/w² − σ²/w³) + φ·σ/w²), the per-profile factors first
            iw2 = 1.0 / (w * w)
            v = Re - rho
            v *= iw2
            v -= s * s * iw2 / w
            v *= Q
            v += phi * (s * iw2)
            np.multiply(v, A, out=J[:, j])
        elif k == 4:
            np.subtract(1.0, S, out=J[:, j])
        elif k == 5:
            J[:, j] = (c2 - c) * np.exp(-0.5 * z2 * z2) * (1.0 / math.sqrt(2 * math.pi)) / s * \
                (1.0 + s * s / (2 * np.maximum(R2, 1.0) ** 2))
        elif k == 6:
            J[:, j] = S2
        else:  # the blur σ (Re and R2e move with it too)
            dz = -1.0 / Rc - z / s
            dz2 = -1.0 / np.maximum(R2, 1.0) - z2 / s
            v = (c - F) * phi * dz
            if rim:
                v += A * (Q * (s / (w * Rc) + s / (w * w)) + phi * (dz - 1.0 / w))
            v += (c2 - c) * np.exp(-0.5 * z2 * z2) * (1.0 / math.sqrt(2 * math.pi)) * dz2
            J[:, j] = v
    return J


def _lip_model(rho: np.ndarray, p: np.ndarray, s: np.ndarray, jac: bool = True, cols: tuple = tuple(range(NP))):
    """Blurred lip across a radial profile and its Jacobian in (R, c, A, w, F, R2, c2).

    Unblurred: F outside R; inside ``c + A·exp(-(R - ρ)/w)``, and deeper, inside R2, the
    cavity's floor or neck at level c2. Blurred by a Gaussian σ = ``s`` along ρ (the
    exponentially modified Gaussian, written with erfcx so that nothing overflows); the
    curvature of a disc moves its blurred half-level inward by σ²/2R, taken as a shift of each
    step. ``p`` (n, 7), ``s`` (n, 1) or scalar, ``rho`` (n, m). ``cols``: the Jacobian's columns
    wanted, in that order (the others are not computed; 7 is σ); the Jacobian is (n, len(cols),
    m). Where every A is 0 and A and w are not wanted (a view without rims) the rim term is
    skipped."""
    rim = 2 in cols or 3 in cols or bool(np.any(p[:, 2]))
    m, t = _lip_value(rho, p, s, rim)
    if not jac:
        return m, None
    return m, _lip_jac(t, cols)


def _inner_step(rho: np.ndarray, R2: np.ndarray, s) -> np.ndarray:
    """The inner step's blurred profile Φ((R2 − σ²/2R2 − ρ)/σ) (:func:`_lip_value`)."""
    R2e = R2 - s * s / (2 * np.maximum(R2, 1.0))
    return ndtr((R2e - rho) / s)


def _damped_step(JTJ: np.ndarray, g: np.ndarray, la: np.ndarray) -> np.ndarray:
    """The Levenberg–Marquardt step x of each profile: (JᵀJ + λ·(diag JᵀJ + 10⁻⁹))·x = −Jᵀr.

    Gaussian elimination without pivoting (stable: the damped matrix is symmetric positive
    definite), vectorised over the profiles with the matrix entries leading ((k, k+1, n): each
    operation runs along n): 2–4× faster than np.linalg.solve's one LAPACK call per profile
    from a few hundred profiles on, slower below ~150 (its fixed cost per operation), where
    LAPACK solves. A profile whose elimination breaks down (not finite) gets no step."""
    n, k, _ = JTJ.shape
    if n < 150:
        d = np.einsum("nii->ni", JTJ)
        M = JTJ + la[:, None, None] * np.eye(k)[None] * (d[:, :, None] + 1e-9)
        try:
            return np.linalg.solve(M, -g[..., None])[..., 0]
        except np.linalg.LinAlgError:
            pass
    a = np.empty((k, k + 1, n))
    a[:, :k] = JTJ.transpose(1, 2, 0)
    a[:, k] = -g.T
    for i in range(k):
        a[i, i] += la * (a[i, i] + 1e-9)
    for j in range(k - 1):
        f = a[j + 1:, j] / a[j, j]
        a[j + 1:, j + 1:] -= f[:, None, :] * a[j, j + 1:][None]
    x = np.empty((k, n))
    for j in range(k - 1, -1, -1):
        v = a[j, k] - (a[j, j + 1: k] * x[j + 1:]).sum(axis=0) if j < k - 1 else a[j, k]
        x[j] = v / a[j, j]
    x = x.T
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        x[bad] = 0.0
    return x


def _parabola_min(x: np.ndarray, y: np.ndarray) -> float:
    """The minimum of the parabola through the lowest of the points (x sorted) and its two
    neighbours, within them; the lowest point itself at an end or where the parabola opens down."""
    j = int(np.argmin(y))
    if not 0 < j < x.size - 1:
        return float(x[j])
    x0, x1, x2 = x[j - 1: j + 2]
    a, b, c = y[j - 1: j + 2]
    den = (x0 - x1) * (x0 - x2) * (x1 - x2)
    A_ = (x2 * (b - a) + x1 * (a - c) + x0 * (c - b)) / den
    B_ = (x2 * x2 * (a - b) + x1 * x1 * (c - a) + x0 * x0 * (b - c)) / den
    return float(np.clip(-B_ / (2 * A_), x0, x2)) if A_ > 0 else float(x1)


def _fit_lips(rho, y, wt, p, s, lo, hi, cmax, iters: int = ITERS, fit_s: bool = False, hold: tuple = (),
              rim: bool = True, wprior=None, s_max: float = 4.0, fmin=None, fmax=None):
    """Levenberg–Marquardt on every profile at once (a profile leaves the loop once its
    damping has grown past any useful step or a step gains next to nothing; ``iters`` is only a
    safety cap). ``hold``: indices of parameters held where they are (left out of the normal
    equations); ``rim=False``: a pore without a bright rim (A held at 0), else the secant law
    holds. ``wprior`` (k, weight): a soft prior on the rim's width, one more residual per
    profile, weight·(w/(k·R) − 1). ``fmin``, ``fmax`` (per profile, optional):
    the film level's bounds, else 0.7 and 1.4. Returns (params, σ or None, cost, the prior's
    term included).

    Work saved without changing a step: the normal equations (JᵀJ, Jᵀr) are kept per profile and
    the Jacobian is computed only where a step was taken and the profile goes on (a rejected
    step leaves them as they were); with the inner step's radius and σ held, its blurred
    profile (one of the three special functions per point) is computed once, and again only
    on profiles whose R2 the bounds moved."""
    n = p.shape[0]
    p = p.copy()
    s = np.broadcast_to(np.asarray(s, np.float64), (n,)).copy()
    cols = tuple(k for k in range(NP) if k not in hold)
    jcols = cols + ((7,) if fit_s else ())
    free = list(cols)
    prior = None
    if wprior is not None and rim and 0 in cols and 3 in cols:
        prior = tuple(np.broadcast_to(np.asarray(v, np.float64), (n,)) for v in wprior)
        i0, i3 = cols.index(0), cols.index(3)
    lam = np.full(n, 1e-2)
    # the inner step held (R2 and σ fixed but for the bounds): its blurred profile once
    S2c = _inner_step(rho, p[:, 5:6], s[:, None]) if 5 not in cols and not fit_s else None
    R2c, sc = (p[:, 5].copy(), s.copy()) if S2c is not None else (None, None)

    def value(ix, q, qs):
        """Weighted residuals of profiles ``ix`` at (q, qs) and the terms their Jacobian
        shares; with the prior on the rim's width, one more residual per profile."""
        rh = rho[ix]
        S2 = None
        if S2c is not None:
            S2 = S2c[ix]
            chg = (q[:, 5] != R2c[ix]) | (qs != sc[ix])
            if chg.any():
                S2[chg] = _inner_step(rh[chg], q[chg, 5:6], qs[chg][:, None])
        rimt = 2 in cols or 3 in cols or bool(np.any(q[:, 2]))
        m, t = _lip_value(rh, q, qs[:, None], rimt, S2)
        m -= y[ix]
        m *= wt[ix]
        if prior is not None:
            kR = prior[0][ix] * np.maximum(q[:, 0], 0.2)
            e = prior[1][ix] * (q[:, 3] / kR - 1.0)
            m = np.concatenate([m, e[:, None]], axis=1)
        return m, t

    def normal(t, ix, q, r, rows):
        """JᵀJ and Jᵀr of profiles ``ix[rows]``."""
        J = _lip_jac(t, jcols, rows)
        J *= wt[ix[rows]][:, None, :]
        rr = r[rows]
        if prior is None:
            return J @ J.transpose(0, 2, 1), (J @ rr[..., None])[..., 0]
        # the prior's residual (the last column of r) touches only w and R: its rank-one term
        # added to the normal equations (no copy of J with one more column)
        m_ = J.shape[2]
        JTJ = J @ J.transpose(0, 2, 1)
        g = (J @ rr[:, :m_, None])[..., 0]
        qr = q[rows]
        kR = prior[0][ix[rows]] * np.maximum(qr[:, 0], 0.2)
        psc = prior[1][ix[rows]]
        e3 = psc / kR
        e0 = -psc * qr[:, 3] / (kR * np.maximum(qr[:, 0], 0.2))
        JTJ[:, i3, i3] += e3 * e3
        JTJ[:, i0, i0] += e0 * e0
        JTJ[:, i0, i3] += e0 * e3
        JTJ[:, i3, i0] += e0 * e3
        re_ = rr[:, m_]
        g[:, i3] += e3 * re_
        g[:, i0] += e0 * re_
        return JTJ, g

    # (scalars without per-profile bounds: no gather per iteration on the rimmed path)
    f_lo = 0.7 if fmin is None else np.asarray(fmin, np.float64)
    f_hi = 1.4 if fmax is None else np.asarray(fmax, np.float64)
    per = fmin is not None
    mn, mx = np.minimum, np.maximum  # the ufuncs: np.clip's wrapper costs more than the work here

    def clamp(p, s, ix):
        p[:, 0] = mn(mx(p[:, 0], lo[ix]), hi[ix])
        p[:, 4] = mn(mx(p[:, 4], f_lo[ix] if per else f_lo), f_hi[ix] if per else f_hi)
        # the cavity below the rim is darker than the film: in the darker half between the
        # film and the pore's darkest point; a floor or neck deeper inside darker still
        p[:, 1] = mn(mx(p[:, 1], -0.5), cmax[ix])
        p[:, 2] = mn(mx(p[:, 2], 0.0), 5.0)
        p[:, 3] = mn(mx(p[:, 3], 0.05), mx(p[:, 0], 0.2))
        # secant law: the wall tilting down at the lip emits more than the flat film, never less
        p[:, 2] = mx(p[:, 2], p[:, 4] - p[:, 1]) if rim else 0.0
        p[:, 5] = mn(mx(p[:, 5], 0.3 * p[:, 0]), mx(p[:, 0] - 0.5, 0.3 * p[:, 0]))
        p[:, 6] = mn(mx(p[:, 6], -0.5), p[:, 1])
        mn(mx(s, 0.25, out=s), s_max, out=s)

    ix = np.arange(n)
    r, t = value(ix, p, s)
    cost = np.einsum("nm,nm->n", r, r)
    JTJ, g = normal(t, ix, p, r, slice(None))
    for _ in range(iters):
        la = lam[ix]
        step = _damped_step(JTJ, g, la)
        q = p[ix]
        q[:, free] += step[:, : len(cols)]
        qs = s[ix] + (step[:, -1] if fit_s else 0.0)
        clamp(q, qs, ix)
        r2, t2 = value(ix, q, qs)
        c2 = np.einsum("nm,nm->n", r2, r2)
        c1 = cost[ix]
        ok = c2 < c1
        upd = ix[ok]
        p[upd], s[upd], cost[upd] = q[ok], qs[ok], c2[ok]
        lam[ix] = np.where(ok, la * 0.3, la * 8.0)
        # done: no step helps any more, or the last one gained next to nothing
        dR = step[:, 0] if 0 in cols else np.zeros(ix.size)
        go = (lam[ix] < 1e4) & ~(ok & ((c1 - c2 <= 1e-4 * c1) | (np.abs(dR) < 2e-3)))
        more = np.flatnonzero(ok & go)
        if more.size:
            JTJ[more], g[more] = normal(t2, ix, q, r2, more)
        if not go.all():
            ix, JTJ, g = ix[go], JTJ[go], g[go]
        if ix.size == 0:
            break
    return p, (s if fit_s else None), cost


def lip_radii(norm: np.ndarray, lab: np.ndarray, n: int, centres: np.ndarray, r_core: np.ndarray,
              ring: int, info: dict | None = None, rims: bool | None = None,
              confirm=None, rimless: bool = True) -> tuple[np.ndarray | None, tuple | None]:
    """Sub-pixel lip radius (px) of each pore around its dark core.

    ``norm``: the image over its film level above the black level (film 1, black 0, :func:`black_field`); ``lab``: core labels 1..n; ``centres`` (n, 2) row/col of each
    core's centroid; ``r_core``: equivalent radius of each core; ``ring``: how far (px) beyond
    its core a pore's pixels are taken; a wall shared by two pores is split between them
    (:func:`pore_pixels`). Profiles are binned at max(0.5 px, r_core/8), each bin at its pixels' mean ρ.

    Stages (Levenberg–Marquardt on all pores at once, each profile to its own tolerance,
    :func:`_fit_lips`): on up to 400 of the largest pores, with the floor or neck free, the
    image's rim decision and its σ (profile likelihood: their total cost over a grid of σ) and
    the rim's width as a share of the lip radius; the lip over a uniform cavity, each pore's rim
    width softly held near that share, from two starts (the second only where the first fits
    poorly and its lip did not end within a bin of the second start); the lip with a floor or neck where the profile's core lies darker than that fit by
    more than its noise (kept where an F-test asks for it). ``info`` (optional dict) receives
    σ, the parameters (R, c, A, w, F, R2, c2), costs, the rim decision, the pores given a neck,
    the share tried for one and the rim width's share of the lip radius (None: not used).
    ``rims``: whether the view shows bright rims, when the caller knows; None: voted here by the
    largest pores' fits (the shares of them with a genuine ridge and with a lifted lip, both
    0.5 or more), and where they vote for rims ``confirm(ridge share, lift share)`` (optional)
    must agree, else
    (None, None) is returned: the pores' profiles rise above the film level given, but the view
    shows no rim (:func:`has_bright_rims` on the whole view): thin blurred walls between dense
    pores look like ridges where the film level given is a pore level. ``rimless=False``: a
    view whose pores vote against rims is not measured here either ((None, None) at once,
    ``info["rimmed"]`` all False): the caller measures such a view another way, and its lips
    here would be thrown away.

    Returns (radii, the pixels used: an iterable of batches (flat index, owner 1..n, ρ), each pore
    in one; a view whose pores' discs hold no more than :data:`PIXEL_BATCH` candidate pixels is
    one batch, held, a larger one's batches are chosen again on each pass); NaN where a pore
    has no pixels in its window.
    """
    # the blur at most 4 px or half the typical core radius: the same view at a finer pixel size
    # has a proportionally wider blur in pixels (a cap in pixels alone would clip it)
    s_max = max(4.0, 0.5 * float(np.median(r_core)))
    s_start = max(0.8, 0.1 * float(np.median(r_core)))  # the blur's first guess, likewise
    # bins and window scale with the pores (the same pores at a finer pixel size: the same fit)
    bp = max(PROFILE_BIN_PX, float(np.median(r_core)) / 8.0)
    nb = int(math.ceil((float(r_core.max()) + ring + 1) / bp)) + 2
    # each pore's sums per bin (count, level, ρ, level², and ρ² over its core) batch by batch of
    # pores (:func:`_pore_pixel_batches`): a pore's pixels all in one batch, in the same order,
    # so the same sums; the pixels of a large view are never all held at once
    cnt, vs, rs, sq = (np.zeros((n, nb)) for _ in range(4))
    core_n, core_r2 = np.zeros(n), np.zeros(n)
    nfl = np.ravel(norm)
    batches = _pore_pixel_batches(lab, centres, r_core, ring)
    pixels = None  # (flat index, owner 1..n, ρ) of a view in one batch
    for flat, own, rho, incore, whole in batches:
        if whole:
            pixels = ((flat, own + 1, rho),)
        elif own.size == 0:
            continue
        # the pixels by flat index: 1-D gathers are ~6× cheaper than indexing by [rows, cols]
        val = nfl[flat].astype(np.float64)
        u = None if whole else np.unique(own)
        loc = own if u is None else np.searchsorted(u, own)
        m_ = n if u is None else u.size
        rows_u = slice(None) if u is None else u
        key = loc * nb + np.minimum((rho * (1.0 / bp)).astype(np.intp), nb - 1)
        cnt[rows_u] = np.bincount(key, minlength=m_ * nb).reshape(m_, nb)
        vs[rows_u] = np.bincount(key, val, minlength=m_ * nb).reshape(m_, nb)
        rs[rows_u] = np.bincount(key, rho, minlength=m_ * nb).reshape(m_, nb)
        sq[rows_u] = np.bincount(key, val * val, minlength=m_ * nb).reshape(m_, nb)
        oc = loc[incore]
        core_r2[rows_u] = np.bincount(oc, rho[incore] ** 2, minlength=m_)
        core_n[rows_u] = np.bincount(oc, minlength=m_)
        del flat, own, rho, incore, val, key, loc, oc
    prof = np.where(cnt > 0, vs / np.maximum(cnt, 1), 1.0)
    rho_b = np.where(cnt > 0, rs / np.maximum(cnt, 1), (np.arange(nb) + 0.5) * bp)
    j = np.arange(nb)[None, :]
    ps = ndi.uniform_filter1d(prof, 3, axis=1, mode="nearest")
    win = (j >= (r_core / bp).astype(int)[:, None]) & (j <= ((r_core + ring) / bp).astype(int)[:, None]) & (cnt > 0)
    jm = np.argmax(np.where(win, ps, -np.inf), axis=1)
    inside = (j <= ((r_core + ring) / bp).astype(int)[:, None]) & (cnt > 0)
    floor = np.clip(np.min(np.where(inside, ps, np.inf), axis=1), 0.0, 1.0)
    # two starts for the lip: the brightness ridge beyond the core (a rim peaks near its lip;
    # genuine when it stands above the profile's outer end), and the outermost half-level
    # crossing between the pore's floor and the film (a pore without a rim)
    rows_n = np.arange(n)
    last_in = nb - 1 - np.argmax(inside[:, ::-1], axis=1)
    # genuine: above the outer end by more than the noise of the two (3-bin) means (one standard
    # error) — a ridge that is only noise comes and goes with the pixel size, and the image's
    # rim decision with it (a real section imaged at half the pixels flipped to "rimmed")
    var = np.where(cnt > 1, (sq - vs * vs / np.maximum(cnt, 1)) / np.maximum(cnt - 1, 1), 0.0)
    se = np.sqrt(np.maximum(ndi.uniform_filter1d(var / np.maximum(cnt, 1), 3, axis=1, mode="nearest"), 0.0) / 3.0)
    rise = ps[rows_n, jm] - ps[rows_n, last_in]
    ridge_ok = (jm < last_in - 1) & (rise > 1.0 * np.hypot(se[rows_n, jm], se[rows_n, last_in]))
    R_ridge = np.maximum(rho_b[rows_n, jm], r_core + 0.5)

    def bin_ridges(ix):
        """The ridge test above on the pores ``ix``'s single bins (the outer end still the
        3-bin mean), by 1.5 standard errors: the highest of ~10 single bins stands higher by
        its noise alone than the highest 3-bin mean (by 1 standard error the twin's rimless
        views' ridge shares rose from 0.27-0.51 to 0.24-0.67; by 1.5 they are 0.19-0.49)."""
        # (among the bins holding half the pixels of the fullest one or more: the few pixels
        # of a cell's far corners, noisy, were the highest bin of half a noisy view's pores)
        w_, c_ = win[ix], cnt[ix]
        w_ = w_ & (c_ >= 0.5 * np.max(np.where(w_, c_, 0), axis=1)[:, None])
        jb = np.argmax(np.where(w_, prof[ix], -np.inf), axis=1)
        r_ = np.arange(ix.size)
        rise_b = prof[ix][r_, jb] - ps[ix, last_in[ix]]
        se_b = np.sqrt(np.maximum(var[ix][r_, jb], 0.0) / np.maximum(cnt[ix][r_, jb], 1))
        return (jb < last_in[ix] - 1) & (rise_b > 1.5 * np.hypot(se_b, se[ix, last_in[ix]]))
    below = inside & (ps < 0.5 * (1.0 + floor)[:, None])
    last = nb - 1 - np.argmax(below[:, ::-1], axis=1)
    R_cross = np.maximum(rho_b[rows_n, np.minimum(last + 1, nb - 1)], r_core + 0.5)
    W = 14

    def windows(R0):
        """The fitted window (the lip's flanks and some core, not the middle of a large cavity)
        and the starting parameters."""
        inner = np.maximum(0.4 * R0, R0 - 8 * bp)
        start = np.clip((inner / bp).astype(int), 0, max(nb - W, 0))
        idx = np.minimum(start[:, None] + np.arange(W)[None, :], nb - 1)
        rho_w = np.take_along_axis(rho_b, idx, 1)
        y = np.take_along_axis(prof, idx, 1)
        wt = np.sqrt(np.take_along_axis(cnt, idx, 1))
        c0 = np.clip(y.min(axis=1), 0.0, 1.0)
        c0w[:] = c0
        p0 = np.column_stack([R0, c0, np.maximum(y.max(axis=1) - c0, 0.05), np.full(n, 1.0), np.ones(n), inner, c0])
        return rho_w, y, wt, 0.5 * (1.0 + c0), inner, p0

    c0w = np.zeros(n)
    rho_w, y, wt, cmax, inner, p0 = windows(R_ridge)
    top = ps[rows_n, jm]  # the pore's brightest level beyond its core (3-bin means)
    lo, hi = r_core, r_core + ring
    # two starts for the lip (from the ridge alone the fit can settle in a narrow-rim basin well
    # inside the lip): halfway between the ridge and the half-level crossing, then the ridge;
    # each pore keeps the fit of lower cost (the same window for both, so the costs compare)
    starts = (np.clip(0.5 * (R_ridge + R_cross), lo, hi), np.clip(R_ridge, lo, hi))

    def rimless_levels():
        """A rimless pore's highest cavity level and its film level's bounds (per pore): the
        cavity in the lower, the film in the upper :data:`RIMLESS_SHARE` of the range between
        its window's darkest level c0 and its brightest beyond the core (``top``).

        Levels of the pore's own, not relative to the view's film 1 (a rimless view's levels are
        each pore's own): fixed at 0.7–1.4 the film held half of etched porous silicon's pores
        at 0.7 (their thin walls lie below the view's brightest film), a third as many under gain
        × 0.6 + 15 % offset (D −4.6 %); and a thin wall's top (a polymer section: 0.79, c0 0.6)
        below the film's least level left no step that could reach it: the lip ran past the wall
        to the window's end, another basin at 2× the pixel size (D 2–5 % apart). Both bounds
        apart (the cavity's at or below the film's): meeting at the half level they squeezed such
        a fit flat, its lip free."""
        span = np.maximum(top - c0w, 0.0)
        return c0w + RIMLESS_SHARE * span, top - RIMLESS_SHARE * span, top

    def fb(fmin, fmax, j):
        return {} if fmin is None else {"fmin": fmin[j], "fmax": fmax[j]}

    def fit_chunk(j, qq, sj, cm, fmin, fmax, args):
        """_fit_lips on pores ``j`` (start ``qq``, σ ``sj``), in two halves on two threads from
        SPLIT pores on."""
        if j.size >= SPLIT:
            # two halves on two threads (numpy's ufuncs and matmul release the GIL)

            h2 = j.size // 2
            fut = pool().submit(_fit_lips, rho_w[j[h2:]], y[j[h2:]], wt[j[h2:]], qq[h2:], sj if np.ndim(sj) == 0 else sj[h2:],
                                 lo[j[h2:]], hi[j[h2:]], cm[j[h2:]], **args, **fb(fmin, fmax, j[h2:]))
            a = _fit_lips(rho_w[j[:h2]], y[j[:h2]], wt[j[:h2]], qq[:h2], sj if np.ndim(sj) == 0 else sj[:h2],
                          lo[j[:h2]], hi[j[:h2]], cm[j[:h2]], **args, **fb(fmin, fmax, j[:h2]))
            b = fut.result()
            pr = np.concatenate([a[0], b[0]])
            sr = None if a[1] is None else np.concatenate([a[1], b[1]])
            cr = np.concatenate([a[2], b[2]])
        else:
            pr, sr, cr = _fit_lips(rho_w[j], y[j], wt[j], qq, sj, lo[j], hi[j], cm[j], **args, **fb(fmin, fmax, j))
        return pr, sr, cr

    def fit(ix, q, s, rim_ok, **kw):
        """_fit_lips on pores ``ix``, rimmed ones with the secant law, the others with A = 0."""
        q, cost, sb = q.copy(), np.zeros(len(ix)), np.zeros(len(ix))
        for flag in (True, False):
            m = rim_ok == flag
            if not m.any():
                continue
            j = ix[m]
            hold = kw.get("hold", ())
            hold = hold if flag else tuple(sorted(set(hold) | {2, 3}))
            qq = q[m]
            cm, fmin, fmax = (cmax, None, None) if flag else rimless_levels()
            if not flag:
                qq[:, 2], qq[:, 1] = 0.0, np.minimum(qq[:, 1], cm[j])
            sj = s[m] if np.ndim(s) else s
            args = dict(iters=kw.get("iters", ITERS), fit_s=kw.get("fit_s", False), hold=hold, rim=flag, s_max=s_max,
                        wprior=kw.get("wprior") if flag else None)
            # in chunks of FIT_CHUNK profiles (each profile's fit is its own: the same fits,
            # and a large view's working set that of one chunk)
            prs, srs, crs = [], [], []
            for c0_ in range(0, j.size, FIT_CHUNK):
                cj, cq = j[c0_: c0_ + FIT_CHUNK], qq[c0_: c0_ + FIT_CHUNK]
                cs = sj if np.ndim(sj) == 0 or j.size <= FIT_CHUNK else sj[c0_: c0_ + FIT_CHUNK]
                pr, sr, cr = fit_chunk(cj, cq, cs, cm, fmin, fmax, args)
                prs.append(pr), srs.append(sr), crs.append(cr)
            if len(prs) == 1:
                pr, sr, cr = prs[0], srs[0], crs[0]
            else:
                pr, cr = np.concatenate(prs), np.concatenate(crs)
                sr = None if srs[0] is None else np.concatenate(srs)
            q[m], cost[m] = pr, cr
            if sr is not None:
                sb[m] = sr
        return q, cost, sb

    def fit_best(ix, q, s, rim_ok, **kw):
        """fit() from the first start of the lip (R2 halfway in when the floor is free), then
        from the others on the pores whose fit is poorest (cost per degree of freedom above
        RETRY_COST × the median's, or all when they are few); per pore the lower cost."""
        free_floor = kw.get("hold", ()) == ()
        if ix.size <= RETRY_ALL and len(starts) > 1:
            # every pore from every start: one batch (one loop, both threads) instead of one each
            k = len(starts)
            qq = np.tile(q, (k, 1))
            qq[:, 0] = np.concatenate([R0[ix] for R0 in starts])
            if free_floor:
                qq[:, 5] = 0.5 * (np.tile(inner[ix], k) + qq[:, 0])
            r = fit(np.tile(ix, k), qq, s if np.ndim(s) == 0 else np.tile(s, k), np.tile(rim_ok, k), **kw)
            pick = np.argmin(r[1].reshape(k, ix.size), axis=0) * ix.size + np.arange(ix.size)
            return tuple(v[pick] for v in r)
        best = None
        for R0 in starts:
            if best is None:
                jx = np.arange(ix.size)
            else:
                per = best[1] / np.maximum((wt[ix] > 0).sum(axis=1) - NP, 1)
                jx = np.arange(ix.size) if ix.size <= RETRY_ALL else np.flatnonzero(per > RETRY_COST * np.median(per))
                # not where the lip already ended within a bin of this start: from there the fit
                # starts in the basin it found (a dense SEM twin view: 966 of 1603 retries, which
                # won by ~1 % of cost and moved 3 lips by over 0.05 px)
                jx = jx[np.abs(best[0][jx, 0] - R0[ix[jx]]) >= bp]
                if jx.size == 0:
                    break
            qq = q[jx].copy()
            qq[:, 0] = R0[ix[jx]]
            if free_floor:
                qq[:, 5] = 0.5 * (inner[ix[jx]] + qq[:, 0])
            r = fit(ix[jx], qq, s if np.ndim(s) == 0 else s[jx], rim_ok[jx], **kw)
            if best is None:
                best = r
            else:
                b = r[1] < best[1][jx]
                for k in range(3):
                    best[k][jx[b]] = r[k][b]
        return best

    # the blur: one σ for the image, from the pores with the most pixels on their flanks, with
    # the floor or neck free (a step held at the window's inner edge would be smoothed by the
    # fitted blur too, which then comes out high). The rim is a property of the image (one
    # detector for the whole image): ``rims`` when the caller knows it (:func:`has_bright_rims`
    # on the whole view), else voted here: a pore shows one where its ridge is genuine and the
    # fitted lip is brighter than the film by at least a quarter of the pore's depth (an
    # overshoot of the blur or of a JPEG's ringing is far fainter); where most of these pores
    # show a ridge and most such a lip, all have one, if too faint to see
    # (among the round cores: a pair joined through a thin wall is no single pore's profile)
    m2 = core_r2 / np.maximum(core_n, 1)
    round_ = m2 < 1.2 * (0.5 * r_core ** 2 + 1.0 / 6.0)
    cand_s = np.flatnonzero(round_) if np.count_nonzero(round_) >= min(n, PRIOR_MIN_PORES) else np.arange(n)
    sel = cand_s[np.argsort(-r_core[cand_s], kind="stable")[: min(cand_s.size, 400)]]
    if rims is None:
        ps_, _, sb = fit_best(sel, p0[sel], s_start, np.ones(sel.size, bool), fit_s=True, hold=())
        lift = (ps_[:, 1] + ps_[:, 2] - ps_[:, 4]) / np.maximum(ps_[:, 4] - ps_[:, 1], 1e-6)
        # (where the bins are wider than the blur the ridge is judged on the bins themselves:
        # three of them averaged a rim narrower than one bin into the film)
        rid = ridge_ok[sel] if bp <= float(np.median(sb)) else bin_ridges(sel)
        vote = (float(np.mean(rid)), float(np.mean(lift > 0.25)))
        rim_image = vote[0] >= 0.5 and vote[1] >= 0.5
        if info is not None:
            info["vote"] = vote
        if rim_image and confirm is not None and not confirm(*vote):
            return None, None
        if not rim_image and not rimless:
            if info is not None:
                info["rimmed"] = np.zeros(n, bool)
            return None, None
    else:
        rim_image = bool(rims)
    rimmed = np.full(n, rim_image)
    if not rim_image:
        rho_w, y, wt, cmax, inner, p0 = windows(R_cross)
        starts = (np.clip(R_cross, lo, hi),)
    if rims is not None or not rim_image:
        ps_, _, sb = fit_best(sel, p0[sel], s_start, rimmed[sel], fit_s=True, hold=())
    s = float(np.median(sb)) if sb.size else s_start
    if sel.size:
        # the image's σ by profile likelihood: the total cost of the largest SIGMA_PORES of these
        # pores refitted (floor free) at each σ of a grid about the median of their own σ; the
        # minimum of the parabola through the lowest grid point and its neighbours (the grid
        # extended while the lowest point lies at an end)
        ng = min(sel.size, SIGMA_PORES)

        def total(grid):
            g = grid.size
            _, cg, _ = fit(np.tile(sel[:ng], g), np.tile(ps_[:ng], (g, 1)), np.repeat(grid, ng), np.tile(rimmed[sel[:ng]], g),
                           hold=())
            return cg.reshape(g, ng).sum(axis=1)

        # the grid's middle three first, and of its ends (0.8, 1.25) only the one beyond the
        # lowest of the three where that is an end (a refit of SIGMA_PORES pores per point: the
        # two ends cost 40 % of the grid, and the other end is never the lowest of the five as
        # far as the totals are unimodal in σ)
        grid = s * np.array([0.9, 1.0, 1.1])
        tot = total(grid)
        j = int(np.argmin(tot))
        if j != 1:
            ext = s * np.array([0.8 if j == 0 else 1.25])
            grid, tot = np.concatenate([grid, ext]), np.concatenate([tot, total(ext)])
            o = np.argsort(grid)
            grid, tot = grid[o], tot[o]
        for _ in range(4):
            j = int(np.argmin(tot))
            if 0 < j < grid.size - 1:
                break
            ext = grid[:1] * np.array([0.7, 0.8]) if j == 0 else grid[-1:] * np.array([1.25, 1.5])
            ext = ext[(ext >= 0.25) & (ext <= s_max)]
            if ext.size == 0:
                break
            grid, tot = np.concatenate([grid, ext]), np.concatenate([tot, total(ext)])
            o = np.argsort(grid)
            grid, tot = grid[o], tot[o]
        s = _parabola_min(grid, tot)
    # the rim's width: a share of the lip radius common to the image (a cavity's wall is the same
    # shape at any size), from the same pores refitted at that σ. Each pore's own width is held
    # near it (a soft prior, 30 % relative, weighted by the profiles' noise): on its own a small
    # pore's profile trades a narrower, taller rim against a lip further in
    wprior = None
    if rim_image and sel.size >= PRIOR_MIN_PORES:
        pk, ck, _ = fit(sel, ps_, s, rimmed[sel], hold=())
        # (the median over the pores whose rim is narrower than RIM_SPAN of their lip radius: a
        # fit whose "rim" reaches across the cavity (its width at or near its bound, the lip
        # radius) is the cavity's slope, not a rim, and its width says nothing of the rim's share.
        # Among them the median sat in a sparse stretch of a broad spread and jumped with the
        # pixel size: a plant section, 32 pores, 0.098 and 0.121 at half the pixels, D 2.7 %)
        k_all = pk[:, 3] / np.maximum(pk[:, 0], 1e-6)
        narrow = k_all < RIM_SPAN
        k_w = float(np.median(k_all[narrow] if np.count_nonzero(narrow) >= 0.5 * k_all.size else k_all))
        dof1 = np.maximum((wt[sel] > 0).sum(axis=1) - NP, 1)
        noise = math.sqrt(max(float(np.median(ck / dof1)), 1e-12))
        wprior = (k_w, noise / W_PRIOR)
    # the lip over a uniform cavity first (the floor step held below the window). The rim's
    # height starts where the blur stage's fits put it relative to their window's visible rise
    # (max − min, the median ratio): a rim narrower than the blur peaks well below its height A
    # (the SEM twin: A ~1.6× the rise). Started at the rise, the fits of a dense view spent
    # about a third of their work lifting A
    if rim_image and sel.size:
        f_a = float(np.median(ps_[:, 2] / np.maximum(p0[sel, 2], 1e-6)))
        if math.isfinite(f_a) and f_a > 0:
            p0[:, 2] = np.minimum(p0[:, 2] * f_a, 5.0)
    p0[:, 5] = np.maximum(inner - 2 * s, 0.3 * p0[:, 0])
    every = np.arange(n)
    p, cost, _ = fit_best(every, p0, s, rimmed, hold=(5, 6), wprior=wprior)
    # then with a floor or neck deeper inside (a through-pore's neck): kept only where the data
    # ask for it (F-test on the two extra parameters, 1 % level), since a small blurred pore
    # cannot tell a neck from its rim and core. Tried only where the profile's inner part (2σ
    # and more inside the lip) lies below the uniform cavity's fit by more than its noise could
    # (3 standard errors of the weighted mean residual there): elsewhere a neck would only be
    # spare flexibility
    dof = np.maximum((wt > 0).sum(axis=1) - NP, 1)
    m2, _ = _lip_model(rho_w, p, np.full((n, 1), s), jac=False)
    deep = (rho_w < (p[:, 0] - 2 * s)[:, None]) & (wt > 0)
    cw = np.where(deep, wt * wt, 0.0)
    ncnt = cw.sum(axis=1)
    dark = (cw * (y - m2)).sum(axis=1) / np.maximum(ncnt, 1)
    noise_px = np.sqrt(np.maximum(cost, 0) / dof)  # per pixel: residuals are weighted by √count
    cand = np.flatnonzero((ncnt > 0) & (dark < -3 * noise_px / np.sqrt(np.maximum(ncnt, 1))))
    use = np.zeros(n, bool)
    if cand.size:
        q = p[cand].copy()
        q[:, 5] = 0.5 * (inner[cand] + q[:, 0])
        q[:, 6] = q[:, 1]
        q, cq, _ = fit(cand, q, s, rimmed[cand], wprior=wprior)
        fstat = 0.5 * (cost[cand] - cq) / np.maximum(cq / dof[cand], 1e-12)
        from scipy.stats import f as f_dist

        # and only a step resolved from the lip (two blurred steps closer than 2σ are one step
        # of another blur) and darker than the cavity
        u = (fstat > f_dist.ppf(0.99, 2, dof[cand])) & (q[:, 0] - q[:, 5] >= 2 * s) & (q[:, 6] < q[:, 1])
        use[cand[u]] = True
        p[cand[u]], cost[cand[u]] = q[u], cq[u]
    if info is not None:
        info.update(sigma=s, params=p, cost=cost, rimmed=rimmed, neck=use, neck_tried=cand.size / max(n, 1),
                    w_ratio=None if wprior is None else wprior[0])
    r = p[:, 0]
    ok = np.isfinite(r) & (wt.sum(axis=1) > 0)
    if pixels is None:  # a view in several batches: its pixels chosen again as they are read
        pixels = _PixelBatches(lab, centres, r_core, ring)
    return np.where(ok, r, np.nan), pixels


class _PixelBatches:
    """The pixels of a view's pores batch by batch, each batch (flat index, owner 1..n, ρ)
    (:func:`_pore_pixel_batches`), chosen again on each pass: a large view's pixels are never
    all held at once."""

    def __init__(self, lab: np.ndarray, centres: np.ndarray, r_core: np.ndarray, ring: int):
        self._args = (lab, centres, r_core, ring)

    def __iter__(self):
        for flat, own, rho, _, _ in _pore_pixel_batches(*self._args):
            yield flat, own + 1, rho
