"""The pores' dark cores and the pixels that belong to each (part of the physical pore edges,
:mod:`castrig.analysis.edges`).

Each opening is found by its dark core — the cavity, clearly below the film whatever a rim does,
and never joined to a neighbour's core — by one threshold for the image (:func:`pore_cores`), or
in views without rims each pore by the darker third of its own depth (:func:`_local_cores`),
cores holding two touching pores split between their markers (:func:`_split_cores`). The scale
of it all (smoothing, windows) follows the pores' own size (:func:`pore_scale`,
:func:`pore_unit`, and the image's autocorrelation, :func:`acf_radius`, where the dark regions
join), so the same view at another pixel size finds the same cores. Around each core its pixels
(those nearer to it than to any other core, :func:`pore_pixels`) give the radial profile the lip
is fitted on, in batches that bound memory (:data:`PIXEL_BATCH`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from ._filters import gaussian
from ._quantiles import percentile
from .regions import Pixels, disc_components, otsu_split_large, typical_radius
from .edges_levels import film_mode_field
from .workers import pool

__all__ = ["pore_unit", "pore_scale", "acf_radius", "pore_cores", "pore_pixels"]


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

    Compiled (:mod:`._porepix`: the least code of each pixel, each pixel's claim, then the
    pixels each pore holds; 2026-12-07, the same pixels for a fraction of the CPU of the numpy
    passes over (pores, offsets) arrays). Each pore's pixels come out in the order of its
    offsets, as before (the profiles' sums per bin add in the same order); the pores in the
    order of their discs' sizes."""

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
    # each offset's rank among them, by (row, col) + kmax in a (2·kmax + 1)² table
    rank = np.empty((2 * kmax + 1) ** 2, np.int64)
    rank[(oy.astype(np.int64) + kmax) * (2 * kmax + 1) + (ox + kmax)] = np.arange(oy.size)
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
        from ._porepix import claims, least_codes, winners

        base, size = r0 * w, (r1 - r0) * w
        by_k = sub[np.argsort(k[sub], kind="stable")]
        keep = np.ones(n, bool)
        if emit is not None:
            keep[:] = False
            keep[sub[emit]] = True
        # three compiled passes, each in two halves on two threads (the loops hold no GIL): each
        # pixel's least code over the pores in raster order of their centres (a minimum: any
        # order gives the same codes, and neighbours in the view share the image's cache lines;
        # in the disc sizes' order the same pass took 1.6x the CPU on a dense view), the halves'
        # codes merged; each pixel's claim in its pore's slots (a pass over the pixels); then
        # each pore's claimed slots, in the disc sizes' order (the order the pixels come out in)
        ras = sub[np.lexsort((cc0[sub], cr[sub]))]
        cut = int(np.searchsorted(np.cumsum(k[ras]), 0.5 * float(k[ras].sum()))) + 1
        shared = (k, oy, ox, of, fy, fx, cr, cc0, r_core, float(ring), lf, h, w, bits, base)
        bests = [np.full(size, np.iinfo(np.int64).max, np.int64) for _ in range(2)]
        job = pool().submit(least_codes, ras[cut:], *shared, bests[1])
        least_codes(ras[:cut], *shared, bests[0])
        job.result()
        best = np.minimum(bests[0], bests[1], out=bests[0])
        start = np.zeros(n, np.int64)
        start[sub] = np.cumsum(k[sub]) - k[sub]
        slot = np.zeros(int(k[sub].sum()), np.uint8)
        half = (size // 2 // w) * w
        job = pool().submit(claims, best, base, half, size, lf, cr, cc0, w, bits, kmax, rank, start, slot)
        claims(best, base, 0, half, lf, cr, cc0, w, bits, kmax, rank, start, slot)
        job.result()
        cut = int(np.searchsorted(np.cumsum(k[by_k]), 0.5 * float(k[by_k].sum()))) + 1
        halves = (by_k[:cut], by_k[cut:])
        tail = (k, oy, ox, of, fy, fx, cr, cc0, w, start, slot, keep)
        job = pool().submit(winners, halves[1], *tail, int(k[halves[1]].sum()))
        parts = [winners(halves[0], *tail, int(k[halves[0]].sum())), job.result()]
        flat, pore, rho, own_core = (np.concatenate([a, b]) for a, b in zip(*parts))
        return flat, pore, rho, own_core

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


class _PixelBatches:
    """The pixels of a view's pores batch by batch, each batch (flat index, owner 1..n, ρ)
    (:func:`_pore_pixel_batches`), chosen again on each pass: a large view's pixels are never
    all held at once."""

    def __init__(self, lab: np.ndarray, centres: np.ndarray, r_core: np.ndarray, ring: int):
        self._args = (lab, centres, r_core, ring)

    def __iter__(self):
        for flat, own, rho, _, _ in _pore_pixel_batches(*self._args):
            yield flat, own + 1, rho
