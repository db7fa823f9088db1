"""An ImageJ/Fiji file's grey lookup table (LUT), applied as Fiji displays the image.

ImageJ keeps a LUT beside the pixels (its IJMetadata tag, 50839: "luts"; tifffile's
``imagej_metadata["LUTs"]``) and shows the pixels through it: "Invert LUT" turns the display over
without touching a pixel, and Fiji's binary masks (Process > Binary, "black background" off)
are saved that way, 255 shown black. Measured as stored, an inverted-LUT view of a film of
opening 0.58 read 0.19: castrig measures what the person saw in Fiji, and says so.
"""

from __future__ import annotations

import numpy as np

__all__ = ["apply_grey_lut"]


def _grey_lut(luts) -> np.ndarray | None:
    """The one grey LUT (256 entries, R = G = B) of a single-channel image's ``luts``; None for
    none, several (one per channel) or a colour one (its colours are a display's, not the data's)."""
    if luts is None:
        return None
    arr = [np.asarray(x) for x in (luts if isinstance(luts, (list, tuple)) else [luts])]
    if len(arr) != 1:
        return None
    lut = arr[0]
    if lut.ndim != 2 or lut.shape != (3, 256) or lut.dtype.kind not in "ui":
        return None
    if not (np.array_equal(lut[0], lut[1]) and np.array_equal(lut[0], lut[2])):
        return None
    return lut[0].astype(np.int64)


def apply_grey_lut(a: np.ndarray, imagej: dict | None, photometric: int) -> tuple[np.ndarray, str | None]:
    """(the pixels turned over as Fiji displays them, a note saying so) for a single grey image
    whose ImageJ LUT is an inverted grey ramp (falling from its first entry to its last); else
    (``a``, None). 8 bits: ``255 − v``, as Fiji shows it; more: ``min + max − v`` (ImageJ's
    display range defaults to the data's). Any other LUT is left alone: a gamma or contrast LUT
    is a display's, and the partial-volume areas want the light the camera took.
    MinIsWhite files (photometric 0) are turned by the photometric reading already (ImageJ
    shows them through an inverted LUT: not twice)."""
    lut = _grey_lut((imagej or {}).get("LUTs"))
    if lut is None or photometric != 1 or a.ndim != 2 or a.size == 0 or a.dtype.kind not in "uif":
        return a, None
    if not (lut[0] > lut[-1] and bool(np.all(np.diff(lut) <= 0))):
        return a, None
    note = "ImageJ inverted LUT applied (the image as Fiji shows it)"
    if a.dtype == np.uint8:
        return 255 - a, note
    if a.dtype.kind == "f":
        finite = a[np.isfinite(a)]  # (one NaN made every pixel NaN: the file then said so of all of them)
        if finite.size == 0:
            return a, None
        return (finite.max() + finite.min()) - a, note
    return ((int(a.max()) + int(a.min())) - a.astype(np.int64)).astype(a.dtype), note
