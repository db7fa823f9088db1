"""Hostile micrographs (issue 15): the row split of the worker threads, odd pixel types, colour,
NaN/Inf, decompression bombs and absurd pixel sizes — measured correctly or refused cleanly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from castrig.analysis import analyse_section, analyse_surface
from castrig.analysis._filters import box_min, gaussian
from castrig.analysis.illumination import measurable
from castrig.analysis.surface_segment import _parallel_rows, row_bands
from castrig.errors import BadInput
from castrig.reliability.badinputs import tiff_bytes
from castrig.tiffio import check_image_size, check_pixel_size, max_image_pixels, read_micrograph, write_micrograph


# -- the row split ---------------------------------------------------------------------------
@settings(max_examples=300, deadline=None, database=None)
@given(h=st.integers(0, 5000), tiles=st.integers(-1, 40), halo=st.integers(-3, 6000))
def test_row_bands_tile_the_rows_exactly(h, tiles, halo):
    bands = row_bands(h, tiles, halo)
    kept = [r for _, _, k0, k1 in bands for r in range(k0, k1)] if h <= 5000 else []
    assert kept == list(range(h))  # every row kept once, in order
    for lo, hi, k0, k1 in bands:
        assert 0 <= lo <= k0 < k1 <= hi <= h  # a band holds its kept rows, inside the image
        assert lo == max(0, k0 - max(halo, 0)) and hi == min(h, k1 + max(halo, 0))


def _local(x: np.ndarray) -> np.ndarray:
    return box_min(gaussian(x, 2.0, truncate=3.0), 3)


HALO_LOCAL = 6 + 3 + 1  # the Gaussian's reach (3 sigma) and the minimum window


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(1, 700), w=st.integers(1, 24), tiles=st.integers(1, 9), extra_halo=st.integers(0, 800),
       seed=st.integers(0, 2**16))
def test_parallel_rows_equals_the_whole_image(h, w, tiles, extra_halo, seed):
    """Any height (small, odd, below the tile count), any tile count, any halo ≥ the filter's
    reach (even one larger than the image): the banded result is the whole-image result."""
    a = np.random.default_rng(seed).random((h, w), dtype=np.float32)
    whole = _local(a)
    banded = _parallel_rows(_local, a, HALO_LOCAL + extra_halo, tiles=tiles, min_rows=1)
    assert banded.shape == whole.shape and np.array_equal(banded, whole)


def _disc_image(h: int, w: int, r: int, dtype=np.uint8) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    img = np.full((h, w), 200.0)
    for cx in range(r + 5, w - r, 2 * r + 3):
        img[(yy - h // 2) ** 2 + (xx - cx) ** 2 < r * r] = 40
    img += np.random.default_rng(0).normal(0, 2, img.shape)
    return np.clip(img, 0, 255).astype(dtype)


@pytest.mark.parametrize("h,r", [(256, 110), (260, 125), (301, 140)])
def test_pores_taller_than_half_the_image_do_not_break_the_split(h, r):
    """Regression: the halo of the pore-scale filters exceeded half the height, and the second
    band started at a negative row (``ValueError: could not broadcast``)."""
    m = analyse_surface(_disc_image(h, 6 * r, r), 1.0)
    assert m.pore_count >= 1 and m.mean_pore_diameter_um == pytest.approx(2 * r, rel=0.05)


# -- pixel types -----------------------------------------------------------------------------
def test_signed_and_float_images_measure_like_unsigned():
    u8 = _disc_image(200, 300, 12)
    ref = analyse_surface(u8, 0.5)
    variants = {
        "int16 around zero": u8.astype(np.int16) - 128,
        "int32 negative": u8.astype(np.int32) * 1000 - 10**6,
        "float32 0..1": (u8 / 255.0).astype(np.float32),
        "float64 tiny": u8.astype(np.float64) * 1e-9,
        "float64 huge": u8.astype(np.float64) * 1e300,
        "float32 negative": u8.astype(np.float32) - 1000.0,
    }
    for name, img in variants.items():
        m = analyse_surface(img, 0.5)
        assert m.pore_count == ref.pore_count, name
        assert m.mean_pore_diameter_um == pytest.approx(ref.mean_pore_diameter_um, rel=0.03), name
        assert m.opening_ratio == pytest.approx(ref.opening_ratio, abs=0.01), name


def test_measurable_keeps_unsigned_and_positive_signed_as_they_are():
    u = np.arange(12, dtype=np.uint16).reshape(3, 4)
    assert measurable(u) is u
    i = np.arange(12, dtype=np.int16).reshape(3, 4)
    assert measurable(i) is i
    f = measurable(np.array([[-2.0, 0.0], [2.0, 6.0]]))
    assert f.dtype == np.float32 and f.min() == 0.0 and f.max() == 1.0


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_is_an_error_not_zero_pores(poison):
    img = (_disc_image(128, 128, 10) / 255.0).astype(np.float32)
    img[5, 5] = poison
    with pytest.raises(ValueError, match="NaN or infinite"):
        analyse_surface(img, 0.5)
    with pytest.raises(ValueError, match="NaN or infinite"):
        analyse_section(img, 0.5)


def test_nan_tiff_is_bad_input_naming_the_file(tmp_path):
    a = np.ones((32, 32), np.float32)
    a[3, 3] = np.nan
    p = tmp_path / "nan.tif"
    tifffile.imwrite(p, a)
    with pytest.raises(BadInput, match="nan.tif: 1 of 1024 pixels are NaN or infinite") as e:
        read_micrograph(p)
    assert e.value.file == str(p)


# -- colour ----------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("suffix", [".tif", ".png"])
def test_rgb_and_rgba_are_read_as_luminance_alpha_dropped(tmp_path, channels, suffix):
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (20, 30, channels)).astype(np.uint8)
    if channels == 4:
        rgb[..., 3] = rng.integers(0, 256, (20, 30))  # a varying alpha must not matter
    p = tmp_path / f"c{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(p, rgb, photometric="rgb")
    else:
        import imageio.v3 as iio

        iio.imwrite(p, rgb)
    a, _, _ = read_micrograph(p)
    want = np.rint(rgb[..., :3].astype(float) @ [0.2125, 0.7154, 0.0721])
    assert a.shape == (20, 30) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - want).max() <= 1


def test_planar_rgb_tiff_is_luminance(tmp_path):
    rgb = np.zeros((3, 16, 16), np.uint16)
    rgb[1] = 1000  # pure green
    p = tmp_path / "planar.tif"
    tifffile.imwrite(p, rgb, photometric="rgb", planarconfig="separate")
    a, _, _ = read_micrograph(p)
    assert a.shape == (16, 16) and int(a[0, 0]) == round(0.7154 * 1000)


def test_rgb_micrograph_measures_like_its_grey(tmp_path):
    g = _disc_image(160, 240, 10)
    p = tmp_path / "rgb.tif"
    write_micrograph(tmp_path / "g.tif", g, 0.5)
    tifffile.imwrite(p, np.stack([g, g, g, np.full_like(g, 7)], axis=-1), photometric="rgb",
                     resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit=3)
    a, px, _ = read_micrograph(p)
    assert px == pytest.approx(0.5)
    m, ref = analyse_surface(a, px), analyse_surface(g, 0.5)
    assert m.pore_count == ref.pore_count and m.mean_pore_diameter_um == pytest.approx(ref.mean_pore_diameter_um, rel=1e-3)


# -- sizes -----------------------------------------------------------------------------------
def test_bomb_is_refused_before_decoding(tmp_path):
    p = tmp_path / "bomb.tif"
    p.write_bytes(tiff_bytes(46000, 46000))
    with pytest.raises(BadInput, match=r"bomb.tif: image too large: it declares 46000×46000 uint32"):
        read_micrograph(p)


def test_a_png_whose_image_data_stops_short_is_refused_from_the_cli(tmp_path, capsys):
    """Two rows of data in a PNG that declares 3000 × 3000, its compressed stream ended cleanly:
    Pillow gave 3000 rows, all but two black, and `castrig analyse surface` measured them (exit 0,
    opening 0). A PNG written whole by Pillow still reads."""
    import struct
    import zlib

    from PIL import Image

    from conftest import castrig_main

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    w = h = 3000
    short = tmp_path / "short.png"
    short.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                      + chunk(b"IDAT", zlib.compress(b"\x00" * (w + 1) * 2)) + chunk(b"IEND", b""))
    done = castrig_main(capsys, "analyse", "surface", str(short), "--pixel-size", "0.25", "--json")
    assert done.returncode == 2 and "short.png: cannot read image (PNG: Not enough image data" in done.stderr, done.stderr
    whole = tmp_path / "whole.png"
    Image.fromarray((np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)).convert("P").save(whole)
    assert read_micrograph(whole)[0].shape == (64, 64)


def test_pixel_limit_is_configurable(tmp_path, monkeypatch):
    p = tmp_path / "m.tif"
    write_micrograph(p, np.zeros((100, 100), np.uint8), 1.0)
    monkeypatch.setenv("CASTRIG_MAX_IMAGE_PIXELS", "9999")
    with pytest.raises(BadInput, match="at most 0.009999 Mpx"):
        read_micrograph(p)
    monkeypatch.setenv("CASTRIG_MAX_IMAGE_PIXELS", "10000")
    assert read_micrograph(p)[0].shape == (100, 100)
    monkeypatch.setenv("CASTRIG_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(BadInput, match="CASTRIG_MAX_IMAGE_PIXELS"):
        max_image_pixels()


def test_declared_bytes_count_too():
    check_image_size("x.tif", (10_000, 10_000), np.uint8)  # 100 Mpx, 100 MB: fine
    check_image_size("x.tif", (10_000, 10_000), np.float32)
    with pytest.raises(BadInput, match="image too large"):
        check_image_size("x.tif", (10_000, 10_000), np.float64)  # 800 MB decoded
    with pytest.raises(BadInput, match="image too large"):
        check_image_size("x.tif", (9_000, 9_000, 3), np.uint16)  # 486 MB decoded


@pytest.mark.parametrize("v", [0.0004, 51.0, float("nan"), float("inf"), -1.0])
def test_pixel_size_outside_the_range_is_refused(v):
    with pytest.raises(BadInput, match="0.0005–50 µm per pixel"):
        check_pixel_size(v, "--pixel-size")
    assert check_pixel_size(0.0005, "x") == 0.0005 and check_pixel_size(50, "x") == 50.0


def test_folder_camera_refuses_bombs_and_nan_files(tmp_path):
    from castrig.devices.camera import CameraReadError, FolderCamera
    from castrig.reliability.badinputs import png_bomb_bytes

    (tmp_path / "a_reflected.png").write_bytes(png_bomb_bytes(11000, 11000))  # 121 Mpx: under Pillow's own limit
    cam = FolderCamera("cam", folder=tmp_path)
    with pytest.raises(CameraReadError, match="image too large"):
        cam.snap("reflected")
    (tmp_path / "a_reflected.png").unlink()
    a = np.ones((16, 16), np.float32)
    a[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "b_reflected.tif", a, resolution=(20000, 20000), resolutionunit=3)
    with pytest.raises(CameraReadError, match="NaN or infinite"):
        cam.snap("reflected")


def test_an_image_the_free_memory_cannot_analyse_is_refused_before_measuring(tmp_path):
    """A 36 Mpx image (inside the 100 Mpx size limit) under a 3 GB address-space limit: the
    analysis needs ~4 GB. It died in numpy with a MemoryError traceback (exit 1) after a long
    wait; now exit 2 at once, naming the image, what it needs and what is free."""
    from conftest import castrig

    img = tmp_path / "big.tif"
    tifffile.imwrite(img, np.random.default_rng(0).integers(0, 256, (6000, 6000), dtype=np.uint8),  # (noise: its grey levels do not matter)
                     resolution=(1e4, 1e4), resolutionunit=3)
    done = castrig("analyse", "surface", str(img), address_space=3 * 2**30)
    text = " ".join(done.stderr.split())
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "big.tif" in text and "needs about" in text and "GiB" in text, text


def test_analyse_membrane_checks_the_memory_of_all_its_images_before_measuring_any(tmp_path):
    """`analyse membrane` checked each image's memory as it loaded it: with a small surface and
    a 36 Mpx section under a 3 GB address-space limit it measured the whole surface (minutes at
    64 Mpx) and only then refused the section. Now every image is loaded, the memory left is read
    with all of them held, and each analysis is checked against it before any is measured: exit
    2 naming the section, and the surface's analysis never ran (a hook marks it if it does)."""
    from conftest import castrig, with_sitecustomize

    surface = tmp_path / "top.tif"
    rng = np.random.default_rng(1)
    write_micrograph(surface, (rng.random((256, 256)) * 255).astype(np.uint8), 0.25)
    section = tmp_path / "cut.tif"
    tifffile.imwrite(section, rng.integers(0, 256, (6000, 6000), dtype=np.uint8), resolution=(1e5, 1e5), resolutionunit=3)
    marker = tmp_path / "surface-measured"
    hook = ("import castrig.analysis as a\n_real = a.analyse_surface\n"
            f"def _marked(*args, **kw):\n    open({str(marker)!r}, 'w').close()\n    return _real(*args, **kw)\n"
            "a.analyse_surface = _marked\n")
    done = castrig("analyse", "membrane", "--surface", str(surface), "--section", str(section), "--json",
                   address_space=3 * 2**30, **with_sitecustomize(tmp_path, hook))
    text = " ".join(done.stderr.split())
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert not marker.exists(), "the surface was measured before the section was refused"
    assert "cut.tif" in text and "needs about" in text and "every image of this command loaded" in text, text
    # the same hook, memory enough: the surface is measured (the hook works)
    ok = castrig("analyse", "surface", str(surface), "--json", **with_sitecustomize(tmp_path, hook))
    assert ok.returncode == 0 and marker.exists(), ok.stderr[-2000:]


def test_a_header_declaring_a_huge_image_gets_castrig_s_line_only(tmp_path):
    """A TIFF of 8 × 8 px whose header declares 100000 × 100000: tifffile's own log lines
    ('incorrect StripByteCounts count', logged at error level) reached the user before castrig's
    error."""
    import struct

    from conftest import castrig

    p = tmp_path / "huge.tif"
    tifffile.imwrite(p, np.zeros((8, 8), np.uint8))
    b = bytearray(p.read_bytes())
    with tifffile.TiffFile(p) as t:
        where = {tag.code: tag.offset for tag in t.pages[0].tags.values()}
    for code in (256, 257):
        struct.pack_into("<HHII", b, where[code], code, 4, 1, 100000)
    p.write_bytes(bytes(b))
    done = castrig("analyse", "surface", str(p), "--pixel-size", "0.1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        line for line in done.stderr.strip().splitlines() if line.startswith("error: ")], done.stderr
    assert "huge.tif: image too large" in done.stderr


@pytest.mark.parametrize("kind", ["directory", "symlink loop", "dangling link"])
def test_a_path_that_is_not_an_image_file_is_named_for_what_it_is(tmp_path, kind, capsys):
    """`castrig analyse surface DIR.tif` said 'no such file' of a directory and of a symlink loop."""
    from conftest import castrig_main

    p = tmp_path / "x.tif"
    if kind == "directory":
        p.mkdir()
    elif kind == "symlink loop":
        p.symlink_to(p)
    else:
        p.symlink_to(tmp_path / "gone.tif")
    done = castrig_main(capsys, "analyse", "surface", str(p), "--pixel-size", "0.1")
    said = {"directory": "a directory, not an image file", "symlink loop": "a symlink loop",
            "dangling link": "a symbolic link to nothing"}[kind]
    assert done.returncode == 2 and f"x.tif: {said}" in done.stderr, done.stderr


# -- what a TIFF's own metadata and page structure may not do (fuzzing the CLI) ---------------------
@pytest.mark.parametrize("description", [  # CI: one of each field; the other three in the full set (-m slow)
    {"pixel_size_warnings": 5},  # TypeError: 'int' object is not iterable
    pytest.param({"pixel_size_warnings": "FAKE WARNING"}, marks=pytest.mark.slow),  # 12 one-letter warnings
    {"pixel_size_invalid": 5},  # TypeError: not subscriptable
    pytest.param({"pixel_size_invalid": {"value_um": "abc"}}, marks=pytest.mark.slow),  # ValueError
    pytest.param({"file_type": 12, "photometric": [1, 2]}, marks=pytest.mark.slow),  # "read_as": [12, [1, 2]]
])
def test_a_tiffs_own_json_metadata_cannot_pose_as_castrigs_own_fields(tmp_path, description, capsys):
    """An ImageDescription in JSON whose keys are the reader's own (warnings, the pixel size's
    provenance, how the file was read) was copied into the result: a traceback, or warnings and
    "read as" notes the file wrote itself. Now the file's keys are kept apart, unused."""
    import json

    from conftest import castrig_main

    p = tmp_path / "spoof.tif"
    tifffile.imwrite(p, _disc_image(128, 160, 6), description=json.dumps(description))
    done = castrig_main(capsys, "analyse", "surface", str(p), "--pixel-size", "0.1", "--json")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    out = json.loads(done.stdout)
    assert out["warnings"] == [] and out["images"]["surface"] == {
        "file": str(p), "pixel_size_um": 0.1, "pixel_size_source": "--pixel-size"}
    done = castrig_main(capsys, "analyse", "surface", str(p), "--json")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == f"error: {p}: no pixel size in the file (surface); give --pixel-size UM"


def _tiff_of_pages(n: int, side: int = 16) -> bytes:
    """A little-endian TIFF of ``n`` pages of ``side``² px (8-bit, one shared strip), each marked
    as its own image as tifffile marks the pages it writes one by one: 40,000 pages in 5 MB,
    made in milliseconds."""
    import struct

    desc = b'{"shape": [%d, %d]}\0' % (side, side)
    first = 8 + side * side + len(desc)
    tags = [(256, 3, 1, side), (257, 3, 1, side), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
            (270, 2, len(desc), 8 + side * side), (273, 4, 1, 8), (277, 3, 1, 1), (278, 3, 1, side),
            (279, 4, 1, side * side)]
    entries = b"".join(struct.pack("<HHI", t, k, c) + (struct.pack("<HH", v, 0) if k == 3 else struct.pack("<I", v))
                       for t, k, c, v in tags)
    size = 2 + len(entries) + 4
    ifds = [struct.pack("<H", len(tags)) + entries + struct.pack("<I", first + (i + 1) * size if i + 1 < n else 0)
            for i in range(n)]
    return b"II*\0" + struct.pack("<I", first) + bytes(side * side) + desc + b"".join(ifds)


def test_a_tiff_of_40000_tiny_pages_is_refused_in_seconds(tmp_path, capsys):
    """40,000 pages of 16 × 16 px (5 MB): the reader sorted every page into images first, in time
    quadratic in their number (over 2 minutes, no output). Now the pages are counted only up to
    the most a micrograph file may hold, and the file is refused naming it."""
    import time

    from conftest import castrig, castrig_main

    p = tmp_path / "pages.tif"
    p.write_bytes(_tiff_of_pages(40000))
    t0 = time.monotonic()
    done = castrig("analyse", "surface", str(p), "--pixel-size", "0.1", timeout_s=60)
    took = time.monotonic() - t0
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"{p}: holds more than 256 pages" in done.stderr and "one 2-D micrograph per file" in done.stderr
    assert took < 10, took
    # a chain of pages that loops back to its first page is one page, not more than 256
    import struct

    loop = tmp_path / "loop.tif"
    tifffile.imwrite(loop, _disc_image(128, 160, 6))
    b = bytearray(loop.read_bytes())
    with tifffile.TiffFile(loop) as t:
        first, n_tags = t.pages[0].offset, len(t.pages[0].tags)
    struct.pack_into("<I", b, first + 2 + 12 * n_tags, first)
    loop.write_bytes(bytes(b))
    done = castrig_main(capsys, "analyse", "surface", str(loop), "--pixel-size", "0.1")
    assert done.returncode == 0 and "read (" not in done.stdout, done.stderr


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_a_file_of_several_images_says_which_one_was_measured(tmp_path):
    """A 16 × 16 px page before the micrograph: only the small page was measured, and nothing
    said another image was there; three images of one size: the first measured, unsaid. Now the
    largest full-resolution image is measured and the result names it and the others."""
    import json

    from conftest import castrig

    img = _disc_image(128, 160, 6)
    alone = tmp_path / "alone.tif"
    tifffile.imwrite(alone, img)
    ref = json.loads(castrig("analyse", "surface", str(alone), "--pixel-size", "0.1", "--json").stdout)
    preview = tmp_path / "preview.tif"
    with tifffile.TiffWriter(preview) as tw:
        tw.write(np.full((16, 16), 200, np.uint8))
        tw.write(img)
    done = castrig("analyse", "surface", str(preview), "--pixel-size", "0.1", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["pore_count"] == ref["pore_count"] and out["opening_ratio"] == ref["opening_ratio"]
    assert out["images"]["surface"]["read_as"] == [
        "image 2 of 2 (160 × 128 px), the largest: the file's other image, image 1 (16 × 16 px), was not measured "
        "(save it on its own to measure it)"]
    three = tmp_path / "three.tif"
    with tifffile.TiffWriter(three) as tw:
        for k in range(3):
            tw.write(np.roll(img, 7 * k, axis=1))
    done = castrig("analyse", "surface", str(three), "--pixel-size", "0.1")
    assert done.returncode == 0, done.stderr
    assert ("read (surface, three.tif): image 1 of 3 (160 × 128 px): the file's other images, image 2 (160 × 128 px), "
            "image 3 (160 × 128 px), were not measured (save each on its own to measure it)") in " ".join(done.stdout.split())


@pytest.mark.parametrize("cut,said", [
    (0, "empty file (0 bytes)"),
    (4, "cannot read TIFF: the file is truncated: 4 bytes, shorter than a TIFF header (8 bytes)"),
    (200, "cannot read TIFF: the file is truncated: it ends at byte 200, but its image data runs to byte 20,736"),
    (-1, "cannot read TIFF: the file is truncated: it ends at byte 20,735, but its image data runs to byte 20,736"),
])
def test_an_empty_or_cut_short_tiff_is_called_so(tmp_path, cut, said, capsys):
    """A zero-byte file said "cannot identify image file", a 4-byte TIFF header "unpack requires a
    buffer of 4 bytes", a TIFF cut after 200 bytes "failed to read 20480 bytes, got 0"."""
    from conftest import castrig_main

    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, _disc_image(128, 160, 6))
    p = tmp_path / "cut.tif"
    p.write_bytes(whole.read_bytes()[:cut])
    done = castrig_main(capsys, "analyse", "surface", str(p), "--pixel-size", "0.1")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"error: {p}: {said}" in done.stderr, done.stderr


def test_a_tiff_whose_strips_hold_no_data_is_refused_not_read_as_black(tmp_path, capsys):
    """Half the StripByteCounts of a 256 × 256 top view 0, as a writer that stopped before it
    filled them in leaves them: tifffile reads such "sparse" strips as black, and the half-black
    image was measured (opening 0.63 for 0.27, exit 0), nothing said."""
    import struct

    from conftest import castrig_main

    p = tmp_path / "half.tif"
    img = _disc_image(256, 256, 6)
    tifffile.imwrite(p, img, rowsperstrip=16, resolution=(10000, 10000), resolutionunit=3)
    raw = bytearray(p.read_bytes())
    with tifffile.TiffFile(p) as tif:
        tag = tif.pages[0].tags["StripByteCounts"]
    fmt = {3: "<H", 4: "<I"}[int(tag.dtype)]
    for i in range(8):
        struct.pack_into(fmt, raw, tag.valueoffset + struct.calcsize(fmt) * i, 0)
    p.write_bytes(bytes(raw))
    done = castrig_main(capsys, "analyse", "surface", str(p))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert (f"error: {p}: 8 of its 16 strips hold no data (the first: strip 1, its offset or StripByteCounts 0), which a "
            "reader shows as black") in " ".join(done.stderr.split()), done.stderr


@pytest.mark.parametrize("fmt", ["gif", "png", "webp"])
def test_an_animated_image_is_refused_before_its_frames_are_decoded(tmp_path, fmt, capsys):
    """An outside tester: a 1.2 MB GIF of 300 frames of 2000² px was decoded whole (27 s, 3.6 GB,
    before the allocation failed); the size check had looked at one frame. An APNG the same; an
    animated WebP was measured on its first frame without a word. A file of several frames is
    refused naming their count, as a TIFF stack is."""
    from PIL import Image

    from conftest import castrig_main

    frames = [Image.new("L", (600, 600), i * 20) for i in range(12)]
    p = tmp_path / f"multi.{fmt}"
    frames[0].save(p, save_all=True, append_images=frames[1:], **({"lossless": True} if fmt == "webp" else {}))
    done = castrig_main(capsys, "analyse", "surface", str(p), "--pixel-size", "0.25")
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "holds 12 frames" in said and "Traceback" not in said, said


def test_a_palette_tiff_is_measured_through_its_colour_map_as_a_palette_png_is(tmp_path, capsys):
    """An outside tester: one micrograph saved as a palette TIFF and as a palette PNG (indices in a
    shuffled order, the colour map putting them back): the PNG measured as the picture shows
    (opening 0.58), the TIFF on its raw indices (opening 0.0, 0 pores) without a word. (Through
    the CLI's entry point in the test process: the three files read as one command reads them.)"""
    from PIL import Image

    from conftest import castrig_main

    grey = _disc_image(256, 256, 6)
    perm = np.random.default_rng(0).permutation(256)
    index = np.argsort(perm).astype(np.uint8)[grey]
    tifffile.imwrite(tmp_path / "grey.tif", grey)
    tifffile.imwrite(tmp_path / "pal.tif", index, photometric="palette", colormap=np.tile(perm.astype(np.uint16) * 257, (3, 1)))
    im = Image.fromarray(index, mode="P")
    im.putpalette(np.repeat(perm.astype(np.uint8), 3).tolist())
    im.save(tmp_path / "pal.png")
    out = {}
    for name in ("grey.tif", "pal.tif", "pal.png"):
        done = castrig_main(capsys, "analyse", "surface", str(tmp_path / name), "--pixel-size", "0.25", "--json")
        assert done.returncode == 0, done.stderr
        out[name] = json.loads(done.stdout)
    assert out["grey.tif"]["pore_count"] >= 10
    for name in ("pal.tif", "pal.png"):
        assert out[name]["pore_count"] == out["grey.tif"]["pore_count"], name
        assert out[name]["opening_ratio"] == pytest.approx(out["grey.tif"]["opening_ratio"], abs=1e-6), name


def test_a_file_pillow_would_hand_to_another_program_is_not_opened(tmp_path, capsys):
    """An outside tester: anything Pillow opens was taken whatever its name; a PostScript file named
    .png was handed to Ghostscript ("Unable to locate Ghostscript" here; run where it is
    installed). Only image formats micrographs come in are opened."""
    from conftest import castrig_main

    p = tmp_path / "top.png"
    p.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n0 0 moveto 64 64 lineto stroke\nshowpage\n")
    done = castrig_main(capsys, "analyse", "surface", str(p), "--pixel-size", "0.25")
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "cannot read image" in said and "Ghostscript" not in said, said


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_the_pore_pitch_of_a_field_too_small_is_flagged_with_the_rest(tmp_path, rendered_membrane):
    """An outside tester: a 24-row strip of a twin micrograph read a pitch of 23 µm (about 4.8),
    a 16 px crop 1.6 µm, and while D, σd and the opening ratio were flagged ``too_few_pores``
    the pitch never was: a reader had no sign not to trust it."""
    from conftest import castrig

    whole = tifffile.imread(rendered_membrane / "m000_reflected.tif")
    tifffile.imwrite(tmp_path / "strip.tif", np.ascontiguousarray(whole[:24]))
    done = castrig("analyse", "surface", str(tmp_path / "strip.tif"), "--pixel-size", "0.25", "--json")
    assert done.returncode == 0, done.stderr
    quality = json.loads(done.stdout)["quality"]
    assert "too_few_pores" in quality["flags"] and "too_few_pores" in quality["flagged"]["pore_pitch_um"], quality


def test_a_camera_jpeg_with_its_preview_image_is_read_as_the_one_photo_it_is(tmp_path):
    """A review of the frame check: a JPEG that carries an MPF preview (many cameras, a DSLR on a
    microscope port, write one) is an MPO of 2 frames to Pillow, and was refused as 'holds 2
    frames'. Its first image is the photo; the preview is not measured."""
    from PIL import Image

    from conftest import castrig

    photo = Image.fromarray(_disc_image(128, 160, 6))
    photo.save(tmp_path / "cam.jpg", format="MPO", save_all=True, append_images=[photo.resize((40, 32))], quality=95)
    with Image.open(tmp_path / "cam.jpg") as im:
        assert im.format == "MPO" and im.n_frames == 2  # (the test's premise)
    done = castrig("analyse", "surface", str(tmp_path / "cam.jpg"), "--pixel-size", "0.25", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["pore_count"] >= 10
