"""Micrographs in conventions the twin's renderer never uses, through the real CLI: a camera's
dark offset (or an SEM's brightness set high), a binary mask as Fiji's thresholding makes it, an
ImageJ file whose grey LUT is inverted. The twin's views, written as those files are, must read
as the twin made them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from conftest import analysed


def _twin(rendered_membrane, view: str) -> np.ndarray:
    return tifffile.imread(rendered_membrane / f"m000_{view}.tif").astype(np.float64)


def _on_offset(a: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """``a``'s greys spread over ``lo``..``hi`` of a 16-bit image (a dark offset, a small used range)."""
    return np.round(lo + (a - a.min()) / np.ptp(a) * (hi - lo)).astype(np.uint16)


def test_views_on_a_dark_offset_are_measured_as_the_twin_made_them(rendered_membrane, tmp_path):
    """A 16-bit top view of 3000-3056 (a camera's dark offset: the film-to-pore contrast 1.8 % of
    the level, 56 grey levels) read no pore at all, opening 0.0 flagged only too_few_pores, and a
    section of 30105-31130 (an SEM's brightness set high) was refused as interface_lost: both were
    read as if zero were no light. Their 8-bit stretches measured right."""
    truth = json.loads((rendered_membrane / "truth.json").read_text())["m000"]
    tifffile.imwrite(tmp_path / "top.tif", _on_offset(_twin(rendered_membrane, "reflected"), 3000, 3056))
    tifffile.imwrite(tmp_path / "cut.tif", _on_offset(_twin(rendered_membrane, "section"), 30105, 31130))
    out = analysed("membrane", "--surface", str(tmp_path / "top.tif"), "--section", str(tmp_path / "cut.tif"),
                   "--surface-pixel-size", "0.25", "--section-pixel-size", "0.05")
    assert out["quality"]["flags"] == ["under_resolved"]  # (as the twin's own files: pores 7 px across)
    # (the twin's own 8-bit files read 0.604 and 1.77 µm for these: under-resolved pores)
    assert out["opening_ratio"] == pytest.approx(truth["opening_ratio"], abs=0.025)
    assert out["mean_pore_diameter_um"] == pytest.approx(truth["mean_pore_diameter_um"], rel=0.03)
    assert out["mean_thickness_um"] == pytest.approx(truth["mean_thickness_um"], rel=0.03)
    assert out["support_pore_diameter_um"] == pytest.approx(truth["support_pore_diameter_um"], rel=0.1)
