"""Top-view (surface) analysis: opening ratio, pore diameters, through-pores, pitch.

Why partial volume: a blurred edge spreads each pore's darkness over neighbouring pixels, so any
single threshold over- or under-counts depending on where it falls. Blur preserves the integral
of the darkness, so the area of pore i is Σ (F − I) / (F − P_i) over the pixels that belong to it
(its mask plus a ring wide enough for the blur tails), where F is the local film level and P_i the
pore's own floor. The threshold mask only decides which pixels belong to which pore.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
import math

import numpy as np
from scipy import ndimage as ndi

from .illumination import as_float, block_extremes, fit_level, noise_sigma, poly_field
from .lattice import nearest_neighbour_pitch

__all__ = ["SurfaceMetrics", "analyse_surface", "segment_pores"]


@dataclass
class SurfaceMetrics:
    """Results of one surface analysis; ``to_dict`` gives the specification's metric names."""

    opening_ratio: float
    mean_pore_diameter_um: float | None
    pore_diameter_std_um: float | None
    pore_count: int  # pores measured (not cut by the border)
    through_pore_fraction: float | None  # None without a transmitted image
    pore_pitch_um: float | None
    pixel_size_um: float
    border_pore_count: int = 0
    diameters_um: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    centres_px: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)), repr=False)  # (row, col)
    through: np.ndarray | None = field(default=None, repr=False)  # per measured pore
    labels: np.ndarray | None = field(default=None, repr=False)  # label image (0 = film)
    measured_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, int), repr=False)

    def to_dict(self) -> dict:
        """Metric-name keyed values (JSON-ready)."""
        return {
            "opening_ratio": self.opening_ratio,
            "mean_pore_diameter_um": self.mean_pore_diameter_um,
            "pore_diameter_std_um": self.pore_diameter_std_um,
            "pore_count": self.pore_count,
            "through_pore_fraction": self.through_pore_fraction,
            "pore_pitch_um": self.pore_pitch_um,
        }


@dataclass
class _Segmentation:
    labels: np.ndarray  # pores > 0 (mask only), touching pores split
    n: int
    film: np.ndarray  # film level field F (raw units)
    ring: int  # ring radius (px) for partial volume
    far: np.ndarray  # film pixels at least ``ring`` px from any pore
    core: np.ndarray  # pore pixels at least ``ring`` px inside their pore
    dark_level: float  # median normalised pore floor P/F


_POOL: ThreadPoolExecutor | None = None


def _parallel_rows(fn, a: np.ndarray, halo: int) -> np.ndarray:
    """Apply a local filter in two row bands on two threads (scipy.ndimage releases the GIL)."""
    global _POOL
    h = a.shape[0]
    if h < 256:
        return fn(a)
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=2)
    m = h // 2
    top, bot = _POOL.map(fn, [a[: m + halo], a[m - halo :]])
    return np.concatenate([top[:m], bot[halo:]])


def _square_max(a: np.ndarray, r: int) -> np.ndarray:
    return _parallel_rows(lambda x: ndi.maximum_filter(x, size=2 * r + 1), a, r)


def _square_min(a: np.ndarray, r: int) -> np.ndarray:
    return _parallel_rows(lambda x: ndi.minimum_filter(x, size=2 * r + 1), a, r)


def _fit_field(img: np.ndarray, sel: np.ndarray, deg: int, max_samples: int = 20000) -> np.ndarray | None:
    """Polynomial level through the selected pixels of ``img`` (subsampled for speed)."""
    total = int(sel.sum())
    if total < 30:
        return None
    step = max(1, int(math.sqrt(total / max_samples)))
    sub = sel[::step, ::step]
    if sub.sum() < 30:
        return None
    rr, cc = np.nonzero(sub)
    coef = fit_level(img[::step, ::step][sub], rr * step, cc * step, img.shape, degree=deg)
    return poly_field(coef, img.shape, deg)


def segment_pores(
    image: np.ndarray,
    *,
    ring_px: int | None = None,
    degree: int = 2,
    min_contrast: float = 6.0,
) -> _Segmentation | None:
    """Pore labels (touching pores split) and the film level of a reflected-light image.

    Returns None when the image shows no pores (no dark structure above ``min_contrast`` times
    the noise).
    """
    img = as_float(image)
    h, w = img.shape
    if img.size < 16 or not np.isfinite(img).all() or float(np.ptp(img)) <= 0:
        return None  # a constant image has no structure to measure
    s = _parallel_rows(lambda x: ndi.uniform_filter(x, 3), img, 2)
    c0, c1 = h // 2, w // 2
    sig = noise_sigma(img[max(c0 - 128, 0) : c0 + 128, max(c1 - 128, 0) : c1 + 128])
    block = int(max(16, min(64, min(h, w) // 4)))
    rr, cc, mx, _ = block_extremes(s, block)
    f0 = poly_field(fit_level(mx, rr, cc, img.shape, degree=degree, upper=True), img.shape, degree)
    f0 = np.maximum(f0, 1e-6)
    n0 = s / f0
    # is there any dark structure at all? compare the darkest smoothed spot with the film, in
    # units of the pixel noise (a film-only image only has noise minima)
    gm = ndi.gaussian_filter(n0[::2, ::2], 1.0)
    sig_n = max(sig / float(np.median(f0)), 1e-6)
    contrast = float(np.percentile(gm, 90)) - float(gm.min())
    if contrast < min_contrast * sig_n or contrast < 0.02:
        return None
    dark = min(float(np.percentile(n0[::2, ::2], 0.2)), float(gm.min()))
    mask = n0 < dark + 0.5 * (1 - dark)
    lab, n = ndi.label(mask)
    if n == 0:
        return None
    areas = np.bincount(lab.ravel(), minlength=n + 1)
    r_typ = _typical_radius(lab, areas)
    ring = ring_px if ring_px is not None else int(max(3, min(6, round(0.33 * r_typ + 1.5))))
    m8 = mask.view(np.uint8)
    far = _square_max(m8, ring) == 0
    # the floor of a pore is read where its own blurred edge no longer reaches: well inside it
    core_r = int(max(1, min(ring, round(0.45 * r_typ))))
    core = _square_min(m8, core_r) == 1
    f = _fit_field(img, far, degree)
    if f is None:
        f = f0 * float(np.median(img[~mask]) / np.median(f0[~mask])) if (~mask).any() else f0
    f = np.maximum(f, 1e-6)
    p = float(np.median(img[core] / f[core])) if core.sum() > 10 else dark
    lab, n = _split(lab, n, mask, img / f, r_typ)
    return _Segmentation(lab, n, f, ring, far, core, p)


def _typical_radius(lab: np.ndarray, areas: np.ndarray) -> float:
    """Median equivalent radius of the components that look like single discs."""
    objs = ndi.find_objects(lab)
    bh = np.array([o[0].stop - o[0].start if o else 0 for o in objs], float)
    bw = np.array([o[1].stop - o[1].start if o else 0 for o in objs], float)
    a = areas[1:].astype(float)
    fill = a / np.maximum(bh * bw, 1)
    aspect = np.maximum(bh, bw) / np.maximum(np.minimum(bh, bw), 1)
    disc = (fill > 0.68) & (aspect < 1.2) & (a >= 5)
    sel = a[disc] if disc.sum() >= 3 else a[a >= 3]
    if sel.size == 0:
        return 2.0
    return float(math.sqrt(np.median(sel) / math.pi))


def _split(lab: np.ndarray, n: int, mask: np.ndarray, norm: np.ndarray, r_typ: float) -> tuple[np.ndarray, int]:
    """Split touching pores.

    Markers are the minima of the image smoothed at the pore scale (one per pore, however thin
    the wall between two pores is); a component holding several markers is shared out to the
    nearest marker (exact Euclidean feature transform).
    """
    sg = max(1.0, 0.4 * r_typ)
    md = max(2, int(round(0.6 * r_typ)))
    gs = _parallel_rows(lambda x: ndi.gaussian_filter(x, sg, truncate=3.0), norm, int(3 * sg) + 1)
    mn = _parallel_rows(lambda x: ndi.minimum_filter(x, size=2 * md + 1), gs, md)
    peaks = (gs == mn) & mask
    pk_lab, npk = ndi.label(peaks, structure=np.ones((3, 3)))
    if npk == 0:
        return lab, n
    # count marker patches per component
    comp_of_pk = np.zeros(npk + 1, np.int64)
    pl = pk_lab[peaks]
    comp_of_pk[pl] = lab[peaks]
    comp_of_pk = comp_of_pk[1:]
    per = np.bincount(comp_of_pk, minlength=n + 1)
    per[0] = 0
    multi_comp = per > 1
    if not multi_comp.any():
        return lab, n
    multi = multi_comp[lab]
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
    rows = np.nonzero(multi.any(axis=1))[0]
    cols = np.nonzero(multi.any(axis=0))[0]
    r0, r1 = rows[0], rows[-1] + 1
    c0, c1 = cols[0], cols[-1] + 1
    mk = (pk_lab[r0:r1, c0:c1] > 0) & multi[r0:r1, c0:c1]
    # nearest marker pixel for every pixel of the box
    halo = int(3 * r_typ) + 8
    def feat(x):
        return ndi.distance_transform_edt(~x, return_distances=False, return_indices=True)
    if r1 - r0 >= 256:
        m = (r1 - r0) // 2
        global _POOL
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=2)
        a_, b_ = _POOL.map(feat, [mk[: m + halo], mk[m - halo :]])
        iy = np.concatenate([a_[0][:m], b_[0][halo:] + (m - halo)])
        ix = np.concatenate([a_[1][:m], b_[1][halo:]])
    else:
        iy, ix = feat(mk)
    near = new_label[pk_lab[r0:r1, c0:c1][iy, ix]]
    box = lab[r0:r1, c0:c1]
    mb = multi[r0:r1, c0:c1]
    out = lab.astype(np.int64 if nxt > 2**31 - 1 else np.int32)
    out[r0:r1, c0:c1] = np.where(mb, near, box)
    return out, nxt - 1


def analyse_surface(
    reflected: np.ndarray,
    pixel_size_um: float,
    transmitted: np.ndarray | None = None,
    *,
    ring_px: int | None = None,
    degree: int = 2,
    keep_labels: bool = False,
) -> SurfaceMetrics:
    """Measure a reflected-light top view (pores dark), optionally with a registered
    transmitted-light view (through-pores bright).

    Pores cut by the image border count in the opening ratio but not in the diameter statistics,
    the pore count or the through-pore fraction.
    """
    if pixel_size_um is None or not pixel_size_um > 0:
        raise ValueError("pixel_size_um must be > 0")
    img = as_float(reflected)
    if transmitted is not None and np.shape(transmitted) != img.shape:
        raise ValueError(f"transmitted image shape {np.shape(transmitted)} != reflected {img.shape}")
    seg = segment_pores(img, ring_px=ring_px, degree=degree)
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
    lab = lab.astype(np.uint16) if n < 65535 else lab.astype(np.int32)
    flat = lab.ravel()
    idx = np.arange(1, n + 1)
    deficit = (f - img).ravel()
    # ring pixels: split between the nearest labels (square ring; ties shared equally)
    lmax = _square_max(lab, seg.ring)
    big = np.iinfo(lab.dtype).max
    lmin = _square_min(np.where(lab > 0, lab, big).astype(lab.dtype), seg.ring)
    rflat = ((lab == 0) & (lmax > 0)).ravel()
    num = np.bincount(flat, deficit, minlength=n + 1)
    a_, b_, dv = lmax.ravel()[rflat], lmin.ravel()[rflat], deficit[rflat]
    same = a_ == b_
    num += np.bincount(a_[same], dv[same], minlength=n + 1)
    num += np.bincount(a_[~same], 0.5 * dv[~same], minlength=n + 1)
    bb = np.where(b_[~same] == big, a_[~same], b_[~same])
    num += np.bincount(bb, 0.5 * dv[~same], minlength=n + 1)
    num = num[1:]
    # per-pore floor P_i from its core, else the typical normalised floor times F
    core = seg.core & (lab > 0)
    cl = lab[core]
    ccount = np.bincount(cl, minlength=n + 1)[1:]
    csum = np.bincount(cl, img[core], minlength=n + 1)[1:]
    cnt = np.bincount(flat, minlength=n + 1)[1:]
    fmean = np.bincount(flat, f.ravel(), minlength=n + 1)[1:] / np.maximum(cnt, 1)
    p_i = np.where(ccount >= 3, csum / np.maximum(ccount, 1), seg.dark_level * fmean)
    area_px = np.maximum(num / np.maximum(fmean - p_i, 1e-6), 0.0)
    opening = float(np.clip(area_px.sum() / img.size, 0.0, 1.0))

    # border pores: mask touches the image edge
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    on_border = np.zeros(n + 1, bool)
    on_border[edge] = True
    on_border = on_border[1:]
    measured = ~on_border & (cnt >= 2)
    d_um = 2 * np.sqrt(area_px[measured] / math.pi) * pixel_size_um
    h, w = img.shape
    cy = np.bincount(flat, np.repeat(np.arange(h, dtype=np.float64), w), minlength=n + 1)[1:]
    cx = np.bincount(flat, np.tile(np.arange(w, dtype=np.float64), h), minlength=n + 1)[1:]
    centres = np.column_stack([cy, cx]) / np.maximum(cnt, 1)[:, None]
    pitch = nearest_neighbour_pitch(centres)

    through = None
    tfrac = None
    if transmitted is not None:
        through_all = _through(as_float(transmitted), lab, n, seg, core, ccount)
        through = through_all[measured]
        tfrac = float(through.mean()) if through.size else None
    return SurfaceMetrics(
        opening_ratio=opening,
        mean_pore_diameter_um=float(d_um.mean()) if d_um.size else None,
        pore_diameter_std_um=float(d_um.std(ddof=1)) if d_um.size > 1 else None,
        pore_count=int(measured.sum()),
        through_pore_fraction=tfrac,
        pore_pitch_um=pitch * pixel_size_um if pitch is not None else None,
        pixel_size_um=pixel_size_um,
        border_pore_count=int(on_border.sum()),
        diameters_um=d_um,
        centres_px=centres,
        through=through,
        labels=lab if keep_labels else None,
        measured_labels=idx[measured],
    )


def _through(t: np.ndarray, lab: np.ndarray, n: int, seg: _Segmentation, core: np.ndarray, ccount: np.ndarray) -> np.ndarray:
    """Per pore: is it open in the transmitted view (much brighter than the film around it)?

    Through-pores pass the lamp directly; film and blind pores only what the polymer lets
    through. The ratio to the local film level is bimodal; Otsu on its log splits the modes when
    they are clearly apart (>2x), else a fixed 2x ratio decides (all or none through).
    """
    mask = lab > 0
    ft = _fit_field(t, seg.far, 2)
    if ft is None:
        ft = np.full(t.shape, float(np.median(t[~mask])) if (~mask).any() else float(t.mean()), np.float32)
    ft = np.maximum(ft, 1e-6)
    # pores with a core use it, small ones their whole mask (less contrast but still clear)
    has_core = np.concatenate([[False], ccount >= 3])
    use = np.where(has_core[lab], core, mask)
    lu = lab[use]
    cnt = np.bincount(lu, minlength=n + 1)[1:]
    qm = np.bincount(lu, (t[use] / ft[use]), minlength=n + 1)[1:] / np.maximum(cnt, 1)
    lq = np.log(np.maximum(qm, 1e-3))
    thr = math.log(2.0)
    if len(lq) >= 4 and np.ptp(lq) > 1e-6:
        t_o, lo_mean, hi_mean = _otsu_split(lq)
        if hi_mean - lo_mean > math.log(2.0):
            thr = t_o
    return lq > thr


def _otsu_split(v: np.ndarray) -> tuple[float, float, float]:
    """Exact Otsu split of a 1-D sample (no histogram binning): the threshold halfway across
    the chosen gap, and the two class means."""
    s = np.sort(v.astype(np.float64))
    n = s.size
    c = np.cumsum(s)
    k = np.arange(1, n)  # size of the lower class
    m0 = c[:-1] / k
    m1 = (c[-1] - c[:-1]) / (n - k)
    between = k * (n - k) * (m0 - m1) ** 2
    i = int(np.argmax(between))
    return float((s[i] + s[i + 1]) / 2), float(m0[i]), float(m1[i])
