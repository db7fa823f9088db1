"""Physical pore edges for appearances whose pores are not a flat dark floor (issue 16).

Where each part lives: the film's grey level and the black level (:mod:`.edges_levels`), the
pores' dark cores and the pixels around each (:mod:`.edges_cores`), whether a view shows SE rims
(:mod:`.edges_rims`); this module fits each pore's lip (:func:`lip_radii`).

DESIGN §4: an opening's edge is where the film's flat top ends. In a secondary-electron SEM top
view the steep wall just inside the lip shines (edge effect): each opening is a bright inner rim
around a dark core, and the film is the flat level between the openings. A threshold on grey
level splits such a pore along whichever contour it happens to cross (between rim and core),
which is why a dark-pore recipe underestimates D there by ~35 %. A rim can also be narrower than
the blur: then its brightness ridge sits inside the lip and is barely above the film, and
neither the ridge nor a half-level crossing marks the lip.

Here the film level is the *mode* of the grey levels (the flat top is the most common level,
whatever the pores look like), a kernel density estimate whose width is a share of the view's
grey range, in blocks centred on the view (:func:`film_mode_field`): the same view under another
gain and offset, or rotated, gives the same level. Each opening is found by its dark core (the cavity, whose
electrons mostly do not escape: clearly below the film whatever the rim does, and never joined
to a neighbour's core, since rims and walls lie between). Around each core its pixels (those
nearer to it than to any other core) give an angle-averaged radial profile, and the lip is
located on it by a least-squares fit of what the microscope sees across a lip, blurred by the
image's own point spread (:func:`lip_radii`):

* the flat film F outside radius R; inside it a level c plus a rim of height A decaying inward
  over a length w. Secant law: the wall tilting down at the lip emits more than the flat film,
  so c + A ≥ F. Where the image's pores show no rim at all (another detector, flat contrast),
  A = 0: a plain blurred step;
* deeper inside, optionally, a floor or a through-pore's black neck (a second step, radius R2
  and level c2 ≤ c), tried only where the profile's core lies darker than the uniform cavity's
  fit by more than its noise, and kept only where an F-test says the profile needs it and the
  step lies 2σ or more inside the lip;
* the blur σ is one value for the whole image (one microscope, one focus), found first on the
  larger pores with their floor or neck free (a step held at the fit window's inner edge would
  be smoothed by the fitted blur too): the σ that minimises their total cost (profile
  likelihood over a grid of σ); the curvature of a disc moves its blurred edge inward by
  σ²/2R, in the model;
* the rim's width is held near one share of the lip radius for the whole image (a soft prior,
  30 %; the share from the same larger pores at that σ, the median over those whose rim is
  narrower than :data:`RIM_SPAN` of their lip radius): a cavity's wall has the same shape at
  any size, and on its own a small pore's profile trades a narrower, taller rim against a lip
  further in (w down, A up, R down).

Each profile's fit runs to its own tolerance (a cap of 200 iterations only as a safety net: some take 100–150),
from two starts of the lip (halfway between the ridge and the half-level crossing, then the
ridge where the first fits poorly, unless its lip ended within a bin of the ridge), keeping the
lower cost: from the ridge alone some pores settle in a basin well inside the lip.

The fit uses the whole flank, so the edge found is where the film ends, not where the blurred
rim peaks nor where the grey level crosses some threshold. The opening ratio comes from the
same lips (each pixel weighted by its share inside its pore's lip).

Whether the view shows rims at all: the largest pores' fits vote, and the whole view must agree
(:func:`rim_decision`: a ridge beside the dark regions above the film plateau, beyond its noise,
:func:`rim_overshoot`, on a window, smoothing and bins in units of the dark regions' own size,
:func:`pore_scale`, found on the window over its film level): with a clear ridge (over 10 % of
the pores' depth) a plain majority makes rims, with none (up to 2.5 %) nothing does, and with a
faint ridge between only a vote clearing its threshold by a margin that shrinks as the ridge
grows (:func:`vote_needed`, 0.6 at 2.5 % to 0.5 at 10 %: thin blurred walls between dense pores
look like ridges to the vote, and a real section's vote at its threshold flipped with the pixel
size; a margin jumping at 10 % flipped views near both thresholds). With rims the film level is the brightest well-populated grey level
(:func:`film_mode_field`) and the cores one threshold for the image; without them
(backscatter-like: flat, weak contrast, each pore its own level) each core is the darker third
of its own pore's depth (:func:`_local_cores`: one threshold for the image missed the lighter
pores and joined dense neighbours through thin blurred walls; smoothing and windows follow the
typical core radius continuously, so the same view at another pixel size finds the same cores), and the film the same mode, or
the upper envelope (:func:`film_upper_field`: nothing is brighter than the film) where the mode
is a pore level: the pores' vote clears its margin although the view shows no rim (a dense flat
view), or nothing lies clearly below the mode, or the mode lies nearer the darkest level than the
brightest (:func:`mode_is_pore_level`: thin bright walls without a film plateau, etched porous
silicon or a polymer section; a ratio of levels, the same at any gain or pixel size, where "no
pore 8 pixel-noise σ below the mode" alone flipped with the pixel size: D −42 % at 2×). The upper
envelope's blocks and smoothing are in units of the pores' size (:func:`pore_unit`). A core holding two touching pores is split between its markers
(:func:`_split_cores`). Nothing depends on the raster order (cores numbered by size and level,
ties between markers to the darker): a view rotated by 90° measures the same to rounding.

Whether a view shows SE rims at all (``appearance="auto"``, :func:`has_bright_rims`) asks also
where the ridge lies: inside the lip an SE rim decays into the cavity, lifting the cores' middle
ring above their centres (:func:`core_lift`); a bright defocus fringe of a reflected-light view
lies outside the edge, in the film, over a flat floor. Known limit: on a dense defocused view the
neighbours' fringes and blur can lift the cores' ring too (optical_halo, seed 2000, case 4: 0.10,
taken for SEM; seed 1000: all 14 optical).

Known limit: in the densest rimless views (opening 0.6 at 10 px per pore, walls of 2 px) D and
the opening come out 1–2 % low: the neighbour's blurred step darkens the outer flank of each
profile, and the fitted film level and the step's middle follow it inward.

Known limits (the measurements behind each, and what was tried and dropped:
docs/records/sem-edges.md). On real micrographs rotation is exact, and a gain/offset change or an
illumination ramp is absorbed by taking the view over its black level (:func:`black_field`); a
dense real section with walls thinner than the blur measures D ~5 % apart at twice the pixels and
its count 9–12 % apart at twice or half; a plant section's lip fits are ill-conditioned (rim
height and width trade) and move 1–3 % under a ramp, gain or half the pixels. Rimless views
whose dark regions join through thin walls take their scale from the image's autocorrelation
(:func:`acf_radius`) rather than from the few discs left separate. Foreign rims narrower than the
blur, or too faint to show a ridge, miss D by 6–34 % (the lip sits at the rim's centroid, and where
the edge lies relative to it is the rim's shape, which the blurred flank does not show). Speed
(open): the lip fit is compiled (:mod:`._lipfit`, numba; the same lips as the numpy fit it
replaced to 10⁻¹⁰ px, in ~40 % of its CPU, on both cores), and so are the pores' pixels
(:mod:`._porepix`), their sums per bin and the opening's cover (:mod:`._poresums`) and the view's
level passes (:mod:`._levels`); the rest of the SEM path (numpy and scipy, ~0.2 s CPU on a dense
1024² pair) keeps it over issue 16's 0.1 s per pair (docs/records/sem-edges.md, round seven).
"""

from __future__ import annotations

import math
import threading

import numpy as np
from scipy import ndimage as ndi
from scipy.special import erfcx, ndtr

from .edges_cores import _PixelBatches, _pore_pixel_batches
from .workers import pool

__all__ = ["lip_radii"]


# --------------------------------------------------------------------------------------------
# Lip radii from a fit of the blurred lip across each pore's radial profile
# --------------------------------------------------------------------------------------------

PROFILE_BIN_PX = 0.5  # at least; an eighth of the typical core radius when that is larger
_SQRT1_2 = 1.0 / math.sqrt(2.0)


RIMLESS_SHARE = 0.25  # a rimless pore's cavity in the lower, its film in the upper quarter of its own profile's range


NP = 7  # R, c, A, w, F, R2, c2
ITERS = 200  # a safety cap: each profile's fit stops at its own tolerance (:func:`_fit_lips`; some converge after 100–150)
#: the rim-width refit's fits stop here, each pore's width and cost counted where they are (its
#: medians over up to 400 pores: the rim's share and the noise); it ran on for a few pores crawling
#: the rim's height/width valley (a dense SEM view: 105 iterations at ~0.2 ms of numpy calls each
#: however few run; capped, 30: 17 ms less CPU; docs/records/sem-edges.md, 2026-12-07)
REFIT_ITERS = 30
W_PRIOR = 0.3  # relative spread of a pore's rim width about the image's share of its lip radius
RETRY_COST = 1.5  # the second start of the lip on pores fitting worse than this × the median ...
RETRY_ALL = 400  # ... or on all when there are no more than these
SIGMA_PORES = 200  # pores in the blur's profile likelihood
FIT_SHARE = 64  # profiles per share of a fit taken in turn by the calling thread and a worker (:func:`_fit_lips`)
FIT_CHUNK = 16384  # profiles fitted at once at most (a large view's pores chunk by chunk: the same fits)
RIM_SPAN = 0.9  # a blur-stage fit whose rim width reaches this share of its lip radius has no rim of its own (the cavity's slope)
PRIOR_MIN_PORES = 20  # fewer pores in the blur stage: no common rim width (each pore on its own)


def _lip_value(rho: np.ndarray, p: np.ndarray, s, rim: bool, S2=None):
    """The blurred lip's values (:func:`_lip_model`) and the terms its Jacobian shares with
    them. ``S2`` (optional): the inner step's blurred profile, where it is known already."""
    R, c, A, w, F, R2, c2 = (p[:, k: k + 1] for k in range(NP))
    Rc = np.maximum(R, 1.0)
    Re = R - s * s / (2 * Rc)
    z = (Re - rho) / s
    S = ndtr(z)
    phi = np.exp(-0.5 * z * z)
    phi *= 1.0 / math.sqrt(2 * math.pi)
    Q = None
    if rim:
        # Q = exp(-t/w + s²/2w²)·Φ(b) = ½·erfcx(-b/√2)·exp(-z²/2) (t = Re - ρ, b = z - σ/w):
        # finite while b² < 1400, i.e. anywhere within 26 σ inside the lip (the window is far
        # shallower)
        b = np.minimum(z - s / w, 26.0)
        b *= -_SQRT1_2
        Q = erfcx(b)
        Q *= phi
        Q *= 0.5 * math.sqrt(2 * math.pi)
    z2 = None
    if S2 is None:
        R2e = R2 - s * s / (2 * np.maximum(R2, 1.0))
        z2 = (R2e - rho) / s
        S2 = ndtr(z2)
    # m = F + (c - F)·S + A·Q + (c2 - c)·S2
    m = (c - F) * S
    m += F
    if rim:
        m += A * Q
    m += (c2 - c) * S2
    return m, [rho, p, s, Rc, Re, z, S, phi, Q, z2, S2]


def _lip_jac(t: list, cols: tuple, rows=None) -> np.ndarray:
    """The Jacobian (n, len(cols), m) of :func:`_lip_value` from its shared terms ``t``, on
    ``rows`` (a boolean mask or index array; all when None). Only the terms the wanted columns
    use are gathered (each gather is a pass over (rows, m) values)."""
    rho, p, s, Rc, Re, z, S, phi, Q, z2, S2 = t
    if rows is not None:
        def g(v):
            return v[rows] if isinstance(v, np.ndarray) and v.ndim == 2 else v
        cs = set(cols)
        p, s, Rc, Re = g(p), g(s), g(Rc), g(Re)
        rho = g(rho) if 3 in cs else None
        z = g(z) if 7 in cs else None
        z2 = g(z2) if cs & {5, 7} else None
        S = g(S) if cs & {1, 4} else None
        S2 = g(S2) if cs & {1, 6} else None
        phi = g(phi) if cs & {0, 3, 7} else None
        Q = g(Q) if Q is not None and cs & {0, 2, 3, 7} else Q
    R, c, A, w, F, R2, c2 = (p[:, k: k + 1] for k in range(NP))
    rim = Q is not None
    n_, m_ = Re.shape[0], t[0].shape[1]
    J = np.empty((n_, len(cols), m_), t[0].dtype)
    for j, k in enumerate(cols):
        if k == 0:
            ps = phi / s
            dRe = 1.0 + s * s / (2 * Rc * Rc)
            v = (c - F) * ps
            if rim:
                v += A * (ps - Q / w)
            J[:, j] = v * dRe
        elif k == 1:
            np.subtract(S, S2, out=J[:, j])
        elif k == 2:
            J[:, j] = Q
        elif k == 3:
            # A·(Q·((Re − ρ)/w² − σ²/w³) + φ·σ/w²), the per-profile factors first
            iw2 = 1.0 / (w * w)
            v = Re - rho
            v *= iw2
            v -= s * s * iw2 / w
            v *= Q
            v += phi * (s * iw2)
            np.multiply(v, A, out=J[:, j])
        elif k == 4:
            np.subtract(1.0, S, out=J[:, j])
        elif k == 5:
            J[:, j] = (c2 - c) * np.exp(-0.5 * z2 * z2) * (1.0 / math.sqrt(2 * math.pi)) / s * \
                (1.0 + s * s / (2 * np.maximum(R2, 1.0) ** 2))
        elif k == 6:
            J[:, j] = S2
        else:  # the blur σ (Re and R2e move with it too)
            dz = -1.0 / Rc - z / s
            dz2 = -1.0 / np.maximum(R2, 1.0) - z2 / s
            v = (c - F) * phi * dz
            if rim:
                v += A * (Q * (s / (w * Rc) + s / (w * w)) + phi * (dz - 1.0 / w))
            v += (c2 - c) * np.exp(-0.5 * z2 * z2) * (1.0 / math.sqrt(2 * math.pi)) * dz2
            J[:, j] = v
    return J


def _lip_model(rho: np.ndarray, p: np.ndarray, s: np.ndarray, jac: bool = True, cols: tuple = tuple(range(NP))):
    """Blurred lip across a radial profile and its Jacobian in (R, c, A, w, F, R2, c2).

    Unblurred: F outside R; inside ``c + A·exp(-(R - ρ)/w)``, and deeper, inside R2, the
    cavity's floor or neck at level c2. Blurred by a Gaussian σ = ``s`` along ρ (the
    exponentially modified Gaussian, written with erfcx so that nothing overflows); the
    curvature of a disc moves its blurred half-level inward by σ²/2R, taken as a shift of each
    step. ``p`` (n, 7), ``s`` (n, 1) or scalar, ``rho`` (n, m). ``cols``: the Jacobian's columns
    wanted, in that order (the others are not computed; 7 is σ); the Jacobian is (n, len(cols),
    m). Where every A is 0 and A and w are not wanted (a view without rims) the rim term is
    skipped."""
    rim = 2 in cols or 3 in cols or bool(np.any(p[:, 2]))
    m, t = _lip_value(rho, p, s, rim)
    if not jac:
        return m, None
    return m, _lip_jac(t, cols)


def _parabola_min(x: np.ndarray, y: np.ndarray) -> float:
    """The minimum of the parabola through the lowest of the points (x sorted) and its two
    neighbours, within them; the lowest point itself at an end or where the parabola opens down."""
    j = int(np.argmin(y))
    if not 0 < j < x.size - 1:
        return float(x[j])
    x0, x1, x2 = x[j - 1: j + 2]
    a, b, c = y[j - 1: j + 2]
    den = (x0 - x1) * (x0 - x2) * (x1 - x2)
    A_ = (x2 * (b - a) + x1 * (a - c) + x0 * (c - b)) / den
    B_ = (x2 * x2 * (a - b) + x1 * x1 * (c - a) + x0 * x0 * (b - c)) / den
    return float(np.clip(-B_ / (2 * A_), x0, x2)) if A_ > 0 else float(x1)


def _fit_lips(rho, y, wt, p, s, lo, hi, cmax, iters: int = ITERS, fit_s: bool = False, hold: tuple = (),
              rim: bool = True, wprior=None, s_max: float = 4.0, fmin=None, fmax=None, its=None):
    """Levenberg–Marquardt on each profile (a profile's fit ends once its damping has grown past
    any useful step or a step gains next to nothing; ``iters`` is only a safety cap). ``hold``:
    indices of parameters held where they are (left out of the normal equations); ``rim=False``:
    a pore without a bright rim (A held at 0), else the secant law holds. ``wprior`` (k,
    weight): a soft prior on the rim's width, one more residual per profile,
    weight·(w/(k·R) − 1). ``fmin``, ``fmax`` (per profile, optional): the film level's bounds,
    else 0.7 and 1.4. ``its`` (optional, (n,) int64): receives each profile's LM iterations.
    Returns (params, σ or None, cost, the prior's term included).

    Each step: the normal equations of the profile's weighted residuals (:func:`_lip_model`'s
    Jacobian) damped by λ·(diag JᵀJ + 10⁻⁹), the step clamped to the bounds, kept where the cost
    falls (λ × 0.3) else not (λ × 8). Compiled (:mod:`._lipfit`, numba, imported here on first
    use): in numpy every iteration of the batch cost ~120 numpy calls (~0.2 ms however few
    profiles still ran: ~440 iterations on a dense SEM view), ~40 % of the CPU for the same
    lips to ~10⁻¹⁰ px (docs/records/sem-edges.md, round six). Each profile's fit is its own,
    whatever else is in the batch."""
    from ._lipfit import fit_lips

    n = p.shape[0]

    def arr(v, default=0.0):
        """``v`` (``default`` where None) as a writable C-contiguous float64 array of n rows: one
        compiled signature for every call (a read-only or strided array is another)."""
        v = np.ascontiguousarray(np.broadcast_to(np.asarray(default if v is None else v, np.float64), (n,) + np.shape(v)[1:]))
        return v if v.flags.writeable else v.copy()

    p, s = np.array(p, np.float64, order="C"), arr(s)
    cols = np.array([k for k in range(NP) if k not in hold], np.int64)
    prior = wprior is not None and rim and 0 in cols and 3 in cols
    pk, pw = (arr(v) for v in (wprior if prior else (1.0, 0.0)))
    its = np.zeros(n, np.int64) if its is None else its
    rows = (arr(rho), arr(y), arr(wt), p, s, arr(lo), arr(hi), arr(cmax), arr(fmin, 0.7), arr(fmax, 1.4), pk, pw)  # per profile
    cost = np.empty(n)
    # the profiles in shares taken in turn by this thread and, where one is free, a worker (the
    # compiled loop holds no GIL): each profile's fit is its own, so the same fits whoever runs
    # them, and neither thread waits for the other's share to be handed out
    chunks = iter(range(0, n, FIT_SHARE))
    lock = threading.Lock()

    def work():
        while True:
            with lock:
                a = next(chunks, None)
            if a is None:
                return
            b = min(a + FIT_SHARE, n)
            cost[a:b] = fit_lips(*(v[a:b] for v in rows), cols, bool(fit_s), bool(rim), bool(prior), int(iters), float(s_max), its[a:b])

    helper = pool().submit(work) if n > FIT_SHARE else None
    work()
    if helper is not None and not helper.cancel():
        helper.result()
    return p, (s if fit_s else None), cost


def lip_radii(norm: np.ndarray, lab: np.ndarray, n: int, centres: np.ndarray, r_core: np.ndarray,
              ring: int, info: dict | None = None, rims: bool | None = None,
              confirm=None, rimless: bool = True) -> tuple[np.ndarray | None, tuple | None]:
    """Sub-pixel lip radius (px) of each pore around its dark core.

    ``norm``: the image over its film level above the black level (film 1, black 0, :func:`black_field`); ``lab``: core labels 1..n; ``centres`` (n, 2) row/col of each
    core's centroid; ``r_core``: equivalent radius of each core; ``ring``: how far (px) beyond
    its core a pore's pixels are taken; a wall shared by two pores is split between them
    (:func:`pore_pixels`). Profiles are binned at max(0.5 px, r_core/8), each bin at its pixels' mean ρ.

    Stages (Levenberg–Marquardt on all pores at once, each profile to its own tolerance,
    :func:`_fit_lips`): on up to 400 of the largest pores, with the floor or neck free, the
    image's rim decision and its σ (profile likelihood: their total cost over a grid of σ) and
    the rim's width as a share of the lip radius; the lip over a uniform cavity, each pore's rim
    width softly held near that share, from two starts (the second only where the first fits
    poorly and its lip did not end within a bin of the second start); the lip with a floor or neck where the profile's core lies darker than that fit by
    more than its noise (kept where an F-test asks for it). ``info`` (optional dict) receives
    σ, the parameters (R, c, A, w, F, R2, c2), costs, the rim decision, the pores given a neck,
    the share tried for one and the rim width's share of the lip radius (None: not used).
    ``rims``: whether the view shows bright rims, when the caller knows; None: voted here by the
    largest pores' fits (the shares of them with a genuine ridge and with a lifted lip, both
    0.5 or more), and where they vote for rims ``confirm(ridge share, lift share)`` (optional)
    must agree, else
    (None, None) is returned: the pores' profiles rise above the film level given, but the view
    shows no rim (:func:`has_bright_rims` on the whole view): thin blurred walls between dense
    pores look like ridges where the film level given is a pore level. ``rimless=False``: a
    view whose pores vote against rims is not measured here either ((None, None) at once,
    ``info["rimmed"]`` all False): the caller measures such a view another way, and its lips
    here would be thrown away.

    Returns (radii, the pixels used: an iterable of batches (flat index, owner 1..n, ρ), each pore
    in one; a view whose pores' discs hold no more than :data:`PIXEL_BATCH` candidate pixels is
    one batch, held, a larger one's batches are chosen again on each pass); NaN where a pore
    has no pixels in its window.
    """
    # the blur at most 4 px or half the typical core radius: the same view at a finer pixel size
    # has a proportionally wider blur in pixels (a cap in pixels alone would clip it)
    s_max = max(4.0, 0.5 * float(np.median(r_core)))
    s_start = max(0.8, 0.1 * float(np.median(r_core)))  # the blur's first guess, likewise
    # bins and window scale with the pores (the same pores at a finer pixel size: the same fit)
    bp = max(PROFILE_BIN_PX, float(np.median(r_core)) / 8.0)
    nb = int(math.ceil((float(r_core.max()) + ring + 1) / bp)) + 2
    # each pore's sums per bin (count, level, ρ, level², and ρ² over its core) batch by batch of
    # pores (:func:`_pore_pixel_batches`): a pore's pixels all in one batch, in the same order,
    # so the same sums; the pixels of a large view are never all held at once
    cnt, vs, rs, sq = (np.zeros((n, nb)) for _ in range(4))
    core_n, core_r2 = np.zeros(n), np.zeros(n)
    nfl = np.ravel(norm)
    batches = _pore_pixel_batches(lab, centres, r_core, ring)
    pixels = None  # (flat index, owner 1..n, ρ) of a view in one batch
    from ._poresums import bin_sums, split

    for flat, own, rho, incore, whole in batches:
        if whole:
            pixels = ((flat, own + 1, rho),)
        # one compiled pass over the pixels (:mod:`._poresums`; each bin's sums in the pixels'
        # order, as bincount added them: the same sums), in two halves on two threads, cut
        # between two pores (each pore's pixels are consecutive, so the halves' rows differ)
        sums = (nfl, 1.0 / bp, nb, cnt, vs, rs, sq, core_r2, core_n)
        cut = split(own)
        job = pool().submit(bin_sums, flat, own, rho, incore, cut, own.size, *sums) if cut < own.size else None
        bin_sums(flat, own, rho, incore, 0, cut, *sums)
        if job is not None:
            job.result()
        del flat, own, rho, incore
    prof = np.where(cnt > 0, vs / np.maximum(cnt, 1), 1.0)
    rho_b = np.where(cnt > 0, rs / np.maximum(cnt, 1), (np.arange(nb) + 0.5) * bp)
    j = np.arange(nb)[None, :]
    ps = ndi.uniform_filter1d(prof, 3, axis=1, mode="nearest")
    win = (j >= (r_core / bp).astype(int)[:, None]) & (j <= ((r_core + ring) / bp).astype(int)[:, None]) & (cnt > 0)
    jm = np.argmax(np.where(win, ps, -np.inf), axis=1)
    inside = (j <= ((r_core + ring) / bp).astype(int)[:, None]) & (cnt > 0)
    floor = np.clip(np.min(np.where(inside, ps, np.inf), axis=1), 0.0, 1.0)
    # two starts for the lip: the brightness ridge beyond the core (a rim peaks near its lip;
    # genuine when it stands above the profile's outer end), and the outermost half-level
    # crossing between the pore's floor and the film (a pore without a rim)
    rows_n = np.arange(n)
    last_in = nb - 1 - np.argmax(inside[:, ::-1], axis=1)
    # genuine: above the outer end by more than the noise of the two (3-bin) means (one standard
    # error) — a ridge that is only noise comes and goes with the pixel size, and the image's
    # rim decision with it (a real section imaged at half the pixels flipped to "rimmed")
    var = np.where(cnt > 1, (sq - vs * vs / np.maximum(cnt, 1)) / np.maximum(cnt - 1, 1), 0.0)
    se = np.sqrt(np.maximum(ndi.uniform_filter1d(var / np.maximum(cnt, 1), 3, axis=1, mode="nearest"), 0.0) / 3.0)
    rise = ps[rows_n, jm] - ps[rows_n, last_in]
    ridge_ok = (jm < last_in - 1) & (rise > 1.0 * np.hypot(se[rows_n, jm], se[rows_n, last_in]))
    R_ridge = np.maximum(rho_b[rows_n, jm], r_core + 0.5)

    def bin_ridges(ix):
        """The ridge test above on the pores ``ix``'s single bins (the outer end still the
        3-bin mean), by 1.5 standard errors: the highest of ~10 single bins stands higher by
        its noise alone than the highest 3-bin mean (by 1 standard error the twin's rimless
        views' ridge shares rose from 0.27-0.51 to 0.24-0.67; by 1.5 they are 0.19-0.49)."""
        # (among the bins holding half the pixels of the fullest one or more: the few pixels
        # of a cell's far corners, noisy, were the highest bin of half a noisy view's pores)
        w_, c_ = win[ix], cnt[ix]
        w_ = w_ & (c_ >= 0.5 * np.max(np.where(w_, c_, 0), axis=1)[:, None])
        jb = np.argmax(np.where(w_, prof[ix], -np.inf), axis=1)
        r_ = np.arange(ix.size)
        rise_b = prof[ix][r_, jb] - ps[ix, last_in[ix]]
        se_b = np.sqrt(np.maximum(var[ix][r_, jb], 0.0) / np.maximum(cnt[ix][r_, jb], 1))
        return (jb < last_in[ix] - 1) & (rise_b > 1.5 * np.hypot(se_b, se[ix, last_in[ix]]))
    below = inside & (ps < 0.5 * (1.0 + floor)[:, None])
    last = nb - 1 - np.argmax(below[:, ::-1], axis=1)
    R_cross = np.maximum(rho_b[rows_n, np.minimum(last + 1, nb - 1)], r_core + 0.5)
    W = 14

    def windows(R0):
        """The fitted window (the lip's flanks and some core, not the middle of a large cavity)
        and the starting parameters."""
        inner = np.maximum(0.4 * R0, R0 - 8 * bp)
        start = np.clip((inner / bp).astype(int), 0, max(nb - W, 0))
        idx = np.minimum(start[:, None] + np.arange(W)[None, :], nb - 1)
        rho_w = np.take_along_axis(rho_b, idx, 1)
        y = np.take_along_axis(prof, idx, 1)
        wt = np.sqrt(np.take_along_axis(cnt, idx, 1))
        c0 = np.clip(y.min(axis=1), 0.0, 1.0)
        c0w[:] = c0
        p0 = np.column_stack([R0, c0, np.maximum(y.max(axis=1) - c0, 0.05), np.full(n, 1.0), np.ones(n), inner, c0])
        return rho_w, y, wt, 0.5 * (1.0 + c0), inner, p0

    c0w = np.zeros(n)
    rho_w, y, wt, cmax, inner, p0 = windows(R_ridge)
    top = ps[rows_n, jm]  # the pore's brightest level beyond its core (3-bin means)
    lo, hi = r_core, r_core + ring
    # two starts for the lip (from the ridge alone the fit can settle in a narrow-rim basin well
    # inside the lip): halfway between the ridge and the half-level crossing, then the ridge;
    # each pore keeps the fit of lower cost (the same window for both, so the costs compare)
    starts = (np.clip(0.5 * (R_ridge + R_cross), lo, hi), np.clip(R_ridge, lo, hi))

    def rimless_levels():
        """A rimless pore's highest cavity level and its film level's bounds (per pore): the
        cavity in the lower, the film in the upper :data:`RIMLESS_SHARE` of the range between
        its window's darkest level c0 and its brightest beyond the core (``top``).

        Levels of the pore's own, not relative to the view's film 1 (a rimless view's levels are
        each pore's own): fixed at 0.7–1.4 the film held half of etched porous silicon's pores
        at 0.7 (their thin walls lie below the view's brightest film), a third as many under gain
        × 0.6 + 15 % offset (D −4.6 %); and a thin wall's top (a polymer section: 0.79, c0 0.6)
        below the film's least level left no step that could reach it: the lip ran past the wall
        to the window's end, another basin at 2× the pixel size (D 2–5 % apart). Both bounds
        apart (the cavity's at or below the film's): meeting at the half level they squeezed such
        a fit flat, its lip free."""
        span = np.maximum(top - c0w, 0.0)
        return c0w + RIMLESS_SHARE * span, top - RIMLESS_SHARE * span, top

    def fb(fmin, fmax, j):
        return {} if fmin is None else {"fmin": fmin[j], "fmax": fmax[j]}

    def fit(ix, q, s, rim_ok, **kw):
        """_fit_lips on pores ``ix``, rimmed ones with the secant law, the others with A = 0."""
        q, cost, sb = q.copy(), np.zeros(len(ix)), np.zeros(len(ix))
        for flag in (True, False):
            m = rim_ok == flag
            if not m.any():
                continue
            j = ix[m]
            hold = kw.get("hold", ())
            hold = hold if flag else tuple(sorted(set(hold) | {2, 3}))
            qq = q[m]
            cm, fmin, fmax = (cmax, None, None) if flag else rimless_levels()
            if not flag:
                qq[:, 2], qq[:, 1] = 0.0, np.minimum(qq[:, 1], cm[j])
            sj = s[m] if np.ndim(s) else s
            args = dict(iters=kw.get("iters", ITERS), fit_s=kw.get("fit_s", False), hold=hold, rim=flag, s_max=s_max,
                        wprior=kw.get("wprior") if flag else None)
            # in chunks of FIT_CHUNK profiles (each profile's fit is its own: the same fits,
            # and a large view's working set that of one chunk)
            prs, srs, crs = [], [], []
            for c0_ in range(0, j.size, FIT_CHUNK):
                cj, cq = j[c0_: c0_ + FIT_CHUNK], qq[c0_: c0_ + FIT_CHUNK]
                cs = sj if np.ndim(sj) == 0 or j.size <= FIT_CHUNK else sj[c0_: c0_ + FIT_CHUNK]
                pr, sr, cr = _fit_lips(rho_w[cj], y[cj], wt[cj], cq, cs, lo[cj], hi[cj], cm[cj], **args, **fb(fmin, fmax, cj))
                prs.append(pr), srs.append(sr), crs.append(cr)
            if len(prs) == 1:
                pr, sr, cr = prs[0], srs[0], crs[0]
            else:
                pr, cr = np.concatenate(prs), np.concatenate(crs)
                sr = None if srs[0] is None else np.concatenate(srs)
            q[m], cost[m] = pr, cr
            if sr is not None:
                sb[m] = sr
        return q, cost, sb

    def fit_best(ix, q, s, rim_ok, **kw):
        """fit() from the first start of the lip (R2 halfway in when the floor is free), then
        from the others on the pores whose fit is poorest (cost per degree of freedom above
        RETRY_COST × the median's, or all when they are few); per pore the lower cost."""
        free_floor = kw.get("hold", ()) == ()
        if ix.size <= RETRY_ALL and len(starts) > 1:
            # every pore from every start: one batch (one loop, both threads) instead of one each
            k = len(starts)
            qq = np.tile(q, (k, 1))
            qq[:, 0] = np.concatenate([R0[ix] for R0 in starts])
            if free_floor:
                qq[:, 5] = 0.5 * (np.tile(inner[ix], k) + qq[:, 0])
            r = fit(np.tile(ix, k), qq, s if np.ndim(s) == 0 else np.tile(s, k), np.tile(rim_ok, k), **kw)
            pick = np.argmin(r[1].reshape(k, ix.size), axis=0) * ix.size + np.arange(ix.size)
            return tuple(v[pick] for v in r)
        best = None
        for R0 in starts:
            if best is None:
                jx = np.arange(ix.size)
            else:
                per = best[1] / np.maximum((wt[ix] > 0).sum(axis=1) - NP, 1)
                jx = np.arange(ix.size) if ix.size <= RETRY_ALL else np.flatnonzero(per > RETRY_COST * np.median(per))
                # not where the lip already ended within a bin of this start: from there the fit
                # starts in the basin it found (a dense SEM twin view: 966 of 1603 retries, which
                # won by ~1 % of cost and moved 3 lips by over 0.05 px)
                jx = jx[np.abs(best[0][jx, 0] - R0[ix[jx]]) >= bp]
                if jx.size == 0:
                    break
            qq = q[jx].copy()
            qq[:, 0] = R0[ix[jx]]
            if free_floor:
                qq[:, 5] = 0.5 * (inner[ix[jx]] + qq[:, 0])
            r = fit(ix[jx], qq, s if np.ndim(s) == 0 else s[jx], rim_ok[jx], **kw)
            if best is None:
                best = r
            else:
                b = r[1] < best[1][jx]
                for k in range(3):
                    best[k][jx[b]] = r[k][b]
        return best

    # the blur: one σ for the image, from the pores with the most pixels on their flanks, with
    # the floor or neck free (a step held at the window's inner edge would be smoothed by the
    # fitted blur too, which then comes out high). The rim is a property of the image (one
    # detector for the whole image): ``rims`` when the caller knows it (:func:`has_bright_rims`
    # on the whole view), else voted here: a pore shows one where its ridge is genuine and the
    # fitted lip is brighter than the film by at least a quarter of the pore's depth (an
    # overshoot of the blur or of a JPEG's ringing is far fainter); where most of these pores
    # show a ridge and most such a lip, all have one, if too faint to see
    # (among the round cores: a pair joined through a thin wall is no single pore's profile)
    m2 = core_r2 / np.maximum(core_n, 1)
    round_ = m2 < 1.2 * (0.5 * r_core ** 2 + 1.0 / 6.0)
    cand_s = np.flatnonzero(round_) if np.count_nonzero(round_) >= min(n, PRIOR_MIN_PORES) else np.arange(n)
    sel = cand_s[np.argsort(-r_core[cand_s], kind="stable")[: min(cand_s.size, 400)]]
    if rims is None:
        ps_, _, sb = fit_best(sel, p0[sel], s_start, np.ones(sel.size, bool), fit_s=True, hold=())
        lift = (ps_[:, 1] + ps_[:, 2] - ps_[:, 4]) / np.maximum(ps_[:, 4] - ps_[:, 1], 1e-6)
        # (where the bins are wider than the blur the ridge is judged on the bins themselves:
        # three of them averaged a rim narrower than one bin into the film)
        rid = ridge_ok[sel] if bp <= float(np.median(sb)) else bin_ridges(sel)
        vote = (float(np.mean(rid)), float(np.mean(lift > 0.25)))
        rim_image = vote[0] >= 0.5 and vote[1] >= 0.5
        if info is not None:
            info["vote"] = vote
        if rim_image and confirm is not None and not confirm(*vote):
            return None, None
        if not rim_image and not rimless:
            if info is not None:
                info["rimmed"] = np.zeros(n, bool)
            return None, None
    else:
        rim_image = bool(rims)
    rimmed = np.full(n, rim_image)
    if not rim_image:
        rho_w, y, wt, cmax, inner, p0 = windows(R_cross)
        starts = (np.clip(R_cross, lo, hi),)
    if rims is not None or not rim_image:
        ps_, _, sb = fit_best(sel, p0[sel], s_start, rimmed[sel], fit_s=True, hold=())
    s = float(np.median(sb)) if sb.size else s_start
    if sel.size:
        # the image's σ by profile likelihood: the total cost of the largest SIGMA_PORES of these
        # pores refitted (floor free) at each σ of a grid about the median of their own σ; the
        # minimum of the parabola through the lowest grid point and its neighbours (the grid
        # extended while the lowest point lies at an end)
        ng = min(sel.size, SIGMA_PORES)

        def total(grid):
            g = grid.size
            _, cg, _ = fit(np.tile(sel[:ng], g), np.tile(ps_[:ng], (g, 1)), np.repeat(grid, ng), np.tile(rimmed[sel[:ng]], g),
                           hold=())
            return cg.reshape(g, ng).sum(axis=1)

        # the grid's middle three first, and of its ends (0.8, 1.25) only the one beyond the
        # lowest of the three where that is an end (a refit of SIGMA_PORES pores per point: the
        # two ends cost 40 % of the grid, and the other end is never the lowest of the five as
        # far as the totals are unimodal in σ)
        grid = s * np.array([0.9, 1.0, 1.1])
        tot = total(grid)
        j = int(np.argmin(tot))
        if j != 1:
            ext = s * np.array([0.8 if j == 0 else 1.25])
            grid, tot = np.concatenate([grid, ext]), np.concatenate([tot, total(ext)])
            o = np.argsort(grid)
            grid, tot = grid[o], tot[o]
        for _ in range(4):
            j = int(np.argmin(tot))
            if 0 < j < grid.size - 1:
                break
            ext = grid[:1] * np.array([0.7, 0.8]) if j == 0 else grid[-1:] * np.array([1.25, 1.5])
            ext = ext[(ext >= 0.25) & (ext <= s_max)]
            if ext.size == 0:
                break
            grid, tot = np.concatenate([grid, ext]), np.concatenate([tot, total(ext)])
            o = np.argsort(grid)
            grid, tot = grid[o], tot[o]
        s = _parabola_min(grid, tot)
    # the rim's width: a share of the lip radius common to the image (a cavity's wall is the same
    # shape at any size), from the same pores refitted at that σ. Each pore's own width is held
    # near it (a soft prior, 30 % relative, weighted by the profiles' noise): on its own a small
    # pore's profile trades a narrower, taller rim against a lip further in
    wprior = None
    if rim_image and sel.size >= PRIOR_MIN_PORES:
        pk, ck, _ = fit(sel, ps_, s, rimmed[sel], hold=(), iters=REFIT_ITERS)
        # (the median over the pores whose rim is narrower than RIM_SPAN of their lip radius: a
        # fit whose "rim" reaches across the cavity (its width at or near its bound, the lip
        # radius) is the cavity's slope, not a rim, and its width says nothing of the rim's share.
        # Among them the median sat in a sparse stretch of a broad spread and jumped with the
        # pixel size: a plant section, 32 pores, 0.098 and 0.121 at half the pixels, D 2.7 %)
        k_all = pk[:, 3] / np.maximum(pk[:, 0], 1e-6)
        narrow = k_all < RIM_SPAN
        k_w = float(np.median(k_all[narrow] if np.count_nonzero(narrow) >= 0.5 * k_all.size else k_all))
        dof1 = np.maximum((wt[sel] > 0).sum(axis=1) - NP, 1)
        noise = math.sqrt(max(float(np.median(ck / dof1)), 1e-12))
        wprior = (k_w, noise / W_PRIOR)
    # the lip over a uniform cavity first (the floor step held below the window). The rim's
    # height starts where the blur stage's fits put it relative to their window's visible rise
    # (max − min, the median ratio): a rim narrower than the blur peaks well below its height A
    # (the SEM twin: A ~1.6× the rise). Started at the rise, the fits of a dense view spent
    # about a third of their work lifting A
    if rim_image and sel.size:
        f_a = float(np.median(ps_[:, 2] / np.maximum(p0[sel, 2], 1e-6)))
        if math.isfinite(f_a) and f_a > 0:
            p0[:, 2] = np.minimum(p0[:, 2] * f_a, 5.0)
    p0[:, 5] = np.maximum(inner - 2 * s, 0.3 * p0[:, 0])
    every = np.arange(n)
    p, cost, _ = fit_best(every, p0, s, rimmed, hold=(5, 6), wprior=wprior)
    # then with a floor or neck deeper inside (a through-pore's neck): kept only where the data
    # ask for it (F-test on the two extra parameters, 1 % level), since a small blurred pore
    # cannot tell a neck from its rim and core. Tried only where the profile's inner part (2σ
    # and more inside the lip) lies below the uniform cavity's fit by more than its noise could
    # (3 standard errors of the weighted mean residual there): elsewhere a neck would only be
    # spare flexibility
    dof = np.maximum((wt > 0).sum(axis=1) - NP, 1)
    m2, _ = _lip_model(rho_w, p, np.full((n, 1), s), jac=False)
    deep = (rho_w < (p[:, 0] - 2 * s)[:, None]) & (wt > 0)
    cw = np.where(deep, wt * wt, 0.0)
    ncnt = cw.sum(axis=1)
    dark = (cw * (y - m2)).sum(axis=1) / np.maximum(ncnt, 1)
    noise_px = np.sqrt(np.maximum(cost, 0) / dof)  # per pixel: residuals are weighted by √count
    cand = np.flatnonzero((ncnt > 0) & (dark < -3 * noise_px / np.sqrt(np.maximum(ncnt, 1))))
    use = np.zeros(n, bool)
    if cand.size:
        q = p[cand].copy()
        q[:, 5] = 0.5 * (inner[cand] + q[:, 0])
        q[:, 6] = q[:, 1]
        q, cq, _ = fit(cand, q, s, rimmed[cand], wprior=wprior)
        fstat = 0.5 * (cost[cand] - cq) / np.maximum(cq / dof[cand], 1e-12)
        from scipy.stats import f as f_dist

        # and only a step resolved from the lip (two blurred steps closer than 2σ are one step
        # of another blur) and darker than the cavity
        u = (fstat > f_dist.ppf(0.99, 2, dof[cand])) & (q[:, 0] - q[:, 5] >= 2 * s) & (q[:, 6] < q[:, 1])
        use[cand[u]] = True
        p[cand[u]], cost[cand[u]] = q[u], cq[u]
    if info is not None:
        info.update(sigma=s, params=p, cost=cost, rimmed=rimmed, neck=use, neck_tried=cand.size / max(n, 1),
                    w_ratio=None if wprior is None else wprior[0])
    r = p[:, 0]
    ok = np.isfinite(r) & (wt.sum(axis=1) > 0)
    if pixels is None:  # a view in several batches: its pixels chosen again as they are read
        pixels = _PixelBatches(lab, centres, r_core, ring)
    return np.where(ok, r, np.nan), pixels
