"""Section analysis on bands of known thickness and on rendered films with ground truth."""

from __future__ import annotations


import numpy as np
import pytest
from scipy import ndimage as ndi

from castrig.analysis import analyse_section
from castrig.sim.micrograph import ground_truth, make_structure, render_section


def band_image(top_rows, interface_row: float, *, h=160, holes=(), notches=(), blur=1.0, noise=0.01, seed=0, dtype=np.uint8):
    """Background 0.08 above ``top_rows`` (per column, float), film 0.85 down to
    ``interface_row``, textured support 0.45 below; holes/notches as (row, col, radius) discs."""
    rng = np.random.default_rng(seed)
    w = len(top_rows)
    ss = 4
    yy = (np.arange(h * ss) + 0.5)[:, None] / ss
    xx = (np.arange(w * ss) + 0.5)[None, :] / ss
    top = np.repeat(np.asarray(top_rows, float), ss)[None, :]
    film = (yy >= top) & (yy < interface_row)
    hole = np.zeros_like(film)
    for r, c, rad in list(holes) + list(notches):
        hole |= (yy - r) ** 2 + (xx - c) ** 2 <= rad * rad
    support = yy >= interface_row
    tex = np.repeat(np.repeat(ndi.gaussian_filter(rng.normal(size=(h, w)), 2.0), ss, 0), ss, 1)
    tex /= tex.std()
    img = 0.08 * (~film & ~support) + 0.85 * (film & ~hole) + 0.10 * (film & hole) + 0.45 * (1 + 0.08 * tex) * support
    img = img.reshape(h, ss, w, ss).mean(axis=(1, 3))
    img = ndi.gaussian_filter(img, blur) + rng.normal(0, noise, (h, w))
    info = np.iinfo(dtype)
    return np.clip(np.rint(img * 0.9 * info.max), 0, info.max).astype(dtype)


def test_flat_band_of_known_thickness():
    img = band_image(np.full(300, 40.3), 100.3)  # 60 px
    m = analyse_section(img, 0.1)
    assert m.mean_thickness_um == pytest.approx(6.0, rel=0.01)
    assert m.thickness_std_um < 0.05 * 6.0


def test_pores_in_the_film_belong_to_the_film():
    """Closed holes, holes on the interface and notches open to the top do not thin the film."""
    holes = [(70.0, 50.0, 12.0), (90.0, 150.0, 10.0), (95.0, 230.0, 8.0)]  # the last two touch the interface
    notches = [(40.0, 100.0, 14.0), (42.0, 270.0, 10.0)]
    img = band_image(np.full(300, 40.0), 100.0, holes=holes, notches=notches)
    m = analyse_section(img, 0.5)
    assert m.mean_thickness_um == pytest.approx(30.0, rel=0.03)
    assert m.thickness_std_um / m.mean_thickness_um < 0.05


def test_sloped_band_profile_and_std():
    x = np.arange(400)
    top = 30 + 20 * x / 399  # thickness from 70 to 50 px
    img = band_image(top, 100.0, dtype=np.uint16, h=150)
    m = analyse_section(img, 1.0)
    t = 100.0 - top
    assert m.mean_thickness_um == pytest.approx(t.mean(), rel=0.01)
    assert m.thickness_std_um == pytest.approx(t.std(), abs=0.05 * t.mean())
    assert np.nanmax(np.abs(m.thickness_profile_um - t)) < 2.0


def test_upside_down_image_is_flipped():
    img = band_image(np.full(200, 40.0), 90.0)
    up = analyse_section(img, 1.0)
    down = analyse_section(img[::-1], 1.0)
    assert down.mean_thickness_um == pytest.approx(up.mean_thickness_um, rel=0.01)


@pytest.mark.parametrize("img", [np.full((100, 100), 7, np.uint8), np.zeros((50, 60)), np.random.default_rng(0).normal(100, 1, (80, 80))])
def test_no_film_is_unknown(img):
    m = analyse_section(img, 1.0)
    assert m.mean_thickness_um is None and m.thickness_std_um is None
    assert m.to_dict()["mean_thickness_um"] is None


@pytest.mark.parametrize("seed,d_um,t_over_d,t_cv,opening", [(3, 4.0, 1.2, 0.15, 0.5), (4, 10.0, 0.6, 0.05, 0.3)])
def test_rendered_section_against_geometry(seed, d_um, t_over_d, t_cv, opening):
    rng = np.random.default_rng(seed)
    t_um = t_over_d * d_um
    px = t_um / 40
    st = make_structure(rng, mean_diameter_um=d_um, opening_ratio=opening, thickness_um=t_um, thickness_cv=t_cv,
                        field_um=60 * d_um, section_length_um=600 * px, support_pore_um=2 * d_um)
    img = render_section(st, px, rng, bit_depth=8, blur_px=1.2, noise=0.03, illumination_gradient=0.2)
    gt = ground_truth(st, section_pixel_size_um=px)
    m = analyse_section(img, px)
    assert m.mean_thickness_um == pytest.approx(gt["mean_thickness_um"], rel=0.03)
    assert abs(m.thickness_std_um / m.mean_thickness_um - gt["thickness_std_um"] / gt["mean_thickness_um"]) < 0.05
    if gt["support_pore_diameter_um"] is not None and m.support_pore_diameter_um is not None:
        assert m.support_pore_diameter_um == pytest.approx(gt["support_pore_diameter_um"], rel=0.15)


@pytest.mark.parametrize("variant", [{"flip": True}, {"film_darker": True}, {"tilt_deg": 2.5}, {"tilt_deg": -1.5},
                                     {"flip": True, "film_darker": True, "tilt_deg": 2.0}])
def test_section_appearance_variants(variant):
    """Issue 16: background below, a film darker than the support, a tilted interface — the
    orientation and contrast are found from the image, the tilt followed per column."""
    rng = np.random.default_rng(11)
    d_um, t_um = 5.0, 6.0
    px = t_um / 40
    st = make_structure(rng, mean_diameter_um=d_um, opening_ratio=0.4, thickness_um=t_um, thickness_cv=0.1,
                        field_um=60 * d_um, section_length_um=800 * px, support_pore_um=2 * d_um,
                        penetration_depth_um=2.5, penetration_fraction=0.3, communication=0.5, support_link_prob=0.8)
    img = render_section(st, px, rng, bit_depth=8, blur_px=1.2, noise=0.03, illumination_gradient=0.2, **variant)
    gt = ground_truth(st, section_pixel_size_um=px)
    m = analyse_section(img, px)
    assert m.mean_thickness_um == pytest.approx(gt["mean_thickness_um"], rel=0.03)
    assert m.penetration_fraction == pytest.approx(gt["penetration_fraction"], abs=0.05)
    assert m.penetration_depth_um == pytest.approx(gt["penetration_depth_um"], rel=0.15)
    if not variant.get("tilt_deg"):
        assert m.support_pore_diameter_um == pytest.approx(gt["support_pore_diameter_um"], rel=0.1)


def test_support_pores_joined_by_channels_are_measured_one_by_one():
    """Channel crossings are no pores; pores touching through the blur are split (issue 16)."""
    rng = np.random.default_rng(1001)
    st = make_structure(rng, mean_diameter_um=1.5, cv=0.15, opening_ratio=0.3, thickness_um=1.5, thickness_cv=0.1,
                        field_um=150, section_length_um=1024 * 0.03, support_pore_um=3.0, support_link_prob=0.9)
    img = render_section(st, 0.03, rng, bit_depth=8, blur_px=1.5, noise=0.03)
    gt = ground_truth(st, section_pixel_size_um=0.03)
    m = analyse_section(img, 0.03)
    if gt["support_pore_diameter_um"] is not None and m.support_pore_diameter_um is not None:
        assert m.support_pore_diameter_um == pytest.approx(gt["support_pore_diameter_um"], rel=0.1)
    assert m.support_continuity == pytest.approx(gt["support_continuity"], abs=0.15)


@pytest.mark.parametrize("variant", [{"support_level": 0.6, "support_texture": 0.15},
                                     {"film_darker": True, "support_texture": 0.15}])
@pytest.mark.parametrize("depth_px", [0.0, 5.0, 12.0])
def test_coarse_texture_grains_are_no_tongues(variant, depth_px):
    """A coarse-textured support whose grains reach the film's level: shallow tongues (5 px)
    are found and measured, grains joined to the film's bottom are not taken for tongues (the
    tongue's grey is compared with the film's own at the same distance from its edge, its width
    with the grain size measured in the image)."""
    rng = np.random.default_rng(21)
    d_um, t_um = 5.0, 6.0
    px = t_um / 45
    st = make_structure(rng, mean_diameter_um=d_um, opening_ratio=0.3, thickness_um=t_um, thickness_cv=0.05,
                        field_um=60 * d_um, section_length_um=1024 * px, support_pore_um=2 * d_um,
                        penetration_depth_um=depth_px * px, penetration_fraction=0.3 if depth_px else 0.0)
    img = render_section(st, px, rng, bit_depth=8, blur_px=1.2, noise=0.03, illumination_gradient=0.1, **variant)
    gt = ground_truth(st, section_pixel_size_um=px)
    m = analyse_section(img, px)
    assert m.mean_thickness_um == pytest.approx(gt["mean_thickness_um"], rel=0.03)
    # 5 px deep: parts of tongues whose bottom the grains blur are still missed (known limit)
    assert m.penetration_fraction == pytest.approx(gt["penetration_fraction"], abs=0.05 if depth_px != 5 else 0.09)
    if depth_px:
        assert m.penetration_depth_um == pytest.approx(gt["penetration_depth_um"], rel=0.2)
    else:
        assert m.penetration_sites <= 1


@pytest.mark.parametrize(("variant", "frac_tol"), [({"film_darker": True, "support_texture": 0.15}, 0.06),
                                                   ({"support_level": 0.6, "support_texture": 0.15}, 0.04)])
def test_shallow_tongues_on_a_coarse_texture_are_measured_without_bias(variant, frac_tol):
    """Tongues 4.5 px deep, 12–24 px wide, into a support whose grains reach the film's grey
    (the benchmark's sec_dark / sec_texture families): over four sections the mean depth within
    10 % of the truth and the fraction entered within ``frac_tol``. Before: a tongue had to be
    3 px deep in every column (with the noise and the grains at its bottom, a shallow tongue's
    columns scatter by about a pixel), so the tongues whose columns happened to read deep were
    kept and the others lost — under a dark film the depth came out ~19 % deep and the fraction
    0.08 short; and the interface under each tongue was taken from the one column either side."""
    errs, fracs = [], []
    for seed in (1, 2, 3, 4):
        rng = np.random.default_rng(seed)
        px = 6.0 / 45
        st = make_structure(rng, mean_diameter_um=5.0, opening_ratio=0.3, thickness_um=6.0, thickness_cv=0.05,
                            field_um=300.0, section_length_um=1024 * px, support_pore_um=24 * px,
                            penetration_depth_um=4.5 * px, penetration_fraction=0.35)
        img = render_section(st, px, rng, bit_depth=8, blur_px=1.5, noise=0.03, illumination_gradient=0.1, **variant)
        gt = ground_truth(st, section_pixel_size_um=px)
        m = analyse_section(img, px)
        assert m.mean_thickness_um == pytest.approx(gt["mean_thickness_um"], rel=0.03)
        errs.append(m.penetration_depth_um / gt["penetration_depth_um"] - 1)
        fracs.append(m.penetration_fraction - gt["penetration_fraction"])
    assert abs(float(np.mean(errs))) < 0.10, errs
    assert abs(float(np.mean(fracs))) < frac_tol, fracs


def test_a_run_of_cavities_under_the_surface_keeps_the_top():
    """Cavities just under the surface, side by side over 300 columns (of a film 40 px thick):
    most open to the top, every fourth under a lid 2 px thin that the blur dims below the film's
    threshold. The lids hold the top envelope at the surface (it sagged 12 px into the run)."""
    holes = [(51.0 if k % 4 == 0 else 46.0, float(c), 9.0) for k, c in enumerate(range(150, 450, 16))]
    img = band_image(np.full(600, 40.0), 80.0, holes=holes, blur=1.5, noise=0.02, h=140)
    m = analyse_section(img, 1.0)
    assert m.mean_thickness_um == pytest.approx(40.0, rel=0.01)
    assert m.thickness_std_um < 0.02 * 40.0
    assert np.nanmax(m.top_row[150:450]) < 41.0


def _bench_section(seed, i, d_um, px_per_pore, cv, opening, through, t_over_d, t_cv, blur, noise, gradient, bits, **variant):
    """The section of case i as benchmarks/analysis_accuracy.py renders it in a section family."""
    rng = np.random.default_rng(seed + i)
    t_um = t_over_d * d_um
    sec_px = t_um / rng.uniform(30, 70)
    sp = max(2 * d_um, 1.0)
    r = np.random.default_rng([seed, i, 1])
    feat = {"penetration_depth_um": sp * r.uniform(0.1, 0.4), "penetration_fraction": r.uniform(0.1, 0.5),
            "communication": r.uniform(0.0, 0.9), "support_link_prob": r.uniform(0.6, 1.0)}
    st = make_structure(rng, mean_diameter_um=d_um, cv=cv, opening_ratio=opening, through_fraction=through,
                        thickness_um=t_um, thickness_cv=t_cv, support_pore_um=sp, field_um=1024 * d_um / px_per_pore,
                        section_length_um=1024 * sec_px, **feat)
    img = render_section(st, sec_px, rng, bit_depth=bits, illumination_gradient=gradient * 0.5, blur_px=blur,
                         noise=noise, **variant)
    return img, sec_px, ground_truth(st, section_pixel_size_um=sec_px)


def test_a_thin_films_thickness_is_measured_where_its_profile_was_noise():
    """Benchmark seed 1000 sec_thin case 5 (T/D 0.19, 33 px thick, polymer tongues under 42 % of
    the interface): the twin's thickness profile jumped by 3 px between pixel columns and sank
    to 10 px over 160 columns, a dip the top's envelope bridged: T 15 % over and the interface
    'lost'. With a smooth profile it measures within the goal, and is followed."""
    t_over_d = float(np.random.default_rng([1000, 5, 4]).uniform(0.1, 0.35))
    img, px, gt = _bench_section(1000, 5, 7.0, 20, 0.2, 0.15, 0.35, t_over_d, 0.3, 1.5, 0.02, 0.2, 8)
    m = analyse_section(img, px)
    assert "interface_lost" not in m.flags
    assert m.mean_thickness_um == pytest.approx(gt["mean_thickness_um"], rel=0.03)
    assert m.penetration_depth_um == pytest.approx(gt["penetration_depth_um"], rel=0.1)


def test_the_interface_beside_a_film_cut_by_wide_cavities_is_the_supports_top_edge():
    """Benchmark seed 1000 sec_thin case 11 (T/D 0.12, pores 25 um, a quarter of the section with
    no film at its left side, another cavity cut through it): the interface there was carried
    from a cavity's curved side, 26 px above the support's top edge, plain to see: T 15 %
    short. Where no film lies over the support, its top edge on the interface's line is read."""
    t_over_d = float(np.random.default_rng([1000, 11, 4]).uniform(0.1, 0.35))
    img, px, gt = _bench_section(1000, 11, 25.0, 16, 0.1, 0.6, 0.6, t_over_d, 0.1, 1.5, 0.04, 0.3, 8)
    m = analyse_section(img, px)
    assert m.mean_thickness_um == pytest.approx(gt["mean_thickness_um"], rel=0.03)
    assert np.nanmax(np.abs(m.interface_row - np.nanmedian(m.interface_row))) < 2.0
    assert "interface_lost" in m.flags  # the film's top is not seen over that quarter


def test_a_tongue_wider_than_the_walls_of_a_film_cut_through_is_not_taken_for_the_film():
    """Benchmark seed 1000 sec_thin case 2 (T/D 0.17, 45 px thick, cavities cut through the film
    but for thin walls, a tongue 450 px wide and 130 px deep): the film's bottom edge ran along
    the tongue's flat bottom over more columns than along the interface, which was read there:
    T 176 px for 45, and no tongue. The support's top edge beside the walls, where no film lies
    over it, shows where the interface is."""
    t_over_d = float(np.random.default_rng([1000, 2, 4]).uniform(0.1, 0.35))
    img, px, gt = _bench_section(1000, 2, 2.5, 10, 0.03, 0.60, 0.95, t_over_d, 0.02, 1.2, 0.03, 0.3, 8)
    m = analyse_section(img, px)
    assert m.mean_thickness_um == pytest.approx(gt["mean_thickness_um"], rel=0.03)
    assert m.penetration_depth_um == pytest.approx(gt["penetration_depth_um"], rel=0.1)
    assert m.penetration_fraction == pytest.approx(gt["penetration_fraction"], abs=0.03)


def test_a_film_of_a_few_struts_is_measured_from_the_supports_top_edge_beside_them():
    """Benchmark seed 1000 sec_thin case 13 (T/D 0.31, 62 px thick, through-pores 85 %): the film
    is a few struts between cavities cut through it, under a fifth of the columns, and was not
    measured at all. Its top is the struts' tops, the interface the support's top edge, seen
    where no film lies over it."""
    t_over_d = float(np.random.default_rng([1000, 13, 4]).uniform(0.1, 0.35))
    img, px, gt = _bench_section(1000, 13, 8.0, 11, 0.05, 0.58, 0.85, t_over_d, 0.12, 1.2, 0.02, 0.3, 16)
    m = analyse_section(img, px)
    assert m.mean_thickness_um == pytest.approx(gt["mean_thickness_um"], rel=0.03)
    assert m.thickness_std_um == pytest.approx(gt["thickness_std_um"], abs=0.05 * gt["mean_thickness_um"])
    assert np.nanmax(np.abs(m.interface_row - np.nanmedian(m.interface_row))) < 2.0


def test_a_dark_film_mostly_cut_by_cavities_is_seen_dark():
    """A film darker than its textured support, cut nearly through by cavities (benchmark seed
    3000, case 2, sec_dark): most columns meet a thin strip of film under a cavity (its grey
    blurred into the support's) or the support first, and outvoted the walls — the film was
    taken for the bright phase, the support's grains for the film: T 65 % short, unflagged.
    Only the columns meeting the film's top surface now decide."""
    img, px, gt = _bench_section(3000, 2, 2.5, 10, 0.03, 0.60, 0.95, 0.6, 0.02, 1.2, 0.03, 0.3, 8,
                                 film_darker=True, support_texture=0.15)
    m = analyse_section(img, px)
    assert m.mean_thickness_um == pytest.approx(gt["mean_thickness_um"], rel=0.03)
    assert m.penetration_fraction == pytest.approx(gt["penetration_fraction"], abs=0.03)


@pytest.mark.parametrize("case", [(3000, 4, 5.0, 9, 0.10, 0.55, 0.80, 0.8, 0.05, 1.2, 0.03, 0.4, 8),
                                  (2000, 7, 12.0, 18, 0.12, 0.50, 0.70, 0.5, 0.15, 1.5, 0.02, 0.4, 8)])
def test_smoothness_tells_the_film_only_from_a_rougher_support(case):
    """A dark film whose support's grain texture, measured over 7 × 7 px, is about as rough as
    the film's own noise (benchmark seed 3000 case 4 and seed 2000 case 7, sec_dark): the
    smoothness test kept a third of the film's columns, the interface was lost (T 62 % short or
    none). Smoothness is asked only of a support at least twice as rough as the film."""
    img, px, gt = _bench_section(*case, film_darker=True, support_texture=0.15)
    m = analyse_section(img, px)
    assert m.mean_thickness_um == pytest.approx(gt["mean_thickness_um"], rel=0.03)
    assert m.penetration_fraction == pytest.approx(gt["penetration_fraction"], abs=0.03)


def test_a_support_pore_cut_by_the_image_bottom_is_not_counted_whole():
    """A support pore 158 px wide cut 25 px by the image's bottom (benchmark seed 3000 case 7):
    its mask stopped 2 px short of the bottom row, so it passed for a whole pore (rebuilt from
    its inscribed circle, 136 px) and the mean support pore diameter came out 7 % short. Pores
    within 2 px of the image's sides and bottom (its last 3 rows with the 1 px touch) are now
    taken as cut."""
    img, px, gt = _bench_section(3000, 7, 12.0, 18, 0.12, 0.50, 0.70, 0.5, 0.15, 1.5, 0.02, 0.4, 8, flip=True)
    m = analyse_section(img, px)
    assert m.support_pore_diameter_um == pytest.approx(gt["support_pore_diameter_um"], rel=0.02)


def test_a_tilted_sections_pore_is_one_pore_not_two_halves(accuracy_case):
    """Benchmark seed 2000 sec_tilt case 2: the section sheared by its tilt makes each support
    pore's largest inscribed circle a short ridge, whose two equal maxima 3.6 px apart did not
    touch: two peaks, the pore split in halves (117 px each for one of 164 px), support D 14 %
    short with no flag. Peaks within half a radius of each other are now one pore's."""
    truth, ours, _ = accuracy_case("sec_tilt", 2, 2000)
    assert ours["support_pore_diameter_um"] == pytest.approx(truth["support_pore_diameter_um"], rel=0.05)


def test_clusters_joined_through_a_cap_on_the_image_bottom_are_one(accuracy_case):
    """Benchmark seed 4000 sec_tongues case 1: two pore clusters meet only in the cap of a pore
    centred below the image, 1-3 rows high on the bottom row. The pore mask's opening counted the
    outside as matrix and eroded the cap: two clusters, the one not near the interface left out,
    continuity 0.45 for 0.97, unflagged and outside its interval. The opening now takes the pore
    phase as continuing past the image's edges."""
    truth, ours, _ = accuracy_case("sec_tongues", 1, 4000)
    assert truth["support_continuity"] > 0.9
    assert ours["support_continuity"] == pytest.approx(truth["support_continuity"], abs=0.05)


def test_a_thin_film_cut_through_by_its_pores_is_followed_not_lost(accuracy_case):
    """Benchmark seed 1000 sec_thin case 0 (T/D 0.2): two through-pores cut the film over 145 and
    150 columns of 1024, the support's bare edge plain to see in both. Each was counted lost as a
    gap wider than a tenth of the width: interface_lost, and T (within 2 %) not trusted by the
    verdict — 54 of 70 such films over five seeds. A gap where the support's edge is seen is a
    pore, bridged as any pore is."""
    truth, ours, _ = accuracy_case("sec_thin", 0, 1000)
    flags = ours["_quality"]["flags"]
    assert "interface_lost" not in flags
    assert ours["mean_thickness_um"] == pytest.approx(truth["mean_thickness_um"], rel=0.03)


@pytest.mark.parametrize("family,i,seed", [("sec_thin", 1, 3000), ("sec_dark", 12, 5000)])
def test_a_thickness_read_wrong_stays_flagged(accuracy_case, family, i, seed):
    """Benchmark seed 3000 sec_thin case 1: T read 6x its truth over a section whose film is seen
    over two thirds of the width; seed 5000 sec_dark case 12: the interface read 45 px deep in a
    textured support under a dark film, T 54 % off, film columns looking like tongues that start
    at the interface. Counting the support's bare edge, or such tongues, as followed must not
    sign them."""
    truth, ours, _ = accuracy_case(family, i, seed)
    assert abs(ours["mean_thickness_um"] / truth["mean_thickness_um"] - 1) > 0.1  # (the case as found)
    assert "interface_lost" in ours["_quality"]["flagged"]["mean_thickness_um"]


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_a_twin_films_tongues_under_its_through_pores_are_no_lost_interface(tmp_path):
    """`castrig run recipes/grade-claim1.yaml --seed 3` on the twin (80 %RH, a film a fifth as
    thick as its pores): once a tongue under a through-pore was no film, the tongues over a
    tenth of the section at its side counted as columns where the film's top was not seen —
    interface_lost, on a membrane whose T is within 1 %. The top is bridged over such a tongue
    as over the pore it lies under."""
    import json
    import sqlite3

    from conftest import ROOT, castrig

    res = castrig("run", str(ROOT / "recipes" / "grade-claim1.yaml"), "--data", str(tmp_path), "--seed", "3", "-q")
    assert res.returncode == 0, res.stderr
    (run,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    rows = dict(sqlite3.connect(run / "run.sqlite").execute("select name, json from results"))
    metrics = [json.loads(j) for name, j in rows.items() if name.endswith("/metrics")]
    truth = [json.loads(j) for name, j in rows.items() if name.endswith("/truth")]
    assert len(metrics) == len(truth) == 1
    assert not any("interface_lost" in j for j in rows.values())
    assert metrics[0]["mean_thickness_um"] == pytest.approx(truth[0]["mean_thickness_um"], rel=0.03)


def test_a_tongue_under_a_through_pore_is_no_film(accuracy_case):
    """Benchmark seed 5000 sec_thin case 3: a tongue at the image's side under a through-pore
    starts at the interface with no film over it; its top was taken for the film's top, 35 px
    low over 27 columns: σt 0.166 um for 0.109 (flagged only because the pore beside it was
    counted lost). Such a tongue's columns hold no film."""
    truth, ours, _ = accuracy_case("sec_thin", 3, 5000)
    assert "interface_lost" not in ours["_quality"]["flags"]
    assert ours["thickness_std_um"] == pytest.approx(truth["thickness_std_um"], abs=0.05 * truth["mean_thickness_um"])
    assert ours["penetration_depth_um"] == pytest.approx(truth["penetration_depth_um"], rel=0.1)


def test_continuity_near_the_interface_with_no_whole_support_pore(accuracy_case):
    """Benchmark seed 2000 sec_thin case 10: no support pore lies whole in the image; "near the
    interface" was a pore diameter from the median piece (caps, channel stubs), which left the
    one cluster 0.85 of a pore below the interface out: continuity 0 for 1. The largest piece
    bounds the pores' size from below."""
    truth, ours, _ = accuracy_case("sec_thin", 10, 2000)
    assert truth["support_continuity"] == 1.0
    assert ours["support_continuity"] == pytest.approx(1.0, abs=0.05)


def _support_section(pores, links, *, depth_um=20.0, length_um=60.0, px=0.1, seed=7):
    """A film over a support of hand-placed pores (x, depth, diameter µm) and channels (index
    pairs), rendered at ``px`` µm; its ground truth."""
    import dataclasses

    rng = np.random.default_rng(seed)
    st = make_structure(rng, mean_diameter_um=2.0, opening_ratio=0.3, thickness_um=3.0, thickness_cv=0.03,
                        field_um=80, section_length_um=length_um, support_depth_um=depth_um)
    p = np.asarray(pores, float)
    st = dataclasses.replace(st, support_centres_um=p[:, :2], support_diameters_um=p[:, 2],
                             support_links=np.asarray(links, int).reshape(-1, 2))
    img = render_section(st, px, rng, bit_depth=8, blur_px=1.2, noise=0.02)
    return st, img, ground_truth(st, section_pixel_size_um=px)


def test_continuity_truth_is_the_pore_phase_the_image_shows():
    """Support continuity's truth is that of the pore phase as rendered inside the image, not a
    graph of the links: a channel from a pore near the interface (A) to one cut by the bottom
    (B) runs through a third pore (M, neither near the interface nor at the bottom), which the
    image shows joined to both — the truth left M out (0.73 against the 1.0 measured); and a
    channel whose junction with a pore lies below the image's bottom (C to B, benchmark seed
    4000 case 13: 0.24 off) joins nothing there, while it takes C's cluster to the bottom
    (a pore wholly below a tilted image's bottom joined others the same way: seed 4000 sec_tilt
    case 0, 0.19 off)."""
    from castrig.sim.micrograph import support_spanning

    st, img, gt = _support_section([(8.0, 3.5, 6.0), (52.0, 18.0, 6.0), (30.0, 11.5, 6.0)], [(0, 1)])
    assert support_spanning(st).tolist() == [True, True, True]
    m = analyse_section(img, 0.1)
    assert gt["support_continuity"] == pytest.approx(1.0)
    assert m.support_continuity == pytest.approx(gt["support_continuity"], abs=0.05)
    # C (not near the interface: 8 µm down, the whole pores' mean 7 µm) joined to B (cut by the
    # bottom, joined to A) by a channel meeting B only below the image's bottom: the two are
    # separate in the image; C reaches the bottom by the channel alone, not the interface
    st, img, gt = _support_section([(26.0, 3.5, 6.0), (26.0, 22.95, 8.0), (48.0, 12.0, 8.0)], [(0, 1), (1, 2)])
    assert support_spanning(st, band_um=7.0).tolist() == [True, True, False]
    m = analyse_section(img, 0.1)
    assert m.support_continuity == pytest.approx(gt["support_continuity"], abs=0.05)


def test_continuity_truth_takes_nearness_from_what_the_image_shows_of_a_pore_cut_by_its_side():
    """A pore centred beyond the image's side (64 µm of 60) shows only a cap there, whose
    highest point (8 µm down) lies further from the interface than a pore diameter (7 µm), while
    its whole disc's top (6 µm) does not: its cluster, joined to a pore cut by the bottom, does
    not reach the interface in the image. The truth took the whole disc (0.41 for the 0.0
    measured; benchmark seed 1000 sec_tongues case 3: 0.99 for 0.54)."""
    from castrig.sim.micrograph import support_spanning

    st, img, gt = _support_section([(15.0, 10.0, 7.0), (64.0, 11.0, 10.0), (52.0, 18.5, 6.0)], [(1, 2)])
    assert gt["support_pore_diameter_um"] == pytest.approx(7.0)
    assert support_spanning(st, band_um=7.0).tolist() == [False, False, False]
    assert gt["support_continuity"] == 0.0
    m = analyse_section(img, 0.1)
    assert m.support_continuity == pytest.approx(gt["support_continuity"], abs=0.05)


def test_a_support_whose_pores_darken_its_end_of_the_image_is_not_taken_for_the_background(tmp_path):
    """A thin film (3 µm, 30 px) over a deep support (120 µm) whose two large pores fill most
    of the image's bottom rows: the bottom band's mean fell below the top band's (background
    and film) and the section was read upside down -- T not measured (interface_lost); in the
    benchmark (seed 1000 sec_thin case 11) T 143 µm for 3.0. Measured as a user does."""
    import json

    import tifffile

    from conftest import castrig

    st, img, gt = _support_section([(15.0, 120.0, 22.0), (45.0, 120.0, 22.0)], [], depth_um=120.0)
    assert img[-3:].mean() < img[:40].mean()  # the trap: the support's end is the darker band
    path = tmp_path / "thin_over_deep.tif"
    tifffile.imwrite(path, img)
    done = castrig("analyse", "section", str(path), "--pixel-size", "0.1", "--json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert "interface_lost" not in got["quality"]["flags"], got["quality"]
    assert got["mean_thickness_um"] == pytest.approx(gt["mean_thickness_um"], rel=0.03)


def test_a_grain_at_the_image_side_is_no_tongue_beside_deep_ones():
    """A dark grain of a coarse support met at the film's bottom by the image's side (benchmark
    seed 5000 sec_dark case 4: 5 columns, 5.7 px deep, grain half width 3.2) passed for a
    tongue cut by the side (1.5 half widths wide asked there) and halved the mean depth beside
    the one tongue, 31 px deep: 2.23 µm for 3.76, unflagged. A side piece too narrow for the
    grain test inside and no deeper than a grain is kept only as deep as the tongues inside
    (half their median); shallow side tongues beside shallow tongues stay (seed 1000 case 5)."""
    img, px, gt = _bench_section(5000, 4, 5.0, 9, 0.10, 0.55, 0.80, 0.8, 0.05, 1.2, 0.03, 0.4, 8,
                                 film_darker=True, support_texture=0.15)
    m = analyse_section(img, px)
    assert not m.flags
    assert m.penetration_sites == 1
    assert m.penetration_depth_um == pytest.approx(gt["penetration_depth_um"], rel=0.05)
    img, px, gt = _bench_section(1000, 5, 7.0, 20, 0.20, 0.15, 0.35, 2.0, 0.30, 1.5, 0.02, 0.2, 8,
                                 film_darker=True, support_texture=0.15)
    m = analyse_section(img, px)
    assert np.isfinite(m.penetration_rows[:4]).any()  # the side tongue (4.4 px deep) kept
    assert m.penetration_depth_um == pytest.approx(gt["penetration_depth_um"], rel=0.1)


def test_lids_cut_off_by_windows_hold_the_top_on_a_coarse_texture():
    """A row of cavities open to the top, a window through each wall under its lid (benchmark
    seed 4000 sec_texture case 0): the lids, joined to nothing, stayed out of the film's mask
    (its threshold halfway to a bright support's matrix) and the top sagged 11 px onto the film
    under them over ~300 columns — T 5 % short, unflagged. Lids wholly above the film's mask,
    within half its thickness, now hold the top up like those joined to the film."""
    img, px, gt = _bench_section(4000, 0, 0.8, 9, 0.05, 0.45, 0.60, 1.5, 0.05, 1.0, 0.02, 0.3, 8,
                                 support_level=0.6, support_texture=0.15)
    m = analyse_section(img, px)
    assert m.mean_thickness_um == pytest.approx(gt["mean_thickness_um"], rel=0.01)
    assert m.thickness_std_um / m.mean_thickness_um == pytest.approx(gt["thickness_std_um"] / gt["mean_thickness_um"],
                                                                     abs=0.01)


def test_a_small_support_pore_joined_by_channels_is_measured():
    """A support pore 0.6 × its neighbours' diameter, joined to them by channels, had no peak
    of its own (a peak had to reach 0.65 of the typical radius, set against channel crossings)
    and was lost whole: the mean support pore diameter 12 % over here (benchmark seed 5000
    case 6: a pore 0.73 × the mean, 5.8 % over, unflagged)."""
    st, img, gt = _support_section([(12.0, 9.0, 12.0), (40.0, 10.0, 13.0), (26.0, 22.0, 7.0), (66.0, 16.0, 12.0)],
                                   [(0, 1), (0, 2), (1, 2), (1, 3)], depth_um=32.0, length_um=80.0)
    m = analyse_section(img, 0.1)
    assert m.support_pore_count == 4
    assert m.support_pore_diameter_um == pytest.approx(gt["support_pore_diameter_um"], rel=0.02)


def test_a_support_whose_grains_come_within_3_5_sd_of_the_film_threshold_is_textured():
    """Seed 5000 sec_texture case 12: the support's half step to the film 3.13 s.d. of its
    grain texture (3 were asked), so it passed for smooth; grains seen through the blur at the
    film's bottom edge became two tongues 5 and 9 px deep, the mean depth 12 % short and the
    fraction 0.044 over, unflagged. Within 3.5 s.d. it is textured and its grain tests drop them."""
    img, px, gt = _bench_section(5000, 12, 3.0, 9, 0.20, 0.50, 0.30, 1.8, 0.08, 1.5, 0.04, 0.4, 8,
                                 support_level=0.6, support_texture=0.15)
    m = analyse_section(img, px)
    assert not m.flags
    assert m.penetration_sites == 7
    assert m.penetration_depth_um == pytest.approx(gt["penetration_depth_um"], rel=0.05)
    assert m.penetration_fraction == pytest.approx(gt["penetration_fraction"], abs=0.03)  # the goal


def test_two_tongues_merged_across_a_deep_reading_pillar_are_judged_apart():
    """Seed 5000 sec_dark case 0: a tongue cut by the image's side and the next one, 14 columns
    apart, with the support's pillar between them read 27-34 px deep (its dark grains folded to
    the film's level, down to a pore), made one run; its grey, the pillar's included, failed the
    polymer test and both tongues were dropped: fraction 0.369 for 0.437, unflagged. A run is
    split where its bottom edge jumps by more than half the shallower side (pieces at least 9
    columns wide either side)."""
    img, px, gt = _bench_section(5000, 0, 0.8, 9, 0.05, 0.45, 0.60, 1.5, 0.05, 1.0, 0.02, 0.3, 8,
                                 film_darker=True, support_texture=0.15)
    m = analyse_section(img, px)
    assert not m.flags
    assert np.isfinite(m.penetration_rows[:15]).all() and np.isfinite(m.penetration_rows[45:65]).all()
    assert m.penetration_fraction == pytest.approx(gt["penetration_fraction"], abs=0.02)
    assert m.penetration_depth_um == pytest.approx(gt["penetration_depth_um"], rel=0.05)


# twin sections of recipes/overnight.yaml (tests/data/sections/README.md) with the twin's truth:
# T, sigma_t, penetration depth (um), fraction entered
TWIN_SECTIONS = {
    # tongues whose shoulders left no column of interface between them: every section metric came
    # out empty, flagged interface_lost, and the membrane met no grade, 1 time in 3 after a resume
    "twin_close_tongues_section.png": (1.5308, 0.1530, 1.5192, 0.3875),
    # through-pores between thin walls over wide tongues whose flat bottoms lined up under a slope
    # 0.6 degrees off: the interface was read just under the film's top, T 0.79 um (sigma 0.70),
    # unflagged
    "twin_thickness_misread_section.png": (1.531, 0.153, 1.519, 0.388),
    # wide tongues under two thirds of the film's columns, deeper across the field, lined up under
    # a slope of 0.58 degrees: the interface line ran through their bottoms with the interface's
    # own columns above it, T 2.47 um (sigma 0.82), unflagged
    "twin_tongues_lined_up_section.png": (1.5308, 0.1530, 1.4908, 0.3660),
    # recipes/grade-claim4.yaml's second field: tongues 6 um deep under nearly every column of a
    # film cut by through-pores, lined up under two slopes one after the other: T 6.82 um (sigma
    # 0.81), unflagged -- and the grade's twin test passed on it. Its fraction entered is not
    # checked: the truth is the membrane's (0.526), and its two fields measure 0.50 and 0.56
    "twin_tongues_two_slopes_section.png": (1.6280, 0.1628, 6.0670, None),
}
#: support continuity of each section's membrane (the twin's truth), 1.0 where not listed
TWIN_CONTINUITY = {"twin_tongues_two_slopes_section.png": 0.8654}


@pytest.mark.parametrize("name", sorted(TWIN_SECTIONS))
def test_twin_sections_of_porous_films_over_tongues_are_measured_from_the_cli(name):
    """Sections the twin made in an overnight run that castrig misread; measured as a user does,
    within the accuracy goals of issue 16 (T 3 %, sigma_t/T 0.05, penetration depth 10 %)."""
    import json

    from conftest import ROOT, castrig

    t_um, sd_um, pen_um, frac = TWIN_SECTIONS[name]
    done = castrig("analyse", "section", str(ROOT / "tests" / "data" / "sections" / name),
                   "--pixel-size", "0.05", "--json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert "interface_lost" not in got["quality"]["flags"]
    assert got["mean_thickness_um"] == pytest.approx(t_um, rel=0.03)
    assert got["thickness_std_um"] / got["mean_thickness_um"] == pytest.approx(sd_um / t_um, abs=0.05)
    assert got["penetration_depth_um"] == pytest.approx(pen_um, rel=0.10)
    if frac is not None:
        assert got["penetration_fraction"] == pytest.approx(frac, abs=0.03)
    assert got["support_continuity"] == pytest.approx(TWIN_CONTINUITY.get(name, 1.0), abs=0.1)


@pytest.mark.parametrize("family, i, seed", [("sem", 7, 3000), ("sec_wavy", 12, 3000)])
def test_a_support_pore_is_cut_by_the_border_through_the_pore_phase_not_by_a_margin(accuracy_case, family, i, seed):
    """The support's whole pores, near the image's border. A pore cut by the image's bottom is
    rebuilt from the inscribed circle of its visible part, which need not reach the border: one
    cut 25 px short of its bottom ended 3 px above the last row and was counted whole (sem
    7@3000: support D 6.8 % over, two whole pores and this one). A margin of 2 px, which stood
    for that test, cut whole pores 1–3 px from the border, matrix between (sec_wavy 12@3000: one
    of ten missing, support D 5.7 % short). A pore is now cut where the pore phase joins it, within
    4 px, to a run of pore pixels along the border; the margin is gone."""
    truth, ours, _ = accuracy_case(family, i, seed)
    assert ours["support_pore_diameter_um"] == pytest.approx(truth["support_pore_diameter_um"], rel=0.02)
