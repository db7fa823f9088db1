"""What a file castrig's readers do not open is, told by its first bytes, for the refusal to say.

Pillow's own words for a file it cannot open, "cannot identify image file", named neither the
format the file is in nor those castrig reads: a 12-bit JPEG, a JPEG 2000, an AVIF, a Zeiss CZI
all said the same. Only the first bytes are read (a frame header of a JPEG).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["IMAGE_FORMATS_READ", "unread_kind"]

#: the image formats :func:`castrig.tiffio.read_micrograph` reads, as a message lists them
IMAGE_FORMATS_READ = "TIFF, PNG, 8-bit JPEG, BMP, GIF, WebP, PPM/PGM"

#: (offset, first bytes, what the file is)
_MAGIC = (
    (0, b"\x00\x00\x00\x0cjP  \r\n\x87\n", "a JPEG 2000 image (JP2)"),
    (0, b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
    (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n", "a JPEG XL image"),
    (0, b"\xff\x0a", "a JPEG XL codestream"),
    (0, b"ZISRAWFILE", "a Zeiss CZI file"),
    (0, b"%PDF", "a PDF document"),
    (0, b"%!PS", "a PostScript document"),
    (128, b"DICM", "a DICOM file"),
)

#: the major brands of an ISO media file (``ftyp`` at byte 4) that hold a HEIF or AVIF image
_HEIF_BRANDS = {b"avif": "an AVIF image", b"avis": "an AVIF image sequence", b"heic": "a HEIC image",
                b"heix": "a HEIC image", b"mif1": "a HEIF image", b"msf1": "a HEIF image sequence"}


def unread_kind(path: str | Path) -> str | None:
    """What the file ``path`` is ("a 12-bit JPEG", "an AVIF image"...) when its first bytes say
    a format castrig does not read, else None."""
    from castrig.jpegdata import jpeg_frame

    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)  # (a JPEG's frame header follows its EXIF, ICC...: within 64 kB here)
    except OSError:
        return None
    if head[4:8] == b"ftyp":
        return _HEIF_BRANDS.get(head[8:12])
    for at, magic, what in _MAGIC:
        if head[at:at + len(magic)] == magic:
            return what
    if head[:3] == b"\xff\xd8\xff":
        frame = jpeg_frame(head)
        if frame is not None and frame[1] != 8:
            lossless = " lossless" if frame[0] in (0xC3, 0xC7, 0xCB, 0xCF) else ""
            return f"a {frame[1]}-bit{lossless} JPEG"
    return None
