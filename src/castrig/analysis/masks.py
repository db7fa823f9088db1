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

__all__ = ["MaskReading", "read_mask"]

#: share of a phase its largest connected part holds: the film's at least this, the pores' less
_MATRIX_SHARE = 0.5


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


def _largest_share(phase: np.ndarray, eight: bool) -> tuple[float, int]:
    from scipy import ndimage as ndi  # (only for a two-valued image: the CLI reads every view through read_mask)

    lab, n = ndi.label(phase, structure=np.ones((3, 3), bool) if eight else None)
    if n == 0:
        return 1.0, 0
    cnt = np.bincount(lab.ravel())[1:]
    return float(cnt.max() / cnt.sum()), int(n)


def read_mask(image: np.ndarray) -> MaskReading | None:
    """The :class:`MaskReading` of a 2-D image holding exactly two values; None for any other.

    The pores are the phase split in separate parts (its largest 4-connected part under half of
    it) while the other holds together (its largest 8-connected part at least half of it); when
    both phases, or neither, read as the film, ``pores`` is None and ``why`` says which."""
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
    split = {}
    for value, phase in ((low, ~is_hi), (high, is_hi)):
        matrix = _largest_share(phase, True)[0] >= _MATRIX_SHARE
        parts = _largest_share(phase, False)[0] < _MATRIX_SHARE
        split[value] = (matrix, parts)
    pores = [v for v, other in ((low, high), (high, low)) if split[v][1] and split[other][0]]
    if len(pores) == 1:
        return MaskReading(low, high, pores[0])
    if all(s[0] and not s[1] for s in split.values()):
        why = "both phases hold together across the image (no separate pores in either)"
    elif not any(s[0] for s in split.values()):
        why = "both phases are in separate parts (no connected film in either)"
    else:
        why = "either phase could be separate pores in a connected film"
    return MaskReading(low, high, None, why)
