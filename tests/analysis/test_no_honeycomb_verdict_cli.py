"""Top views that show pores but no honeycomb, judged by ``castrig analyse membrane`` as a user
runs it: dark discs of one size at random places (a foam, a track-etched or phase-inverted
membrane), a bicontinuous texture and a square grid of holes. Each met claims 1-4 with no flag:
the nearest-neighbour distances of pores that cannot overlap scatter 22-24 % whether or not they
are ordered (under the 25 % that raised no_lattice_order). The share of the pores with six
neighbours (quality.six_neighbour_share) tells them from a honeycomb, a rough one too."""

from __future__ import annotations

import json

import numpy as np
import tifffile
from scipy import ndimage as ndi

from conftest import castrig_main

N_PX = 384
PX_UM = 0.1


def _save(path, img: np.ndarray, px_um: float = PX_UM) -> str:
    """An 8-bit TIFF whose resolution tags say ``px_um`` µm per pixel."""
    tifffile.imwrite(path, np.clip(img, 0, 255).astype(np.uint8), resolution=(1e4 / px_um, 1e4 / px_um),
                     resolutionunit="CENTIMETER")
    return str(path)


def _views(pores: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A reflected view (dark pores on a bright film) and its registered transmitted view (light
    through the pores), blurred 1 px, with pixel noise."""
    rng = np.random.default_rng(seed)
    refl = ndi.gaussian_filter(np.where(pores, 60.0, 200.0), 1.0) + rng.normal(0, 4, pores.shape)
    trans = ndi.gaussian_filter(np.where(pores, 220.0, 30.0), 1.0) + rng.normal(0, 4, pores.shape)
    return refl, trans


def _discs(centres: np.ndarray, r_px: float | np.ndarray) -> np.ndarray:
    """Discs of radius ``r_px`` (one, or one per centre) round ``centres`` (each pixel's nearest centre)."""
    from scipy.spatial import cKDTree

    grid = np.stack(np.mgrid[:N_PX, :N_PX], -1).reshape(-1, 2)
    d, i = cKDTree(centres).query(grid)
    return (d <= np.broadcast_to(r_px, (len(centres),))[i]).reshape(N_PX, N_PX)


def _random_centres(seed: int, n: int = 2000, min_gap_px: float = 20.0) -> np.ndarray:
    """``n`` places drawn at random, each kept unless it is within ``min_gap_px`` of one kept
    before it (discs that do not overlap: about 240 on 384²)."""
    from scipy.spatial import cKDTree

    c = np.random.default_rng(seed).uniform(0, N_PX, (n, 2))
    earlier: list[list[int]] = [[] for _ in range(n)]
    for i, j in cKDTree(c).query_pairs(min_gap_px):
        earlier[max(i, j)].append(min(i, j))
    kept = np.zeros(n, bool)
    for i in range(n):
        kept[i] = not kept[earlier[i]].any()
    return c[kept]


def _claim1(out: dict) -> tuple[str, list[str]]:
    g = next(g for g in out["verdict"]["grades"] if g["grade"] == "claim1")
    return g["status"], out["quality"]["flagged"].get("mean_pore_diameter_um", [])


def test_pores_at_random_places_meet_no_grade_and_a_honeycomb_of_them_still_does(tmp_path, capsys, rendered_membrane):
    section = str(rendered_membrane / "m000_section.tif")  # the twin's: every section bound passes
    # discs of 17 px (1.7 µm) at random places given as the top view, through the CLI's entry point
    # in this process (a castrig process measures the same: claims 1-4 were met, no flag)
    refl, trans = _views(_discs(_random_centres(1), 8.5), 1)
    done = castrig_main(capsys, "analyse", "membrane", "--surface", _save(tmp_path / "random.tif", refl),
                   "--transmitted", _save(tmp_path / "random_t.tif", trans), "--section", section, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    status, d_flags = _claim1(out)
    assert out["verdict"]["grades_met"] == [], (out["verdict"]["grades_met"], out["quality"]["flags"])
    assert status != "pass" and "no_lattice_order" in d_flags, (status, out["quality"]["flags"])

    # a bicontinuous texture and a square grid of holes: their top views alone (the section is
    # the one above), through the CLI's entry point in this process
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[:N_PX, :N_PX]
    others = {"bicontinuous": ndi.gaussian_filter(rng.normal(0, 1, (N_PX, N_PX)), 4) < 0,
              "square_grid": ((yy % 20) < 15) & ((xx % 20) < 15)}
    # the same discs on a honeycomb lattice (pitch 20 px, each moved up to 1.5 px): still met
    rows = np.arange(-1, N_PX / 17.32 + 1)
    hexc = np.array([(j * 17.32, i * 20 + 10 * (j % 2)) for j in rows for i in range(-1, N_PX // 20 + 2)])
    others["honeycomb"] = _discs(hexc + rng.uniform(-1.5, 1.5, hexc.shape), 8.5)
    for name, pores in others.items():
        refl, trans = _views(pores, 3)
        done = castrig_main(capsys, "analyse", "surface", _save(tmp_path / f"{name}.tif", refl),
                            "--transmitted", _save(tmp_path / f"{name}_t.tif", trans), "--json")
        assert done.returncode == 0, (name, done.stderr[-2000:])
        q = json.loads(done.stdout)["quality"]
        if name == "honeycomb":
            assert q["flags"] == [], name
        else:
            assert "no_lattice_order" in q["flagged"]["mean_pore_diameter_um"], (name, q["flags"])


def _rough_honeycomb(seed: int, sigma: float, pitch_px: float = 20.0) -> np.ndarray:
    """Pores of a honeycomb lattice (pitch 20 px, D 14 px ± 8 %), each moved at random by a
    normal ``sigma`` × the pitch in each direction: a breath-figure film's roughness."""
    rng = np.random.default_rng(seed)
    rows = np.arange(-1, N_PX / (pitch_px * 0.866) + 1)
    hexc = np.array([(j * pitch_px * 0.866, i * pitch_px + pitch_px / 2 * (j % 2))
                     for j in rows for i in range(-1, int(N_PX // pitch_px) + 2)])
    centres = hexc + rng.normal(0, sigma * pitch_px, hexc.shape)
    return _discs(centres, 7.0 * (1 + 0.08 * rng.standard_normal(len(centres))))


def test_a_rough_honeycomb_as_breath_figures_make_them_is_not_flagged_for_its_order(tmp_path, capsys):
    """Breath-figure honeycombs are rough: one published as "ordered" (polycarbonate, Bormashenko
    et al., Entropy 20, 956 (2018), fig. 1c) has a Voronoi entropy of 1.01, where a lattice has 0
    and points at random 1.71. Pores moved by σ 0.15 of the pitch (Voronoi entropy 0.62-0.84, six
    neighbours to 71-84 % of the pores, seeds 3-8) read a mean local |ψ6| of 0.47-0.54, under the
    0.55 that flagged no_lattice_order: every such film was flagged, D and σd judged marginal. The
    share of pores with six neighbours tells them from the non-honeycombs above (discs at random
    0.35-0.54 over seeds 1-11, bicontinuous 0.31-0.41, square grids 0.28-0.43; |ψ6| 0.38-0.43,
    0.36-0.39, 0.09-0.31, within 0.03 of the rough honeycombs'): flagged under 0.6. At σ 0.12
    (six neighbours 0.91-0.96, |ψ6| 0.60-0.65) neither flagged; at σ 0.18 (0.55-0.68; the
    published film's entropy, 0.91-1.12) a field of 350 pores is as far from a lattice as discs at
    random are, and two of six seeds are flagged."""
    for seed in (5, 8):  # (the lowest |ψ6| of seeds 3-8, 0.491 and 0.474; six neighbours 0.71, 0.81)
        refl, trans = _views(_rough_honeycomb(seed, 0.15), seed)
        done = castrig_main(capsys, "analyse", "surface", _save(tmp_path / f"rough{seed}.tif", refl),
                            "--transmitted", _save(tmp_path / f"rough{seed}_t.tif", trans), "--json")
        assert done.returncode == 0, done.stderr[-2000:]
        q = json.loads(done.stdout)["quality"]
        assert "no_lattice_order" not in q["flags"], (seed, q["flags"])
