"""Micrographs for the report: PNG as data URIs, with the segmentation drawn over them.

PNG is written here (zlib + the PNG chunk layout) so the report needs no imaging library.
"""

from __future__ import annotations

import base64
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Overlay colours (RGB): measured pores, pores cut by the border, through-pores, section lines.
MEASURED_RGB = (0, 200, 83)
BORDER_RGB = (255, 145, 0)
THROUGH_RGB = (0, 184, 255)
TOP_RGB = (255, 64, 129)
INTERFACE_RGB = (0, 184, 255)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Grey or RGB → 8 bit, stretched between the 0.5 and 99.5 percentiles (16-bit images too)."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 3 and a.shape[2] > 3:
        a = a[..., :3]
    lo, hi = np.percentile(a, [0.5, 99.5]) if a.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((a - lo) / (hi - lo) * 255.0, 0, 255).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 grey (H, W) or RGB (H, W, 3) array as PNG."""
    a = np.ascontiguousarray(image, dtype=np.uint8)
    if a.ndim == 2:
        colour_type, channels = 0, 1
    elif a.ndim == 3 and a.shape[2] == 3:
        colour_type, channels = 2, 3
    else:
        raise ValueError(f"cannot encode an image of shape {a.shape}")
    h, w = a.shape[:2]
    raw = np.zeros((h, 1 + w * channels), np.uint8)  # filter byte 0 (None) on every row
    raw[:, 1:] = a.reshape(h, w * channels)

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b"")


def data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def _boundaries(labels: np.ndarray) -> np.ndarray:
    """Pixels of a label whose 4-neighbour has another label (the pore's inner outline)."""
    lab = np.asarray(labels)
    edge = np.zeros(lab.shape, bool)
    edge[:-1] |= lab[:-1] != lab[1:]
    edge[1:] |= lab[1:] != lab[:-1]
    edge[:, :-1] |= lab[:, :-1] != lab[:, 1:]
    edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
    return edge & (lab > 0)


def surface_overlay(image: np.ndarray, labels: np.ndarray, measured_labels: np.ndarray,
                    through_labels: np.ndarray | None = None) -> np.ndarray:
    """RGB picture of the reflected view with each pore outlined: measured pores green,
    pores cut by the border orange, through-pores blue."""
    grey = to_uint8(image)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    lab = np.asarray(labels)
    edge = _boundaries(lab)
    n = int(lab.max()) if lab.size else 0
    kind = np.full(n + 1, 1, np.uint8)  # 1 border/unmeasured, 2 measured, 3 through
    kind[0] = 0
    kind[np.asarray(measured_labels, int)] = 2
    if through_labels is not None and len(through_labels):
        kind[np.asarray(through_labels, int)] = 3
    k = kind[lab]
    for value, colour in ((1, BORDER_RGB), (2, MEASURED_RGB), (3, THROUGH_RGB)):
        rgb[edge & (k == value)] = colour
    return rgb


def section_overlay(image: np.ndarray, top_row: np.ndarray, interface_row: np.ndarray, flipped: bool = False) -> np.ndarray:
    """RGB picture of a cross-section with the film's upper envelope and the support interface."""
    grey = to_uint8(image)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    h, w = grey.shape[:2]
    for rows, colour in ((top_row, TOP_RGB), (interface_row, INTERFACE_RGB)):
        r = np.asarray(rows, float)
        if r.size != w:
            continue
        if flipped:
            r = h - 1 - r
        cols = np.arange(w)
        ok = np.isfinite(r)
        for dy in (-1, 0, 1):
            y = np.clip(np.rint(r[ok]).astype(int) + dy, 0, h - 1)
            rgb[y, cols[ok]] = colour
    return rgb


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
