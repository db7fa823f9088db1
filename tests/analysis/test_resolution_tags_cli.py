"""TIFF resolution tags as odd writers leave them, met through the real ``castrig analyse`` (in
a subprocess where its CPU is bounded; else through the CLI's entry point in the test process,
conftest ``castrig_main``: the same command without a process's start-up): a DOUBLE where TIFF 6.0 says RATIONAL is read; a value that is no resolution
(negative, NaN, infinite) or a ResolutionUnit TIFF does not define is named, with what is
allowed — never "cannot read TIFF" of a readable image, nor "no pixel size in the file" of a
file whose tag is there and wrong."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import tifffile

from conftest import campaign, castrig, castrig_main, pore_grid


@pytest.fixture
def cli(tmp_path, capsys, monkeypatch):
    """``castrig ARGS`` in ``tmp_path``, through the CLI's entry point in this process."""
    monkeypatch.chdir(tmp_path)
    return lambda *args: castrig_main(capsys, *args)


def _tiff(path, *, unit: int | None = None, x: tuple[int, object] | None = None) -> None:
    """A 256 × 256 top view at 10000 px per cm (1 µm), its ResolutionUnit then set to ``unit``
    and its XResolution and YResolution to ``x`` = (TIFF type, value): 12 DOUBLE, 10 SRATIONAL."""
    tifffile.imwrite(path, pore_grid(), resolution=(10000, 10000), resolutionunit=3)
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        if unit is not None:
            struct.pack_into("<H", raw, tags["ResolutionUnit"].valueoffset, unit)
        if x is not None:
            typ, value = x
            for name in ("XResolution", "YResolution"):
                struct.pack_into("<H", raw, tags[name].offset + 2, typ)  # the entry's type
                struct.pack_into({12: "<d", 10: "<ii"}[typ], raw, tags[name].valueoffset, *np.atleast_1d(value).tolist())
    path.write_bytes(bytes(raw))


def test_a_resolution_written_as_a_double_is_read(tmp_path, cli):
    """10000.0 px per cm as a DOUBLE: tifffile gives a 1-tuple, castrig unpacked two values and
    said "cannot read TIFF (not enough values to unpack (expected 2, got 1))"."""
    _tiff(tmp_path / "top.tif", x=(12, 10000.0))
    done = cli("analyse", "surface", "top.tif", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["pixel_size_um"] == pytest.approx(1.0) and out["pixel_size_source"] == "TIFF resolution tags"


@pytest.mark.parametrize("how, said", [
    (dict(x=(12, float("nan"))), "XResolution is present but nan, which is invalid (allowed: a positive number of pixels per unit)"),
    (dict(x=(12, float("inf"))), "XResolution is present but inf, which is invalid (allowed: a positive number"),
    (dict(x=(10, (-10000, 1))), "XResolution is present but -10000 (negative), which is invalid (allowed: a positive number"),
    (dict(unit=4), "ResolutionUnit is present but 4, which is invalid (allowed: 1 (none: ImageJ's unit), 2 (inch) or 3 (centimetre))"),
], ids=["nan", "inf", "negative", "unit-4"])
def test_a_resolution_tag_that_is_there_and_wrong_is_named(tmp_path, cli, how, said):
    """NaN and inf were "cannot read TIFF (not enough values to unpack ...)"; a negative
    SRATIONAL and an undefined ResolutionUnit were "no pixel size in the file"."""
    _tiff(tmp_path / "top.tif", **how)
    done = cli("analyse", "surface", "top.tif")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"top.tif: its TIFF resolution tag {said}" in done.stderr, done.stderr
    assert "give --pixel-size UM" in done.stderr


def test_a_zeiss_tag_of_many_blank_lines_is_read_in_linear_time(tmp_path):
    """tifffile's reading of Zeiss SmartSEM's tag 34118 grows a tuple by one per line it cannot
    name: 200 000 blank lines (400 kB) before AP_PIXEL_SIZE took some 25 s, a 10 MB tag over
    a minute. castrig reads the tag's text itself, in one pass."""

    img = pore_grid()
    text = b"\r\n" * 200_000 + b"DP_PIXEL_SIZE\r\nPix Size state = calibrated\r\nAP_PIXEL_SIZE\r\nPixel Size = 250.0 nm\r\n\x00"
    tifffile.imwrite(tmp_path / "zeiss.tif", img, extratags=[(34118, 2, len(text), text, True)])
    done = castrig("analyse", "surface", "zeiss.tif", "--json", cwd=tmp_path, timeout_s=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.cpu_s < 5, done.cpu_s
    out = json.loads(done.stdout)
    assert out["pixel_size_um"] == pytest.approx(0.25) and out["pixel_size_source"].startswith("Zeiss SmartSEM tag 34118")


@pytest.mark.parametrize("second", ["fei-tag", "hitachi-sidecar"])
def test_two_instruments_that_disagree_on_the_pixel_size_are_both_said(tmp_path, cli, second):
    """A file with no resolution tags whose Zeiss tag says 0.25 µm and whose FEI tag says 1 µm
    (or an FEI-tagged TIFF beside a Hitachi .txt saying 1 µm): the first was used and the other
    never read or never said: exit 0, no warning, a pixel size 4× off for one of them."""
    img = pore_grid()
    zeiss = b"AP_PIXEL_SIZE\r\nImage Pixel Size = 250 nm\r\n"
    if second == "fei-tag":
        tags = [(34118, 2, len(zeiss), zeiss, True), (34682, "s", 0, "[Scan]\r\nPixelWidth=1e-06\r\n", True)]
        used, other = "Zeiss SmartSEM tag 34118", "FEI/Thermo tag 34682 ([Scan] PixelWidth) says 1 µm"
    else:
        tags = [(34682, "s", 0, "[Scan]\r\nPixelWidth=2.5e-07\r\n", True)]
        (tmp_path / "sem.txt").write_text("PixelSize=1000\n")
        used, other = "FEI/Thermo tag 34682", "Hitachi sidecar sem.txt (PixelSize) says 1 µm"
    tifffile.imwrite(tmp_path / "sem.tif", img, extratags=tags)
    done = cli("analyse", "surface", "sem.tif", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["pixel_size_um"] == pytest.approx(0.25) and out["pixel_size_source"].startswith(used)
    assert any(other in w and "4× apart" in w for w in out["warnings"]), out["warnings"]


@pytest.mark.parametrize("dpi", campaign([600, 1200], ci={0}))
def test_a_print_resolution_is_no_calibration(tmp_path, cli, dpi):
    """A micrograph exported by an image program at 600 dpi (ResolutionUnit inch) read as 25400 / 600 = 42.3 µm per pixel, inside the range castrig takes, and
    was measured so with no word. A whole print resolution is named and a pixel size asked for;
    a calibration in inches (25400 dpi: 1 µm) is still read."""
    img = pore_grid()
    tifffile.imwrite(tmp_path / "top.tif", img, resolution=(dpi, dpi), resolutionunit=2)
    done = cli("analyse", "surface", "top.tif")
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and f"{dpi} dpi, an image program's print resolution, not a calibration" in said, said
    assert "give --pixel-size UM" in said
    done = cli("analyse", "surface", "top.tif", "--pixel-size", "0.5", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["pixel_size_um"] == 0.5, done.stderr[-2000:]
    tifffile.imwrite(tmp_path / "cal.tif", img, resolution=(25400, 25400), resolutionunit=2)
    done = cli("analyse", "surface", "cal.tif", "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["pixel_size_um"] == pytest.approx(1.0), done.stderr[-2000:]


def test_an_ome_tiffs_own_pixel_size_is_read_and_a_disagreeing_tag_is_said(tmp_path, cli):
    """An OME-TIFF (Bio-Formats, Zeiss ZEN and others write their calibration in its OME-XML,
    and Fiji shows that one) whose resolution tags say 1 µm and its OME-XML PhysicalSizeX 0.5 µm:
    measured at 1 µm without a word (D 9.4 µm for 4.7); with no resolution tags, "no pixel size
    in the file". Now the OME-XML's is used, as an instrument's own record is, and the other named."""
    img = pore_grid()
    tifffile.imwrite(tmp_path / "scan.ome.tif", img, resolution=(10000, 10000), resolutionunit=3,
                     metadata={"PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5, "PhysicalSizeXUnit": "µm"})
    res = cli("analyse", "surface", "scan.ome.tif", "--appearance", "auto", "--json")
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    out = json.loads(res.stdout)
    assert out["pixel_size_um"] == 0.5 and out["pixel_size_source"] == "OME-XML PhysicalSizeX (0.5 µm)"
    assert out["mean_pore_diameter_um"] == pytest.approx(4.69, abs=0.01)
    assert out["warnings"] == ["scan.ome.tif: pixel size: TIFF resolution tags says 1 µm, OME-XML PhysicalSizeX (0.5 µm) "
                               "says 0.5 µm (2× apart); used 0.5 µm from OME-XML PhysicalSizeX (0.5 µm)"]
    assert out["quality"]["appearance"] == "optical"  # (an OME-XML pixel size is no SEM's record for --appearance auto)


def test_a_pngs_phys_chunk_gives_analyse_the_pixel_size_the_folder_camera_takes(tmp_path, cli):
    """A PNG saved by Pillow with its pixel size in its pHYs chunk (0.25 µm: 101600 dpi, stored
    per metre): the folder camera took 0.25 µm from it, ``castrig analyse`` ignored the chunk
    ("no pixel size in the file", exit 2). Now both read it as TIFF resolution tags are read, and
    say so (pixel_size_source "PNG pHYs chunk"); a print resolution (600 dpi) is refused by both,
    the chunk named."""
    from PIL import Image

    from castrig.devices.camera import CameraReadError, FolderCamera

    img = pore_grid()
    (tmp_path / "cam").mkdir()
    (tmp_path / "print").mkdir()
    Image.fromarray(img).save(tmp_path / "cam" / "m01_reflected.png", dpi=(25400 / 0.25, 25400 / 0.25))
    Image.fromarray(img).save(tmp_path / "print" / "m01_reflected.png", dpi=(600, 600))
    done = cli("analyse", "surface", "cam/m01_reflected.png", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["pixel_size_um"] == pytest.approx(0.25, rel=1e-4) and out["pixel_size_source"] == "PNG pHYs chunk", out
    frame = FolderCamera("replay", folder=tmp_path / "cam").snap("reflected")
    assert frame.pixel_size_um == pytest.approx(out["pixel_size_um"], rel=1e-9)
    assert frame.metadata["pixel_size_source"] == "file: PNG pHYs chunk"
    done = cli("analyse", "surface", "print/m01_reflected.png")
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "m01_reflected.png: its PNG chunk pHYs is present but says 600 dpi, an image " \
        "program's print resolution, not a calibration" in said and "give --pixel-size UM" in said, said
    with pytest.raises(CameraReadError, match="its PNG chunk pHYs says 600 dpi, an image program's print resolution"):
        FolderCamera("replay", folder=tmp_path / "print").snap("reflected")
