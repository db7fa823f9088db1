"""The SEM pores' sums per profile bin and their opening's cover, compiled (numba; the SEM path's
:func:`.edges.lip_radii` and :func:`.surface_sem._analyse_rimmed`).

Why compiled: in numpy each was a dozen passes over the pores' ~1 M pixels of a dense 1024²
view (the bins' key, a gather and four bincounts; the cover's gather, clip, sum and two
compresses), ~25 and ~10 ms of CPU; here one pass each, in two halves on two threads (the loops
hold no GIL). The same values in the same order: each bin's sums add its pixels in their order
as bincount does, and the cover is the same expression, summed by numpy.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def bin_sums(flat, own, rho, incore, a, b, nfl, inv_bp, nb, cnt, vs, rs, sq, core_r2, core_n):
    """Pixels ``a <= i < b`` (flat index, owner, ρ, in its owner's core) added to their owner's
    row of the sums per bin of ρ/bp (count, level ``nfl[flat]``, ρ, level²) and its core's (ρ²,
    count): in the pixels' order, as numpy's bincount adds them. (Adding a run of pixels in one
    bin in registers first was no faster.)"""
    for i in range(a, b):
        r = own[i]
        x = rho[i]
        j = np.intp(x * inv_bp)
        if j > nb - 1:
            j = nb - 1
        v = np.float64(nfl[flat[i]])
        cnt[r, j] += 1.0
        vs[r, j] += v
        rs[r, j] += x
        sq[r, j] += v * v
        if incore[i]:
            core_r2[r] += x * x
            core_n[r] += 1.0


@njit(cache=True, nogil=True)
def cover(flat, own, rho, a, b, r_edge, cov, plab):
    """Pixels ``a <= i < b`` (flat index, owner 1..n, ρ): each one's share inside its owner's lip
    ``r_edge[own - 1]`` (its distance to the lip ±½ px, clipped to 0..1) into ``cov``, and
    the owner into ``plab`` (flat) where half or more of it lies inside."""
    for i in range(a, b):
        c = r_edge[own[i] - 1] - rho[i] + 0.5
        if c < 0.0:
            c = 0.0
        elif c > 1.0:
            c = 1.0
        cov[i] = c
        if c >= 0.5:
            plab[flat[i]] = own[i]


PAR_MIN = 1 << 15  # fewer pixels: one thread (handing a share to a worker costs ~50 µs)


def split(own: np.ndarray) -> int:
    """Where to cut a batch's pixels in two for two threads: about the middle, at a change of
    owner (each pore's pixels are consecutive: the threads then write disjoint rows)."""
    if own.size < PAR_MIN:
        return own.size
    i = own.size // 2
    same = np.flatnonzero(own[i:] != own[i - 1])
    return i + int(same[0]) if same.size else own.size


def compile_now() -> None:
    """Compile both (or load them from their cache) on a few pixels, with the signatures the SEM
    path calls them with (:func:`castrig.analysis.edges.lip_radii`,
    :func:`castrig.analysis.surface_sem._analyse_rimmed`)."""
    flat, own, rho = np.arange(4, dtype=np.int64), np.array([0, 0, 1, 1], np.int64), np.linspace(0.5, 3.0, 4)
    sums = [np.zeros((2, 8)) for _ in range(4)]
    bin_sums(flat, own, rho, rho < 1.0, 0, 4, np.ones(4, np.float32), 2.0, 8, *sums, np.zeros(2), np.zeros(2))
    cover(flat, own + 1, rho, 0, 4, np.array([2.0, 2.5]), np.empty(4), np.zeros(4, np.int32))
