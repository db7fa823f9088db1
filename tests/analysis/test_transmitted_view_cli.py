"""A transmitted view that is not one of the reflected view's field, measured by the ``castrig``
command in a subprocess: a fuzzing run of the CLI met a transposed view read 0.12 through for
0.50, and the reflected view given twice, or a view of one grey, read 0 — all unflagged. (The
surface's flags through the CLI's entry point in the test process, conftest ``castrig_main``: the
same command without a process's start-up; the membrane's verdict from a castrig process.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile

from conftest import castrig, castrig_main
from castrig.sim.micrograph import ground_truth, make_structure, render_surface


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("pair")
    rng = np.random.default_rng(3)
    st = make_structure(rng, mean_diameter_um=4.0, opening_ratio=0.4, through_fraction=0.5, field_um=384 * 0.4)
    refl, trans = render_surface(st, 0.4, rng, bit_depth=8)
    views = {"reflected": refl, "transmitted": trans, "transposed": np.ascontiguousarray(trans.T),
             "one_grey": np.full_like(trans, 200)}
    for name, a in views.items():
        tifffile.imwrite(d / f"{name}.tif", a)
    return d, ground_truth(st)


def _through(capsys, d, transmitted: str) -> dict:
    res = castrig_main(capsys, "analyse", "surface", str(d / "reflected.tif"), "--transmitted", str(d / f"{transmitted}.tif"),
                  "--pixel-size", "0.4", "--json")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_the_fields_own_transmitted_view_is_trusted(pair, capsys):
    d, truth = pair
    out = _through(capsys, d, "transmitted")
    assert "transmitted_mismatch" not in out["quality"]["flags"]
    assert out["through_pore_fraction"] == pytest.approx(truth["through_pore_fraction"], abs=0.05)


@pytest.mark.parametrize("view", ["transposed", "reflected", "one_grey"])
def test_a_view_of_another_field_flags_the_through_pore_fraction(pair, view, capsys):
    d, _ = pair
    out = _through(capsys, d, view)
    assert "transmitted_mismatch" in out["quality"]["flags"]
    assert "transmitted_mismatch" in out["quality"]["flagged"]["through_pore_fraction"]
    assert "transmitted_mismatch" not in out["quality"]["flagged"].get("mean_pore_diameter_um", [])


@pytest.mark.parametrize("value", [0.5, 0.0])
def test_the_verdict_does_not_sign_a_mismatched_through_fraction(value):
    """The through-pore fraction of another field's view is no measurement of this one: its bound
    is "unknown" (a passing value was "marginal"; a failing one — the reflected view given twice
    reads 0 — failed claims 1-4 on a number of another picture)."""
    from castrig.analysis.verdict import judge

    v = judge({"through_pore_fraction": value}, ["claim1"], intervals={"through_pore_fraction": (max(value - 0.1, 0), value + 0.1)},
              flagged={"through_pore_fraction": ["transmitted_mismatch"]})
    (c,) = [c for c in v.grade("claim1").checks if c.quantity == "through_pore_fraction"]
    assert c.status == "unknown" and c.value is None and "check the transmitted view" in c.advice, c
    assert v.grade("claim1").status == "unknown" and not v.grade("claim1").met


def test_analyse_membrane_with_the_reflected_view_given_as_transmitted_fails_no_claim(pair, tmp_path):
    """The reflected view passed again as --transmitted (audit): through 0.0, flagged, and every
    claim "fail" — a confident verdict on a number of another picture. Now the claims that need the
    through-pore fraction are "unknown", the flag and what to check said."""
    from castrig.sim.micrograph import make_structure, render_section

    d, _ = pair
    rng = np.random.default_rng(4)
    st = make_structure(rng, mean_diameter_um=4.0, opening_ratio=0.4, thickness_um=4.0, thickness_cv=0.1,
                        field_um=384 * 0.4, section_length_um=384 * 0.4)
    tifffile.imwrite(tmp_path / "section.tif", render_section(st, 0.4, rng, bit_depth=8))  # --pixel-size is for all images
    res = castrig("analyse", "membrane", "--surface", str(d / "reflected.tif"), "--transmitted", str(d / "reflected.tif"),
                  "--section", str(tmp_path / "section.tif"), "--pixel-size", "0.4", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    for grade in out["verdict"]["grades"]:
        (through,) = [c for c in grade["checks"] if c["quantity"] == "through_pore_fraction"]
        assert through["status"] == "unknown" and through["value"] is None, through
        assert grade["status"] != "fail" or any(c["status"] == "fail" for c in grade["checks"] if c is not through), grade


def test_a_mismatch_beside_under_resolved_pores_asks_for_a_finer_pixel_size():
    """Under-resolved pores match even their own transmitted view poorly (the twin's pair at 0.25
    µm for ~1 µm pores is flagged transmitted_mismatch): that bound is judged as a flagged one, and
    the advice is the finer pixel size, not another transmitted file."""
    from castrig.analysis.verdict import judge

    v = judge({"through_pore_fraction": 0.5}, ["claim1"], intervals={"through_pore_fraction": (0.4, 0.6)},
              flagged={"through_pore_fraction": ["transmitted_mismatch", "under_resolved"]})
    (c,) = [c for c in v.grade("claim1").checks if c.quantity == "through_pore_fraction"]
    assert c.status == "marginal" and "finer pixel size" in c.advice, c
