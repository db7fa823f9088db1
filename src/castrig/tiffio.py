"""Micrograph files: TIFF with the pixel size in its resolution tags and metadata as JSON.

Written atomically (temp file, fsync, os.replace) so a crash never leaves half an image in a run
folder; in ImageJ's flavour, so Fiji opens them calibrated in µm. Read back: TIFF resolution
tags (CENTIMETER, INCH, or ImageJ's unit=micron with unit NONE), the SEM vendors' tags and text
sidecars, an OME-TIFF's OME-XML (:mod:`castrig.sem_metadata`), PNG/JPEG/BMP (a sidecar's pixel
size, if any, else a PNG's pHYs chunk, read as TIFF resolution tags are; a PNG decoded once, by
libpng, at its own bit depth). A TIFF's Orientation tag and
a JPEG's or PNG's EXIF one are applied (the image as viewers show it). RGB and RGBA are
converted to grey (luminance, Rec. 709 weights 0.2125 R + 0.7154 G + 0.0721 B; the alpha
channel is dropped, not blended); anything else that is not a 2-D greyscale image (two channels
that are no grey and alpha, a palette without the colours its pixels index) is a BadInput
naming the file.

Hostile files (issue 15) are refused before they cost memory or time: what a file *declares*
(pixels, decoded bytes, strips, tags, scans) is checked by :mod:`castrig.image_bounds` before
anything is decoded, so a 2 MB "decompression bomb" declaring 46000² pixels is a BadInput, not a
7.9 GiB allocation. Float images with NaN or infinite pixels are refused (the analysis would
measure nothing and say nothing). Of several images in a TIFF the largest full-resolution one is
measured and the metadata's ``page_used`` says which; an empty or cut-short file is called so.
The file's own metadata never stands in for the reader's fields (:data:`READER_FIELDS`).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from castrig.errors import BadInput
from castrig.image_bounds import (DEFAULT_MAX_IMAGE_PIXELS, MAX_BYTES_PER_PIXEL, MAX_FRAMES_COUNTED, MAX_TIFF_PAGES,
                                  check_codec_segments, check_empty_segments, check_directories, check_file_bytes, check_image_size,
                                  check_jpeg_scans, check_segment_bytes, check_tile_size, count_frames, count_pages,
                                  cut_short, max_image_pixels)
from castrig.imagej_lut import apply_grey_lut
from castrig.jpegdata import check_jpeg_data
from castrig.jpegscans import check_jpeg_complete
from castrig.pngread import PHYS_SOURCE, png_decoded, png_decoded_dtype, png_decoded_shape, png_late_exif, png_phys
from castrig.sem_metadata import ome_pixel_size, sidecar_pixel_size, vendor_pixel_size, vendor_pixel_sizes

__all__ = ["write_micrograph", "read_micrograph", "vendor_pixel_size", "sidecar_pixel_size", "vendor_pixel_sizes", "max_image_pixels", "check_image_size", "check_pixel_size", "check_file_bytes",
           "pixel_size_disagreement",
           "DEFAULT_MAX_IMAGE_PIXELS", "PIXEL_SIZE_RANGE_UM", "check_image_side"]

#: a pixel size (µm per pixel) outside this range is an unit or tag error, not a microscope
PIXEL_SIZE_RANGE_UM = (0.0005, 50.0)


def _unit_key(unit: object) -> str:
    """An ImageJ unit as looked up in :data:`_UNIT_UM`: ``\\uXXXX`` escapes decoded (Fiji, ImageJ
    1.52 on, writes µm as the six characters ``\\u00B5m``; others write the Greek mu,
    ``\\u03BCm``), compatibility-normalised (NFKC: the micro sign U+00B5 and the Greek mu U+03BC
    are one letter, so are the angstrom sign U+212B and Å U+00C5), lower-cased."""
    import re
    import unicodedata

    text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), str(unit))
    return unicodedata.normalize("NFKC", text).strip().lower()


#: ImageJ units (µm per unit), looked up by :func:`_unit_key`. ``A`` is ImageJ's own spelling of
#: Å (its Calibration turns "A" into the angstrom sign).
_UNIT_UM = {_unit_key(k): v for k, v in {
    "micron": 1.0, "microns": 1.0, "um": 1.0, "\u00b5m": 1.0, "micrometer": 1.0, "micrometers": 1.0,
    "micrometre": 1.0, "micrometres": 1.0,
    "nm": 1e-3, "nanometer": 1e-3, "nanometers": 1e-3, "nanometre": 1e-3, "nanometres": 1e-3,
    "\u00c5": 1e-4, "A": 1e-4, "angstrom": 1e-4, "angstroms": 1e-4, "\u00e5ngstr\u00f6m": 1e-4,
    "mm": 1e3, "millimeter": 1e3, "millimeters": 1e3, "millimetre": 1e3, "millimetres": 1e3,
    "cm": 1e4, "centimeter": 1e4, "centimetre": 1e4, "m": 1e6, "meter": 1e6, "metre": 1e6,
    "inch": 25400.0, "inches": 25400.0, "in": 25400.0}.items()}

#: The units :data:`_UNIT_UM` reads, as a message lists them.
IMAGEJ_UNITS_READ = "µm (um, micron, \\u00B5m or \\u03BCm), nm, Å (A, angstrom), mm, cm, m, inch"


def write_micrograph(path: str | Path, array: np.ndarray, pixel_size_um: float, metadata: dict | None = None) -> Path:
    """Write a 2-D greyscale image as TIFF with its pixel size.

    8-bit, 16-bit and float32 images are written in ImageJ's TIFF flavour, so that Fiji/ImageJ
    opens them calibrated (Image > Properties: unit µm, pixel width = ``pixel_size_um``; the
    scale bar and every measurement in µm): X/YResolution = 1/pixel_size_um px per unit, unit
    ``um`` in ImageJ's description, ResolutionUnit NONE; ``metadata`` as JSON in ImageJ's
    "Info" property (Image > Show Info). Other types: X/YResolution = 1e4/pixel_size_um px
    per cm (ResolutionUnit CENTIMETER), ``metadata`` as JSON in ImageDescription.
    :func:`read_micrograph` reads both."""
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
    from castrig.atomic import atomic_write_with, fsync_dir

    def write(tmp: Path) -> None:
        # made in memory, then written by one os-level write: a disk that fills (or a file-size
        # limit) is then ENOSPC/EFBIG, a disk-full fault a queue stops at; written by tifffile
        # itself it was numpy's errno-less "913920 requested and 341488 written", a fault like
        # any other, and an overnight queue went on to cast the next membrane onto the full disk
        tiff = io.BytesIO()
        if a.dtype in (np.uint8, np.uint16, np.float32):
            tifffile.imwrite(tiff, a, imagej=True, resolution=(1.0 / float(pixel_size_um), 1.0 / float(pixel_size_um)),
                             metadata={"unit": "um", "Info": json.dumps(meta, default=str)})
        else:
            tifffile.imwrite(tiff, a, resolution=(res, res), resolutionunit=tifffile.RESUNIT.CENTIMETER,
                             description=json.dumps(meta, default=str), metadata=None)
        tmp.write_bytes(tiff.getbuffer())

    atomic_write_with(path, write, sync_dir=False)  # whole or absent, the mode of every other file
    try:  # make the rename durable too
        fsync_dir(path.parent)
    except OSError:
        pass
    return path


def check_pixel_size(pixel_size_um: float, source: str, *, file: str | Path | None = None) -> float:
    """``pixel_size_um`` if finite and within :data:`PIXEL_SIZE_RANGE_UM`, else BadInput saying
    where it came from (``source``: "--pixel-size", "the TIFF resolution tags" …)."""
    lo, hi = PIXEL_SIZE_RANGE_UM
    try:
        v = float(pixel_size_um)
    except (TypeError, ValueError):
        v = float("nan")
    if not (np.isfinite(v) and lo <= v <= hi):
        where = f"{file}: " if file is not None else ""
        option = source.startswith("--")  # (an option's own value: no option to suggest, the field is it)
        hint = "" if option else "; give --pixel-size UM"
        said = (f"pixel size {v:.10g} µm from {source} is outside" if np.isfinite(v) or "=" not in source
                else f"{source}: no pixel size (allowed:")  # (a field's text that is no length: named in source)
        end = ")" if said.endswith("(allowed:") else ""
        raise BadInput(f"{where}{said} {lo:g}–{hi:g} µm per pixel{end}{hint}",
                       file=None if file is None else str(file), field=source if option else "--pixel-size")
    return v


def _luminance(a: np.ndarray) -> np.ndarray:
    """Grey of an (h, w, 2|3|4) image in its own dtype: luminance 0.2125 R + 0.7154 G + 0.0721 B
    (Rec. 709, as ``skimage.color.rgb2gray``) for RGB(A), the grey channel for grey+alpha; the
    alpha channel is dropped, not blended. Done in row blocks (no full-size float64 copies)."""
    h, w = a.shape[:2]
    out = np.empty((h, w), a.dtype)
    if a.shape[-1] == 2:
        out[...] = a[..., 0]
        return out
    wts = np.array([0.2125, 0.7154, 0.0721])
    step = max(1, (1 << 20) // max(w, 1))
    for r0 in range(0, h, step):
        g = a[r0 : r0 + step, :, :3] @ wts  # float64, one block at a time
        if a.dtype.kind in "iu":
            info = np.iinfo(a.dtype)
            g = np.clip(np.rint(g), info.min, info.max)
        out[r0 : r0 + step] = g
    return out


def check_image_side(path: str | Path, a: np.ndarray, min_side_px: int) -> None:
    """BadInput "image too small" (the size found and the minimum) unless both sides of the 2-D
    image ``a`` have at least ``min_side_px`` pixels."""
    h, w = a.shape[:2]
    if min(h, w) < min_side_px:
        raise BadInput(f"{path}: image too small: {w} × {h} px (width × height); allowed: at least "
                       f"{min_side_px} × {min_side_px} px", file=str(path), field="image size")


def _grey(a: np.ndarray, path: str) -> np.ndarray:
    if a.size == 0:
        raise BadInput(f"{path}: empty image (shape {a.shape})", file=path)
    # drop single pages and single samples, never the image's own rows or columns (np.squeeze
    # made a 1×1 image shape () and a one-row image shape (N,))
    while a.ndim > 2 and a.shape[0] == 1 and not (a.ndim == 3 and a.shape[-1] in (2, 3, 4)):
        a = a[0]
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 3 and a.shape[-1] in (2, 3, 4):
        if a.dtype == bool or a.dtype.kind not in "iuf":
            raise BadInput(f"{path}: unsupported pixel type {a.dtype} for a colour image", file=path)
        a = _luminance(a)
    if a.ndim != 2:
        raise BadInput(f"{path}: not a 2-D greyscale image (shape {a.shape}); expected one greyscale, RGB or RGBA image",
                       file=path)
    if a.size == 0:
        raise BadInput(f"{path}: empty image", file=path)
    if a.dtype.kind == "c" or a.dtype.kind not in "biuf":
        raise BadInput(f"{path}: unsupported pixel type {a.dtype} (allowed: integer or real greyscale)", file=path)
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        if not finite.all():
            bad = int(a.size - np.count_nonzero(finite))
            raise BadInput(f"{path}: {bad} of {a.size} pixels are NaN or infinite (allowed: finite pixel values); "
                           "replace them (e.g. with the film level) before measuring", file=path, field="pixels")
    return a


def _rational(tag) -> tuple[float, float] | None:
    """(numerator, denominator) of a resolution tag: a RATIONAL's pair, or a FLOAT's or DOUBLE's
    one value over 1 (tifffile gives that as a 1-tuple: "not enough values to unpack", and a
    readable image was "cannot read TIFF"); None: absent, or no number at all."""
    if tag is None:
        return None
    v = tag.value
    if isinstance(v, (tuple, list)):
        if not v:
            return None
        v = tuple(v[:2]) if len(v) >= 2 else (v[0], 1)
    else:
        v = (v, 1)
    try:
        return float(v[0]), float(v[1])
    except (TypeError, ValueError):
        return None


def _resolution(tag) -> float | None:
    """Pixels per unit of an X/YResolution tag (None: absent or zero)."""
    r = _rational(tag)
    if r is None:
        return None
    num, den = r
    return num / den if num and den else None


#: the ResolutionUnit values of TIFF 6.0, as a message lists them
RESOLUTION_UNITS = "1 (none: ImageJ's unit), 2 (inch) or 3 (centimetre)"

#: Print resolutions (dots per inch) an image program writes whatever the image shows: a
#: micrograph exported at 600 dpi read as 42.3 µm per pixel, in range, and was measured so with no
#: word. A calibration in inches is 25 400 / (µm per pixel) dpi, a whole print value only by
#: chance. (72-508 dpi, 50 µm per pixel and more, are outside :data:`PIXEL_SIZE_RANGE_UM` anyway.)
PRINT_DPI = (600, 720, 800, 1200, 1440, 2400, 2880, 4800)


def _is_print_dpi(page, imagej: bool) -> float | None:
    """The dpi of an inch resolution (ResolutionUnit 2, or absent: TIFF's default) that is one of
    :data:`PRINT_DPI`, not an ImageJ calibration; else None."""
    if imagej:
        return None
    unit_tag = page.tags.get("ResolutionUnit")
    try:
        unit = int(unit_tag.value) if unit_tag is not None else 2
    except (TypeError, ValueError):
        return None
    dpi = _resolution(page.tags.get("XResolution"))
    return dpi if unit == 2 and dpi is not None and any(abs(dpi - d) < 1e-6 * d for d in PRINT_DPI) else None


def _zero_resolution(page, imagej: bool = False) -> dict | None:
    """What is wrong with a resolution tag that is there but gives no pixel size, as
    ``{"tag", "value", "allowed"}``: an XResolution of 0 ("0", or "n/0": a zero denominator),
    negative, NaN or infinite, or a ResolutionUnit TIFF does not define (not for an ImageJ file,
    whose unit is its own). None when the tags are absent or fine. Such a file had "no pixel size
    in the file", as if it had no tag, and the tag that was wrong went unnamed."""
    r = _rational(page.tags.get("XResolution"))
    if r is None:
        return None
    num, den = r
    per_unit = "a positive number of pixels per unit"
    if not num or not den:
        value = "0" if not num else f"{num:g}/0 (a zero denominator)"
        return {"tag": "XResolution", "value": value, "allowed": per_unit}
    v = num / den
    if not math.isfinite(v) or v < 0:
        return {"tag": "XResolution", "value": f"{v:g}" + (" (negative)" if v < 0 else ""), "allowed": per_unit}
    unit_tag = page.tags.get("ResolutionUnit")
    if unit_tag is not None and not imagej:
        try:
            unit = int(unit_tag.value)
        except (TypeError, ValueError):
            unit = -1
        if unit not in (1, 2, 3):
            return {"tag": "ResolutionUnit", "value": str(unit_tag.value), "allowed": RESOLUTION_UNITS}
    dpi = _is_print_dpi(page, imagej)
    if dpi is not None:
        return {"tag": "XResolution", "value": f"{dpi:g} dpi, an image program's print resolution, not a calibration",
                "allowed": "a microscope's calibration: its pixel size in cm or inch, or ImageJ's unit"}
    return None


def _check_square(path: str, page) -> None:
    """castrig measures on square pixels: an image whose Y resolution differs from its X one by
    more than 1 % (a tilt-corrected SEM section, a stretched export) is refused, naming both.
    Measured as if square, its thickness came out 1.5× (Y 1.5× the X size) with no warning."""
    x, y = _resolution(page.tags.get("XResolution")), _resolution(page.tags.get("YResolution"))
    if x and y and abs(y / x - 1.0) > 0.01:
        raise BadInput(f"{path}: pixels are not square: {x:.6g} px per unit across, {y:.6g} down (TIFF X/YResolution, "
                       f"aspect {x / y:.4g}); castrig measures square pixels: resample the image to equal X and Y pixel "
                       "sizes first (Fiji: Image > Scale, or Image > Properties if the tags are wrong)",
                       file=path, field="YResolution")


def _imagej_yunit_square(path: str, page, ij: dict) -> bool:
    """ImageJ keeps a pixel's height in its own unit when it differs from the width's (``yunit``
    beside ``unit`` in its description): 1 px per µm across and 1 px per nm down is a pixel 1000×
    as wide as high, measured as square with no word. Refused as :func:`_check_square` does;
    True when the pixel is square in those units (1 px per µm and 0.001 px per nm), False when
    the file has no ``yunit`` of its own (:func:`_check_square` then compares the tags)."""
    yunit, unit = ij.get("yunit"), ij.get("unit")
    if yunit is None or unit is None or _unit_key(yunit) == _unit_key(unit):
        return False
    sx, sy = _UNIT_UM.get(_unit_key(unit)), _UNIT_UM.get(_unit_key(yunit))
    x = _resolution(page.tags.get("XResolution"))
    y = _resolution(page.tags.get("YResolution")) or x
    if sx and sy and x and y and abs((sy / y) / (sx / x) - 1.0) <= 0.01:
        return True
    said = (f"{sx / x:.6g} µm across, {sy / y:.6g} µm down" if sx and sy and x and y
            else f"its height in {str(yunit)[:40]!r}, no length castrig reads")
    raise BadInput(f"{path}: pixels are not square: its ImageJ calibration gives the width in {str(unit)[:40]!r} and the "
                   f"height in {str(yunit)[:40]!r} ({said}); castrig measures square pixels: resample the image to equal "
                   "X and Y pixel sizes first (Fiji: Image > Scale, or Image > Properties if the units are wrong)",
                   file=path, field="yunit")


def is_tiff(path: str | Path) -> bool:
    """A TIFF or BigTIFF by its header (II*\0, MM\0*, II+\0, MM\0+), whatever its name."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _is_reduced(series) -> bool:
    """A thumbnail (NewSubfileType bit 0) or a transparency mask (bit 2) of another image: never
    the image measured (a mask written first was measured, and said to be "image 1 of 2")."""
    k = series.keyframe
    return bool(getattr(k, "is_reduced", False) or getattr(k, "is_mask", False))


def _size(series) -> tuple[int, int]:
    """(width, height) in px of one image of ``series``."""
    k = series.keyframe
    return int(k.imagewidth), int(k.imagelength)


def _area(series) -> int:
    w, h = _size(series)
    return w * h


def _full_resolution_series(tif, path: str) -> tuple[object | None, str | None]:
    """The image of a TIFF, and a note saying which one it is when the file holds others.

    Reduced-resolution pages (thumbnails, NewSubfileType bit 0, that some microscopes and
    exporters write first) are passed over: a thumbnail first was measured as the image (64 × 64
    px at 16× the pixel size: no pores, opening 0 for certain). Of several full-resolution images
    the largest is measured (the first of equal ones): a 16 × 16 px preview before the section
    was measured alone, and nothing said the section was there. A file of more than
    :data:`MAX_TIFF_PAGES` pages is refused before its pages are sorted into images."""
    if count_pages(path, MAX_TIFF_PAGES + 1) > MAX_TIFF_PAGES:
        raise BadInput(f"{path}: holds more than {MAX_TIFF_PAGES} pages (images, or the planes of a stack); castrig "
                       "measures one 2-D micrograph per file: save the micrograph on its own (Fiji: Image > Duplicate)",
                       file=path, field="pages")
    series = list(tif.series)
    if not series:
        return None, None
    full = [s for s in series if not _is_reduced(s)]
    if not full:
        return series[0], None
    chosen = max(full, key=_area)  # the first of the largest
    if chosen is series[0] and len(full) == 1:
        return chosen, None  # one image; any reduced-resolution pages after it are its thumbnails
    number = {id(s): i + 1 for i, s in enumerate(series)}
    others = [s for s in full if s is not chosen]
    w, h = _size(chosen)
    note = f"image {number[id(chosen)]} of {len(series)} ({w} × {h} px)"
    if any(_area(s) < _area(chosen) for s in others):
        note += ", the largest"
    parts = []
    if chosen is not series[0] and _is_reduced(series[0]):
        mask = getattr(series[0].keyframe, "is_mask", False)
        parts.append("the first is a transparency mask" if mask else "the first is a reduced-resolution page (a thumbnail)")
    if others:
        listed = ", ".join(f"image {number[id(s)]} ({_size(s)[0]} × {_size(s)[1]} px)" for s in others[:5])
        more = f" and {len(others) - 5} more" if len(others) > 5 else ""
        one = len(others) == 1
        parts.append(f"the file's other image{'' if one else 's'}, {listed}{more}, {'was' if one else 'were'} not measured "
                     f"(save {'it' if one else 'each'} on its own to measure it)")
    return chosen, note + ": " + "; ".join(parts)


def _photometric(a: np.ndarray, page, photometric: int) -> tuple[np.ndarray, str | None]:
    """Pixel values as the file means them: MinIsWhite (photometric 0) turned so that white is
    high, as every viewer shows it, a palette (3) through its colour map, CMYK (photometric
    5, 4 inks) to RGB, L*a*b* (8-10) to its L channel; else unchanged.
    Read as stored, a MinIsWhite micrograph measured its film as pores (opening 0.19 for 0.60)."""
    if photometric == 0 and a.ndim == 2:
        if a.dtype == bool:  # (1 bit a pixel, the commonest MinIsWhite: read as stored, its black was white)
            return ~a, "MinIsWhite, inverted"
        if a.dtype.kind == "u":
            top = (1 << int(getattr(page, "bitspersample", a.dtype.itemsize * 8))) - 1
            return (top - a.astype(np.int64)).astype(a.dtype) if top <= np.iinfo(a.dtype).max else a, "MinIsWhite, inverted"
        if a.dtype.kind in "if":
            return -a.astype(np.float64) if a.dtype.kind == "i" else -a, "MinIsWhite, inverted"
    if photometric == 3 and a.ndim == 2 and a.dtype.kind == "u" and getattr(page, "colormap", None) is not None:
        # indices into a colour map (16-bit R, G, B): read as stored, a palette TIFF showing a
        # micrograph was measured on its indices (opening 0.0 for 0.58), a palette PNG of the
        # same picture through its palette
        cmap = np.asarray(page.colormap)
        if cmap.ndim == 2 and cmap.shape[0] == 3 and int(a.max(initial=0)) < cmap.shape[1]:
            return np.moveaxis(cmap[:, a], 0, -1), "palette, its colour map applied"
    if photometric in _LAB and a.ndim == 3 and a.shape[-1] >= 3:
        # L*, a*, b*: its L channel is the grey (lightness); a* and b* (signed colour axes) had
        # been weighed as green and blue
        return np.ascontiguousarray(a[..., 0]), f"{_LAB[photometric]}, its L (lightness) channel measured"
    if photometric == 5 and a.ndim == 3 and a.shape[-1] == 4 and a.dtype.kind in "uf":
        top = float(np.iinfo(a.dtype).max) if a.dtype.kind == "u" else 1.0
        ink = a.astype(np.float64) / top
        rgb = (1.0 - ink[..., :3]) * (1.0 - ink[..., 3:4]) * top
        return rgb, "CMYK, converted to RGB"
    return a, None


def _tiff_pixel_size(tif, page) -> float | None:
    tags = page.tags
    px_per_unit = _resolution(tags.get("XResolution"))
    if px_per_unit is None:
        return None
    unit_tag = tags.get("ResolutionUnit")
    unit = int(unit_tag.value) if unit_tag is not None else 2
    if unit == 3:  # CENTIMETER
        return 1e4 / px_per_unit
    if unit == 2:  # INCH (the TIFF default) — ImageJ writes its own unit in the description
        ij = tif.imagej_metadata or {}
        if ij.get("unit") is not None:
            return _imagej(ij, px_per_unit)
        if _is_print_dpi(page, False) is not None:
            return None  # (named by _zero_resolution)
        return 25400.0 / px_per_unit
    if unit == 1:  # NONE: ImageJ stores px per its unit here
        ij = tif.imagej_metadata or {}
        return _imagej(ij, px_per_unit)
    return None


def _imagej(ij: dict, px_per_unit: float) -> float | None:
    scale = _UNIT_UM.get(_unit_key(ij.get("unit", "")))
    if scale is None:
        return None
    return scale / px_per_unit


def _usable(px: float | None) -> bool:
    return px is not None and bool(np.isfinite(px)) and px > 0


@contextmanager
def _tifffile_quiet() -> Iterator[None]:
    """tifffile logs what it finds wrong in a file ('invalid offset to first page', at warning
    or error level: 'incorrect StripByteCounts count' of a header declaring 100000² px) before
    it fails or reads on; our own error names the file and says what is wrong, so its log line
    is only noise."""
    log = logging.getLogger("tifffile")
    with _QUIET_LOCK:
        level = log.level
        log.setLevel(logging.CRITICAL)
        try:
            yield
        finally:
            log.setLevel(level)


_QUIET_LOCK = threading.Lock()


def _is_regular(path: str | Path) -> bool:
    """Whether ``path`` is a regular file (through symlinks). Path.is_file() raised on a name too
    long for the file system (Python 3.11): a traceback for a mistyped or generated name."""
    import stat

    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


from castrig.regular import NAME_TOO_LONG  # noqa: E402,F401 (said here too, as before)


def not_a_file(path: str | Path) -> str:
    """Why ``path`` is not a file to read, in the user's words: a directory, a symlink loop, a
    link to nothing, something else (a socket, a device), or no such file."""
    p = Path(path)
    try:
        st = p.stat()
    except RuntimeError:  # (pathlib on a symlink loop, Python < 3.13)
        return "a symlink loop (too many levels of symbolic links)"
    except OSError as exc:
        import errno

        if exc.errno == errno.ELOOP:
            return "a symlink loop (too many levels of symbolic links)"
        if exc.errno == errno.ENAMETOOLONG:
            return NAME_TOO_LONG
        if exc.errno == errno.ENOENT and p.is_symlink():
            return "a symbolic link to nothing (its target is missing)"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "cannot be looked at (permission denied)"
        return "no such file"
    import stat

    return "a directory, not an image file" if stat.S_ISDIR(st.st_mode) else "not a regular file"


#: The fields :func:`read_micrograph` itself puts in the metadata it returns: how the file was
#: read and where its pixel size came from. Never taken from the file's own metadata (a JSON
#: ImageDescription or ImageJ Info): ``{"pixel_size_warnings": "FAKE WARNING"}`` gave 12
#: one-letter warnings, ``{"file_type": 12}`` a "read as" note of 12, ``{"pixel_size_warnings": 5}``
#: a traceback. What a file says under these names is kept, unused, under ``file_metadata``.
READER_FIELDS = ("pixel_size_source", "pixel_size_warnings", "pixel_size_invalid", "page_used", "file_type",
                 "photometric", "orientation", "file_metadata", "instrument_metadata")


def _file_metadata(desc: str, ij: dict | None) -> dict:
    """The metadata a TIFF carries: its ImageDescription as JSON (castrig's own non-ImageJ files)
    or as ``{"description": text}``; in an ImageJ file, the JSON of ImageJ's Info property
    (castrig's own ImageJ files) and ``imagej``: ImageJ's plain fields. The file's keys named as
    one of :data:`READER_FIELDS` are moved under ``file_metadata``: the reader's own fields are
    the reader's."""
    own: dict = {}
    if desc:
        try:
            d = json.loads(desc)
        except (ValueError, RecursionError):
            d = desc
        own = d if isinstance(d, dict) else {"description": d}
    if ij:
        info = ij.get("Info")
        if desc.startswith("ImageJ=") and isinstance(info, str):
            try:  # ours: the metadata as JSON in ImageJ's Info property
                d = json.loads(info)
            except (ValueError, RecursionError):
                d = None
            own = d if isinstance(d, dict) else own
    meta = {k: v for k, v in own.items() if k not in READER_FIELDS}
    if ij:
        meta.setdefault("imagej", {k: v for k, v in ij.items() if isinstance(v, (str, int, float, bool))})
    kept = {k: own[k] for k in READER_FIELDS if k in own}
    if kept:
        meta["file_metadata"] = kept
    return meta


#: The image formats other than TIFF that micrographs come in (cameras, SEMs' exports, image
#: programs), the only ones Pillow is asked to open: anything Pillow opens had been taken whatever
#: its name, a PostScript file named .png handed to Ghostscript (a program, run on the file).
PILLOW_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "PPM")


def read_micrograph(path: str | Path, *, max_pixels: int | None = None) -> tuple[np.ndarray, float | None, dict]:
    """(2-D array, pixel size in µm or None, metadata dict) of a TIFF, PNG or JPEG file.

    ``max_pixels``: the largest image decoded (default :func:`max_image_pixels`); the size the
    file declares is checked before decoding.
    """
    p = str(path)
    if not _is_regular(p):
        raise BadInput(f"{p}: {not_a_file(p)}", file=p)
    if os.path.getsize(p) == 0:
        raise BadInput(f"{p}: empty file (0 bytes): no image in it", file=p)
    if is_tiff(p):  # by its first bytes, not its name: a TIFF saved as .png kept no calibration
        if Path(p).suffix.lower() not in (".tif", ".tiff"):
            renamed = f"read as TIFF (its name says {Path(p).suffix or 'nothing'})"
        else:
            renamed = None
        import tifffile

        page = None
        check_directories(p)
        try:
            with _tifffile_quiet(), tifffile.TiffFile(p) as tif:
                series, skipped = _full_resolution_series(tif, p)
                page = series.keyframe if series is not None else tif.pages[0]
                declared = series if series is not None else page
                # the size the file declares, checked before a byte is decoded (decompression bombs)
                check_image_size(p, declared.shape, declared.dtype, max_pixels)
                check_tile_size(p, page, max_pixels)
                check_segment_bytes(p, series.pages if series is not None else [page], page)
                check_codec_segments(p, series.pages if series is not None else [page], page)
                check_empty_segments(p, series.pages if series is not None else [page], page)
                if not _imagej_yunit_square(p, page, tif.imagej_metadata or {}):
                    _check_square(p, page)
                _check_raw(p, int(page.photometric))
                a = declared.asarray()
                photometric = int(page.photometric)
                if (photometric in (2, 5) and int(getattr(page, "planarconfig", 1)) == 2
                        and a.ndim == 3 and a.shape[0] in (3, 4)):
                    a = np.moveaxis(a, 0, -1)  # planar RGB or CMYK (PlanarConfiguration SEPARATE)
                _check_palette(p, a, page, photometric)
                a, read_as = _photometric(a, page, photometric)
                a, lut_note = apply_grey_lut(a, tif.imagej_metadata, photometric)
                _check_second_channel(p, a, page, photometric)
                turned = _tiff_orientation(page)
                if turned in _EXIF_TURNS and a.ndim >= 2:  # tifffile gives the pixels as stored
                    a = _EXIF_TURNS[turned](a)
                px = _tiff_pixel_size(tif, page)
                src = "TIFF resolution tags" if px is not None else None
                zero_tag = _zero_resolution(page, imagej=bool(tif.imagej_metadata))
                bad_vendor = None
                imagej_calibrated = bool((tif.imagej_metadata or {}).get("unit"))
                # an ImageJ calibration whose unit is no length castrig reads (px per "furlong"):
                # said as such, not "no pixel size in the file"
                ij_unit = (tif.imagej_metadata or {}).get("unit")
                ij_per_unit = _resolution(page.tags.get("XResolution"))
                unread_unit = (px is None and imagej_calibrated and ij_per_unit is not None
                               and _UNIT_UM.get(_unit_key(ij_unit)) is None)
                try:
                    vendor = list(vendor_pixel_sizes(page, p))
                except Exception:  # noqa: BLE001 - only read to be compared with an ImageJ calibration
                    if not imagej_calibrated:
                        raise
                    vendor = []
                vpx, vsrc = vendor[0] if vendor else (None, None)
                ome = _ome(tif, series, p)
                found = [(px, src)] if px is not None else []
                found += vendor + ([ome] if ome else [])  # (every instrument's: two that disagree are said, whichever is used)
                if ome is not None and vpx is None:  # (the microscope software's record, as a vendor's tag below)
                    vpx, vsrc = ome
                if vpx is not None and not _usable(vpx) and _usable(px):
                    # the instrument's field is there but no pixel size: the resolution tags
                    # stand in, and the result says why
                    bad_vendor = f"{vsrc} says {vpx:g} µm, not a pixel size; used {px:.6g} µm from {src}"
                elif (not imagej_calibrated or (unread_unit and _usable(vpx))) and vpx is not None:
                    # The instrument's own record of its scan beats plain resolution tags, which
                    # SEM software often leaves at a display default (an FEI Quanta file says
                    # 28 px/cm, i.e. 72 dpi: 357 µm per pixel). An ImageJ calibration is a
                    # person's deliberate one and stays first.
                    px, src = vpx, vsrc
                    if unread_unit:  # the ImageJ calibration could not be read: the instrument's stands in, said
                        bad_vendor = (f"its ImageJ calibration's unit {ij_unit!r} is not a length castrig reads; "
                                      f"used {vpx:.6g} µm from {vsrc}")
                meta = _file_metadata(page.description or "", tif.imagej_metadata)
                # an SEM vendor's own metadata, its pixel size read or not (castrig analyse's
                # --appearance auto takes sem for it)
                sem = (vendor[0][1] if vendor else None) or next((f"{who} tag {code}" for code, who in ((34118, "Zeiss SmartSEM"), (34682, "FEI/Thermo"))
                                    if code in page.tags), None)
        except BadInput:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
            cut = cut_short(p, page)
            if cut:
                raise BadInput(f"{p}: cannot read TIFF: {cut}", file=p) from None
            raise BadInput(f"{p}: cannot read TIFF ({_cut(str(exc) or type(exc).__name__)})", file=p) from None
        if sem is not None:  # an SEM vendor's own record of the scan is there (used or not): it says SEM
            meta["instrument_metadata"] = sem
        if skipped:
            meta["page_used"] = skipped
        if renamed:
            meta["file_type"] = renamed
        if read_as:
            meta["photometric"] = read_as
        if lut_note:
            meta["lut"] = lut_note
        if turned in _EXIF_TURNS:
            meta["orientation"] = f"TIFF orientation {turned} applied (the image as viewers show it)"
        if px is not None and not _usable(px):
            if src != "TIFF resolution tags":  # an instrument's field that is there and wrong: named by the caller
                meta["pixel_size_invalid"] = {"value_um": f"{px:g}", "source": src}
            px, src = None, None  # never handed on: a camera or a run would measure with it
        if px is None and unread_unit and "pixel_size_invalid" not in meta:
            meta["pixel_size_invalid"] = {"unit": str(ij_unit), "per_unit": ij_per_unit}
        if px is None and zero_tag is not None and "pixel_size_invalid" not in meta:
            meta["pixel_size_invalid"] = zero_tag
        if src is not None:
            meta["pixel_size_source"] = src
            if imagej_calibrated and src == "TIFF resolution tags":
                src = "TIFF resolution tags (ImageJ calibration)"
            warnings = pixel_size_disagreement(px, src, [(v, w) for v, w in found if w != meta["pixel_size_source"]])
            if bad_vendor:
                warnings.append(bad_vendor)
            if warnings:
                meta["pixel_size_warnings"] = warnings
        return _grey(a, p), px, meta
    limit = max_image_pixels() if max_pixels is None else int(max_pixels)
    check_file_bytes(p, limit * MAX_BYTES_PER_PIXEL, f"an image of at most {limit / 1e6:.4g} Mpx")
    try:
        import imageio.v3 as iio
        from PIL import Image

        import warnings

        with warnings.catch_warnings():  # Pillow's bomb warning: the declared size is checked here, ours
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p, formats=PILLOW_FORMATS)  # (what else Pillow opens is refused as "cannot read")
            with im:  # the header only: check the declared size first
                bands = len(im.getbands())
                is_png, fmt = im.format == "PNG", im.format
                if is_png:  # decoded as the file stores it (16 bits a sample; a tRNS chunk an alpha channel)
                    check_image_size(p, png_decoded_shape(p, "transparency" in im.info), png_decoded_dtype(p), max_pixels)
                else:
                    check_image_size(p, (im.height, im.width) + ((bands,) if bands > 1 else ()),
                                     np.uint16 if im.mode.startswith("I;16") else np.int32 if im.mode in ("I", "F")
                                     else np.uint8, max_pixels)
                png_bytes = im.height * (1 + im.width * bands * 2)  # its rows, each behind a filter byte, at 16 bits a sample
                phys = {k: im.info[k] for k in ("dpi", "aspect") if k in im.info} if is_png else {}
                cmyk = im.mode == "CMYK"
                frames = count_frames(im)
                # (an animated GIF, APNG or WebP: every frame was decoded, 300 of them 3.6 GB; a
                # camera's JPEG with its preview, MPO, is one photo: its first image is read)
                if frames > 1 and im.format != "MPO":
                    many = f"more than {MAX_FRAMES_COUNTED}" if frames > MAX_FRAMES_COUNTED else str(frames)
                    raise BadInput(f"{p}: holds {many} frames ({im.format}); castrig measures one image: save the "
                                   "frame to measure as an image of its own", file=p, field="frames")
                # EXIF Orientation; a PNG's from an eXIf chunk before its image data (where Pillow
                # and libpng write it): for one after it, Pillow's getexif() decoded the whole image
                exif = im.getexif() if not is_png or "exif" in im.info else png_late_exif(p)
                orientation = int(exif.get(0x0112, 1) or 1)
                if im.format in ("JPEG", "MPO"):
                    check_jpeg_scans(p)
                    check_jpeg_complete(p)  # (a progressive JPEG cut after its first scans, re-ended)
                    check_jpeg_data(p)  # (a baseline one cut inside its scan: libjpeg fills the rest with grey)
            if is_png:
                check_file_bytes(p, png_bytes, f"a {im.width} × {im.height} PNG")
                a = png_decoded(p)
            elif cmyk:  # 4 inks, not RGBA: Pillow's conversion (a CMYK JPEG read as RGBA measured its film as pores)
                with Image.open(p, formats=PILLOW_FORMATS) as im:
                    a = np.asarray(im.convert("RGB"))
            else:
                a = iio.imread(p, plugin="pillow", index=0)
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001
        if type(exc).__name__ == "DecompressionBombError":  # Pillow's own limit, met first
            limit = max_image_pixels() if max_pixels is None else max_pixels
            raise BadInput(f"{p}: image too large: {_cut(str(exc))} (allowed: at most {limit / 1e6:.4g} Mpx; "
                           "raise CASTRIG_MAX_IMAGE_PIXELS for a genuine large image)", file=p, field="image size") from None
        if type(exc).__name__ == "UnidentifiedImageError":  # (Pillow's "cannot identify image file")
            from castrig.image_kinds import IMAGE_FORMATS_READ, unread_kind

            kind = unread_kind(p)
            said = f"{kind}, a format castrig does not read" if kind else "not an image in a format castrig reads"
            raise BadInput(f"{p}: cannot read image: {said} (allowed: {IMAGE_FORMATS_READ}); save it as TIFF "
                           "(Fiji: File > Save As > Tiff)", file=p, field="file format") from None
        raise BadInput(f"{p}: cannot read image ({_cut(str(exc) or type(exc).__name__)})", file=p) from None
    a = np.asarray(a)
    read_as = {"photometric": "CMYK, converted to RGB"} if cmyk else {}
    if Path(p).suffix.lower() not in _SUFFIXES.get(fmt, ()):  # (a JPEG named .tif: its losses are the reader's to know)
        read_as["file_type"] = f"read as {fmt} (its name says {Path(p).suffix or 'nothing'})"
    if orientation in _EXIF_TURNS and a.ndim >= 2:  # as every viewer shows it
        a = _EXIF_TURNS[orientation](a)
        read_as["orientation"] = f"EXIF orientation {orientation} applied (the image as viewers show it)"
    # JPEG/BMP carry no pixel size, a PNG its pHYs chunk; an SEM's text sidecar may (JEOL saves
    # .bmp/.jpg + .txt), and beats a pHYs as an instrument's record beats TIFF resolution tags
    phys_px, phys_bad = png_phys(p, phys) if is_png else (None, None)
    px, src = sidecar_pixel_size(p, width_px=a.shape[1] if a.ndim >= 2 else None)
    if src:  # an SEM vendor's sidecar: it says SEM
        read_as["instrument_metadata"] = src
    warnings = []
    if px is not None and not _usable(px):
        if phys_px is None:
            return _grey(a, p), None, {"pixel_size_invalid": {"value_um": f"{px:g}", "source": src}} | read_as
        warnings.append(f"{src} says {px:g} µm, not a pixel size; used {phys_px:.6g} µm from {PHYS_SOURCE}")
        px, src = None, None
    if px is None and phys_px is not None:
        px, src = phys_px, PHYS_SOURCE
    elif px is not None and phys_px is not None:
        warnings += pixel_size_disagreement(px, src, [(phys_px, PHYS_SOURCE)])
    meta = ({"pixel_size_source": src} if src else {}) | read_as
    if warnings:
        meta["pixel_size_warnings"] = warnings
    if px is None and phys_bad is not None:
        meta["pixel_size_invalid"] = phys_bad
    return _grey(a, p), px, meta


#: TIFF PhotometricInterpretation of the CIE L*a*b* kinds -> their names
_LAB = {8: "CIELab", 9: "ICCLab", 10: "ITULab"}

#: PhotometricInterpretation of a camera's raw sensor data, no image to measure as it is
_RAW = {32803: "CFA: a colour sensor's raw mosaic, one colour filter a pixel"}


def _check_raw(path: str, photometric: int) -> None:
    """Refuse a raw camera TIFF or DNG image of a colour sensor's mosaic (CFA): read as stored,
    a Bayer mosaic was measured as a micrograph, each 2 × 2 block's filters a pattern of its
    own (opening 0.0 for 0.61, exit 0). (LinearRaw, demosaiced linear RGB, is read as RGB.)"""
    if photometric in _RAW:
        raise BadInput(f"{path}: its pixels are {_RAW[photometric]} (TIFF PhotometricInterpretation {photometric}), "
                       "not an image castrig measures as it is (allowed: 0 MinIsWhite, 1 MinIsBlack, 2 RGB, 3 palette, "
                       "5 CMYK, 6 YCbCr, 8-10 L*a*b*); develop it to a greyscale or RGB TIFF first (the camera's "
                       "software, or Fiji)", file=path, field="PhotometricInterpretation")


def _check_palette(path: str, a: np.ndarray, page, photometric: int) -> None:
    """Refuse a palette TIFF (photometric 3) whose colour map is missing or holds fewer colours
    than its pixels index: its pixels were measured as the indices they are, nothing said."""
    if photometric != 3 or a.ndim != 2 or a.dtype.kind not in "ub":
        return
    cmap = getattr(page, "colormap", None)
    colours = int(np.asarray(cmap).shape[-1]) if cmap is not None and np.asarray(cmap).ndim == 2 else 0
    top = int(a.max(initial=0))
    if top >= colours:
        raise BadInput(f"{path}: a palette image whose colour map (TIFF tag ColorMap) holds {colours} colours, but its "
                       f"pixels index colour {top} (allowed: indices below the colours the map holds); the file is "
                       "damaged, not measured on its indices", file=path, field="ColorMap")


def _check_second_channel(path: str, a: np.ndarray, page, photometric: int) -> None:
    """Refuse a grey TIFF of two samples a pixel whose second is no alpha channel (ExtraSamples
    1 or 2): two signals (an SEM's two detectors), of which castrig took the first as the image
    and dropped the other as if it were alpha, nothing said (a flat first channel: opening 0)."""
    if photometric not in (0, 1) or a.ndim != 3 or a.shape[-1] != 2:
        return
    extra = tuple(int(v) for v in (getattr(page, "extrasamples", None) or ()))
    if extra[:1] in ((1,), (2,)):
        return
    said = f"ExtraSamples {extra[0]}, unspecified" if extra else "no ExtraSamples tag"
    raise BadInput(f"{path}: holds 2 channels a pixel and its second is no alpha channel (TIFF {said}); castrig "
                   "measures one greyscale image: save the channel to measure on its own (Fiji: Image > Color > "
                   "Split Channels)", file=path, field="SamplesPerPixel")


def _ome(tif, series, path: str) -> tuple[float, str] | None:
    """The OME-XML pixel size of the image measured (:func:`castrig.sem_metadata.ome_pixel_size`)."""
    if not getattr(tif, "is_ome", False) or series is None:
        return None
    xml = tif.ome_metadata or ""
    index = next((i for i, s in enumerate(tif.series) if s is series), 0)
    return ome_pixel_size(xml, index, path)


def _tiff_orientation(page) -> int:
    """A TIFF page's Orientation tag (274; 1, the default, when absent or no number). EXIF took
    it from TIFF: the same values, turned by :data:`_EXIF_TURNS`. A section from a camera held
    upright, stored on its side with orientation 6, was read as stored: measured across its
    layers, it gave no thickness at all, and nothing said why."""
    tag = page.tags.get("Orientation")
    try:
        return int(tag.value) if tag is not None else 1
    except (TypeError, ValueError):
        return 1


#: the names each format Pillow reads goes by; any other is said (``read as JPEG (its name says .tif)``)
_SUFFIXES = {"PNG": (".png",), "JPEG": (".jpg", ".jpeg", ".jpe", ".jfif"), "MPO": (".jpg", ".jpeg", ".mpo"),
             "BMP": (".bmp", ".dib"), "GIF": (".gif",), "WEBP": (".webp",), "PPM": (".ppm", ".pgm", ".pbm", ".pnm")}


#: EXIF (and TIFF) Orientation 2-8 -> the turn that shows the stored pixels as viewers do (rows, columns
#: first; colour last). Orientation 6 is a phone or camera held upright: stored on its side, a
#: section read as stored was measured across its layers (T 37.6 µm, interface lost).
_EXIF_TURNS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1),
    6: lambda a: np.rot90(a, k=-1),
    7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
    8: lambda a: np.rot90(a, k=1),
}


#: two pixel sizes of one image that differ by more than this (relative) are reported
PIXEL_SIZE_AGREEMENT = 0.01


def pixel_size_disagreement(used_um: float, used_source: str, others: list[tuple[float | None, str | None]]) -> list[str]:
    """One warning per other pixel size of the same image (``(value µm, source)``) that differs
    from the one used by more than :data:`PIXEL_SIZE_AGREEMENT`, naming both values and which
    was used."""
    out = []
    for v, where in others:
        if not (_usable(v) and _usable(used_um)):
            continue
        if abs(v / used_um - 1) > PIXEL_SIZE_AGREEMENT:
            out.append(f"pixel size: {where} says {v:.6g} µm, {used_source} says {used_um:.6g} µm "
                       f"({max(v, used_um) / min(v, used_um):.3g}× apart); used {used_um:.6g} µm from {used_source}")
    return out


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
