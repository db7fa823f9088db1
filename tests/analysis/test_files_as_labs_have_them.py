"""Micrograph files as microscopes and image software write them, measured from the CLI: the same
surface (or section) as a plain TIFF must give the same numbers, or a clear refusal.

Found by an outside-in probe that fed `castrig analyse` files castrig's own generator never
writes: each of these gave silently wrong numbers before (opening 0.19 for 0.60, T 37.6 µm for
1.53) or lost the file's calibration.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import castrig_main

PX_UM = 0.1


@pytest.fixture(scope="module")
def surface() -> np.ndarray:
    """A 512² reflected-light twin surface, 8-bit (about 12 px per pore)."""
    from castrig.sim.micrograph import make_structure, render_surface

    rng = np.random.default_rng(5)
    st = make_structure(rng, mean_diameter_um=1.2, opening_ratio=0.5, thickness_um=1.2, thickness_cv=0.1,
                        field_um=512 * PX_UM, section_length_um=40.0)
    return render_surface(st, PX_UM, rng, bit_depth=8)[0]


def measured(capsys, path, *extra: str) -> dict:
    done = castrig_main(capsys, "analyse", "surface", path, "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def same_numbers(got: dict, ref: dict) -> None:
    assert got["pore_count"] == pytest.approx(ref["pore_count"], rel=0.01)
    assert got["mean_pore_diameter_um"] == pytest.approx(ref["mean_pore_diameter_um"], rel=0.005)
    assert got["opening_ratio"] == pytest.approx(ref["opening_ratio"], abs=0.003)


def test_tiffs_written_by_fiji_scanners_and_prepress_read_as_they_are_meant(surface, tmp_path, capsys):
    """Fiji's µm (ImageJ 1.52 on writes ``unit=\\u00B5m``: "no pixel size in the file"); an inch
    unit; a thumbnail before the image (measured: 0 pores); MinIsWhite (film read as pores); CMYK
    (read as RGBA)."""
    a = surface
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, a, resolution=(1e4 / PX_UM, 1e4 / PX_UM), resolutionunit="CENTIMETER")
    ref = measured(capsys, plain)
    assert ref["pixel_size_um"] == pytest.approx(PX_UM) and ref["pore_count"] > 100
    files = {
        "fiji_micro.tif": lambda p: tifffile.imwrite(p, a, imagej=True, resolution=(1 / PX_UM, 1 / PX_UM),
                                                     metadata={"unit": "\\u00B5m"}),
        "imagej_inch.tif": lambda p: tifffile.imwrite(p, a, imagej=True, resolution=(25400 / PX_UM, 25400 / PX_UM),
                                                      metadata={"unit": "inch"}),
        "thumbnail_first.tif": lambda p: _thumbnail_first(p, a),
        "min_is_white.tif": lambda p: tifffile.imwrite(p, 255 - a, photometric="miniswhite",
                                                       resolution=(1e4 / PX_UM, 1e4 / PX_UM), resolutionunit="CENTIMETER"),
        "cmyk.tif": lambda p: tifffile.imwrite(p, np.dstack([255 - a] * 3 + [np.zeros_like(a)]), photometric="separated",
                                               resolution=(1e4 / PX_UM, 1e4 / PX_UM), resolutionunit="CENTIMETER"),
    }
    notes = {"thumbnail_first.tif": "reduced-resolution page", "min_is_white.tif": "MinIsWhite",
             "cmyk.tif": "CMYK"}
    for name, write in files.items():
        path = tmp_path / name
        write(path)
        got = measured(capsys, path)
        assert got["pixel_size_um"] == pytest.approx(PX_UM), (name, got["pixel_size_um"])
        same_numbers(got, ref)
        if name in notes:  # and the result says how the file was read
            assert any(notes[name] in n for n in got["images"]["surface"]["read_as"]), (name, got["images"])


def _thumbnail_first(path, a: np.ndarray) -> None:
    with tifffile.TiffWriter(path) as tw:
        tw.write(a[::16, ::16].copy(), subfiletype=1, resolution=(1e4 / PX_UM / 16,) * 2, resolutionunit="CENTIMETER")
        tw.write(a, resolution=(1e4 / PX_UM,) * 2, resolutionunit="CENTIMETER")


def test_jpegs_from_cameras_read_as_viewers_show_them(surface, tmp_path, capsys):
    """A JPEG stored on its side with EXIF orientation 6 (a camera held upright; read as stored,
    a section was measured across its layers) and a CMYK JPEG (read as RGBA)."""
    a = surface
    ref_path = tmp_path / "plain.png"
    Image.fromarray(a).save(ref_path)
    ref = measured(capsys, ref_path, "--pixel-size", str(PX_UM))
    upright = tmp_path / "exif6.jpg"
    im = Image.fromarray(np.rot90(a, k=1).copy())  # stored turned left: orientation 6 turns it back
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(upright, quality=95, exif=exif.tobytes())
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(np.dstack([a] * 3)).convert("CMYK").save(cmyk, quality=95)
    for path, note in ((upright, "EXIF orientation 6"), (cmyk, "CMYK")):
        got = measured(capsys, path, "--pixel-size", str(PX_UM))
        same_numbers(got, ref)
        assert any(note in n for n in got["images"]["surface"]["read_as"]), got["images"]


def test_pixels_that_are_not_square_are_refused_naming_both_sizes(surface, tmp_path, capsys):
    """Y resolution 1.5× the X one (a tilt-corrected SEM section, a stretched export): measured as
    square pixels, D came out 22 % high and T 50 % high, with no warning."""
    path = tmp_path / "aniso.tif"
    tifffile.imwrite(path, np.repeat(surface, 3, axis=0)[::2], imagej=True, resolution=(10, 15), metadata={"unit": "um"})
    for extra in ((), ("--pixel-size", str(PX_UM))):  # the shape is wrong whatever the size
        done = castrig_main(capsys, "analyse", "surface", path, "--json", *extra)
        assert done.returncode == 2, done.stdout
        assert str(path) in done.stderr and "pixels are not square" in done.stderr and "Image > Scale" in done.stderr


def test_an_fei_scan_whose_pixels_are_not_square_is_refused(surface, tmp_path, capsys):
    """The SEM's own record (tag 34682) says PixelHeight 1.5 × PixelWidth: refused like the tags."""
    path = tmp_path / "fei.tif"
    scan = "[Scan]\r\nPixelWidth=1e-07\r\nPixelHeight=1.5e-07\r\n"
    tifffile.imwrite(path, surface, extratags=[(34682, "s", 0, scan, True)])
    done = castrig_main(capsys, "analyse", "surface", path, "--json")
    assert done.returncode == 2 and "PixelHeight 0.15 µm" in done.stderr and "not square" in done.stderr, done.stderr
    square = tmp_path / "fei_square.tif"
    tifffile.imwrite(square, surface, extratags=[(34682, "s", 0, scan.replace("1.5e-07", "1e-07"), True)])
    assert measured(capsys, square)["pixel_size_um"] == pytest.approx(0.1)


def test_a_file_is_read_by_what_it_is_not_by_its_name(surface, tmp_path, capsys):
    """A TIFF saved as .png lost its calibration ("no pixel size in the file"); a PNG saved as
    .tif was refused ("not a TIFF file"), then measured with no word of what it was."""
    tiff_as_png = tmp_path / "calibrated.png"
    tifffile.imwrite(tiff_as_png, surface, resolution=(1e4 / PX_UM,) * 2, resolutionunit="CENTIMETER")
    got = measured(capsys, tiff_as_png)
    assert got["pixel_size_um"] == pytest.approx(PX_UM) and "read as TIFF" in got["images"]["surface"]["read_as"][0]
    png_as_tif = tmp_path / "plain.tif"
    Image.fromarray(surface).save(png_as_tif, format="PNG")
    as_png = measured(capsys, png_as_tif, "--pixel-size", str(PX_UM))
    same_numbers(as_png, got)
    assert as_png["images"]["surface"]["read_as"] == ["read as PNG (its name says .tif)"]


def test_uniform_padding_round_an_image_is_left_out_and_positions_stay_the_images(surface, tmp_path, capsys):
    """A frame or strip of light or grey padding (an export, a rotation, a montage): a 10 px
    strip of 250 over a section read its film 9x thick, a frame round a top view moved D by 4-8 %
    and the pore count by up to 25 %, all unflagged. Black padding stays: it is flagged saturated."""
    from castrig.analysis import analyse_section, analyse_surface
    from castrig.sim.micrograph import make_structure, render_section

    rng = np.random.default_rng(9)
    st = make_structure(rng, mean_diameter_um=2.0, opening_ratio=0.5, thickness_um=1.5, thickness_cv=0.1,
                        field_um=20.0, section_length_um=60.0)
    sec = render_section(st, 0.05, rng, bit_depth=8)
    ref_s, ref_x = analyse_surface(surface, PX_UM, keep_labels=True), analyse_section(sec, 0.05)
    framed = np.pad(surface, 12, constant_values=200)
    m = analyse_surface(framed, PX_UM, keep_labels=True)
    assert (m.opening_ratio, m.pore_count) == (ref_s.opening_ratio, ref_s.pore_count)
    # (the bottom strip is also what a data bar's flat background looks like: left out as one)
    assert m.margins_px[0::2] + m.margins_px[3:] == (12, 12, 12) and m.margins_px[1] + m.data_bar_rows == 12
    h = framed.shape[0] - m.data_bar_rows  # the labels cover the image above a data bar, as before
    assert m.labels.shape == (h, framed.shape[1]) and (m.labels[12:12 + surface.shape[0], 12:-12] == ref_s.labels).all()
    assert np.allclose(m.centres_px, np.asarray(ref_s.centres_px) + 12)
    strip = np.vstack([np.full((10, sec.shape[1]), 250, sec.dtype), sec])
    x = analyse_section(strip, 0.05)
    assert x.mean_thickness_um == pytest.approx(ref_x.mean_thickness_um, rel=1e-9) and x.margins_px == (10, 0, 0, 0)
    assert np.allclose(x.interface_row, np.asarray(ref_x.interface_row) + 10, equal_nan=True)
    # from the CLI, as a file: the same numbers, and the margins said
    path = tmp_path / "strip.tif"
    tifffile.imwrite(path, strip)
    done = castrig_main(capsys, "analyse", "section", path, "--pixel-size", "0.05", "--json")
    got = json.loads(done.stdout)
    assert got["mean_thickness_um"] == pytest.approx(ref_x.mean_thickness_um) and got["quality"]["margins_px"] == [10, 0, 0, 0]
