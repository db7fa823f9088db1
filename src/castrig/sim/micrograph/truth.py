"""Ground truth from the geometry, never from pixels (:func:`ground_truth`,
:func:`claim1_truth`): the specification's metrics over exactly the field a view shows, each
disc's area inside the field by Gauss–Legendre quadrature (:func:`disc_rect_area`), so the
analysis can be measured against it.
"""

from __future__ import annotations

import math

import numpy as np

from .structure import FilmStructure, cavity_pairs, section_cavities, support_spanning


# --------------------------------------------------------------------------------------------
# Ground truth (geometry only)
# --------------------------------------------------------------------------------------------

_GL_X, _GL_W = np.polynomial.legendre.leggauss(48)


def disc_rect_area(xc: float, yc: float, r: float, w: float, h: float) -> float:
    """Exact area of the disc (xc, yc, r) inside the rectangle [0, w] x [0, h].

    Integrates the clipped chord length in the angle θ (x = xc + r sinθ), which is smooth between
    the breakpoints where a clip starts or stops, so Gauss-Legendre is exact to rounding.
    """
    return _discs_rect_area([xc], [yc], [r], w, h)[0]


def _discs_rect_area(xc: np.ndarray, yc: np.ndarray, r: np.ndarray, w: float, h: float) -> list[float]:
    """:func:`disc_rect_area` of each disc, as floats. The discs wholly inside (most) are π·r·r,
    all at once; the others' breakpoints are found one disc at a time (math.asin/acos, as
    ever), and the Gauss-Legendre sums of all their intervals taken in one (K, 48) array
    (each row's operations, and its 48-term sum, those of one interval alone), then added up
    per disc in order."""
    xc, yc, r = (np.asarray(a, float) for a in (xc, yc, r))
    area = math.pi * r * r
    inside = (xc - r >= 0) & (xc + r <= w) & (yc - r >= 0) & (yc + r <= h)
    cut = np.nonzero(~inside)[0]
    if not len(cut):
        return area.tolist()
    owner, lo, hi = [], [], []
    for k in cut:
        x0, y0, rk = float(xc[k]), float(yc[k]), float(r[k])
        brk = [-math.pi / 2, math.pi / 2]
        for xb in (0.0, w):
            s = (xb - x0) / rk
            if -1 < s < 1:
                brk.append(math.asin(s))
        for c in (h - y0, y0):
            if 0 < abs(c) < rk:
                t = math.acos(abs(c) / rk)
                brk += [t, -t]
        brk = sorted(brk)
        for a, b in zip(brk[:-1], brk[1:]):
            if b - a < 1e-15:
                continue
            owner.append(k)
            lo.append(a)
            hi.append(b)
    k, a, b = np.array(owner, np.int64), np.array(lo), np.array(hi)
    half = (b - a) / 2
    th = half[:, None] * _GL_X + ((a + b) / 2)[:, None]
    x0, y0, rk = xc[k, None], yc[k, None], r[k, None]
    x = x0 + rk * np.sin(th)
    hh = rk * np.cos(th)
    length = np.clip(np.minimum(y0 + hh, h) - np.maximum(y0 - hh, 0), 0, None)
    length = np.where((x >= 0) & (x <= w), length, 0.0)
    part = (half * np.sum(_GL_W * length * rk * np.cos(th), axis=1)).tolist()
    total = dict.fromkeys(cut.tolist(), 0.0)
    for kk, v in zip(k.tolist(), part):
        total[kk] += v
    for kk, v in total.items():
        area[kk] = v
    return area.tolist()


def ground_truth(structure: FilmStructure, *, section_pixel_size_um: float | None = None) -> dict:
    """The specification metrics of a structure, from its geometry.

    Opening ratio: exact area of the discs clipped to the field / field area. Diameter stats and
    through fraction: over pores not cut by the field border. T and σt: mean and (population)
    standard deviation of the thickness profile (sampled at the section's pixel columns when
    ``section_pixel_size_um`` is given). Support pore diameter: mean over support pores not cut by
    the section's borders.
    """
    w, h = structure.field_um
    c, d = structure.centres_um, structure.diameters_um
    r = d / 2
    area = sum(_discs_rect_area(c[:, 0], c[:, 1], r, w, h))
    inside = (c[:, 0] - r >= 0) & (c[:, 0] + r <= w) & (c[:, 1] - r >= 0) & (c[:, 1] + r <= h)
    dd = d[inside]
    if section_pixel_size_um:
        n = int(round(structure.section_length_um / section_pixel_size_um))
        t = structure.thickness_at((np.arange(n) + 0.5) * section_pixel_size_um)
    else:
        t = structure.thickness_um
    sc, sd = structure.support_centres_um, structure.support_diameters_um
    s_in = (
        (sc[:, 0] - sd / 2 >= 0)
        & (sc[:, 0] + sd / 2 <= structure.section_length_um)
        & (sc[:, 1] + sd / 2 <= structure.support_depth_um)
    ) if len(sd) else np.zeros(0, bool)
    return {
        "opening_ratio": area / (w * h),
        "mean_pore_diameter_um": float(dd.mean()) if len(dd) else None,
        "pore_diameter_std_um": float(dd.std(ddof=1)) if len(dd) > 1 else None,
        "pore_count": int(inside.sum()),
        "through_pore_fraction": float(structure.through[inside].mean()) if len(dd) else None,
        "mean_thickness_um": float(t.mean()),
        "thickness_std_um": float(t.std()),
        "support_pore_diameter_um": float(sd[s_in].mean()) if s_in.any() else None,
    } | claim1_truth(structure, section_pixel_size_um)


def claim1_truth(structure: FilmStructure, pixel_size_um: float | None = None) -> dict:
    """Claim-1 section measures from the geometry: polymer penetration (mean depth over the
    tongues seen in the section, fraction of the interface length entered), pore communication
    (joined / neighbouring cavity pairs, :func:`cavity_pairs`, without the pairs holding a cavity
    cut by the image's side) and support continuity (area fraction of the support's pores in
    clusters spanning the imaged support)."""
    L = structure.section_length_um
    s = structure.penetration_sites_um
    vis = (np.minimum(s[:, 0] + s[:, 1], L) - np.maximum(s[:, 0] - s[:, 1], 0)) if len(s) else np.zeros(0)
    seen = vis >= 3 * (pixel_size_um or 0.0)
    joined = _joined_inside(structure, pixel_size_um)
    sd = structure.support_diameters_um
    if len(sd):
        sc = structure.support_centres_um
        # "near the interface": within the support pore diameter the image shows (the whole
        # pores', as ground_truth's support_pore_diameter_um)
        s_in = (sc[:, 0] - sd / 2 >= 0) & (sc[:, 0] + sd / 2 <= L) & (sc[:, 1] + sd / 2 <= structure.support_depth_um)
        span = support_spanning(structure, band_um=float(sd[s_in].mean()) if s_in.any() else None)
        area = np.array(_discs_rect_area(sc[:, 0], sc[:, 1], sd / 2, L, structure.support_depth_um))
        cont = float(area[span].sum() / area.sum()) if area.sum() > 0 else None
    else:
        cont = None
    return {
        "penetration_depth_um": float(s[seen, 2].mean()) if seen.any() else 0.0,
        "penetration_fraction": float(np.clip(vis, 0, None).sum() / L) if len(s) else 0.0,
        "pore_communication": float(joined.mean()) if len(joined) else None,
        "support_continuity": cont,
    }


def _joined_inside(structure: FilmStructure, pixel_size_um: float | None, **limits) -> np.ndarray:
    """:func:`cavity_pairs`' joined flags without the pairs holding a cavity cut by the image's
    side: how wide it is, so whether it neighbours the next one, the section does not show."""
    pairs, joined = cavity_pairs(structure, pixel_size_um, **limits)
    if len(pairs):
        cav = section_cavities(structure)
        L = structure.section_length_um
        inside = (cav[:, 0] - cav[:, 2] >= 0) & (cav[:, 0] + cav[:, 2] <= L)
        joined = joined[inside[pairs[:, 0]] & inside[pairs[:, 1]]]
    return joined


def communication_range(structure: FilmStructure, pixel_size_um: float) -> tuple[float, float] | None:
    """The pore communication a section at ``pixel_size_um`` can rightly show: from
    :func:`claim1_truth`'s (windows from 3 px high joined) to the same with the pairs at the
    resolution limit joined too — windows 2–3 px high and walls under 2 px thin, which the
    blur may show either way. None without neighbouring pairs."""
    lo = _joined_inside(structure, pixel_size_um)
    hi = _joined_inside(structure, pixel_size_um, window_px=2.0, wall_px=2.0)
    return (float(lo.mean()), float(hi.mean())) if len(lo) else None
