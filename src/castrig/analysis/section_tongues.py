"""Polymer reaching into the support: tongues and penetration, from a section (part of
:mod:`castrig.analysis.section`; claim 1, definitions in DESIGN §4).

Penetration is polymer (film-bright) continuing below the interface into the support's surface
pores. The film's bottom edge per column dips below the interface there; the interface is
followed outside the tongues and their blurred shoulders. Depth = mean over the tongues
("sites") of each tongue's median depth over its central half; fraction = the tongues' widths at
half their depth (sub-pixel) / columns measured. Where the support's grains reach the film's
grey, a tongue must be the film's grey continued (compared with the film's own at the same
distance from its edge) and wider than the support's grains (their size measured in the image).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from .section_levels import _otsu
from .section_lines import _edge_noise, _filled_median, _interface_line, _runs


def _tongues(y_bot: np.ndarray, has: np.ndarray, w: int, bare_edge: np.ndarray | None = None) -> np.ndarray:
    """Columns where the film's bottom edge dips below the interface (polymer entering the
    support): more than max(2 px, 4 × the edge's column noise) below the interface's level (a
    robust straight line, :func:`_film_line`), in runs of at least 3 columns.

    ``bare_edge``: the support's top edge in the columns without film (:func:`_bare_edge`). There
    the dark phase meets the support at the interface (or in a support pore open to it, deeper
    and scattered). Where the line those columns and the film's share lies more than 2 px off
    the film's own, with film bottoms on it (8 columns), it is taken, refined on those: a film
    cut through by its cavities over most of the section leaves few columns of film on the
    interface, and its line ran through a tongue's flat bottom wider than all of them, 130 px
    below the support's top edge beside it (benchmark seed 1000 sec_thin case 2: T 45 px read
    176), or through the flared tops of a few struts, 66 px above it (case 13)."""
    ok = has & np.isfinite(y_bot)
    if ok.sum() < 8:
        return np.zeros(w, bool)
    x = np.arange(w)
    y = np.interp(x, x[ok], y_bot[ok])
    xo, yo = x[ok].astype(np.float64), y[ok]
    slope, level = _film_line(xo, yo, w)
    okb = ~has & np.isfinite(bare_edge) if bare_edge is not None else np.zeros(w, bool)
    if okb.sum() >= 8:
        s2, l2 = _film_line(np.concatenate([xo, x[okb]]), np.concatenate([yo, bare_edge[okb]]), w)
        near = np.abs(yo - s2 * xo - l2) <= 2.0
        if float(np.max(np.abs((slope - s2) * x[[0, -1]] + level - l2))) > 2.0 and near.sum() >= 8:
            slope, level = _interface_line(xo[near], yo[near], w)
    base = slope * x + level
    sig = _edge_noise(y[ok])
    t = ok & (y - base > max(2.0, 4 * sig))
    return ndi.binary_opening(t, structure=np.ones(3, bool))


def _film_line(xo: np.ndarray, yo: np.ndarray, w: int) -> tuple[float, float]:
    """(slope, level) of the interface under the film's bottom edge (columns ``xo``, rows ``yo``),
    tongues below it."""
    # the interface: a straight line (tilt allowed). Tongues lie below it (each at its own
    # depth, together up to ~60 % of the columns), through-pore necks and cavities on it above
    # (scattered, a few columns each): the interface is the shallowest level that many columns
    # share — the first peak of the detrended edge's histogram (1 px bins, smoothed) at least
    # 0.3 × the highest and 5 % of the columns; the slope refined on the columns within 2 px
    slope, level = _interface_line(xo, yo, w)
    # wide tongues over most of the film (two thirds of its columns in a twin section at 70 %RH)
    # whose flat bottoms happen to line up under some slope can outscore the interface: the line
    # then runs through their bottoms, with the interface's own columns, many and level, above
    # it (T came out 2.47 µm for 1.53). The interface has only scattered columns above it (a
    # through-pore's sides, necks); while the line has half as many above it as on it, and those
    # share a level of their own (5 % of the columns on one line, as a level counts in
    # _interface_line), that level is looked at next (up to 3 times: the tongues of one section
    # lined up under two slopes)
    for _ in range(3):
        r = yo - slope * xo - level
        above = r < -2.0
        if above.sum() < max(8, 0.5 * np.count_nonzero(np.abs(r) <= 2.0)):
            break
        s2, l2 = _interface_line(xo[above], yo[above], w)
        if np.count_nonzero(np.abs(yo[above] - s2 * xo[above] - l2) <= 2.0) < 0.05 * xo.size:
            break  # scattered: the sides of pores cut through the film (a twin section of grade 4)
        slope, level = s2, l2
    return slope, level


def _uniform_tongues(sn: np.ndarray, tongue: np.ndarray, interface: np.ndarray, y_bot: np.ndarray, top: np.ndarray,
                     valid: np.ndarray, dark: float, pore_px: float = 0.0) -> np.ndarray:
    """Keep the tongues that are polymer: the film's own grey continued below the interface (a
    coarse-textured support's bright grains joined to the film's bottom edge look like tongues,
    but only their brightest reach the film's level).

    The film is its own reference, blur and noise included: over the columns where its bottom
    edge is the interface (away from tongues) and it is solid (no pixel from 3 px under its top
    to 3 px over the interface below ``dark``, the cavities' threshold), the grey of the pixels
    k px above that edge (k = 1, 2, …; beyond half its thickness, the film's interior there) —
    their median m_k and robust spread s_k (noise, and near the edge the support's grains seen
    through the blur). A tongue's pixels (central half of its columns, from half a pixel below
    the interface to one above its bottom edge) are compared with the film's at the same
    distance above their edge: z = (v - m_k) / s_k. Polymer: the median z not below -2.5 (as
    bright as the film at that distance within its spread; a deep tongue sits lower in uneven
    light, a shallow one over grains seen through the blur: both shift it by up to ~2) and the
    robust spread of z at most 3 (as uniform as the film; a grain's grey varies by several
    times the film's spread, and sinks well below it over its area).
    A grain whose grey is the film's (a dark film's level reached by the support's grains) is
    told only by its size: a tongue no deeper than two grains (4 × the grain's half width, the
    lag at which the support matrix's autocorrelation along x falls to one half,
    :func:`_grain_half_width`) must be at least 1.5 grains wide at half its depth (3 × the half
    width; one cut by the image's side, which continues beyond it, a grain wide inside — and,
    if narrower than 1.5 grains there, deeper than one grain) and, being
    the polymer in a support pore cut by the section (a chord of it), at least a quarter of the
    support's mean pore diameter ``pore_px`` (narrower only where the section grazes the pore:
    ~3 % of the cuts; a blob of the texture dark enough to reach a dark film's grey is as wide
    as a few grains, whatever the pores). A deeper one holds enough grains for the grey test.
    Scale-free: no grey level, texture amplitude or size is assumed."""
    h, w = sn.shape
    ok = valid & np.isfinite(y_bot) & np.isfinite(interface)
    ref = ok & (np.abs(y_bot - interface) < 1.0) & ~ndi.binary_dilation(tongue, iterations=6)
    rows = np.arange(h)[:, None]
    inner = (rows > top[None, :] + 3) & (rows < interface[None, :] - 3)
    ref &= inner.any(axis=0) & ~(inner & (sn < dark)).any(axis=0)
    xr = np.nonzero(ref)[0]
    if xr.size < 8:
        return tongue
    thick = float(np.median((interface - top)[ok]))
    n_k = int(max(2, min(thick / 2, 60)))
    j = np.arange(1, n_k + 1)[:, None]
    vals = sn[np.clip(np.floor(y_bot[xr][None, :] - 0.5 - j).astype(int), 0, h - 1), xr[None, :]]
    m_k = np.median(vals, axis=1)
    s_k = np.maximum(1.4826 * np.median(np.abs(vals - m_k[:, None]), axis=1), 1e-6)
    grain = _grain_half_width(sn, np.fmax(interface, np.where(ok, y_bot, -np.inf)), ok)
    dep = np.nan_to_num(y_bot - interface, nan=0.0)
    # a run whose bottom edge jumps between neighbouring columns by more than half the
    # shallower one's depth (and 4 px) is two things side by side — two tongues with the
    # support between them dipping elsewhere, a tongue beside a grain — each tested on its own
    # (the deeper side's first column left out): judged as one, the grey of the other failed
    # both (seed 5000 sec_dark case 0: two tongues 12-14 px deep, the pillar between them read
    # 27-34 px, all dropped: fraction 0.068 short, unflagged)
    # — where the pieces either side are at least 9 columns wide, as a tongue is (a blurred
    # shoulder or a grain at a tongue's side stays with it)
    tongue = tongue.copy()
    for a, b in _runs(tongue):
        d0, d1 = dep[a:b - 1], dep[a + 1:b]
        jump = np.abs(d1 - d0) > np.maximum(4.0, 0.5 * np.minimum(d0, d1))
        cut = [a + 1 + int(i) for i in np.nonzero(jump)[0]]  # a piece starts at each cut
        bounds = [a] + cut + [b]
        wide = [hi - lo >= 9 for lo, hi in zip(bounds[:-1], bounds[1:])]
        for k, c in enumerate(cut):
            if wide[k] and wide[k + 1]:
                tongue[c if dep[c] > dep[c - 1] else c - 1] = False
    out = tongue.copy()
    ambiguous = []  # (start, stop, depth) of side pieces told from a grain by neither size nor depth
    for a, b in _runs(tongue):
        q = (b - a) // 4
        cols = np.arange(a + q, b - q)
        cols = cols[ok[cols]]
        if cols.size and float(np.median(dep[cols])) <= 4.0 * grain:
            lo, hi = _half_extent(dep, a, b, 0.5 * float(np.median(dep[cols])), np.ones(w, bool))
            inside = 0 < lo and hi < w
            if hi - lo < (max(3.0 * grain, 0.25 * pore_px) if inside else 1.5 * grain):
                out[a:b] = False
                continue
            # one cut by the image's side and narrower than the grain test inside asks (3 half
            # widths) is told from a grain there by its depth alone: deeper than one grain (2
            # half widths: a dark grain met at the film's bottom reaches about that far), or
            # else as deep as the tongues seen inside (see below)
            if not inside and hi - lo < 3.0 * grain and float(np.median(dep[cols])) <= 2.0 * grain:
                ambiguous.append((a, b, float(np.median(dep[cols]))))
        if cols.size == 0:
            continue
        d = y_bot[cols] - interface[cols]
        jj = np.arange(1, int(max(float(d.max()), 1.0)) + 1)[:, None]
        sel = (d[None, :] - jj >= 0.5)
        if not sel.any():
            continue
        rr = np.clip(np.floor(y_bot[cols][None, :] - 0.5 - jj).astype(int), 0, h - 1)
        kk = np.minimum(jj, n_k) - 1
        z = ((sn[rr, np.broadcast_to(cols[None, :], rr.shape)] - m_k[kk]) / s_k[kk])
        z = np.broadcast_to(z, rr.shape)[sel]
        zm = float(np.median(z))
        # (the spread of what lies under the film's grey: polymer brighter than the film at that
        # distance from its edge is an SE glow at the tongue's free bottom, not a grain — the
        # glow's spread, counted, dropped tongues 9 px deep: foreign se_strong seed 4)
        zl = np.minimum(z, 0.0)
        zs = 1.4826 * float(np.median(np.abs(zl - np.median(zl)))) if z.size > 4 else 0.0
        if zm < -2.5 or zs > 3.0:
            out[a:b] = False
    # a side piece no deeper than a grain and too narrow to be told from one is kept only as
    # deep as the polymer seen inside the image (at least half the median depth of the tongues
    # kept there, or none seen): a grain at the side of an image whose tongues are much deeper
    # (seed 5000 sec_dark case 4: 5.7 px, 5 columns, grain 3.2 half width, beside the one tongue
    # 31 px deep) halved the mean depth; where the tongues are all that shallow (seed 1000
    # sec_dark case 5: 3.6 px beside tongues 3–6 px deep) a side one is as likely a tongue
    if ambiguous:
        d_in = [float(np.median(dep[a + (b - a) // 4:b - (b - a) // 4])) for a, b in _runs(out) if 0 < a and b < w]
        if d_in:
            ref = float(np.median(d_in))
            for a, b, d in ambiguous:
                if d < 0.5 * ref:
                    out[a:b] = False
    return out


def _film_body(body: np.ndarray) -> np.ndarray:
    """The film's body without the smooth patches of the support (a coarse texture has, by
    chance, smooth bright patches; under a cavity that cuts the film through they are the first
    bright pixels met): the pieces whose top lies below the film's bottom — per column the end
    of the body's first run down from the top, its running median over an eighth of the width
    (cavities and holes are narrower) — by more than max(4 px, a quarter of the film's
    thickness there) are dropped (a tongue hangs from the film, or starts at the interface
    under a cavity that cuts the film through)."""
    h, w = body.shape
    has = body.any(axis=0)
    if has.sum() < 8:
        return body
    first = np.argmax(body, axis=0)
    below = np.arange(h)[:, None] > first[None, :]
    end = np.argmax(~body & below, axis=0)  # the first non-body row under the first run
    end = np.where(end > 0, end, h)
    k = max(3, (w // 8) | 1)
    bot = _filled_median(end.astype(np.float64), has, k)
    top = _filled_median(first.astype(np.float64), has, k)
    lab, n = ndi.label(body)
    if n <= 1:
        return body
    objs = ndi.find_objects(lab, n)
    drop = np.zeros(n + 1, bool)
    for i, o in enumerate(objs, 1):
        if o is None:
            continue
        cols = np.arange(o[1].start, o[1].stop)
        cols = cols[(lab[:, o[1]] == i).any(axis=0)]
        lim = bot[cols] + np.maximum(4.0, 0.25 * (bot[cols] - top[cols]))
        # its highest pixel in each of its columns
        hi = np.argmax(lab[:, cols] == i, axis=0)
        drop[i] = bool(np.all(hi > lim))
    return body & ~drop[lab]


def _grain_half_width(sn: np.ndarray, base: np.ndarray, ok: np.ndarray) -> float:
    """Half width (px) of the support's grains: the lag along x at which the autocorrelation of
    its matrix (the pixels above their Otsu threshold, 5–65 px below ``base``; pores and the
    pairs touching them left out) falls to one half. 0 when it cannot be measured."""
    h, w = sn.shape
    rows = np.arange(h)[:, None]
    b = np.where(ok, base, np.inf)[None, :]
    reg = (rows > b + 4) & (rows <= b + 64)
    r_any = np.nonzero(reg.any(axis=1))[0]
    if r_any.size == 0 or reg.sum() < 200:
        return 0.0
    sub, reg = sn[r_any[0]:r_any[-1] + 1], reg[r_any[0]:r_any[-1] + 1]
    m = reg & (sub > _otsu(sub[reg]))
    if m.sum() < 200:
        return 0.0
    a = np.where(m, sub - float(np.median(sub[m])), 0.0)
    var = float(np.mean(a[m] ** 2))
    if var <= 0:
        return 0.0
    prev = 1.0
    for k in range(1, min(32, w // 4)):
        both = m[:, k:] & m[:, :-k]
        n = int(both.sum())
        if n < 100:
            break
        ac = float(np.sum(a[:, k:] * a[:, :-k] * both)) / n / var
        if ac < 0.5:
            return k - 1 + (prev - 0.5) / max(prev - ac, 1e-9)
        prev = ac
    return 0.0


def _penetration(y_bot: np.ndarray, interface: np.ndarray, tongue: np.ndarray, valid: np.ndarray,
                 sn: np.ndarray | None = None) -> tuple[np.ndarray, float | None]:
    """Per tongue its depth (px; median over the central half of its columns) and the fraction
    of the measured columns entered.

    A tongue's width is taken at half its depth (sub-pixel, between the last column at or beyond
    half the depth and the next): its core (columns ≥ 3 px deep) misses the blurred shoulders,
    which for a shallow tongue are a good part of it. With ``sn`` (a coarse-textured support,
    where the film's mask loses the shoulders: next to an edge the grey is not smooth) the sides
    are found on the grey itself: along the row at half the tongue's depth, where it crosses
    halfway between the tongue's grey there (its core's median) and the support matrix's
    (:func:`_row_sides`)."""
    n_valid = int(valid.sum())
    if n_valid == 0:
        return np.zeros(0), None
    dep = np.nan_to_num(y_bot - interface, nan=0.0)
    w = dep.size

    def depth(a: int, b: int) -> float | None:
        q = (b - a) // 4
        seg = (y_bot - interface)[a + q: b - q]
        seg = seg[np.isfinite(seg)]
        return float(np.median(seg)) if seg.size else None

    ext = []  # (lo, hi, xl, xr, core start, core stop) per core run, extended to half its depth
    for a, b in _runs(tongue):
        d = depth(a, b)
        if d is None:
            continue
        half = d / 2
        lo, hi = _half_extent(dep, a, b, half, valid)
        xl = float(lo)
        if lo > 0 and valid[lo - 1] and dep[lo] > dep[lo - 1]:
            xl = lo - float(np.clip((dep[lo] - half) / (dep[lo] - dep[lo - 1]), 0, 1)) + 0.5
        xr = float(hi)
        if hi < w and valid[hi] and dep[hi - 1] > dep[hi]:
            xr = hi + float(np.clip((dep[hi - 1] - half) / (dep[hi - 1] - dep[hi]), 0, 1)) - 0.5
        if ext and lo < ext[-1][1]:  # one tongue, its core split by a shallow dip: merged
            p = ext[-1]
            ext[-1] = (p[0], max(p[1], hi), min(p[2], xl), max(p[3], xr), p[4], b)
        else:
            ext.append((lo, hi, xl, xr, a, b))
    if sn is not None and ext:
        ext = _row_sides(sn, interface, y_bot, valid, ext, [depth(e[4], e[5]) for e in ext])
    depths = [d for d in (depth(e[4], e[5]) for e in ext) if d is not None]
    width = sum(max(e[3] - e[2], 0.0) for e in ext)
    return np.array(depths, float), float(min(width / n_valid, 1.0))


def _half_extent(dep: np.ndarray, a: int, b: int, half: float, ok: np.ndarray) -> tuple[int, int]:
    """Columns [lo, hi) of a tongue (core run [a, b)) at least ``half`` deep: the run's ends
    shallower than that dropped, then grown over the neighbouring columns (``ok``) that reach it.
    (The run holds every column at least 2 px deep: the blurred shoulders of a deep tongue, or
    the skirts of a narrow grain, which are not its width at half depth.)"""
    w = dep.size
    lo, hi = a, b
    while hi - lo > 1 and dep[lo] < half:
        lo += 1
    while hi - lo > 1 and dep[hi - 1] < half:
        hi -= 1
    while lo > 0 and dep[lo - 1] >= half and ok[lo - 1]:
        lo -= 1
    while hi < w and dep[hi] >= half and ok[hi]:
        hi += 1
    return lo, hi


def _row_sides(sn: np.ndarray, interface: np.ndarray, y_bot: np.ndarray, valid: np.ndarray, ext: list,
               depths: list) -> list:
    """Each tongue's sides (``ext`` rows (lo, hi, xl, xr, core start, core stop) of
    :func:`_penetration`) where the row at half its depth crosses halfway between the tongue's
    grey there and the support matrix's (its pixels above their Otsu threshold, 4–40 px under
    the film's bottom edge); searched from the core out to max(4 px, the depth) past the
    extent found on the edge, which is kept where no crossing is found."""
    h, w = sn.shape
    rows = np.arange(h)[:, None]
    yb = np.nan_to_num(y_bot, nan=h)
    below = (rows > yb[None, :] + 4) & (rows < yb[None, :] + 40) & valid[None, :]
    bv = sn[below]
    if bv.size < 20:
        return ext
    s_lvl = float(np.median(bv[bv > _otsu(bv)]))
    out = []
    for e, d in zip(ext, depths):
        lo, hi, xl, xr, a, b = e
        if d is None or d <= 0:
            out.append(e)
            continue
        reach = int(max(4, math.ceil(d)))
        c0, c1 = max(lo - reach, 0), min(hi + reach, w)
        x = np.arange(c0, c1)
        y = interface[x] + d / 2 - 0.5  # row coordinate of the half depth (pixel centres at k + 0.5)
        if not np.isfinite(y).all():
            out.append(e)
            continue
        r0 = np.clip(np.floor(y).astype(int), 0, h - 2)
        t = np.clip(y - r0, 0, 1)
        v = sn[r0, x] * (1 - t) + sn[r0 + 1, x] * t
        q = (b - a) // 4
        core = v[a + q - c0: b - q - c0]
        if core.size == 0:
            out.append(e)
            continue
        half = 0.5 * (float(np.median(core)) + s_lvl)
        if not float(np.median(core)) > s_lvl:
            out.append(e)
            continue
        nl, nr = xl, xr
        i = a + q - c0  # scan left from the core
        while i > 0 and v[i - 1] >= half:
            i -= 1
        if i > 0 and lo > 0:
            nl = c0 + i - 1 + 0.5 + float(np.clip((half - v[i - 1]) / max(v[i] - v[i - 1], 1e-9), 0, 1))
        j = b - q - 1 - c0  # scan right
        while j < x.size - 1 and v[j + 1] >= half:
            j += 1
        if j < x.size - 1 and hi < w:
            nr = c0 + j + 0.5 + float(np.clip((v[j] - half) / max(v[j] - v[j + 1], 1e-9), 0, 1))
        out.append((lo, hi, nl, nr, a, b))
    return out
