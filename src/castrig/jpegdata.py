"""Whether a JPEG's entropy-coded data codes every block of its image.

A baseline JPEG cut short, with an end marker (EOI) added, is decoded by libjpeg as far as its
data goes; the blocks past the cut are filled with flat grey and libjpeg only warns ("Corrupt
JPEG data: premature end of data segment"), which Pillow and imagecodecs drop and OpenCV only
prints on stderr, none of them raising or returning it. Measured,
a twin's top view cut in half read opening 0.564 for 0.608, exit 0, no flag. The scans' headers
(:mod:`castrig.jpegscans`) are all there in such a file: only decoding its data tells.

libjpeg-turbo itself tells, through simplejpeg (``strict``: a warning is an error), decoding at
1/8 scale (every Huffman code is still read; the inverse DCT is one term a block): ~35 ms of CPU
for a 4096² micrograph of 3.6 MB, ~110 ms for 20 MB of noise, against Pillow's 55-250 ms decode.

Data overwritten with zeros, the end marker kept, decodes with no lost-data warning: libjpeg takes
the zeros for image and says only that some were left over (:func:`_refuse_zeros_decoded`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from castrig.errors import BadInput

__all__ = ["check_jpeg_data", "jpeg_frame", "LOST_DATA_WARNINGS"]

#: libjpeg's warnings that say image data was lost (its others, "extraneous bytes before
#: marker", a bad ICC profile, an unknown Adobe transform, leave every block decoded)
LOST_DATA_WARNINGS = ("premature end of data segment", "premature end of jpeg file", "bad huffman code",
                      "bad arithmetic code", "instead of rst")


#: frame markers (SOF) of the JPEGs libjpeg-turbo decodes at 8 bits: Huffman-coded sequential,
#: progressive and lossless, and their arithmetic-coded kin
_DCT_FRAMES = (0xC0, 0xC1, 0xC2, 0xC9, 0xCA)
_LOSSLESS_FRAMES = (0xC3, 0xCB)


def jpeg_frame(data: bytes) -> tuple[int, int] | None:
    """(frame marker, sample precision in bits) of the JPEG ``data``'s first frame header, found by
    walking the segments before it (each with its length), or None where there is none."""
    i = 2
    while i + 4 <= len(data) and data[i] == 0xFF:
        code = data[i + 1]
        if code == 0xFF:  # fill byte
            i += 1
            continue
        if 0xC0 <= code <= 0xCF and code not in (0xC4, 0xC8, 0xCC):
            return (code, data[i + 4]) if i + 4 < len(data) else None
        if code in (0xD9, 0xDA):  # an end or a scan before any frame header
            return None
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
    return None


def _decode(data: bytes, strict: bool, lossless: bool) -> np.ndarray:
    """The JPEG ``data`` decoded by libjpeg-turbo, at 1/8 scale (one pixel a block) unless it is
    lossless (simplejpeg 1.9 crashed, SIGSEGV, scaling a lossless JPEG)."""
    import simplejpeg

    stored = simplejpeg.decode_jpeg_header(data)[2]
    scale = {} if lossless else {"min_height": 1, "min_width": 1}
    # (lossless: no colour conversion either, "Unsupported color conversion request")
    colorspace = ("CMYK" if stored in ("CMYK", "YCCK") else "GRAY" if stored == "Gray" or not lossless else "RGB")
    return simplejpeg.decode_jpeg(data, colorspace=colorspace, fastdct=True, strict=strict, **scale)


def _flat_rows_from(data: bytes, height_px: int, lossless: bool) -> int | None:
    """The first row of the image from which every row is libjpeg's fill (flat mid-grey: the
    blocks it had no data for), or None when the last rows are not all fill."""
    try:
        small = _decode(data, strict=False, lossless=lossless)
    except (ValueError, RuntimeError):
        return None
    fill = np.all(small.reshape(small.shape[0], -1) == 128, axis=1)
    if not fill[-1]:
        return None
    first = len(fill) - int(np.argmin(fill[::-1])) if not fill.all() else 0
    return int(round(first * height_px / len(fill)))


def check_jpeg_data(path: str | Path) -> None:
    """BadInput when libjpeg-turbo, decoding the first image of the JPEG file ``path``, warns that
    its data ends before every block is coded (or is corrupt): libjpeg fills what is missing
    with grey, the measurement would count it as film."""
    data = Path(path).read_bytes()
    frame = jpeg_frame(data)
    if frame is None or frame[1] != 8 or frame[0] not in _DCT_FRAMES + _LOSSLESS_FRAMES:
        return  # (12-bit, hierarchical, no frame header: Pillow's decode decides)
    lossless = frame[0] in _LOSSLESS_FRAMES
    try:
        _decode(data, strict=True, lossless=lossless)
    except ValueError as exc:  # (simplejpeg's: libjpeg-turbo's error or warning, its own words)
        said = str(exc)
        if not any(w in said.lower() for w in LOST_DATA_WARNINGS):
            _refuse_zeros_decoded(path, data, said, lossless)
            return  # unsupported here (12-bit, lossless...) or harmless: Pillow's decode decides
        import simplejpeg

        height = simplejpeg.decode_jpeg_header(data)[0]
        first = _flat_rows_from(data, height, lossless)
        where = (f"; rows {first}-{height - 1} of its {height} ({(height - first) / height:.0%} of the image) "
                 "hold no data" if first is not None else "")
        raise BadInput(f"{path}: its JPEG data ends before every block of the image is coded (libjpeg: "
                       f"{said!r}{where}) (allowed: a complete JPEG); the file was cut short (an incomplete "
                       "download or copy?) and is not measured: libjpeg would fill what is missing with grey",
                       file=str(path), field="JPEG data") from None


#: Zero bytes of a scan's data that libjpeg decoded as image, beyond which a file whose data ends
#: in zeros left over is called overwritten (a real scan's last bytes may be zero by chance).
ZEROS_DECODED_MIN_BYTES = 16
_LEFT_OVER = re.compile(r"(\d+) extraneous bytes before marker 0xd9", re.IGNORECASE)


def _refuse_zeros_decoded(path: str | Path, data: bytes, said: str, lossless: bool) -> None:
    """BadInput when the end of the JPEG's scan data was overwritten with zero bytes (a copy or a
    disk that lost the file's data, its end marker kept): libjpeg decodes zeros as image -- with
    optimised Huffman tables as flat blocks, one grey after another -- and warns only of the
    zeros it had no blocks left for, "N extraneous bytes before marker 0xd9", which is no lost
    data in a file a tool padded. The sign: those N bytes are zeros, and so are more than
    :data:`ZEROS_DECODED_MIN_BYTES` of the bytes before them, which it decoded. An encoder ends
    its data with 1-bits and writes no byte it does not decode, so a whole JPEG -- one with a
    flat black band too, coded as zero bits with optimised tables -- has nothing left over."""
    m = _LEFT_OVER.search(said)
    eoi = data.rfind(b"\xff\xd9")
    if m is None or eoi < 0:
        return
    left_over = int(m.group(1))
    start = eoi
    while start > 0 and data[start - 1] == 0:
        start -= 1
    zeros = eoi - start
    if left_over > zeros or zeros < ZEROS_DECODED_MIN_BYTES:
        return  # (what is left over is not zeros)
    import simplejpeg

    height = simplejpeg.decode_jpeg_header(data)[0]
    if zeros - left_over < ZEROS_DECODED_MIN_BYTES:
        # all skipped: with restart markers libjpeg looks for the next one past the zeros, finds
        # the end marker and fills the blocks after with grey (strict, it stopped at the first
        # warning, before saying so). Zeros a tool padded after the whole data: without what it
        # left over the data codes every block; without zeros that overwrote data, it does not
        try:
            _decode(data[:eoi - left_over] + b"\xff\xd9", strict=True, lossless=lossless)
            return
        except ValueError as exc:
            if not any(w in str(exc).lower() for w in LOST_DATA_WARNINGS):
                return
        first = _flat_rows_from(data, height, lossless)
        where = (f"; rows {first}-{height - 1} of its {height} ({(height - first) / height:.0%} of the image) hold no "
                 "data" if first is not None else "")
        raise BadInput(f"{path}: its JPEG data ends in {zeros} zero bytes before its end marker, and the data before "
                       f"them does not code every block (libjpeg: {said!r}{where}) (allowed: a complete JPEG); the "
                       "file's data was overwritten with zeros (a copy or a disk that lost it?) and is not measured: "
                       "libjpeg would fill what is missing with grey", file=str(path), field="JPEG data")
    first = _flat_rows_from(data[:start] + b"\xff\xd9", height, lossless)
    where = (f"; rows {first}-{height - 1} of its {height} ({(height - first) / height:.0%} of the image) were decoded "
             "from them" if first is not None else "")
    raise BadInput(f"{path}: its JPEG data ends in {zeros} zero bytes before its end marker, {zeros - left_over} of them "
                   f"decoded as image and {left_over} left over (libjpeg: {said!r}{where}) (allowed: a complete JPEG); "
                   "the file's data was overwritten with zeros (a copy or a disk that lost it?) and is not measured",
                   file=str(path), field="JPEG data")
