"""The renderer's own kernels give the numbers of the library calls they replace, bit for bit
(their docstrings say so, and the twin's images and run records rest on it): the Gaussian blur's
block-wise column pass against ``ndi.gaussian_filter``, the supersampled means against numpy's
two-axis mean. A numpy or scipy release that changes its summation order fails here first."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from castrig.sim.micrograph import _gaussian, _sample_mean


@pytest.mark.parametrize("shape,sigma", [((64, 80), 0.7), ((300, 41), 1.3), ((7, 500), 2.0), ((1030, 37), 3.7), ((5, 5), 1.0)])
def test_gaussian_is_scipys_gaussian_filter_bit_for_bit(shape, sigma):
    img = np.random.default_rng(len(shape) * 7 + shape[0]).random(shape)
    np.testing.assert_array_equal(_gaussian(img, sigma), ndi.gaussian_filter(img, sigma))


@pytest.mark.parametrize("n,bh,bw,ss", [(3, 5, 7, 4), (2, 1, 9, 4), (4, 6, 1, 4), (2, 3, 3, 3)])
def test_sample_mean_is_numpys_mean_bit_for_bit(n, bh, bw, ss):
    a = np.random.default_rng(n + bh + bw).random((n, bh * ss, bw * ss))
    np.testing.assert_array_equal(_sample_mean(a, bh, bw, ss), a.reshape(n, bh, ss, bw, ss).mean(axis=(2, 4)))
