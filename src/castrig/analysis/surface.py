"""Top-view (surface) analysis: opening ratio, pore diameters, through-pores, pitch.

Pores darker than the film are measured as they are; pores brighter than it (a mirror-like
support seen through them) on the image turned over (:func:`pores_brighter`, :func:`_turned_over`).

Why partial volume: a blurred edge spreads each pore's darkness over neighbouring pixels, so any
single threshold over- or under-counts depending on where it falls. Blur preserves the integral
of the darkness, so the area of pore i is Σ (F − I) / (F − P_i) over the pixels that belong to it
(its mask plus a ring wide enough for the blur tails), where F is the local film level and P_i the
pore's own floor. The threshold mask only decides which pixels belong to which pore.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from ._filters import box_max, box_mean3, box_min, gaussian
from ._quantiles import percentile as _percentile
from .illumination import block_extremes, measurable, measurable_clipped, fit_level, off_pedestal, poly_field
from .lattice import _pitch, delaunay_graph
from .negatives import negative_top
from .regions import Pixels, fit_field, otsu_split
from .surface_metrics import SurfaceMetrics, _metrics, _through, transmitted_mismatch
from .surface_segment import _CACHE_MAX_PIXELS, _TLS, _buf, _f32, _segment, _work_cache
from .surface_sem import _analyse_rimmed
from .workers import pool

__all__ = ["SurfaceMetrics", "analyse_surface", "pores_brighter"]

#: the least pores measured for which the lattice order's checks are given one triangulation (the
#: six-neighbour share needs 20 away from the border: :func:`.quality.six_neighbour_share`)
LATTICE_GRAPH_MIN = 20

#: the least share of the typical pore depth (film − floor) a pore's own depth is taken as
_MIN_DEPTH_SHARE = 0.25


def pores_brighter(img: np.ndarray, crop: int = 256) -> bool:
    """Are the pores brighter than the film? Found from the image's topology, not its levels.

    The film is the matrix that holds the pores: one connected region, whatever its brightness;
    the openings are many separate discs. On a central ``crop``² window, lightly smoothed and
    split at Otsu's level, the phase whose largest connected part holds the smaller share of it
    is the pores' (film: ≳ 0.95, even where blur breaks the thinnest walls; pores: one pore's
    share, ≲ 0.1 where blur merges neighbours). A window holding fewer than 8 pores is widened
    (to the whole image at most)."""
    h, w = img.shape
    while crop < max(h, w):
        got = _phase_shares(img, crop)
        if got is None or got[2] >= 8:
            break
        crop *= 2
    else:
        got = _phase_shares(img, crop)
    return got is not None and got[1] < got[0]


def _phase_shares(img: np.ndarray, crop: int) -> tuple[float, float, int] | None:
    """(dark phase's, bright phase's largest-part share, parts of the more split one) on the central
    ``crop``² window split at Otsu's level; None when it is too small or flat."""
    h, w = img.shape
    r0, c0 = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    s = np.ascontiguousarray(img[r0: r0 + crop, c0: c0 + crop], dtype=np.float32)
    if min(s.shape) < 16:
        return None
    g = gaussian(s, 1.0)
    sub = g[::4, ::4].ravel() if g.size >= 65536 else g.ravel()
    if float(sub.max() - sub.min()) <= 0:
        return None
    low = g < otsu_split(sub)[0]

    def share(m: np.ndarray) -> tuple[float, int]:
        lab, n = ndi.label(m)
        if n == 0:
            return 1.0, 0
        cnt = np.bincount(lab.ravel())[1:]
        return float(cnt.max() / cnt.sum()), int(n)

    job = pool().submit(share, low)
    high, n_high = share(~low)
    low_s, n_low = job.result()
    return low_s, high, max(n_low, n_high)


def _turned_over(img: np.ndarray, cache: dict | None, degree: int = 2) -> np.ndarray:
    """A bright-pore image turned into a dark-pore one under the same light: ``K·L − img``.

    L is the film's level field (the lamp's unevenness times the film's reflectance: a lower
    envelope through the block minima of the lightly smoothed image, the film being the darker
    phase) and K the image's 99.9th percentile ratio to it (levels below 0 set to 0), so that
    every level stays ≥ 0 and film and pores keep the lamp's shape (a plain ``max − img`` would
    put the dim corners' pores closer to the film than the bright centre's). At each pixel the transform is affine, so the
    partial-volume area Σ (F − I) / (F − P_i) is that of the image as it was. (A negative of a
    dark-pore view, bright pores too, is turned back before: :mod:`.negatives`.)"""
    h, w = img.shape
    s = box_mean3(img) if h >= 2 and w >= 2 else img
    block = int(max(16, min(64, min(h, w) // 4)))
    rr, cc, _, mn = block_extremes(s, block)
    out = _buf(cache, "turned", img.shape, np.float32) if cache is not None else np.empty(img.shape, np.float32)
    lvl = poly_field(fit_level(mn, rr, cc, img.shape, degree=degree, upper=False), img.shape, degree, out=out)
    np.maximum(lvl, 1e-6 * max(float(img.max()), 1e-12), out=lvl)
    # the block minima sit at each block's darkest corner, below the film's level at its centre by
    # the lamp's slope across half a block, and more so towards the rim (a lamp of −35 % at r,
    # −70 % in the corners: L 60 % short there, 21 % at the edge): the turned film kept the lamp
    # only in part, the pores' depth under it rising from 0.4 (centre) to 0.8 (corners) — opening
    # 0.13 for 0.19, 299 pores of 441. The level is fitted again through the film's own pixels
    # (the dark phase of img / L, 2 px clear of it), where there are enough of them
    # (on every k-th row and column, ≤ 512² of them: the field is smooth)
    k = max(1, math.ceil(math.sqrt(img.size / 262144)))
    ratio = np.divide(s[::k, ::k], lvl[::k, ::k])
    cut = float(otsu_split(ratio[::2, ::2].ravel())[0])
    clear = box_max(ratio, -(-2 // k)) < cut
    if np.count_nonzero(clear) >= 30:
        rows, cols = np.nonzero(clear)
        j = -(-rows.size // 20000)  # (≤ 20 000 of them)
        vals = img[::k, ::k][clear][::j]
        coef = fit_level(vals, rows[::j] * k, cols[::j] * k, img.shape, degree=degree)
        refined = poly_field(coef, img.shape, degree)
        if float(refined.min()) > 0:
            lvl[...] = refined
    # K: the 99.9th percentile of the ratio, the brightest 0.1 % of the pores' floor clipped to
    # 0 (was the largest ratio: one pixel's, and a 1 % larger K from one pixel of a pore's edge —
    # a dead one, replaced by its neighbours' median, :func:`~.illumination.measurable_clipped`
    # — moved a twin bright-pore view's opening from 0.362 to 0.358 and its count by 10)
    # — and no lower than the lightly smoothed image's 99.99th percentile ratio, a pore's floor
    # where the pores are fewer than 0.1 % of the pixels (20 discs of r 4 px at 1024²: K the
    # film's noise top, every pore below 0 and clipped to it: 0 pores); in a view of many pores
    # it lies below the 99.9th of the unsmoothed ratio (the twin's bright-pore views: K unchanged)
    k_floor = float(_percentile(np.divide(s, lvl), 99.99))
    ratio = np.divide(img, lvl)
    k = np.float32(max(float(_percentile(ratio, 99.9)), k_floor))
    lvl *= k
    out = np.subtract(lvl, img, out=lvl)
    return np.maximum(out, 0.0, out=out)


def analyse_surface(
    reflected: np.ndarray,
    pixel_size_um: float,
    transmitted: np.ndarray | None = None,
    *,
    ring_px: int | None = None,
    degree: int = 2,
    keep_labels: bool = False,
    appearance: str = "optical",
) -> SurfaceMetrics:
    """Measure a reflected-light top view (pores dark), optionally with a registered
    transmitted-light view (through-pores bright); see :func:`_analyse_surface`.

    An SEM data bar at the bottom (:mod:`castrig.analysis.databar`) is left out of both views;
    ``data_bar_rows`` says how many rows.

    ``appearance``: "optical" (pores a flat floor, darker or brighter than the film: which is
    found from the image, :func:`pores_brighter`; partial-volume areas, the ring reaching as far
    as the edges' blur and a defocus halo do), "sem" (secondary electrons: bright inner rims and
    dark cores, edges from radial profiles, see :mod:`castrig.analysis.edges`) or "auto" (sem
    when bright rims are detected: a bright defocus halo can pass for one, so "auto" is no
    choice for defocused optical views).
    """
    if appearance not in ("optical", "sem", "auto"):
        raise ValueError(f"appearance must be optical, sem or auto, got {appearance!r}")
    from .databar import crop, find_data_bar, strip_margins
    from .masks import read_mask

    mask = read_mask(reflected) if np.ndim(reflected) == 2 else None
    if mask is not None:  # (a binary mask: no data bar; measured as segmented, pores dark)
        if mask.pores is None:
            raise ValueError(mask.refusal())
        reflected = np.where(np.asarray(reflected) == mask.pores, np.float32(0), np.float32(1))
        appearance = "optical"  # (its pores' areas are its pixel counts: no rims to follow)
    bar_top = find_data_bar(reflected) if np.ndim(reflected) == 2 and mask is None else None
    if bar_top is not None:  # an SEM's data bar is not part of the image (DESIGN §4)
        bar_rows = int(np.shape(reflected)[0]) - bar_top
        reflected = np.asarray(reflected)[:bar_top]
        if transmitted is not None and np.ndim(transmitted) == 2 and np.shape(transmitted)[0] == bar_top + bar_rows:
            transmitted = np.asarray(transmitted)[:bar_top]
    shape = np.shape(reflected)
    reflected, margins = strip_margins(reflected)  # padding round the image is not part of it either
    if transmitted is not None and np.shape(transmitted) == shape:
        transmitted = crop(transmitted, margins)
    # hot and dead pixels replaced once, here (ValueError for NaN/Inf; signed and float images
    # rescaled), and counted for the outliers_clipped flag
    reflected, clipped = measurable_clipped(reflected)
    if transmitted is not None:
        transmitted, t_clipped = measurable_clipped(transmitted)
        transmitted = off_pedestal(transmitted)  # (its through-pores are told by their light's ratio to the film's)
        clipped += t_clipped
    try:
        m = _analyse_surface(reflected, pixel_size_um, transmitted, ring_px=ring_px, degree=degree,
                             keep_labels=keep_labels, appearance=appearance, measured=True,
                             noise=0.0 if mask is not None else None)
    except BaseException:
        # A background job of the failed call may still write into this thread's work
        # buffers: forget them, so the next call starts from fresh arrays.
        _TLS.cache = {}
        raise
    _assess(m, reflected, clipped)
    if mask is not None:
        m.mask_note = mask.note()
    if m.opening_ratio is None:
        m.intervals.pop("opening_ratio", None)  # not measured: no interval either
    if bar_top is not None:
        m.data_bar_rows = bar_rows
    if any(margins):  # positions in the image as given
        t, b, l, r = margins
        m.margins_px = margins
        m.centres_px = np.asarray(m.centres_px, float) + [t, l]
        if m.labels is not None:
            m.labels = np.pad(m.labels, ((t, b), (l, r)))
    return m


def _assess(m: SurfaceMetrics, raw: np.ndarray, clipped: int = 0) -> None:
    """Set the quality flags and the 95 % intervals of a surface result (``raw``: the reflected
    view as measured, :func:`~.illumination.measurable_clipped`; ``clipped``: the outlier pixels
    it and the transmitted view had)."""
    from .quality import (MIN_PORES, MIN_PX_PER_PORE, MIN_SIX_NEIGHBOURS, edge_blur_px, lattice_disorder, saturated,
                          six_neighbour_share, surface_intervals)

    flags = []
    px = m.pixel_size_um
    d_px = (m.mean_pore_diameter_um / px) if m.mean_pore_diameter_um else None
    if d_px is not None and d_px < MIN_PX_PER_PORE:
        flags.append("under_resolved")
    if m.pore_count < MIN_PORES:
        flags.append("too_few_pores")
    if m.pore_count >= 10:
        # (one triangulation for both: the neighbours' counts and the nearest distances; the
        # optical path's made already, on the same centres)
        graph = m.lattice_graph
        if graph is None and m.pore_count >= LATTICE_GRAPH_MIN:
            graph = delaunay_graph(m.centres_px)
        m.lattice_graph = None  # (not kept with the result)
        dis = lattice_disorder(m.centres_px, graph=graph)
        six = six_neighbour_share(m.centres_px, np.shape(raw), graph=graph)
        if (dis is not None and dis > 0.25) or (six is not None and six < MIN_SIX_NEIGHBOURS):
            flags.append("no_lattice_order")
    if d_px is not None:
        a = np.asarray(raw)
        h, w = a.shape
        crop = np.asarray(a[max(0, h // 2 - 128): h // 2 + 128, max(0, w // 2 - 128): w // 2 + 128], np.float32)
        lo, hi = np.percentile(crop, [1, 99])
        sig = edge_blur_px(crop, float(hi - lo))
        if sig is not None and sig > max(0.25 * d_px / 2, 3.0):
            flags.append("blurred")
    if saturated(raw):
        flags.append("saturated")
    if clipped:
        flags.append("outliers_clipped")
    if m.thin_walls:
        flags.append("thin_walls")
    if m.low_contrast:
        flags.append("low_contrast")
    if m.appearance_ambiguous:
        flags.append("appearance_ambiguous")
    if m.transmitted_mismatch:
        flags.append("transmitted_mismatch")
    m.flags = flags
    m.intervals = surface_intervals(m.diameters_um, m.opening_ratio, m.through, px)


def _analyse_surface(
    reflected: np.ndarray,
    pixel_size_um: float,
    transmitted: np.ndarray | None = None,
    *,
    ring_px: int | None = None,
    degree: int = 2,
    keep_labels: bool = False,
    appearance: str = "optical",
    measured: bool = False,
    noise: float | None = None,
) -> SurfaceMetrics:
    """Measure a reflected-light top view (pores dark), optionally with a registered
    transmitted-light view (through-pores bright); ``measured``: both are
    :func:`~.illumination.measurable` already; ``noise``: the pixel noise's σ when known (a
    binary mask's: 0), else estimated from the image.

    Pores cut by the image border count in the opening ratio but not in the diameter statistics,
    the pore count or the through-pore fraction.
    """
    if pixel_size_um is None or not pixel_size_um > 0:
        raise ValueError("pixel_size_um must be > 0")
    raw = reflected if measured else measurable(reflected)  # ValueError for NaN/Inf; signed and float images rescaled
    # reuse this thread's work buffers for images up to 2048² (larger ones: fresh arrays, so a
    # huge image does not pin its buffers for the life of the thread)
    cache = _work_cache() if raw.size <= _CACHE_MAX_PIXELS else None
    img = _f32(raw, cache, "img")
    if transmitted is not None and np.shape(transmitted) != img.shape:
        raise ValueError(f"transmitted image shape {np.shape(transmitted)} != reflected {img.shape}")
    from .edges_rims import rim_reading

    # (auto: a ridge round the pores that is no rim by the rim tests is an SEM's rim over flat
    # dark cores or a defocus halo — measured as SEM where the ridge is strong, else as optical,
    # and flagged: an SEM view of rims over flat cores, no metadata, was read as optical, D 25 %
    # short, opening 0.29 for 0.50, nothing said)
    rims, ambiguous = rim_reading(img) if appearance == "auto" else (False, False)
    if appearance == "sem" or (appearance == "auto" and rims):
        t_meas = transmitted if measured or transmitted is None else measurable(transmitted)
        m = _analyse_rimmed(img, pixel_size_um, t_meas, keep_labels)
        m.appearance_ambiguous = ambiguous
        return m
    if ambiguous:
        m = _analyse_surface(reflected, pixel_size_um, transmitted, ring_px=ring_px, degree=degree,
                             keep_labels=keep_labels, appearance="optical", measured=measured)
        m.appearance_ambiguous = True
        return m
    whole_steps = None
    top = negative_top(img, raw.dtype) if noise is None else None  # (a binary mask's noise is 0: no lamp)
    if top is not None:  # a negative (65535 − v): the camera's view again, lamp and all (:mod:`.negatives`)
        whole_steps = raw.dtype.kind in "ui"
        img = _buf(cache, "positive", img.shape, np.float32) if cache is not None else np.empty(img.shape, np.float32)
        raw = img = np.maximum(np.subtract(np.float32(top), _f32(raw), out=img), 0.0, out=img)
    if pores_brighter(img):
        # pores a bright floor on a darker film (a mirror-like support seen through them): the
        # same partial-volume measure on the image turned over, K·L − I. The area of pore i,
        # Σ (F − I) / (F − P_i), is unchanged by it (numerator and denominator both change sign)
        whole_steps = whole_steps if whole_steps is not None else raw.dtype.kind in "ui"  # (one grey apart: _grey_step)
        raw = img = _turned_over(img, cache)
    side_job = None
    if transmitted is not None:

        # work buffers taken here, on the calling thread, and filled on the worker
        traw = transmitted if measured else measurable(transmitted)
        t_buf = None if traw.dtype == np.float32 and traw.flags.c_contiguous else _buf(cache, "t32", img.shape, np.float32)
        ft_buf = _buf(cache, "ft", img.shape, np.float32)

        def side_job(film: np.ndarray, degree: int):
            if t_buf is None:
                t = _f32(traw)
            else:
                np.copyto(t_buf, traw, casting="unsafe")
                t = t_buf
            return t, fit_field(t, film, degree, out=ft_buf)

    seg = _segment(raw, img, ring_px=ring_px, degree=degree, side_job=side_job, cache=cache, noise=noise,
                   whole_steps=whole_steps)
    if seg is None or seg.n == 0:
        return SurfaceMetrics(
            opening_ratio=0.0,
            mean_pore_diameter_um=None,
            pore_diameter_std_um=None,
            pore_count=0,
            through_pore_fraction=None,
            pore_pitch_um=None,
            pixel_size_um=pixel_size_um,
            through=None if transmitted is None else np.zeros(0, bool),
            labels=np.zeros(img.shape, np.int32) if keep_labels else None,
        )
    lab, n, f = seg.labels, seg.n, seg.film
    if keep_labels:
        lab = lab.astype(np.uint16) if n < 65535 else lab.astype(np.int32)
    else:
        lab16 = _buf(cache, "lab16", lab.shape, np.uint16 if n < 65535 else np.int32)
        np.copyto(lab16, lab, casting="unsafe")
        lab = lab16
    h, w = img.shape
    ulab = lab if lab.dtype == np.uint16 else lab.view(np.uint32)
    flat = ulab.ravel()
    idx = np.arange(1, n + 1)
    # ring pixels (film within ``ring`` of a pore): split between the nearest labels (square
    # ring; ties shared equally). The smallest label comes from labels - 1 wrapping 0 to the top.
    # the label max/min filters run on the worker threads while the per-pore sums are taken here
    # (jobs are only ever submitted from this thread: no worker waits on another)
    ring_px_idx = np.flatnonzero(~seg.far.ravel() & (flat == 0))
    if ring_px_idx.size:
        def ring_max():
            lmax = box_max(ulab, seg.ring).ravel()[ring_px_idx].astype(np.intp)
            dv = f.ravel()[ring_px_idx].astype(np.float64)
            dv -= img.ravel()[ring_px_idx]
            dv *= 0.5
            return lmax, dv

        lmax_job = pool().submit(ring_max)
        lmin_job = pool().submit(
            lambda: box_min(ulab - ulab.dtype.type(1), seg.ring).ravel()[ring_px_idx].astype(np.intp) + 1
        )
    # pore pixels: counts, film level, deficit and position sums per pore
    pores = seg.pores if seg.pores is not None else Pixels.of(lab > 0)
    pix = pores.flat
    lp = flat[pix].astype(np.intp)
    fp = f.ravel()[pix].astype(np.float64)
    cnt = np.bincount(lp, minlength=n + 1)[1:]
    fsum = np.bincount(lp, fp, minlength=n + 1)
    fp -= img.ravel()[pix]
    num = np.bincount(lp, fp, minlength=n + 1)
    cy = np.bincount(lp, pores.row, minlength=n + 1)[1:]
    cx = np.bincount(lp, pores.col, minlength=n + 1)[1:]
    centres = np.column_stack([cy, cx]) / np.maximum(cnt, 1)[:, None]
    # per-pore floor P_i from its core, else the typical normalised floor times F
    ci = np.flatnonzero(seg.core.ravel())
    cl = flat[ci].astype(np.intp)
    if seg.reach is None or seg.reach > seg.core_r:
        # the edges' blur and halo reach deeper than the core: the floor is read at each
        # pore's centre, the core pixels within max(1.5, R − reach) of its centroid (R from its
        # mask): those farthest from its edge, where a defocus fringe's light (taken from or
        # given to the pore just inside its edge) and the blur's tails weigh least
        rc = np.maximum(1.5, np.sqrt(cnt / math.pi) - (seg.reach if seg.reach is not None else np.inf))
        k = cl - 1
        rr, cc = np.divmod(ci, w)
        dr = rr - centres[k, 0]
        dc = cc - centres[k, 1]
        sel = dr * dr + dc * dc <= (rc * rc)[k]
        ci, cl = ci[sel], cl[sel]
    ccount = np.bincount(cl, minlength=n + 1)[1:]
    csum = np.bincount(cl, img.ravel()[ci], minlength=n + 1)[1:]
    through_job = None
    if transmitted is not None:
        t, ft = seg.side.result() if seg.side is not None else (_f32(transmitted), fit_field(_f32(transmitted), seg.far, 2))
        through_job = pool().submit(_through, t, ft, lab, n, seg, (pix, lp, cnt), (ci, cl, ccount))
        # (beside it, on the other worker: the mismatch's ~10 passes over the view were taken
        # here after the through-pores, with this thread waiting)
        mismatch_job = pool().submit(lambda: transmitted_mismatch(t, ft, lab > 0))
    pitch = _pitch(centres)
    if ring_px_idx.size:
        lmax, dv = lmax_job.result()
        num += np.bincount(lmax, dv, minlength=n + 1)
        num += np.bincount(lmin_job.result(), dv, minlength=n + 1)
    num = num[1:]
    fmean = fsum[1:] / np.maximum(cnt, 1)
    p_i = np.where(ccount >= 3, csum / np.maximum(ccount, 1), seg.dark_level * fmean)
    # a pore's own depth counts down to a quarter of the typical one, no less: a core that reads
    # at its film's level (a speck of film, a pore's edge, a dim corner's noise) divided by ~0
    # (was 1e-6: a bright-pore view's two corner specks, 12 and 2.5 grey·px over it, read 1.2e7
    # and 2.5e6 px — opening 1.000 for 0.19, nothing flagged)
    depth = np.maximum(fmean - p_i, np.maximum(_MIN_DEPTH_SHARE * (1.0 - seg.dark_level) * fmean, 1e-6))
    area_px = np.maximum(num / depth, 0.0)
    opening = float(np.clip(area_px.sum() / img.size, 0.0, 1.0))

    # border pores: mask touches the image edge
    edge = np.unique(np.concatenate([flat[:w], flat[-w:], flat[::w], flat[w - 1 :: w]]))
    on_border = np.zeros(n + 1, bool)
    on_border[edge] = True
    on_border = on_border[1:]
    measured = ~on_border & (cnt >= 2)
    d_um = 2 * np.sqrt(area_px[measured] / math.pi) * pixel_size_um
    # the lattice order's triangulation (:func:`_assess`), taken here while the workers find the
    # through-pores and the mismatch: after them, this thread took it alone
    graph = delaunay_graph(centres) if int(measured.sum()) >= LATTICE_GRAPH_MIN else None

    through = None
    tfrac = None
    mismatch = False
    if through_job is not None:
        through_all = through_job.result()
        through = through_all[measured]
        tfrac = float(through.mean()) if through.size else None
        mismatch = mismatch_job.result()
    return _metrics(opening, d_um, measured, tfrac, pitch, pixel_size_um, on_border, centres, through, lattice_graph=graph,
                    labels=lab if keep_labels else None, measured_labels=idx[measured], transmitted_mismatch=mismatch,
                    thin_walls=seg.level_ring == 0, low_contrast=seg.shallow)
