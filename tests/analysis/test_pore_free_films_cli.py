"""Images our renderer never makes, measured by the ``castrig`` command in a subprocess as a user
meets them (a reviewer's probe): a film with no pores read as porous, a software-inverted view read
at a third of its opening ratio, a binary mask given as a section read as a lost interface."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from conftest import analysed, castrig, castrig_main, refused


def _smooth_texture(n: int, sigma_px: float, seed: int) -> np.ndarray:
    """A smooth random field of amplitude ±0.5 (its largest excursion 0.5)."""
    f = ndi.gaussian_filter(np.random.default_rng(seed).normal(0, 1, (n, n)), sigma_px)
    return f / np.abs(f).max() * 0.5


def _opening_bounds(out: dict) -> list[str]:
    """The status of every grade's opening-ratio bounds as the verdict judges the CLI's result."""
    from castrig.analysis.verdict import judge

    q = out["quality"]
    v = judge(out, intervals=q["intervals"], flagged=q["flagged"])
    return [c.status for g in v.grades for c in g.checks if c.quantity == "opening_ratio"]


def test_a_film_without_pores_reads_no_pores_and_a_few_real_pores_stay(tmp_path, capsys):
    """A film of grey 140 with a smooth texture of ±0.5 grey and no pore at all. Saved 8-bit it
    holds greys 139 and 140 only: it was read as a binary mask of pores, opening 0.49, 165 pores,
    no flag (a verdict would have signed it); saved as float it read opening 0.43 with 422 pores.
    Its "pores" are the film's own texture, no deeper than the film's spread: now flagged
    low_contrast, so no opening bound passes (a review found real 15-grey pores on a film of 5
    grey of texture read as no pores when this returned none: the image cannot tell the two). A few
    shallow real pores (12 grey) on a film of ±3 grey of such texture are all found, unflagged."""
    import imageio.v3 as iio

    tex = _smooth_texture(512, 6, 2)
    iio.imwrite(tmp_path / "film8.png", np.floor(140 + tex).astype(np.uint8))
    tifffile.imwrite(tmp_path / "film32.tif", (140 + tex).astype(np.float32))
    for name in ("film8.png", "film32.tif"):  # (the float file through the CLI's entry point in this process)
        args = ("surface", str(tmp_path / name), "--pixel-size", "0.1")
        out = analysed(*args) if name == "film8.png" else json.loads(castrig_main(capsys, "analyse", *args, "--json").stdout)
        flags = out["quality"]["flagged"]["opening_ratio"]
        assert "binary_mask" not in out["quality"], name
        # no dark structure over the grey steps at all (8-bit: no pores), or the texture's split flagged
        assert "low_contrast" in flags or (out["pore_count"] == 0 and "too_few_pores" in flags), (name, flags)
        assert _opening_bounds(out) and "pass" not in _opening_bounds(out), (name, out["opening_ratio"])

    from castrig.analysis import analyse_surface

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:512, :512]
    img = 140 + 6 * _smooth_texture(512, 8, 3)  # ±3 grey of texture
    for cy in (80, 200, 320, 440):
        for cx in (100, 250, 400):  # 12 pores of 8 px radius, 12 grey deep, pixel noise σ 2 grey
            img -= 12 * np.clip(8.5 - np.hypot(yy - cy - rng.uniform(-20, 20), xx - cx - rng.uniform(-20, 20)), 0, 1)
    img = np.clip(ndi.gaussian_filter(img, 1.0) + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
    m = analyse_surface(img, 0.1)
    assert (m.pore_count, m.border_pore_count) == (12, 0) and "low_contrast" not in m.flags
    assert m.opening_ratio == pytest.approx(12 * np.pi * 8**2 / 512**2, rel=0.1)


def test_a_view_inverted_by_software_reads_as_its_positive(tmp_path):
    """A twin top view inverted (65535 − v: bright pores on a dark film, the lamp's shading
    upside down) was turned over as a bright-pore view, K·L − v, keeping the lamp's shading on
    the pores: opening 0.23 for a true 0.55 (0.13 at 1024²), D 23 % short, nothing flagged; a
    twin bright-pore view inverted (dark pores) read 0.47 for 0.55 at 1024². A negative is told by how
    the lamp enters its phases (the phase that was bright carries the larger swing) and turned
    back."""
    from castrig.analysis import analyse_surface
    from castrig.sim.micrograph import ground_truth, make_structure, render_surface
    from castrig.sim.micrograph.surface import render_surface_bright

    rng = np.random.default_rng(3)
    px = 3.0 / 14
    st = make_structure(rng, mean_diameter_um=3.0, cv=0.1, opening_ratio=0.58, through_fraction=0.5, field_um=512 * px)
    refl, _ = render_surface(st, px, rng, bit_depth=16, illumination_gradient=0.4, blur_px=1.0, noise=0.02)
    truth = ground_truth(st)
    tifffile.imwrite(tmp_path / "negative.tif", (65535 - refl.astype(np.int64)).astype(np.uint16))
    out = analysed("surface", str(tmp_path / "negative.tif"), "--pixel-size", f"{px:.9f}")
    assert out["opening_ratio"] == pytest.approx(truth["opening_ratio"], abs=0.02)
    assert out["mean_pore_diameter_um"] == pytest.approx(truth["mean_pore_diameter_um"], rel=0.02)

    bright, _ = render_surface_bright(st, px, rng, bit_depth=16, illumination_gradient=0.4, blur_px=1.0, noise=0.02)
    m = analyse_surface((65535 - bright.astype(np.int64)).astype(np.uint16), px)
    assert m.opening_ratio == pytest.approx(truth["opening_ratio"], abs=0.02)
    assert m.mean_pore_diameter_um == pytest.approx(truth["mean_pore_diameter_um"], rel=0.02)


def test_a_binary_mask_given_as_a_section_says_so(tmp_path):
    """A 0/255 mask given as a section was measured as a micrograph: a film band read its
    thickness flagged ``saturated`` (its two values are the phases, not clipping), and a mask of
    film and support thresholded together read ``interface_lost`` with numpy's warnings on
    stderr, neither saying it was a mask. A film band is now measured as one (T from its rows,
    said to be a mask's, claim 1's features not measured: a mask does not show them); a mask
    whose phases show no film band is refused, naming the file and what its phases showed."""
    import imageio.v3 as iio

    band = np.zeros((256, 256), np.uint8)
    band[80:130] = 255  # the film thresholded: 50 rows at 0.4 µm
    band[100:130, 60:70] = 0  # (a notch in its bottom edge: 10 of 256 columns 30 rows thinner)
    iio.imwrite(tmp_path / "film-mask.png", band)
    out = analysed("section", str(tmp_path / "film-mask.png"), "--pixel-size", "0.4")
    assert out["mean_thickness_um"] == pytest.approx(0.4 * (50 - 30 * 10 / 256), rel=1e-6)
    assert out["quality"]["flags"] == [] and "binary_mask" in out["quality"]
    assert "2 grey levels: 0 and 255" in out["quality"]["binary_mask"]
    assert out["penetration_depth_um"] is None and out["support_continuity"] is None

    both = np.zeros((256, 256), np.uint8)
    both[80:] = 255  # film and support one phase, down to the bottom edge
    iio.imwrite(tmp_path / "film-and-support.png", both)
    done = castrig("analyse", "section", str(tmp_path / "film-and-support.png"), "--pixel-size", "0.4", "--json")
    refused(done, "film-and-support.png", "binary mask (2 grey levels: 0 and 255)", "one band")
    assert "RuntimeWarning" not in done.stderr
