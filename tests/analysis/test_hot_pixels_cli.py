"""Hot and dead pixels in 16-bit micrographs, through `castrig analyse` as a lab meets them.

Lab cameras store 10- or 12-bit data in 16-bit TIFFs, and have hot pixels. An outside tester's
find: ONE pixel at 65535 in a 10-bit twin top view (`castrig sim render`, shifted right 6 bits)
moved the opening ratio from 0.594 to 0.319 and D from 5.18 to 4.64 µm, unflagged, and the grade
went from claim1 to none (unsigned images were measured as they are: the lone pixel set the
scale). Such pixels are clipped to the range of the rest, as a float image's already were.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import castrig


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("render")
    done = castrig("sim", "render", "--out", str(out), "--n", "1", "--seed", "3", "--width", "512", "--bit-depth", "16")
    assert done.returncode == 0, done.stderr
    return out


def _ten_bit(src: Path, dst: Path, spoil) -> Path:
    a = (tifffile.imread(src) >> 6).astype(np.uint16)  # 10-bit data in a 16-bit file
    spoil(a)
    tifffile.imwrite(dst, a, resolution=(40000, 40000), resolutionunit=3)  # 0.25 µm/px, in cm
    return dst


def _measured(*argv: str) -> dict:
    done = castrig("analyse", *argv, "--json")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def _hot_corner(a):
    a[-1, -1] = 65535


def _hot_top_right(a):
    a[0, -1] = 65535


def _two_hot(a):
    a[200, 300] = a[300, 100] = 65535


def _hot_block(a):
    a[100:102, 100:102] = 65535


def _dead(a):
    a[256, 256] = 0


@pytest.mark.parametrize("spoil", [_hot_corner, _hot_top_right, _two_hot, _hot_block, _dead])
def test_a_few_hot_or_dead_pixels_do_not_move_the_surface_metrics(rendered: Path, tmp_path: Path, spoil):
    clean = _measured("surface", str(_ten_bit(rendered / "m000_reflected.tif", tmp_path / "clean.tif", lambda a: None)))
    spoiled = _measured("surface", str(_ten_bit(rendered / "m000_reflected.tif", tmp_path / "spoiled.tif", spoil)))
    assert spoiled["opening_ratio"] == pytest.approx(clean["opening_ratio"], abs=0.005), (clean, spoiled)
    assert spoiled["mean_pore_diameter_um"] == pytest.approx(clean["mean_pore_diameter_um"], rel=0.01), (clean, spoiled)
    assert abs(spoiled["pore_count"] - clean["pore_count"]) <= 2, (clean["pore_count"], spoiled["pore_count"])


def test_a_hot_pixel_does_not_move_the_section(rendered: Path, tmp_path: Path):
    def section(name, spoil):
        a = (tifffile.imread(rendered / "m000_section.tif") >> 6).astype(np.uint16)
        spoil(a)
        tifffile.imwrite(tmp_path / name, a)
        return _measured("section", str(tmp_path / name), "--pixel-size", "0.05")

    clean, hot = section("clean.tif", lambda a: None), section("hot.tif", _hot_corner)
    assert hot["mean_thickness_um"] == pytest.approx(clean["mean_thickness_um"], rel=0.01), (clean, hot)
