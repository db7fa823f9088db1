"""A section's interface that is not straight (part of :mod:`castrig.analysis.section`).

A tilted section is followed per column; an undulating one — the support's surface not flat,
the film following it — is measured straightened by the wave its interface shows: the film's
bottom edge is followed as a least-cost path over column blocks (:func:`_interface_path`), its
evidence for a bend weighed against a straight line (:func:`_bend_evidence`), tongues and bare
runs of support at its sides left out (:func:`_side_tongues`, :func:`_edge_jumps`), and the
image's columns shifted by the wave (:func:`_unshear`) before it is measured again (at most
:data:`WAVE_PASSES` times, each kept only on the conditions below).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from ._quantiles import percentile as _percentile
from .section_lines import _edge_noise, _filled_median, _interface_line


#: times a section is straightened at most, each time by what the measurement before found left
#: of its wave
WAVE_PASSES = 3
#: a straightened measurement is not kept when the interface it finds is seen over this
#: fraction of the width less than before (the rest are tongues, cut cavities, gaps), nor when
#: it is seen over any less and the top is more bent: a "wave" read from a flat section's deep
#: tongues and the cavities on its interface (benchmark seed 1000 case 11, flat families: 18-24
#: px crest to trough) bent the interface through the film's bottom edges, seen over 0.79 of the
#: width before and 0.57 after; seed 4000 sec_thin case 1: 0.82 then 0.77, the top's bend up
#: from 2.1 to 2.5 px rms, penetration depth 58 % off. A true wave straightened: -0.04 to +0.19,
#: the top straighter where the interface is seen over less
WAVE_LOST_INTERFACE = 0.05
#: crest to trough (px) of the smallest wave a section is straightened by, and how much smaller
#: what each straightening leaves must be than the wave it undid — both bends as measured, not
#: rounded to the whole pixels the columns are moved by: at a few pixels the rounding moves
#: either by up to a pixel, and seed 2000 sec_wavy case 11 (a 14 px wave, 6.60 px found, then
#: 3.41 left: 0.52 of it) read 4 of 6 px, 0.67, its right straightening undone — penetration
#: depth 32 % short, fraction 0.074 over, unflagged (kept: 1.2 %, 0.000)
WAVE_MIN_PX = 3.0
WAVE_SHRINK = 0.6
#: :func:`_bend_evidence` under which a section is measured as it lies (its edge on a straight
#: line as much as on the bend), and from which its first straightening is kept whatever the
#: interface's seen share does (a correct straightening of a wave with wide tongues finds more
#: of them, and so the interface over less of the width: seed 2000 sec_wavy case 0, 0.71 then
#: 0.50, T 16 % over when undone)
WAVE_EVIDENCE_MIN = 1.1
WAVE_EVIDENCE_TRUST = 1.5


def _unshear(img: np.ndarray, wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column x moved up by ``wave[x]`` whole pixels, on rows enough to hold every row of every
    column (``_unshear_pad(wave)`` more above, ``max(-wave)`` more below; the rows beyond the
    image repeat its edge row: background above, support below), and the row of each column
    that is the image's last. Row r shows the image's row r + wave[x] - pad.

    On the image's own rows the columns moved down lost their bottom rows, and the repeated
    rows of those moved up passed for image: a cluster of support pores reaching the image's
    bottom was cut short of it, or not, by the wave (benchmark seed 5000 sec_wavy case 6:
    continuity 0.48 for 1). The support is measured down to each column's last row."""
    h, w = img.shape
    up, down = _unshear_pad(wave), max(int(-wave.min()), 0)
    rows = np.clip(np.arange(h + up + down)[:, None] + (wave - up)[None, :], 0, h - 1)
    return np.take_along_axis(img, rows, axis=0), (h - 1 + up) - wave


def _unshear_pad(wave: np.ndarray) -> int:
    """The rows :func:`_unshear` adds above the image."""
    return max(int(wave.max()), 0)


def _running_median(y: np.ndarray, ok: np.ndarray, size: int) -> np.ndarray | None:
    """Median of ``y`` over the ``size`` columns round each (only those with ``ok``; a column with
    none in reach takes its neighbours' by interpolation)."""
    if np.count_nonzero(ok) < max(8, size):
        return None
    med = _filled_median(y, ok, size)
    near = ndi.binary_dilation(ok, iterations=size // 2)
    xs = np.nonzero(near)[0]
    return np.interp(np.arange(y.size), xs, med[xs])


def _edge_waves(y_top: np.ndarray, has: np.ndarray, y_bot: np.ndarray, thick_px: float,
                evidence: bool = True) -> tuple[np.ndarray | None, np.ndarray, float | None] | None:
    """How the film's top and its interface bend beyond a straight line (px down, per column),
    or None where too little of the interface was seen (the top None where it is seen over
    less than half the width: a film open to the top through many cavities).

    The interface: the film's bottom edge followed by :func:`_interface_path` over every column
    where it was found (not only where the measurement followed the interface, ``has_b``: that
    choice is made against a straight interface line — on a wave it drops the troughs as
    tongues, and the bend read from the crests alone came out flat: seed 1000 sec_wavy case 5,
    25 % of the width seen, 2.5 px rms off a 3.0 px wave). Edges that are a cavity's roof (closer
    to the film's top than half the film's thickness; at a wave's crest the whole film rises, its
    thickness stays) are left out, and so are short runs of columns where no film top is seen
    (under ``BARE_RUN_MIN``: a through-pore's side, where no film lies over the support and
    what edge is read is no film's bottom; one such column 7 px over the wave outweighed, capped
    above the path, a hundred columns of interface below it, and the path rose over them: seed
    5000 sec_wavy case 4, penetration depth 69 % off. A wide through-pore's bare support, a run
    of its own, is the interface seen: left out too, a film cut by pores wider than it is thick
    lost its wave, seed 1000 case 11 σt/T 0.11 over). So are the columns where the edge jumps
    to a neighbour's (:func:`_edge_jumps`): at a cavity's side sitting on the interface the
    column caught between its roof and the interface (15-27 px over the interface, past half
    the film below its top) passed for interface, each such column costing the path up to
    ``PATH_ABOVE_CAP`` above it; four of them held the path 16 px over the interface across
    175 columns, the bend's evidence fell to 1.07, and the section, measured as it lay, read
    its wave's troughs as tongues 3 px deep (seed 1000 case 11: penetration depth 46 % short,
    fraction 0.06 over; now 0.6 % and 0.001), and the columns of a tongue running out through
    the image's side (:func:`_side_tongues`: with no interface beyond it the path followed it
    down). The
    top: a running median over 3 film thicknesses (notches are narrower); it varies with the
    film's thickness as well as with the wave, and serves to judge a straightening only. Each
    is smoothed by a Gaussian of one thickness and the straight line fitted taken out (the
    section's tilt is followed as before); the interface's path at ``BEND_CHANGE_COST``.
    Third: :func:`_bend_evidence` of the interface's path at ``PATH_CHANGE_COST``, with
    ``evidence`` (asked of the section as it lies only), else None."""
    w = y_top.size
    ok_t = has & np.isfinite(y_top)
    ok_b = np.isfinite(y_bot) & (np.nan_to_num(y_bot - y_top, nan=np.inf) >= 0.5 * thick_px)
    bare = ok_b & ~np.isfinite(y_top)
    if bare.any():
        run, _ = ndi.label(bare)
        short = np.nonzero(np.bincount(run)[1:] < max(BARE_RUN_MIN[0], BARE_RUN_MIN[1] * thick_px))[0] + 1
        ok_b &= ~np.isin(run, short)
    ok_b &= ~(_edge_jumps(y_bot) | _side_tongues(y_bot, ok_b))
    if ok_b.sum() < 0.15 * w or not thick_px > 0:
        return None
    size = int(max(9, 3 * thick_px)) | 1
    if size > w // 3:
        return None  # (too few thicknesses fit the width to tell a wave from a thickness change)
    top = _running_median(y_top, ok_t, size) if ok_t.sum() >= 0.5 * w else None
    if evidence and BEND_CHANGE_COST != PATH_CHANGE_COST:  # (is it a wave: the path at the full cost of a level change)
        bot, gate = _interface_paths(y_bot, ok_b, (BEND_CHANGE_COST, PATH_CHANGE_COST))
    else:
        bot = gate = _interface_path(y_bot, ok_b, BEND_CHANGE_COST)
    x = np.arange(w, dtype=float)

    def bend(e: np.ndarray) -> np.ndarray:
        e = ndi.gaussian_filter1d(e, max(1.0, thick_px), mode="nearest")
        return e - np.polyval(np.polyfit(x, e, 1), x)

    return (None if top is None else bend(top)), bend(bot), (_bend_evidence(y_bot, ok_b, gate) if evidence else None)


#: :func:`_edge_waves`: the fewest columns (px, and film thicknesses) a run of columns with no
#: film top must span for its edge to count as the interface seen
BARE_RUN_MIN = (8.0, 0.25)


def _edge_jumps(y: np.ndarray) -> np.ndarray:
    """Columns where the edge ``y`` (rows, NaN where none) steps to a neighbouring column's by
    more than ``EDGE_JUMP_PX`` (or ``EDGE_JUMP_NOISE`` times the edge's noise): the side of a
    cavity or a tongue, not the interface, which rises and falls by a fraction of a pixel per
    column (a ±5° tilt, or a wave of 0.2 film thicknesses over 10: 0.13 at its steepest)."""
    big = _edge_steps(y)[0] != 0
    return np.r_[big, False] | np.r_[False, big]


def _edge_steps(y: np.ndarray) -> tuple[np.ndarray, float]:
    """The sign of the edge's step from each column to the next where it is a jump (+1 down,
    -1 up, 0 none or not seen), and the least step that is one (px)."""
    d = np.nan_to_num(np.diff(y), nan=0.0)
    tol = max(EDGE_JUMP_PX, EDGE_JUMP_NOISE * _edge_noise(y[np.isfinite(y)]))
    return np.where(np.abs(d) > tol, np.sign(d), 0.0), tol


def _side_tongues(y: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Columns of a tongue running out through the image's side: from the edge's last jump to
    the right side (its first to the left side), where the edge steps down from interface seen
    (``ok``) into a run that reaches the side without a gap or another jump.

    Anywhere else a tongue has the interface beyond it and the path, costing little under a
    tongue, keeps to it; at the image's side it has only the tongue's own columns, and the path
    the section is straightened by (at ``BEND_CHANGE_COST``) followed it down: seed 4000
    sec_wavy case 13, a tongue 8 px deep over the last 53 columns, bent into by 8 px — its
    depth then read 3.8 px, the penetration depth 20 % short."""
    out = np.zeros(y.size, bool)
    step, _ = _edge_steps(y)
    at = np.nonzero(step)[0]  # (a jump between column k and k + 1)
    if not at.size:
        return out
    fin = np.isfinite(y)
    # the right side: the last jump run (consecutive steps one jump through the blur), down
    a = int(at[-1])
    while a - 1 >= 0 and step[a - 1] == step[at[-1]]:
        a -= 1
    if step[at[-1]] > 0 and ok[a] and fin[at[-1] + 1:].all():
        out[a + 1:] = True
    # the left side, mirrored: the first jump run, up (the edge deeper before it)
    b = int(at[0])
    while b + 1 < step.size and step[b + 1] == step[at[0]]:
        b += 1
    if step[at[0]] < 0 and ok[b + 1] and fin[:at[0] + 1].all():
        out[:b + 1] = True
    return out


#: :func:`_edge_jumps`: the step (px, and edge noise units) between neighbouring columns' edges
#: beyond which a column is a side
EDGE_JUMP_PX = 2.0
EDGE_JUMP_NOISE = 6.0


def _bend_evidence(y: np.ndarray, ok: np.ndarray, path: np.ndarray) -> float:
    """How much better the bent ``path`` explains the film's bottom edge ``y`` (columns ``ok``)
    than a straight line: the columns whose edge lies on the path (within max(1 px, 2 × the
    edge's noise)) over those on the straight interface line (:func:`_interface_line`, refined
    by least squares on the columns near it), each the most the edge allows.

    On a wave the straight line meets the edge only where it crosses it, the path wherever the
    interface is seen: 1.07–4.2 over the benchmark's sec_wavy sections (five seeds), 1.5 or more
    where the path follows the wave within 1 px. A flat section's path bends only by its tongues
    and cavities, off the edge: 0.15–1.02 where it bent by 6 px or more, the line holding more
    columns than the path (six flat families, five seeds)."""
    xo = np.nonzero(ok)[0].astype(np.float64)
    yo = y[ok]
    if xo.size < 8:
        return 1.0
    tol = max(1.0, 2.0 * _edge_noise(yo))
    on_path = int(np.count_nonzero(np.abs(yo - path[ok]) <= tol))
    slope, level = _interface_line(xo, yo, y.size)
    on_line = int(np.count_nonzero(np.abs(yo - slope * xo - level) <= tol))
    for _ in range(3):
        near = np.abs(yo - slope * xo - level) <= 2.0 * tol
        if near.sum() < 8:
            break
        slope, level = np.polyfit(xo[near], yo[near], 1)
        on_line = max(on_line, int(np.count_nonzero(np.abs(yo - slope * xo - level) <= tol)))
    return on_path / max(on_line, 1)


#: :func:`_interface_path`: columns per step of the path, its level grid (px), the steepest it
#: rises or falls (px per column: a ±5° tilt and a wave of 0.2 film thicknesses over 10 reach
#: 0.22), the cost of a pixel of level change, and the costs at which an edge row below the
#: path (a tongue) and above it (nothing should lie there) stop counting more. At most
#: ``PATH_MAX_BLOCKS`` steps and ``PATH_MAX_LEVELS`` levels: a wider section takes wider steps,
#: a taller spread of edge rows a coarser grid (time and memory bounded whatever the image)
PATH_BLOCK = 4
PATH_STEP_PX = 0.5
PATH_SLOPE = 0.25
PATH_CHANGE_COST = 1.0
#: the cost of a pixel of level change on the path the section is straightened by, once
#: :func:`_bend_evidence` (on the path at ``PATH_CHANGE_COST``) has found a wave. A wave
#: climbs 4 amplitudes a period, and where tongues hang under most of the interface, seen only
#: in the short gaps between them, the few gap columns (0.25 each, below a path kept level)
#: did not pay for the climb: the path kept to the crests' level (benchmark seeds 2000 case 7,
#: 5000 cases 1 and 9: T up to 12 % short, σt/T up to 0.10, unflagged). At half the cost it
#: follows the gaps. The gate keeps the full cost: at half it also bent into a wide tongue at
#: the image's side with no interface beside it, and a flat thin film (seed 5000 sec_thin
#: case 10) passed as a 19 px wave
BEND_CHANGE_COST = 0.5
PATH_BELOW_CAP = 0.25
PATH_ABOVE_CAP = 36.0
PATH_MAX_BLOCKS = 8192
PATH_MAX_LEVELS = 1024


def _interface_path(y: np.ndarray, ok: np.ndarray, change_cost: float = PATH_CHANGE_COST) -> np.ndarray:
    """The interface under the film's bottom edge ``y`` (rows, px down; columns ``ok``), as the
    least-cost path of bounded slope (Viterbi over blocks of ``PATH_BLOCK`` columns and levels
    ``PATH_STEP_PX`` apart; unseen columns cost nothing).

    Polymer tongues hang below the interface with steep sides; a wave of the support rises and
    falls gently. An edge row below the path costs its squared distance in units of the edge's
    noise up to ``PATH_BELOW_CAP`` (a tongue: the path need not follow it, and cannot down its
    sides), one above it up to ``PATH_ABOVE_CAP`` (the interface does not lie under the film's
    bottom): the path stays on the shallowest level the columns share, wherever it bends.
    Over columns where no edge is seen the path keeps its level along the section's tilt (the
    straight line through a first path that may bend anywhere): free there, it ramped across a
    cavity to a tongue at the image's side with no interface seen beside it, and flat sections
    were straightened by 11-15 px (benchmark seed 1000 sec_flip and sec_texture case 6)."""
    return _interface_paths(y, ok, (change_cost,))[0]


def _interface_paths(y: np.ndarray, ok: np.ndarray, change_costs: tuple[float, ...]) -> list[np.ndarray]:
    """:func:`_interface_path` at each of ``change_costs``, the same paths: the Viterbis of the
    costs stepped together, block by block (each block's step is a dozen small numpy calls, so
    two paths cost little more than one), and the first passes' data (the same edge) once."""
    w = y.size
    x = np.arange(w, dtype=float)
    s = max(0.75, 2.0 * _edge_noise(y[ok]))
    firsts = _least_cost_paths([y] * len(change_costs), ok, s, change_costs, hold_in_gaps=False)
    tilts = [float(np.polyfit(x, f, 1)[0]) for f in firsts]
    seconds = _least_cost_paths([y - t * x for t in tilts], ok, s, change_costs, hold_in_gaps=True)
    return [p + t * x for p, t in zip(seconds, tilts)]


def _least_cost_path(y: np.ndarray, ok: np.ndarray, s: float, change_cost: float, *, hold_in_gaps: bool) -> np.ndarray:
    """:func:`_interface_path`'s Viterbi on edge rows ``y`` (columns ``ok``) whose noise unit is
    ``s`` px; ``hold_in_gaps``: the level does not change over blocks without a seen column.
    (Ties go to the smaller move, the lower level first.)"""
    return _least_cost_paths([y], ok, s, (change_cost,), hold_in_gaps=hold_in_gaps)[0]


def _path_levels(y: np.ndarray, ok: np.ndarray, w: int, s: float, b: int, nb: int) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """(levels, their step, each block's cost at each level, the blocks with a seen column) of
    :func:`_least_cost_paths` for one edge."""
    yo = y[ok]
    lo, hi = math.floor(_percentile(yo, 0.5)) - 3.0, math.ceil(_percentile(yo, 99.5)) + 3.0
    step = max(PATH_STEP_PX, (hi - lo) / PATH_MAX_LEVELS)
    levels = np.arange(lo, hi + 1e-9, step)
    nl = levels.size
    r = np.full(nb * b, np.nan)
    r[:w] = np.where(ok, y, np.nan)
    rb = r.reshape(nb, b)
    data = np.empty((nb, nl))
    chunk = max(1, (1 << 21) // (nl * b))  # (blocks per pass: temporaries of ~16 MB at most)
    for c0 in range(0, nb, chunk):
        v = rb[c0:c0 + chunk, None, :]
        z = (v - levels[None, :, None]) / s  # (blocks, levels, columns)
        z *= z
        data[c0:c0 + chunk] = np.nansum(np.where(v > levels[None, :, None], np.minimum(z, PATH_BELOW_CAP),
                                                 np.minimum(z, PATH_ABOVE_CAP)), axis=2)
    return levels, step, data, np.isfinite(rb).any(axis=1)


def _least_cost_paths(ys: list[np.ndarray], ok: np.ndarray, s: float, change_costs: tuple[float, ...], *,
                      hold_in_gaps: bool) -> list[np.ndarray]:
    """:func:`_least_cost_path` of each edge ``ys[p]`` at ``change_costs[p]``, the same paths:
    the Viterbis stepped together where they share their moves and blocks seen (else one after
    the other). A path with fewer levels than another is padded with levels whose cost is +inf,
    as its grid's ends already are: no step into them is ever the least."""
    w = ys[0].size
    b = max(PATH_BLOCK, -(-w // PATH_MAX_BLOCKS))
    nb = -(-w // b)
    made: dict[int, tuple[np.ndarray, float, np.ndarray, np.ndarray]] = {}
    for y in ys:  # (an edge given twice is costed once)
        if id(y) not in made:
            made[id(y)] = _path_levels(y, ok, w, s, b, nb)
    parts = [made[id(y)] for y in ys]
    hops = [min(max(1, int(round(PATH_SLOPE * b / step))), levels.size - 1) for levels, step, _, _ in parts]
    seens = [seen if hold_in_gaps else np.ones(nb, bool) for _, _, _, seen in parts]
    if len(ys) > 1 and (len(set(hops)) > 1 or any(not np.array_equal(seens[0], sn) for sn in seens[1:])):
        return [_least_cost_paths([y], ok, s, (c,), hold_in_gaps=hold_in_gaps)[0] for y, c in zip(ys, change_costs)]
    hop, seen = hops[0], seens[0]
    n_p = len(ys)
    nl = max(levels.size for levels, _, _, _ in parts)
    data = np.full((nb, n_p, nl), np.inf)
    for p, (levels, _, d, _) in enumerate(parts):
        data[:, p, :levels.size] = d
    # the moves tried, in the order ties go: stay, then from one level lower, one higher, ...
    moves = np.r_[0, np.ravel(np.c_[-np.arange(1, hop + 1), np.arange(1, hop + 1)])]
    nm = moves.size
    pen = np.array([c * np.abs(moves) * step for c, (_, step, _, _) in zip(change_costs, parts)])[:, None, :]
    # each level's candidates, from the previous cost padded with +inf beyond the grid's ends:
    # the cost lives in ``buf`` between the pads, and each block's step reuses the same arrays
    # (a block's step is a dozen small numpy calls: their count, not their size, is its cost)
    buf = np.full((n_p, nl + 2 * hop), np.inf)
    cost = buf[:, hop:hop + nl]
    cost[:] = data[0]
    src = np.arange(nl)[:, None] + (moves + hop)[None, :]
    at = (np.arange(n_p)[:, None] * nl + np.arange(nl)[None, :]) * nm  # (each level's first candidate in the flat window)
    win = np.empty((n_p, nl, nm))
    flat = win.reshape(-1)
    m = np.empty((n_p, nl), np.intp)
    taken = np.zeros((nb, n_p, nl), np.intp)  # (the index of the move taken into each level)
    for k in range(1, nb):
        if seen[k]:
            buf.take(src, axis=1, out=win)
            win += pen
            win.argmin(axis=2, out=m)
            taken[k] = m
            m += at
            np.add(flat.take(m), data[k], out=cost)
        else:
            cost += data[k]
    back = moves[taken]
    out = []
    for p, (levels, _, _, _) in enumerate(parts):
        path = np.empty(nb, np.intp)
        path[-1] = int(np.argmin(cost[p, :levels.size]))
        bp = back[:, p]
        for k in range(nb - 1, 0, -1):
            path[k - 1] = path[k] + bp[k, path[k]]
        out.append(np.interp(np.arange(w, dtype=float), np.arange(nb) * b + (b - 1) / 2, levels[path]))
    return out
