"""Claim 1 from the section (issue 16): polymer penetration into the support, communicating
pores, a support with continuous pores — rendered by the twin with ground truth from the
process, measured by castrig.analysis.section, judged as "present" bounds."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from castrig.analysis import analyse_section
from castrig.analysis.spec import load_spec
from castrig.cli.analyse import app
from castrig.sim.film_images import render_field
from castrig.sim.micrograph import ground_truth, make_structure, render_section, render_surface
from castrig.sim.world import FilmConditions, FilmModel, film_targets
from castrig.tiffio import write_micrograph

CLAIM1 = ("penetration_depth_um", "penetration_fraction", "pore_communication", "support_continuity")


def _conditions(**kw) -> FilmConditions:
    base = dict(cast_volume_ml=0.2, concentration_mg_ml=5.0, solvent="chloroform", evaporation_s=90.0,
                surface_rh_mean_pct=80.0, surface_rh_std_pct=0.3, chamber_rh_mean_pct=72.0, support_wet=True,
                mean_flow_slpm=2.0, temperature_c=22.0)
    base.update(kw)
    return FilmConditions(**base)


def _section(seed: int, d=3.0, t=3.0, sp=5.0, px=0.06, depth=1.5, frac=0.35, comm=0.6, link=0.9):
    rng = np.random.default_rng(seed)
    st = make_structure(rng, mean_diameter_um=d, thickness_um=t, support_pore_um=sp, field_um=40.0,
                        section_length_um=768 * px, penetration_depth_um=depth, penetration_fraction=frac,
                        communication=comm, support_link_prob=link)
    return st, render_section(st, px, rng), px


def test_process_drives_the_claim1_features():
    m = FilmModel()
    wet, dry = film_targets(_conditions(support_wet=True), m), film_targets(_conditions(support_wet=False), m)
    assert wet.penetration_fraction > dry.penetration_fraction and wet.penetration_depth_um > dry.penetration_depth_um
    dilute, thick = film_targets(_conditions(concentration_mg_ml=2.0), m), film_targets(_conditions(concentration_mg_ml=10.0), m)
    assert dilute.penetration_depth_um > thick.penetration_depth_um
    wide = film_targets(_conditions(), m, support_pore_um=10.0)
    assert wide.penetration_depth_um > wet.penetration_depth_um
    c = [film_targets(_conditions(surface_rh_mean_pct=rh), m).communication for rh in (70, 85, 95)]
    assert c[0] < c[1] < c[2]
    # thin walls (dilute solution) break through more often
    assert dilute.communication > thick.communication


def test_features_off_leave_earlier_images_unchanged_and_on_are_deterministic():
    a = np.random.default_rng(3)
    st0 = make_structure(a, mean_diameter_um=3.0, field_um=30.0)
    img0 = render_section(st0, 0.1, a)
    b = np.random.default_rng(3)
    st1 = make_structure(b, mean_diameter_um=3.0, field_um=30.0, penetration_depth_um=1.0, penetration_fraction=0.3,
                         communication=0.5, support_link_prob=0.9)
    surf1 = render_surface(st1, 0.1, b)
    # the features draw from a child generator: the parent stream (surface images) is untouched
    a2 = np.random.default_rng(3)
    st2 = make_structure(a2, mean_diameter_um=3.0, field_um=30.0)
    assert np.array_equal(render_surface(st2, 0.1, a2)[0], surf1[0])
    assert len(st1.penetration_sites_um) and len(st1.support_links)
    _, img_a, _ = _section(11)
    _, img_b, _ = _section(11)
    assert np.array_equal(img_a, img_b)
    assert not np.array_equal(img0, render_section(st1, 0.1, np.random.default_rng(0)))


def test_twin_field_is_deterministic_and_carries_claim1_truth():
    t = film_targets(_conditions(), FilmModel())
    f1 = render_field(t, np.random.default_rng([7, 8, 0]), pixel_size_um=0.25, section_pixel_size_um=0.05, width_px=256, bit_depth=8)
    f2 = render_field(t, np.random.default_rng([7, 8, 0]), pixel_size_um=0.25, section_pixel_size_um=0.05, width_px=256, bit_depth=8)
    for k in ("reflected", "transmitted", "section"):
        assert np.array_equal(f1[k], f2[k])
    assert set(CLAIM1) <= set(f1["truth"])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_claim1_measures_against_the_geometry(seed):
    st, img, px = _section(seed)
    gt = ground_truth(st, section_pixel_size_um=px)
    m = analyse_section(img, px)
    assert m.penetration_depth_um == pytest.approx(gt["penetration_depth_um"], rel=0.10)  # the goal
    assert m.penetration_fraction == pytest.approx(gt["penetration_fraction"], abs=0.05)
    assert m.mean_thickness_um == pytest.approx(gt["mean_thickness_um"], rel=0.03)
    assert m.pore_communication is not None and m.support_continuity is not None
    q = m.quality()["intervals"]
    lo, hi = q["penetration_depth_um"]
    assert lo <= m.penetration_depth_um <= hi


def test_absent_features_are_measured_absent_and_fail_claim1():
    st, img, px = _section(4, depth=0.0, frac=0.0, comm=0.0, link=0.0)
    m = analyse_section(img, px)
    assert m.penetration_depth_um == 0.0 and m.penetration_fraction == 0.0
    from castrig.analysis.verdict import judge

    metrics = {"opening_ratio": 0.4, "mean_pore_diameter_um": 3.0, "pore_diameter_std_um": 0.3, "through_pore_fraction": 0.5,
               "mean_thickness_um": 3.0, "thickness_std_um": 0.3, "support_pore_diameter_um": 5.0} | m.to_dict()
    g = judge(metrics, ["claim1"]).grade("claim1")
    bad = {c.quantity for c in g.checks if c.status == "fail"}
    assert {"penetration_depth_um", "penetration_fraction"} <= bad and not g.met


def test_spec_lists_the_claim1_features_as_present_bounds():
    b = {(x.quantity, x.kind, x.limit) for x in load_spec().grades["claim1"].bounds}
    assert {(q, "gt", 0.0) for q in CLAIM1} <= b


def test_cli_section_and_membrane_json_carry_claim1(tmp_path):
    st, img, px = _section(5)
    write_micrograph(tmp_path / "x.tif", img, px)
    out = json.loads(CliRunner().invoke(app, ["section", str(tmp_path / "x.tif"), "--json"]).output)
    assert set(CLAIM1) <= set(out) and "penetration_depth_um" in out["quality"]["intervals"]
    res = CliRunner().invoke(app, ["section", str(tmp_path / "x.tif")])
    assert "penetration_depth_um" in res.output
