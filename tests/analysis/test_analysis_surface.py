"""Surface analysis on shapes with exact answers (discs of known area) and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage as ndi

from castrig.analysis import analyse_surface, fft_pitch, nearest_neighbour_pitch
from castrig.sim.micrograph import disc_rect_area, ground_truth, make_structure, render_surface


def discs_image(shape, discs, *, film=200.0, pore=40.0, blur=1.0, noise=2.0, ss=8, seed=0, dtype=np.uint8):
    """Discs (row, col, radius) in px drawn by 8x8 supersampling, blurred, noisy, quantised."""
    h, w = shape
    cov = np.zeros((h * ss, w * ss), np.float32)
    yy = (np.arange(h * ss) + 0.5) / ss
    xx = (np.arange(w * ss) + 0.5) / ss
    for r0, c0, rad in discs:
        y0, y1 = max(int((r0 - rad - 1) * ss), 0), min(int((r0 + rad + 1) * ss), h * ss)
        x0, x1 = max(int((c0 - rad - 1) * ss), 0), min(int((c0 + rad + 1) * ss), w * ss)
        d2 = (yy[y0:y1, None] - r0) ** 2 + (xx[None, x0:x1] - c0) ** 2
        cov[y0:y1, x0:x1] = np.maximum(cov[y0:y1, x0:x1], d2 <= rad * rad)
    cov = cov.reshape(h, ss, w, ss).mean(axis=(1, 3))
    img = film - (film - pore) * cov
    if blur:
        img = ndi.gaussian_filter(img, blur)
    img = img + np.random.default_rng(seed).normal(0, noise, img.shape)
    info = np.iinfo(dtype)
    return np.clip(np.rint(img), info.min, info.max).astype(dtype)


def hex_discs(shape, pitch, radius, margin=0.0):
    h, w = shape
    out = []
    for i, r in enumerate(np.arange(margin, h - margin, pitch * math.sqrt(3) / 2)):
        off = (pitch / 2) * (i % 2)
        for c in np.arange(margin + off, w - margin, pitch):
            out.append((r, c, radius))
    return out


def test_discs_of_known_area_opening_and_diameter():
    shape = (256, 256)
    discs = hex_discs(shape, 16.0, 5.0, margin=8)
    img = discs_image(shape, discs, blur=1.2, noise=3)
    m = analyse_surface(img, 0.5)
    exact = sum(disc_rect_area(c, r, rad, shape[1], shape[0]) for r, c, rad in discs) / (shape[0] * shape[1])
    assert m.opening_ratio == pytest.approx(exact, abs=0.02)
    assert m.mean_pore_diameter_um == pytest.approx(2 * 5.0 * 0.5, rel=0.02)
    assert m.pore_diameter_std_um / m.mean_pore_diameter_um < 0.03  # all equal
    inside = [d for d in discs if d[0] - d[2] > 0 and d[1] - d[2] > 0 and d[0] + d[2] < 256 and d[1] + d[2] < 256]
    assert m.pore_count == len(inside)


def test_threshold_bias_removed_across_blur():
    """The same discs, increasingly blurred: the diameter must not drift with the blur."""
    shape = (200, 200)
    discs = hex_discs(shape, 20.0, 6.0, margin=10)
    ds = [analyse_surface(discs_image(shape, discs, blur=b, noise=1), 1.0).mean_pore_diameter_um for b in (0.0, 1.0, 2.0)]
    for d in ds:
        assert d == pytest.approx(12.0, rel=0.02)


def test_touching_pores_are_split():
    shape = (80, 120)
    # gap of one pixel between two discs of radius 10: blurred, they merge under a threshold
    discs = [(40.0, 38.0, 10.0), (40.0, 59.0, 10.0), (40.0, 90.0, 8.0)]
    img = discs_image(shape, discs, blur=1.5, noise=1)
    m = analyse_surface(img, 1.0)
    assert m.pore_count == 3
    assert sorted(m.diameters_um) == pytest.approx([16.0, 20.0, 20.0], rel=0.03)


def test_border_pores_counted_in_opening_not_in_diameters():
    shape = (100, 100)
    discs = [(50.0, 50.0, 8.0), (0.0, 30.0, 7.0), (60.0, 99.0, 9.0)]
    m = analyse_surface(discs_image(shape, discs, blur=1.0, noise=1), 1.0)
    exact = sum(disc_rect_area(c, r, rad, 100, 100) for r, c, rad in discs) / 1e4
    assert m.pore_count == 1
    assert m.border_pore_count == 2
    assert m.mean_pore_diameter_um == pytest.approx(16.0, rel=0.02)
    assert m.opening_ratio == pytest.approx(exact, abs=0.005)


def test_all_border_pores():
    shape = (64, 64)
    discs = [(0.0, 0.0, 10.0), (0.0, 63.0, 9.0), (63.0, 20.0, 8.0), (40.0, 0.0, 7.0)]
    m = analyse_surface(discs_image(shape, discs, noise=1), 1.0, discs_image(shape, [], noise=1))
    exact = sum(disc_rect_area(c, r, rad, 64, 64) for r, c, rad in discs) / 64**2
    assert m.pore_count == 0
    assert m.mean_pore_diameter_um is None and m.pore_diameter_std_um is None
    assert m.through_pore_fraction is None
    assert m.opening_ratio == pytest.approx(exact, abs=0.01)


def test_one_pore():
    m = analyse_surface(discs_image((64, 64), [(32.0, 30.0, 9.0)], noise=1), 0.2)
    assert m.pore_count == 1
    assert m.mean_pore_diameter_um == pytest.approx(18 * 0.2, rel=0.02)
    assert m.pore_diameter_std_um is None
    assert m.opening_ratio == pytest.approx(math.pi * 81 / 64**2, abs=0.005)


@pytest.mark.parametrize("img", [np.full((64, 64), 128, np.uint8), np.zeros((50, 70)), None])
def test_no_pores(img):
    if img is None:  # film only, with noise and uneven light
        y, x = np.mgrid[0:128, 0:128]
        img = (150 + 0.3 * x + np.random.default_rng(1).normal(0, 3, (128, 128))).astype(np.uint8)
    m = analyse_surface(img, 1.0)
    assert m.pore_count == 0 and m.opening_ratio == 0.0
    assert m.mean_pore_diameter_um is None


def test_through_pores_from_transmitted_view():
    shape = (128, 128)
    discs = hex_discs(shape, 25.0, 7.0, margin=14)
    refl = discs_image(shape, discs, noise=1)
    through = discs[::3]
    trans = discs_image(shape, through, film=30, pore=220, noise=1)  # bright where open
    m = analyse_surface(refl, 1.0, trans)
    inside = [d for d in discs if min(d[0] - d[2], d[1] - d[2], 128 - d[0] - d[2], 128 - d[1] - d[2]) > 0]
    expect = sum(d in through for d in inside) / len(inside)
    assert m.pore_count == len(inside)
    assert m.through_pore_fraction == pytest.approx(expect, abs=1e-9)


def test_dtypes_give_the_same_answer():
    discs = hex_discs((128, 128), 18.0, 5.5, margin=9)
    a8 = discs_image((128, 128), discs, noise=1, dtype=np.uint8)
    d8 = analyse_surface(a8, 1.0).mean_pore_diameter_um
    d16 = analyse_surface(a8.astype(np.uint16) * 257, 1.0).mean_pore_diameter_um
    dfl = analyse_surface(a8 / 255.0, 1.0).mean_pore_diameter_um
    assert d16 == pytest.approx(d8, rel=1e-3) and dfl == pytest.approx(d8, rel=1e-3)


def test_pitch_from_lattice():
    discs = hex_discs((256, 256), 16.0, 5.0, margin=8)
    img = discs_image((256, 256), discs, noise=1)
    m = analyse_surface(img, 0.5)
    assert m.pore_pitch_um == pytest.approx(8.0, rel=0.02)
    assert nearest_neighbour_pitch(np.array([[r, c] for r, c, _ in discs])) == pytest.approx(16.0, rel=1e-6)
    assert fft_pitch(img) == pytest.approx(16.0, rel=0.05)


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        analyse_surface(np.zeros((4, 4, 3)), 1.0)
    with pytest.raises(ValueError):
        analyse_surface(np.zeros((8, 8)), 0.0)
    with pytest.raises(ValueError):
        analyse_surface(np.zeros((8, 8)), 1.0, np.zeros((9, 8)))


def test_generator_ground_truth_within_goals():
    """A small rendered film (uneven light, blur, noise, 16-bit) against its geometry."""
    rng = np.random.default_rng(7)
    px = 0.25
    st = make_structure(rng, mean_diameter_um=2.5, cv=0.12, opening_ratio=0.45, through_fraction=0.6, field_um=384 * px)
    refl, trans = render_surface(st, px, rng, bit_depth=16, illumination_gradient=0.4, blur_px=1.2, noise=0.03)
    gt = ground_truth(st)
    m = analyse_surface(refl, px, trans)
    assert m.mean_pore_diameter_um == pytest.approx(gt["mean_pore_diameter_um"], rel=0.02)
    assert abs(m.pore_diameter_std_um / m.mean_pore_diameter_um - gt["pore_diameter_std_um"] / gt["mean_pore_diameter_um"]) < 0.03
    assert m.opening_ratio == pytest.approx(gt["opening_ratio"], abs=0.02)
    assert m.through_pore_fraction == pytest.approx(gt["through_pore_fraction"], abs=0.05)
    assert m.pore_count == pytest.approx(gt["pore_count"], rel=0.05)
