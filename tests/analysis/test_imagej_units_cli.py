"""An ImageJ calibration in a unit spelt otherwise than castrig wrote it is read, and one in a unit
that is no length castrig reads is named as such (the real CLI in a subprocess).

An outside tester's find: an ImageJ TIFF calibrated in ``\\u03BCm`` (the Greek mu U+03BC, not
the micro sign U+00B5 Fiji escapes as ``\\u00B5m``), in ``A``/``Å`` or ``nanometres`` said "no
pixel size in the file": the calibration was there, in a spelling castrig did not look up. Now
the Greek mu (escaped or as UTF-8), Å (ImageJ's ``A``, ``\\u00C5``, ``angstrom``) and the long
spellings are read; any other unit is named, with the pixel width found and ``--pixel-size``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import tifffile

from conftest import analysed, campaign, castrig_main, pore_grid, refused

FEI = "FEI/Thermo tag 34682 ([Scan] PixelWidth)"


def _imagej_tif(path: Path, unit: str, px_per_unit: float, **kw) -> Path:
    """An ImageJ TIFF as Fiji writes one (px per unit in X/YResolution, ResolutionUnit NONE,
    ``unit=`` in the description), the unit written as given: escaped text or UTF-8."""
    desc = f"ImageJ=1.54f\nunit={unit}\n".encode()
    tifffile.imwrite(path, pore_grid(), resolution=(px_per_unit, px_per_unit), resolutionunit=1, description=desc,
                     metadata=None, **kw)
    return path


#: every spelling, as (unit, px per unit): 4 µm per pixel each
SPELLINGS = [
    ("\\u03BCm", 4.0),       # Greek mu, escaped as Fiji escapes non-ASCII
    ("\u03bcm", 4.0),        # Greek mu as UTF-8
    ("\\u00B5m", 4.0),       # Fiji's own micro sign (read before too)
    ("micrometres", 4.0),
    ("nm", 0.004),           # 250 nm per pixel
    ("nanometres", 0.004),
    ("A", 0.0004),           # ImageJ's spelling of Å: 2500 Å per pixel
    ("\\u00C5", 0.0004),
    ("\u212b", 0.0004),      # the angstrom sign, as UTF-8
    ("angstrom", 0.0004),
    ("mm", 4000.0),
]
SPELLING_IDS = ["greek-mu-escaped", "greek-mu-utf8", "micro-sign-escaped", "micrometres", "nm", "nanometres", "A",
                "A-ring-escaped", "angstrom-sign", "angstrom", "mm"]


@pytest.mark.parametrize("unit, px_per_unit", campaign(SPELLINGS, ci={0, 4, 6, 10}), ids=SPELLING_IDS)
def test_an_imagej_calibration_in_these_spellings_is_read(tmp_path: Path, unit: str, px_per_unit: float):
    _imagej_tif(tmp_path / "cal.tif", unit, px_per_unit)
    out = analysed("surface", "cal.tif", cwd=tmp_path)
    assert out["pixel_size_um"] == pytest.approx(0.25) and out["pixel_size_source"] == "TIFF resolution tags", out


@pytest.mark.parametrize("unit, px_per_unit", SPELLINGS, ids=SPELLING_IDS)
def test_every_spelling_is_read_by_the_micrograph_reader(tmp_path: Path, unit: str, px_per_unit: float):
    """Every spelling through castrig's reader in this process (the CLI above runs a sample of
    them: each is a castrig process)."""
    from castrig.tiffio import read_micrograph

    _, pixel_size_um, _ = read_micrograph(_imagej_tif(tmp_path / "cal.tif", unit, px_per_unit))
    assert pixel_size_um == pytest.approx(0.25)


@pytest.mark.parametrize("unit", ["furlong", "pixel"])
def test_a_unit_castrig_cannot_use_is_named_with_what_to_do(tmp_path: Path, unit: str, capsys):
    """(Refused through the CLI's entry point in the test process, conftest ``castrig_main``.)"""
    _imagej_tif(tmp_path / "odd.tif", unit, 4.0)
    said = refused(castrig_main(capsys, "analyse", "surface", str(tmp_path / "odd.tif")),
                   "odd.tif: its ImageJ calibration says 1 pixel = 0.25", f"'{unit}'", "a unit castrig cannot use",
                   "allowed: µm", "Å", "give --pixel-size UM")
    assert "no pixel size in the file" not in said


def test_an_instruments_pixel_size_stands_in_for_an_unreadable_imagej_unit_and_says_so(tmp_path: Path):
    _imagej_tif(tmp_path / "sem.tif", "furlong", 4.0, extratags=[(34682, "s", 0, "[Scan]\r\nPixelWidth=2.5e-07\r\n", True)])
    out = analysed("surface", "sem.tif", cwd=tmp_path)
    assert out["pixel_size_um"] == pytest.approx(0.25) and out["pixel_size_source"] == FEI
    assert any("'furlong' is not a length castrig reads" in w for w in out["warnings"]), out["warnings"]


def test_an_imagej_calibration_whose_height_is_in_another_unit_is_refused_as_not_square(tmp_path, capsys):
    """ImageJ keeps a pixel's height in a unit of its own when it differs from the width's
    (``yunit=`` beside ``unit=``): 1 px per µm across and 1 px per nm down, a pixel 1000 × as wide
    as high, was measured as 1 µm square with no word."""
    desc = b"ImageJ=1.54f\nunit=micron\nyunit=nm\n"
    tifffile.imwrite(tmp_path / "tall.tif", pore_grid(), resolution=(1, 1), resolutionunit=1, description=desc,
                     metadata=None)
    refused(castrig_main(capsys, "analyse", "surface", str(tmp_path / "tall.tif"), "--json"),
            "tall.tif: pixels are not square: its ImageJ calibration gives the width in 'micron' and the height in 'nm' "
            "(1 µm across, 0.001 µm down)", "Image > Scale")
