"""Honeycomb top views drawn by a renderer of this file's own, not the twin's (an outside tester
met both faults with theirs; the twin's families never made these views):

- Dense films with thin walls: opening 0.62-0.70, pores 15-30 px, walls of a few px. The film's
  level was fitted through the film pixels ``ring`` px from every pore, and here only a handful
  of them are left (2-224 of a 1024² view, in a few corners): the level field ran wild, and
  `castrig analyse surface` read D -34 % or +22 %, the opening ratio -0.22 or +0.31, the
  through-pore fraction 0.003 for 0.59, with no flag and the truth far outside the intervals.
  The film nearer the pores now stands in when the far film is too sparse.
- Through-pores whose window at the bottom is a fifth of their width: the transmitted view shows
  a small bright spot in each, and the core's mean light called 0.22 of them through for 0.57.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage as ndi

from conftest import analysed, campaign

PX_UM = 0.1


def _honeycomb(seed: int, d_px: float, opening: float, size: int = 1024, wall_px: float = 1.5,
               through: float = 0.6, throat: float = 1.0) -> tuple[np.ndarray, np.ndarray, dict]:
    """(reflected 8-bit, transmitted 8-bit, truth): discs on a jittered hexagonal lattice with
    lognormal diameters (CV 0.06), shrunk pairwise to keep ``wall_px`` of film between them;
    antialiased coverage, pore floors at 15-30 % of the film, blur σ 1 px, 2 % noise. A
    through-pore passes the lamp through a centred window ``throat`` times its width."""
    rng = np.random.default_rng(seed)
    pitch = d_px / math.sqrt(opening / (math.pi / (2 * math.sqrt(3))))
    dy = pitch * math.sqrt(3) / 2
    rows = np.arange(-1, int(size / dy) + 2)
    cols = np.arange(-1, int(size / pitch) + 2)
    yy, xx = np.meshgrid(rows * dy, cols * pitch, indexing="ij")
    xx = xx + np.where(rows[:, None] % 2 == 1, pitch / 2, 0.0)
    centres = np.stack([yy.ravel(), xx.ravel()], 1) + rng.uniform(0, pitch, 2) + rng.normal(0, 0.03 * pitch, (yy.size, 2))
    s = math.sqrt(math.log(1 + 0.06 ** 2))
    r = d_px / 2 * np.exp(rng.normal(0, s, len(centres)) - s * s / 2)
    from scipy.spatial import cKDTree

    for i, j in cKDTree(centres).query_pairs(2 * r.max() + wall_px):
        gap = np.hypot(*(centres[i] - centres[j])) - r[i] - r[j]
        if gap < wall_px:
            k = (r[i] + r[j] + gap - wall_px) / (r[i] + r[j])
            r[i] *= k
            r[j] *= k
    cover = np.zeros((size, size))
    floor = np.ones((size, size))
    lit = np.zeros((size, size))
    goes_through = rng.random(len(centres)) < through
    whole = []
    for k, ((cy, cx), rk) in enumerate(zip(centres, r)):
        r0, r1 = max(int(cy - rk - 2), 0), min(int(cy + rk + 3), size)
        c0, c1 = max(int(cx - rk - 2), 0), min(int(cx + rk + 3), size)
        if r1 <= r0 or c1 <= c0:
            continue
        py, px = np.mgrid[r0:r1, c0:c1] + 0.5
        cov = np.clip(rk - np.hypot(py - cy, px - cx) + 0.5, 0, 1)  # (the disc's area to 0.1 %)
        cover[r0:r1, c0:c1] += cov
        floor[r0:r1, c0:c1] -= cov * (1 - rng.uniform(0.15, 0.3))
        if goes_through[k]:
            lit[r0:r1, c0:c1] += np.clip(throat * rk - np.hypot(py - cy, px - cx) + 0.5, 0, 1)
        if cy - rk >= 0 and cx - rk >= 0 and cy + rk <= size and cx + rk <= size:
            whole.append(k)
    whole = np.array(whole)
    d_um = 2 * r[whole] * PX_UM
    truth = {"opening_ratio": float(cover.mean()), "mean_pore_diameter_um": float(d_um.mean()),
             "cv": float(d_um.std(ddof=1) / d_um.mean()), "through_pore_fraction": float(goes_through[whole].mean())}
    refl = 190 * ndi.gaussian_filter(floor, 1.0) + rng.normal(0, 4, floor.shape)
    trans = 40 + 180 * ndi.gaussian_filter(np.clip(lit, 0, 1), 1.0) + rng.normal(0, 4, floor.shape)
    return (np.clip(np.rint(refl), 0, 255).astype(np.uint8), np.clip(np.rint(trans), 0, 255).astype(np.uint8), truth)


@pytest.mark.parametrize("seed, d_px, opening", campaign([(145, 15, 0.65), (143, 15, 0.65), (121, 20, 0.7), (111, 30, 0.7)], ci={0, 3}))
def test_a_dense_thin_walled_film_is_measured_within_the_goals(tmp_path: Path, seed: int, d_px: float, opening: float):
    refl, trans, truth = _honeycomb(seed, d_px, opening)
    Image.fromarray(refl).save(tmp_path / "top.png")
    Image.fromarray(trans).save(tmp_path / "through.png")
    out = analysed("surface", "top.png", "--transmitted", "through.png", "--pixel-size", str(PX_UM), cwd=tmp_path)
    assert out["mean_pore_diameter_um"] == pytest.approx(truth["mean_pore_diameter_um"], rel=0.02), (out, truth)
    assert out["opening_ratio"] == pytest.approx(truth["opening_ratio"], abs=0.02), (out, truth)
    assert out["pore_diameter_std_um"] / out["mean_pore_diameter_um"] == pytest.approx(truth["cv"], abs=0.03)
    assert out["through_pore_fraction"] == pytest.approx(truth["through_pore_fraction"], abs=0.05), (out, truth)


def test_film_nowhere_spread_over_the_view_is_said_so():
    """Film left only in one corner of the view, however near the pores: no level field is
    fitted through it (its level is one number), and the result is flagged thin_walls."""
    from castrig.analysis.surface_segment import _film_for_level

    mask = np.ones((256, 256), bool)  # pores everywhere ...
    mask[:40, :40] = False  # ... but in one corner
    sel, level_ring = _film_for_level(mask, ~mask, 4)
    assert level_ring == 0 and sel[:30, :30].all() and not sel[100:].any()
    # film everywhere 2 px from the pores (walls 5 px), none 4 px away: the nearer film stands in
    walls = np.ones((256, 256), bool)
    walls[::20, :] = walls[:, ::20] = False
    walls = ~ndi.binary_dilation(~walls, iterations=2)
    sel, level_ring = _film_for_level(walls, np.zeros_like(walls), 4)
    assert level_ring == 2 and sel.any()


@pytest.mark.parametrize("throat", [0.2, 0.3, 1.0])
def test_through_pores_with_a_small_window_at_the_bottom_are_counted(tmp_path: Path, throat: float):
    """(512² views, ~140 whole pores of 30 px: each pore's window is judged on its own, the view's
    size is not the point; 1024² before.)"""
    refl, trans, truth = _honeycomb(103, 30, 0.5, throat=throat, size=512)
    Image.fromarray(refl).save(tmp_path / "top.png")
    Image.fromarray(trans).save(tmp_path / "through.png")
    out = analysed("surface", "top.png", "--transmitted", "through.png", "--pixel-size", str(PX_UM), cwd=tmp_path)
    assert out["through_pore_fraction"] == pytest.approx(truth["through_pore_fraction"], abs=0.05), (out, truth)
    assert "transmitted_mismatch" not in out["quality"]["flags"]
