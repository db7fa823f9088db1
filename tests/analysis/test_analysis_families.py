"""Reflected-light appearance families beyond the twin's default (issue 16): pores brighter than
the film, and defocus halos. Each renders a film with known geometry and measures it with the
default call (``analyse_surface(reflected, px, transmitted)``: polarity and focus not told)."""

from __future__ import annotations

import numpy as np
import pytest

from castrig.analysis import analyse_surface
from castrig.analysis.surface import pores_brighter
from castrig.sim.micrograph import ground_truth, make_structure, render_surface, render_surface_bright, render_surface_halo


def _structure(seed: int, d_um: float, px_per_pore: float, opening: float, size: int = 512):
    rng = np.random.default_rng(seed)
    px = d_um / px_per_pore
    st = make_structure(rng, mean_diameter_um=d_um, cv=0.1, opening_ratio=opening, through_fraction=0.5,
                        field_um=size * px)
    return st, px, rng


def _measures_true(st, px: float, refl: np.ndarray, trans: np.ndarray):
    """Measured with the default call: D within 2 % and the opening within 2 points of the truth."""
    truth = ground_truth(st)
    m = analyse_surface(refl, px, trans)
    assert m.mean_pore_diameter_um == pytest.approx(truth["mean_pore_diameter_um"], rel=0.02)
    assert m.opening_ratio == pytest.approx(truth["opening_ratio"], abs=0.02)
    return m, truth


def test_bright_pores_found_and_measured():
    """Pores a bright floor on a dim film (a mirror-like support under the film), uneven light,
    16-bit: the polarity is found from the image and the pores measured as the dark ones are."""
    st, px, rng = _structure(11, 3.0, 10, 0.45)
    refl, trans = render_surface_bright(st, px, rng, bit_depth=16, illumination_gradient=0.4, blur_px=1.2, noise=0.03)
    assert pores_brighter(refl)
    m, truth = _measures_true(st, px, refl, trans)
    assert m.through_pore_fraction == pytest.approx(truth["through_pore_fraction"], abs=0.05)


def test_dark_pores_not_turned_over():
    st, px, rng = _structure(12, 3.0, 10, 0.55)
    refl, _ = render_surface(st, px, rng, blur_px=1.5, noise=0.04)
    assert not pores_brighter(refl)


def test_defocus_halo_is_film():
    """A defocused view: each pore ringed by a dark fringe in the film beyond its edge, the
    light it lacks moved just inside the edge (a phase step out of focus), over a strong blur.
    The ring over which a pore's partial volume is summed must reach past the fringe, and the
    floor be read at the pore's centre, clear of the light moved inside: then the pore's edge
    stays the lip (the halo is film). With the ring from the pores' size alone (3 px here) and
    the floor from the usual core, D came out 3 % low."""
    st, px, rng = _structure(13, 2.0, 12, 0.3)
    refl, trans = render_surface_halo(st, px, rng, bit_depth=8, illumination_gradient=0.3, blur_px=1.5, noise=0.03,
                                      defocus_px=(1.4, 1.4), halo=(0.2, 0.2), halo_sign=-1)
    _measures_true(st, px, refl, trans)


def test_bright_defocus_halo_is_film():
    """The other sign of the defocus: a bright fringe in the film around each pore."""
    st, px, rng = _structure(14, 2.0, 12, 0.4)
    refl, trans = render_surface_halo(st, px, rng, bit_depth=16, illumination_gradient=0.3, blur_px=1.2, noise=0.03,
                                      halo=(0.25, 0.25), halo_sign=1)
    _measures_true(st, px, refl, trans)


def test_defocus_halo_dense_lattice():
    """A dark fringe over a dense lattice of small pores (10 px, opening 0.6): no film lies
    beyond the edges' reach, so their reach cannot be measured in the film; the edges then reach
    deep into the pores too, and each floor is read at its pore's centre. From the usual core
    (the light moved inside the edges reaches it) D came out 3.9 % high."""
    st, px, rng = _structure(22, 2.0, 10, 0.6)
    refl, trans = render_surface_halo(st, px, rng, bit_depth=8, illumination_gradient=0.3, blur_px=1.2, noise=0.03,
                                      defocus_px=(1.2, 1.2), halo=(0.15, 0.15), halo_sign=-1)
    _measures_true(st, px, refl, trans)


@pytest.mark.parametrize("render", [render_surface_bright, render_surface_halo])
def test_family_renderers_repeat_from_the_seed(render):
    st, px, _ = _structure(31, 2.0, 10, 0.4, size=128)
    a = render(st, px, np.random.default_rng(5))
    b = render(st, px, np.random.default_rng(5))
    c = render(st, px, np.random.default_rng(6))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
