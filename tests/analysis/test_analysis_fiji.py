"""Fiji/ImageJ outputs and SEM inputs (issue 16): ROI sets of the segmentation, --appearance,
the SEM data bar left out."""

from __future__ import annotations

import json

import numpy as np
import pytest
import roifile
from typer.testing import CliRunner

from castrig.analysis import analyse_section, analyse_surface
from castrig.analysis.databar import find_data_bar
from castrig.cli.analyse import app
from castrig.sim.micrograph import make_structure, render_section, render_surface, render_surface_sem
from castrig.tiffio import write_micrograph


def _with_bar(img: np.ndarray, rows: int = 70, background: int = 0) -> np.ndarray:
    """An SEM-style data bar: a separating line, a flat band with text and a scale bar."""
    from PIL import Image, ImageDraw

    w = img.shape[1]
    band = Image.fromarray(np.full((rows, w), background, np.uint8))
    d = ImageDraw.Draw(band)
    d.text((8, 8), "EHT = 5.00 kV   WD = 8.5 mm   Mag = 5.00 K X   Signal A = SE2", fill=255 - background)
    d.rectangle((w - 140, 40, w - 40, 46), fill=255 - background)
    d.text((w - 120, 50), "10 um", fill=255 - background)
    return np.vstack([img, np.full((2, w), 255, np.uint8), np.asarray(band)])


@pytest.fixture(scope="module")
def sem():
    rng = np.random.default_rng(4)
    st = make_structure(rng, mean_diameter_um=5.0, opening_ratio=0.4, field_um=400 * 0.25,
                        penetration_depth_um=1.5, penetration_fraction=0.3, communication=0.6, support_link_prob=0.9,
                        section_length_um=600 * 0.05)
    top, _ = render_surface_sem(st, 0.25, rng)
    return top, render_section(st, 0.05, rng)


@pytest.mark.parametrize("background", [0, 128, 255])
def test_data_bar_is_found_and_left_out(sem, background):
    top, _ = sem
    bar = _with_bar(top, background=background)
    assert find_data_bar(bar) == top.shape[0]
    assert find_data_bar(top) is None
    a, b = analyse_surface(top, 0.25, appearance="sem"), analyse_surface(bar, 0.25, appearance="sem")
    assert (b.mean_pore_diameter_um, b.pore_count, b.opening_ratio) == (a.mean_pore_diameter_um, a.pore_count, a.opening_ratio)
    assert b.data_bar_rows == bar.shape[0] - top.shape[0] and b.quality()["data_bar_rows"] == b.data_bar_rows


def test_no_data_bar_on_twin_images():
    rng = np.random.default_rng(1)
    st = make_structure(rng, mean_diameter_um=3.0, field_um=256 * 0.25)
    r, t = render_surface(st, 0.25, rng)
    assert find_data_bar(r) is None and find_data_bar(t) is None
    assert find_data_bar(render_section(st, 0.05, rng)) is None


def test_section_with_data_bar(sem):
    _, sec = sem
    a, b = analyse_section(sec, 0.05), analyse_section(_with_bar(sec), 0.05)
    assert b.mean_thickness_um == pytest.approx(a.mean_thickness_um) and b.data_bar_rows > 0


def test_cli_appearance_and_roi_sets(sem, tmp_path):
    top, sec = sem
    write_micrograph(tmp_path / "top.tif", _with_bar(top), 0.25)
    write_micrograph(tmp_path / "sec.tif", sec, 0.05)
    run = CliRunner().invoke
    res = run(app, ["surface", str(tmp_path / "top.tif"), "--appearance", "sem", "--rois", str(tmp_path / "p.zip"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["quality"]["appearance"] == "sem" and out["quality"]["data_bar_rows"] > 0
    rois = roifile.roiread(tmp_path / "p.zip")
    assert len(rois) == out["pore_count"] and all(r.name.startswith("pore-") for r in rois)
    # Fiji's area of each ROI polygon is the area castrig measured
    m = analyse_surface(top, 0.25, appearance="sem")
    c = rois[0].coordinates()
    area = 0.5 * abs(np.dot(c[:, 0], np.roll(c[:, 1], 1)) - np.dot(c[:, 1], np.roll(c[:, 0], 1)))
    assert area == pytest.approx(np.pi * (m.diameters_um[0] / 2 / 0.25) ** 2, rel=1e-3)
    res = run(app, ["section", str(tmp_path / "sec.tif"), "--rois", str(tmp_path / "s.zip")])
    assert res.exit_code == 0, res.output
    names = {r.name for r in roifile.roiread(tmp_path / "s.zip")}
    assert {"film-top", "interface"} <= names and any(n.startswith("penetration") for n in names)
    res = run(app, ["membrane", "--surface", str(tmp_path / "top.tif"), "--section", str(tmp_path / "sec.tif"),
                    "--appearance", "sem", "--rois", str(tmp_path / "m.zip"), "--json"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m.zip").is_file() and (tmp_path / "m-section.zip").is_file()
    bad = run(app, ["surface", str(tmp_path / "top.tif"), "--appearance", "xray"])
    from castrig.errors import BadInput

    assert isinstance(bad.exception, BadInput) and "--appearance" in str(bad.exception)  # exit 2 from castrig


def test_overlay_of_an_sem_image_with_a_data_bar_from_the_cli(sem, tmp_path):
    """Found on a real Zeiss micrograph: the labels stopped above the data bar and the overlay
    crashed with a traceback. Now the overlay has the image's size, the bar shown unoutlined."""
    import imageio.v3 as iio

    from conftest import castrig

    top, _ = sem
    bar = _with_bar(top)
    path = tmp_path / "sem_with_bar.tif"
    write_micrograph(path, bar, pixel_size_um=0.25)
    out = tmp_path / "overlay.png"
    res = castrig("analyse", "surface", str(path), "--appearance", "sem", "--overlay", str(out))
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    rgb = iio.imread(out)
    assert rgb.shape == bar.shape + (3,)
    coloured = (rgb[..., 0] != rgb[..., 1]) | (rgb[..., 1] != rgb[..., 2])
    assert coloured[: top.shape[0]].any() and not coloured[top.shape[0]:].any()


def test_a_noise_free_honeycomb_is_measured_whole_from_the_cli(tmp_path):
    """A clean two-level drawing (no noise: every row mostly the film's one grey) had its bottom
    35 % taken for a data bar: opening 0.05 against 0.39, D 0.48 µm against 3.5 µm, flagged only
    as under-resolved. A data bar is a band apart from the rows above it."""
    from PIL import Image

    from conftest import castrig

    n, pitch, r = 512, 20, 7
    y, x = np.mgrid[0:n, 0:n]
    img = np.full((n, n), 200, np.uint8)
    for j in range(0, n + pitch, pitch):
        off = pitch / 2 if (j // pitch) % 2 else 0
        for i in range(0, n + pitch, pitch):
            # each disc drawn in its own box (the same pixels as over the whole grid, in 1 % of the time)
            cy, cx = j * 0.866, i + off
            rows, cols = slice(max(int(cy) - r - 1, 0), int(cy) + r + 2), slice(max(int(cx) - r - 1, 0), int(cx) + r + 2)
            box = img[rows, cols]
            box[(x[rows, cols] - i - off) ** 2 + (y[rows, cols] - j * 0.866) ** 2 < r * r] = 40
    Image.fromarray(img).save(tmp_path / "clean.png")
    assert find_data_bar(img) is None
    out = castrig("analyse", "surface", str(tmp_path / "clean.png"), "--pixel-size", "0.25", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["quality"]["data_bar_rows"] == 0
    assert got["opening_ratio"] == pytest.approx((img < 100).mean(), abs=0.01)
    assert got["mean_pore_diameter_um"] == pytest.approx(2 * r * 0.25, rel=0.02)  # the drawn circles' diameter


def test_a_data_bar_under_a_flat_vacuum_is_still_found():
    """A section whose vacuum above the film is clipped to black (flat rows), an 80-row film, then
    the SEM's data bar: the band is set apart by the film's rows, and is a bar (the rule for
    noise-free images must not hide it)."""
    rng = np.random.default_rng(1)
    h, w, bar = 600, 800, 540
    img = np.where(rng.random((h, w)) < 0.15, rng.integers(1, 30, (h, w)), 0).astype(np.uint8)
    img[460:540] = np.clip(rng.normal(150, 30, (80, w)), 1, 255).astype(np.uint8)
    img[bar:] = 40
    img[bar + 20:bar + 32, 50:400:3] = 255
    img[bar + 20:bar + 32, 500:700:4] = 255
    assert find_data_bar(img) == bar
