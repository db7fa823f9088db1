"""Issue 16: vendor pixel sizes, quality flags, intervals and marginal verdicts, the SE family."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from castrig.analysis import analyse_section, analyse_surface, judge
from castrig.sim.micrograph import ground_truth, make_structure, render_surface, render_surface_sem
from castrig.tiffio import read_micrograph


def _plain(path, a):
    tifffile.imwrite(path, a)


@pytest.fixture
def img():
    return np.zeros((32, 32), np.uint8)


def test_zeiss_tag_34118(tmp_path, img):
    p = tmp_path / "z.tif"
    tifffile.imwrite(p, img, extratags=[(34118, "s", 0, "AP_IMAGE_PIXEL_SIZE\r\nImage Pixel Size = 2.5 nm\r\n", True)])
    _, px, meta = read_micrograph(p)
    assert px == pytest.approx(0.0025) and "34118" in meta["pixel_size_source"]


def test_fei_tag_34682(tmp_path, img):
    p = tmp_path / "f.tif"
    tifffile.imwrite(p, img, extratags=[(34682, "s", 0, "[User]\r\nDate=1\r\n[Scan]\r\nPixelWidth=1.25e-08\r\n", True)])
    _, px, meta = read_micrograph(p)
    assert px == pytest.approx(0.0125) and "34682" in meta["pixel_size_source"]


def test_tescan_and_hitachi_sidecars(tmp_path, img):
    _plain(tmp_path / "t.tif", img)
    (tmp_path / "t.hdr").write_text("[MAIN]\nPixelSizeX=4e-09\n")
    _, px, meta = read_micrograph(tmp_path / "t.tif")
    assert px == pytest.approx(0.004) and "TESCAN" in meta["pixel_size_source"]
    _plain(tmp_path / "h.tif", img)
    (tmp_path / "h.txt").write_text("[SemImageFile]\nPixelSize=12.5\n")
    _, px, meta = read_micrograph(tmp_path / "h.tif")
    assert px == pytest.approx(0.0125) and "Hitachi" in meta["pixel_size_source"]


def test_vendor_tags_win_over_display_resolution_tags(tmp_path, img):
    """Found on a real FEI Quanta file: its resolution tags say 28 px/cm (the writer's 72 dpi),
    i.e. 357 µm per pixel, and the file was refused; the instrument's [Scan] PixelWidth is the
    scale of the image."""
    p = tmp_path / "r.tif"
    tifffile.imwrite(p, img, resolution=(28.3465, 28.3465), resolutionunit=tifffile.RESUNIT.CENTIMETER,
                     extratags=[(34682, "s", 0, "[Scan]\r\nPixelWidth=1.349e-07\r\n", True)])
    _, px, meta = read_micrograph(p)
    assert px == pytest.approx(0.1349) and "34682" in meta["pixel_size_source"]
    # and without the instrument's tag the resolution tags are all there is
    tifffile.imwrite(p, img, resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit=tifffile.RESUNIT.CENTIMETER)
    _, px, meta = read_micrograph(p)
    assert px == pytest.approx(0.5) and meta["pixel_size_source"] == "TIFF resolution tags"


def test_an_imagej_calibration_wins_over_vendor_tags(tmp_path, img):
    """Calibrated in Fiji by a person (unit µm): that is the scale meant, whatever the SEM wrote."""
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, img, imagej=True, resolution=(2.0, 2.0), metadata={"unit": "um"},
                     extratags=[(34682, "s", 0, "[Scan]\r\nPixelWidth=1e-08\r\n", True)])
    _, px, meta = read_micrograph(p)
    assert px == pytest.approx(0.5) and meta["pixel_size_source"] == "TIFF resolution tags"


def test_rgb_vendor_tiff_reads_as_grey(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 1] = 200
    p = tmp_path / "c.tif"
    tifffile.imwrite(p, rgb, photometric="rgb", extratags=[(34682, "s", 0, "[Scan]\r\nPixelWidth=2e-08\r\n", True)])
    a, px, _ = read_micrograph(p)
    assert a.shape == (16, 16) and int(a[0, 0]) == round(0.7154 * 200) and px == pytest.approx(0.02)


def _surface(d_um=5.0, ppp=12, field_px=384, seed=3, **kw):
    rng = np.random.default_rng(seed)
    px = d_um / ppp
    st = make_structure(rng, mean_diameter_um=d_um, opening_ratio=0.4, field_um=field_px * px, **kw)
    refl, trans = render_surface(st, px, rng)
    return st, px, refl, trans


def test_clean_image_has_no_flags_and_intervals_hold_the_truth():
    st, px, refl, trans = _surface()
    m = analyse_surface(refl, px, trans)
    t = ground_truth(st)
    assert m.flags == []
    lo, hi = m.intervals["mean_pore_diameter_um"]
    assert lo < t["mean_pore_diameter_um"] < hi
    lo, hi = m.intervals["opening_ratio"]
    assert lo < t["opening_ratio"] < hi


def test_flags_under_resolved_and_too_few_pores():
    _, px, refl, _ = _surface(ppp=6, field_px=256)
    assert "under_resolved" in analyse_surface(refl, px).flags
    _, px, refl, _ = _surface(ppp=20, field_px=70)
    assert "too_few_pores" in analyse_surface(refl, px).flags


def test_flag_saturated():
    _, px, refl, _ = _surface()
    sat = refl.copy()
    sat[sat > np.percentile(sat, 80)] = 255
    assert "saturated" in analyse_surface(sat, px).flags


def test_flag_no_lattice_order():
    rng = np.random.default_rng(0)
    img = np.full((400, 400), 200.0)
    yy, xx = np.mgrid[:400, :400]
    for cy, cx in rng.uniform(10, 390, (60, 2)):
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 25] = 40
    img += rng.normal(0, 2, img.shape)
    m = analyse_surface(np.clip(img, 0, 255).astype(np.uint8), 0.5)
    assert "no_lattice_order" in m.flags


def test_section_interface_lost_flag():
    img = np.zeros((64, 64), np.uint8)  # nothing to follow
    assert "interface_lost" in analyse_section(img, 0.1).flags


def test_marginal_verdict_when_bound_inside_interval_and_flagged_pass():
    metrics = {"opening_ratio": 0.101}
    v = judge(metrics, ["claim1"], intervals={"opening_ratio": (0.095, 0.107)})
    c = next(c for c in v.grade("claim1").checks if c.quantity == "opening_ratio" and c.kind == "min")
    assert c.status == "marginal" and c.advice and not v.grade("claim1").met
    v = judge({"opening_ratio": 0.5}, ["claim1"], flagged={"opening_ratio": ["under_resolved"]})
    c = next(c for c in v.grade("claim1").checks if c.quantity == "opening_ratio" and c.kind == "min")
    assert c.status == "marginal" and "finer pixel size" in c.advice
    d = c.to_dict()
    assert d["flags"] == ["under_resolved"]


def test_sem_family_measures_edges_at_the_lip():
    rng = np.random.default_rng(5)
    px = 10.0 / 16
    st = make_structure(rng, mean_diameter_um=10.0, opening_ratio=0.35, field_um=512 * px)
    top, trans = render_surface_sem(st, px, rng)
    t = ground_truth(st)
    m = analyse_surface(top, px, trans, appearance="sem")
    plain = analyse_surface(top, px, trans)  # the dark-floor method on an SE image
    assert m.appearance == "sem"
    assert abs(m.mean_pore_diameter_um / t["mean_pore_diameter_um"] - 1) < 0.05
    assert abs(plain.mean_pore_diameter_um / t["mean_pore_diameter_um"] - 1) > 0.15


def test_default_render_unchanged_by_the_sem_family():
    """Same seed → same optical images (the SE family draws from its own calls only)."""
    a = _surface(seed=11)[2]
    b = _surface(seed=11)[2]
    assert np.array_equal(a, b)


def test_a_means_interval_from_few_values_uses_students_t():
    """The 95 % interval of a mean from a handful of values (a section's 3-7 whole support
    pores, its tongues) is Student's: with the normal 1.96, a 5-pore support D interval held
    its truth less often than 95 % (benchmark seeds 3000-5000 sec_tongues: 8-10 % off, the
    truth outside, unflagged)."""
    from scipy import stats

    from castrig.analysis.quality import claim1_intervals, t95

    for df in [1, 2, 3, 4, 5, 10, 29, 30, 31, 45, 100, 1000]:
        assert t95(df) == pytest.approx(stats.t.ppf(0.975, df), abs=2e-3)
    d = np.array([50.0, 60.0, 55.0, 65.0, 58.0])
    lo, hi = claim1_intervals(np.zeros(0), None, 0, np.zeros(0, bool), None, 0, 0.0, support_d_um=d)["support_pore_diameter_um"]
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert (lo, hi) == pytest.approx((d.mean() - half, d.mean() + half), abs=2e-3)


def test_a_length_interval_never_goes_below_zero(tmp_path):
    """Two pores of very different sizes (a section's top rows analysed as a surface, from a
    fuzzing run of the CLI) gave a 95 % interval of D from -282 µm: a length's interval ends at
    zero, for the pores' D and for the film's T."""
    import json

    import tifffile

    from conftest import castrig
    from castrig.analysis.quality import section_intervals, surface_intervals

    lo, _ = surface_intervals(np.array([2.0, 60.0]), 0.3, None, 0.5)["mean_pore_diameter_um"]
    assert lo == 0.0
    lo, _ = section_intervals(np.r_[np.full(50, 0.1), np.full(50, 30.0)], 0.5, 2.0)["mean_thickness_um"]
    assert lo >= 0.0
    img = np.full((60, 512), 200, np.uint8)
    img[20:26, 100:106] = 0  # a pore 6 px across ...
    img[5:55, 300:350] = 0  # ... and one of 50
    tifffile.imwrite(tmp_path / "two.tif", img)
    res = castrig("analyse", "surface", str(tmp_path / "two.tif"), "--pixel-size", "1", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert min(v[0] for v in out["quality"]["intervals"].values() if v) >= 0.0


def test_every_metric_and_bound_has_the_one_view_it_is_measured_on():
    """Which view measures which metric is one table (metric_views.VIEW_OF_METRIC), the quality
    flags' groups by view, that recipe.view_notes reads too (it kept a copy of its own): every
    metric the analyses return and every bound of spec.yaml has its view there, and the flags of a
    view mark only its own metrics."""
    from castrig.analysis.quality import SECTION_FLAG_METRICS, SURFACE_FLAG_METRICS, VIEW_OF_METRIC
    from castrig.analysis.section import SectionMetrics
    from castrig.analysis.spec import load_spec
    from castrig.analysis.surface_metrics import SurfaceMetrics
    from castrig.recipe import view_notes

    assert view_notes.VIEW_OF_METRIC is VIEW_OF_METRIC
    surface = SurfaceMetrics(None, None, None, 0, None, None, 0.1).to_dict()
    assert {VIEW_OF_METRIC[k] for k in surface} == {"reflected", "transmitted"}
    assert set(SectionMetrics(None, None, None, 0.1).to_dict()) <= {k for k, v in VIEW_OF_METRIC.items() if v == "section"}
    spec = load_spec()
    for grade in spec.grades.values():
        for b in grade.bounds:
            assert set(spec.ratios.get(b.quantity, (b.quantity,))) <= set(VIEW_OF_METRIC), b.quantity
    assert all(VIEW_OF_METRIC[k] != "section" for ks in SURFACE_FLAG_METRICS.values() for k in ks)
    assert all(VIEW_OF_METRIC[k] == "section" for ks in SECTION_FLAG_METRICS.values() for k in ks)
