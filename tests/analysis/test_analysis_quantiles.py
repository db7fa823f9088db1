"""castrig.analysis._quantiles: the same values (and types) as np.percentile / np.median."""

import numpy as np
import pytest

from castrig.analysis import _quantiles as Q


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1000, 70001, 1 << 18])
def test_percentile_and_median_match_numpy(dtype, n):
    rng = np.random.default_rng(n)
    for x in ((rng.normal(size=n) * 37).astype(dtype), np.round(rng.normal(size=n) * 5).astype(dtype)):
        for q in (0.2, 1.0, 50.0, 99.8, 0, 100, [1.0, 99.0]):
            a, b = np.percentile(x, q), Q.percentile(x, q)
            assert np.array_equal(np.asarray(a), np.asarray(b)) and np.asarray(a).dtype == np.asarray(b).dtype
        a, b = np.median(x), Q.median(x)
        assert a == b and type(a) is type(b)


def test_percentile_non_finite_falls_back_to_numpy():
    x = np.random.default_rng(0).normal(size=100000)
    x[5] = np.nan
    assert np.isnan(Q.percentile(x, 1.0)) and np.isnan(Q.median(x))


def test_counts_route_matches_numpy():
    rng = np.random.default_rng(1)
    v = rng.integers(0, 256, size=(64, 4096))
    f = v.astype(np.float32)
    assert np.array_equal(Q.int_levels(f), v)
    assert Q.int_levels(f + 0.5) is None and Q.int_levels(f * 20) is None
    nl = int(v.max()) + 1
    counts = np.bincount((np.arange(64)[:, None] * nl + v).ravel(), minlength=64 * nl).reshape(64, nl)
    assert np.array_equal(Q.percentile_from_counts(counts.sum(axis=0), [1.0, 99.0]), np.percentile(f.astype(np.float64), [1.0, 99.0]))
    assert np.array_equal(Q.percentile_from_counts(counts, 1.0, np.float32), np.percentile(f, 1.0, axis=1))
