"""The support's pores and their continuity, from a section (part of
:mod:`castrig.analysis.section`; definitions in DESIGN §4).

- support pores: each pore rebuilt from its inscribed circle (channels cut at its rim, pores
  touching through the blur split, channel crossings — arms as wide as the circle — rejected);
  the mean equivalent diameter of those not cut by the region's border.
- support continuity: the support's pore phase (with the channels joining pores) labelled as one;
  the area fraction of the pores (without their channels) in clusters that reach from within one
  mean pore diameter of the interface to the bottom of the image. The pore phase continues past
  the image's sides and bottom as it meets them (a pore's cap on the bottom row joins what it
  touches).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from ._filters import box_max, cross_dilate, cross_erode
from ._quantiles import _order_stats
from .section_levels import _otsu
from .section_lines import _runs


def _support_pores(s: np.ndarray, interface: np.ndarray, valid: np.ndarray, px: float, exclude: np.ndarray | None = None,
                   last_row: np.ndarray | None = None) -> tuple[np.ndarray, float | None, int]:
    """Equivalent-circle diameters (µm) of the whole dark pores in the support below the
    interface, the continuity (area fraction of the pore phase in clusters spanning the support)
    and the number of pore clusters. ``last_row``: each column's last row of the image (rows
    below it repeat it: a straightened section's), else the bottom row."""
    h, w = s.shape
    margin = 3
    top = np.where(valid, np.ceil(interface) + margin, h).astype(int)
    rows = np.arange(h)[:, None]
    bottom = np.full(w, h - 1) if last_row is None else np.asarray(last_row, np.intp)
    region = (rows >= top[None, :]) & (rows <= bottom[None, :])
    if exclude is not None:
        region &= ~exclude
    none = np.zeros(0)
    if region.sum() < 100:
        return none, None, 0
    from .illumination import fit_level, poly_field

    # Only the rows from 3 above the region's first one are worked on (row0 on): above them all
    # is outside the region, and the masks, labels (numbered in raster order), openings and
    # distance transforms below are the same bits on the rows kept (the rows dropped are all
    # background, more than the 2 px of padding _split_pores takes round its pores)
    row0 = max(int(np.argmax(region.any(axis=1))) - 3, 0)
    s, region = s[row0:], region[row0:]
    vals = s[region]
    if float(np.ptp(vals)) <= 0:
        return none, None, 0
    t = _otsu(vals)
    # flatten the uneven light over the support: quadratic fit through its matrix (bright) pixels
    sel = region & (s >= t)
    step = max(1, int(math.sqrt(sel.sum() / 20000)))
    off = (-row0) % step  # (the subsampling grid keeps the whole image's rows, multiples of step)
    rr, cc = np.nonzero(sel[off::step, ::step])
    if rr.size < 30:
        return none, None, 0
    coef = fit_level(s[off::step, ::step][sel[off::step, ::step]], rr * step + (row0 + off), cc * step, (h, w),
                     degree=2)
    sn = s / np.maximum(poly_field(coef, (h, w), 2)[row0:], 1e-9)
    vals = sn[region]
    t = _otsu(vals)
    dark_lvl, matrix = _split_medians(vals, t)
    # a texture without pores has no clearly darker phase
    if matrix - dark_lvl < 0.25 * max(abs(matrix), 1e-9):
        return none, None, 0
    pores = region & (sn < (matrix + dark_lvl) / 2)
    # opened (ndi.binary_opening) with the pore phase continuing past the image's sides and
    # bottom as it meets them: counted as matrix there, the opening ate the cap of a pore centred
    # below the image, 1-3 rows high, through which two clusters joined (benchmark seed 4000
    # sec_tongues case 1: continuity 0.45 for 0.97)
    pores = cross_dilate(cross_erode(np.pad(pores, 1, mode="edge")))[1:-1, 1:-1]
    # channels joining pores (continuous support) and pores touching through the blur would
    # merge them: each pore is rebuilt from its inscribed circle (see _split_pores)
    comp = ndi.label(pores)  # (the pore phase's components: split here, clusters in _continuity)
    lab, n = _split_pores(pores, comp)
    if n == 0:
        return none, None, 0
    areas = np.bincount(lab.ravel(), minlength=n + 1).astype(float)
    # exclude pores cut by the region's border (interface side, image sides, each column's last
    # row): those touching it, and those the pore phase joins to a chord of it within
    # CUT_REACH_PX. A pore cut by the image's bottom is rebuilt from the inscribed circle of its
    # visible part, which need not reach the border: cut 25 px short of its bottom, its disc
    # ended 3 px above the last row and it was counted whole (benchmark seed 3000 case 7:
    # support D 6.8 % off; 14 % before the margin of 2 px that stood for this test). A chord:
    # a run of CUT_CHORD_PX pore pixels along the border (reached from any pore pixel on it, a
    # speckle of the texture touching both the border and a whole pore cut that pore: sec_dark
    # 10@3000, support D 3.1 -> 5.9 %). With that, no margin: a whole pore 1-3 px from
    # the border, matrix between, is whole, as the truth has it (a margin of 2 px cut those:
    # support D 5.4-8.9 % off in three sec_wavy cases with 4-6 pores)
    rr, cc = rows[row0:], np.arange(w)[None, :]
    edge = ~region | (rr < 2) | (rr > bottom[None, :] - 1) | (cc < 1) | (cc >= w - 1)
    keep = np.ones(n + 1, bool)
    keep[0] = False
    keep[lab[cross_dilate(edge) & (lab > 0)]] = False  # the pores touching it
    reach = _border_chords(pores, np.clip(bottom - row0, 0, pores.shape[0] - 1))
    for _ in range(CUT_REACH_PX):
        reach = cross_dilate(reach) & pores
    keep[lab[cross_dilate(reach) & (lab > 0)]] = False  # ... and those joined to a chord of it
    keep &= areas >= max(12.0, 0.1 * float(areas[keep].max()) if keep.any() else 12.0)
    d_px = 2 * np.sqrt(areas[keep] / math.pi)
    # the typical pore diameter for the continuity's "near the interface": of the whole pores,
    # else that of the largest piece (a lower bound: the support's pores are at least that wide —
    # the median piece, a cap or a channel's stub, put a cluster 0.85 of a pore below the
    # interface out of reach: benchmark seed 2000 sec_thin case 10, continuity 0 for 1)
    d_typ = float(d_px.mean()) if d_px.size else 2 * math.sqrt(float(areas[1:].max()) / math.pi)
    # the pore area: the pores without their channels, plus the pieces cut by the image's sides
    # and bottom (caps of pores centred outside it, too small to hold an inscribed circle)
    discs = lab > 0
    rest, n_rest = ndi.label(pores & ~discs)
    last = np.clip(bottom - row0, 0, rest.shape[0] - 1)  # (each column's last row, on the rows kept)
    cut = np.unique(np.r_[rest[last, np.arange(w)], rest[:, 0], rest[:, -1]])
    discs |= _in_labels(rest, n_rest, cut[cut > 0])
    cont, k_cl = _continuity(pores, discs, np.where(valid, interface, h), h, d_typ, row0, comp, bottom)
    return d_px * px, cont, k_cl


#: :func:`_support_pores`: how far (px, through the pore phase) a rebuilt pore may lie from a
#: chord of the border (a run of pore pixels along it at least ``CUT_CHORD_PX`` long) and be cut
CUT_REACH_PX = 4
CUT_CHORD_PX = 5


def _border_chords(pores: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The pore pixels on the image's border (sides, each column's row ``last``) in runs of at
    least ``CUT_CHORD_PX`` along it: where a pore is cut by the border."""
    h, w = pores.shape
    out = np.zeros_like(pores)
    cols = np.arange(w)
    on = pores[last, cols]
    for a, b in _runs(on):
        if b - a >= CUT_CHORD_PX:
            out[last[a:b], cols[a:b]] = True
    for c in (0, w - 1):
        side = pores[:, c] & (np.arange(h) <= last[c])
        for a, b in _runs(side):
            if b - a >= CUT_CHORD_PX:
                out[a:b, c] = True
    return out


def _in_labels(lab: np.ndarray, n: int, ids: np.ndarray) -> np.ndarray:
    """``np.isin(lab, ids)`` for a label image with labels 0..n, by a lookup table."""
    lut = np.zeros(n + 1, bool)
    lut[ids] = True
    return lut.take(lab)  # (take: ~1.5× the fancy index's speed on a label image, the same values)


def _split_medians(vals: np.ndarray, t: float) -> tuple[float, float]:
    """``(median(vals[vals < t]) or vals.min() when there are none, median(vals[vals >= t]))``
    from the order statistics of ``vals`` alone: the values below ``t`` are its lowest, so each
    median is the mean of the same one or two order statistics (taken by np.median itself),
    found by :func:`._quantiles._order_stats` (a bracket from a subsample, a partition of the
    few values inside it) instead of a partition of the whole array."""
    n_lo = int(np.count_nonzero(vals < t))
    n_hi = int(np.count_nonzero(vals >= t))
    spans = [(0, n_lo), (n_lo, n_hi)]
    kth = sorted({b + k for b, n in spans if n for k in ((n - 1) // 2, n // 2)})
    if n_lo + n_hi == vals.size:  # (no NaN: each value below t or not)
        ks = np.array(kth, np.intp)
        v = _order_stats(vals.reshape(-1), ks)  # ascending with ks; a span's two are adjacent
        at = {k: i for i, k in enumerate(kth)}
        med = [float(np.median(v[at[b + (n - 1) // 2]: at[b + n // 2] + 1])) if n else math.nan for b, n in spans]
    else:
        part = np.partition(vals, kth)
        med = [float(np.median(part[b + (n - 1) // 2: b + n // 2 + 1])) if n else math.nan for b, n in spans]
    return (med[0] if n_lo else float(vals.min())), med[1]  # (np.median of nothing: nan)


def _split_pores(pores: np.ndarray, comp: tuple[np.ndarray, int]) -> tuple[np.ndarray, int]:
    """Pores joined by channels (a continuous support) or touching through the blur separated
    again, as a label image: each pore is rebuilt as the part of the mask within its inscribed
    circle (a peak of the Euclidean distance transform) — a disc pore whole, its channels cut at
    its rim; a pixel claimed by two circles goes to the nearer centre (relative to the radius).
    A peak where channels cross is no pore: there the mask continues in wide arms all around the
    inscribed circle (a pore's rim borders the matrix except where its channels leave).
    Components without a peak (small pieces) keep their own label; channel remnants are dropped.
    ``comp``: ``ndi.label(pores)``, which the caller has already."""
    lab0, n0 = comp
    if n0 == 0:
        return lab0, 0
    objs = ndi.find_objects(lab0)
    areas = np.bincount(lab0.ravel(), minlength=n0 + 1)[1:]
    hh = np.array([o[0].stop - o[0].start for o in objs], float)
    ww = np.array([o[1].stop - o[1].start for o in objs], float)
    # not a single disc: pores joined by channels fill little of their box (a disc 0.785),
    # two touching pores make an elongated one
    multi = (areas > 24) & ((areas < 0.7 * hh * ww) | (np.maximum(hh, ww) > 1.25 * np.minimum(hh, ww)))
    if not multi.any():
        return lab0, n0
    idx = np.nonzero(multi)[0]
    r0, r1 = min(objs[i][0].start for i in idx), max(objs[i][0].stop for i in idx)
    c0, c1 = min(objs[i][1].start for i in idx), max(objs[i][1].stop for i in idx)
    r0, r1, c0, c1 = max(r0 - 2, 0), min(r1 + 2, pores.shape[0]), max(c0 - 2, 0), min(c1 + 2, pores.shape[1])
    sub = pores[r0:r1, c0:c1] & _in_labels(lab0[r0:r1, c0:c1], n0, idx + 1)
    # the distances as their exact squares (integers: comparisons and max filters on a small
    # integer array); a distance wanted as a value is the square root of its square, the same
    # float64 that ndi.distance_transform_edt gives (see _edt), and a comparison with a float
    # is made on the square through _sq_at_least, which gives the same bits
    key = _edt_key(sub)
    if key.dtype.kind == "f":  # (no background: scipy's own distances, compared as they are)
        dist_of, at_least = (lambda k: k), (lambda c: c)
    else:
        dist_of, at_least = (lambda k: np.sqrt(k, dtype=np.float64)), _sq_at_least
    d_max = float(dist_of(key.max()))
    # the typical pore radius: the distance transform's peaks (pore centres; a channel's ridge
    # is lower) above 0.4 of the highest
    peaks = (key >= box_max(key, 2)) & (key >= at_least(0.4 * d_max))  # box_max: maximum_filter, exact
    r_typ = float(np.median(dist_of(key[peaks]))) if peaks.any() else d_max
    if r_typ < 3:
        return lab0, n0
    # one peak per pore (a window of 1.2 typical radii; plateaus count once)
    size = int(2 * round(0.6 * r_typ) + 1)
    # (a pore's peak at least half the typical radius: a crossing of channels (at most 0.3 of
    # a pore's radius wide) peaks lower, and its wide arms reject it below. At 0.65, a pore
    # 0.73 × the mean diameter joined by channels (support cv 0.2: a few % of them) had no
    # peak and was lost whole: benchmark seed 5000 case 6 support D 5.8 % over, unflagged.
    # Below 0.65 only where the inscribed circle stays inside the image: the distance transform
    # does not see the image's border, and a channel running out through it peaks there as
    # wide as it is along the border)
    pk = (key >= box_max(key, size // 2)) & (key >= at_least(0.5 * r_typ))  # not a channel crossing
    # (the border test on the peaks' pixels only; their row-major order kept for the labels)
    py, px_ = np.nonzero(pk)
    to_border = np.minimum(np.minimum(py + r0 + 1, pores.shape[0] - (py + r0)),
                           np.minimum(px_ + c0 + 1, pores.shape[1] - (px_ + c0)))
    kv = key[py, px_]
    # (dist < t for a whole t >= 1 is d2 < t²: sqrt(t² - 1) rounds below t)
    on = (kv >= at_least(0.65 * r_typ)) | (kv < (to_border if key.dtype.kind == "f" else to_border * to_border))
    pk[py[~on], px_[~on]] = False
    py, px_ = py[on], px_[on]
    plab, npk = ndi.label(pk, structure=np.ones((3, 3)))
    if npk == 0:
        return lab0, n0
    pl = plab[py, px_]
    pk_dist = dist_of(key[py, px_])
    cen, rad = _peak_circles(pl, npk, py, px_, pk_dist)
    # One pore, one peak: a disc sheared a little (a tilted section) has its largest inscribed
    # circle on a short ridge, whose equal maxima need not touch (seed 2000 sec_tilt case 2: two
    # 3.6 px apart split a pore in halves, support D 14 % short, unflagged). Peaks whose centres
    # lie within half the smaller radius of each other are one pore's: two pores that close
    # would overlap by more than one and a half radii.
    merged = _merge_close_peaks(cen, rad)
    if merged is not None:
        pl = merged[pl - 1] + 1
        npk = int(merged.max()) + 1
        cen, rad = _peak_circles(pl, npk, py, px_, pk_dist)
    # channel crossings: arms leaving the inscribed circle as wide as a good part of it — a
    # pore's channels are at most 0.3 of its radius wide (half width 0.15 × the smaller pore's
    # diameter); the arms seen on the ring at 1.35 r, their half width as the distance transform
    ang = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    ry = cen[:, :1] + (1.35 * rad[:, None] + 1) * np.sin(ang)[None, :]
    rx = cen[:, 1:] + (1.35 * rad[:, None] + 1) * np.cos(ang)[None, :]
    inside = (ry >= 0) & (ry < sub.shape[0] - 0.5) & (rx >= 0) & (rx < sub.shape[1] - 0.5)
    iy = np.clip(np.rint(ry).astype(int), 0, sub.shape[0] - 1)
    ix = np.clip(np.rint(rx).astype(int), 0, sub.shape[1] - 1)
    dv = np.where(inside, dist_of(key[iy, ix]), 0.0)
    good = np.array([_wide_arms(ring, float(0.45 * r)) < 2 for ring, r in zip(dv.tolist(), rad)], bool)
    out = np.zeros(pores.shape, np.int32)
    best = np.full(sub.shape, np.inf)
    osub = out[r0:r1, c0:c1]
    k = 0
    for (cy, cx), r in zip(cen[good], rad[good]):
        k += 1
        y0, y1 = max(int(cy - r - 3), 0), min(int(cy + r + 4), sub.shape[0])
        x0, x1 = max(int(cx - r - 3), 0), min(int(cx + r + 4), sub.shape[1])
        yy, xx = np.ogrid[y0:y1, x0:x1]
        q = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / (r + 1.5)  # + the rim pixels
        mine = sub[y0:y1, x0:x1] & (q <= 1.0) & (q < best[y0:y1, x0:x1])
        osub[y0:y1, x0:x1][mine] = k
        best[y0:y1, x0:x1][mine] = q[mine]
    # components holding no accepted peak keep their own label (small pores, or all of them)
    held = np.zeros(n0 + 1, bool)
    held[lab0[out > 0]] = True
    held[0] = True
    ids_rest = np.nonzero(~held)[0]
    if ids_rest.size:
        lut = np.zeros(n0 + 1, np.int32)
        lut[ids_rest] = k + np.arange(1, ids_rest.size + 1)
        out = np.where(out > 0, out, lut.take(lab0))
        k += int(ids_rest.size)
    return out, k


def _edt(mask: np.ndarray, with_key: bool = False):
    """``ndi.distance_transform_edt(mask)``, bit-identical: scipy's feature transform (the
    nearest background pixel of each pixel), then the squared distance to it as an exact integer
    (instead of scipy's float64 temporaries) and its float64 square root. ``with_key``: also that
    squared distance (:func:`_edt_key`)."""
    key = _edt_key(mask)
    dist = key if key.dtype.kind == "f" else np.sqrt(key, dtype=np.float64)
    return (dist, key) if with_key else dist


def _edt_key(mask: np.ndarray) -> np.ndarray:
    """The squared Euclidean distance of each pixel to the nearest background pixel, exact
    (int16 when it fits, else int32/int64): its float64 square root is
    ``ndi.distance_transform_edt(mask)`` bit for bit (a float64 square root of integers below
    2**52 is correctly rounded and strictly increasing, so the squares also order the pixels
    as the distances do). Without background: scipy's own (arbitrary) float64 distances."""
    if mask.all():  # (no background: scipy's own, arbitrary, answer)
        return ndi.distance_transform_edt(mask)
    # (on the transposed mask, wide images being processed faster that way; the distance to the
    # nearest background pixel is the same whichever of equally near ones the transform picks)
    mt = np.ascontiguousarray(mask.T)
    ft = ndi.distance_transform_edt(mt, return_distances=False, return_indices=True)
    it = np.int32 if max(mask.shape) < 30000 else np.int64  # the squared distance must not overflow
    d2 = ft[0].astype(it, copy=False) - np.arange(mt.shape[0], dtype=it)[:, None]
    dx = ft[1].astype(it, copy=False) - np.arange(mt.shape[1], dtype=it)[None, :]
    d2 *= d2
    dx *= dx
    d2 += dx
    return np.ascontiguousarray((d2.astype(np.int16) if int(d2.max()) < 2 ** 15 else d2).T)


def _sq_at_least(c: float) -> int:
    """The least whole m >= 0 whose float64 square root is at least ``c``: for a squared
    distance d2 (a whole number), ``sqrt(d2) >= c`` exactly when ``d2 >= _sq_at_least(c)``.
    (``c`` is a number: a NaN, which no distance reaches, is not handled.)"""
    if not c > 0:
        return 0
    m = max(int(math.ceil(c * c)), 0)
    while m > 0 and math.sqrt(m - 1) >= c:
        m -= 1
    while math.sqrt(m) < c:
        m += 1
    return m


def _continuity(pores: np.ndarray, discs: np.ndarray, interface: np.ndarray, h: int, d_typ: float, row0: int,
                comp: tuple[np.ndarray, int], bottom: np.ndarray) -> tuple[float | None, int]:
    """Area fraction of the pores (``discs``: the pores without their channels, as the
    definition counts pore area) in clusters of the pore phase (pores with channels) that reach
    from within one typical pore diameter of the interface to the image's bottom row; the
    cluster count. (``pores``, ``discs``: the image's rows from ``row0`` on; ``comp``:
    ``ndi.label(pores)``, which the caller has already; ``bottom``: each column's last row.)"""
    lab, n = comp
    if n == 0:
        return None, 0
    areas = np.bincount(lab[discs], minlength=n + 1).astype(float)
    rows = np.arange(row0, h)[:, None]
    near_top = discs & (rows - interface[None, :] <= d_typ)
    reach_top = np.zeros(n + 1, bool)
    reach_top[lab[near_top]] = True
    reach_bot = np.zeros(n + 1, bool)
    reach_bot[lab[discs & (rows >= bottom[None, :] - 1) & (rows <= bottom[None, :])]] = True
    span = reach_top & reach_bot
    span[0] = False
    total = float(areas[1:].sum())
    return (float(areas[span].sum()) / total if total > 0 else None), int(n)


def _peak_circles(pl: np.ndarray, npk: int, py: np.ndarray, px_: np.ndarray, dist: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Centre (row, col: the mean of its pixels) and radius (its largest distance) of each of
    the ``npk`` peaks, its pixels at ``(py, px_)`` labelled ``pl`` (1..npk)."""
    cnt = np.bincount(pl, minlength=npk + 1)[1:].astype(float)
    cen = np.c_[np.bincount(pl, py, npk + 1)[1:] / cnt, np.bincount(pl, px_, npk + 1)[1:] / cnt]
    rad = np.zeros(npk + 1)
    np.maximum.at(rad, pl, dist)
    return cen, rad[1:]


def _merge_close_peaks(cen: np.ndarray, rad: np.ndarray) -> np.ndarray | None:
    """Each peak's group (0..k-1, numbered in the order of each group's first peak) when some
    peaks' centres lie within half the smaller radius of each other (groups by transitive
    closure); None when none do.

    Candidate pairs come from a k-d tree within half the largest radius, so time and memory
    follow the pairs, not the square of the peaks: a top view given as a section has thousands
    of "support pores", and the n × n distance matrix (and its min-propagation) took 1.7 s and
    ~100 MB per pass there."""
    n = len(rad)
    if n < 2:
        return None
    pairs = cKDTree(cen).query_pairs(0.5 * float(rad.max()), output_type="ndarray")
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        d = np.hypot(cen[i, 0] - cen[j, 0], cen[i, 1] - cen[j, 1])
        keep = d < 0.5 * np.minimum(rad[i], rad[j])
        i, j = i[keep], j[keep]
    if not len(pairs) or not len(i):
        return None
    _, label = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
    first = np.full(label.max() + 1, n)
    np.minimum.at(first, label, np.arange(n))
    rank = np.empty_like(first)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[label].astype(np.intp)


def _wide_arms(ring: list, thr: float) -> int:
    """How many runs of positive values on the ring (its end joined to its start) reach ``thr``
    (> 0) — the arms whose maximum reaches it — in plain Python over the few samples."""
    k = next((i for i, v in enumerate(ring) if not v > 0), None)
    if k is None:  # one run all round
        return int(max(ring) >= thr)
    count, hit = 0, False
    for v in ring[k + 1:] + ring[:k + 1]:  # ends on a non-positive sample, closing every run
        if v > 0:
            hit = hit or v >= thr
        else:
            count += hit
            hit = False
    return count
