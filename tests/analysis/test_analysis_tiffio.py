"""Micrograph TIFF I/O: pixel size in the resolution tags, metadata as JSON, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from castrig.errors import BadInput
from castrig.tiffio import read_micrograph, write_micrograph


def test_roundtrip_pixel_size_and_metadata(tmp_path):
    a = (np.arange(30 * 40) % 65535).astype(np.uint16).reshape(30, 40)
    p = write_micrograph(tmp_path / "m.tif", a, 0.125, {"illumination": "reflected", "exposure_s": 0.01})
    b, px, meta = read_micrograph(p)
    assert np.array_equal(a, b) and b.dtype == np.uint16
    assert px == pytest.approx(0.125, rel=1e-9)
    assert meta["illumination"] == "reflected" and meta["exposure_s"] == 0.01
    with tifffile.TiffFile(p) as t:
        tags = t.pages[0].tags
        # ImageJ's calibration (issue 16): Fiji opens it in µm — px per µm, unit in ImageJ's header
        assert int(tags["ResolutionUnit"].value) == 1 and t.imagej_metadata["unit"] == "um"
        num, den = tags["XResolution"].value
        assert num / den == pytest.approx(1 / 0.125)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.tif"]  # no temp file left
    # other types keep the plain TIFF form: px per cm, metadata in ImageDescription
    p2 = write_micrograph(tmp_path / "f.tif", a.astype(np.float64), 0.125, {"k": 1})
    b2, px2, meta2 = read_micrograph(p2)
    assert px2 == pytest.approx(0.125) and meta2["k"] == 1
    with tifffile.TiffFile(p2) as t:
        assert int(t.pages[0].tags["ResolutionUnit"].value) == 3


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])  # ImageJ's Info property; a plain ImageDescription
def test_metadata_under_the_readers_own_names_is_kept_apart(tmp_path, dtype):
    """The folder camera records the replayed file's metadata, ``pixel_size_source: camera``
    included, in the run's micrograph: read back, the file's own key stood as the reader's
    provenance wherever the reader had none of its own (and a JSON description could forge
    warnings). The reader's fields are its own; the file's are kept under ``file_metadata``."""
    spoof = {"pixel_size_source": "camera", "pixel_size_warnings": "FAKE", "page_used": 3}
    p = write_micrograph(tmp_path / "m.tif", np.zeros((8, 8), dtype), 0.25, {"truth": {"x": 1}, **spoof})
    _, px, meta = read_micrograph(p)
    assert px == pytest.approx(0.25) and meta["truth"] == {"x": 1} and meta["pixel_size_um"] == 0.25
    assert meta["pixel_size_source"] == "TIFF resolution tags" and meta["file_metadata"] == spoof
    assert "pixel_size_warnings" not in meta and "page_used" not in meta
    tifffile.imwrite(tmp_path / "bare.tif", np.zeros((8, 8), np.uint8), description='{"pixel_size_source": "lies"}')
    _, px, meta = read_micrograph(tmp_path / "bare.tif")
    assert px is None and meta == {"file_metadata": {"pixel_size_source": "lies"}}


@pytest.mark.parametrize("pixel_size", [0.0031, 0.027521018325935214, 0.25, 12.5])
def test_imagej_calibration_keeps_the_pixel_size(tmp_path, pixel_size):
    a = np.zeros((8, 8), np.uint8)
    _, px, meta = read_micrograph(write_micrograph(tmp_path / "m.tif", a, pixel_size, {"truth": {"x": 1}}))
    assert px == pytest.approx(pixel_size, rel=1e-9) and meta["truth"] == {"x": 1}


@pytest.mark.parametrize("text,width,expect", [
    ("$CM_FORMAT JEOL/SEM\n$CM_FULL_SIZE 1280 960\n$$SM_MICRON_BAR 160\n$$SM_MICRON_MARKER 5um\n", 1280, 5 / 160),
    ("$CM_FULL_SIZE 1280 960\n$CM_MICRON_BAR 200\n$CM_MICRON_MARKER 500nm\n", 640, 0.5 / 200 * 2),
])
def test_jeol_sidecar_pixel_size(tmp_path, text, width, expect):
    """JEOL: the scale bar's length over its pixels in the .txt beside the image (scaled when
    the image was saved smaller than the scan)."""
    from PIL import Image

    img = tmp_path / "s.bmp"
    Image.fromarray(np.zeros((32, width), np.uint8)).save(img)
    (tmp_path / "s.txt").write_text(text)
    _, px, meta = read_micrograph(img)
    assert px == pytest.approx(expect) and "JEOL sidecar s.txt" in meta["pixel_size_source"]
    tif = tmp_path / "t.tif"
    tifffile.imwrite(tif, np.zeros((32, width), np.uint8))
    (tmp_path / "t.txt").write_text(text)
    assert read_micrograph(tif)[1] == pytest.approx(expect)


def test_overwrite_is_atomic_replace(tmp_path):
    p = tmp_path / "m.tif"
    write_micrograph(p, np.zeros((4, 4), np.uint8), 1.0)
    write_micrograph(p, np.ones((5, 5), np.uint8), 2.0)
    a, px, _ = read_micrograph(p)
    assert a.shape == (5, 5) and px == pytest.approx(2.0)
    assert len(list(tmp_path.iterdir())) == 1


def test_imagej_micron_inch_and_none(tmp_path):
    a = np.zeros((8, 8), np.uint8)
    tifffile.imwrite(tmp_path / "ij.tif", a, imagej=True, resolution=(1 / 0.3, 1 / 0.3), metadata={"unit": "micron"})
    assert read_micrograph(tmp_path / "ij.tif")[1] == pytest.approx(0.3)
    tifffile.imwrite(tmp_path / "ij_um.tif", a, imagej=True, resolution=(20, 20), metadata={"unit": "um"})
    assert read_micrograph(tmp_path / "ij_um.tif")[1] == pytest.approx(0.05)
    tifffile.imwrite(tmp_path / "inch.tif", a, resolution=(2540, 2540), resolutionunit="INCH")
    assert read_micrograph(tmp_path / "inch.tif")[1] == pytest.approx(10.0)
    tifffile.imwrite(tmp_path / "none.tif", a)
    assert read_micrograph(tmp_path / "none.tif")[1] is None


def test_png_rgb_becomes_grey_without_pixel_size(tmp_path):
    import imageio.v3 as iio

    g = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (6, 1))
    iio.imwrite(tmp_path / "c.png", np.stack([g, g, g], -1))
    a, px, meta = read_micrograph(tmp_path / "c.png")
    assert a.ndim == 2 and px is None and meta == {}
    assert np.abs(a.astype(int) - g).max() <= 1


@pytest.mark.parametrize("shape", [(2, 8, 8), (8, 8, 5)])
def test_wrong_shape_is_bad_input(tmp_path, shape):
    p = tmp_path / "bad.tif"
    tifffile.imwrite(p, np.zeros(shape, np.uint8))
    with pytest.raises(BadInput) as e:
        read_micrograph(p)
    assert "bad.tif" in str(e.value) and e.value.file == str(p)


def test_unreadable_and_missing_are_bad_input(tmp_path):
    p = tmp_path / "junk.tif"
    p.write_bytes(b"not a tiff at all")
    with pytest.raises(BadInput, match="junk.tif"):
        read_micrograph(p)
    with pytest.raises(BadInput, match="nothere.png"):
        read_micrograph(tmp_path / "nothere.png")
    with pytest.raises(BadInput):
        write_micrograph(tmp_path / "x.tif", np.zeros((3, 3, 3)), 1.0)


@pytest.mark.parametrize("compression", ["lzw", "zlib", "jpeg"])
def test_compressed_tiffs_as_microscopes_write_them(tmp_path, compression):
    """Found on a real micrograph: an LZW TIFF was refused ("imagecodecs required")."""
    img = (np.random.default_rng(0).random((64, 80)) * 255).astype(np.uint8)
    p = tmp_path / f"{compression}.tif"
    tifffile.imwrite(p, img, compression=compression, resolution=(1e4 / 0.25, 1e4 / 0.25),
                     resolutionunit=tifffile.RESUNIT.CENTIMETER)
    a, px, _ = read_micrograph(p)
    assert a.shape == img.shape and px == pytest.approx(0.25)
    if compression != "jpeg":  # lossy
        assert np.array_equal(a, img)


def test_a_pngs_exif_orientation_after_its_image_data_is_still_applied(tmp_path):
    """A PNG is decoded once, by libpng, and its EXIF no longer asked of Pillow (whose getexif()
    decoded the whole image to look for an eXIf chunk after the image data): such a chunk is
    found by the chunks' headers alone, and its orientation applied as before."""
    import io
    import struct
    import zlib

    from PIL import Image

    a = np.zeros((20, 30), np.uint8)
    a[:, :5] = 255
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "PNG")
    png = buf.getvalue()
    exif = Image.Exif()
    exif[0x0112] = 6
    data = exif.tobytes().removeprefix(b"Exif\x00\x00")
    chunk = struct.pack(">I", len(data)) + b"eXIf" + data + struct.pack(">I", zlib.crc32(b"eXIf" + data) & 0xFFFFFFFF)
    end = png.rfind(b"IEND") - 4
    (tmp_path / "late.png").write_bytes(png[:end] + chunk + png[end:])
    b, _, meta = read_micrograph(tmp_path / "late.png")
    assert b.shape == (30, 20) and b[:5].min() == 255 and b[5:].max() == 0  # turned right: the left edge on top
    assert meta == {"orientation": "EXIF orientation 6 applied (the image as viewers show it)"}


def test_a_transparency_mask_written_before_its_image_is_not_measured(tmp_path):
    """A mask page (NewSubfileType 4) first, then the micrograph, both 256 × 256: the first of the
    two full-size "images" was measured — the mask — and said to be "image 1 of 2"."""
    img = (np.arange(256 * 256) % 251).astype(np.uint8).reshape(256, 256)
    with tifffile.TiffWriter(tmp_path / "masked.tif") as tw:
        tw.write(np.ones((256, 256), bool), subfiletype=4, resolution=(10000, 10000), resolutionunit=3, metadata=None)
        tw.write(img, resolution=(10000, 10000), resolutionunit=3, metadata=None)
    a, px, meta = read_micrograph(tmp_path / "masked.tif")
    assert np.array_equal(a, img) and px == pytest.approx(1.0)
    assert meta["page_used"] == "image 2 of 2 (256 × 256 px): the first is a transparency mask"


def test_a_png_wider_than_libpng_reads_is_refused_saying_so(tmp_path):
    """A 1 100 000 × 10 px PNG (a line scan; 11 Mpx): libpng, which decodes castrig's PNGs, reads at
    most 1 000 000 px a side; its "Invalid IHDR data" was said as "the file stops short of its
    declared size?", and libpng's own warning printed beside it."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    w, h = 1_100_000, 10
    (tmp_path / "line.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                                        + chunk(b"IDAT", zlib.compress(bytes(h * (w + 1)), 1)) + chunk(b"IEND", b""))
    with pytest.raises(BadInput, match=r"line.png: a PNG of 1100000 × 10 px: longer than 1,000,000 px a side, which "
                                       r"libpng, castrig's PNG decoder, does not read \(allowed: at most 1,000,000 px a "
                                       r"side\); save it as TIFF"):
        read_micrograph(tmp_path / "line.png")


def test_a_one_bit_miniswhite_tiff_is_inverted_as_an_8_bit_one_is(tmp_path):
    """1 bit a pixel is where MinIsWhite (photometric 0) is commonest (fax-like binary images, a
    thresholded export): tifffile gives it as bool, which the inversion passed over, so its black
    pores were read as white ones."""
    pores = np.zeros((64, 64), bool)
    pores[20:30, 20:30] = True  # 1 = black in MinIsWhite: dark pores on a white film
    tifffile.imwrite(tmp_path / "fax.tif", pores, photometric="miniswhite")
    a, _, meta = read_micrograph(tmp_path / "fax.tif")
    assert not a[25, 25] and a[0, 0]  # the pore dark, the film bright, as viewers show them
    assert meta["photometric"] == "MinIsWhite, inverted"


def test_a_palette_tiff_whose_colour_map_is_short_of_its_indices_is_refused(tmp_path):
    """A palette TIFF whose ColorMap count was cut to 16 colours while its pixels index up to 200:
    the colour map could not be applied, and the indices themselves were measured, nothing said."""
    import struct

    img = (np.arange(64 * 64) % 201).astype(np.uint8).reshape(64, 64)
    tifffile.imwrite(tmp_path / "pal.tif", img, photometric="palette",
                     colormap=np.tile(np.arange(256, dtype=np.uint16) * 257, (3, 1)))
    raw = bytearray((tmp_path / "pal.tif").read_bytes())
    with tifffile.TiffFile(tmp_path / "pal.tif") as tif:
        struct.pack_into("<I", raw, tif.pages[0].tags["ColorMap"].offset + 4, 48)
    (tmp_path / "pal.tif").write_bytes(bytes(raw))
    with pytest.raises(BadInput, match=r"pal.tif: a palette image whose colour map \(TIFF tag ColorMap\) holds 16 colours, "
                                       r"but its pixels index colour 200"):
        read_micrograph(tmp_path / "pal.tif")
