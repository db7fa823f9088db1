"""A field's ground truth (geometry alone: no random draws) is computed on a thread of its own
while its views are rendered (issue 19: the twin's overnight rendered and measured its truth one
after the other on one of two cores), with the same images and truth."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import castrig.sim.film_images as fi
from castrig.sim.world import FilmTargets

#: a film of the twin's overnight (its first cast's targets)
TARGETS = FilmTargets(ordered=True, mean_diameter_um=3.35, cv=0.069, opening_ratio=0.63, through_fraction=0.86,
                      thickness_um=1.53, thickness_cv=0.1, support_pore_um=5.0, defect_rate=0.031,
                      penetration_depth_um=1.5, penetration_fraction=0.3, communication=0.39, support_link_prob=0.9)


def _field(seed: int = 3) -> dict:
    return fi.render_field(TARGETS, np.random.default_rng(seed), pixel_size_um=0.25, section_pixel_size_um=0.05,
                           width_px=192, bit_depth=8)


def test_the_truth_is_measured_while_the_views_are_rendered(monkeypatch):
    """The surface's render waits (up to 20 s) for the truth's to have begun: one after the
    other, the truth began only once both views were rendered, and the wait ran out."""
    began = threading.Event()
    real_truth, real_surface = fi.ground_truth, fi.render_surface

    def truth(*a, **k):
        began.set()
        return real_truth(*a, **k)

    def surface(*a, **k):
        assert began.wait(20.0), "the ground truth had not begun while the views were rendered"
        return real_surface(*a, **k)

    monkeypatch.setattr(fi, "ground_truth", truth)
    monkeypatch.setattr(fi, "render_surface", surface)
    assert _field()["truth"]["pore_count"] > 0


def test_the_same_images_and_truth_as_one_after_the_other(monkeypatch):
    field = _field()
    from castrig.sim.micrograph import ground_truth, make_structure, render_section, render_surface

    rng = np.random.default_rng(3)
    calls = {}
    real_make = fi.make_structure

    def recorded(*a, **k):  # (the structure's arguments, as render_field gives them)
        calls["kw"] = k
        return real_make(*a, **k)

    monkeypatch.setattr(fi, "make_structure", recorded)
    _field()
    st = make_structure(rng, **calls["kw"])
    refl, trans = render_surface(st, 0.25, rng, bit_depth=8)
    sec = render_section(st, 0.05, rng, bit_depth=8)
    assert np.array_equal(field["reflected"], refl) and np.array_equal(field["transmitted"], trans)
    assert np.array_equal(field["section"], sec)
    assert field["truth"] == ground_truth(st, section_pixel_size_um=0.05)


def test_a_truth_that_fails_raises_in_the_caller(monkeypatch):
    def broken(*a, **k):
        raise ValueError("no truth")

    monkeypatch.setattr(fi, "ground_truth", broken)
    with pytest.raises(ValueError, match="no truth"):
        _field()
