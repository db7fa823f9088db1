"""Whether the pores inside a film communicate with their neighbours, from a section (part of
:mod:`castrig.analysis.section`; claim 1, definitions in DESIGN §4).

The film's dark cavities between the upper envelope and the interface, as the column profile of
their height; one cavity per bump (a dip below :data:`SPLIT_DIP` of the lower neighbouring bump splits two).
Two cavities are joined only by an opening below the top of the wall between them — found on
the grey, where its brightest grey across first reaches halfway from the background to the
film: for notches open to the top the background over the wall joins nothing. Joined: the
wall's top clearly below the film's surface (an opening just under the surface leaves a strip of
film too thin to resolve), or a dark region across the wall below its top (an opening resolved
from about 2 px high). Neighbours: consecutive cavities whose wall is thinner than their mean
width; pairs with a cavity cut by the image's side are left out. Fraction = joined / neighbouring
pairs.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from .section_lines import _runs


#: a dip in the dark columns' height below this share of the lower bump beside it splits two
#: cavities. (At 0.75, two cavities overlapping in the film — joined, hardly any wall left between
#: them — read as one, and the joined pair was lost: the twin's sections (castrig sim render,
#: seeds 1-15, 56 views) read pore communication 0.053 for 0.175-0.25 (seed 10 m002),
#: 0.05 for 0.143 (seed 6 at 512 px); the mean distance to the range the section can show 0.013,
#: at 0.85 0.007, the worst 0.122 → 0.062. analysis_accuracy.py: seed 1000's worst 'joined'
#: unchanged but sec_tongues 0.028 → 0.071 (case 6); 0.9 split more and read worse there)
SPLIT_DIP = 0.85


def _split_bumps(v: np.ndarray, ratio: float = SPLIT_DIP) -> list[int]:
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




def _piece_width(hcol: np.ndarray, lo: int, hi: int, e0: int, e1: int, cut_left: bool, cut_right: bool) -> float:
    """A cavity's width along the section, for telling its neighbours (columns). Where a run of
    dark columns was split between two cavities joined by a window (``_split_bumps``), the split
    falls anywhere along the window's flat dip, so the dark extent up to it is not the cavity's
    width: a cavity with one side cut is measured from its free edge to its dome's middle (the
    columns within 90 % of its deepest), twice. Benchmark seed 2000 sec_flip case 1: the split
    15 px into the wall made a cavity 62 px wide for 42, and its neighbour 41 px away (farther
    than their mean half widths: not neighbours) a pair, not joined."""
    if cut_left == cut_right:
        return float(e1 - e0)
    v = hcol[lo:hi]
    mid = lo + float(np.mean(np.nonzero(v >= 0.9 * v.max())[0])) + 0.5
    return 2.0 * (e1 - mid) if cut_left else 2.0 * (mid - e0)


def _wall_top(s: np.ndarray, r_from: int, r_to: int, level: float) -> tuple[int | None, float]:
    """The top of the wall between two cavities (``s``: the columns from one's middle to the
    other's): the first row in [r_from, r_to) where the brightest grey across it reaches
    ``level`` (halfway between the background and the film), and that crossing sub-pixel
    (pixel centres at k + 0.5); (None, nan) where it never does.

    Taken on the grey, not on the film's mask: a wall a few px thin keeps under the blur a
    grey between half the film's and the mask's threshold, and its edge on the mask lay
    several px under the surface it reaches (read as a wall cut down: joined)."""
    if r_to <= r_from:
        return None, math.nan
    prof = s[r_from:r_to].max(axis=1)
    on = np.nonzero(prof >= level)[0]
    if not on.size:
        return None, math.nan
    k = int(on[0])
    if k == 0:
        return r_from, r_from + 0.5
    v0, v1 = float(prof[k - 1]), float(prof[k])
    return r_from + k, r_from + k - 0.5 + float(np.clip((level - v0) / max(v1 - v0, 1e-12), 0, 1))


def _dark_across(dark: np.ndarray) -> bool:
    """Does one dark region (8-connected) reach from the first column to the last — from one
    cavity's middle to the other's, below the wall's top (rows above it are the background
    over the wall, which joins nothing)?"""
    if dark.shape[0] == 0 or dark.shape[1] < 2:
        return False
    lab, n = ndi.label(dark, structure=np.ones((3, 3), bool))
    if n == 0:
        return False
    # (a lookup of the labels on the first column, read on the last: no sorting)
    left = np.zeros(n + 1, bool)
    left[lab[:, 0]] = True
    left[0] = False
    return bool(left[lab[:, -1]].any())


def _communication(sn: np.ndarray, top: np.ndarray, bottom: np.ndarray, valid: np.ndarray, bg_lvl: float,
                   surface: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Neighbouring cavity pairs along the section and whether each pair is joined: returns
    (pairs (P, 2) of cavity (start, stop) columns — for inspection —, joined (P,) bool, and the
    height (px, its dark columns' peak) of each pair's smaller cavity: an opening between the
    two is a share of it, so it says whether the pixel size can show one,
    :data:`castrig.analysis.quality.OPENING_SHARE`).

    ``top`` bounds the band the cavities are looked for in; ``surface`` is the film's top
    surface (the envelope bridging the notches and lids; ``top`` when not given).

    The wall between two cavities is the columns from one's middle to the other's; its top,
    the first row down where its brightest grey across reaches halfway from the background to
    the film (:func:`_wall_top`). Only an opening below that top joins them — for cavities
    open to the top, the background over the wall joins nothing. Joined: no wall (no film
    across it down to the interface); or its top clearly below the surface (more than 2.5
    px under both ``surface`` and ``top``: an opening just under the surface leaves above it a strip of film too thin to be
    resolved, and the wall looks cut down to the opening's bottom); or one dark region across
    it below its top (:func:`_dark_across`).

    Not joined by a dip alone: a wall's brightest grey across it dipping down the wall, short
    of the cavities' threshold, was once taken for an opening too thin to reach it. Against the
    twin's geometry (analysis_accuracy.py, seeds 1000-6000, optical and sec_texture) that rule
    joined 51 pairs and none rightly: 34 walls without an opening (a wall a few px thin dips at
    the cavities' waist under the blur) and 17 openings 1.5-2.7 px high, under the resolution
    the dark-region rule reaches (1.9 px)."""
    h, w = sn.shape
    # (the band's rows only, [b0, b1): rows > top + 3 >= the lowest top, rows < bottom - 2 <
    # the highest bottom)
    b0, b1 = 0, h
    if valid.any() and np.isfinite(top[valid]).all() and np.isfinite(bottom[valid]).all():
        b0 = min(max(int(np.floor(np.min(top[valid]))), 0), h)
        b1 = max(min(int(np.ceil(np.max(bottom[valid]))), h), b0)
    rows = np.arange(b0, b1)[:, None]
    band = (rows > top[None, :] + 3) & (rows < bottom[None, :] - 2) & valid[None, :]
    thr = (1 + bg_lvl) / 2
    dark = band & (sn[b0:b1] < thr)
    hraw = dark.sum(axis=0)
    hcol = ndi.uniform_filter1d(hraw.astype(np.float64), 3, mode="nearest")
    # (start, stop, run id, peak height, first and last column dark unsmoothed + 1, width)
    cav: list[tuple[int, int, int, float, int, int, float]] = []
    for rid, (a, b) in enumerate(_runs(hcol >= 1.0)):
        cuts = [a] + [a + c for c in _split_bumps(hcol[a:b])] + [b]
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            if hi - lo >= 2:
                on = np.nonzero(hraw[lo:hi] >= 1)[0]
                e0, e1 = (lo + int(on[0]), lo + int(on[-1]) + 1) if on.size else (lo, hi)
                cav.append((lo, hi, rid, float(hcol[lo:hi].max()), e0, e1,
                            _piece_width(hcol, lo, hi, e0, e1, lo != a, hi != b)))
    if len(cav) < 2:
        return np.zeros((0, 2), int), np.zeros(0, bool), np.zeros(0)
    peak_min = max(3.0, 0.25 * float(np.median([c[3] for c in cav])))
    cav = [c for c in cav if c[3] >= peak_min]
    pairs, joined, heights = [], [], []
    # a cavity cut by the image's side: its width is not seen, so neither its neighbours
    cut = [c[4] <= 0 or c[5] >= w for c in cav]
    # neighbours: the wall between them (unsmoothed extents) thinner than their mean width
    # (one column either side between the dark columns' extent, which misses the blurred rims,
    # and the smoothed one, which adds a column)
    near = [c0[2] == c1[2] or c1[4] - c0[5] < 0.5 * (c0[6] + c1[6]) + 1.0 for c0, c1 in zip(cav[:-1], cav[1:])]
    # the surface over a wall: the lower of the film's surface and the band's top. Under a run
    # of notches reaching the image's side the surface is held level from the last solid
    # column, above the walls' tops where the film thins (benchmark seed 3000 sec_texture case
    # 13: 3-7 px); the band's top sags into a run of lids (seed 1000 case 12: 7 px). A wall is
    # cut down only where both see it so
    film_top = top if surface is None else surface
    surf = np.fmax(film_top, top)
    for i, ((c0, c1), nb) in enumerate(zip(zip(cav[:-1], cav[1:]), near)):
        if nb and not (cut[i] or cut[i + 1]):
            # the wall: the columns from one cavity's middle to the other's (its dark extent's)
            m0, m1 = (c0[4] + c0[5]) // 2, (c1[4] + c1[5]) // 2 + 1
            r_from = max(int(math.floor(float(np.min(np.fmin(top[m0:m1], film_top[m0:m1]))))) - 6, 0)
            r_to = min(int(math.floor(float(np.min(bottom[m0:m1])) - 2)), h)
            k0, y_wall = _wall_top(sn[:, m0:m1], r_from, r_to, thr)
            if k0 is None:
                same = r_to - r_from >= 5  # no film across the wall down to the interface
            else:
                # (the surface over the wall's brightest column at its top)
                xw = m0 + int(np.argmax(sn[k0, m0:m1]))
                same = y_wall - float(surf[xw]) > 2.5
                if not same:
                    # (from the wall's top down, whatever the band: over lids too thin for the
                    # film's mask the envelope sags, and the band under it missed a window)
                    # (the rows down to the last one above bottom - 2 only: those below are
                    # all outside and join nothing)
                    lim = bottom[m0:m1] - 2
                    fin = lim[np.isfinite(lim)]
                    r_end = (h if np.isposinf(lim).any() else
                             min(h, max(k0, math.ceil(float(fin.max())))) if fin.size else k0)
                    rr = np.arange(k0, r_end)[:, None]
                    same = _dark_across((sn[k0:r_end, m0:m1] < thr) & (rr < lim[None, :]))
            pairs.append((c0[0], c1[1]))
            joined.append(same)
            heights.append(min(c0[3], c1[3]))
    return np.array(pairs, int).reshape(-1, 2), np.array(joined, bool), np.array(heights, float)
