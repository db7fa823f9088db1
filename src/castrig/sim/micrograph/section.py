"""A film's cross-section micrograph (:func:`render_section`): background, the film with the
cavities the section plane cuts (joined where their windows are), the polymer's tongues into the
support and the support's textured pore phase, optionally tilted or wavy
(:func:`section_shear_px`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from .kernels import _disc_coverage, _finish, _gaussian, _illuminate
from .structure import FilmStructure, _cut_pores, _window, cavity_pairs, section_cavities


_SEC_BACKGROUND = 0.08
_SEC_FILM = 0.85
_SEC_HOLE = 0.10
_SEC_SUPPORT = 0.45
_SEC_SUPPORT_PORE = 0.15


def _section_layout(structure: FilmStructure, pixel_size_um: float) -> tuple[int, int, float]:
    """(height px, width px, interface row) of a section image."""
    tmax = float(structure.thickness_um.max())
    top = max(20.0, 0.6 * tmax / pixel_size_um)
    y_int = top + tmax / pixel_size_um
    h = int(math.ceil(y_int + structure.support_depth_um / pixel_size_um))
    w = int(round(structure.section_length_um / pixel_size_um))
    return h, w, y_int


def section_shear_px(x_px: np.ndarray, w: int, *, tilt_deg: float = 0.0, wave_amplitude_px: float = 0.0,
                     wave_period_px: float = 0.0) -> np.ndarray:
    """How far :func:`render_section` moves column ``x_px`` (px, of a section ``w`` px wide)
    down: its tilt, ``(x - w/2)·tan θ``, and its support's wave, ``A·sin(2πx/P)`` — what a ground
    truth of a sheared section needs to know too."""
    dy = (x_px - w / 2) * math.tan(math.radians(tilt_deg))
    if wave_period_px:
        dy = dy + wave_amplitude_px * np.sin(2 * math.pi * x_px / wave_period_px)
    return dy


def render_section(
    structure: FilmStructure,
    pixel_size_um: float,
    rng: np.random.Generator,
    *,
    bit_depth: int = 8,
    illumination_gradient: float = 0.2,
    blur_px: float = 1.0,
    noise: float = 0.02,
    flip: bool = False,
    film_darker: bool = False,
    support_texture: float = 0.08,
    support_level: float | None = None,
    tilt_deg: float = 0.0,
    wave_amplitude_px: float = 0.0,
    wave_period_px: float = 0.0,
) -> np.ndarray:
    """Render the cross-section at ``y = section_y_um``.

    Dark background above; the film as a bright band from the thickness profile down to the
    (flat) interface, with the pores cut by the plane as dark holes (open to the top where the
    cut is wide); then the support: textured grey with dark pores.

    Appearance variants (issue 16; the defaults give the images of earlier versions):
    ``flip`` puts the background below (the image upside down); ``film_darker`` makes the film
    (and the polymer tongues) darker than the support (film 0.45, support 0.70);
    ``support_texture`` is the relative standard deviation of the support's grain texture (0.08)
    and ``support_level`` its matrix level (0.45; 0.70 with ``film_darker``): e.g. 0.6 and 0.15
    make its brightest grains as bright as the film, and with ``film_darker`` a texture of 0.15
    makes its darkest grains as dark as the film; ``tilt_deg`` tilts the whole section
    by a shear of the columns (each column moved down by ``(x - w/2)·tan θ``; vertical
    distances, areas and so the ground truth stay the same; the image is rendered taller, with
    the shift's rows of background added above, and cut so that the support below keeps its
    depth at the centre); ``wave_amplitude_px`` and ``wave_period_px`` make the support's surface
    undulate (a real support is not flat), the film following it: each column moved down by
    ``A·sin(2πx/P)`` as well, the same shear, so the same ground truth.
    """
    p = pixel_size_um
    h, w, y_int = _section_layout(structure, p)
    sheared = bool(tilt_deg or (wave_amplitude_px and wave_period_px))
    shift = abs(math.tan(math.radians(tilt_deg))) * w / 2 + (abs(wave_amplitude_px) if wave_period_px else 0.0)
    pad = int(math.ceil(shift)) + 2 if sheared else 0
    h_out = h
    h, y_int = h + 2 * pad, y_int + pad
    xc = (np.arange(w) + 0.5) * p
    y_top = y_int - structure.thickness_at(xc) / p  # rows (float), per column
    rows = np.arange(h)[:, None] + 0.5
    # The image is three bands of rows: background alone above ``ra`` (the film starts at least
    # 1 px lower), support alone from ``rb`` on (the film ends at least 2 px higher), and only
    # between them do the layers mix. Each band gets exactly the value the whole-image formula
    # gives it (film = 0 and support = 0 or 1 there), without the passes over the full image.
    ra = min(max(int(math.floor(float(y_top.min()))) - 2, 0), h)
    rb = min(max(int(math.ceil(y_int)) + 2, ra), h)
    band = rows[ra:rb]
    film = np.clip(band - y_top[None, :] + 0.5, 0, 1) * np.clip(y_int - band + 0.5, 0, 1)
    support = np.clip(rows - y_int + 0.5, 0, 1)
    hole = np.zeros((rb - ra, w))  # rows ra..rb of the image: only the film shows the holes
    y0 = structure.section_y_um
    for k in _cut_pores(structure):  # in index order: overlapping discs add up in that order
        (cx, cy), d, thr = structure.centres_um[k], structure.diameters_um[k], structure.through[k]
        r = d / 2
        rs = r * math.sqrt(1 + structure.pore_depth_ratio**2)
        dy = abs(cy - y0)
        a = math.sqrt(rs * rs - dy * dy) / p
        ccol = cx / p
        crow = float(np.interp(cx, structure.profile_x_um, y_int * p - structure.thickness_um)) / p
        crow += structure.pore_depth_ratio * r / p
        _disc_coverage(hole, ccol, crow, a, row0=ra)
        rn = structure.neck_ratio * r
        if thr and dy < rn:
            half = math.sqrt(rn * rn - dy * dy) / p
            x0, x1 = max(int(ccol - half - 1), 0), min(int(ccol + half + 2), w)
            if x0 < x1:
                cols = np.arange(x0, x1) + 0.5
                cx_cov = np.clip(half - np.abs(cols - ccol) + 0.5, 0, 1)
                r_cov = np.clip(band - crow + 0.5, 0, 1)
                hole[:, x0:x1] = np.maximum(hole[:, x0:x1], r_cov * cx_cov[None, :])
    if structure.communication > 0:
        _windows(hole, structure, p, y_int, ra)
    np.clip(hole, 0, 1, out=hole)
    # support texture and pores: the texture's scale is that of the whole image, its values are
    # needed from row ``ra`` on (the background band shows no support)
    tex = _gaussian(rng.standard_normal((h, w)), 2.0)  # = rng.normal(size=…) but for the sign of a zero
    sd = tex.std() or 1.0
    spore = np.zeros((h - ra, w))
    for (sx, sz), sdiam in zip(structure.support_centres_um, structure.support_diameters_um):
        _disc_coverage(spore, sx / p, y_int + sz / p, sdiam / 2 / p, row0=ra)
    np.clip(spore, 0, 1, out=spore)
    for i, j in structure.support_links:
        (x0, z0), (x1, z1) = structure.support_centres_um[i], structure.support_centres_um[j]
        hw = 0.15 * min(structure.support_diameters_um[i], structure.support_diameters_um[j]) / p
        _segment_coverage(spore, x0 / p, y_int + z0 / p, x1 / p, y_int + z1 / p, hw, row0=ra)
    film_val, sup_lvl = (0.45, 0.70) if film_darker else (_SEC_FILM, _SEC_SUPPORT)
    sup_lvl = support_level if support_level is not None else sup_lvl
    # sup_val = sup_lvl * (1 + support_texture * tex / sd) * (1 - spore) + _SEC_SUPPORT_PORE * spore,
    # operation by operation, in place in the texture's rows ra.. (becoming the image)
    img = tex
    sup = img[ra:]
    sup /= sd
    sup *= support_texture
    sup += 1
    sup *= sup_lvl
    tmp = np.subtract(1, spore)
    sup *= tmp
    sup += np.multiply(spore, _SEC_SUPPORT_PORE, out=tmp)
    sites = structure.penetration_sites_um
    if len(sites):
        # tongues: sup_val * (1 - tongue) + film_val * tongue, on the rows they reach (elsewhere
        # tongue = 0 leaves sup_val as it is)
        t0 = min(max(int(y_int) - 1, ra), h)
        t1 = min(max(int(y_int + float(np.max(sites[:, 2])) / p) + 2, t0), h)
        tongue = np.zeros((t1 - t0, w))
        for xc, a, dp in sites:
            _rect_coverage(tongue, (xc - a) / p, (xc + a) / p, y_int, y_int + dp / p, t0)
        sv = img[t0:t1]
        sv *= 1 - tongue
        sv += film_val * tongue
    s_band = support[ra:rb]
    bg = np.clip(1 - film - s_band, 0, 1)
    img[ra:rb] = (
        _SEC_BACKGROUND * bg
        + film * ((1 - hole) * film_val + hole * _SEC_HOLE)
        + s_band * img[ra:rb]
    )
    img[:ra] = _SEC_BACKGROUND  # = _SEC_BACKGROUND * 1 + 0 + 0: film and support are 0 there
    # rows rb..: 0.08·0 + 0·(…) + 1·sup_val = sup_val, already there
    if sheared:
        dy = section_shear_px(np.arange(w) + 0.5, w, tilt_deg=tilt_deg, wave_amplitude_px=wave_amplitude_px,
                              wave_period_px=wave_period_px)
        src = np.arange(0, pad + h_out)[:, None] + 0.0 - dy[None, :]  # the pad rows above kept
        img = ndi.map_coordinates(img, [src, np.broadcast_to(np.arange(w)[None, :], src.shape)], order=1, mode="nearest")
    img = _illuminate(img, rng, illumination_gradient)
    out = _finish(img, rng, blur_px, noise, bit_depth)
    return out[::-1].copy() if flip else out


def _rect_coverage(img: np.ndarray, x0: float, x1: float, y0: float, y1: float, row0: int = 0) -> None:
    """Max-in the anti-aliased coverage of the rectangle [x0, x1] x [y0, y1] (pixel units);
    ``img`` may be a band of the image starting at its row ``row0`` (see :func:`_disc_coverage`)."""
    h, w = img.shape
    c0, c1 = max(int(x0) - 1, 0), min(int(x1) + 2, w)
    r0, r1 = max(int(y0) - 1, row0), min(int(y1) + 2, row0 + h)
    if c0 < c1 and r0 < r1:
        cols = np.arange(c0, c1) + 0.5
        rows = np.arange(r0, r1) + 0.5
        cx = np.clip(np.minimum(cols - x0, x1 - cols) + 0.5, 0, 1)
        cy = np.clip(np.minimum(rows - y0, y1 - rows) + 0.5, 0, 1)
        sub = img[r0 - row0:r1 - row0, c0:c1]
        np.maximum(sub, cy[:, None] * cx[None, :], out=sub)


#: margin (px) around the anti-aliased edge of a stroke within which its distance is taken with
#: np.hypot; u² + v² is within ~1e-15 of it relatively, far below this
_EDGE_EPS = 1e-6


def _segment_coverage(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, hw: float,
                      row0: int = 0) -> None:
    """Max-in the anti-aliased coverage of a stroke of half width ``hw`` from (x0, y0) to (x1, y1);
    ``img`` may be a band of the image starting at its row ``row0`` (see :func:`_disc_coverage`).

    Per pixel of the bounding box: t = clip(((x - x0)·dx + (y - y0)·dy) / L2, 0, 1), the offset
    (u, v) = (x - (x0 + t·dx), y - (y0 + t·dy)) and the coverage clip(hw - hypot(u, v) + 0.5, 0, 1).
    That is 1 wherever the distance is below hw - 0.5 and 0 above hw + 0.5 whatever its last bits,
    so ``np.hypot`` (~15 ns a pixel, 50× a product) is taken only within ``_EDGE_EPS`` of that
    ring, u² + v² telling which pixels are in it.
    """
    h, w = img.shape
    c0, c1 = max(int(min(x0, x1) - hw - 1), 0), min(int(max(x0, x1) + hw + 2), w)
    r0, r1 = max(int(min(y0, y1) - hw - 1), row0), min(int(max(y0, y1) + hw + 2), row0 + h)
    if c0 >= c1 or r0 >= r1:
        return
    yy = np.arange(r0, r1)[:, None] + 0.5
    xx = np.arange(c0, c1)[None, :] + 0.5
    dx, dy = x1 - x0, y1 - y0
    L2 = dx * dx + dy * dy or 1.0
    t = np.add((xx - x0) * dx, (yy - y0) * dy)
    t /= L2
    np.clip(t, 0, 1, out=t)
    u = np.multiply(t, dx)
    u += x0
    np.subtract(xx, u, out=u)
    v = t
    v *= dy
    v += y0
    np.subtract(yy, v, out=v)
    d2 = u * u
    d2 += v * v
    sub = img[r0 - row0:r1 - row0, c0:c1]
    inner = hw - 0.5 - _EDGE_EPS
    if inner > 0:
        np.maximum(sub, 1.0, out=sub, where=d2 < inner * inner)
    ring = d2 <= (hw + 0.5 + _EDGE_EPS) ** 2
    if inner > 0:
        ring &= d2 >= inner * inner
    iy, ix = np.nonzero(ring)
    cov = np.clip(hw - np.hypot(u[iy, ix], v[iy, ix]) + 0.5, 0, 1)
    sub[iy, ix] = np.maximum(sub[iy, ix], cov)


def _windows(hole: np.ndarray, structure: FilmStructure, p: float, y_int: float, row0: int = 0) -> None:
    """Openings joining neighbouring cavities: a bar between their centres, 0.4 × the smaller
    cut radius high (at most 0.4 × the film), at their mean centre height (kept in the film)."""
    cav = section_cavities(structure)
    pairs, _ = cavity_pairs(structure, p)
    for i, j in pairs:
        if not _window(structure, cav[i], cav[j]):
            continue
        # at the pores' mean centre height, kept inside the film (a window below the interface
        # or above the top would join nothing the section can show)
        t = float(np.interp(0.5 * (cav[i, 0] + cav[j, 0]), structure.profile_x_um, structure.thickness_um))
        hw = min(0.2 * min(cav[i, 2], cav[j, 2]), 0.2 * t)
        hc = min(max(0.5 * (cav[i, 1] + cav[j, 1]), 1.5 * hw), t - 1.5 * hw)
        _rect_coverage(hole, cav[i, 0] / p, cav[j, 0] / p, y_int - (hc + hw) / p, y_int - (hc - hw) / p, row0)
