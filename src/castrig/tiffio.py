"""Micrograph files: TIFF with the pixel size in its resolution tags and metadata as JSON.

Written atomically (temp file, fsync, os.replace) so a crash never leaves half an image in a run
folder. Read back: TIFF resolution tags (CENTIMETER, INCH, or ImageJ's unit=micron with unit
NONE), PNG/JPEG (no pixel size). RGB is converted to grey; anything else that is not a 2-D
greyscale image is a BadInput naming the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import tempfile

import numpy as np

from castrig.errors import BadInput

__all__ = ["write_micrograph", "read_micrograph"]

_UNIT_UM = {"micron": 1.0, "microns": 1.0, "um": 1.0, "µm": 1.0, "\u00b5m": 1.0, "\\u00B5m": 1.0,
            "nm": 1e-3, "nanometer": 1e-3, "mm": 1e3, "millimeter": 1e3, "cm": 1e4, "m": 1e6}


def write_micrograph(path: str | Path, array: np.ndarray, pixel_size_um: float, metadata: dict | None = None) -> Path:
    """Write a 2-D greyscale image as TIFF: X/YResolution = 1e4/pixel_size_um px per cm
    (ResolutionUnit CENTIMETER), ``metadata`` as JSON in ImageDescription."""
    import tifffile

    a = np.asarray(array)
    if a.ndim != 2:
        raise BadInput(f"{path}: a micrograph must be a 2-D greyscale array, got shape {a.shape}", file=str(path))
    if not (pixel_size_um and pixel_size_um > 0):
        raise BadInput(f"{path}: pixel_size_um must be > 0, got {pixel_size_um}", file=str(path), field="pixel_size_um")
    path = Path(path)
    meta = dict(metadata or {})
    meta.setdefault("pixel_size_um", float(pixel_size_um))
    res = 1e4 / float(pixel_size_um)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        tifffile.imwrite(
            tmp,
            a,
            resolution=(res, res),
            resolutionunit=tifffile.RESUNIT.CENTIMETER,
            description=json.dumps(meta, default=str),
            metadata=None,
        )
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename durable too
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def _grey(a: np.ndarray, path: str) -> np.ndarray:
    a = np.squeeze(a)
    if a.ndim == 3 and a.shape[-1] in (3, 4):
        from skimage.color import rgb2gray, rgba2rgb

        rgb = rgba2rgb(a) if a.shape[-1] == 4 else a
        g = rgb2gray(rgb)  # float in [0, 1] for integer input, scaled by dtype range
        if np.issubdtype(a.dtype, np.integer):
            g = np.rint(g * np.iinfo(a.dtype).max).astype(a.dtype)
        return g
    if a.ndim != 2:
        raise BadInput(f"{path}: not a 2-D greyscale image (shape {a.shape})", file=path)
    if a.size == 0:
        raise BadInput(f"{path}: empty image", file=path)
    return a


def _tiff_pixel_size(tif, page) -> float | None:
    tags = page.tags
    xr = tags.get("XResolution")
    if xr is None:
        return None
    v = xr.value
    num, den = (v if isinstance(v, tuple) else (v, 1))
    if not num or not den:
        return None
    px_per_unit = float(num) / float(den)
    unit_tag = tags.get("ResolutionUnit")
    unit = int(unit_tag.value) if unit_tag is not None else 2
    if unit == 3:  # CENTIMETER
        return 1e4 / px_per_unit
    if unit == 2:  # INCH (the TIFF default) — ImageJ writes its own unit in the description
        ij = tif.imagej_metadata or {}
        if ij.get("unit") is not None:
            return _imagej(ij, px_per_unit)
        return 25400.0 / px_per_unit
    if unit == 1:  # NONE: ImageJ stores px per its unit here
        ij = tif.imagej_metadata or {}
        return _imagej(ij, px_per_unit)
    return None


def _imagej(ij: dict, px_per_unit: float) -> float | None:
    unit = str(ij.get("unit", "")).strip().lower()
    scale = _UNIT_UM.get(unit)
    if scale is None:
        return None
    return scale / px_per_unit


def read_micrograph(path: str | Path) -> tuple[np.ndarray, float | None, dict]:
    """(2-D array, pixel size in µm or None, metadata dict) of a TIFF, PNG or JPEG file."""
    p = str(path)
    if not Path(p).is_file():
        raise BadInput(f"{p}: no such file", file=p)
    suffix = Path(p).suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        try:
            with tifffile.TiffFile(p) as tif:
                page = tif.pages[0]
                a = tif.series[0].asarray() if tif.series else page.asarray()
                px = _tiff_pixel_size(tif, page)
                desc = page.description or ""
                meta: dict = {}
                if desc:
                    try:
                        d = json.loads(desc)
                        meta = d if isinstance(d, dict) else {"description": d}
                    except ValueError:
                        meta = {"description": desc}
                if tif.imagej_metadata:
                    meta.setdefault("imagej", {k: v for k, v in tif.imagej_metadata.items() if isinstance(v, (str, int, float, bool))})
        except BadInput:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
            raise BadInput(f"{p}: cannot read TIFF ({exc})", file=p) from exc
        if px is not None and not (np.isfinite(px) and px > 0):
            px = None
        return _grey(a, p), px, meta
    try:
        import imageio.v3 as iio

        a = iio.imread(p)
    except Exception as exc:  # noqa: BLE001
        raise BadInput(f"{p}: cannot read image ({exc})", file=p) from exc
    return _grey(np.asarray(a), p), None, {}
