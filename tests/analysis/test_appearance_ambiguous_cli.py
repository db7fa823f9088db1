"""``--appearance auto`` on a top view whose pores show a bright ridge the image alone cannot
place: an SEM's rims over flat dark cores, or a reflected-light defocus halo (the real CLI).

Found with a generator of our own that is not the twin's: an SEM-like honeycomb — dark through-
pores, a narrow bright SE rim just inside each edge, flat cores — with no instrument metadata was
read as optical by ``auto``: D 25 % short, opening 0.29 for 0.50, no flag, and a verdict would have
signed it. Its ridge passes the rim test (:func:`castrig.analysis.edges.rim_overshoot`), its flat
cores fail the core test the twin's SE views pass; the twin's own defocus halos land in the same
place (seed 1000 optical_halo cases 3, 10, 11, 13). So such a view is measured as optical, as
before, and flagged ``appearance_ambiguous``: its diameters and opening ratio are not trusted by
the verdict, and the result says to give ``--appearance``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from conftest import analysed

PX_UM = 0.1
D_PX = 20.0


def sem_rims_over_flat_cores(seed: int, size: int = 512, d_px: float = D_PX, rim_gain: float = 0.3) -> np.ndarray:
    """An SEM-like top view drawn here, not by castrig.sim: a jittered hexagonal lattice (pitch
    1.35 D) of pores with a flat dark core (0.15), a bright rim 2 px wide just inside the edge
    (film 0.5, peak ``rim_gain`` of the contrast above it), 3× supersampled, blur σ 1 px,
    noise 0.03, 8 bit. The pore's edge — where the film's top ends — is the rim's outer side."""
    rng = np.random.default_rng(seed)
    pitch, ss, film, core, rim_w = 1.35 * d_px, 3, 0.5, 0.15, 2.0
    img = np.full((size * ss, size * ss), film)
    yy, xx = np.mgrid[0:size * ss, 0:size * ss] / ss
    row, y = 0, pitch / 2
    while y < size + pitch:
        x = (pitch / 2) * (row % 2)
        while x < size + pitch:
            cy, cx = y + rng.normal(0, 0.03 * pitch), x + rng.normal(0, 0.03 * pitch)
            r = d_px / 2 * (1 + rng.normal(0, 0.05))
            y0, y1 = int(max((cy - r - 2) * ss, 0)), int(min((cy + r + 2) * ss, size * ss))
            x0, x1 = int(max((cx - r - 2) * ss, 0)), int(min((cx + r + 2) * ss, size * ss))
            if y0 < y1 and x0 < x1:
                d = np.hypot(yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx) - r  # < 0 inside
                rim = film + rim_gain * (film - core) * np.exp(-((d + rim_w / 2) / (rim_w / 2)) ** 2)
                grey = np.maximum(core + (rim - core) * np.clip((d + 1.5 * rim_w) / rim_w, 0, 1), core)
                sub = img[y0:y1, x0:x1]
                sub[d < 0] = grey[d < 0]
            x += pitch
        y += pitch * np.sqrt(3) / 2
        row += 1
    img = img.reshape(size, ss, size, ss).mean(axis=(1, 3))
    img = ndi.gaussian_filter(img, 1.0) + rng.normal(0, 0.03, img.shape)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def sem_view(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("foreign") / "sem-rims.tif"
    tifffile.imwrite(path, sem_rims_over_flat_cores(1))  # (no metadata: the pixel size is given)
    return path


def test_auto_flags_a_ridge_it_cannot_place_and_says_to_give_the_appearance(sem_view: Path):
    auto = analysed("surface", str(sem_view), "--appearance", "auto", "--pixel-size", str(PX_UM))
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


def test_the_verdict_does_not_sign_the_flagged_diameter(sem_view: Path, rendered_membrane: Path):
    judged = analysed("membrane", "--surface", str(sem_view), "--surface-pixel-size", str(PX_UM),
                      "--section", str(rendered_membrane / "m000_section.tif"), "--appearance", "auto",
                      "--grade", "claim1")
    (claim1,) = judged["verdict"]["grades"]
    assert not claim1["met"], claim1
    checks = [c for c in claim1["checks"] if c["quantity"] == "mean_pore_diameter_um"]
    assert checks and all(c["status"] == "marginal" and c["flags"] == ["appearance_ambiguous"] for c in checks), checks
    assert "--appearance sem or optical" in checks[0]["advice"], checks[0]


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
