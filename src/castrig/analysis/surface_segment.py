"""The pores of a dark-pore top view, segmented (part of :mod:`castrig.analysis.surface`): the
film's level field over the view, pores below it split at their walls by a distance transform
over markers (:func:`_split`), on row bands worked in parallel (:func:`row_bands`,
:func:`_parallel_rows`), with work buffers kept per thread between calls (:func:`_work_cache`)
so that a rig analysing a view after each cast does not allocate them again.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
import threading

import numpy as np
from scipy import ndimage as ndi

from ._filters import box_max, box_mean3, box_min, gaussian
from .illumination import block_extremes, measurable, fit_level, noise_sigma, poly_field
from .regions import Pixels, fit_field, typical_radius
from .workers import pool

__all__ = ["row_bands", "segment_pores"]


@dataclass
class _Segmentation:
    labels: np.ndarray  # pores > 0 (mask only), touching pores split
    n: int
    film: np.ndarray  # film level field F (raw units)
    ring: int  # ring radius (px) for partial volume
    far: np.ndarray  # film pixels at least ``ring`` px from any pore
    core: np.ndarray  # pore pixels at least ``ring`` px inside their pore
    dark_level: float  # median normalised pore floor P/F
    pores: Pixels | None = None  # the pore (mask) pixels, raster order
    side: Future | None = None  # result of ``side_job(far)``, run on a worker thread
    core_r: int = 1  # depth (px) of ``core`` inside the masks
    reach: int | None = 0  # how far the edges reach into the film (None: farther than the film lets see)
    #: how far from every pore the film pixels the level fields were fitted through lie (px):
    #: ``ring`` unless the walls are too thin to hold enough of them that far (:func:`_film_for_level`)
    level_ring: int = 0
    #: the pores' floor stands no deeper below the film than the film's own texture would
    #: (:func:`_texture_only`): pores or texture, the image does not say (flagged ``low_contrast``)
    shallow: bool = False


_MAX_PAIRS: int | None = None  # (pixel, marker) pairs beyond which _split uses the feature transform


_TLS = threading.local()
_CACHE_MAX_PIXELS = 1 << 22


def _work_cache() -> dict:
    """Work buffers of the calling thread, reused from one analysis to the next (fresh large
    arrays cost a page fault per 4 KiB on every call). Only the calling thread fills them, and
    nothing built on them is handed back to the caller."""
    c = getattr(_TLS, "cache", None)
    if c is None:
        c = _TLS.cache = {}
    return c


def _buf(cache: dict | None, key: str, shape: tuple, dtype) -> np.ndarray:
    """An uninitialised array: from ``cache`` under ``key`` (reused when shape and dtype match)."""
    if cache is None:
        return np.empty(shape, dtype)
    a = cache.get(key)
    if a is None or a.shape != tuple(shape) or a.dtype != np.dtype(dtype):
        a = cache[key] = np.empty(shape, dtype)
    return a


def row_bands(h: int, tiles: int, halo: int) -> list[tuple[int, int, int, int]]:
    """Split ``h`` rows into ``tiles`` bands for the worker threads.

    Returns ``(lo, hi, keep_lo, keep_hi)`` per non-empty band: the filter runs on rows
    ``lo:hi`` (the band widened by ``halo`` on each side, clipped to the image) and rows
    ``keep_lo:keep_hi`` of the result (absolute row numbers) are kept. The kept ranges tile
    ``0:h`` exactly, whatever ``h``, ``tiles`` and ``halo`` (a halo larger than a band, more
    tiles than rows: bands only overlap more, or are dropped when empty).
    """
    h, tiles, halo = int(h), max(1, int(tiles)), max(0, int(halo))
    out = []
    for i in range(tiles):
        c0, c1 = h * i // tiles, h * (i + 1) // tiles
        if c1 > c0:
            out.append((max(0, c0 - halo), min(h, c1 + halo), c0, c1))
    return out


def _parallel_rows(fn, a: np.ndarray, halo: int, tiles: int = 2, min_rows: int = 256) -> np.ndarray:
    """Apply a local filter (support within ``halo`` rows) in ``tiles`` row bands, the first on
    the calling thread and the others on the worker threads (numpy/scipy release the GIL)."""
    h = a.shape[0]
    bands = row_bands(h, tiles, halo)
    if h < min_rows or len(bands) < 2 or 2 * halo >= h // len(bands):
        return fn(a)  # too small to be worth splitting: one band would be mostly halo
    futs = [pool().submit(fn, a[lo:hi]) for lo, hi, _, _ in bands[1:]]
    lo, hi, k0, k1 = bands[0]
    first = fn(a[lo:hi])
    out = np.empty((h,) + first.shape[1:], first.dtype)
    out[k0:k1] = first[k0 - lo : k1 - lo]
    for (lo, hi, k0, k1), fut in zip(bands[1:], futs):
        out[k0:k1] = fut.result()[k0 - lo : k1 - lo]
    return out


def _f32(image: np.ndarray, cache: dict | None = None, key: str = "f32") -> np.ndarray:
    """2-D float32 view of an image; copies only when the dtype differs (never written to)."""
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D greyscale image, got shape {a.shape}")
    if cache is None or (a.dtype == np.float32 and a.flags.c_contiguous):
        return np.ascontiguousarray(a, dtype=np.float32)
    out = _buf(cache, key, a.shape, np.float32)
    np.copyto(out, a, casting="unsafe")
    return out


def segment_pores(
    image: np.ndarray,
    *,
    ring_px: int | None = None,
    degree: int = 2,
    min_contrast: float = 3.0,
    side_job=None,
) -> _Segmentation | None:
    """Pore labels (touching pores split) and the film level of a reflected-light image.

    Returns None when the image shows no pores (no dark structure above ``min_contrast`` times
    the noise). ``side_job(film, degree)``, if given, runs on a worker thread as soon as the film
    pixels the level is fitted through are known, with the degree to fit (the transmitted image's
    level fit); its future is ``seg.side``.
    """
    raw = measurable(image)
    return _segment(raw, _f32(raw), ring_px=ring_px, degree=degree, min_contrast=min_contrast, side_job=side_job)


def _segment(
    raw: np.ndarray,
    img: np.ndarray,
    *,
    ring_px: int | None = None,
    degree: int = 2,
    min_contrast: float = 3.0,
    side_job=None,
    cache: dict | None = None,
    noise: float | None = None,
    whole_steps: bool | None = None,
) -> _Segmentation | None:
    """:func:`segment_pores` of ``raw`` given its float32 copy ``img``; large intermediates in
    ``cache`` (see :func:`_work_cache`) when given; ``noise``: the pixel noise's σ when known
    (a binary mask's is 0: estimated from it, its dense edges passed for noise), else estimated;
    ``whole_steps``: the levels are an integer image's, one grey apart, whatever ``raw``'s type
    (a bright-pore view turned over into float keeps its steps: :func:`_grey_step`)."""
    h, w = img.shape
    if img.size < 16:
        return None
    if raw.dtype.kind == "f" and not np.isfinite(img).all():
        raise ValueError("the image has NaN or infinite pixels")
    if float(np.ptp(raw if raw.dtype.kind in "iuf" else img)) <= 0:
        return None  # a constant image has no structure to measure
    c0, c1 = h // 2, w // 2
    sig_job = pool().submit(noise_sigma, img[max(c0 - 128, 0) : c0 + 128, max(c1 - 128, 0) : c1 + 128]) \
        if noise is None else None
    if cache is not None and h >= 2 and w >= 2:
        s = box_mean3(img, out=_buf(cache, "s", img.shape, np.float32), work=_buf(cache, "s_work", img.shape, np.float32))
    else:
        s = box_mean3(img)
    block = int(max(16, min(64, min(h, w) // 4)))
    rr, cc, mx, _ = block_extremes(s, block)
    f0 = poly_field(fit_level(mx, rr, cc, img.shape, degree=degree, upper=True), img.shape, degree,
                    out=_buf(cache, "f0", img.shape, np.float32) if cache is not None else None)
    sig = sig_job.result() if sig_job is not None else float(noise)
    np.maximum(f0, 1e-6, out=f0)
    n0 = np.divide(s, f0, out=s)
    # is there any dark structure at all? compare the darkest smoothed spot with the film, in
    # units of the pixel noise (a film-only image only has noise minima). (The smoothing — 3×3
    # mean, Gaussian σ 1 — leaves a tenth of the pixel noise: 3 pixel σ is ~30 of its own. At 6
    # a plain honeycomb of 20 px pores, film-to-core contrast 4.4 pixel σ, read no pore at all:
    # benchmarks/foreign_sem.py, noise 0.08)
    n0s = np.ascontiguousarray(n0[::2, ::2])
    gm = gaussian(n0s, 1.0)
    f_med = float(np.median(f0[::2, ::2]))
    gmin = float(gm.min())
    contrast = float(np.percentile(gm, 90)) - gmin
    if contrast * f_med < min_contrast * max(sig, _grey_step(raw, f_med, whole_steps)):
        return None
    dark = min(float(np.percentile(n0s, 0.2)), gmin)
    mask = np.less(n0, dark + 0.5 * (1 - dark), out=_buf(cache, "mask", img.shape, bool) if cache is not None else None)
    # label on the worker thread (scipy releases the GIL) while the pore pixels are listed here
    if cache is not None:
        lab = _buf(cache, "lab", img.shape, np.int32)
        lab_job = pool().submit(ndi.label, mask, output=lab)
    else:
        lab_job = pool().submit(ndi.label, mask)
    px = Pixels.of(mask)
    if cache is not None:
        n = int(lab_job.result())
    else:
        lab, n = lab_job.result()
    if n == 0:
        return None
    lp = lab.ravel()[px.flat].astype(np.intp)
    areas = np.bincount(lp, minlength=n + 1)
    r_typ = typical_radius(lab, areas, px, lp)
    reach = _edge_reach(n0, mask, 1.0 - dark)
    if ring_px is not None:
        ring = int(ring_px)
    else:
        ring = max(int(max(3, min(6, round(0.33 * r_typ + 1.5)))), reach or 0)
    far = ~box_max(mask, ring)
    level_sel, level_ring = _film_for_level(mask, far, ring)
    side = pool().submit(side_job, level_sel, 2 if level_ring else 0) if side_job is not None else None
    # the floor of a pore is read where its own blurred edge no longer reaches: well inside it
    core_r = int(max(1, min(ring, round(0.45 * r_typ))))
    core = box_min(mask, core_r)
    # (film nowhere spread over the image even 1 px from the pores: its level is taken as one
    # number, not a field extrapolated from a few corners; flagged thin_walls)
    f = fit_field(img, level_sel, degree if level_ring else 0,
                  out=_buf(cache, "f", img.shape, np.float32) if cache is not None else None)
    if f is None:
        f = f0 * float(np.median(img[~mask]) / np.median(f0[~mask])) if (~mask).any() else f0
    f = np.maximum(f, 1e-6, out=f if f is not f0 else None)
    # (on the level fitted through the film itself: f0, through the blocks' maxima, can miss it
    # by 40 % where pores fill most blocks)
    # (flagged, not dropped: 15-grey pores on a film of 5 grey of texture stand no deeper than
    # texture alone, and read 0 pores when this returned none; the image cannot tell them apart)
    shallow = _texture_only(gaussian(n0s * (f0[::2, ::2] / f[::2, ::2]), 1.0), level_sel, core)
    norm = np.divide(img, f, out=_buf(cache, "norm", img.shape, np.float32) if cache is not None else None)
    # the pore floor on the worker thread while the touching pores are split here
    p_job = pool().submit(lambda: float(np.median(norm[core])) if np.count_nonzero(core) > 10 else dark)
    lab, n = _split(lab, n, mask, norm, r_typ, px, lp, cache=cache)
    return _Segmentation(lab, n, f, ring, far, core, p_job.result(), px, side, core_r, reach, level_ring, shallow)


#: the least depth of the pores' floor below the film, in (normal-equivalent) s.d. of the film's
#: own smoothed level (:func:`_texture_only`): twin views of the optical families read 11.7-230
#: (the least: dense 9 px pores ringed by a halo), a few pores on a flat or textured film 27-200;
#: smooth random textures with no pore 2.3-3.8 whatever their amplitude and grain (2-16 px) in
#: float, 16- and 8-bit; SEM micrographs of grainy films wrongly measured as optical 5.7-7.5 (pores:
#: kept)
_MIN_DEPTH_OVER_TEXTURE = 5.0


def _texture_only(gm: np.ndarray, film: np.ndarray, core: np.ndarray) -> bool:
    """Is the "dark structure" only the film's own texture (no pores)? ``gm``: the 3×3-mean
    image over the film's level, at half resolution, smoothed (Gaussian σ 1), ``film``/``core``:
    the film pixels the level is fitted through and the pores' cores, full resolution.

    A pore is a floor well below a film of even level: the median of the cores stands many
    times the film's spread below the film's median (the noise is mostly smoothed out of
    ``gm``; what spread is left is the film's grain and the edges' residue). A smooth film with
    no pores split at a level through its texture puts the "pores" and the "film" each on one
    side of one continuous distribution: the cores' median 2-4 of the film's spreads below it.
    (A pore-free film, grey 140 plus a smooth texture of ±0.5 grey, float or 16-bit, read
    opening 0.30 and ~1650 pores of 14 px, nothing flagged but ``blurred``.)"""
    fs = film[::2, ::2][: gm.shape[0], : gm.shape[1]]
    cs = core[::2, ::2][: gm.shape[0], : gm.shape[1]]
    gf, gc = gm[fs], gm[cs]
    if gf.size < 100 or gc.size < 10:
        return False  # too few of either to tell: measured as it was
    p10, med, p90 = (float(v) for v in np.percentile(gf, [10, 50, 90]))
    spread = (p90 - p10) / 2.563  # (a normal spread's σ; not the MAD, which an 8-bit film's one grey makes 0)
    return med - float(np.median(gc)) < _MIN_DEPTH_OVER_TEXTURE * spread


def _grey_step(raw: np.ndarray, film: float, whole_steps: bool | None = None) -> float:
    """The least grey difference an image can show (raw units), the floor under its noise in
    :func:`_segment`'s test for dark structure: one grey level of an integer image, 1e-3 of the
    film's level in a float one (its levels may be any; a noiseless film's fitting residue must
    not pass for pores).

    (The floor was 2 % of the film's level, as if zero were no light: a camera's dark offset or
    an SEM's brightness puts the whole image high above zero, and a 16-bit view of 3000-3056 —
    film-to-pore contrast 1.8 % of the level, 56 grey levels, 30 times its noise — read no pore,
    opening 0.0, where its 8-bit stretch read 0.605. What makes dark structure measurable is
    how far it stands out of the noise and the grey steps, whatever the image's offset.)

    ``whole_steps``: the image's levels are an integer image's whatever ``raw``'s type (True), or
    taken from it (None). (A bright-pore view is turned over into float, ``K·L − v``: its steps
    stay one grey. Taken as a float image's, a flat 8-bit film of greys 139 and 140 whose 140s
    happened to form the separate parts passed for bright pores on a dark film, opening 0.50.)"""
    if whole_steps is None:
        whole_steps = raw.dtype.kind in "ui"
    return 1.0 if whole_steps else 1e-3 * film


#: the film pixels a level field is fitted through: at least this many (or this share of a small
#: image) ...
_LEVEL_MIN_PX, _LEVEL_MIN_SHARE = 1000, 0.02
#: ... in at least this many of the 16 blocks of a 4 × 4 grid over the image
_LEVEL_MIN_BLOCKS = 12


def _film_for_level(mask: np.ndarray, far: np.ndarray, ring: int) -> tuple[np.ndarray, int]:
    """(the film pixels the film's level fields are fitted through, how far from every pore they
    are, px): ``far`` (``ring`` px away) where it holds enough pixels spread over the image, else
    the film a pixel nearer the pores at a time (its level read slightly low there, within the
    edges' blur; the result says so: ``thin_walls``); 0 with the film at 1 px when even that does not.

    Dense films with thin walls left a handful of film pixels ``ring`` px from every pore (2-224 of
    a 1024² view, opening 0.62-0.67, pores 15-30 px: an outside tester's own renderer), in a few
    corners: the degree-2 level field through them ran from 0 to 140 times the film's level, and D
    came out -34 % or +22 %, the opening ratio -0.22 or +0.31, the through-pore fraction 0.003 for
    0.61 — unflagged, the truth far outside the intervals."""
    h, w = mask.shape
    need = min(_LEVEL_MIN_PX, _LEVEL_MIN_SHARE * mask.size)

    def spread(sel: np.ndarray) -> bool:
        if np.count_nonzero(sel) < need:
            return False
        blocks = sum(bool(sel[i * h // 4:(i + 1) * h // 4, j * w // 4:(j + 1) * w // 4].any())
                     for i in range(4) for j in range(4))
        return blocks >= _LEVEL_MIN_BLOCKS

    sel = far
    for r in range(ring, 0, -1):
        if r != ring:
            sel = ~box_max(mask, r)
        if spread(sel):
            return sel, r
    return sel, 0


_REACH_MAX = 10  # px: the farthest an edge's blur and halo are followed into the film


def _edge_reach(n0: np.ndarray, mask: np.ndarray, contrast: float, crop: int = 256) -> int | None:
    """How far (px, chessboard) the pores' edges reach beyond their masks into the film: the
    blur's tails and a defocus halo (a fringe in the film, brighter or darker than it) both
    belong to the pore's partial volume, so the ring must cover them.

    On a central ``crop``² window, the mean level of the shells 1, 2, … px outside the masks;
    the reach is the first shell from which the level changes by less than 1 % of the pores'
    contrast to the next. None when the shells run out first (a dense lattice: no film beyond
    the edges' reach anywhere; the ring is then left to the pores' size, and the edges reach
    deep into the pores too) or the level still changes at ``_REACH_MAX`` px; 0 for an empty
    or tiny image."""
    h, w = mask.shape
    r0, c0 = max(0, (h - crop) // 2), max(0, (w - crop) // 2)
    m = mask[r0: r0 + crop, c0: c0 + crop]
    v = n0[r0: r0 + crop, c0: c0 + crop]
    if m.size < 256 or not m.any():
        return 0
    prev_mean = None
    inner = m
    for k in range(1, _REACH_MAX + 2):
        dil = box_max(m, k)
        shell = dil & ~inner
        cnt = int(np.count_nonzero(shell))
        if cnt < 0.01 * m.size:
            return None
        mean = float(v[shell].mean())
        if prev_mean is not None and abs(mean - prev_mean) < 0.01 * contrast:
            return k - 1
        prev_mean, inner = mean, dil
    return None


def _marker_patches(peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Flat indices of the marker pixels, the 8-connected patch (1..npk, raster order) of each,
    and npk. Markers are nearly always isolated pixels; only then is ``ndi.label`` skipped."""
    h, w = peaks.shape
    idx = np.flatnonzero(peaks)
    if idx.size == 0:
        return idx, idx, 0
    col = idx % w
    nb = np.concatenate([idx[col < w - 1] + 1, idx + w, idx[col > 0] + (w - 1), idx[col < w - 1] + (w + 1)])
    pos = np.searchsorted(idx, nb)
    pos = np.minimum(pos, idx.size - 1)
    if not np.any(idx[pos] == nb):
        return idx, np.arange(1, idx.size + 1), int(idx.size)
    pk_lab, npk = ndi.label(peaks, structure=np.ones((3, 3)))
    return idx, pk_lab.ravel()[idx], int(npk)


def _split(
    lab: np.ndarray, n: int, mask: np.ndarray, norm: np.ndarray, r_typ: float, pores: Pixels | None = None,
    pore_lab: np.ndarray | None = None, cache: dict | None = None,
) -> tuple[np.ndarray, int]:
    """Split touching pores.

    Markers are the minima of the image smoothed at the pore scale (one per pore, however thin
    the wall between two pores is); a component holding several markers is shared out to the
    nearest marker of that component (exact Euclidean distance to the marker pixels).
    """
    h, w = lab.shape
    sg = max(1.0, 0.4 * r_typ)
    md = max(2, int(round(0.6 * r_typ)))

    def minima(x: np.ndarray) -> np.ndarray:
        gs = gaussian(x, sg, truncate=3.0)
        return gs == box_min(gs, md)

    # two row bands on two threads; the halo covers the Gaussian and the minimum window
    peaks = _parallel_rows(minima, norm, int(3 * sg + 0.5) + md + 1)
    peaks &= mask
    pk_idx, pk_id, npk = _marker_patches(peaks)
    if npk == 0:
        return lab, n
    flat = lab.ravel()
    pk_comp = flat[pk_idx].astype(np.int64)
    # count marker patches per component
    comp_of_pk = np.zeros(npk + 1, np.int64)
    comp_of_pk[pk_id] = pk_comp
    comp_of_pk = comp_of_pk[1:]
    per = np.bincount(comp_of_pk, minlength=n + 1)
    per[0] = 0
    multi_comp = per > 1
    if not multi_comp.any():
        return lab, n
    # markers inside multi components, relabelled: the first of each component keeps its label
    keep_pk = multi_comp[comp_of_pk]
    ids = np.nonzero(keep_pk)[0]  # marker index (0-based) in multi comps
    new_label = np.zeros(npk + 1, np.int64)
    comps = comp_of_pk[ids]
    _, first = np.unique(comps, return_index=True)
    is_first = np.zeros(ids.size, bool)
    is_first[first] = True
    new_label[ids[is_first] + 1] = comps[is_first]
    nxt = n + 1 + int((~is_first).sum())
    new_label[ids[~is_first] + 1] = np.arange(n + 1, nxt)
    odt = np.int64 if nxt > 2**31 - 1 else np.int32
    if cache is not None and lab.dtype == odt:
        out = lab  # the caller's own work buffer: relabel in place
    else:
        out = lab.astype(odt)
    # marker pixels of the multi components, grouped by component
    sel = multi_comp[pk_comp]
    m_idx, m_comp, m_lab = pk_idx[sel], pk_comp[sel], new_label[pk_id[sel]]
    order = np.argsort(m_comp, kind="stable")
    m_idx, m_comp, m_lab = m_idx[order], m_comp[order], m_lab[order]
    k_c = np.bincount(m_comp, minlength=n + 1)
    start_c = np.concatenate([[0], np.cumsum(k_c)[:-1]])
    if pores is None:
        pores = Pixels.of(mask)
        pore_lab = flat[pores.flat].astype(np.intp)
    in_multi = multi_comp[pore_lab]
    px, p_comp = pores.flat[in_multi], pore_lab[in_multi]
    kp = k_c[p_comp]
    if int(kp.sum()) > (_MAX_PAIRS if _MAX_PAIRS is not None else 8 * lab.size + 1_000_000):
        # huge merged networks: nearest marker through a Euclidean feature transform
        _assign_edt(out, lab, multi_comp, peaks, pk_idx, pk_id, new_label, r_typ)
        return out, nxt - 1
    # nearest marker pixel of the pixel's own component, one marker rank at a time over the
    # pixels of components that have that many markers (pixels sorted by marker count)
    kmax = int(kp.max())
    order = np.argsort((kmax - kp).astype(np.int16 if kmax < 2**15 else np.int64), kind="stable")
    px, kp = px[order], kp[order]
    base = start_c[p_comp[order]]
    it = np.int32 if max(h, w) < 30000 else np.int64
    py_ = pores.row[in_multi][order].astype(it)
    px_ = pores.col[in_multi][order].astype(it)
    my_, mx_ = (v.astype(it) for v in np.divmod(m_idx, w))
    best = np.full(px.size, np.iinfo(it).max, it)
    arg = base.copy()
    n_with = px.size - np.cumsum(np.bincount(kp))  # pixels with more than r markers
    for r in range(kmax):
        L = int(n_with[r])
        if L <= 0:
            break
        j = base[:L] + r
        dy = py_[:L] - my_[j]
        dx = px_[:L] - mx_[j]
        d2 = dy * dy
        d2 += dx * dx
        upd = d2 < best[:L]
        np.copyto(best[:L], d2, where=upd)
        np.copyto(arg[:L], j, where=upd)
    out.ravel()[px] = m_lab[arg]
    return out, nxt - 1


def _assign_edt(out, lab, multi_comp, peaks, pk_idx, pk_id, new_label, r_typ) -> None:
    """Nearest marker (any multi component) by exact Euclidean feature transform over the box
    holding the multi components."""
    multi = multi_comp[lab]
    pk_lab = np.zeros(lab.size, np.int64)
    pk_lab[pk_idx] = pk_id
    pk_lab = pk_lab.reshape(lab.shape)
    rows = np.nonzero(multi.any(axis=1))[0]
    cols = np.nonzero(multi.any(axis=0))[0]
    r0, r1 = rows[0], rows[-1] + 1
    c0, c1 = cols[0], cols[-1] + 1
    mk = (pk_lab[r0:r1, c0:c1] > 0) & multi[r0:r1, c0:c1]
    halo = int(3 * r_typ) + 8

    def feat(x):
        return ndi.distance_transform_edt(~x, return_distances=False, return_indices=True)

    bands = row_bands(r1 - r0, 2, halo)
    if r1 - r0 >= 256 and len(bands) == 2 and 2 * halo < (r1 - r0) // 2:
        parts = list(pool().map(feat, [mk[lo:hi] for lo, hi, _, _ in bands]))
        iy = np.concatenate([p[0][k0 - lo : k1 - lo] + lo for (lo, hi, k0, k1), p in zip(bands, parts)])
        ix = np.concatenate([p[1][k0 - lo : k1 - lo] for (lo, hi, k0, k1), p in zip(bands, parts)])
    else:
        iy, ix = feat(mk)
    near = new_label[pk_lab[r0:r1, c0:c1][iy, ix]]
    mb = multi[r0:r1, c0:c1]
    box = out[r0:r1, c0:c1]
    box[mb] = near[mb]
