"""A membrane's section is most often imaged at another magnification than its top views. With
files that carry no pixel size (PNGs, a TIFF saved by a paint program) `analyse membrane` had one
--pixel-size for every view: such a membrane could not be judged at all (or was judged with one
view at the wrong scale). Each view now has its own option, winning over --pixel-size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import analysed, castrig_main, refused

SURFACE_UM, SECTION_UM = 0.25, 0.05  # what `sim render` writes in the TIFFs' tags


@pytest.fixture(scope="module")
def pngs(rendered_membrane: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered views as PNGs: no pixel size in them."""
    out = tmp_path_factory.mktemp("png")
    for view in ("reflected", "transmitted", "section"):
        Image.fromarray(np.asarray(tifffile.imread(rendered_membrane / f"m000_{view}.tif"))).save(out / f"{view}.png")
    return out


def _membrane(folder: Path, *extra: str, ext: str = "png", prefix: str = "") -> list[str]:
    return ["membrane", "--surface", str(folder / f"{prefix}reflected.{ext}"),
            "--transmitted", str(folder / f"{prefix}transmitted.{ext}"),
            "--section", str(folder / f"{prefix}section.{ext}"), *extra]


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_each_view_at_its_own_pixel_size_measures_as_the_files_own(pngs: Path, rendered_membrane: Path):
    own = analysed(*_membrane(rendered_membrane, "--grade", "claim1", ext="tif", prefix="m000_"))
    given = analysed(*_membrane(pngs, "--surface-pixel-size", str(SURFACE_UM), "--section-pixel-size", str(SECTION_UM),
                                "--grade", "claim1"))
    for k in ("mean_pore_diameter_um", "opening_ratio", "through_pore_fraction", "mean_thickness_um",
              "support_pore_diameter_um"):
        assert given[k] == pytest.approx(own[k], rel=1e-9), k
    assert given["verdict"] == own["verdict"]
    images = given["images"]
    assert (images["surface"]["pixel_size_um"], images["surface"]["pixel_size_source"]) == (SURFACE_UM, "--surface-pixel-size")
    assert images["transmitted"]["pixel_size_um"] == SURFACE_UM
    assert (images["section"]["pixel_size_um"], images["section"]["pixel_size_source"]) == (SECTION_UM, "--section-pixel-size")


def test_a_views_own_option_wins_over_pixel_size(pngs: Path):
    out = analysed(*_membrane(pngs, "--pixel-size", str(SURFACE_UM), "--section-pixel-size", str(SECTION_UM)))
    assert out["images"]["surface"]["pixel_size_source"] == "--pixel-size"
    assert (out["images"]["section"]["pixel_size_um"], out["images"]["section"]["pixel_size_source"]) == (SECTION_UM, "--section-pixel-size")


def test_a_view_without_a_pixel_size_is_told_of_its_own_option(pngs: Path, capsys):
    """(Refusals: through the CLI's entry point in the test process, conftest ``castrig_main``.)"""
    refused(castrig_main(capsys, "analyse", *_membrane(pngs, "--surface-pixel-size", "0.25")),
            "section.png: no pixel size in the file (section); give --section-pixel-size UM")
    refused(castrig_main(capsys, "analyse", *_membrane(pngs, "--section-pixel-size", "0.05")),
            "reflected.png: no pixel size in the file (surface); give --surface-pixel-size UM")


@pytest.mark.parametrize("value, words", [("0,05", ["--section-pixel-size '0,05': not a number, a decimal comma: write 0.05"]),
                                          ("900", ["pixel size 900 µm from --section-pixel-size is outside 0.0005–50 µm per pixel"]),
                                          # (an outside tester: Python's float() took '0_05' for 5, and the range
                                          # message rounded 50.0000001 to a "50" that is inside it)
                                          ("0_05", ["--section-pixel-size '0_05': not a number (allowed:"]),
                                          ("50.0000001", ["pixel size 50.0000001 µm from --section-pixel-size is outside"])])
def test_a_bad_view_pixel_size_is_named(pngs: Path, value: str, words: list[str], capsys):
    said = refused(castrig_main(capsys, "analyse", *_membrane(pngs, "--surface-pixel-size", "0.25", "--section-pixel-size", value)), *words)
    assert "give --pixel-size" not in said  # (the option's own value is the one to correct)
