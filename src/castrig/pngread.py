"""PNG files read for :func:`castrig.tiffio.read_micrograph`: decoded once, by libpng.

Pillow reads a PNG's header (its size, frames, text); libpng (imagecodecs) decodes its pixels, at
the file's own bit depth, and refuses image data that stops short of its declared size. Pillow's
own decode, an array copy of it and a second whole decode by libpng to catch short data took
1.6 GB at the peak for a 100 Mpx RGBA PNG, and a 16-bit one was counted at 8 bits a sample.
"""

from __future__ import annotations

import numpy as np

from castrig.errors import BadInput
from castrig.image_bounds import png_exif_after_data, png_header

__all__ = ["png_decoded", "png_decoded_dtype", "png_decoded_shape", "png_late_exif", "png_phys", "PNG_MAX_SIDE_PX",
           "PHYS_SOURCE"]


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def png_late_exif(p: str):
    """The EXIF of an eXIf chunk after a PNG's image data (:func:`png_exif_after_data`), or {}."""
    from PIL import Image

    data = png_exif_after_data(p)
    exif = Image.Exif()
    if data:
        exif.load(b"Exif\x00\x00" + data)
    return exif


def png_decoded_dtype(p: str) -> type:
    """uint16 for a 16-bit PNG, else uint8: the samples libpng decodes it to."""
    header = png_header(p)
    return np.uint16 if header is not None and header.bit_depth == 16 else np.uint8


def png_decoded_shape(p: str, trns: bool) -> tuple[int, ...]:
    """The array libpng decodes the PNG ``p`` to: a palette to RGB, and a tRNS chunk to one more
    (alpha) channel. Pillow calls a 16-bit RGBA PNG "RGBA", 8 bits a sample: counted so, 100 Mpx
    passed the size check and its decode took 800 MB."""
    header = png_header(p)
    if header is None:
        return (0,)
    samples = 3 if header.colour_type == 3 else header.samples
    samples += 1 if trns and header.colour_type in (0, 2, 3) else 0
    return (header.height, header.width) + ((samples,) if samples > 1 else ())


#: libpng's own limit on a PNG's width and height (its user limits' default): beyond it, its
#: "Invalid IHDR data" had been said as "the file stops short of its declared size?"
PNG_MAX_SIDE_PX = 1_000_000


def png_decoded(p: str) -> np.ndarray:
    """The pixels of the PNG ``p``, decoded once by libpng (imagecodecs) from the file's bytes
    (read, not mapped: a file cut shorter while mapped kills the process with SIGBUS): at the
    file's own bit depth, a palette through its colours. libpng refuses image data
    that stops short of its declared size, where Pillow filled the missing rows with black when
    the compressed stream ended cleanly (2 rows written of a declared 9000 × 9000: measured as a
    black micrograph, exit 0). Decoded by Pillow (its image, a copy, then the array) and again by
    libpng for that check, a 100 Mpx RGBA PNG took 1.6 GB at the peak; now the file's bytes and the
    array's."""
    import imagecodecs

    header = png_header(p)
    if header is not None and max(header.width, header.height) > PNG_MAX_SIDE_PX:
        raise BadInput(f"{p}: a PNG of {header.width} × {header.height} px: longer than {PNG_MAX_SIDE_PX:,} px a side, "
                       f"which libpng, castrig's PNG decoder, does not read (allowed: at most {PNG_MAX_SIDE_PX:,} px a "
                       "side); save it as TIFF", file=p, field="image size")
    with open(p, "rb") as f:
        data = f.read()
    try:
        return imagecodecs.png_decode(data)
    except imagecodecs.PngError as exc:
        raise BadInput(f"{p}: cannot read image (PNG: {_cut(str(exc))}; the file stops short of its declared "
                       "size or is damaged)", file=p) from None


#: where a PNG's pixel size came from, as results and messages say it
PHYS_SOURCE = "PNG pHYs chunk"


def png_phys(p: str, info: dict) -> tuple[float | None, dict | None]:
    """(pixel size in µm, what is wrong with it) from a PNG's pHYs chunk, as Pillow read it from
    the chunks before the image data (``info["dpi"]``: its pixels per metre × 0.0254; ``aspect``
    where the unit is not given). A pHYs in metres is a resolution as TIFF's tags are, read the
    same way: an image program's print resolution (600 dpi and the like: 42.3 µm, in range) is no
    calibration, a screen's 72 or 96 dpi (353, 265 µm) is left to the range check, which refuses
    it naming the chunk. Pixels that are not square are refused, as a TIFF's are. ``castrig
    analyse`` had ignored the chunk (a PNG of 0.25 µm pixels: "no pixel size in the file") while
    the folder camera used it."""
    from castrig.tiffio import PRINT_DPI

    key = "dpi" if "dpi" in info else "aspect" if "aspect" in info else None
    if key is None:
        return None, None
    x, y = (float(v) for v in info[key])
    unit = "dpi" if key == "dpi" else "pixels per unit (no unit)"
    if x > 0 and y > 0 and abs(y / x - 1.0) > 0.01:
        raise BadInput(f"{p}: pixels are not square: its pHYs chunk says {x:.6g} {unit} across, {y:.6g} down "
                       f"(aspect {x / y:.4g}); castrig measures square pixels: resample the image to equal X and Y "
                       "pixel sizes first (Fiji: Image > Scale)", file=p, field="pHYs")
    if unit != "dpi":
        return None, None
    if not x > 0:
        return None, {"chunk": "pHYs", "value": "0 pixels per metre", "allowed": "a positive number of pixels per metre"}
    printed = next((d for d in PRINT_DPI if abs(x - d) < 1e-4 * d), None)  # (stored in whole pixels per metre)
    if printed is not None:
        return None, {"chunk": "pHYs", "value": f"{printed:g} dpi, an image program's print resolution, not a calibration",
                      "allowed": "a microscope's calibration: its pixel size in pixels per metre"}
    return 25400.0 / x, None
