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


# -- compact forms for the page (a demo report stays well under 2 MB with every micrograph) -------
#: Overlay classes → RGB: 1 cut by the border, 2 measured, 3 through-pore, 4 upper envelope, 5 interface.
OVERLAY_PALETTE = (BORDER_RGB, MEASURED_RGB, THROUGH_RGB, TOP_RGB, INTERFACE_RGB)
#: Longest side of a micrograph as the page shows it (larger ones are subsampled evenly).
SHOWN_MAX_PX = 1600


def shown_step(shape: tuple[int, ...], max_px: int = SHOWN_MAX_PX) -> int:
    """The subsampling step that brings the longest side to at most ``max_px``."""
    return max(1, -(-max(int(shape[0]), int(shape[1])) // max_px))


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


def palette_png_bytes(classes: np.ndarray, palette: tuple[tuple[int, int, int], ...] = OVERLAY_PALETTE) -> bytes:
    """Encode a class map (0 transparent, k → ``palette[k-1]``, opaque) as an indexed PNG with tRNS."""
    a = np.ascontiguousarray(classes, dtype=np.uint8)
    h, w = a.shape
    raw = np.zeros((h, 1 + w), np.uint8)
    raw[:, 1:] = a

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    plte = bytes([0, 0, 0]) + b"".join(bytes(c) for c in palette)
    trns = bytes([0] + [255] * len(palette))
    # zlib's level 6, not 9: on a demo section's overlay 9 took 164 ms for 24.1 kB, 6 takes 9 ms for 27.2 kB
    header = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"PLTE", plte) + chunk(b"tRNS", trns)
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6)) + chunk(b"IEND", b""))


def png_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def overlay_uri(classes: np.ndarray) -> str:
    return png_uri(palette_png_bytes(classes))


def surface_classes(labels: np.ndarray, measured_labels: np.ndarray, through_labels: np.ndarray | None = None,
                    step: int = 1) -> np.ndarray:
    """The pores' outlines as overlay classes (1 border, 2 measured, 3 through), subsampled by ``step``.

    Outlines are two pixels wide at the shown size, so they stay visible when the browser scales
    the picture down.
    """
    lab = np.asarray(labels)[::step, ::step]
    edge = _boundaries(lab)
    inner = np.zeros_like(edge)  # one more pixel inwards
    inner[1:-1, 1:-1] = (edge[:-2, 1:-1] | edge[2:, 1:-1] | edge[1:-1, :-2] | edge[1:-1, 2:])[:, :] & (lab[1:-1, 1:-1] > 0)
    edge |= inner
    n = int(np.asarray(labels).max()) if lab.size else 0
    kind = np.full(n + 1, 1, np.uint8)
    kind[0] = 0
    kind[np.asarray(measured_labels, int)] = 2
    if through_labels is not None and len(through_labels):
        kind[np.asarray(through_labels, int)] = 3
    return np.where(edge, kind[lab], 0).astype(np.uint8)


def section_classes(shape: tuple[int, int], top_row: np.ndarray, interface_row: np.ndarray, flipped: bool = False,
                    step: int = 1) -> np.ndarray:
    """A section's upper envelope (4) and support interface (5) as overlay classes, subsampled by ``step``."""
    h, w = int(shape[0]), int(shape[1])
    hs, ws = -(-h // step), -(-w // step)
    out = np.zeros((hs, ws), np.uint8)
    for rows, value in ((top_row, 4), (interface_row, 5)):
        r = np.asarray(rows, float)
        if r.size != w:
            continue
        if flipped:
            r = h - 1 - r
        r = r[::step] / step
        cols = np.arange(r.size)
        ok = np.isfinite(r)
        for dy in (-1, 0, 1):
            y = np.clip(np.rint(r[ok]).astype(int) + dy, 0, hs - 1)
            out[y, cols[ok]] = value
    return out
