"""Micrographs for the report: pictures as data URIs; the segmentation is drawn over them by the
page, from :mod:`castrig.analysis.segmentation`'s outline maps.

PNG is written by :mod:`castrig.pngio` (zlib + the PNG chunk layout), so the report needs no
imaging library.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from castrig.pngio import png_bytes


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Grey or RGB → 8 bit, stretched between the 0.5 and 99.5 percentiles (16-bit images too)."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3 and a.shape[2] > 3:
        a = a[..., :3]
    lo, hi = np.percentile(a, [0.5, 99.5]) if a.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((a - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)


def data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


@dataclass
class Micrograph:
    """One image as the report shows it."""

    name: str
    illumination: str
    pixel_size_um: float
    t_s: float
    uri: str
    overlay_uri: str | None = None
    caption: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)


# -- compact forms for the page (a demo report stays well under 2 MB with every micrograph) -------
def jpeg_uri(grey: np.ndarray, quality: int = 82) -> str:
    """A uint8 picture as a JPEG data URI (Pillow, which scikit-image brings); PNG without it."""
    try:
        import io

        from PIL import Image
    except ImportError:  # pragma: no cover - scikit-image depends on Pillow
        return data_uri(grey)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(grey, dtype=np.uint8)).save(buf, format="JPEG", quality=quality, optimize=True)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
