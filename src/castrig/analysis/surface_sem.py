"""Top views whose pores are not a flat dark floor (SE rims, flat backscatter-like contrast),
measured by their physical edges (part of :mod:`castrig.analysis.surface`; the edges
themselves: :mod:`castrig.analysis.edges`): the view normalised to its film and black levels
(:func:`_sem_norm`), each pore's lip fitted (:func:`_sem_lips`), the opening ratio and the
diameters from the same lips (:func:`_analyse_rimmed`).
"""

from __future__ import annotations

import math

import numpy as np

from ._filters import box_max
from .illumination import noise_sigma
from .lattice import _pitch
from .regions import Pixels, fit_field
from .surface_metrics import SurfaceMetrics, _metrics, _through, transmitted_mismatch
from .surface_segment import _f32
from .workers import pool


def _sem_norm(img: np.ndarray, unit: float, film: str, levels: dict | None = None) -> tuple[np.ndarray, float]:
    """The SEM view over its film level above its black level, float32, and its noise σ
    (:func:`_sem_lips`); the mode film from ``levels["mode_raw"]`` (a future) where given."""
    from .edges_levels import black_field, film_mode_field, film_upper_field

    if film == "upper":
        fr = film_upper_field(img, unit=unit)
    elif levels is not None and "mode_raw" in levels:
        fr = levels["mode_raw"].result()
    else:
        fr = film_mode_field(img)
    f = np.maximum(fr, 1e-6).astype(np.float32)
    # the image over its film above the view's black level, not above 0
    # (:func:`~castrig.analysis.edges_levels.black_field`): a grey-level gain and offset and an
    # illumination ramp then leave it as it is. (The rimless path, each pore by its own depth,
    # divided by the film alone: its floors are grey, so the deepest level is no black, and its
    # lips' levels were held relative to the film's 1, a black of 0 (the twin's backscatter views:
    # D 1.3 -> 2.2 % over the black). Now its lips take their levels from each pore's own profile
    # (:func:`~castrig.analysis.edges.lip_radii`), and over the film alone a gain and offset moved
    # each pore's relative depth where the film varies: a nanoporous gold view, film 162-222,
    # lost the same 8 shallow dimples under every transform, count 3.3 -> 0.4 %; a polymer
    # section's D 1.7 -> 0.1 % under gain.)
    b = black_field(img, f, unit)
    if img.dtype == np.float32 and img.shape == f.shape and img.flags.c_contiguous:
        from ._levels import over_black

        norm = np.empty(img.shape, np.float32)
        over_black(img, f, b, norm)  # (the expression below in one compiled pass: the same values)
    else:
        norm = ((img - b) / np.maximum(f - b, 1e-6)).astype(np.float32)
    return norm, noise_sigma(norm)


def _sem_lips(img: np.ndarray, unit: float, film: str, local: bool, rims: bool | None, confirm=None, rimless: bool = True,
              levels: dict | None = None):
    """Film level, cores and lips of an SEM top view (:mod:`castrig.analysis.edges`).

    ``unit``: the pores' size unit of the view (:func:`~castrig.analysis.edges_cores.pore_unit`, the
    same for both passes); ``film``: "mode" (the commonest bright level: rims shine above it) or "upper" (the
    brightest level: nothing shines above the film of a view without rims); ``local``: each core
    by its own pore's depth, else one threshold for the image; ``rims``/``confirm``: as
    :func:`~castrig.analysis.edges.lip_radii`. Returns (cores, n, centres, core counts, lip
    radii, the pixels used (batches of (flat index, owner, ρ), as :func:`~castrig.analysis.edges.lip_radii` returns them), rims or not, (core pixels, their labels)), n = 0 without pores; None when the pores' fits
    voted for rims and ``confirm()`` did not, or (``rimless=False``) voted against rims.

    ``levels`` (optional dict, shared by the caller's passes): "mode_raw", a future of
    :func:`~castrig.analysis.edges_levels.film_mode_field` of ``img`` (started early on a worker), and
    per film kind the normalised view and its noise, so that a second pass on the same film
    does not compute them again."""
    from .edges import lip_radii
    from .edges_cores import pore_cores

    h, w = img.shape
    cached = levels.get(film) if levels is not None else None
    if cached is not None:
        norm, sig = cached
    else:
        norm, sig = _sem_norm(img, unit, film, levels)
        if levels is not None:
            levels[film] = (norm, sig)
    lab, n = pore_cores(norm, sig, local=local)
    if n == 0:
        return lab, 0, None, None, None, None, False, None
    # cores numbered by size, then by their summed level: an order the view rotated keeps (in
    # raster order a rotation reordered the cores, and the lip fit's choice among cores of equal
    # size for its blur stage with it: D moved 0.5 % on a real top view rotated by 90°)
    # (sums over the core pixels alone, in raster order as over the whole view: the same sums)
    # (two compiled passes over the view, :mod:`._levels`: the same pixels and sums as numpy's
    # Pixels.of, gather and bincounts, and the cores renumbered in place)
    from ._levels import core_sums, relabel

    lab = np.ascontiguousarray(lab, np.int32)
    flat, rows, cols, cnt0, lev = core_sums(lab, np.ascontiguousarray(norm, np.float32), n)
    cpx = Pixels(flat, rows, cols)
    cnt0, lev = cnt0[1:], lev[1:]
    remap = np.zeros(n + 1, np.int32)
    remap[np.lexsort((lev, -cnt0)) + 1] = np.arange(1, n + 1, dtype=np.int32)
    cl = relabel(lab, cpx.flat, remap)
    cnt = np.bincount(cl, minlength=n + 1)[1:]
    cy = np.bincount(cl, cpx.row, minlength=n + 1)[1:] / np.maximum(cnt, 1)
    cx = np.bincount(cl, cpx.col, minlength=n + 1)[1:] / np.maximum(cnt, 1)
    centres = np.column_stack([cy, cx])
    r_core = np.sqrt(np.maximum(cnt, 1) / math.pi)
    r_typ = float(np.median(r_core))
    # a pore's pixels reach beyond its core by the rim, the blur and the film around the lip:
    # 3 px more than 0.6 r_typ for small pores, and for larger ones at least the fitted window's
    # film side (it ends ~0.9 r_typ beyond the core: lip start + ¾ r_core). Was 0.6 r_typ + 3
    # alone: the window's outer bins went empty on large pores, less so at a coarser pixel size,
    # and D moved with the pixel size (a real top view: +5 % at half the pixels)
    ring = int(max(3, round(0.6 * r_typ + 3), round(1.2 * r_typ)))
    info: dict = {}
    r_edge, px = lip_radii(norm, lab, n, centres, r_core, ring, info, rims=rims, confirm=confirm, rimless=rimless)
    if r_edge is None:
        return None
    return lab, n, centres, cnt, r_edge, px, bool(info["rimmed"][0]) if n else False, (cpx, cl)


def _analyse_rimmed(img: np.ndarray, pixel_size_um: float, transmitted: np.ndarray | None, keep_labels: bool,
                    rims: bool | None = None) -> SurfaceMetrics:
    """SEM top views (pores with a bright inner rim, SE edge effect, or without: backscatter-
    like, each pore its own level): one pore per dark core, each lip fitted on its pore's radial
    profile (:mod:`castrig.analysis.edges`, :func:`_sem_lips`); the opening ratio from the same
    lips.

    The pores' fits on the mode film vote for rims, and the whole view
    (:func:`~castrig.analysis.edges_rims.rim_decision`) must agree: where it shows a clear ridge a
    plain majority of the pores makes rims, where it shows a faint one only a vote clearing its
    threshold by a margin (:func:`~castrig.analysis.edges_rims.vote_clears`: a vote near its
    threshold flipped with the pixel size on a real section), where none, no vote. (The whole
    view alone is not enough: an illumination ramp of ±20 % raised a real section's ridge from
    0 to 0.16.) With rims the film is the mode (rims shine above it) and
    the cores one threshold. Without, each core is found by its own pore's depth (one threshold
    misses the lighter pores and joins dense neighbours through thin blurred walls) and the
    film is the mode, or the brightest level where the pores' vote clears its margin although
    the view shows no rim (a dense flat view: the mode is a pore level and the "rims" the
    film's own blurred walls) or where the mode leaves no pore below it or lies nearer the darkest
    level than the brightest (thin bright walls and no film plateau: the commonest level is a pore
    level, :func:`~castrig.analysis.edges_rims.mode_is_pore_level`). The faint-ridge margin slides
    from 0.6 to a plain majority as the ridge grows (:func:`~castrig.analysis.edges_rims.vote_needed`)."""
    from .edges_rims import VOTE_MARGIN, mode_is_pore_level, rim_decision, rim_overshoot, vote_clears, vote_needed
    from .edges_levels import film_mode_field
    from .edges_cores import pore_unit

    h, w = img.shape
    # the whole view's rim check (its ridge over the film) is needed only once the pores have
    # voted: on a worker thread meanwhile (cores, pore pixels and the blur stage come first)
    view = pool().submit(rim_overshoot, img) if rims is None else None
    vote: list = []

    def confirm(ridge_share: float, lift_share: float) -> bool:
        if view is None:
            vote.append(vote_clears(ridge_share, lift_share, VOTE_MARGIN))
            return bool(rims)
        ov = view.result()
        r = rim_decision(ov)
        vote.append(vote_clears(ridge_share, lift_share, vote_needed(ov)))
        return r is True or (r is None and vote[-1])

    # (a view voted rimless is measured again below: not measured here). The mode film on a
    # worker meanwhile (it needs no unit); both passes share it and, on the same film, the
    # normalised view
    levels: dict = {"mode_raw": pool().submit(film_mode_field, img)}
    unit = pore_unit(img)  # (both passes' film and black level are in these units)
    out = _sem_lips(img, unit, "mode", False, None, confirm=confirm, rimless=False, levels=levels)
    if out is None or not out[6]:
        film = "upper" if (vote and vote[0]) or (out is not None and out[1] == 0) or \
            mode_is_pore_level(img, levels["mode_raw"].result(), unit) else "mode"
        out = _sem_lips(img, unit, film, True, False, levels=levels)
    if view is not None:
        view.result()  # (done by now; its errors are the caller's, as before it ran on a thread)
    if out[1] == 0:
        # no pores found: the opening could not be measured (None, not 0)
        return SurfaceMetrics(None, None, None, 0, None, None, pixel_size_um,
                              through=None if transmitted is None else np.zeros(0, bool),
                              labels=np.zeros(img.shape, np.int32) if keep_labels else None, appearance="sem")
    lab, n, centres, cnt, r_edge, pixels, _, (cpx, cl) = out
    flat = lab.ravel()
    edge_ids = np.unique(np.concatenate([flat[:w], flat[-w:], flat[::w], flat[w - 1:: w]]))
    on_border = np.zeros(n + 1, bool)
    on_border[edge_ids] = True
    on_border = on_border[1:]
    ok = np.isfinite(r_edge) & (cnt >= 2)
    # a pore whose lip lies beyond the image border is cut too, even when its core is not
    cut = (centres[:, 0] + 0.5 - r_edge < 0) | (centres[:, 0] + 0.5 + r_edge > h) | \
          (centres[:, 1] + 0.5 - r_edge < 0) | (centres[:, 1] + 0.5 + r_edge > w)
    on_border |= ok & cut
    measured = ~on_border & ok
    # the opening: the pixels inside their pore's lip, each weighted by how much of it lies
    # inside (its centre's distance to the lip, ±½ px), so the area is the lip's to sub-pixel
    # precision; border pores are measured the same way, on the pixels they have in the image
    # (batch by batch of pores, :func:`~castrig.analysis.edges.lip_radii`: a view in one batch
    # sums as before; a larger one's sum adds its batches' sums)
    # (one compiled pass over each batch's pixels, :func:`~._poresums.cover`, in two halves on
    # two threads; the cover summed by numpy as before: the same area)
    from ._poresums import cover, split

    re_all = np.where(ok, r_edge, 0.0)
    area = 0.0
    plab = np.zeros(img.shape, np.int32)
    pl = plab.ravel()
    for pflat, own, rho in pixels:
        cov = np.empty(own.size)
        cut = split(own)
        job = pool().submit(cover, pflat, own, rho, cut, own.size, re_all, cov, pl) if cut < own.size else None
        cover(pflat, own, rho, 0, cut, re_all, cov, pl)
        if job is not None:
            job.result()
        area += cov.sum()
        del cov
    opening = float(np.clip(area / img.size, 0.0, 1.0))
    d_um = 2 * r_edge[measured] * pixel_size_um
    through = tfrac = None
    mismatch = False
    if transmitted is not None:
        t = _f32(transmitted)  # (measurable already: _analyse_surface)
        pores = plab > 0
        near = box_max(pores, 2)
        ft = fit_field(t, ~near, 2)
        ppx = Pixels.of(pores)
        lp = plab.ravel()[ppx.flat].astype(np.intp)
        pcnt = np.bincount(lp, minlength=n + 1)[1:]
        thr_all = _through(t, ft, plab, n, None, (ppx.flat, lp, pcnt), (cpx.flat, cl, cnt))
        through = thr_all[measured]
        tfrac = float(through.mean()) if through.size else None
        mismatch = transmitted_mismatch(t, ft, pores, near)
    pitch = _pitch(centres)
    return _metrics(opening, d_um, measured, tfrac, pitch, pixel_size_um, on_border, centres, through,
                    labels=plab if keep_labels else None,
                    measured_labels=np.arange(1, n + 1)[measured], appearance="sem", transmitted_mismatch=mismatch)
