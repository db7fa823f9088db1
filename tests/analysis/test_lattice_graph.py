"""The lattice order of a surface's pores (no_lattice_order: the six-neighbour share and the
nearest-neighbour disorder) from one triangulation of the centres (issue 19/16's speed: on a
dense 1024² view, 6 400 pores, the neighbours' table and a kd-tree query beside the Delaunay
triangulation were ~10 % of the optical pair's CPU), with the same numbers."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.spatial

from castrig.analysis import analyse_surface
import castrig.analysis.lattice as lattice
from castrig.analysis.lattice import delaunay_graph
from castrig.analysis.quality import lattice_disorder, six_neighbour_share
from castrig.sim.micrograph import make_structure, render_surface


def _honeycomb(n: int, pitch: float, jitter: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float), indexing="ij")
    c = np.c_[y.ravel() * pitch * np.sqrt(3) / 2, (x + 0.5 * (y % 2)).ravel() * pitch]
    return c + rng.normal(0, jitter * pitch, c.shape)


@pytest.mark.parametrize("centres", [
    _honeycomb(30, 20.0, 0.05, 1),
    _honeycomb(30, 20.0, 0.0, 2),  # exact lattice: cocircular points, equal distances
    np.random.default_rng(3).uniform(0, 400, (900, 2)),
    np.unique(np.round(np.random.default_rng(4).uniform(0, 60, (500, 2)) * 4) / 4, axis=0),  # quarter-pixel grid: ties
], ids=["honeycomb", "exact-lattice", "random", "ties"])
def test_the_graph_is_the_triangulations_neighbours_and_the_trees_distances(centres):
    graph = delaunay_graph(centres)
    assert graph is not None
    degree, nearest = graph
    indptr, _ = scipy.spatial.Delaunay(centres).vertex_neighbor_vertices
    assert np.array_equal(degree, np.diff(indptr))
    assert np.array_equal(nearest, scipy.spatial.cKDTree(centres).query(centres, k=2)[0][:, 1])
    assert six_neighbour_share(centres, (700, 700), graph=graph) == six_neighbour_share(centres, (700, 700))
    assert lattice_disorder(centres, graph=graph) == lattice_disorder(centres)
    assert lattice_disorder(centres, 100, graph=graph) == lattice_disorder(centres, 100)


def test_repeated_or_collinear_centres_have_no_graph():
    line = np.c_[np.arange(30.0), 2 * np.arange(30.0)]
    assert delaunay_graph(line) is None
    twice = np.r_[_honeycomb(8, 20.0, 0.05, 5), _honeycomb(8, 20.0, 0.05, 5)[:3]]
    assert delaunay_graph(twice) is None  # (a repeated centre is no vertex: the tree's distance 0 is kept)
    assert six_neighbour_share(twice, (200, 200)) is not None


def test_a_surface_analysis_triangulates_its_pores_once_and_builds_no_tree_for_its_order(monkeypatch):
    """The quality assessment's two lattice checks share one triangulation; the only kd-tree
    left is the pitch's (castrig.analysis.lattice._pitch). Before: two triangulations' worth of
    work (Delaunay, its neighbours' table) and three kd-trees."""
    rng = np.random.default_rng(1)
    st = make_structure(rng, mean_diameter_um=5.0, opening_ratio=0.5, thickness_um=5.0, thickness_cv=0.1,
                        field_um=384 * 0.5)
    refl, trans = render_surface(st, 0.5, rng, bit_depth=8)
    made = {"Delaunay": 0, "cKDTree": 0}
    for name in made:
        real = getattr(scipy.spatial, name)

        def counted(*a, _real=real, _name=name, **k):
            made[_name] += 1
            return _real(*a, **k)

        monkeypatch.setattr(scipy.spatial, name, counted)
    monkeypatch.setattr(lattice, "cKDTree", scipy.spatial.cKDTree)
    m = analyse_surface(refl, 0.5, trans)
    assert m.pore_count > 100
    assert made == {"Delaunay": 1, "cKDTree": 1}


def test_the_pairs_last_stages_overlap(monkeypatch):
    """The through-pores (a worker), the transmitted view's mismatch (the other worker) and the
    lattice's triangulation (the calling thread) run at once: before, the mismatch and then the
    triangulation ran on the calling thread after the through-pores, the workers idle. Each
    stage here waits (up to 20 s) for the one it should overlap to have begun."""
    import castrig.analysis.surface as surface

    monkeypatch.delenv("CASTRIG_ANALYSIS_THREADS", raising=False)
    rng = np.random.default_rng(1)
    st = make_structure(rng, mean_diameter_um=5.0, opening_ratio=0.5, thickness_um=5.0, thickness_cv=0.1,
                        field_um=384 * 0.5)
    refl, trans = render_surface(st, 0.5, rng, bit_depth=8)
    began = {k: threading.Event() for k in ("through", "mismatch", "graph")}

    def waiting(name, real, waits_for):
        def stage(*a, **k):
            began[name].set()
            assert began[waits_for].wait(20.0), f"{name} ran without {waits_for} beside it"
            return real(*a, **k)
        return stage

    monkeypatch.setattr(surface, "_through", waiting("through", surface._through, "mismatch"))
    monkeypatch.setattr(surface, "transmitted_mismatch", waiting("mismatch", surface.transmitted_mismatch, "through"))
    monkeypatch.setattr(surface, "delaunay_graph", waiting("graph", lattice.delaunay_graph, "through"), raising=False)
    m = analyse_surface(refl, 0.5, trans)
    assert m.through_pore_fraction is not None and all(e.is_set() for e in began.values())
