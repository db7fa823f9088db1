"""A top view inverted by software (a negative: ``65535 − v``, ``255 − v``), told from a view as
the camera took it, whichever phase is the pores.

The lamp's unevenness enters the two differently. In a view as taken every level is the lamp
times a reflectance (above the camera's zero): where the lamp is brighter, the bright phase rises
by more than the dark one, in proportion (film 1.0 over pores 0.2: five times as much; pores 0.9
over a film of 0.3 in a bright-pore view: three times). In a negative each level is the type's
top minus that product, so the phase that was bright (now the dark one) carries the larger
swing: across the field the bright phase's level changes by less than the dark phase's. A
negative turned back (``top − v``) is the camera's view again, lamp and all.

Measured as they came, a twin dark-pore view inverted (bright pores on a dark film) was turned
over as a bright-pore view (``K·L − v``, L the dark phase's level), keeping the lamp's shading on
the pores upside down: opening 0.13 for 0.55, 1350 pores of 3660, D 23 % short, nothing flagged;
a twin bright-pore view inverted (dark pores) read opening 0.47 for 0.55, D 6 % short.
"""

from __future__ import annotations

import numpy as np

from .illumination import fit_level, poly_field

__all__ = ["negative_top"]

#: blocks holding both phases the swings are read from, at least (and this share of the grid: a
#: film of few pores is split by Otsu's level along its lamp's slope, not at its pores, and that
#: split's "phases" are both the film's — read so, as-taken views of 5 pores passed for negatives)
_MIN_BLOCKS = 9
_MIN_BLOCK_SHARE = 0.5
#: of the grid's blocks, the share each phase's level must be read in unclipped (a view clipped
#: in its centre is read from its rim's blocks)
_MIN_UNCLIPPED_SHARE = 0.25
#: and at least this many blocks when some are clipped: a degree-2 field through a ring of them
#: (3 per coefficient); a plane through fewer lay flat over a lamp's bowl (16 blocks of a bright-
#: pore view as taken, 59 % of its pores at 255: called a negative)
_MIN_RING_BLOCKS = 18
#: the lamp must change the dark phase's level by this share of the two phases' contrast across
#: the field (s.d. over it) for the two readings to be told apart (twin negatives: 0.03-0.28 for
#: lamps of ±5 % to ±25 %); under a more even lamp the two readings differ by less than that
_MIN_LAMP_SHARE = 0.01
#: the bright phase's swing over the dark phase's below which the view is a negative: the ratio
#: of the two phases' reflectances, above 1 in a view as taken (twin: 3.0-3.6 bright pores, ~5
#: dark ones), below 1 in a negative (its inverse), whatever the camera's zero offset
_NEGATIVE_SLOPE = 1.0


def negative_top(img: np.ndarray, dtype: np.dtype) -> float | None:
    """The level a top view was inverted from (``top − img`` turns it back), or None when it is
    no negative (or the image cannot tell: a lamp too even to matter, too few blocks holding both
    phases — a few pores, whose blocks' minima would be the film's own).

    ``img``: the view (float32); the top: the integer ``dtype``'s largest value (what ``65535 − v``
    and ``255 − v`` invert from), the image's largest for a float one (any top leaves an offset
    only). The phases' levels are read in the blocks of a grid that hold both (either side of the
    image's Otsu level), as their 2nd and 98th percentiles, and a smooth field fitted through
    each; their swings across the field are compared."""
    from .regions import otsu_split

    h, w = img.shape
    block = int(max(16, min(64, min(h, w) // 4)))
    nb_r, nb_c = h // block, w // block
    if nb_r * nb_c < 9:
        return None
    b = block // 2  # (every other pixel: the levels of a block need no more)
    a = img[: nb_r * block: 2, : nb_c * block: 2][: nb_r * b, : nb_c * b]
    a = a.reshape(nb_r, b, nb_c, b).transpose(0, 2, 1, 3).reshape(nb_r * nb_c, b * b)
    cut = otsu_split(a[:, ::17].ravel())[0]
    below = np.mean(a < cut, axis=1)
    both = (below >= 0.05) & (below <= 0.95)
    if np.count_nonzero(both) < max(_MIN_BLOCKS, _MIN_BLOCK_SHARE * both.size):
        return None
    lo, hi = np.percentile(a[both], [2, 98], axis=1)
    idx = np.flatnonzero(both)
    dt = np.dtype(dtype)
    # a phase's level is read only in the blocks where it is not clipped at the type's top (or
    # zero): a plateau does not swing with the lamp (a dark-pore view as taken, 65 % of its film
    # at 255, and a bright-pore one, 54 % of its pores, had the bright phase swing less than the
    # dark one: turned over as negatives, the first read opening 0.30 for 0.19, 1 pore); too few
    # blocks left for either phase, and the image cannot tell
    top, floor = (np.iinfo(dt).max, np.iinfo(dt).min) if dt.kind in "ui" else (np.inf, -np.inf)
    ok_lo, ok_hi = lo > floor, hi < top
    least = max(_MIN_BLOCKS, _MIN_UNCLIPPED_SHARE * both.size)
    if any(np.count_nonzero(ok) < (least if ok.all() else max(least, _MIN_RING_BLOCKS)) for ok in (ok_lo, ok_hi)):
        return None
    grid = (12, 12)

    def field(v: np.ndarray, ok: np.ndarray) -> np.ndarray:
        rr, cc = np.divmod(idx[ok], nb_c)
        # (a clipped centre leaves a ring of blocks, through which a plane lies flat over the
        # lamp's bowl: degree 2 from 18 of them, 3 per coefficient; else from 30, as ever)
        deg = 2 if np.count_nonzero(ok) >= (30 if ok.all() else _MIN_RING_BLOCKS) else 1
        coef = fit_level(v[ok], (rr + 0.5) * block, (cc + 0.5) * block, (h, w), degree=deg)
        return poly_field(coef, grid, deg).ravel()

    lo_f, hi_f = field(lo, ok_lo), field(hi, ok_hi)
    contrast = float(np.mean(hi_f - lo_f))
    s_lo, s_hi = float(lo_f.std()), float(hi_f.std())
    if not contrast > 0 or max(s_lo, s_hi) < _MIN_LAMP_SHARE * contrast:
        return None
    if float(np.mean((lo_f - lo_f.mean()) * (hi_f - hi_f.mean()))) <= 0 or s_hi >= _NEGATIVE_SLOPE * s_lo:
        return None  # (the phases swing apart, not with one lamp, or the bright one swings more: as taken)
    return float(np.iinfo(dt).max) if dt.kind in "ui" else float(img.max())
