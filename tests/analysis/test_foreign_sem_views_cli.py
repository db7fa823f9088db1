"""Top views from benchmarks/foreign_sem.py — a generator of our own that is not the twin's —
through the real CLI.

``--appearance auto`` on a view whose pores show a bright ridge the image alone cannot place: an
SEM's rims over flat dark cores, or a reflected-light defocus halo. Such a view with no
instrument metadata was read as optical by ``auto``: D 25 % short, opening 0.29 for 0.50, no
flag, and a verdict would have signed it. Its ridge passes the rim test
(:func:`castrig.analysis.edges.rim_overshoot`), its flat cores fail the core test the twin's SE
views pass; the twin's own defocus halos land in the same place (seed 1000 optical_halo cases 3,
10, 11, 13). So such a view is measured as optical, as before, and flagged
``appearance_ambiguous``: its diameters and opening ratio are not trusted by the verdict, and
the result says to give ``--appearance``.

And a plain honeycomb under heavy pixel noise, which read "no pores".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import analysed

PX_UM = 0.1
D_PX = 20.0


@pytest.fixture(scope="module")
def sem_view(tmp_path_factory: pytest.TempPathFactory, foreign_sem) -> Path:
    """benchmarks/foreign_sem.py's view: 20 px pores, rims 0.3 of the contrast, flat cores."""
    path = tmp_path_factory.mktemp("foreign") / "sem-rims.tif"
    img, _ = foreign_sem.sem_rims_over_flat_cores(1, 512, d_px=D_PX)
    tifffile.imwrite(path, img)  # (no metadata: the pixel size is given)
    return path


@pytest.fixture(scope="module")
def sem_view_judged(sem_view: Path, rendered_membrane: Path) -> dict:
    """``analyse membrane --appearance auto --grade claim1`` of the view (a twin section beside it):
    its surface metrics and quality are ``analyse surface --appearance auto``'s, and its verdict
    the grade's; one castrig process for the two tests that read them."""
    return analysed("membrane", "--surface", str(sem_view), "--surface-pixel-size", str(PX_UM),
                    "--section", str(rendered_membrane / "m000_section.tif"), "--appearance", "auto",
                    "--grade", "claim1")


def test_a_noisy_honeycomb_is_not_read_as_no_pores(tmp_path: Path, foreign_sem):
    """Sharp dark pores (no rim), per-pixel noise 0.06 on a film-to-core step of 0.35 (5.8 σ):
    `castrig analyse surface` said 0 pores, opening 0 — the test for "any dark structure at all"
    held the smoothed image's contrast against 6 σ of the raw pixels' noise (the smoothing
    leaves a tenth of it). Now within 0.5 % of D and 0.005 of the opening ratio."""
    img, truth = foreign_sem.sem_rims_over_flat_cores(3, 512, d_px=D_PX, rim_gain=0.0, rim_w=0.01, noise=0.06)
    tifffile.imwrite(tmp_path / "noisy.tif", img)
    got = analysed("surface", str(tmp_path / "noisy.tif"), "--pixel-size", str(PX_UM))
    assert got["pore_count"] > 300 and not got["quality"]["flags"], (got["pore_count"], got["quality"])
    assert got["mean_pore_diameter_um"] == pytest.approx(truth["d_px"] * PX_UM, rel=0.005)
    assert got["opening_ratio"] == pytest.approx(truth["opening_ratio"], abs=0.005)


def test_auto_flags_a_ridge_it_cannot_place_and_says_to_give_the_appearance(sem_view: Path, sem_view_judged: dict):
    auto = sem_view_judged  # (--appearance auto, read by analyse membrane: the surface's own metrics and quality)
    q = auto["quality"]
    assert q["appearance"] == "optical" and "appearance_ambiguous" in q["flags"], q
    for metric in ("mean_pore_diameter_um", "opening_ratio"):
        assert "appearance_ambiguous" in q["flagged"][metric], q
    assert "--appearance sem or optical" in q["appearance_from"], q
    # the flag stands for a real difference: read as optical D is a quarter short, as SEM within 10 %
    assert auto["mean_pore_diameter_um"] < 0.85 * D_PX * PX_UM, auto["mean_pore_diameter_um"]
    sem = analysed("surface", str(sem_view), "--appearance", "sem", "--pixel-size", str(PX_UM))
    assert sem["mean_pore_diameter_um"] == pytest.approx(D_PX * PX_UM, rel=0.1)
    assert "appearance_ambiguous" not in sem["quality"]["flags"]  # (the microscope said: nothing to flag)


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_a_strong_ridge_over_flat_cores_is_read_as_sem_and_still_flagged(tmp_path: Path, foreign_sem):
    """Rims at 0.5 of the contrast over flat cores: a ridge of 0.13 of the pores' depth (the
    twin's defocus halos reach 0.07), the core test failed. Read as optical, D was 28 % short;
    from edges.RIM_CLEAR on such a ridge is taken for rims: D as --appearance sem reads it, and
    flagged all the same (the cores did not say SEM)."""
    img, truth = foreign_sem.sem_rims_over_flat_cores(2, 768, d_px=D_PX, rim_gain=0.5)
    tifffile.imwrite(tmp_path / "strong.tif", img)
    auto = analysed("surface", str(tmp_path / "strong.tif"), "--appearance", "auto", "--pixel-size", str(PX_UM))
    sem = analysed("surface", str(tmp_path / "strong.tif"), "--appearance", "sem", "--pixel-size", str(PX_UM))
    assert auto["quality"]["appearance"] == "sem" and "appearance_ambiguous" in auto["quality"]["flags"], auto["quality"]
    assert auto["quality"]["appearance_from"].startswith("auto: sem, a strong bright ridge"), auto["quality"]
    assert auto["mean_pore_diameter_um"] == pytest.approx(sem["mean_pore_diameter_um"])
    assert auto["mean_pore_diameter_um"] == pytest.approx(truth["d_px"] * PX_UM, rel=0.1)


def test_faint_rims_too_faint_for_the_rim_test_are_flagged(tmp_path: Path, foreign_sem):
    """Rims at 0.15 of the contrast: a ridge of 0.015 of the pores' depth, under the rim test's
    0.025 — read as optical, D 22 % short, with no flag. The twin's plain optical views show
    0 to 0.003: a ridge from 0.01 on is flagged."""
    img, truth = foreign_sem.sem_rims_over_flat_cores(2, 512, d_px=D_PX, rim_gain=0.15)
    tifffile.imwrite(tmp_path / "faint.tif", img)
    auto = analysed("surface", str(tmp_path / "faint.tif"), "--appearance", "auto", "--pixel-size", str(PX_UM))
    assert auto["mean_pore_diameter_um"] < 0.9 * truth["d_px"] * PX_UM  # (the reading the flag is for)
    assert "appearance_ambiguous" in auto["quality"]["flagged"]["mean_pore_diameter_um"], auto["quality"]


def test_the_verdict_does_not_sign_the_flagged_diameter(sem_view_judged: dict):
    (claim1,) = sem_view_judged["verdict"]["grades"]
    assert not claim1["met"], claim1
    checks = [c for c in claim1["checks"] if c["quantity"] == "mean_pore_diameter_um"]
    assert checks and all(c["status"] == "marginal" and c["flags"] == ["appearance_ambiguous"] for c in checks), checks
    assert "--appearance sem or optical" in checks[0]["advice"], checks[0]


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_an_se_view_with_lifted_cores_and_a_plain_optical_view_are_not_flagged(tmp_path: Path, rendered_membrane: Path):
    from castrig.sim.micrograph import make_structure, render_surface_sem

    rng = np.random.default_rng(4)
    st = make_structure(rng, mean_diameter_um=2.0, opening_ratio=0.4, field_um=51.2)
    refl, _ = render_surface_sem(st, PX_UM, rng, bit_depth=8)
    tifffile.imwrite(tmp_path / "twin-sem.tif", refl)
    se = analysed("surface", str(tmp_path / "twin-sem.tif"), "--appearance", "auto", "--pixel-size", str(PX_UM))
    assert se["quality"]["appearance"] == "sem" and "appearance_ambiguous" not in se["quality"]["flags"], se["quality"]
    optical = analysed("surface", str(rendered_membrane / "m000_reflected.tif"), "--appearance", "auto")
    assert optical["quality"]["appearance"] == "optical" and "appearance_ambiguous" not in optical["quality"]["flags"]


def test_rims_round_large_pores_are_read_as_rims(tmp_path: Path, foreign_sem):
    """Rims 2 px wide at 0.3 of the contrast round 40 px pores: the pores' rim vote averaged
    three profile bins of r_core/8 (2.1 px each), which spread the rim into the film, and voted
    rimless: ``--appearance sem`` put the edge on the rim's inner flank, D 11 % short, no flag.
    Where the bins are wider than the image's blur the vote reads single bins."""
    img, truth = foreign_sem.sem_rims_over_flat_cores(2, 512, d_px=40.0, rim_gain=0.3)  # (~150 pores: 768² before)
    tifffile.imwrite(tmp_path / "large.tif", img)
    got = analysed("surface", str(tmp_path / "large.tif"), "--appearance", "sem", "--pixel-size", str(PX_UM))
    assert got["mean_pore_diameter_um"] == pytest.approx(truth["d_px"] * PX_UM, rel=0.025)
    assert got["opening_ratio"] == pytest.approx(truth["opening_ratio"], abs=0.025)


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_a_very_noisy_sem_view_finds_its_pores_and_auto_flags_it(tmp_path: Path, foreign_sem):
    """Pixel noise 0.08 over rims at 0.3 of the contrast: no pore was found at all (D −100 %),
    and ``auto`` read the view as optical with no flag. The "anything clearly darker than the
    film" test and the whole view's ridge test held the smoothed image against the raw pixels'
    noise; they take the smoothed image's own now. (Known miss: its D is still 22 % short,
    measured as rimless — the ridge, 0.063 of the depth, is flagged, not trusted.)"""
    img, truth = foreign_sem.sem_rims_over_flat_cores(2, 768, d_px=D_PX, rim_gain=0.3, noise=0.08)
    tifffile.imwrite(tmp_path / "noisy-rims.tif", img)
    sem = analysed("surface", str(tmp_path / "noisy-rims.tif"), "--appearance", "sem", "--pixel-size", str(PX_UM))
    assert sem["pore_count"] > 800, sem["pore_count"]  # (every pore whole in the field: ~900)
    auto = analysed("surface", str(tmp_path / "noisy-rims.tif"), "--appearance", "auto", "--pixel-size", str(PX_UM))
    assert "appearance_ambiguous" in auto["quality"]["flagged"]["mean_pore_diameter_um"], auto["quality"]
