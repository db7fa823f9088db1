"""What a micrograph file declares, checked before anything is decoded.

A hostile or broken file costs what it *declares*, not what it holds: a 2 MB TIFF declaring
46000² pixels, a strip whose own JPEG header says 60000², a byte count of 3 GB in a sparse file,
millions of strips, a tag of gigabytes, a JPEG of thousands of scans, a PNG followed by gigabytes.
Each is refused here (a BadInput naming the file and the limit) before tifffile or Pillow spends
the memory or the time: the pixel limit (:func:`max_image_pixels`, ``$CASTRIG_MAX_IMAGE_PIXELS``),
TIFF directories read by castrig itself (:func:`check_directories`), each compressed strip's or
tile's own header (:func:`check_codec_segments`), its byte count (:func:`check_segment_bytes`),
a JPEG's scans (:func:`check_jpeg_scans`) and a file's bytes against its image
(:func:`check_file_bytes`). :func:`castrig.tiffio.read_micrograph` calls them in that order.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from castrig.errors import BadInput


DEFAULT_MAX_IMAGE_PIXELS = 100_000_000


MAX_BYTES_PER_PIXEL = 4  # decoded: RGBA uint8 or float32 grey at the full pixel limit (400 MB at 100 Mpx)


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


#: the most pages (image directories) a TIFF may hold: a micrograph file holds one image, perhaps
#: with a thumbnail or a few other views. Looked at only this far: tifffile's sorting of pages into
#: images takes time quadratic in their number (40,000 pages of 16 × 16 px, 20 MB: over 2 minutes).
MAX_TIFF_PAGES = 256


@dataclass(frozen=True)
class TiffLayout:
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
    def of(cls, head: bytes) -> "TiffLayout":
        """From the file's first 16 bytes (fewer when the file is shorter)."""
        import struct

        big = head[2:4] in (b"+\x00", b"\x00+")
        bo = "<" if head[:2] == b"II" else ">"
        n = 16 if big else 8
        off_fmt = "Q" if big else "I"
        first = struct.unpack(bo + off_fmt, head[8:16] if big else head[4:8])[0] if len(head) >= n else None
        return cls(bo, big, n, off_fmt, "Q" if big else "H", 20 if big else 12, 8 if big else 4, first)


def tiff_size_px(path: str | Path) -> tuple[int, int]:
    """(width, height) in px of the first image of the TIFF ``path``, from its header and first
    directory only (at most 4096 entries: some 80 kB read, whatever the file declares), or
    BadInput saying why not. tifffile, opening the file for this, read every tag value whole (a
    planted TIFF's 3 GB tag took `castrig status` and the served pages seconds and GBs)."""
    import struct

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(16)
        if head[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            raise BadInput(f"{path}: not a TIFF (its first bytes)", file=str(path))
        lay = TiffLayout.of(head)
        found = _directory_at(f, lay, size, lay.first or 0)
    if found is None:
        raise BadInput(f"{path}: its first image directory is cut short, outside the file or of over 4096 entries",
                       file=str(path))
    entries, n, px = found[0], len(found[0]) // lay.entry, {}
    for e in (entries[i * lay.entry:(i + 1) * lay.entry] for i in range(n)):
        tag, typ = struct.unpack(lay.bo + "HH", e[:4])
        if tag in (256, 257) and typ in (3, 4, 16):  # ImageWidth, ImageLength: SHORT, LONG or LONG8
            value = e[12:20] if lay.big else e[8:12]
            fmt = {3: "H", 4: "I", 16: "Q"}[typ]
            px[tag] = struct.unpack(lay.bo + fmt, value[:struct.calcsize(fmt)])[0]
    if 256 not in px or 257 not in px:
        raise BadInput(f"{path}: its first image directory gives no width and height (TIFF tags 256, 257)",
                       file=str(path))
    return int(px[256]), int(px[257])


def _directory_at(f, lay: TiffLayout, size: int, offset: int) -> tuple[bytes, int] | None:
    """(the entries of the image directory at ``offset``, the offset of the next one in its
    chain), or None: an offset outside the file, a cut, or a count that is no directory's (over
    4096: tifffile's bound too). The file's position is left after the entries."""
    import struct

    cnt, off = struct.calcsize(lay.cnt_fmt), struct.calcsize(lay.off_fmt)
    if not 0 < offset < size:
        return None
    f.seek(offset)
    raw = f.read(cnt)
    if len(raw) < cnt:
        return None
    n = struct.unpack(lay.bo + lay.cnt_fmt, raw)[0]
    if n > 4096:
        return None
    entries = f.read(n * lay.entry)
    raw = f.read(off)
    return entries, (struct.unpack(lay.bo + lay.off_fmt, raw)[0] if len(raw) == off else 0)


def _directories(f, lay: TiffLayout, size: int) -> Iterator[bytes]:
    """The entries (bytes) of each image directory in the chain of the TIFF open as ``f``, in
    order, read here rather than by tifffile; the chain ends at a loop back to a directory seen,
    an offset outside the file, a cut, or a count that is no directory's (:func:`_directory_at`)."""
    offset = lay.first or 0
    seen: set[int] = set()
    while offset not in seen:
        seen.add(offset)
        found = _directory_at(f, lay, size, offset)
        if found is None:
            return
        entries, offset = found
        yield entries


def _sub_directories(f, lay: TiffLayout, size: int, entries: bytes) -> list[int]:
    """The offsets a directory's SubIFDs tag (330: its sub-images, a pyramid's levels) lists;
    tifffile reads the directory at each as it sorts a file's pages into images."""
    import struct

    for i in range(len(entries) // lay.entry):
        e = entries[i * lay.entry:(i + 1) * lay.entry]
        tag, typ = struct.unpack(lay.bo + "HH", e[:4])
        if tag != 330:
            continue
        count = struct.unpack(lay.bo + ("Q" if lay.big else "I"), e[4:12] if lay.big else e[4:8])[0]
        fmt = "Q" if typ in (16, 18) else "I"
        count = min(count, MAX_TIFF_PAGES + 1)  # (more are refused: counted no further)
        nbytes = struct.calcsize(fmt) * count
        value = e[12:20] if lay.big else e[8:12]
        if nbytes > lay.inline:
            f.seek(struct.unpack(lay.bo + lay.off_fmt, value)[0])
            value = f.read(nbytes)
        return list(struct.unpack(f"{lay.bo}{len(value) // struct.calcsize(fmt)}{fmt}", value[:nbytes]))
    return []


def count_pages(path: str, limit: int) -> int:
    """The number of pages (image directories) in the chain of a TIFF, counted up to ``limit``:
    read here, not by tifffile, whose ``pages[n]`` of a chain that loops back on itself returns
    its first page again (a file that is one page and a loop, not ``n`` pages)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return sum(1 for _ in itertools.islice(_directories(f, TiffLayout.of(f.read(16)), size), limit))


#: the most strips or tiles one image may be cut into: a 100 Mpx image in 16 × 16 px tiles (the
#: smallest TIFF allows) is 390 625 of them. tifffile reads and decodes them one by one (a million: 2 s): a
#: 1 × 20 000 000 px image in one-row strips (160 MB of offsets, a sparse file) took 45 s and 4 GB.
MAX_TIFF_SEGMENTS = 1 << 19


#: the largest value one TIFF tag may hold (metadata: a description, an ICC profile, a vendor's
#: text, ImageJ's overlays; a Zeiss tag is some 30 kB). tifffile reads some tags whole as it opens
#: a file: an ImageDescription declaring 1.5 GB (a sparse file) took 1.5 GB and 7 s, and was measured.
MAX_TAG_BYTES = 64 << 20


def check_directories(path: str) -> None:
    """BadInput if an image directory of the TIFF ``path`` (of the first :data:`MAX_TIFF_PAGES`
    in its chain, and the sub-images their SubIFDs tags list) declares more than
    :data:`MAX_TIFF_SEGMENTS` strip or tile offsets or byte counts, or a tag value of more than
    :data:`MAX_TAG_BYTES`; or all of them together more than :data:`MAX_TIFF_SEGMENTS` strips or
    tiles or 4 × :data:`MAX_TAG_BYTES`; or the file lists more than :data:`MAX_TIFF_PAGES`
    sub-images. Read from the directories' entries before tifffile opens the file: tifffile reads
    such arrays and texts whole as it opens it, whatever their size, a SubIFD's too (one
    declaring 100 000 000 strips, in a sparse file, took 2 GB and 4 s; the main image was measured)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        lay = TiffLayout.of(f.read(16))
        totals = [0, 0]  # strips or tiles, tag bytes (over all the directories: 256 of them, each just within the bounds, are 256 times more)
        subs = 0  # (the sub-images listed so far)
        for k, entries in enumerate(itertools.islice(_directories(f, lay, size), MAX_TIFF_PAGES + 1)):  # (each read where it is)
            _check_entries(path, lay, entries, totals, f"{k + 1} image directories and {subs} sub-images")
            offsets = _sub_directories(f, lay, size, entries)
            if subs + len(offsets) > MAX_TIFF_PAGES:
                raise BadInput(f"{path}: lists more than {MAX_TIFF_PAGES} sub-images (TIFF tag SubIFDs) (allowed: at most "
                               f"{MAX_TIFF_PAGES}); the file is damaged or crafted, not read", file=path, field="SubIFDs")
            for j, offset in enumerate(offsets):
                found = _directory_at(f, lay, size, offset)
                subs += 1
                if found is not None:
                    _check_entries(path, lay, found[0], totals, f"{k + 1} image directories and {subs} sub-images",
                                   what=f"sub-image {j + 1} (TIFF tag SubIFDs of image directory {k + 1})")


def _check_entries(path: str, lay: TiffLayout, entries: bytes, totals: list[int], where: str, what: str = "image") -> None:
    """The bounds of :func:`check_directories` on one directory's ``entries``, ``totals`` (strips
    or tiles, tag bytes) counted on; ``where``: how far the walk is, ``what``: whose directory."""
    import struct

    bo, entry, big = lay.bo, lay.entry, lay.big
    for i in range(len(entries) // entry):
        e = entries[i * entry:(i + 1) * entry]
        tag, typ = struct.unpack(bo + "HH", e[:4])
        count = struct.unpack(bo + ("Q" if big else "I"), e[4:12] if big else e[4:8])[0]
        if tag in (273, 279, 324, 325) and count > MAX_TIFF_SEGMENTS:  # Strip/Tile Offsets and ByteCounts
            import tifffile

            name = tifffile.TIFF.TAGS.get(tag, str(tag))
            raise BadInput(f"{path}: its {what} is cut into {count:,} pieces (TIFF tag {name}) (allowed: at "
                           f"most {MAX_TIFF_SEGMENTS:,} strips or tiles); save it again with larger strips "
                           "or tiles", file=path, field=name)
        nbytes = _TIFF_TYPE_BYTES.get(typ, 1) * count
        if nbytes > MAX_TAG_BYTES:
            import tifffile

            name = tifffile.TIFF.TAGS.get(tag, str(tag))
            in_sub = "" if what == "image" else f" in its {what}"
            raise BadInput(f"{path}: its TIFF tag {tag} ({name}){in_sub} declares a value of {nbytes:,} bytes (allowed: "
                           f"at most {MAX_TAG_BYTES:,}); the file is damaged or crafted, not read", file=path,
                           field=name)
        totals[0] += count if tag in (273, 324) else 0
        totals[1] += nbytes
        if totals[0] > MAX_TIFF_SEGMENTS or totals[1] > 4 * MAX_TAG_BYTES:
            said = (f"its images are cut into more than {MAX_TIFF_SEGMENTS:,} strips or tiles in all" if
                    totals[0] > MAX_TIFF_SEGMENTS else f"its tags declare more than {4 * MAX_TAG_BYTES:,} bytes in all")
            raise BadInput(f"{path}: {said} ({where}) (allowed: at most "
                           f"{MAX_TIFF_SEGMENTS:,} strips or tiles and {4 * MAX_TAG_BYTES:,} bytes of tags in a "
                           "file); the file is damaged or crafted, not read", file=path, field="pages")


#: TIFF compressions whose data is an image of its own (JPEG, JPEG 2000, PNG, WebP), decoded to
#: the size the data's own header declares, not the strip's or tile's: checked segment by segment
#: (:func:`check_codec_segments`) before anything is decoded.
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


def check_tile_size(path: str, page, max_pixels: int | None) -> None:
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


def check_segment_bytes(path: str, pages, keyframe) -> None:
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


def check_empty_segments(path: str, pages, keyframe) -> None:
    """BadInput when a strip or tile of the image holds no data (its offset or byte count 0):
    tifffile reads it as black (TIFF's "sparse" segments), so a file whose writer stopped before
    it filled them in was measured as half black: opening 0.63 for 0.27, exit 0, nothing said."""
    kind = "tile" if getattr(keyframe, "is_tiled", False) else "strip"
    empty = total = 0
    first = None
    for page in pages:
        if page is None:
            continue
        for k, (offset, count) in enumerate(zip(page.dataoffsets, page.databytecounts)):
            total += 1
            if not offset or not count:
                empty += 1
                first = k if first is None else first
    if empty:
        field = "StripByteCounts" if kind == "strip" else "TileByteCounts"
        raise BadInput(f"{path}: {empty} of its {total} {kind}s hold no data (the first: {kind} {first + 1}, its offset or "
                       f"{field} 0), which a reader shows as black (allowed: every {kind} its data); the file is "
                       "incomplete (its writer stopped?) or damaged, not measured", file=path, field=field)


def check_codec_segments(path: str, pages, keyframe) -> None:
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
        check_jpeg_scans(path, ordered, kind, [ranges[r] for r in ordered])
    with open(path, "rb") as f:
        for offset, count in ordered:
            hw = _segment_size(f, offset, count, compression)
            if hw is not None and (hw[0] > seg_h + _CODEC_PAD_PX or hw[1] > seg_w + _CODEC_PAD_PX):
                said = "no image size castrig can find" if hw[0] >= 1 << 32 else f"{hw[1]} × {hw[0]} px"
                raise BadInput(f"{path}: its {_CODEC_NAMES[compression]} data declares {said} in {kind} "
                               f"{ranges[(offset, count)] + 1} (allowed: at most the {kind}'s {seg_w} × {seg_h} px); "
                               "the file is damaged or crafted, not decoded", file=path, field="Compression")


#: bytes of one value of each TIFF field type (TIFF 6.0 and BigTIFF)
_TIFF_TYPE_BYTES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


def cut_short(path: str, page=None) -> str | None:
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
            lay = TiffLayout.of(f.read(16))
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


#: how far the frames of a GIF are counted (a file of more is said to hold "more than" this)
MAX_FRAMES_COUNTED = 1000


def count_frames(im) -> int:
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


#: the most scans (SOS segments) a JPEG file may hold: a progressive JPEG is written in some 6-12
#: (libjpeg's default script), but the decoder passes over the whole image for each, however few
#: bytes it holds: 20 000 copies of one scan of a 2000 × 2000 px JPEG took 12 s, and scans of a few
#: bytes each over a 100 Mpx image take hours.
MAX_JPEG_SCANS = 256


def check_jpeg_scans(path: str | Path, segments: list[tuple[int, int]] | None = None, what: str = "",
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
    and the PNG check (then a second decode) read the whole file: a 256 × 256 PNG or WebP followed by
    3 GB (sparse: no disk) took 17 s and 41 s, and as many GB of memory, to measure it."""
    size = os.path.getsize(path)
    cap = int(image_bytes) + MAX_METADATA_BYTES
    if size > cap:
        raise BadInput(f"{path}: file too large: {size:,} bytes, more than {what} needs ({int(image_bytes):,} bytes of "
                       f"pixels uncompressed and {MAX_METADATA_BYTES >> 20} MiB of metadata) (allowed: at most {cap:,} "
                       "bytes; data appended to the image?)", file=str(path), field="file size")


#: samples per pixel of each PNG colour type (grey, RGB, palette index, grey+alpha, RGBA)
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


@dataclass(frozen=True)
class PngHeader:
    """What a PNG's IHDR chunk declares."""

    width: int
    height: int
    bit_depth: int
    colour_type: int

    @property
    def samples(self) -> int:
        return _PNG_SAMPLES.get(self.colour_type, 1)


def png_header(path: str | Path) -> PngHeader | None:
    """The IHDR of the PNG ``path`` (its first chunk, as the format requires), or None when the
    file does not start as a PNG does."""
    import struct

    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 29 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    w, h, depth, colour = struct.unpack(">IIBB", head[16:26])
    return PngHeader(w, h, depth, colour)


#: how many chunks of a PNG are walked to find an eXIf chunk after its image data (libpng writes
#: 8 kB IDAT chunks: some 50 000 in 400 MB)
MAX_PNG_CHUNKS_WALKED = 1 << 17


def png_exif_after_data(path: str | Path) -> bytes | None:
    """The data of an eXIf chunk that follows a PNG's image data (IDAT), or None: found by the
    chunks' headers alone (each 8 bytes, the data skipped), :data:`MAX_PNG_CHUNKS_WALKED` of them
    at most, a chunk of more than :data:`MAX_METADATA_BYTES` not read. Pillow finds such a chunk
    only by decoding the whole image."""
    import struct

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        at, seen_data = 8, False
        for _ in range(MAX_PNG_CHUNKS_WALKED):
            f.seek(at)
            head = f.read(8)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IEND" or at + 12 + length > size:
                return None
            seen_data |= kind == b"IDAT"
            if kind == b"eXIf" and seen_data:
                return f.read(length) if length <= MAX_METADATA_BYTES else None
            at += 12 + length
    return None
