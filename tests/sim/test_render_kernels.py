"""The renderer's own kernels give the numbers of the library calls they replace, bit for bit
(their docstrings say so, and the twin's images and run records rest on it): the Gaussian blur's
block-wise column pass against ``ndi.gaussian_filter``, the supersampled means against numpy's
two-axis mean. A numpy or scipy release that changes its summation order fails here first."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from castrig.sim.micrograph.kernels import _gaussian
from castrig.sim.micrograph.surface import _sample_mean


@pytest.mark.parametrize("shape,sigma", [((64, 80), 0.7), ((300, 41), 1.3), ((7, 500), 2.0), ((1030, 37), 3.7), ((5, 5), 1.0)])
def test_gaussian_is_scipys_gaussian_filter_bit_for_bit(shape, sigma):
    img = np.random.default_rng(len(shape) * 7 + shape[0]).random(shape)
    np.testing.assert_array_equal(_gaussian(img, sigma), ndi.gaussian_filter(img, sigma))


@pytest.mark.parametrize("n,bh,bw,ss", [(3, 5, 7, 4), (2, 1, 9, 4), (4, 6, 1, 4), (2, 3, 3, 3)])
def test_sample_mean_is_numpys_mean_bit_for_bit(n, bh, bw, ss):
    a = np.random.default_rng(n + bh + bw).random((n, bh * ss, bw * ss))
    np.testing.assert_array_equal(_sample_mean(a, bh, bw, ss), a.reshape(n, bh, ss, bw, ss).mean(axis=(2, 4)))


def test_a_field_without_pores_renders_in_every_family():
    """A structure with no pores (an empty field of view) renders as the film alone; the in-place
    division of the coverage once met an empty bincount's int64 array and raised."""
    import dataclasses

    from castrig.sim import micrograph as M

    st = M.make_structure(np.random.default_rng(3), mean_diameter_um=10.0, thickness_um=6.0, field_um=60.0)
    st0 = dataclasses.replace(st, centres_um=np.zeros((0, 2)), diameters_um=np.zeros(0), through=np.zeros(0, bool))
    for fn in ("render_surface", "render_surface_sem", "render_surface_bse", "render_surface_bright", "render_surface_halo"):
        refl, trans = getattr(M, fn)(st0, 0.5, np.random.default_rng(2))
        assert refl.shape == trans.shape == (120, 120), fn
