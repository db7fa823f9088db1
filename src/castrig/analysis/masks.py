"""A binary mask given for a top view (two grey values only, as Fiji's thresholding saves it):
measured as already segmented when its phases say which are the pores, else refused.

A micrograph is never two-valued: even a strongly saturated one keeps its edges' greys (blur).
A mask's extremes are its two phases, not clipping; measured as a micrograph it was flagged
``saturated`` and no metric was trusted. Which value is the pores is read from the topology, not
from a convention (Fiji saves the thresholded phase as 255, and a person may have thresholded
the film): the film is one connected matrix, the pores separate parts in it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["MaskReading", "read_mask", "two_phases"]

#: a mask's two values lie at least this share of the larger one's size apart (0 and 255, 0 and 1,
#: 1 and 2, 128 and 255, False and True): two values closer than that are two neighbouring greys
#: of a flat micrograph, not the phases of a mask. (A pore-free film, 8-bit grey 140 with a smooth
#: texture of ±0.5 grey, holds only 139 and 140: it was read as a mask of pores, opening 0.50 and
#: 445 pores, or refused as a mask whose phases do not say which are the pores. At 0.5, a 128/255
#: mask, 127/255 apart, was measured as a saturated micrograph, not said to be a mask.)
_MIN_PHASE_STEP = 0.1


@dataclass(frozen=True)
class MaskReading:
    """A two-valued image: its values, and the pores' value (None: the phases do not say)."""

    low: float
    high: float
    pores: float | None
    why: str = ""  # (pores None: what the phases showed)

    def note(self) -> str:
        return (f"a binary mask (values {self.low:g} and {self.high:g}), not a micrograph: measured as segmented, "
                f"the pores its {self.pores:g} phase (separate parts in one connected film)")

    def refusal(self) -> str:
        return (f"a binary mask (values {self.low:g} and {self.high:g}), not a micrograph, and its phases do not say "
                f"which are the pores: {self.why}. castrig measures a mask whose pores are separate parts in one "
                "connected film (either value); measure the micrograph it was made from, or a mask of it that shows that")


def _spans(phase: np.ndarray, eight: bool) -> bool:
    """Does one connected part of ``phase`` touch all four sides of the image (a matrix)?"""
    from scipy import ndimage as ndi  # (only for a two-valued image: the CLI reads every view through read_mask)

    lab, n = ndi.label(phase, structure=np.ones((3, 3), bool) if eight else None)
    if n == 0:
        return False
    sides = [np.unique(x) for x in (lab[0], lab[-1], lab[:, 0], lab[:, -1])]
    common = set(sides[0].tolist())
    for x in sides[1:]:
        common &= set(x.tolist())
    return bool(common - {0})


def two_phases(image: np.ndarray) -> tuple[float, float, np.ndarray] | None:
    """(low, high, where high) of a 2-D image holding exactly two values far enough apart to be a
    mask's phases (:data:`_MIN_PHASE_STEP`); None for any other."""
    a = np.asarray(image)
    if a.ndim != 2 or a.size == 0 or a.dtype.kind not in "buif":
        return None
    lo, hi = a.min(), a.max()
    if lo == hi:
        return None
    is_hi = a == hi
    if np.count_nonzero(is_hi) + np.count_nonzero(a == lo) != a.size:
        return None
    low, high = float(lo), float(hi)
    if high - low < _MIN_PHASE_STEP * max(abs(low), abs(high)):
        return None  # (two neighbouring greys of a flat view: no mask)
    return low, high, is_hi


def read_mask(image: np.ndarray) -> MaskReading | None:
    """The :class:`MaskReading` of a 2-D image holding exactly two values; None for any other.

    The film is the phase one part of which (8-connected) touches all four sides of the image,
    the pores the other, no part of which (4-connected) does; when both phases span the image,
    or neither does, ``pores`` is None and ``why`` says which."""
    got = two_phases(image)
    if got is None:
        return None
    low, high, is_hi = got
    film = {low: _spans(~is_hi, True), high: _spans(is_hi, True)}
    pores = [v for v, other in ((low, high), (high, low)) if film[other] and not _spans(~is_hi if v == low else is_hi, False)]
    if len(pores) == 1:
        return MaskReading(low, high, pores[0])
    if not any(film.values()):
        why = "neither phase holds together across the image (no film round the pores in either)"
    else:
        why = "both phases run across the image (no separate pores in either)"
    return MaskReading(low, high, None, why)
