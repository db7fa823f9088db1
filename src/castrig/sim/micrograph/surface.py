"""Top views of a film in each appearance family (issue 16): reflected light with dark pores
(:func:`render_surface`, the twin's own), a secondary-electron SEM view with bright inner rims
and its artefacts (:func:`render_surface_sem`), backscatter-like flat contrast
(:func:`render_surface_bse`), reflected light with bright pores (:func:`render_surface_bright`)
and defocus halos (:func:`render_surface_halo`). Each returns the reflected (or SEM) view and the
transmitted one of the same structure.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from .kernels import (
    _BLIND_TRANSMITTED, _FILM_TRANSMITTED, _THROUGH_TRANSMITTED, _disc_coverage, _discs_coverage,
    _finish, _illuminate, _top_view_px, _transmitted,
)
from .structure import FilmStructure


# Relative intensities (film = 1 in reflected light) used by the renderers.
_FILM_REFLECTED = 1.0
_PORE_REFLECTED = (0.12, 0.28)  # per-pore uniform range: depth and bottom reflection differ


def render_surface(
    structure: FilmStructure,
    pixel_size_um: float,
    rng: np.random.Generator,
    *,
    bit_depth: int = 8,
    illumination_gradient: float = 0.3,
    blur_px: float = 1.0,
    noise: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """Render the (reflected, transmitted) top views, registered pixel for pixel.

    Reflected: bright film, dark pores (each pore its own darkness). Transmitted: dim film and
    blind pores, bright through-pores. Both get their own uneven illumination, then blur,
    additive noise (relative to the film level) and quantisation.
    """
    shape, c, r = _top_view_px(structure, pixel_size_um)
    dark = rng.uniform(*_PORE_REFLECTED, len(r))
    t = np.where(np.asarray(structure.through, bool), _THROUGH_TRANSMITTED, _BLIND_TRANSMITTED) - _FILM_TRANSMITTED
    cov, refl, trans = _discs_coverage(shape, c[:, 0], c[:, 1], r, [None, _FILM_REFLECTED - dark, t])
    over = np.clip(cov, 1, None, out=cov)  # anti-aliasing of two very close discs can overfill a pixel
    refl /= over
    refl = np.subtract(_FILM_REFLECTED, refl, out=refl)  # _FILM_REFLECTED - refl / over, in place
    trans /= over
    trans += _FILM_TRANSMITTED
    refl = _illuminate(refl, rng, illumination_gradient)
    trans = _illuminate(trans, rng, illumination_gradient)
    return (
        _finish(refl, rng, blur_px, noise, bit_depth),
        _finish(trans, rng, blur_px, noise, bit_depth),
    )


# --------------------------------------------------------------------------------------------
# Second appearance family: secondary-electron SEM (issue 16)
# --------------------------------------------------------------------------------------------

APPEARANCES = ("optical", "sem")


def _sem_pore_value(u: np.ndarray, rim_peak: float, rim_width: float, core: float) -> np.ndarray:
    """Secondary-electron brightness inside an opening at normalised radius ``u`` = ρ/r (< 1).

    The steep wall just inside the lip emits most (secant law, SE escape through the lip): the
    brightness peaks at the lip (``rim_peak`` × film) and decays inward over ``rim_width`` (a
    fraction of r) to the dark ``core`` of the cavity, whose electrons mostly do not escape.
    """
    return core + (rim_peak - core) * np.exp(-(1.0 - u) / rim_width)


def _sem_disc_cv(shape: tuple[int, int], cx: float, cy: float, r: float, rim_peak: float, rim_width: float,
                 core: float, neck: float | None, ss: int = 4) -> tuple[int, int, np.ndarray, np.ndarray] | None:
    """One SE-rendered opening (replacing the film inside the lip, the lip anti-aliased by
    ``ss``×``ss`` supersampling; ``neck``, a normalised radius, darkens a through-pore's open neck
    to near black): (first row, first column, lip coverage c, value v) of its box (``img``
    becomes ``img·(1 - c) + v`` there), or None when the box is off the image."""
    h, w = shape
    x0, x1 = max(int(cx - r - 1), 0), min(int(cx + r + 2), w)
    y0, y1 = max(int(cy - r - 1), 0), min(int(cy + r + 2), h)
    if x0 >= x1 or y0 >= y1:
        return None
    o = (np.arange(ss) + 0.5) / ss
    yy = (np.arange(y0, y1)[:, None] + o[None, :]).ravel() - cy
    xx = (np.arange(x0, x1)[:, None] + o[None, :]).ravel() - cx
    u = np.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2) / r
    inside = u < 1.0
    val = _sem_pore_value(np.minimum(u, 1.0), rim_peak, rim_width, core)
    if neck is not None:
        val = np.where(u < neck, 0.05 + 0.5 * (val - 0.05) * np.clip((u / neck) ** 8, 0, 1), val)
    shp = (y1 - y0, ss, x1 - x0, ss)
    c = inside.reshape(shp).mean(axis=(1, 3))
    v = np.where(inside, val, 0.0).reshape(shp).mean(axis=(1, 3))
    return y0, x0, c, v


def _sem_discs(img: np.ndarray, cov: np.ndarray, cx: np.ndarray, cy: np.ndarray, r: np.ndarray,
               peaks: np.ndarray, rim_width: float, cores: np.ndarray, through: np.ndarray, neck: float,
               ss: int = 4, chunk: int = 128) -> None:
    """Every opening written into ``img`` in turn, as :func:`_sem_disc_cv` gives it (``neck`` for
    the ``through`` ones; ``cov`` accumulates the lip coverage), with the openings' pixels
    computed many at a time.

    Openings whose boxes are not clipped by the image's border are grouped by box size; each
    group's supersampled values are one array operation (elementwise those of one opening,
    and the mean of each pixel's ss×ss samples summed in the same memory order). A pixel is
    changed only where an opening covers part of it (elsewhere ``sub·(1 - 0) + 0``), and where
    several do, their updates are applied in the openings' order, one layer at a time. The
    openings whose boxes the border cuts are computed one at a time (:func:`_sem_disc_cv`) and
    applied with the others, in the same overall order.
    """
    h, w = img.shape
    x0 = np.array([max(int(x - rr - 1), 0) for x, rr in zip(cx, r)], np.int64)
    x1 = np.array([min(int(x + rr + 2), w) for x, rr in zip(cx, r)], np.int64)
    y0 = np.array([max(int(y - rr - 1), 0) for y, rr in zip(cy, r)], np.int64)
    y1 = np.array([min(int(y + rr + 2), h) for y, rr in zip(cy, r)], np.int64)
    # unclipped boxes: int(x - r - 1) ≥ 0 and int(x + r + 2) ≤ w (and in y)
    free = ((x0 == np.trunc(cx - r - 1)) & (x1 == np.trunc(cx + r + 2)) & (y0 == np.trunc(cy - r - 1))
            & (y1 == np.trunc(cy + r + 2)) & (x0 < x1) & (y0 < y1))
    o = (np.arange(ss) + 0.5) / ss
    pix, cs, vs, order = [], [], [], []
    for (bh, bw) in sorted(set(zip((y1 - y0)[free].tolist(), (x1 - x0)[free].tolist()))):
        members = np.nonzero(free & (y1 - y0 == bh) & (x1 - x0 == bw))[0]
        for m in range(0, len(members), chunk):
            k = members[m: m + chunk]
            yy = ((y0[k, None] + np.arange(bh))[:, :, None] + o).reshape(len(k), -1) - cy[k, None]
            xx = ((x0[k, None] + np.arange(bw))[:, :, None] + o).reshape(len(k), -1) - cx[k, None]
            u = np.add((yy * yy)[:, :, None], (xx * xx)[:, None, :])
            np.sqrt(u, out=u)
            u /= r[k, None, None]
            inside = u < 1.0
            val = _sem_pore_value(np.minimum(u, 1.0), peaks[k, None, None], rim_width, cores[k, None, None])
            t = through[k]
            if t.any():
                ut, vt = u[t], val[t]
                val[t] = np.where(ut < neck, 0.05 + 0.5 * (vt - 0.05) * np.clip((ut / neck) ** 8, 0, 1), vt)
            np.copyto(val, 0.0, where=~inside)  # np.where(inside, val, 0.0)
            c = _sample_mean(inside.astype(float), bh, bw, ss)
            v = _sample_mean(val, bh, bw, ss)
            g, iy, ix = np.nonzero(c > 0)
            pix.append((y0[k][g] + iy) * w + x0[k][g] + ix)
            cs.append(c[g, iy, ix])
            vs.append(v[g, iy, ix])
            order.append(k[g])
    for k in np.nonzero(~free)[0]:  # boxes cut by the border: one at a time
        cv = _sem_disc_cv((h, w), cx[k], cy[k], r[k], peaks[k], rim_width, cores[k], neck if through[k] else None, ss)
        if cv is not None:
            by, bx, c, v = cv
            iy, ix = np.nonzero(c > 0)
            pix.append((by + iy) * w + bx + ix)
            cs.append(c[iy, ix])
            vs.append(v[iy, ix])
            order.append(np.full(len(iy), k))
    if pix:
        pix, cs, vs, order = (np.concatenate(a) for a in (pix, cs, vs, order))
        srt = np.lexsort((order, pix))  # by pixel, then opening
        pix, cs, vs = pix[srt], cs[srt], vs[srt]
        first = np.r_[True, pix[1:] != pix[:-1]]
        start = np.maximum.accumulate(np.where(first, np.arange(len(pix)), 0))
        layer = np.arange(len(pix)) - start
        flat_img, flat_cov = img.reshape(-1), cov.reshape(-1)
        for lv in range(int(layer.max()) + 1 if len(layer) else 0):
            sel = layer == lv
            p, cc = pix[sel], cs[sel]
            flat_img[p] = flat_img[p] * (1 - cc) + vs[sel]
            flat_cov[p] += cc


def _sample_mean(a: np.ndarray, bh: int, bw: int, ss: int) -> np.ndarray:
    """``a.reshape(n, bh, ss, bw, ss).mean(axis=(2, 4))``: each pixel's mean of its ss×ss samples.

    For ss = 4 and boxes at least 2 px wide numpy sums each sample row (4 in a row, in order) and
    then the 4 row sums in order (checked equal on 500 random shapes); written out as 16 adds on
    strided views it is several times faster than the generic two-axis reduction. Other shapes
    (a 1-px-wide box makes the 16 samples contiguous, summed pairwise) use np.mean itself.
    """
    n = a.shape[0]
    a5 = a.reshape(n, bh, ss, bw, ss)
    if ss != 4 or bw < 2:
        return a5.mean(axis=(2, 4))
    total = None
    for i in range(4):
        row = a5[:, :, i, :, 0] + a5[:, :, i, :, 1]
        row += a5[:, :, i, :, 2]
        row += a5[:, :, i, :, 3]
        if total is None:
            total = row
        else:
            total += row
    total /= 16
    return total


def _scan_artefacts(img: np.ndarray, rng: np.random.Generator, line_noise: float, streaks: int) -> np.ndarray:
    """Scan-line noise (a random offset per line) and charging streaks (lines brightened from a
    random column on, fading along the scan)."""
    h, w = img.shape
    out = img + rng.normal(0, line_noise, (h, 1))
    x = np.arange(w)
    for _ in range(streaks):
        row = int(rng.integers(0, h))
        x0 = int(rng.integers(0, w))
        amp = rng.uniform(0.05, 0.15)
        length = rng.uniform(0.05, 0.3) * w
        fade = np.where(x >= x0, amp * np.exp(-(x - x0) / length), 0.0)
        rows = slice(row, min(h, row + int(rng.integers(1, 3))))
        out[rows] += fade[None, :]
    return out


def _jpeg(img8: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip an 8-bit image through JPEG (the artefacts of an image saved as .jpg)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img8).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L"))


def render_surface_sem(
    structure: FilmStructure,
    pixel_size_um: float,
    rng: np.random.Generator,
    *,
    bit_depth: int = 8,
    illumination_gradient: float = 0.2,
    blur_px: float = 0.7,
    noise: float = 0.03,
    rim_peak: tuple[float, float] = (1.5, 2.1),
    rim_width: float = 0.18,
    core: tuple[float, float] = (0.15, 0.35),
    line_noise: float = 0.01,
    streaks: int = 3,
    jpeg_quality: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The (top view, transmitted) pair in the secondary-electron family.

    Top view as an SE SEM shows it: flat film at level 1; each opening a bright inner rim at its
    lip (``rim_peak`` × film, decaying inward over ``rim_width`` × r) around a dark core
    (``core``), through-pores a black neck; then vignetting, scan-line noise, charging streaks,
    blur, noise, quantisation and optionally a JPEG round trip. The opening's edge (ground
    truth) is the lip, where the film's flat top ends. The transmitted view is the optical one.
    """
    shape, c, r = _top_view_px(structure, pixel_size_um)
    img = np.ones(shape)
    cov = np.zeros(shape)
    peaks = rng.uniform(*rim_peak, len(r))
    cores = rng.uniform(*core, len(r))
    _sem_discs(img, cov, c[:, 0], c[:, 1], r, peaks, rim_width, cores,
               np.asarray(structure.through, bool), structure.neck_ratio)
    img = _illuminate(img, rng, illumination_gradient)
    img = _scan_artefacts(img, rng, line_noise, streaks)
    # the top view's scale: film at ~0.45 of full scale, rims up to ~0.95 (SEM contrast setting)
    top = _finish(img * 0.45, rng, blur_px, noise * 0.45, bit_depth)
    if jpeg_quality is not None and bit_depth == 8:
        top = _jpeg(top, jpeg_quality)
    # transmitted: the optical view (its own light), as render_surface draws it
    trans = _illuminate(_transmitted(structure, shape, c, r), rng, illumination_gradient)
    return top, _finish(trans, rng, 1.0, noise, bit_depth)


def _pillbox(img: np.ndarray, radius: float) -> np.ndarray:
    """Convolve with a uniform disc of ``radius`` px (a defocused point: the aperture's image)."""
    if radius <= 0.5:
        return img
    k = int(math.ceil(radius)) + 1
    yy, xx = np.mgrid[-k: k + 1, -k: k + 1].astype(float)
    ker = np.zeros_like(yy)
    _disc_coverage(ker, k + 0.5, k + 0.5, radius)
    return ndi.convolve(img, ker / ker.sum(), mode="reflect")


def render_surface_bse(
    structure: FilmStructure,
    pixel_size_um: float,
    rng: np.random.Generator,
    *,
    illumination_gradient: float = 0.15,
    blur_px: float = 0.7,
    defocus_px: float = 1.0,
    noise: float = 0.03,
    pore_level: tuple[float, float] = (0.55, 0.75),
    jpeg_quality: int | None = 75,
) -> tuple[np.ndarray, np.ndarray]:
    """The (top view, transmitted) pair in a backscatter-like family (issue 16): flat, weak
    contrast (each opening a uniform level ``pore_level`` × film: fewer electrons come back
    from the cavity, no edge effect, so no rim), slightly out of focus (a pillbox of
    ``defocus_px`` then a Gaussian ``blur_px``), noise, 8-bit and saved as JPEG at
    ``jpeg_quality``. The opening's edge (ground truth) is the lip. The transmitted view is the
    optical one."""
    shape, c, r = _top_view_px(structure, pixel_size_um)
    level = rng.uniform(*pore_level, len(r))
    cov, img = _discs_coverage(shape, c[:, 0], c[:, 1], r, [None, 1.0 - level])
    img = 1.0 - img / np.clip(cov, 1, None)
    img = _pillbox(_illuminate(img, rng, illumination_gradient), defocus_px)
    top = _finish(img * 0.6, rng, blur_px, noise * 0.6, 8)
    if jpeg_quality is not None:
        top = _jpeg(top, jpeg_quality)
    trans = _illuminate(_transmitted(structure, shape, c, r), rng, illumination_gradient)
    return top, _finish(trans, rng, 1.0, noise, 8)


# --------------------------------------------------------------------------------------------
# Further reflected-light families (issue 16): bright pores, defocus halos
# --------------------------------------------------------------------------------------------

#: bright-pore reflected light: the film's level and the pore floors' (per-pore uniform ranges)
_BRIGHT_FILM = 0.30
_BRIGHT_THROUGH = (0.88, 1.00)
_BRIGHT_BLIND = (0.82, 0.96)


def render_surface_bright(
    structure: FilmStructure,
    pixel_size_um: float,
    rng: np.random.Generator,
    *,
    bit_depth: int = 8,
    illumination_gradient: float = 0.3,
    blur_px: float = 1.0,
    noise: float = 0.02,
) -> tuple[np.ndarray, np.ndarray]:
    """The (reflected, transmitted) pair of a film whose pores look BRIGHTER than the film.

    A film on a mirror-like support (a metal mesh, a polished wafer) seen in reflected light:
    the porous polymer reflects little of the lamp (its top surface ~4 %, the cavities below it
    scatter much of the rest out of the objective), so the film is dim (0.30 of full scale); a
    through-pore shows the bare support at its floor (0.88–1.00), a blind pore the support
    through a thin polymer floor, a little dimmer (0.82–0.96; each pore its own: the spread
    of the pores' contrast is about that of :func:`render_surface`'s dark floors). The
    transmitted view is the optical one (through-pores bright). Same vignetting, blur, noise (absolute, on the same full scale as
    :func:`render_surface`) and quantisation as :func:`render_surface`.
    """
    shape, c, r = _top_view_px(structure, pixel_size_um)
    thr = np.asarray(structure.through, bool)
    floor = np.where(thr, rng.uniform(*_BRIGHT_THROUGH, len(r)), rng.uniform(*_BRIGHT_BLIND, len(r)))
    cov, refl = _discs_coverage(shape, c[:, 0], c[:, 1], r, [None, floor - _BRIGHT_FILM])
    refl /= np.clip(cov, 1, None, out=cov)
    refl += _BRIGHT_FILM
    refl = _illuminate(refl, rng, illumination_gradient)
    trans = _illuminate(_transmitted(structure, shape, c, r), rng, illumination_gradient)
    return _finish(refl, rng, blur_px, noise, bit_depth), _finish(trans, rng, blur_px, noise, bit_depth)


def render_surface_halo(
    structure: FilmStructure,
    pixel_size_um: float,
    rng: np.random.Generator,
    *,
    bit_depth: int = 8,
    illumination_gradient: float = 0.3,
    blur_px: float = 1.0,
    noise: float = 0.02,
    defocus_px: tuple[float, float] = (0.8, 1.6),
    halo: tuple[float, float] = (0.12, 0.25),
    halo_sign: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The (reflected, transmitted) pair of a slightly defocused reflected-light view: each
    pore ringed by a bright (or dark) halo in the film just outside its edge.

    Each pore's floor lies deeper than the film's top, so light reflected there comes back
    with a phase lag (per pore, its own: depths differ). Out of focus, a phase step redirects
    light across the edge — the intensity transport equation, I_z = I − z·∇·(I ∇φ)/k for a
    small defocus z: intensity is moved, not made, so the fringe outside the edge is paid for
    by light taken from just inside it (or the reverse for the other sign of z). The in-focus
    reflectance (as :func:`render_surface`, pores dark) is spread by the defocus disc
    (``defocus_px`` radius, drawn per image), the transport term added with the halo peak on
    the film ``halo`` × film (drawn per image; bright for one sign of the defocus, dark for
    the other: ``halo_sign`` ±1 or drawn), then the optics' blur, noise and quantisation. The
    opening's edge (ground truth) is the lip: the halo lies on the film. The transmitted view
    is the optical one (through-pores bright), in focus.
    """
    shape, c, r = _top_view_px(structure, pixel_size_um)
    dark = rng.uniform(*_PORE_REFLECTED, len(r))
    phase = rng.uniform(0.6, 1.0, len(r))  # the floor's phase lag, relative (depths differ)
    rho = rng.uniform(*defocus_px)
    amp = rng.uniform(*halo)
    sign = int(halo_sign) if halo_sign is not None else int(rng.choice([-1, 1]))
    cov, refl, phi = _discs_coverage(shape, c[:, 0], c[:, 1], r, [None, _FILM_REFLECTED - dark, phase])
    over = np.clip(cov, 1, None)
    refl = _illuminate(_FILM_REFLECTED - refl / over, rng, illumination_gradient)
    phi = phi / over
    i_d = _pillbox(refl, rho)
    p_d = _pillbox(phi, rho)
    gy, gx = np.gradient(p_d)
    div = np.gradient(i_d * gy, axis=0) + np.gradient(i_d * gx, axis=1)
    # scaled so that the strongest fringe on the film (outside every opening), as the optics'
    # blur leaves it, peaks at ``amp`` of the film's level
    film = cov <= 0
    top = float(np.percentile(i_d[film], 99)) if film.any() else float(i_d.max())
    ref = float(np.abs(ndi.gaussian_filter(div, blur_px)[film]).max()) if film.any() else 0.0
    img = i_d + sign * div * (amp * top / ref if ref > 0 else 0.0)
    img = np.maximum(img, 0.0)
    trans = _illuminate(_transmitted(structure, shape, c, r), rng, illumination_gradient)
    return _finish(img, rng, blur_px, noise, bit_depth), _finish(trans, rng, blur_px, noise, bit_depth)
