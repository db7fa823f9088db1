"""Files as they lie on a lab's disk, met through the real ``castrig analyse`` in a subprocess:
names at and past the file system's limit, SEM text sidecars that cannot be read or say odd
things. Each was a traceback, or a good image refused, before. (The refusals and the sidecars
read through the CLI's entry point in the test process, conftest ``castrig_main``: the same
command without a process's start-up.)"""

from __future__ import annotations

import json
import sys

import pytest
import tifffile
from PIL import Image

from conftest import castrig, castrig_main, pore_grid, refused


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch):
    """``castrig ARGS`` in ``tmp_path``, through the CLI's entry point in this process."""
    monkeypatch.chdir(tmp_path)
    return lambda *args: castrig_main(capsys, *args)


# -- names ------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_an_image_named_to_the_file_systems_limit_is_measured(tmp_path, suffix):
    """A 255-byte name is a valid name, but its sidecars' (NAME.png.txt, NAME-tif.hdr) are not:
    looking for them raised "File name too long" — a traceback for a PNG, "cannot read TIFF" for
    a TIFF — and the image was never measured."""
    name = "y" * (255 - len(suffix)) + suffix
    if suffix == ".png":
        Image.fromarray(pore_grid()).save(tmp_path / name)
    else:
        tifffile.imwrite(tmp_path / name, pore_grid(), resolution=(10000, 10000), resolutionunit=3)
    done = castrig("analyse", "surface", name, "--pixel-size", "1", "--json", cwd=tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert json.loads(done.stdout)["pore_count"] == 256


# -- sidecars ---------------------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/mem: Linux")
def test_a_sidecar_that_cannot_be_read_is_named(tmp_path, cli):
    """A JEOL/Hitachi .txt next to the image that is there but cannot be read (here: a link to a
    file whose read fails with an I/O error, as an unreadable file on a network share does) was
    an OSError traceback for a PNG."""
    Image.fromarray(pore_grid()).save(tmp_path / "top.png")
    (tmp_path / "top.txt").symlink_to("/proc/self/mem")  # a regular file whose read() is EIO
    done = cli("analyse", "surface", "top.png")
    refused(done, "top.png: its sidecar top.txt cannot be read", "--pixel-size")


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_a_jeol_sidecar_whose_scan_size_is_not_a_number_is_read_without_it(tmp_path, suffix, cli):
    """JEOL's $CM_FULL_SIZE read with str.isdigit(), which takes '²' (a latin-1 byte 0xB2 in a
    damaged sidecar) where int() does not: a ValueError traceback for a PNG, "cannot read TIFF"
    for a TIFF. The scale bar alone gives the pixel size: 5 µm over 120 px."""
    img = pore_grid()
    (Image.fromarray(img).save(tmp_path / f"top{suffix}") if suffix == ".png"
     else tifffile.imwrite(tmp_path / f"top{suffix}", img))
    (tmp_path / "top.txt").write_bytes(b"$CM_FULL_SIZE \xb2\xb2 960\n$$SM_MICRON_BAR 120\n$$SM_MICRON_MARKER 5um\n")
    done = cli("analyse", "surface", f"top{suffix}", "--json")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["pixel_size_um"] == pytest.approx(5 / 120) and "JEOL sidecar top.txt" in out["pixel_size_source"]


@pytest.mark.parametrize("args", [
    ("analyse", "surface", "x" * 300 + ".tif", "--pixel-size", "1"),
    ("analyse", "surface", "top.tif", "--rois", "x" * 300 + ".zip"),
    ("analyse", "surface", "top.tif", "--overlay", "x" * 300 + ".png"),
    ("analyse", "membrane", "--surface", "top.tif", "--section", "top.tif", "--rois", "x" * 250 + ".zip"),  # its -section.zip
    ("calibrate", "camera", "x" * 300 + ".tif", "--pitch-um", "10"),
], ids=["image", "rois", "overlay", "section-rois", "calibrate"])
def test_a_name_longer_than_the_file_system_allows_is_refused_naming_it(tmp_path, args, cli):
    """A name past 255 bytes (a script's generated name, a pasted path): Path.is_file() and
    is_dir() raised "File name too long", a traceback, before anything was said of the file."""
    tifffile.imwrite(tmp_path / "top.tif", pore_grid(), resolution=(10000, 10000), resolutionunit=3)
    done = cli(*args)
    refused(done, "a name longer than the file system allows (allowed: at most 255 bytes")
    assert not list(tmp_path.glob("*.zip")) and not list(tmp_path.glob("*.png"))


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_an_existing_png_declaring_a_huge_image_at_the_overlay_path_is_refused_not_a_traceback(tmp_path):
    """--overlay on an existing file first asks whether it is an earlier overlay of castrig's;
    Pillow's ``im.text`` loads the image to answer, and a 177-byte PNG there declaring
    50000 × 50000 px was a DecompressionBombError traceback (exit 1)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    (tmp_path / "pores.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 50000, 50000, 8, 0, 0, 0, 0))
                                         + chunk(b"IDAT", zlib.compress(b"\x00" * 50001)) + chunk(b"IEND", b""))
    tifffile.imwrite(tmp_path / "top.tif", pore_grid(), resolution=(10000, 10000), resolutionunit=3)
    done = castrig("analyse", "surface", "top.tif", "--overlay", "pores.png", cwd=tmp_path)
    refused(done, "--overlay pores.png: exists and is not an overlay castrig wrote")
    # an overlay castrig wrote is still known as one, and replaced
    done = castrig("analyse", "surface", "top.tif", "--overlay", "mine.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    done = castrig("analyse", "surface", "top.tif", "--overlay", "mine.png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
