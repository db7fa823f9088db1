"""Whether a view shows SE rims at all, and whether its mode is a film level (part of the
physical pore edges, :mod:`castrig.analysis.edges`).

A ridge beside the dark regions above the film plateau, beyond its noise (:func:`rim_overshoot`),
and, for ``appearance="auto"``, an SE rim's decay into the cavity lifting the cores' middle ring
(:func:`core_lift`), where a reflected-light defocus fringe lies outside the edge over a flat
floor. The largest pores' fits vote, and the whole view must agree (:func:`rim_decision`,
:func:`vote_needed`: a margin that shrinks as the ridge grows, so views near a threshold do not
flip). :func:`mode_is_pore_level` says when the grey mode is a pore level rather than the film's.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi

from ._quantiles import median, percentile
from .illumination import noise_sigma
from .edges_cores import _view_cores, pore_unit
from .edges_levels import film_mode_field, film_upper_field
from .regions import fit_field

__all__ = ["mode_is_pore_level", "core_lift", "rim_overshoot", "has_bright_rims", "rim_reading", "rim_decision", "vote_needed", "vote_clears"]


def mode_is_pore_level(img: np.ndarray, mode: np.ndarray | None = None, unit: float | None = None) -> bool:
    """Whether the view's film mode (:func:`film_mode_field`) is a pore level rather than the
    film: across the view (median) it lies nearer the darkest level (0.2 % quantile) than the
    brightest (:func:`film_upper_field`). Thin bright walls without a film plateau pile the
    view's values up in the pores (etched porous silicon 0.32–0.38, a polymer section 0.38–0.43
    under the invariance benchmark's transforms); a film seen between openings piles them up at
    its own top (the twin's rimless views 0.9 and more, a nanoporous gold top view 0.75–0.87).
    A ratio of level differences: the same under any gain and offset, and at any pixel size (the
    test it replaces, "no pore 8 pixel-noise σ below the mode", flipped with the pixel size: the
    noise of an interpolated view is ~14× lower). ``mode``, ``unit``: :func:`film_mode_field`
    and :func:`pore_unit` of ``img`` where the caller has them already."""
    a = np.asarray(img, np.float32)
    m = film_mode_field(a) if mode is None else mode
    up = film_upper_field(a, unit=pore_unit(a) if unit is None else unit)
    dark = float(percentile(a, 0.2))
    return bool(median((m - dark) / np.maximum(up - dark, 1e-9)) < 0.5)


def core_lift(img: np.ndarray, crop: int = 512) -> float:
    """How far the dark regions' middle ring (0.3–0.6 of their typical radius inside their edge)
    lies above their centres (deeper), relative to the film above the centres.

    An SE rim lies inside the lip and decays into the cavity over about a third of its radius:
    the grey falls from it into the core, so the core's middle ring still carries part of it. A
    defocus fringe of a reflected-light view lies outside the edge, in the film; the floor inside
    stays flat (or dips where the fringe took its light from). Median film level from the pixels
    2 units or more outside (as :func:`rim_overshoot`)."""
    v = _view_cores(np.asarray(img), crop)
    if v is None:
        return 0.0
    s, core, u, r_typ = v
    d_in = ndi.distance_transform_edt(core) / max(r_typ, 1.0)
    film = ndi.distance_transform_edt(~core) >= 2.0 * u
    ring = core & (d_in >= 0.3) & (d_in < 0.6)
    centre = core & (d_in >= 0.6)
    if np.count_nonzero(ring) < 32 or np.count_nonzero(centre) < 32 or np.count_nonzero(film) < 64:
        return 0.0
    f, c = float(np.median(s[film])), float(np.mean(s[centre]))
    if not f > c:
        return 0.0
    return (float(np.mean(s[ring])) - c) / (f - c)


def rim_overshoot(img: np.ndarray, crop: int = 512) -> float:
    """How far the pores' edges rise above the film plateau, relative to the pores' depth.

    On a central window of ``crop``² pixels at the pores' scale: the dark regions (Otsu on the
    lightly smoothed window), each pixel's distance to the nearest of them, the image divided
    by a quadratic through the pixels 2 units or more from any (uneven illumination), and the
    mean level per half unit of distance. A secondary-electron top view shows a ridge next to
    the dark core (the bright lip) and the level then falls back to the film plateau; a
    reflected-light view rises from the dark floor to the film and stays there (a blurred step,
    whose walls can only be darker than the film). Returns (ridge − plateau beyond it) /
    (plateau − dark core), 0 when the level never falls back, when nothing is 10 % (and 4 noise
    σ) darker than the film or when the ridge is within its noise.

    The unit is 1 px, or an eighth of the dark regions' typical radius where that is larger (the
    window, smoothing, film margin and bins then grow with it): the same view at a finer pixel
    size gives the same answer. The ridge's noise is its bin's own spread (the pixel noise
    estimate falls with the pixel size of an interpolated view, whose noise is smooth)."""

    v = _view_cores(img, crop)
    if v is None:
        return 0.0
    s, core, u, _ = v
    d = ndi.distance_transform_edt(~core) / u
    film = d >= 2.0
    if np.count_nonzero(film) < 64:
        return 0.0
    fld = fit_field(s, film, 2)
    if fld is None:
        fld = np.full(s.shape, float(np.median(s[film])), np.float32)
    if not float(fld.min()) > 0:
        return 0.0  # no positive film level: not an image of a film with pores
    n = (s / fld).ravel().astype(np.float64)
    nb = 41
    k = np.minimum((d * 2.0).astype(np.intp), nb - 1).ravel()
    cnt = np.bincount(k, minlength=nb)
    m = np.bincount(k, n, minlength=nb) / np.maximum(cnt, 1)
    sd = np.sqrt(np.maximum(np.bincount(k, n * n, minlength=nb) / np.maximum(cnt, 1) - m * m, 0.0))
    # bins with enough pixels for a steady mean (the first is the dark core itself)
    ok = np.flatnonzero(cnt >= max(64, 0.002 * cnt.sum()))
    if ok.size < 4 or ok[0] != 0:
        return 0.0
    prof = m[ok]
    j = 1 + int(np.argmax(prof[1:]))
    if j >= prof.size - 2:
        return 0.0  # the level rises to its end: no ridge
    plateau = float(np.median(prof[j + 1:]))
    depth = plateau - float(prof[0])
    sig = noise_sigma((s / fld)[:: max(1, int(u)), :: max(1, int(u))])
    # (4 noise σ of the window smoothed at u, where the dark regions were found: white noise σ
    # averaged by the Gaussian's 2√π·u² pixels. Against the pixels' σ an SEM view of pixel noise
    # 0.16 of its film, its pores 0.62 of it deep, showed no ridge, though its bins' ridge stood
    # 0.04 above the plateau, 25 of their standard errors)
    if depth < max(0.1 * plateau, 4.0 * sig / (2.0 * math.sqrt(math.pi) * u)):
        return 0.0  # nothing clearly darker than the film (beyond its noise): no pores to judge
    # the ridge must stand above the plateau by more than its bin's spread allows
    if float(prof[j]) - plateau < 4.0 * float(sd[ok[j]]) / math.sqrt(float(cnt[ok[j]])):
        return 0.0
    return max(0.0, (float(prof[j]) - plateau) / depth)


RIM_MIN = 0.025  # whole-view overshoot (share of the pores' depth) from which a view may show rims
RIM_CLEAR = 0.1  # ... and from which it shows them whatever its pores' fits vote
VOTE_MARGIN = 0.6  # between the two: rims where the pores' vote clears its 0.5 by this margin


CORE_LIFT_MIN = 0.06  # an SE rim's decay lifts the cores' middle ring by this share at least
#: whole-view overshoot from which a view that shows no rims by the two tests above still shows a
#: ridge round its pores that ``auto`` cannot place (an SEM's faint rims, or a defocus halo):
#: flagged appearance_ambiguous (castrig.analysis.surface). The twin's plain optical views: 0 to
#: 0.003; benchmarks/foreign_sem.py's SEM views with faint rims (0.15 of the contrast): 0.015-0.017
RIM_AMBIGUOUS = 0.01


def has_bright_rims(img: np.ndarray) -> bool:
    """True when the pores show a bright lip above the film plateau (SE edge effect): a ridge
    next to the dark cores standing at least 2.5 % of the pores' depth above the film beyond it
    (:func:`rim_overshoot`; a blurred dark-floor pore rises monotonically to the film), and
    inside the lip: the grey falls from it into the cores, whose middle ring stands above their
    centres (:func:`core_lift`, 6 % of the depth; the twin's SE views 8–34 %). A bright defocus
    fringe of a reflected-light view is such a ridge too, but outside the edge, in the film: the
    floor inside stays flat (−1 to +4 % on the halo views that passed the first test)."""
    return _rim_tests(img)[1]


def _rim_tests(img: np.ndarray) -> tuple[float, bool]:
    """(the whole-view ridge, :func:`rim_overshoot`; both tests of :func:`has_bright_rims` passed)."""
    a = np.asarray(img)
    ridge = rim_overshoot(a)
    return ridge, ridge > RIM_MIN and core_lift(a) > CORE_LIFT_MIN


def rim_reading(img: np.ndarray) -> tuple[bool, bool]:
    """``(rims, ambiguous)`` of a view whose microscope is not known (``appearance="auto"``).

    Rims: :func:`has_bright_rims`, or a ridge round the pores from :data:`RIM_CLEAR` whatever the
    cores show (an SEM's rims over flat dark cores: benchmarks/foreign_sem.py 0.12-0.14 and an
    independent probe's 0.16-0.38, a real Hitachi SEM section 0.156; the twin's defocus halos
    reach 0.072). Ambiguous: the two tests not both passed, yet a ridge from
    :data:`RIM_AMBIGUOUS` — an SEM's rims over flat cores, faint ones, or a defocus halo: the image
    alone does not tell, and an SEM's view read as optical is far off (D 11-42 % short)."""
    ridge, both = _rim_tests(img)
    return both or ridge > RIM_CLEAR, not both and ridge > RIM_AMBIGUOUS


def rim_decision(overshoot: float) -> bool | None:
    """Whether an SEM view may show rims, from its whole-view ridge ``overshoot``
    (:func:`rim_overshoot`, computed by the caller: it runs on a worker thread): True where it stands
    clearly above the film (:func:`rim_overshoot` over :data:`RIM_CLEAR`: a plain majority of
    the pores' fits then makes rims, :func:`lip_radii`), False where none does (up to
    :data:`RIM_MIN`: no rims whatever they vote), None in between: only a vote clearing its
    threshold by a margin (:func:`vote_clears`) makes rims. A faint whole-view ridge with a split vote is no rim: thin
    bright walls between dense cells (a real section: cells of grey floors in a net of bright
    walls) give such a ridge, and their vote, at its threshold, flipped with the pixel size
    (ridge share 0.18 at the image's pixel size, 0.50 at twice it: D 19 %, opening 26 points)."""
    if overshoot > RIM_CLEAR:
        return True
    return None if overshoot > RIM_MIN else False


def vote_needed(overshoot: float) -> float:
    """The share of the pores' rim vote that makes rims at a whole-view ridge of ``overshoot``
    (:func:`rim_overshoot`): :data:`VOTE_MARGIN` at :data:`RIM_MIN`, falling linearly to a plain
    majority (0.5) at :data:`RIM_CLEAR` and above. Continuous: a requirement jumping from 0.6 to
    0.5 at RIM_CLEAR made two thresholds meet at one corner, and a view near both (the twin's
    SEM case 2, seed 1000: ridge 0.099, vote 0.595–0.685 depending on the film estimate) flipped
    to no rims on any small change of the film level (D −30 %)."""
    t = min(max((RIM_CLEAR - overshoot) / (RIM_CLEAR - RIM_MIN), 0.0), 1.0)
    return 0.5 + (VOTE_MARGIN - 0.5) * t


def vote_clears(ridge_share: float, lift_share: float, need: float = VOTE_MARGIN) -> bool:
    """The pores' rim vote counts only where both its shares clear 0.5 by a margin (``need``,
    :func:`vote_needed`): near its threshold it is noise and would flip the measurement with the
    pixel size."""
    return ridge_share >= need and lift_share >= need
