"""A top view inverted by software (a negative: ``65535 − v``, ``255 − v``), told from one whose
pores are truly brighter than the film (a mirror-like support seen through them).

Both show bright pores on a darker film, but the lamp's unevenness enters them differently. In a
view as the camera took it every level is the lamp times a reflectance (above the camera's
zero): where the lamp is brighter, the bright phase rises by more than the dark one, in
proportion (pores 0.9, film 0.3: three times as much). In a negative each level is the type's
top minus that product: where the lamp is brighter the film (the negative's dark phase, the
original's bright one) falls by more than the pores, which stay near the top. So across the
field, the bright phase's level changes by more than the dark phase's in a view as taken, by
less in a negative. A negative turned back (``top − v``) is the camera's view again, lamp and all;
turned over as a bright-pore view (:func:`~castrig.analysis.surface._turned_over`: ``K·L − v``,
L the dark phase's level) it kept the lamp's shading on the pores, upside down: a twin view of
opening 0.55 read 0.13, 1350 pores of 3660, D 23 % short, nothing flagged.
"""

from __future__ import annotations

import numpy as np

from .illumination import fit_level, poly_field

__all__ = ["negative_top"]

#: the lamp must change the dark phase's level by this share of the two phases' contrast across
#: the field (s.d. over it) for the two readings to be told apart (twin negatives: 0.03-0.28 for
#: lamps of ±5 % to ±25 %); under a more even lamp the two readings differ by less than that
_MIN_LAMP_SHARE = 0.01
#: the bright phase's change over the dark phase's below which the view is a negative: the ratio
#: of the two phases' reflectances, above 1 in a bright-pore view as taken (twin: 3.0-3.6, pores
#: 0.9 on a film of 0.3), below 1 in a negative (twin: 0.12-0.22, pores 0.12-0.28 of the film),
#: whatever the camera's zero offset
_NEGATIVE_SLOPE = 1.0


def negative_top(rr: np.ndarray, cc: np.ndarray, mx: np.ndarray, mn: np.ndarray, shape: tuple[int, int],
                 dtype: np.dtype, image_max: float) -> float | None:
    """The level a bright-pore view was inverted from (``top − v`` turns it back), or None when
    it is no negative (or the lamp is too even to tell, when it does not matter).

    ``rr, cc, mx, mn``: the blocks' centres and their smoothed maxima (the bright phase, the
    pores) and minima (the dark phase, the film), :func:`~.illumination.block_extremes`. The
    top: the integer type's largest value (what ``65535 − v`` and ``255 − v`` invert from), the
    image's largest for a float one (the pores' brightest; any top leaves only an offset)."""
    if len(mx) < 9:
        return None
    grid = (12, 12)
    lo = poly_field(fit_level(mn, rr, cc, shape, degree=2, upper=False), grid, 2).ravel()
    hi = poly_field(fit_level(mx, rr, cc, shape, degree=2, upper=True), grid, 2).ravel()
    contrast = float(np.mean(hi - lo))
    dl = lo - lo.mean()
    var = float(np.dot(dl, dl))
    if not contrast > 0 or np.sqrt(var / dl.size) < _MIN_LAMP_SHARE * contrast:
        return None
    slope = float(np.dot(dl, hi - hi.mean())) / var
    if slope >= _NEGATIVE_SLOPE:
        return None
    dt = np.dtype(dtype)
    return float(np.iinfo(dt).max) if dt.kind in "ui" else float(image_max)
