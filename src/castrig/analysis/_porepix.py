"""The SEM pores' pixels chosen in compiled loops (numba; :func:`.edges_cores._pore_pixel_batches`).

Why compiled: in numpy each pore group's candidate pixels (a dense 1024² view: ~1.4 M) were
computed into (pores, offsets) arrays, compressed, scattered and compressed again, ~60-90 ms of
CPU a view. Here three passes, each in two halves on two threads: the least code of each pixel
over every candidate (:func:`least_codes`, the pores in raster order of their centres, so that
neighbouring discs share the view's cache lines), each pixel's claim in the slot of its pore's
offset (:func:`claims`, one pass over the pixels in raster order), then each pore's claimed
slots in the order of its offsets (:func:`winners`). The same values: ρ by the same operations
(the square root of the squares), the same codes, the pixels in the same order. Until
2026-12-07 (round seven) the second pass walked every candidate again, pore by pore in the
order of their disc sizes, to compare it with its pixel's least code: on a dense 1024² view
the two passes took ~23 and ~42 ms of CPU (one thread), now ~14, ~9 and ~16 (the last mostly
its outputs' first writes). Imported where the SEM path chooses pixels, never by an optical
analysis.

The passes write a candidate's computation out each, on purpose: one compiled function for
both of the first version's passes (returning the flat index, ρ, own-core and code; inlined or
not) made them 3-4 times slower, 0.2 s more CPU on a dense 1024² SEM pair (tried and reverted
on 2026-12-07).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def least_codes(pores, k, oy, ox, of, fy, fx, cr, cc, r_core, ring, lf, h, w, bits, base, best):
    """Each pixel's least code over the candidates of ``pores`` (into ``best``, over the rows
    whose flat indices start at ``base``): (distance beyond the core's circle in 1/65536 px, a
    core pixel's own core first) << ``bits`` | pore. Returns the count of candidates.

    A pore's candidates: the first ``k`` of the offsets (``oy``, ``ox``, flat steps ``of``,
    sorted by length) about its centre pixel (``cr``, ``cc``; its centre's fraction ``fy``,
    ``fx``), inside the image and within ``ring`` of its core's circle; ρ as the square root
    of the squares (:func:`winners` computes them alike)."""
    total = 0
    for g in pores:
        gr, gc = cr[g], cc[g]
        c0 = np.int64(gr) * w + gc
        for o in range(k[g]):
            r = gr + oy[o]
            c = gc + ox[o]
            if r < 0 or r >= h or c < 0 or c >= w:
                continue
            rho = oy[o] + fy[g]
            rho *= rho
            dx = ox[o] + fx[g]
            dx *= dx
            rho += dx
            rho = np.sqrt(rho)
            d = rho - r_core[g]
            if not d <= ring:
                continue
            total += 1
            flat = c0 + of[o]
            if lf[flat] == g + 1:
                d = -1e3
            d += 2e3
            d *= 65536.0
            code = (np.int64(d) << bits) | g
            i = flat - base
            if code < best[i]:
                best[i] = code
    return total


@njit(cache=True, nogil=True)
def claims(best, base, i0, i1, lf, cr, cc, w, bits, kmax, rank, start, slot):
    """Each pixel ``i0 <= i < i1`` of ``best`` (:func:`least_codes`: flat index ``base + i``)
    claimed by the pore its least code names: that pore's candidate slot (``start`` of the pore
    plus the rank of the pixel's offset from the pore's centre pixel among the offsets, ``rank``,
    a (2·kmax + 1)² table) set to 1, or 2 where the pixel lies in the pore's own core. A pass over
    the pixels in raster order (each read once), where the first version walked every
    candidate again, pore by pore across the view, to compare it with its pixel's least code."""
    mask = (np.int64(1) << bits) - 1
    side = 2 * kmax + 1
    nil = np.iinfo(np.int64).max
    for i in range(i0, i1):
        code = best[i]
        if code == nil:
            continue
        g = code & mask
        flat = base + i
        r = flat // w
        c = flat - r * w
        o = rank[(r - cr[g] + kmax) * side + (c - cc[g] + kmax)]
        slot[start[g] + o] = 2 if lf[flat] == g + 1 else 1


@njit(cache=True, nogil=True)
def winners(pores, k, oy, ox, of, fy, fx, cr, cc, w, start, slot, keep, cap):
    """The pixels claimed by ``pores`` (:func:`claims`; in this order, each pore's in the order
    of its offsets), of the pores whose ``keep`` is set: (flat index, pore, ρ, in its own core);
    ``cap``: at least their count. ρ as :func:`least_codes` computes it (the square root of the
    squares), from the slots alone: no pass over the image."""
    out_f = np.empty(cap, np.int64)
    out_p = np.empty(cap, np.int64)
    out_r = np.empty(cap)
    out_c = np.empty(cap, np.bool_)
    m = 0
    for g in pores:
        if not keep[g]:
            continue
        c0 = np.int64(cr[g]) * w + cc[g]
        s0 = start[g]
        for o in range(k[g]):
            s = slot[s0 + o]
            if s == 0:
                continue
            rho = oy[o] + fy[g]
            rho *= rho
            dx = ox[o] + fx[g]
            dx *= dx
            rho += dx
            rho = np.sqrt(rho)
            out_f[m] = c0 + of[o]
            out_p[m] = g
            out_r[m] = rho
            out_c[m] = s == 2
            m += 1
    return out_f[:m], out_p[:m], out_r[:m], out_c[:m]


def compile_now() -> None:
    """Compile both passes (or load them from their cache) by choosing the pixels of two small
    pores through :func:`castrig.analysis.edges_cores.pore_pixels`, so with the signature the
    SEM path uses."""
    from .edges_cores import pore_pixels

    lab = np.zeros((24, 24), np.int32)
    lab[4:8, 4:8], lab[14:19, 14:19] = 1, 2
    pore_pixels(lab, np.array([[5.5, 5.5], [16.0, 16.0]]), np.array([2.2, 2.8]), 4)
