"""A binary mask given as a section (two grey values, as Fiji's thresholding saves it): the film
measured from it when one phase lies as one band across the image between the other's, else
refused naming what the phases showed.

A mask's extremes are its phases, not clipping: measured as a micrograph a film band of 0/255
read its thickness flagged ``saturated`` (not trusted, nothing said of a mask), and a mask whose
white phase ran from the film's top to the image's bottom read ``interface_lost`` with numpy's
"Mean of empty slice" on stderr. What a mask can show of a section is the film alone (the phase
thresholded, the rest the other value): its thickness column by column. Its support, tongues
and cavities are not in it (the support and the background are one phase), so claim 1's
section features are not measured from it. A mask whose phases do not make a film band (film and
support thresholded together, or the background) does not tell the film's bottom edge: refused,
for the analyst to give the micrograph or a mask of the film alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .masks import two_phases

__all__ = ["SectionMask", "measure_section_mask", "read_section_mask"]

#: the share of the columns in which the film's phase must lie as one band between the other's
#: (the rest: a pore of the mask cut through the film, a ragged edge)
_BAND_SHARE = 0.9


@dataclass(frozen=True)
class SectionMask:
    """A two-valued section: its values, the film's value (None: the phases make no film band)."""

    low: float
    high: float
    film: float | None
    why: str = ""
    top: np.ndarray | None = None  # per column: the band's first row (NaN: no band there)
    bottom: np.ndarray | None = None  # per column: the row after the band's last

    def note(self) -> str:
        return (f"a binary mask (2 grey levels: {self.low:g} and {self.high:g}), not a micrograph: the film measured as "
                f"its {self.film:g} phase, one band across the image; the support and claim 1's section features "
                "(penetration, joined cavities, continuity) are not in a mask: not measured")

    def refusal(self) -> str:
        return (f"a binary mask (2 grey levels: {self.low:g} and {self.high:g}), not a micrograph, and its phases do not "
                f"show the film: {self.why}. castrig measures a section mask whose film is one phase lying as one band "
                "across the image between the other's (the film alone thresholded); measure the micrograph it was made "
                "from, or such a mask of it")


def _bands(phase: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: does ``phase`` lie as exactly one run touching neither the top nor the bottom
    row, and that run's first row and the row after its last."""
    p = phase.astype(np.int8)
    starts = np.diff(p, axis=0, prepend=0) == 1
    ends = np.diff(p, axis=0, append=0) == -1
    one = (starts.sum(axis=0) == 1) & ~phase[0] & ~phase[-1]
    top = np.argmax(starts, axis=0).astype(float)
    bottom = (np.argmax(ends, axis=0) + 1).astype(float)
    top[~one] = np.nan
    bottom[~one] = np.nan
    return one, top, bottom


def read_section_mask(image: np.ndarray) -> SectionMask | None:
    """The :class:`SectionMask` of a 2-D image holding two values a mask's phases can be; None
    for any other. The film is the phase lying as one band, touching neither the top nor the
    bottom edge, in at least 90 % of the columns; when neither phase or both do, ``film`` is None
    and ``why`` says what the phases showed."""
    got = two_phases(image)
    if got is None:
        return None
    low, high, is_hi = got
    found = []
    for value, phase in ((high, is_hi), (low, ~is_hi)):
        one, top, bottom = _bands(phase)
        if np.mean(one) >= _BAND_SHARE:
            found.append((value, top, bottom))
    if len(found) == 1:
        value, top, bottom = found[0]
        return SectionMask(low, high, value, top=top, bottom=bottom)
    if found:
        why = "both phases lie as one band across the image"
    else:
        why = ("neither phase lies as one band across the image between the other's (the film thresholded with the "
               "support or the background, or no film across it)")
    return SectionMask(low, high, None, why)


def measure_section_mask(mask: SectionMask, pixel_size_um: float):
    """The film's thickness column by column from a mask's film band (the rest not measured)."""
    from .quality import section_intervals
    from .section import SectionMetrics

    prof = (mask.bottom - mask.top) * pixel_size_um
    ok = np.isfinite(prof)
    t = float(prof[ok].mean())
    m = SectionMetrics(t, float(prof[ok].std()), None, pixel_size_um, thickness_profile_um=prof,
                       top_row=mask.top, interface_row=mask.bottom)
    m.intervals = section_intervals(prof, pixel_size_um, t / pixel_size_um)
    m.mask_note = mask.note()
    return m
