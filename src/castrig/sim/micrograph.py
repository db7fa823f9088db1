"""Synthetic micrographs of honeycomb films with known ground truth.

The digital twin maps process conditions to a :class:`FilmStructure` (pure geometry, in µm) and
renders it here; :func:`ground_truth` computes the specification metrics from that geometry, never
from pixels, so the analysis can be measured against it.

Only numpy, scipy and scikit-image are used: the twin must stay independent of devices and links.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import functools
import math

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

__all__ = [
    "FilmStructure",
    "make_structure",
    "render_surface",
    "render_surface_bright",
    "render_surface_halo",
    "render_section",
    "ground_truth",
    "disc_rect_area",
    "claim1_truth",
    "section_cavities",
    "cavity_pairs",
    "communication_range",
    "support_spanning",
]

# Relative intensities (film = 1 in reflected light) used by the renderers.
_FILM_REFLECTED = 1.0
_PORE_REFLECTED = (0.12, 0.28)  # per-pore uniform range: depth and bottom reflection differ
_FILM_TRANSMITTED = 0.18
_BLIND_TRANSMITTED = 0.28
_THROUGH_TRANSMITTED = 1.0
_SEC_BACKGROUND = 0.08
_SEC_FILM = 0.85
_SEC_HOLE = 0.10
_SEC_SUPPORT = 0.45
_SEC_SUPPORT_PORE = 0.15


@dataclass
class FilmStructure:
    """Geometry of a cast film on its support, in micrometres.

    Top view: x to the right, y downward, origin at the field's corner. The section is the plane
    ``y = section_y_um`` seen from the side over ``0 <= x <= section_length_um``; depth is measured
    downward from the film/support interface.
    """

    field_um: tuple[float, float]  # (width along x, height along y)
    centres_um: np.ndarray  # (N, 2) pore centres (x, y)
    diameters_um: np.ndarray  # (N,) opening diameters at the surface
    through: np.ndarray  # (N,) bool, open to the support
    profile_x_um: np.ndarray  # (M,) sample positions of the thickness profile
    thickness_um: np.ndarray  # (M,) film thickness T(x)
    section_y_um: float
    section_length_um: float
    support_pore_um: float  # nominal mean support pore diameter
    support_centres_um: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (x, depth)
    support_diameters_um: np.ndarray = field(default_factory=lambda: np.zeros(0))
    support_depth_um: float = 0.0
    pore_depth_ratio: float = 0.5  # depth of the sphere centre below the surface / opening radius
    neck_ratio: float = 0.5  # radius of a through-pore's neck / opening radius
    #: claim 1 (issue 16): polymer tongues in the support's surface pores along the section,
    #: (K, 3) rows (x centre, half width, depth below the interface), µm; flat-bottomed
    penetration_sites_um: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    #: probability that two neighbouring cavities are joined by an opening (window), and one
    #: uniform number per pore: the pair (i, j) is joined when frac(u_i + u_j) < communication
    communication: float = 0.0
    communication_u: np.ndarray = field(default_factory=lambda: np.zeros(0))
    #: channels between support pores (index pairs into support_centres_um): continuous pores
    support_links: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), int))

    def thickness_at(self, x_um: np.ndarray) -> np.ndarray:
        """Film thickness at positions x along the section (linear interpolation)."""
        return np.interp(x_um, self.profile_x_um, self.thickness_um)


# --------------------------------------------------------------------------------------------
# Structure
# --------------------------------------------------------------------------------------------


def _as_field(field_um: float | tuple[float, float]) -> tuple[float, float]:
    if np.isscalar(field_um):
        return float(field_um), float(field_um)  # type: ignore[arg-type]
    w, h = field_um  # type: ignore[misc]
    return float(w), float(h)


def _correlated_noise(white: np.ndarray, x: np.ndarray, corr: float) -> np.ndarray:
    """Gaussian-correlated noise (correlation length ``corr``) at the positions ``x``, from the
    white normals ``white`` (one per position, so the caller's stream advances as before),
    normalised to mean 0 and s.d. 1 over ``x``.

    Over a span of at least twice the correlation length the samples are filtered as they are,
    reflected at the ends (as every profile was: those renders are unchanged). Over a shorter
    one that left little but the truncated kernel's leakage, white noise at the samples' own
    spacing that the normalisation blew up to full size: a thickness profile jumping by a tenth
    of the film between neighbouring pixel columns on a section a few pores long (sec_thin in
    benchmarks/analysis_accuracy.py; over 1024 columns the largest second difference was 0.9
    s.d. at half a correlation length, 0.13 at one, 0.007 at two, 5e-4 from four on). There,
    the white normals are filtered on a grid of corr/20 over the span and 4·corr beyond each
    end, and interpolated."""
    span = float(x[-1] - x[0])
    if span >= 2 * corr or span <= 0:
        g = ndi.gaussian_filter1d(white, corr / (x[1] - x[0]), mode="reflect")
    else:
        # (at most 201 grid points: fewer than the profile's 2048 normals)
        step = corr / 20
        m = int(math.ceil((span + 8 * corr) / step)) + 1
        xc = x[0] - 4 * corr + step * np.arange(m)
        g = np.interp(x, xc, ndi.gaussian_filter1d(white[:m], 20.0, mode="reflect"))
    return (g - g.mean()) / (g.std() or 1.0)


def _hex_grains(rng: np.random.Generator, w: float, h: float, pitch: float, grain: float) -> np.ndarray:
    """Centres of a polycrystal of hexagonal grains covering [-pitch, w+pitch] x [-pitch, h+pitch]."""
    lo, hi_x, hi_y = -pitch, w + pitch, h + pitch
    area = (hi_x - lo) * (hi_y - lo)
    n_grains = max(1, int(rng.poisson(area / grain**2)))
    seeds = np.column_stack([rng.uniform(lo, hi_x, n_grains), rng.uniform(lo, hi_y, n_grains)])
    tree = cKDTree(seeds)
    half_diag = math.hypot(hi_x - lo, hi_y - lo)
    n = int(half_diag / pitch) + 2
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    base = np.column_stack([(i + 0.5 * j).ravel() * pitch, (j * math.sqrt(3) / 2).ravel() * pitch])
    centre = np.array([(lo + hi_x) / 2, (lo + hi_y) / 2])
    out = []
    for g in range(n_grains):
        th = rng.uniform(0, math.pi / 3)
        rot = np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        pts = base @ rot.T + centre + rng.uniform(0, pitch, 2)
        inside = (pts[:, 0] >= lo) & (pts[:, 0] <= hi_x) & (pts[:, 1] >= lo) & (pts[:, 1] <= hi_y)
        pts = pts[inside]
        _, owner = tree.query(pts)
        out.append(pts[owner == g])
    return np.concatenate(out) if out else np.zeros((0, 2))


def _thin_close_points(rng: np.random.Generator, pts: np.ndarray, dmin: float) -> np.ndarray:
    """Drop points closer than dmin to an earlier kept point (grain-boundary conflicts)."""
    order = rng.permutation(len(pts))
    pts = pts[order]
    keep = np.ones(len(pts), bool)
    for a, b in sorted(cKDTree(pts).query_pairs(dmin)):
        if keep[a] and keep[b]:
            keep[b] = False
    return pts[keep]


def _remove_overlaps(centres: np.ndarray, radii: np.ndarray, wall: float) -> np.ndarray:
    """Shrink radii until every pair of discs is separated by at least ``wall``."""
    radii = radii.copy()
    if len(radii) < 2:
        return radii
    tree = cKDTree(centres)
    pairs = tree.query_pairs(2 * radii.max() + wall, output_type="ndarray")
    if len(pairs) == 0:
        return radii
    d = np.linalg.norm(centres[pairs[:, 0]] - centres[pairs[:, 1]], axis=1)
    for _ in range(50):
        need = radii[pairs[:, 0]] + radii[pairs[:, 1]] + wall
        bad = need > d
        if not bad.any():
            break
        s = np.clip((d[bad] - wall) / (radii[pairs[bad, 0]] + radii[pairs[bad, 1]]), 0.05, 1.0)
        scale = np.ones_like(radii)
        np.minimum.at(scale, pairs[bad, 0], s)
        np.minimum.at(scale, pairs[bad, 1], s)
        radii *= scale
    return radii


def _lognormal(rng: np.random.Generator, mean: float, cv: float, n: int) -> np.ndarray:
    if cv <= 0:
        return np.full(n, mean)
    s2 = math.log(1 + cv**2)
    return rng.lognormal(math.log(mean) - s2 / 2, math.sqrt(s2), n)


def make_structure(
    rng: np.random.Generator,
    *,
    mean_diameter_um: float,
    cv: float = 0.1,
    opening_ratio: float = 0.4,
    through_fraction: float = 0.5,
    thickness_um: float | None = None,
    thickness_cv: float = 0.05,
    support_pore_um: float | None = None,
    field_um: float | tuple[float, float] = 100.0,
    defect_rate: float = 0.03,
    grain_size_um: float | None = None,
    min_wall_um: float | None = None,
    position_jitter: float = 0.03,
    section_length_um: float | None = None,
    section_y_um: float | None = None,
    thickness_corr_um: float | None = None,
    support_depth_um: float | None = None,
    support_porosity: float = 0.3,
    support_cv: float = 0.2,
    pore_depth_ratio: float = 0.5,
    penetration_depth_um: float = 0.0,
    penetration_fraction: float = 0.0,
    communication: float = 0.0,
    support_link_prob: float = 0.0,
) -> FilmStructure:
    """A random honeycomb film: hexagonal grains of non-overlapping pores with vacancies.

    Claim-1 features (off by default, so images of earlier seeds are unchanged): polymer
    penetrating ``penetration_fraction`` of the interface length, ``penetration_depth_um`` deep
    (mean, flat-bottomed tongues in the support's surface pores); neighbouring cavities joined by
    an opening with probability ``communication``; support pores joined by channels with
    probability ``support_link_prob`` (continuous pores). Their randomness comes from a child of
    ``rng`` (``rng.spawn``), which does not advance ``rng``'s own stream.

    The pitch is chosen so that the nominal opening ratio is reached by a perfect lattice with the
    given diameter distribution; pores that would touch are shrunk (so the realised numbers differ
    a little from the requests — use :func:`ground_truth` for the exact values).
    """
    if mean_diameter_um <= 0 or not 0 < opening_ratio < 0.9:
        raise ValueError("mean_diameter_um must be > 0 and opening_ratio in (0, 0.9)")
    w, h = _as_field(field_um)
    dm = float(mean_diameter_um)
    thickness_um = float(thickness_um) if thickness_um is not None else dm
    support_pore_um = float(support_pore_um) if support_pore_um is not None else 2 * dm
    density = opening_ratio / (math.pi / 4 * dm**2 * (1 + cv**2))  # pores per µm²
    density /= 1 - defect_rate
    pitch = math.sqrt(2 / (math.sqrt(3) * density))
    grain = grain_size_um if grain_size_um is not None else 12 * pitch
    pts = _hex_grains(rng, w, h, pitch, grain)
    pts = pts + rng.normal(0, position_jitter * pitch, pts.shape)
    pts = _thin_close_points(rng, pts, 0.75 * pitch)
    pts = pts[rng.random(len(pts)) >= defect_rate]
    radii = _lognormal(rng, dm, cv, len(pts)) / 2
    wall = min_wall_um if min_wall_um is not None else 0.06 * dm
    radii = _remove_overlaps(pts, radii, wall)
    # keep discs that intersect the field
    dx = np.maximum(np.maximum(-pts[:, 0], pts[:, 0] - w), 0)
    dy = np.maximum(np.maximum(-pts[:, 1], pts[:, 1] - h), 0)
    keep = (dx**2 + dy**2 < radii**2) & (radii > 0.05 * dm)
    pts, radii = pts[keep], radii[keep]
    through = rng.random(len(pts)) < through_fraction

    length = float(section_length_um) if section_length_um is not None else w
    n_prof = max(2048, int(length / (dm / 10)))
    px = np.linspace(0, length, n_prof)
    corr = thickness_corr_um if thickness_corr_um is not None else max(8 * dm, length / 8)
    g = _correlated_noise(rng.normal(size=n_prof), px, corr)
    prof = np.clip(thickness_um * (1 + thickness_cv * g), 0.2 * thickness_um, None)

    depth = support_depth_um if support_depth_um is not None else max(3 * support_pore_um, thickness_um)
    sc, sd = _support_pores(rng, length, depth, support_pore_um, support_cv, support_porosity)
    sites = np.zeros((0, 3))
    comm_u = np.zeros(0)
    links = np.zeros((0, 2), int)
    if penetration_fraction > 0 or communication > 0 or support_link_prob > 0:
        crng = _child(rng)
        if penetration_fraction > 0 and penetration_depth_um > 0:
            sites = _penetration_sites(crng, length, support_pore_um, penetration_fraction,
                                       min(penetration_depth_um, 0.6 * depth))
            keep = ~_overlaps_sites(sc, sd, sites, 0.1 * support_pore_um)
            sc, sd = sc[keep], sd[keep]
        comm_u = crng.random(len(pts)) if communication > 0 else np.zeros(0)
        if support_link_prob > 0 and len(sd) > 1:
            links = _support_links(crng, sc, sd, support_pore_um, support_link_prob)
    return FilmStructure(
        field_um=(w, h),
        centres_um=pts,
        diameters_um=2 * radii,
        through=through,
        profile_x_um=px,
        thickness_um=prof,
        section_y_um=float(section_y_um) if section_y_um is not None else h / 2,
        section_length_um=length,
        support_pore_um=support_pore_um,
        support_centres_um=sc,
        support_diameters_um=sd,
        support_depth_um=depth,
        pore_depth_ratio=pore_depth_ratio,
        penetration_sites_um=sites,
        communication=float(communication) if len(comm_u) else 0.0,
        communication_u=comm_u,
        support_links=links,
    )


def _child(rng: np.random.Generator) -> np.random.Generator:
    """A child generator that leaves ``rng``'s stream where it was (same seed → same child)."""
    try:
        return rng.spawn(1)[0]
    except (TypeError, ValueError, AttributeError):  # a generator without a seed sequence
        return np.random.default_rng(rng.bit_generator.state["state"]["state"] % (2**63))


def _penetration_sites(rng, length: float, dm: float, fraction: float, depth: float) -> np.ndarray:
    """Tongues along the interface: widths 0.5–1.0 support pores, gaps exponential (at least
    0.2 support pores) so that on average ``fraction`` of the length is entered; depths
    ±30 % around ``depth``."""
    fraction = min(max(fraction, 0.0), 0.6)
    w_mean = 0.75 * dm
    min_gap = 0.2 * dm
    gap_mean = max(w_mean * (1 / fraction - 1) - min_gap, 0.05 * dm)
    out = []
    x = -rng.uniform(0, w_mean + gap_mean)
    while x < length:
        wd = rng.uniform(0.5, 1.0) * dm
        p = depth * rng.uniform(0.7, 1.3)
        out.append((x + wd / 2, wd / 2, p))
        x += wd + min_gap + rng.exponential(gap_mean)
    s = np.array(out, float).reshape(-1, 3)
    return s[(s[:, 0] + s[:, 1] > 0) & (s[:, 0] - s[:, 1] < length)]


def _overlaps_sites(sc: np.ndarray, sd: np.ndarray, sites: np.ndarray, gap: float) -> np.ndarray:
    """Support pores (x, depth, diameter) that would touch a tongue (rectangle) within ``gap``."""
    if len(sd) == 0 or len(sites) == 0:
        return np.zeros(len(sd), bool)
    x, z, r = sc[:, 0:1], sc[:, 1:2], sd[:, None] / 2
    dx = np.maximum(np.abs(x - sites[None, :, 0]) - sites[None, :, 1], 0)
    dz = np.maximum(z - sites[None, :, 2], 0)
    return (np.hypot(dx, dz) < r + gap).any(axis=1)


def _support_links(rng, sc: np.ndarray, sd: np.ndarray, dm: float, prob: float) -> np.ndarray:
    """Channels between each support pore and its three nearest neighbours (each pair once),
    every one kept with probability ``prob``: a continuous pore network."""
    k = min(4, len(sd))
    _, nn = cKDTree(sc).query(sc, k=k)
    pairs = np.array(sorted({(min(i, int(j)), max(i, int(j))) for i in range(len(sd)) for j in nn[i, 1:]}), int)
    if len(pairs) == 0:
        return np.zeros((0, 2), int)
    return pairs[rng.random(len(pairs)) < prob].astype(int)


def section_cavities(structure: FilmStructure) -> np.ndarray:
    """Pores cut by the section plane, ordered along x: rows (x centre µm, height of the
    centre above the interface µm, cut radius a µm, opening radius r µm, pore index)."""
    k = _cut_pores(structure)
    cx, r, rs, dy = _cut_geometry(structure, k)
    t = np.interp(cx, structure.profile_x_um, structure.thickness_um)
    a = np.column_stack([cx, t - structure.pore_depth_ratio * r, np.sqrt(rs * rs - dy * dy), r, k.astype(float)])
    return a[np.argsort(a[:, 0], kind="stable")]


def _cut_geometry(structure: FilmStructure, k: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """(x centre, opening radius r, sphere radius rs, distance |y − section_y|) of the pores
    ``k`` (all by default), µm: elementwise the same operations as one pore at a time."""
    c, d = structure.centres_um, structure.diameters_um
    if k is not None:
        c, d = c[k], d[k]
    r = d / 2
    rs = r * math.sqrt(1 + structure.pore_depth_ratio**2)
    return c[:, 0], r, rs, np.abs(c[:, 1] - structure.section_y_um)


def _cut_pores(structure: FilmStructure) -> np.ndarray:
    """Indices (ascending) of the pores the section plane cuts."""
    cx, _, rs, dy = _cut_geometry(structure)
    return np.nonzero(~((dy >= rs) | (cx < -rs) | (cx > structure.section_length_um + rs)))[0]


def cavity_pairs(structure: FilmStructure, pixel_size_um: float | None = None, window_px: float = 3.0,
                 wall_px: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Neighbouring cavity pairs along the section and whether each is joined by an opening.

    Visible cavities: cut radius ≥ 0.3 of the opening radius (and ≥ 3 px when the pixel size
    is given). Neighbours: consecutive visible cavities whose wall along x is thinner than their
    mean cut width. Joined: cut discs that overlap inside the film, or a window drawn
    (:func:`_window`) at least ``window_px`` high when the pixel size is given (a thinner one is
    not resolved), or (``wall_px``, with the pixel size) a wall thinner than that at the
    section plane (one the blur does not resolve). Returns (pairs (P, 2) row indices into
    :func:`section_cavities`, joined)."""
    cav = section_cavities(structure)
    vis = cav[:, 2] >= 0.3 * cav[:, 3]
    if pixel_size_um:
        vis &= cav[:, 2] >= 3 * pixel_size_um
    idx = np.nonzero(vis)[0]
    pairs, joined = [], []
    for i, j in zip(idx[:-1], idx[1:]):
        gap = (cav[j, 0] - cav[j, 2]) - (cav[i, 0] + cav[i, 2])
        if gap < cav[i, 2] + cav[j, 2]:
            pairs.append((i, j))
            px = pixel_size_um or 0.0
            joined.append((_window(structure, cav[i], cav[j]) and _window_px(structure, cav[i], cav[j]) >= window_px * px)
                          or _overlap_in_film(structure, cav[i], cav[j]) or gap < wall_px * px)
    return np.array(pairs, int).reshape(-1, 2), np.array(joined, bool)


def _window(structure: FilmStructure, c1: np.ndarray, c2: np.ndarray) -> bool:
    """Is there an opening (window) between two neighbouring cavities? With probability
    ``structure.communication`` (frac(u_i + u_j) below it), where the film encloses them: at
    least twice as thick as the smaller cut radius. In a thinner film the cavities are notches
    through it, with no wall inside the film to open (they join only where they overlap)."""
    u = structure.communication_u
    if not len(u) or not math.fmod(u[int(c1[4])] + u[int(c2[4])], 1.0) < structure.communication:
        return False
    t = float(np.interp(0.5 * (c1[0] + c2[0]), structure.profile_x_um, structure.thickness_um))
    return t >= 2 * min(c1[2], c2[2])


def _window_px(structure: FilmStructure, c1: np.ndarray, c2: np.ndarray) -> float:
    """Height (µm) of the window drawn between two cavities (see :func:`_windows`)."""
    t = float(np.interp(0.5 * (c1[0] + c2[0]), structure.profile_x_um, structure.thickness_um))
    return 2 * min(0.2 * min(c1[2], c2[2]), 0.2 * t)


def _overlap_in_film(structure: FilmStructure, c1: np.ndarray, c2: np.ndarray) -> bool:
    """Do two cut cavities overlap inside the film (their common chord crosses the film band
    between the interface and the film's top)? Cut spheres overlapping above the film or below
    the interface join nothing that the section shows."""
    (x1, h1, a1), (x2, h2, a2) = c1[:3], c2[:3]
    d = math.hypot(x2 - x1, h2 - h1)
    if d >= a1 + a2 or d <= abs(a1 - a2) or d == 0:
        return False
    along = (d * d + a1 * a1 - a2 * a2) / (2 * d)
    half = math.sqrt(max(a1 * a1 - along * along, 0.0))
    mx, mh = x1 + along * (x2 - x1) / d, h1 + along * (h2 - h1) / d
    dh = half * (x2 - x1) / d  # the chord runs perpendicular to the line of centres
    lo, hi = mh - abs(dh), mh + abs(dh)
    t = float(np.interp(mx, structure.profile_x_um, structure.thickness_um))
    return lo < t and hi > 0


def support_spanning(structure: FilmStructure, depth_offset_um: np.ndarray | None = None,
                     band_um: float | None = None) -> np.ndarray:
    """Per support pore: does its cluster (pores joined by channels) reach from within one mean
    pore diameter of the interface (a pore by the highest point of it inside the image's sides)
    to the bottom of the imaged support?

    ``depth_offset_um`` (per pore): where the image's bottom is not at the support depth below
    the interface everywhere (a tilted section), the pores' depths relative to the image's
    bottom are their depths plus this offset; reaching the bottom and a channel running inside
    the image are judged with them, nearness to the interface with the depths themselves.

    Only what the section shows joins pores (issue 16): the clusters are those of the pore
    phase as rendered — the discs and the channels' strokes (centre to centre, half width 0.15 ×
    the smaller pore) — inside the image ([0, L] × [0, support depth]), on a grid of 1/128 of
    the mean pore diameter. So pores joined only through pores or channels outside the image
    look separate, a channel that crosses a third pore or another channel joins them (as the
    image shows it), and a cluster reaches the bottom through a pore cut by it or a channel
    running out through it. (The truth was a graph of the links, each counted when its
    centreline ran within its half width of the image: it joined pores whose channel met one
    of them only beyond the image's bottom — through a pore wholly below a tilted image's
    bottom — and missed the pores a channel runs through.)

    ``band_um``: the mean pore diameter that "near the interface" is measured in — the support
    pore diameter the image shows (the mean over the pores it holds whole, as
    :func:`ground_truth` reports it and the analysis measures it); by default the mean over all
    the structure's pores, those outside the image included."""
    sc, sd = structure.support_centres_um, structure.support_diameters_um
    n = len(sd)
    if n == 0:
        return np.zeros(0, bool)
    # nearness to the interface by the pore's highest point the image shows: a pore whose centre
    # lies beyond the image's side shows only a cap there, lower than its top (benchmark seed
    # 1000 sec_tongues case 3: a pore off the side, its top 53 px down and its cap 60 px, within
    # 57 px of the interface by the one and not by the other: truth 0.99, the image 0.54)
    r = sd / 2
    off_side = np.maximum(np.maximum(-sc[:, 0], sc[:, 0] - structure.section_length_um), 0.0)
    seen_top = np.where(off_side < r, sc[:, 1] - np.sqrt(np.maximum(r * r - off_side * off_side, 0.0)), np.inf)
    top = seen_top <= float(band_um if band_um else sd.mean())
    if depth_offset_um is not None:
        sc = sc + np.c_[np.zeros(n), np.asarray(depth_offset_um, float)]
    L, D = structure.section_length_um, structure.support_depth_um
    step = float(sd.mean()) / 128
    nx, nz = max(int(math.ceil(L / step)), 1), max(int(math.ceil(D / step)), 1)
    sx, sz = L / nx, D / nz
    phase = np.zeros((nz, nx), bool)
    cell = np.full(n, -1, np.int64)  # a grid cell of each pore inside the image (-1: none)
    for k in range(n):
        (x, z), r = sc[k], sd[k] / 2
        c0, c1 = max(int((x - r) / sx) - 1, 0), min(int((x + r) / sx) + 2, nx)
        r0, r1 = max(int((z - r) / sz) - 1, 0), min(int((z + r) / sz) + 2, nz)
        if c0 >= c1 or r0 >= r1:
            continue
        xx = (np.arange(c0, c1) + 0.5) * sx - x
        zz = (np.arange(r0, r1) + 0.5) * sz - z
        m = zz[:, None] ** 2 + xx[None, :] ** 2 <= r * r
        if m.any():
            phase[r0:r1, c0:c1] |= m
            i, j = np.unravel_index(int(np.argmax(m)), m.shape)
            cell[k] = (r0 + i) * nx + c0 + j
    for i, j in np.asarray(structure.support_links, int).reshape(-1, 2):
        (x0, z0), (x1, z1) = sc[i], sc[j]
        hw = 0.15 * min(sd[i], sd[j])
        c0, c1 = max(int((min(x0, x1) - hw) / sx) - 1, 0), min(int((max(x0, x1) + hw) / sx) + 2, nx)
        r0, r1 = max(int((min(z0, z1) - hw) / sz) - 1, 0), min(int((max(z0, z1) + hw) / sz) + 2, nz)
        if c0 >= c1 or r0 >= r1:
            continue
        xx = (np.arange(c0, c1) + 0.5)[None, :] * sx
        zz = (np.arange(r0, r1) + 0.5)[:, None] * sz
        dx, dz = x1 - x0, z1 - z0
        t = np.clip(((xx - x0) * dx + (zz - z0) * dz) / (dx * dx + dz * dz or 1.0), 0, 1)
        phase[r0:r1, c0:c1] |= (xx - x0 - t * dx) ** 2 + (zz - z0 - t * dz) ** 2 <= hw * hw
    lab, n_lab = ndi.label(phase)
    comp = np.where(cell >= 0, lab.ravel()[np.maximum(cell, 0)], 0)
    t_c = np.zeros(n_lab + 1, bool)
    t_c[comp[top]] = True
    b_c = np.zeros(n_lab + 1, bool)
    b_c[lab[-1]] = True
    t_c[0] = b_c[0] = False
    return (t_c & b_c)[comp]


def _support_pores(rng, length, depth, dm, cv, porosity):
    """Random sequential addition of non-overlapping discs below the interface (x, depth)."""
    target = porosity * length * depth
    n_try = int(4 * target / (math.pi / 4 * dm**2)) + 10
    d_all = _lognormal(rng, dm, cv, n_try)
    gap = 0.1 * dm
    centres: list[tuple[float, float]] = []
    diam: list[float] = []
    area = 0.0
    for d in d_all:
        r = d / 2
        for _ in range(20):
            x = rng.uniform(-r, length + r)
            z = rng.uniform(r + gap, depth + r)
            ok = all((x - cx) ** 2 + (z - cz) ** 2 >= (r + cd / 2 + gap) ** 2 for (cx, cz), cd in zip(centres, diam))
            if ok:
                centres.append((x, z))
                diam.append(d)
                area += math.pi * r * r
                break
        if area >= target:
            break
    return np.array(centres, float).reshape(-1, 2), np.array(diam, float)


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _disc_coverage(img: np.ndarray, cx: float, cy: float, r: float, value: float | None = None,
                   row0: int = 0) -> None:
    """Add the anti-aliased coverage of a disc (pixel units, pixel centres at i+0.5) into img.

    ``img`` may be a band of a taller image, starting at its row ``row0`` (coordinates stay those
    of the whole image, so every pixel gets the value it would get there)."""
    h, w = img.shape
    x0, x1 = max(int(cx - r - 1), 0), min(int(cx + r + 2), w)
    y0, y1 = max(int(cy - r - 1), row0), min(int(cy + r + 2), row0 + h)
    if x0 >= x1 or y0 >= y1:
        return
    yy = np.arange(y0, y1) + 0.5 - cy
    xx = np.arange(x0, x1) + 0.5 - cx
    d = np.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2)
    cov = np.clip(r - d + 0.5, 0.0, 1.0)
    if value is None:
        img[y0 - row0:y1 - row0, x0:x1] += cov
    else:
        img[y0 - row0:y1 - row0, x0:x1] += cov * value


def _discs_coverage(shape: tuple[int, int], cx: np.ndarray, cy: np.ndarray, r: np.ndarray,
                    weights: list[np.ndarray | None]) -> list[np.ndarray]:
    """:func:`_disc_coverage` of many discs at once: for each entry of ``weights`` (one value
    per disc, or ``None`` for 1) the image of the discs' weighted coverages summed.

    Discs are grouped by their patch size so each group is one array operation, and the patches
    are summed into the image by ``np.bincount`` (patches of neighbours overlap).
    """
    h, w = shape
    cx, cy, r = (np.asarray(a, float) for a in (cx, cy, r))
    flats, covs, owners = [], [], []
    rc = np.ceil(r).astype(np.int64)
    for s in np.unique(rc):
        idx = np.nonzero(rc == s)[0]
        off = np.arange(2 * s + 3)
        xx = np.floor(cx[idx] - s - 1).astype(np.int64)[:, None] + off
        yy = np.floor(cy[idx] - s - 1).astype(np.int64)[:, None] + off
        dx, dy = xx + 0.5 - cx[idx, None], yy + 0.5 - cy[idx, None]
        cov = np.clip(r[idx, None, None] + 0.5 - np.sqrt(dy[:, :, None] ** 2 + dx[:, None, :] ** 2), 0.0, 1.0)
        inside = ((yy >= 0) & (yy < h))[:, :, None] & ((xx >= 0) & (xx < w))[:, None, :] & (cov > 0)
        flats.append((yy[:, :, None] * w + xx[:, None, :])[inside])
        covs.append(cov[inside])
        owners.append(np.broadcast_to(idx[:, None, None], cov.shape)[inside])
    flat = np.concatenate(flats) if flats else np.zeros(0, np.int64)
    cov = np.concatenate(covs) if covs else np.zeros(0)
    owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    # (float64 even without pores: an empty bincount is int64, and the callers divide in place)
    return [np.bincount(flat, weights=cov if wt is None else cov * np.asarray(wt, float)[owner],
                        minlength=h * w).astype(np.float64, copy=False).reshape(h, w) for wt in weights]


def _transmitted(structure: FilmStructure, shape: tuple[int, int], c: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The transmitted-light view before illumination: dim film and blind pores, bright
    through-pores (every top-view family shows its pores in transmitted light this way)."""
    t = np.where(np.asarray(structure.through, bool), _THROUGH_TRANSMITTED, _BLIND_TRANSMITTED) - _FILM_TRANSMITTED
    cov, trans = _discs_coverage(shape, c[:, 0], c[:, 1], r, [None, t])
    trans /= np.clip(cov, 1, None, out=cov)
    trans += _FILM_TRANSMITTED
    return trans


_BLOCK = 32768  # elements per block of rows (256 kB of float64: stays in the L2 cache)


def _illuminate(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """``img`` times a smooth multiplicative field (a random linear ramp and an off-centre
    vignette), in place, a block of rows at a time: the field's value is fy[y] + fx[x], and it
    is never built whole (the same products, one pass over the image)."""
    fy, fx = _illumination_profiles(img.shape, rng, strength)
    h, w = img.shape
    block = max(1, _BLOCK // max(w, 1))
    tmp = np.empty((min(block, h), w))
    for s in range(0, h, block):
        e = min(s + block, h)
        t = np.add(fy[s:e, None], fx[None, :], out=tmp[: e - s])
        img[s:e] *= t
    return img


def _illumination_profiles(shape: tuple[int, int], rng: np.random.Generator,
                           strength: float) -> tuple[np.ndarray, np.ndarray]:
    """The illumination field of :func:`_illuminate` as its two profiles: value (y, x) = fy[y] + fx[x]."""
    h, w = shape
    y = (np.arange(h) + 0.5) / h - 0.5
    x = (np.arange(w) + 0.5) / w - 0.5
    th = rng.uniform(0, 2 * math.pi)
    c = rng.uniform(-0.2, 0.2, 2)
    # 1 + s·(ramp − vignette) is a sum of a function of x and one of y: built from the two
    # profiles in one pass over the image (and its maximum is the sum of theirs).
    fx = strength * (math.cos(th) * x - (x - c[0]) ** 2)
    fy = 1.0 + strength * (math.sin(th) * y - (y - c[1]) ** 2)
    top = fx.max() + fy.max()
    return fy / top, fx / top


def _top_view_px(structure: FilmStructure, pixel_size_um: float) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """A top view's (rows, cols), the pores' centres and radii in pixels: what every surface
    renderer draws from."""
    w_um, h_um = structure.field_um
    shape = (int(round(h_um / pixel_size_um)), int(round(w_um / pixel_size_um)))
    return shape, structure.centres_um / pixel_size_um, structure.diameters_um / 2 / pixel_size_um


@functools.lru_cache(maxsize=None)
def _gauss_weights(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The kernel ``ndi.gaussian_filter1d`` applies for ``sigma`` (truncate 4): ``[w0, w1, …, wr]``
    and the whole array it hands to ``correlate1d``. Read off its response to a unit impulse,
    so they are exactly scipy's (no copy of its formula to drift from it)."""
    r = int(4.0 * sigma + 0.5)
    e = np.zeros(4 * r + 3)
    e[2 * r + 1] = 1.0
    resp = ndi.gaussian_filter1d(e, sigma)
    return resp[2 * r + 1: 3 * r + 2].copy(), resp[r + 1: 3 * r + 2][::-1].copy()




def _gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    """``ndi.gaussian_filter(img, sigma)`` of a 2-D float64 image, bit for bit, ~3× faster.

    scipy filters along the columns (axis 0) one strided line at a time, 4–5× slower than along
    the rows. Here that pass is done on blocks of whole rows with numpy in the order of scipy's
    symmetric kernel loop (``x0·w0``, then ``+= (x[-j] + x[+j])·wj`` from the farthest pair in;
    'reflect' = numpy's 'symmetric' padding), so every sum is rounded the same; then, while the
    block is still in cache, scipy's own pass along its rows (``correlate1d`` with the kernel
    ``gaussian_filter1d`` gives it).
    """
    half, full = _gauss_weights(float(sigma))
    r = len(half) - 1
    h, w = img.shape
    out = np.empty((h, w))
    block = max(1, min(h, _BLOCK // max(w, 1)))  # ~256 kB of rows: the block stays in cache
    span = block + 2 * r
    if h >= span + r:  # the reflected rows at each end from that end only: pad the ends alone
        head = np.pad(img[:span], ((r, 0), (0, 0)), mode="symmetric")  # rows -r .. span
        tail = np.pad(img[h - span:], ((0, r), (0, 0)), mode="symmetric")  # rows h-span .. h+r
    else:
        head = tail = np.pad(img, ((r, r), (0, 0)), mode="symmetric")
    tmp = np.empty((block, w))
    for s in range(0, h, block):
        e = min(s + block, h)
        n = e - s
        if s - r >= 0 and e + r <= h:
            x = img[s - r: e + r]
        elif head is tail:
            x = head[s: e + 2 * r]
        elif s - r < 0:
            x = head[s: e + 2 * r]
        else:
            x = tail[s - r - (h - span): e + r - (h - span)]
        o, t = out[s:e], tmp[:n]
        np.multiply(x[r: r + n], half[0], out=o)
        for j in range(r, 0, -1):
            np.add(x[r - j: r - j + n], x[r + j: r + j + n], out=t)
            t *= half[j]
            o += t
        ndi.correlate1d(o, full, axis=1, output=o, mode="reflect")
    return out


_LEVELS = {8: (215, 12, 255, np.uint8), 16: (52000, 1500, 65535, np.uint16)}  # scale, offset, top, dtype


def _finish(img: np.ndarray, rng: np.random.Generator, blur_px: float, noise: float, bit_depth: int) -> np.ndarray:
    """Blur, additive noise, scale and quantisation. A 2-D float64 image (every renderer's) is
    worked in place on arrays of its own: it is a few MB, and each fresh temporary costs about
    as much as the arithmetic; the values are those of the plain expressions of the other path."""
    if bit_depth not in _LEVELS:
        raise ValueError("bit_depth must be 8 or 16")
    scale, offset, top, dtype = _LEVELS[bit_depth]
    if img.dtype != np.float64 or img.ndim != 2:
        if blur_px > 0:
            img = ndi.gaussian_filter(img, blur_px)
        if noise > 0:
            img = img + rng.normal(0, noise, img.shape)
        return np.clip(np.rint(img * scale + offset), 0, top).astype(dtype)
    own = False
    if blur_px > 0:
        img, own = _gaussian(img, blur_px), True
    if noise > 0:
        # rng.normal(0, noise, shape) is 0 + noise·z of the same standard normals z: noise·z alone
        # differs only in the sign of a zero, which the offset below erases
        n = rng.standard_normal(img.shape)
        n *= noise
        img, own = np.add(img, n, out=img if own else n), True
    if own:
        img *= scale
    else:
        img = img * scale
    img += offset
    np.rint(img, out=img)
    np.clip(img, 0, top, out=img)
    return img.astype(dtype)


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
