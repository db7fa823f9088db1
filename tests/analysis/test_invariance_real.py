"""Metamorphic checks on the shipped real micrographs (issue 16, benchmarks/micrographs, MIT):
each found as a miss of benchmarks/analysis_invariance.py, reproduced here as a user met it."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
import pytest

from castrig.analysis import analyse_surface

_MICROGRAPHS = Path(__file__).resolve().parents[2] / "benchmarks" / "micrographs"


def _real(name: str, rows: int) -> np.ndarray:
    """A shipped micrograph's rows above its data bar, as the invariance benchmark reads it."""
    from castrig.tiffio import read_micrograph

    path = _MICROGRAPHS / name
    if not path.is_file():
        pytest.skip("shipped micrograph absent")
    return np.asarray(read_micrograph(path)[0])[:rows]


def _gain(img: np.ndarray) -> np.ndarray:
    """The benchmark's gain: grey levels × 0.6 + 15 % of full scale."""
    full = float(np.iinfo(img.dtype).max)
    return np.clip(np.rint(img.astype(np.float64) * 0.6 + 0.15 * full), 0, full).astype(img.dtype)


@cache
def sem_measured(name: str, rows: int, px: float):
    """``analyse_surface`` (``appearance="sem"``) of a shipped micrograph's rows above its data bar:
    measured once per test process, for each test that holds a transformed copy against it
    (here and in test_analysis_sem_edges; each such measurement ~1 s of CPU). Read only."""
    return analyse_surface(_real(name, rows), px, appearance="sem")


def _measures_the_same(img: np.ndarray, px: float, other: np.ndarray, other_px: float, original=None):
    """The invariance benchmark's goals, the transformed view against the original: D within
    2 %, opening within 2 points, pore count within 3 %. Returns the original's measurement
    (``original``: that measurement of ``img``, made once in :func:`sem_measured`)."""
    a = analyse_surface(img, px, appearance="sem") if original is None else original
    b = analyse_surface(other, other_px, appearance="sem")
    assert b.mean_pore_diameter_um == pytest.approx(a.mean_pore_diameter_um, rel=0.02)
    assert b.opening_ratio == pytest.approx(a.opening_ratio, abs=0.02)
    assert b.pore_count == pytest.approx(a.pore_count, rel=0.03)
    return a


def test_porous_silicon_under_another_gain_and_offset_measures_the_same():
    """Etched porous silicon (Zeiss, 100 kX; rimless path, film the view's brightest level) with
    its grey levels × 0.6 + 15 % of full scale: D −4.6 %, opening −3.8 points. The image over its
    film alone maps its levels affinely about the film's 1 under a gain and offset, and half the
    pores' lip fits held their film level at the fixed bound 0.7 (their thin walls lie below the
    view's brightest film), a third as many under the gain. Now the lips' levels are each pore's
    own and the view is over its black level: 0.2 %."""
    img, px = _real("porous_silicon_zeiss_100kx_weiss.tif", 670), 0.002754
    original = sem_measured("porous_silicon_zeiss_100kx_weiss.tif", 670, px)
    assert _measures_the_same(img, px, _gain(img), px, original).pore_count > 1000


def _down2(img: np.ndarray) -> np.ndarray:
    """The benchmark's 2× block mean (pixel size doubled)."""
    h, w = (img.shape[0] // 2) * 2, (img.shape[1] // 2) * 2
    a = img[:h, :w].astype(np.float64).reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return np.rint(a).astype(img.dtype)


def test_porous_silicon_at_half_the_pixels_measures_the_same():
    """Etched porous silicon at twice the pixel size (2× block mean): D −2.4 %. Its thin walls'
    tops lie below the view's film, where the lips' film level was bounded (0.7): at half the
    pixels a block mean lowers them further, and more pores held their film at the bound. With
    each pore's levels its own (and its profiles binned as before): 1.7 %."""
    img, px = _real("porous_silicon_zeiss_100kx_weiss.tif", 670), 0.002754
    _measures_the_same(img, px, _down2(img), 2 * px, sem_measured("porous_silicon_zeiss_100kx_weiss.tif", 670, px))


def test_nanoporous_gold_keeps_its_shallow_dimples_under_another_gain():
    """Nanoporous gold (Zeiss, 500 kX; rimless path, film 162–222 across the view) with its grey
    levels × 0.6 + 15 % of full scale lost the same 8 shallow dimples of 243 (count 3.3 %) as at
    2× pixels and under a ramp: over its film alone (a black of 0) the offset changed each pore's
    relative depth by as much as the film differs, and the typical core radius from the dark
    regions with it (14.5 → 14.8 px). Over the view's black level (``black_field``, covariant
    with a gain and offset) the same dimples: 1 pore of 236."""
    img, px = _real("nanoporous_gold_zeiss_500kx_aquami.tif", 691), 0.000543
    assert _measures_the_same(img, px, _gain(img), px).pore_count > 200


def test_plant_section_at_half_the_pixels_measures_the_same():
    """A sectioned plant tissue (Hitachi, x1k; rimmed path, 59 cells of 3–12 µm) at twice the
    pixel size (2× block mean): D +2.7 %, opening +2.5 points. The rim's width is held near one
    share of the lip radius for the view, the median over the blur stage's 32 round pores of
    their own widths: a broad spread (0.001–1.0), a few fits with their "rim" across the whole
    cavity, and the median in a sparse stretch of it, 0.098 and 0.121 at half the pixels; a
    dozen of the largest cells' lips followed it to another basin (+15–28 %). The median over
    the fits with a rim narrower than their lip radius: 0.098 and 0.102, D 1.4 %."""
    img, px = _real("plant_cells_section_hitachi_x1k_rickgummy.png", 885), 0.09921
    original = sem_measured("plant_cells_section_hitachi_x1k_rickgummy.png", 885, px)
    assert _measures_the_same(img, px, _down2(img), 2 * px, original).pore_count > 50
