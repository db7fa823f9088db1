"""Micrograph files: TIFF with the pixel size in its resolution tags and metadata as JSON.

Written atomically (temp file, fsync, os.replace) so a crash never leaves half an image in a run
folder; in ImageJ's flavour, so Fiji opens them calibrated in µm. Read back: TIFF resolution
tags (CENTIMETER, INCH, or ImageJ's unit=micron with unit NONE), the SEM vendors' tags and text
sidecars, PNG/JPEG/BMP (a sidecar's pixel size, if any). RGB and RGBA are converted to grey
(luminance, Rec. 709 weights 0.2125 R + 0.7154 G + 0.0721 B; the alpha channel is dropped, not
blended); anything else that is not a 2-D greyscale image is a BadInput naming the file.

Hostile files (issue 15) are refused before they cost memory: the size a file *declares* (pixels
and decoded bytes) is checked against :func:`max_image_pixels` (``$CASTRIG_MAX_IMAGE_PIXELS``,
default 100 Mpx; at most 4 decoded bytes per pixel) before anything is decoded, so a 2 MB "decompression
bomb" declaring 46000² pixels is a BadInput, not a 7.9 GiB allocation. Float images with NaN or
infinite pixels are refused (the analysis would measure nothing and say nothing).

A TIFF of more than :data:`MAX_TIFF_PAGES` pages is refused before its pages are sorted into
images (quadratic in their number in tifffile); of several images the largest full-resolution one
is measured and the metadata's ``page_used`` says which; an empty or cut-short file is called so.
The file's own metadata never stands in for the reader's fields (:data:`READER_FIELDS`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from castrig.errors import BadInput

__all__ = ["write_micrograph", "read_micrograph", "vendor_pixel_size", "sidecar_pixel_size", "vendor_pixel_sizes", "max_image_pixels", "check_image_size", "check_pixel_size", "check_file_bytes",
           "pixel_size_disagreement",
           "DEFAULT_MAX_IMAGE_PIXELS", "PIXEL_SIZE_RANGE_UM", "check_image_side"]

DEFAULT_MAX_IMAGE_PIXELS = 100_000_000
MAX_BYTES_PER_PIXEL = 4  # decoded: RGBA uint8 or float32 grey at the full pixel limit (400 MB at 100 Mpx)
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
        if a.dtype in (np.uint8, np.uint16, np.float32):
            tifffile.imwrite(tmp, a, imagej=True, resolution=(1.0 / float(pixel_size_um), 1.0 / float(pixel_size_um)),
                             metadata={"unit": "um", "Info": json.dumps(meta, default=str)})
        else:
            tifffile.imwrite(tmp, a, resolution=(res, res), resolutionunit=tifffile.RESUNIT.CENTIMETER,
                             description=json.dumps(meta, default=str), metadata=None)

    atomic_write_with(path, write, sync_dir=False)  # whole or absent, the mode of every other file
    try:  # make the rename durable too
        fsync_dir(path.parent)
    except OSError:
        pass
    return path


def max_image_pixels() -> int:
    """The largest image (pixels) castrig decodes: ``$CASTRIG_MAX_IMAGE_PIXELS`` or 100 Mpx."""
    raw = os.environ.get("CASTRIG_MAX_IMAGE_PIXELS", "").strip()
    if not raw:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        v = int(float(raw))
    except (ValueError, OverflowError):
        v = 0
    if not 1 <= v <= 10**12:
        raise BadInput(f"CASTRIG_MAX_IMAGE_PIXELS = {raw[:40]!r}: expected a number of pixels (allowed: 1 to 1e12)",
                       field="CASTRIG_MAX_IMAGE_PIXELS")
    return v


def check_image_size(path: str | Path, shape: tuple[int, ...], dtype: np.dtype | str, max_pixels: int | None = None) -> None:
    """BadInput unless an image of ``shape`` × ``dtype`` (as declared by the file, before it is
    decoded) stays within ``max_pixels`` (default :func:`max_image_pixels`) and
    :data:`MAX_BYTES_PER_PIXEL` decoded bytes per pixel of that limit."""
    limit = max_image_pixels() if max_pixels is None else int(max_pixels)
    shape = tuple(int(n) for n in shape)
    samples = 1
    for n in shape:
        samples *= n
    pixels = samples // shape[-1] if len(shape) >= 3 and shape[-1] in (2, 3, 4) else samples
    nbytes = samples * np.dtype(dtype).itemsize
    if pixels > limit or nbytes > limit * MAX_BYTES_PER_PIXEL:
        dims = "×".join(str(n) for n in shape)
        raise BadInput(
            f"{path}: image too large: it declares {dims} {np.dtype(dtype).name} ({pixels / 1e6:.4g} Mpx, "
            f"{nbytes / 2**20:.4g} MiB decoded) (allowed: at most {limit / 1e6:.4g} Mpx and {limit * MAX_BYTES_PER_PIXEL / 2**20:.4g} MiB; "
            f"raise CASTRIG_MAX_IMAGE_PIXELS for a genuine large image)",
            file=str(path), field="image size")


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


def is_tiff(path: str | Path) -> bool:
    """A TIFF or BigTIFF by its header (II*\0, MM\0*, II+\0, MM\0+), whatever its name."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


#: the most pages (image directories) a TIFF may hold: a micrograph file holds one image, perhaps
#: with a thumbnail or a few other views. Looked at only this far: tifffile's sorting of pages into
#: images takes time quadratic in their number (40,000 pages of 16 × 16 px, 20 MB: over 2 minutes).
MAX_TIFF_PAGES = 256


def _is_reduced(series) -> bool:
    return bool(getattr(series.keyframe, "is_reduced", False))


def _size(series) -> tuple[int, int]:
    """(width, height) in px of one image of ``series``."""
    k = series.keyframe
    return int(k.imagewidth), int(k.imagelength)


def _area(series) -> int:
    w, h = _size(series)
    return w * h


@dataclass(frozen=True)
class _TiffLayout:
    """What a TIFF's header says of how its image directories are written (TIFF 6.0 or BigTIFF)."""

    bo: str  # struct byte order, "<" or ">"
    big: bool  # BigTIFF
    header_bytes: int  # 8, or 16 for BigTIFF
    off_fmt: str  # an offset: "I" or "Q"
    cnt_fmt: str  # a directory's entry count: "H" or "Q"
    entry: int  # bytes of one directory entry: 12 or 20
    inline: int  # bytes of a value held in its entry: 4 or 8
    first: int | None  # offset of the first directory (None: the header is cut short)

    @classmethod
    def of(cls, head: bytes) -> "_TiffLayout":
        """From the file's first 16 bytes (fewer when the file is shorter)."""
        import struct

        big = head[2:4] in (b"+\x00", b"\x00+")
        bo = "<" if head[:2] == b"II" else ">"
        n = 16 if big else 8
        off_fmt = "Q" if big else "I"
        first = struct.unpack(bo + off_fmt, head[8:16] if big else head[4:8])[0] if len(head) >= n else None
        return cls(bo, big, n, off_fmt, "Q" if big else "H", 20 if big else 12, 8 if big else 4, first)


def _count_pages(path: str, limit: int) -> int:
    """The number of pages (image directories) in the chain of a TIFF, counted up to ``limit``:
    read here, not by tifffile, whose ``pages[n]`` of a chain that loops back on itself returns
    its first page again (a file that is one page and a loop, not ``n`` pages)."""
    import struct

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        lay = _TiffLayout.of(f.read(16))
        bo, off_fmt, cnt_fmt, entry = lay.bo, lay.off_fmt, lay.cnt_fmt, lay.entry
        offset = lay.first or 0
        seen: set[int] = set()
        while 0 < offset < size and offset not in seen and len(seen) < limit:
            seen.add(offset)
            f.seek(offset)
            raw = f.read(struct.calcsize(cnt_fmt))
            if len(raw) < struct.calcsize(cnt_fmt):
                break
            n = struct.unpack(bo + cnt_fmt, raw)[0]
            if n > 4096:  # tifffile's bound too: not a directory
                break
            f.seek(offset + len(raw) + n * entry)
            raw = f.read(struct.calcsize(off_fmt))
            if len(raw) < struct.calcsize(off_fmt):
                break
            offset = struct.unpack(bo + off_fmt, raw)[0]
        return len(seen)


#: the most strips or tiles one image may be cut into: a 100 Mpx image in 16 × 16 px tiles (the
#: smallest TIFF allows) is 390 625 of them. tifffile reads and decodes them one by one (a million: 2 s): a
#: 1 × 20 000 000 px image in one-row strips (160 MB of offsets, a sparse file) took 45 s and 4 GB.
MAX_TIFF_SEGMENTS = 1 << 19


#: the largest value one TIFF tag may hold (metadata: a description, an ICC profile, a vendor's
#: text, ImageJ's overlays; a Zeiss tag is some 30 kB). tifffile reads some tags whole as it opens
#: a file: an ImageDescription declaring 1.5 GB (a sparse file) took 1.5 GB and 7 s, and was measured.
MAX_TAG_BYTES = 64 << 20


def _check_directories(path: str) -> None:
    """BadInput if an image directory of the TIFF ``path`` (of the first :data:`MAX_TIFF_PAGES`
    in its chain) declares more than :data:`MAX_TIFF_SEGMENTS` strip or tile offsets or byte
    counts, or a tag value of more than :data:`MAX_TAG_BYTES`; or all of them together more than
    :data:`MAX_TIFF_SEGMENTS` strips or tiles or 4 × :data:`MAX_TAG_BYTES`. Read from the directories'
    entries before tifffile opens the file: tifffile reads such arrays and texts whole as it
    opens it, whatever their size."""
    import struct

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        lay = _TiffLayout.of(f.read(16))
        bo, cnt_fmt, entry, big = lay.bo, lay.cnt_fmt, lay.entry, lay.big
        offset = lay.first or 0
        seen: set[int] = set()
        segments = tag_bytes = 0  # (over all the directories: 256 of them, each just within the bounds, are 256 times more)
        while 0 < offset < size and offset not in seen and len(seen) <= MAX_TIFF_PAGES:
            seen.add(offset)
            f.seek(offset)
            raw = f.read(struct.calcsize(cnt_fmt))
            if len(raw) < struct.calcsize(cnt_fmt):
                return
            n = struct.unpack(bo + cnt_fmt, raw)[0]
            if n > 4096:  # not a directory (tifffile's bound too)
                return
            entries = f.read(n * entry)
            for i in range(len(entries) // entry):
                e = entries[i * entry:(i + 1) * entry]
                tag, typ = struct.unpack(bo + "HH", e[:4])
                count = struct.unpack(bo + ("Q" if big else "I"), e[4:12] if big else e[4:8])[0]
                if tag in (273, 279, 324, 325) and count > MAX_TIFF_SEGMENTS:  # Strip/Tile Offsets and ByteCounts
                    import tifffile

                    name = tifffile.TIFF.TAGS.get(tag, str(tag))
                    raise BadInput(f"{path}: its image is cut into {count:,} pieces (TIFF tag {name}) (allowed: at "
                                   f"most {MAX_TIFF_SEGMENTS:,} strips or tiles); save it again with larger strips "
                                   "or tiles", file=path, field=name)
                nbytes = _TIFF_TYPE_BYTES.get(typ, 1) * count
                if nbytes > MAX_TAG_BYTES:
                    import tifffile

                    name = tifffile.TIFF.TAGS.get(tag, str(tag))
                    raise BadInput(f"{path}: its TIFF tag {tag} ({name}) declares a value of {nbytes:,} bytes (allowed: "
                                   f"at most {MAX_TAG_BYTES:,}); the file is damaged or crafted, not read", file=path,
                                   field=name)
                segments += count if tag in (273, 324) else 0
                tag_bytes += nbytes
                if segments > MAX_TIFF_SEGMENTS or tag_bytes > 4 * MAX_TAG_BYTES:
                    said = (f"its images are cut into more than {MAX_TIFF_SEGMENTS:,} strips or tiles in all" if
                            segments > MAX_TIFF_SEGMENTS else f"its tags declare more than {4 * MAX_TAG_BYTES:,} bytes in all")
                    raise BadInput(f"{path}: {said} ({len(seen)} image directories) (allowed: at most "
                                   f"{MAX_TIFF_SEGMENTS:,} strips or tiles and {4 * MAX_TAG_BYTES:,} bytes of tags in a "
                                   "file); the file is damaged or crafted, not read", file=path, field="pages")
            raw = f.read(struct.calcsize(lay.off_fmt))
            if len(raw) < struct.calcsize(lay.off_fmt):
                return
            offset = struct.unpack(bo + lay.off_fmt, raw)[0]


def _full_resolution_series(tif, path: str) -> tuple[object | None, str | None]:
    """The image of a TIFF, and a note saying which one it is when the file holds others.

    Reduced-resolution pages (thumbnails, NewSubfileType bit 0, that some microscopes and
    exporters write first) are passed over: a thumbnail first was measured as the image (64 × 64
    px at 16× the pixel size: no pores, opening 0 for certain). Of several full-resolution images
    the largest is measured (the first of equal ones): a 16 × 16 px preview before the section
    was measured alone, and nothing said the section was there. A file of more than
    :data:`MAX_TIFF_PAGES` pages is refused before its pages are sorted into images."""
    if _count_pages(path, MAX_TIFF_PAGES + 1) > MAX_TIFF_PAGES:
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
        parts.append("the first is a reduced-resolution page (a thumbnail)")
    if others:
        listed = ", ".join(f"image {number[id(s)]} ({_size(s)[0]} × {_size(s)[1]} px)" for s in others[:5])
        more = f" and {len(others) - 5} more" if len(others) > 5 else ""
        one = len(others) == 1
        parts.append(f"the file's other image{'' if one else 's'}, {listed}{more}, {'was' if one else 'were'} not measured "
                     f"(save {'it' if one else 'each'} on its own to measure it)")
    return chosen, note + ": " + "; ".join(parts)


#: TIFF compressions whose data is an image of its own (JPEG, JPEG 2000, PNG, WebP), decoded to
#: the size the data's own header declares, not the strip's or tile's: checked segment by segment
#: (:func:`_check_codec_segments`) before anything is decoded.
_JPEG_CODES = (6, 7, 33007, 34892)
_J2K_CODES = (33003, 33004, 33005, 34712)
_CODEC_NAMES = {**dict.fromkeys(_JPEG_CODES, "JPEG"), **dict.fromkeys(_J2K_CODES, "JPEG 2000"), 34933: "PNG",
                50001: "WebP", 34927: "WebP"}
#: image codecs castrig does not decode: the size their data declares cannot be checked first
_UNCHECKED_CODECS = {22610: "JPEG XR (NDPI)", 34934: "JPEG XR", 50002: "JPEG XL", 52546: "JPEG XL (DNG)"}
#: how far a segment's own size may exceed its strip or tile (a JPEG's blocks of up to 16 px)
_CODEC_PAD_PX = 16


def _segment_size(f, offset: int, count: int, compression: int) -> tuple[int, int] | None:
    """(height, width) px the data of one strip or tile declares in its own header (JPEG's SOF,
    JPEG 2000's SIZ, PNG's IHDR, WebP's VP8/VP8L/VP8X), None where it declares none castrig finds."""
    import struct

    f.seek(offset)
    head = f.read(min(count, 64))
    if compression in _JPEG_CODES:
        if head[:2] != b"\xff\xd8":
            return None
        pos, end = offset + 2, offset + count
        for _ in range(64):  # the segments before the frame header (tables, APPn: a handful)
            f.seek(pos)
            m = f.read(9)
            if len(m) < 2 or m[0] != 0xFF:
                return None
            marker = m[1]
            if marker == 0xFF:  # a fill byte
                pos += 1
                continue
            if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # no length
                pos += 2
                continue
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn
                if len(m) < 9:
                    return None
                h, w = struct.unpack(">HH", m[5:9])
                return h, w
            if marker in (0xDA, 0xD9) or len(m) < 4:  # a scan or the end before any frame header
                return None
            pos += 2 + struct.unpack(">H", m[2:4])[0]
            if pos >= end:
                return None
        return (1 << 32, 1 << 32)  # (64 segments and no frame header yet: refused, not walked on)
    if compression in _J2K_CODES:
        f.seek(offset)
        data = f.read(min(count, 1 << 16))
        at = data.find(b"\xff\x4f\xff\x51")  # SOC, SIZ: of a bare codestream or of a JP2's
        if at < 0 or len(data) < at + 24:
            return (1 << 32, 1 << 32)  # (no size found where OpenJPEG finds it: refused, not decoded blind)
        xs, ys, xo, yo = struct.unpack(">IIII", data[at + 8 : at + 24])
        return max(ys - yo, 0), max(xs - xo, 0)
    if compression == 34933:
        return struct.unpack(">II", head[16:24])[::-1] if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24 else None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        kind = head[12:16]
        if kind == b"VP8X":
            return 1 + int.from_bytes(head[27:30], "little"), 1 + int.from_bytes(head[24:27], "little")
        if kind == b"VP8L":
            bits = int.from_bytes(head[21:25], "little")
            return 1 + ((bits >> 14) & 0x3FFF), 1 + (bits & 0x3FFF)
        if kind == b"VP8 ":
            return int.from_bytes(head[28:30], "little") & 0x3FFF, int.from_bytes(head[26:28], "little") & 0x3FFF
    return None


def _check_tile_size(path: str, page, max_pixels: int | None) -> None:
    """BadInput unless one tile of a tiled TIFF, as its TileWidth and TileLength declare it,
    stays within the pixel limit of :func:`check_image_size`: each tile is decoded (a JPEG tile
    to its full declared size) before it is cut to the image. A 256 × 256 JPEG TIFF whose tags
    declared 65520 × 65520 px tiles took 12 s and gigabytes, and measured grey (exit 0)."""
    if not getattr(page, "is_tiled", False):
        return
    tile = (int(page.tilelength), int(page.tilewidth)) + ((int(page.samplesperpixel),) if int(page.samplesperpixel) > 1 else ())
    try:
        check_image_size(path, tile, page.dtype, max_pixels)
    except BadInput as exc:
        raise BadInput(exc.args[0].replace("image too large: it declares", "tile too large: its TileLength × TileWidth "
                                           "declare", 1), file=path, field="TileWidth") from None


#: what one compressed strip or tile may hold beyond twice its decoded bytes (a JPEG's tables)
SEGMENT_OVERHEAD_BYTES = 1 << 16


def _segment_shape(keyframe) -> tuple[int, int]:
    """(height, width) px of one strip or tile of ``keyframe``, as its tags declare it."""
    if getattr(keyframe, "is_tiled", False):
        return int(keyframe.tilelength), int(keyframe.tilewidth)
    length = int(keyframe.imagelength)
    return min(int(keyframe.rowsperstrip or length), length), int(keyframe.imagewidth)


def _check_segment_bytes(path: str, pages, keyframe) -> None:
    """BadInput unless every compressed strip or tile holds at most twice the bytes it decodes
    to, and :data:`SEGMENT_OVERHEAD_BYTES` (no codec grows data that much). Each segment is read
    whole before it is decoded: a 256 × 256 Deflate TIFF whose StripByteCounts said 3 GB, in a
    sparse file of 3 GB, took 9 s and 3 GB of memory, and was measured."""
    if int(getattr(keyframe, "compression", 1)) == 1:
        return
    h, w = _segment_shape(keyframe)
    samples = 1 if int(getattr(keyframe, "planarconfig", 1)) == 2 else int(keyframe.samplesperpixel)
    decoded = h * w * samples * max(1, np.dtype(keyframe.dtype).itemsize)
    allowed = 2 * decoded + SEGMENT_OVERHEAD_BYTES
    size = os.path.getsize(path)
    kind = "tile" if getattr(keyframe, "is_tiled", False) else "strip"
    for page in pages:
        if page is None:
            continue
        for k, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts)):
            held = min(int(count), max(size - int(offset), 0))  # (what a cut-short file lacks is said elsewhere)
            if held > allowed:
                raise BadInput(f"{path}: its {kind} {k + 1} holds {held:,} compressed bytes for {w} × {h} px "
                               f"({decoded:,} bytes decoded) (allowed: at most {allowed:,}); the file is damaged or "
                               "crafted, not decoded", file=path, field="StripByteCounts" if kind == "strip" else "TileByteCounts")


def _check_codec_segments(path: str, pages, keyframe) -> None:
    """BadInput unless every strip or tile of an image-codec TIFF (JPEG, JPEG 2000, PNG, WebP)
    declares, in its own header, no more than its strip's or tile's size. The decoders allocate
    what the data declares: a 256 × 256 JPEG TIFF whose one strip declared 60000 × 60000 took
    3.5 GB and 10 s, and was measured (exit 0, an opening ratio of nothing). JPEG XR and XL,
    whose headers castrig does not read, are refused."""
    compression = int(getattr(keyframe, "compression", 1))
    if compression in _UNCHECKED_CODECS:
        raise BadInput(f"{path}: compressed as {_UNCHECKED_CODECS[compression]} (TIFF compression {compression}), which "
                       "castrig does not read (allowed: uncompressed, LZW, Deflate, PackBits, Zstd, JPEG, JPEG 2000, PNG "
                       "or WebP): save it again in one of these", file=path, field="Compression")
    if compression not in _CODEC_NAMES:
        return
    seg_h, seg_w = _segment_shape(keyframe)
    kind = "tile" if getattr(keyframe, "is_tiled", False) else "strip"
    size = os.path.getsize(path)
    # each distinct byte range once (writers let blank tiles share one), none partly over another: a
    # file of 500 000 tiles each one byte further into one blob had each blob read and searched again
    ranges: dict[tuple[int, int], int] = {}
    for page in pages:
        for k, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts) if page is not None else ()):
            if count and offset < size:
                ranges.setdefault((int(offset), int(min(count, size - offset))), k)
    ordered = sorted(ranges)
    for (o1, c1), (o2, c2) in zip(ordered, ordered[1:]):
        if o2 < o1 + c1:
            raise BadInput(f"{path}: its {kind}s {ranges[(o1, c1)] + 1} and {ranges[(o2, c2)] + 1} overlap in the file "
                           f"(bytes {o1:,}-{o1 + c1:,} and {o2:,}-{o2 + c2:,}) (allowed: each {kind} its own bytes, or "
                           "the very same ones); the file is damaged or crafted, not decoded", file=path, field="Compression")
    if compression in _JPEG_CODES:  # (each scan one more pass of the decoder over the strip or tile)
        _check_jpeg_scans(path, ordered, kind, [ranges[r] for r in ordered])
    with open(path, "rb") as f:
        for offset, count in ordered:
            hw = _segment_size(f, offset, count, compression)
            if hw is not None and (hw[0] > seg_h + _CODEC_PAD_PX or hw[1] > seg_w + _CODEC_PAD_PX):
                said = "no image size castrig can find" if hw[0] >= 1 << 32 else f"{hw[1]} × {hw[0]} px"
                raise BadInput(f"{path}: its {_CODEC_NAMES[compression]} data declares {said} in {kind} "
                               f"{ranges[(offset, count)] + 1} (allowed: at most the {kind}'s {seg_w} × {seg_h} px); "
                               "the file is damaged or crafted, not decoded", file=path, field="Compression")


def _photometric(a: np.ndarray, page, photometric: int) -> tuple[np.ndarray, str | None]:
    """Pixel values as the file means them: MinIsWhite (photometric 0) turned so that white is
    high, as every viewer shows it, a palette (3) through its colour map, and CMYK (photometric
    5, 4 inks) to RGB; else unchanged.
    Read as stored, a MinIsWhite micrograph measured its film as pores (opening 0.19 for 0.60)."""
    if photometric == 0 and a.ndim == 2:
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


_LEN_UM = {"m": 1e6, "mm": 1e3, "um": 1.0, "µm": 1.0, "\u00b5m": 1.0, "micron": 1.0, "nm": 1e-3, "pm": 1e-6}


def _length_um(text: str, default_unit: str) -> float | None:
    """'2.5 nm' / '1.2e-08' (in ``default_unit``) → µm; None when it holds no number at all. A
    number that is no pixel size (0, negative, nan, inf) is returned as it is: the field is there
    and wrong, and :func:`check_pixel_size` says so naming it (taken for "no pixel size in the
    file", it sent people looking for metadata that was there). So is NaN for a field that starts
    as a number but is no length castrig reads: ``2,5 nm`` (a decimal comma) had been read as
    2 nm, ``2500 Å`` (a unit not known) as 2500 nm — 10× off, without a word."""
    import re

    m = re.fullmatch(r"\s*([-+]?(?:nan|inf(?:inity)?|\d*\.?\d+(?:[eE][-+]?\d+)?))\s*([a-zA-Z\u00b5µ]*)\s*", str(text), re.I)
    if not m:
        return float("nan") if re.match(r"\s*[-+]?\.?\d", str(text)) else None
    unit = (m.group(2) or default_unit).strip()
    scale = _LEN_UM.get(unit) or _LEN_UM.get(unit.lower())
    if scale is None:
        return float("nan")
    return float(m.group(1)) * scale


def _unreadable(text: str) -> str:
    """Why a field :func:`_length_um` made NaN of is no length (for the pixel size's source)."""
    from castrig.inputs import short

    why = "a decimal comma" if "," in str(text) else "not a number and a length unit castrig reads"
    return f"{short(str(text).strip())}: {why}"


def _usable(px: float | None) -> bool:
    return px is not None and bool(np.isfinite(px)) and px > 0


def _tag_text(page, code: int) -> object:
    tag = page.tags.get(code)
    if tag is None:
        return None
    v = tag.value
    if isinstance(v, bytes):
        v = v.decode("latin-1", "replace")
    return v


#: the most of a vendor's text tag castrig reads (a Zeiss SmartSEM tag is some 30 kB)
MAX_VENDOR_TAG_BYTES = 16 << 20


def _zeiss_text(page) -> str | None:
    """The text of Zeiss SmartSEM's tag 34118 (its first :data:`MAX_VENDOR_TAG_BYTES`), read
    from the file as it is: tifffile's own reading of it (``read_cz_sem``) grows a tuple by one
    for each line it cannot name, time quadratic in their number: a 10 MB tag of blank lines
    kept ``castrig analyse`` busy for over a minute (40 000 lines: 1 s)."""
    tag = page.tags.get(34118)
    if tag is None:
        return None
    if int(tag.dtype) not in (1, 2, 6, 7) or not tag.valueoffset:  # (not bytes: tifffile's value, whatever it is)
        v = tag.value
        return v.decode("latin-1", "replace") if isinstance(v, bytes) else None if isinstance(v, dict) else str(v)
    fh = page.parent.filehandle
    with fh.lock:
        fh.seek(int(tag.valueoffset))
        raw = fh.read(min(int(tag.count), MAX_VENDOR_TAG_BYTES))
    raw = raw.replace(b"\x00", b" ")  # (NUL padding, as a C string leaves it: "2.5 nm\0" is 2.5 nm)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # (SmartSEM writes µ as the one byte 0xB5)


def _zeiss_pixel_size_texts(text: str) -> Iterator[str]:
    """The values ("543.0 pm") of the pixel size fields in a Zeiss SmartSEM tag's text, in order:
    lines ``AP_PIXEL_SIZE`` (a key, upper case) then ``Pixel Size = 543.0 pm`` (its label and
    value, after ``=`` or ``:``), read as tifffile reads them but in one pass; then any ``Image
    Pixel Size = …`` line."""
    key = None
    for line in text.splitlines():
        if line.isupper():
            key = line.lower()
        elif key:
            _, sep, value = line.partition("=")
            if not sep:
                _, sep, value = line.partition(":")
                if not sep:
                    continue
            if "pixel size" in key.replace("_", " "):
                yield value.strip()
            key = None
    m = re.search(r"Image Pixel Size\s*=\s*([^\r\n]+)", text)
    if m:
        yield m.group(1)


def vendor_pixel_size(page, path: str | Path | None = None) -> tuple[float | None, str | None]:
    """(pixel size µm, source) from an SEM's own metadata (before plain resolution tags: see
    :func:`read_micrograph`): the first of :func:`vendor_pixel_sizes`, else (None, None).

    Zeiss SmartSEM: tag 34118, "Image Pixel Size = 2.5 nm"; FEI/Thermo Fisher: tag 34682, an
    INI text whose ``[Scan] PixelWidth`` is in metres; TESCAN: the ``.hdr`` sidecar's
    ``PixelSizeX`` (metres); Hitachi: the ``.txt`` sidecar's ``PixelSize`` (nm); JEOL: the
    ``.txt`` sidecar's scale bar (:func:`sidecar_pixel_size`).
    """
    return next(vendor_pixel_sizes(page, path), (None, None))


def vendor_pixel_sizes(page, path: str | Path | None = None) -> Iterator[tuple[float, str]]:
    """Every pixel size an SEM's own metadata gives, (µm, source), in the order castrig trusts
    them: Zeiss tag 34118, FEI/Thermo tag 34682, then a sidecar. A file can carry more than one
    (an image passed through two vendors' software, a sidecar of another session beside it): the
    ones after the first are compared with it (read_micrograph's warnings), never dropped unsaid."""
    import re

    z = _zeiss_text(page)
    for val in _zeiss_pixel_size_texts(z) if z is not None else ():
        px = _length_um(val, "nm")
        if px is not None:  # (the first that is a number: "Pix Size state = calibrated" is not)
            yield px, _named("Zeiss SmartSEM tag 34118 (Image Pixel Size)", val, px)
            break
    f = _tag_text(page, 34682)
    if f is not None:
        if isinstance(f, dict):
            scan = f.get("Scan") or f.get("scan") or {}
            scan = scan if isinstance(scan, dict) else {}
            width, height = scan.get("PixelWidth"), scan.get("PixelHeight")
        else:
            m = re.search(r"\[Scan\][^\[]*?PixelWidth\s*=\s*([^\r\n]+)", str(f), re.S)
            n = re.search(r"\[Scan\][^\[]*?PixelHeight\s*=\s*([^\r\n]+)", str(f), re.S)
            width, height = (m.group(1) if m else None), (n.group(1) if n else None)
        if width is not None and (px := _length_um(str(width), "m")) is not None:
            py = _length_um(str(height), "m") if height is not None else None
            if py and px > 0 and py > 0 and abs(py / px - 1.0) > 0.01:
                raise BadInput(f"{path}: pixels are not square: FEI/Thermo tag 34682 [Scan] PixelWidth {px:.6g} µm, "
                               f"PixelHeight {py:.6g} µm; castrig measures square pixels: resample the image to equal X "
                               "and Y pixel sizes first (Fiji: Image > Scale)", file=str(path), field="PixelHeight")
            yield px, _named("FEI/Thermo tag 34682 ([Scan] PixelWidth)", width, px)
    if path is not None:
        px, src = sidecar_pixel_size(path, width_px=getattr(page, "imagewidth", None))
        if src is not None:
            yield px, src


def _named(source: str, text: object, px: float | None) -> str:
    """``source``, with the field's text when :func:`_length_um` could not read it as a length."""
    if px is not None and math.isnan(px) and not re.match(r"\s*[-+]?nan\b", str(text), re.I):
        return f"{source} = {_unreadable(str(text))}"
    return source


def _sidecar_fields(text: str) -> dict[str, str]:
    """``KEY=VALUE`` and ``KEY VALUE`` lines of a text sidecar: {KEY: VALUE}, the first of each key.
    A line at a time (linear: a ``^\\s*KEY`` regex under re.M rescanned every blank line after
    each line start, and 80 000 newlines in a .txt next to an image took 45 s, 1 MB an hour)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if not eq:  # JEOL: "$$SM_MICRON_BAR 120"
            key, value = (line.split(None, 1) + ["", ""])[:2]
        key = key.strip()
        if key and key not in fields:
            fields[key] = value.strip()
    return fields


#: the largest text sidecar read (an SEM's .txt or .hdr is a few kB); a bigger file is no sidecar
MAX_SIDECAR_BYTES = 1 << 20


def _sidecar_text(image: str | Path, side: Path) -> str | None:
    """The text of the sidecar ``side`` of ``image``, or None where there is none to read: no
    such file, a name the file system cannot hold (an image named to the 255-byte limit has no
    ``NAME.tif.hdr``: looking for one raised "File name too long", a traceback for a PNG and
    "cannot read TIFF" for a TIFF), not a regular file (a FIFO, a device, a folder), or more than
    :data:`MAX_SIDECAR_BYTES`. A sidecar that is there but cannot be read (permission denied, an
    I/O error) is BadInput naming it: read past, the image had been said to have "no pixel size"."""
    from castrig.regular import FileTooBig, NotRegularFile, read_regular

    try:
        raw = read_regular(side, max_bytes=MAX_SIDECAR_BYTES)
    except (FileNotFoundError, NotADirectoryError, NotRegularFile, FileTooBig):
        return None
    except OSError as exc:
        import errno

        if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP):
            return None
        raise BadInput(f"{image}: its sidecar {side} cannot be read ({exc.strerror or exc}) (allowed: a readable text "
                       "file, or none: move it away or give --pixel-size UM)", file=str(side), field=side.name) from None
    return raw.decode("latin-1")


def sidecar_pixel_size(path: str | Path, width_px: int | None = None) -> tuple[float | None, str | None]:
    """Pixel size from a text sidecar next to the image: TESCAN ``<name>.hdr`` (``PixelSizeX``,
    metres; ``PixelSizeY`` must agree), Hitachi ``<name>.txt`` (``PixelSize``, nm) or JEOL
    ``<name>.txt``: the scale bar's length ``$$SM_MICRON_MARKER`` (e.g. ``5um``) over its pixels
    ``$$SM_MICRON_BAR`` (older models ``$CM_…``), times ``$CM_FULL_SIZE``'s width / ``width_px``
    when the image was saved at another size than the scan's."""
    p = Path(path)
    sides = lambda ext: (p.with_suffix(ext), p.with_name(p.stem + "-tif" + ext), Path(str(p) + ext))  # noqa: E731
    read: dict[Path, dict[str, str]] = {}

    def fields(side: Path) -> dict[str, str] | None:
        if side not in read:
            text = _sidecar_text(path, side)
            if text is None:
                return None
            read[side] = _sidecar_fields(text)
        return read[side]

    for ext, key, unit, who in ((".hdr", "PixelSizeX", "m", "TESCAN"), (".txt", "PixelSize", "nm", "Hitachi")):
        for side in sides(ext):
            f = fields(side)
            if f is None or key not in f or (px := _length_um(f[key], unit)) is None:
                continue
            if key == "PixelSizeX" and "PixelSizeY" in f:
                py = _length_um(f["PixelSizeY"], unit)
                if py is not None and math.isfinite(py) and px > 0 and py > 0 and abs(py / px - 1.0) > 0.01:
                    raise BadInput(f"{path}: pixels are not square: TESCAN sidecar {side.name} PixelSizeX {px:.6g} µm, "
                                   f"PixelSizeY {py:.6g} µm; castrig measures square pixels: resample the image to equal "
                                   "X and Y pixel sizes first (Fiji: Image > Scale)", file=str(path), field="PixelSizeY")
            return px, _named(f"{who} sidecar {side.name} ({key})", f[key], px)
    for side in sides(".txt"):
        f = fields(side)
        if f is None:
            continue
        for pre in ("$$SM_", "$SM_", "$CM_"):
            bar, mark = f.get(f"{pre}MICRON_BAR"), f.get(f"{pre}MICRON_MARKER")
            if bar is None or mark is None:
                continue
            try:
                n_px = float(bar.split()[0])
            except (ValueError, IndexError):
                continue
            length = _length_um(mark, "um")
            if length is None:
                continue
            px = length / n_px if n_px else float("inf")  # a bar of 0 px: no pixel size, said so
            full = (f.get("$$CM_FULL_SIZE") or f.get("$CM_FULL_SIZE") or "").split()
            # (ASCII digits: str.isdigit() takes "²", which int() does not: a traceback)
            if len(full) >= 2 and re.fullmatch(r"[0-9]+", full[0]) and width_px and int(full[0]) > 0 and int(full[0]) != int(width_px):
                px *= int(full[0]) / int(width_px)
            return px, _named(f"JEOL sidecar {side.name} ({pre}MICRON_MARKER / {pre}MICRON_BAR)", mark, length)
    return None, None


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


#: what a path longer than the file system allows is called, with the limits (Linux)
NAME_TOO_LONG = "a name longer than the file system allows (allowed: at most 255 bytes a file or folder name, 4095 the path)"


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


#: bytes of one value of each TIFF field type (TIFF 6.0 and BigTIFF)
_TIFF_TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


def _truncated(path: str, page=None) -> str | None:
    """Why a TIFF that could not be read is incomplete, in the user's words, or None: the file
    ends inside its header, its first image directory, a value that directory points to, or the
    image data of ``page`` (tifffile said "unpack requires a buffer of 4 bytes", "corrupted IFD
    structure", "failed to read 401408 bytes, got 0")."""
    import struct

    import tifffile

    cut = "it was cut short (an incomplete copy or download?)"
    try:
        size = os.path.getsize(path)
        needs: list[tuple[int, str]] = []  # (the byte a part of the file runs to, the part)
        with open(path, "rb") as f:
            lay = _TiffLayout.of(f.read(16))
            if lay.first is None:
                return f"the file is truncated: {size} bytes, shorter than a TIFF header ({lay.header_bytes} bytes); {cut}"
            bo, big, off_fmt, cnt_fmt, entry, inline, first = (lay.bo, lay.big, lay.off_fmt, lay.cnt_fmt, lay.entry,
                                                                 lay.inline, lay.first)
            if first == 0:
                return "it holds no image (its header points to no image directory)"
            cs = struct.calcsize(cnt_fmt)
            needs.append((first + cs, "its first image directory"))
            if first + cs <= size:
                f.seek(first)
                n = struct.unpack(bo + cnt_fmt, f.read(cs))[0]
                needs.append((first + cs + n * entry + struct.calcsize(off_fmt), "its first image directory"))
                if needs[-1][0] <= size and n <= 4096:
                    raw = f.read(n * entry)
                    for e in (raw[i * entry:(i + 1) * entry] for i in range(n)):
                        tag, typ = struct.unpack(bo + "HH", e[:4])
                        count = struct.unpack(bo + ("Q" if big else "I"), e[4:12] if big else e[4:8])[0]
                        nbytes = _TIFF_TYPE_BYTES.get(typ, 0) * count
                        if nbytes > inline:  # the value is elsewhere in the file
                            at = struct.unpack(bo + off_fmt, e[12:20] if big else e[8:12])[0]
                            name = tifffile.TIFF.TAGS.get(tag)
                            needs.append((at + nbytes, f"the value of its tag {tag}" + (f" ({name})" if name else "")))
        if page is not None:
            needs += [(int(o) + int(c), "its image data") for o, c in zip(page.dataoffsets, page.databytecounts) if c]
        end, what = max(needs)
        if end > size:
            return f"the file is truncated: it ends at byte {size:,}, but {what} runs to byte {end:,}; {cut}"
    except Exception:  # noqa: BLE001 - only an explanation of a failure already met
        return None
    return None


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
        _check_directories(p)
        try:
            with _tifffile_quiet(), tifffile.TiffFile(p) as tif:
                series, skipped = _full_resolution_series(tif, p)
                page = series.keyframe if series is not None else tif.pages[0]
                declared = series if series is not None else page
                # the size the file declares, checked before a byte is decoded (decompression bombs)
                check_image_size(p, declared.shape, declared.dtype, max_pixels)
                _check_tile_size(p, page, max_pixels)
                _check_segment_bytes(p, series.pages if series is not None else [page], page)
                _check_codec_segments(p, series.pages if series is not None else [page], page)
                _check_square(p, page)
                a = declared.asarray()
                photometric = int(page.photometric)
                if (photometric in (2, 5) and int(getattr(page, "planarconfig", 1)) == 2
                        and a.ndim == 3 and a.shape[0] in (3, 4)):
                    a = np.moveaxis(a, 0, -1)  # planar RGB or CMYK (PlanarConfiguration SEPARATE)
                a, read_as = _photometric(a, page, photometric)
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
                found = [(px, src)] if px is not None else []
                found += vendor  # (every instrument's: two that disagree are said, whichever is used)
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
                sem = vsrc or next((f"{who} tag {code}" for code, who in ((34118, "Zeiss SmartSEM"), (34682, "FEI/Thermo"))
                                    if code in page.tags), None)
        except BadInput:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
            cut = _truncated(p, page)
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
                check_image_size(p, (im.height, im.width) + ((bands,) if bands > 1 else ()),
                                 np.uint16 if im.mode.startswith("I;16") else np.int32 if im.mode in ("I", "F") else np.uint8,
                                 max_pixels)
                is_png = im.format == "PNG"
                png_bytes = im.height * (1 + im.width * bands * 2)  # its rows, each behind a filter byte, at 16 bits a sample
                cmyk = im.mode == "CMYK"
                frames = _frames(im)
                # (an animated GIF, APNG or WebP: every frame was decoded, 300 of them 3.6 GB; a
                # camera's JPEG with its preview, MPO, is one photo: its first image is read)
                if frames > 1 and im.format != "MPO":
                    many = f"more than {MAX_FRAMES_COUNTED}" if frames > MAX_FRAMES_COUNTED else str(frames)
                    raise BadInput(f"{p}: holds {many} frames ({im.format}); castrig measures one image: save the "
                                   "frame to measure as an image of its own", file=p, field="frames")
                orientation = int(im.getexif().get(0x0112, 1) or 1)  # EXIF Orientation
                if im.format in ("JPEG", "MPO"):
                    _check_jpeg_scans(p)
            if cmyk:  # 4 inks, not RGBA: Pillow's conversion (a CMYK JPEG read as RGBA measured its film as pores)
                with Image.open(p, formats=PILLOW_FORMATS) as im:
                    a = np.asarray(im.convert("RGB"))
            else:
                a = iio.imread(p, plugin="pillow", index=0)
        if is_png:
            check_file_bytes(p, png_bytes, f"a {im.width} × {im.height} PNG")
            _png_whole(p)
    except BadInput:
        raise
    except Exception as exc:  # noqa: BLE001
        if type(exc).__name__ == "DecompressionBombError":  # Pillow's own limit, met first
            limit = max_image_pixels() if max_pixels is None else max_pixels
            raise BadInput(f"{p}: image too large: {_cut(str(exc))} (allowed: at most {limit / 1e6:.4g} Mpx; "
                           "raise CASTRIG_MAX_IMAGE_PIXELS for a genuine large image)", file=p, field="image size") from None
        raise BadInput(f"{p}: cannot read image ({_cut(str(exc) or type(exc).__name__)})", file=p) from None
    a = np.asarray(a)
    read_as = {"photometric": "CMYK, converted to RGB"} if cmyk else {}
    if orientation in _EXIF_TURNS and a.ndim >= 2:  # as every viewer shows it
        a = _EXIF_TURNS[orientation](a)
        read_as["orientation"] = f"EXIF orientation {orientation} applied (the image as viewers show it)"
    # PNG/JPEG/BMP carry no pixel size; an SEM's text sidecar may (JEOL saves .bmp/.jpg + .txt)
    px, src = sidecar_pixel_size(p, width_px=a.shape[1] if a.ndim >= 2 else None)
    if src:  # an SEM vendor's sidecar: it says SEM
        read_as["instrument_metadata"] = src
    if px is not None and not _usable(px):
        return _grey(a, p), None, {"pixel_size_invalid": {"value_um": f"{px:g}", "source": src}} | read_as
    return _grey(a, p), px, ({"pixel_size_source": src} if src else {}) | read_as


#: how far the frames of a GIF are counted (a file of more is said to hold "more than" this)
MAX_FRAMES_COUNTED = 1000


def _frames(im) -> int:
    """The number of frames of the Pillow image ``im``, counted to ``MAX_FRAMES_COUNTED + 1`` at
    most. A GIF says no count: Pillow's n_frames walks every frame, and 500 000 frames of 1 px
    (11 MB) took 1.5 s, a GIF as large as the file limit allows a minute, only to be refused."""
    if im.format != "GIF":
        return int(getattr(im, "n_frames", 1) or 1)
    count = 1
    try:
        while count <= MAX_FRAMES_COUNTED:
            im.seek(count)
            count += 1
    except EOFError:
        pass
    im.seek(0)
    return count


#: EXIF Orientation 2-8 -> the turn that shows the stored pixels as viewers do (rows, columns
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


#: the most scans (SOS segments) a JPEG file may hold: a progressive JPEG is written in some 6-12
#: (libjpeg's default script), but the decoder passes over the whole image for each, however few
#: bytes it holds: 20 000 copies of one scan of a 2000 × 2000 px JPEG took 12 s, and scans of a few
#: bytes each over a 100 Mpx image take hours.
MAX_JPEG_SCANS = 256


def _check_jpeg_scans(path: str | Path, segments: list[tuple[int, int]] | None = None, what: str = "",
                      numbers: list[int] | None = None) -> None:
    """BadInput if the JPEG file ``path`` (or each of its byte ranges ``segments``, (offset,
    bytes): the JPEG strips or tiles of a TIFF, ``what`` naming them, ``numbers`` their indices) holds more than
    :data:`MAX_JPEG_SCANS` scans, counted by its markers (segments skipped by their lengths,
    entropy-coded data searched for the next marker) before anything is decoded."""
    import mmap

    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            for k, (start, count) in enumerate(segments if segments is not None else [(0, len(mm))]):
                if _jpeg_scans(mm, start, min(start + count, len(mm))) > MAX_JPEG_SCANS:
                    where = f" in {what} {(numbers[k] if numbers else k) + 1}" if what else ""
                    raise BadInput(f"{path}: holds more than {MAX_JPEG_SCANS} JPEG scans{where} (allowed: at most "
                                   f"{MAX_JPEG_SCANS}; a progressive JPEG has about 10): the file is damaged or crafted, "
                                   "not decoded", file=str(path), field="JPEG scans")


#: a JPEG marker that is no stuffing (FF 00), restart (FF D0-D7) or fill byte (FF FF): searched
#: for by the regular expression engine (a loop over each FF of the entropy-coded data in Python
#: took 2 s per 20 MB of FF 00)
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _jpeg_scans(mm, start: int, end: int) -> int:
    """The scans (SOS markers) of the JPEG data in ``mm[start:end]``, counted to
    ``MAX_JPEG_SCANS + 1`` at most: markers found by :data:`_JPEG_MARKER`, those with a length
    (all but SOI, EOI and TEM) skipped by it."""
    i, scans = start + 2, 0
    while i < end - 1:
        m = _JPEG_MARKER.search(mm, i, end)
        if m is None:
            break
        j, code = m.start(), mm[m.start() + 1]
        if code in (0x01, 0xD8, 0xD9):  # TEM, SOI, EOI (an MPO's next image follows: its scans count too)
            i = j + 2
            continue
        if code == 0xDA:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                break
        i = j + 2 + (int.from_bytes(mm[j + 2 : j + 4], "big") if j + 4 <= end else 0)
    return scans


#: what a PNG, JPEG or WebP file may hold beyond its pixels' own bytes: an ICC profile, EXIF, text
MAX_METADATA_BYTES = 64 << 20


def check_file_bytes(path: str | Path, image_bytes: int, what: str) -> None:
    """BadInput unless the file ``path`` holds at most ``image_bytes`` (the most its pixels take,
    uncompressed) and :data:`MAX_METADATA_BYTES`. Pillow reads a WebP file whole when it opens it,
    and the PNG check (:func:`_png_whole`) read the whole file: a 256 × 256 PNG or WebP followed by
    3 GB (sparse: no disk) took 17 s and 41 s, and as many GB of memory, to measure it."""
    size = os.path.getsize(path)
    cap = int(image_bytes) + MAX_METADATA_BYTES
    if size > cap:
        raise BadInput(f"{path}: file too large: {size:,} bytes, more than {what} needs ({int(image_bytes):,} bytes of "
                       f"pixels uncompressed and {MAX_METADATA_BYTES >> 20} MiB of metadata) (allowed: at most {cap:,} "
                       "bytes; data appended to the image?)", file=str(path), field="file size")


def _png_whole(p: str | Path) -> None:
    """Refuse a PNG whose image data stops short of its declared size. Pillow fills the missing
    rows with black when the compressed stream ends cleanly (2 rows written of a declared
    9000 × 9000: measured as a black micrograph, exit 0); libpng, the reference decoder, says
    "Not enough image data"."""
    import imagecodecs

    try:
        imagecodecs.png_decode(Path(p).read_bytes())
    except imagecodecs.PngError as exc:
        raise BadInput(f"{p}: cannot read image (PNG: {_cut(str(exc))}; the file stops short of its declared "
                       "size?)", file=p) from None


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
