"""Overlay of a surface analysis for people to check it by eye (and for the run report)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from .surface import SurfaceMetrics

__all__ = ["OVERLAY_MARK", "is_overlay_png", "surface_overlay", "write_overlay_png"]

#: The PNG text chunk (key, value) that marks a file as an overlay castrig wrote: the only kind
#: of existing file ``castrig analyse surface --overlay`` replaces.
OVERLAY_MARK = ("castrig", "analyse surface --overlay")

_COLOURS = {
    "through": (0, 220, 255),  # measured, open in transmitted light
    "blind": (255, 200, 0),  # measured, closed
    "measured": (0, 255, 0),  # measured, no transmitted image
    "border": (255, 60, 60),  # cut by the border: opening ratio only
}


def surface_overlay(reflected: np.ndarray, metrics: SurfaceMetrics) -> np.ndarray:
    """RGB uint8 image: the micrograph in grey with each pore's outline coloured by its role.

    ``metrics`` must come from ``analyse_surface(..., keep_labels=True)``.
    """
    if metrics.labels is None:
        raise ValueError("surface_overlay needs analyse_surface(..., keep_labels=True)")
    a = np.asarray(reflected, np.float64)
    lo, hi = np.percentile(a, [0.5, 99.5])
    g = np.clip((a - lo) / max(hi - lo, 1e-12), 0, 1)
    rgb = np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=2)
    lab = metrics.labels.astype(np.int64)
    if lab.shape != a.shape:
        # an SEM data bar at the bottom was left out of the analysis: it shows, unoutlined
        h = a.shape[0] - int(metrics.data_bar_rows)
        if lab.shape != (h, a.shape[1]):
            raise ValueError(f"labels {lab.shape} do not match the image {a.shape} less its data bar")
        lab = np.pad(lab, ((0, a.shape[0] - h), (0, 0)))
    n = int(lab.max())
    role = np.zeros(n + 1, np.int8)  # 0 film, 1 border, 2 measured, 3 through, 4 blind
    role[1:] = 1
    ml = metrics.measured_labels
    if metrics.through is None:
        role[ml] = 2
    else:
        role[ml] = np.where(metrics.through, 3, 4)
    edge = (lab != ndi.grey_erosion(lab, size=3)) & (lab > 0)
    r = role[lab]
    for code, name in ((1, "border"), (2, "measured"), (3, "through"), (4, "blind")):
        rgb[edge & (r == code)] = _COLOURS[name]
    return rgb


def write_overlay_png(path, rgb: np.ndarray) -> None:
    """Write ``rgb`` (from :func:`surface_overlay`) to ``path`` as a PNG carrying
    :data:`OVERLAY_MARK`, so a later ``--overlay`` on the same path knows it may replace it."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text(*OVERLAY_MARK)
    Image.fromarray(np.ascontiguousarray(rgb, np.uint8)).save(path, format="PNG", pnginfo=info)


def is_overlay_png(path) -> bool:
    """True when ``path`` is a PNG that :func:`write_overlay_png` wrote (it carries :data:`OVERLAY_MARK`
    in a tEXt chunk before its image data). Read chunk by chunk up to the image data, which is
    never decoded: asked through Pillow (``im.text`` loads the image), an existing PNG at the
    ``--overlay`` path declaring 50000 × 50000 px was a DecompressionBombError traceback."""
    import struct

    from castrig.regular import open_regular

    mark = f"{OVERLAY_MARK[0]}\0{OVERLAY_MARK[1]}".encode("latin-1")
    fh = open_regular(path)
    if fh is None:
        return False
    try:
        with fh:
            if fh.read(8) != b"\x89PNG\r\n\x1a\n":
                return False
            for _ in range(4096):  # (Pillow writes its text chunks right after the header)
                head = fh.read(8)
                if len(head) < 8:
                    return False
                size, kind = struct.unpack(">I4s", head)
                if kind in (b"IDAT", b"IEND"):
                    return False
                data_at = fh.tell()
                if kind == b"tEXt" and size == len(mark) and fh.read(size) == mark:
                    return True
                fh.seek(data_at + size + 4)  # (past the data and the CRC)
            return False
    except OSError:
        return False
