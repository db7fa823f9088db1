"""The section analysis's own kernels give the numbers of the scipy calls they replace, bit for
bit (the section results rest on it, and 224 sections were checked identical when they came in):
the column pass of ``uniform_filter1d`` as a running sum over whole rows, the local s.d. on a
band of rows only, and the Euclidean distance transform with integer squared distances. A scipy
release that changes its summation order fails here first."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from castrig.analysis.section_support import _edt
from castrig.analysis.section_levels import _local_sd, _RowsLocalSD, _uniform_down

SHAPES = [(9, 5), (40, 300), (357, 64), (120, 7)]


def _plain_local_sd(a, size):
    m = ndi.uniform_filter(a, size)
    return np.sqrt(np.maximum(ndi.uniform_filter(a * a, size) - m * m, 0.0))


@pytest.mark.parametrize("shape", SHAPES)
def test_uniform_down_is_scipys_running_sum(shape):
    a = np.random.default_rng(shape[0]).random(shape) * 200
    for r1 in (1, shape[0] // 2, shape[0]):
        np.testing.assert_array_equal(_uniform_down(a, 7, r1), ndi.uniform_filter1d(a, 7, axis=0)[:r1])
        np.testing.assert_array_equal(_uniform_down(a, 7, r1, square=True), ndi.uniform_filter1d(a * a, 7, axis=0)[:r1])


@pytest.mark.parametrize("shape", SHAPES)
def test_local_sd_on_some_rows_is_the_whole_images(shape):
    a = np.random.default_rng(shape[1]).random(shape) * 200
    full = _plain_local_sd(a, 7)
    np.testing.assert_array_equal(_local_sd(a, 7), full)
    mask = np.zeros(shape, bool)
    mask[shape[0] // 3: shape[0] // 3 + 3, ::2] = True
    rows = _RowsLocalSD(a, 7)
    np.testing.assert_array_equal(rows.on(mask), full[mask])
    got = rows.full_where(mask)
    np.testing.assert_array_equal(got[mask.any(axis=1)], full[mask.any(axis=1)])
    assert rows.on(np.zeros(shape, bool)).size == 0


@pytest.mark.parametrize("shape", SHAPES + [(1, 50), (50, 1)])
def test_edt_is_scipys(shape):
    rng = np.random.default_rng(sum(shape))
    mask = ndi.binary_dilation(rng.random(shape) > 0.97, iterations=3) if min(shape) > 1 else rng.random(shape) > 0.5
    mask[0, 0] = False  # some background
    dist, key = _edt(mask, with_key=True)
    ref = ndi.distance_transform_edt(mask)
    np.testing.assert_array_equal(dist, ref)
    np.testing.assert_array_equal(np.argsort(key, axis=None, kind="stable"), np.argsort(ref, axis=None, kind="stable"))
    np.testing.assert_array_equal(_edt(np.ones(shape, bool)), ndi.distance_transform_edt(np.ones(shape, bool)))


@pytest.mark.parametrize("shape", SHAPES + [(3, 5), (1, 9)])
def test_column_min_is_scipys_vertical_erosion(shape):
    from castrig.analysis._filters import column_min

    a = np.random.default_rng(shape[0] + 1).random(shape)
    np.testing.assert_array_equal(column_min(a, 4), ndi.grey_erosion(a, size=(9, 1)))


def test_squared_distance_thresholds_are_the_distances():
    """``sqrt(d2) >= c`` exactly when ``d2 >= _sq_at_least(c)``, for the whole squares a distance
    transform gives and thresholds that fall on, between and just beside them."""
    from castrig.analysis.section_support import _sq_at_least

    d2 = np.arange(0, 40000)
    dist = np.sqrt(d2, dtype=np.float64)
    rng = np.random.default_rng(7)
    cs = np.r_[dist[::97], np.nextafter(dist[::97], np.inf), np.nextafter(dist[::97], -np.inf),
               rng.random(300) * 200, 0.4 * dist[1::331], 0.65 * dist[1::331], -1.0, 0.0]
    for c in cs.tolist():
        np.testing.assert_array_equal(d2 >= _sq_at_least(c), dist >= c)


@pytest.mark.parametrize("n", [5, 1000, 70001, 200000])
def test_split_medians_are_the_two_classes_medians(n):
    """The medians below and above a threshold from the order statistics of the whole array
    (a bracket from a subsample for large ones) are np.median of each class, bit for bit: odd
    and even class sizes, ties at the threshold, a class left empty."""
    from castrig.analysis.section_support import _split_medians

    rng = np.random.default_rng(n)
    vals = np.round(np.r_[rng.normal(0.3, 0.05, n // 3), rng.normal(0.8, 0.1, n - n // 3)], 3)
    for t in (0.55, float(vals[n // 2]), float(np.median(vals)), float(vals.min()), float(vals.max()) + 1):
        lo, hi = vals[vals < t], vals[vals >= t]
        want = (float(np.median(lo)) if lo.size else float(vals.min()), float(np.median(hi)) if hi.size else np.nan)
        got = _split_medians(vals.copy(), t)
        np.testing.assert_array_equal(np.array(got), np.array(want))
    for m in (vals[:-1], vals[1:]):  # the other parity
        lo, hi = m[m < 0.55], m[m >= 0.55]
        want = (float(np.median(lo)) if lo.size else float(m.min()), float(np.median(hi)) if hi.size else np.nan)
        np.testing.assert_array_equal(np.array(_split_medians(m.copy(), 0.55)), np.array(want))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_otsu_is_scikit_images(dtype):
    """The section's Otsu threshold (its own 256-bin histogram handed to scikit-image) is
    ``threshold_otsu`` of the values, bit for bit: two classes, skewed, a few values, 2-D, all
    equal."""
    from skimage.filters import threshold_otsu

    from castrig.analysis.section_levels import _otsu

    rng = np.random.default_rng(3)
    cases = [np.r_[rng.normal(0.3, 0.05, 3000), rng.normal(0.8, 0.1, 200000)],
             rng.gamma(2.0, 0.1, 50000), rng.random(7), rng.random((40, 300)) ** 3,
             np.r_[np.zeros(100), np.ones(3)]]
    for v in cases:
        v = v.astype(dtype)
        assert _otsu(v) == float(threshold_otsu(v))
    assert _otsu(np.full(10, 0.25, dtype)) == 0.25


def _plain_keep_lids(loose, n_l, keep, top_raw, thick_px):
    """The lid search as it was written first: sizes and boxes of every piece of the image."""
    sizes = np.bincount(loose.ravel(), minlength=n_l + 1)
    cand = np.nonzero(~keep & (sizes >= 20))[0]
    objs = ndi.find_objects(loose)
    for j in cand[cand > 0].tolist():
        o = objs[j - 1]
        ref = top_raw[o[1].start:o[1].stop]
        if o is None or not np.isfinite(ref).any():
            continue
        low, ref_top = o[0].stop - 1, float(np.nanmin(ref))
        if ref_top - 0.5 * thick_px <= low < ref_top:
            keep[j] = True


@pytest.mark.parametrize("seed", range(12))
def test_lids_found_above_the_film_top_are_the_whole_images(seed):
    """Counting and boxing only the rows above the highest film top finds the same lids as over
    the whole image: pieces wholly above it, pieces reaching down through it (never lids, even
    where their part above it looks like one), pieces below it, columns without film."""
    from castrig.analysis.section import _keep_lids

    rng = np.random.default_rng(seed)
    h, w = 60, 200
    top = np.clip(25 + np.cumsum(rng.integers(-1, 2, w)), 12, 40).astype(float)
    top[rng.random(w) < 0.1] = np.nan
    rows = np.arange(h)[:, None]
    mask = (rows >= np.nan_to_num(top, nan=h)[None, :]) & (rows < np.nan_to_num(top, nan=h)[None, :] + 8)
    film = mask.copy()
    mask |= rows > 50  # the support
    mask |= ndi.binary_opening(rng.random((h, w)) > 0.75)  # scattered pieces anywhere
    for x in rng.integers(0, w - 12, 8):
        t = np.nanmin(top[x:x + 12]) if np.isfinite(top[x:x + 12]).any() else 20.0
        y = int(t) - int(rng.integers(2, 9))  # a lid's bottom 1-8 px over the film's top
        mask[max(y - 2, 0):max(y + 1, 0), x:x + 12] = True
        if rng.random() < 0.4:  # with a stalk down into the film: joined to it, no lid
            mask[max(y, 0):int(t) + 4, x + 5] = True
    # a lid's shape over the film's highest top M, with a stalk down to the support through
    # columns without film: cut at M it looks like a lid, whole it is not one
    x0, m = 100, int(np.nanmax(top))
    mask[:, x0 - 1:x0 + 13] = film[:, x0 - 1:x0 + 13] = False
    top[x0:x0 + 12] = m
    top[x0 + 4:x0 + 7] = np.nan
    mask[m:m + 8, x0:x0 + 12] = film[m:m + 8, x0:x0 + 12] = True
    mask[:, x0 + 4:x0 + 7] = film[:, x0 + 4:x0 + 7] = False
    mask[m - 4:m - 1, x0:x0 + 12] = True
    mask[48:50] = False  # (the support joined to the rest only through that stalk)
    mask[m - 1:, x0 + 5] = True
    mask[50:] = True
    loose, n = ndi.label(mask)
    keep = np.zeros(n + 1, bool)
    keep[loose[film]] = True  # (the pieces joined to the film)
    keep[0] = False
    want, got = keep.copy(), keep.copy()
    _plain_keep_lids(loose, n, want, top, 12.0)
    _keep_lids(loose, n, got, top, 12.0)
    np.testing.assert_array_equal(got, want)
    assert (want & ~keep).any(), "no lid found: the case tests nothing"
    assert not want[loose[m - 3, x0]]  # the stalked piece


def test_not_followed_counts_the_wide_gaps_as_the_plain_loop():
    """The fraction of the width not followed (the wide gaps found from the differences of the
    film's columns) is the column-by-column loop's."""
    from castrig.analysis.section import _not_followed

    def plain(film, *seen, gap=0.1):
        w = film.size
        lost = np.zeros(w, bool)
        for mask in (film, *seen):
            on = np.nonzero(mask)[0]
            if not on.size:
                return 1.0
            lost[:on[0]] = lost[on[-1] + 1:] = True
        on = np.nonzero(film)[0]
        for a, b in zip(on[:-1], on[1:]):
            if b - a - 1 > gap * w:
                lost[a + 1:b] = True
        return float(lost.mean())

    rng = np.random.default_rng(5)
    for _ in range(200):
        w = int(rng.integers(10, 400))
        film = rng.random(w) < rng.random()
        film[rng.integers(0, w):][: rng.integers(0, w)] = False  # a wide gap or none
        seen = rng.random(w) < 0.8
        assert _not_followed(film, seen) == plain(film, seen)
        assert _not_followed(film, seen, gap=0.02) == plain(film, seen, gap=0.02)


def _plain_slope_scores(xo, yo, grid):
    """_slope_scores's docstring, slope by slope (the shallowest peak of 3-bin windows)."""
    out = []
    for s in grid:
        r = yo - s * xo
        win = np.convolve(np.bincount((r - r.min()).astype(np.intp)), np.ones(3, np.int64), "same")
        i0 = int(np.argmax(win >= max(0.3 * win.max(), 0.05 * xo.size)))
        out.append(win[i0:i0 + 5].max())
    return np.array(out, float)


@pytest.mark.parametrize("seed", range(4))
def test_slope_scores_are_the_plain_histograms(seed):
    """The blocks of slopes and their histograms sized from the edge's span (not each one's
    maximum bin) score every slope as the plain loop does, the first of the best the same."""
    from castrig.analysis.section_lines import _slope_scores

    rng = np.random.default_rng(seed)
    w = int(rng.integers(40, 900))
    xo = np.sort(rng.choice(w, size=int(rng.integers(20, w)), replace=False)).astype([np.int64, np.float64][seed % 2])
    yo = 50 + 0.03 * (seed - 1.5) * xo + rng.normal(0, 0.8, xo.size)
    yo[rng.random(xo.size) < 0.3] += rng.uniform(3, 30)  # tongues below the interface
    grid = np.concatenate([[0.0], np.ravel(np.c_[np.arange(1, 90) * 1e-3, -np.arange(1, 90) * 1e-3])])
    got = _slope_scores(xo, yo, grid)
    want = _plain_slope_scores(np.asarray(xo, float), yo, grid)
    assert np.array_equal(got, want)
    assert int(np.argmax(got)) == int(np.argmax(want))


def _plain_least_cost_path(levels, data, seen, moves, pen):
    """The Viterbi of _least_cost_path as a loop over levels and moves (ties: the first move)."""
    nb, nl = data.shape
    cost = data[0].copy()
    back = np.zeros((nb, nl), np.intp)
    for k in range(1, nb):
        if not seen[k]:
            cost = cost + data[k]
            continue
        new = np.empty(nl)
        for i in range(nl):
            best, arg = np.inf, 0
            for j, mv in enumerate(moves):
                v = (cost[i + mv] if 0 <= i + mv < nl else np.inf) + pen[j]
                if v < best:
                    best, arg = v, j
            new[i] = best + data[k, i]
            back[k, i] = moves[arg]
        cost = new
    path = np.empty(nb, np.intp)
    path[-1] = int(np.argmin(cost))
    for k in range(nb - 1, 0, -1):
        path[k - 1] = path[k] + back[k, path[k]]
    return levels[path]


@pytest.mark.parametrize("hold", [False, True])
def test_the_interface_path_is_the_plain_viterbis(hold):
    """_least_cost_path's block steps on reused arrays take the same path as the plain loop over
    levels and moves (its levels, costs and moves built here as it builds them)."""
    import castrig.analysis.section_waves as sw

    rng = np.random.default_rng(3)
    w = 400
    y = 40 + 6 * np.sin(np.arange(w) / 40) + rng.normal(0, 0.7, w)
    y[150:170] += 12  # a tongue
    ok = rng.random(w) > 0.1
    ok[250:300] = False  # a gap
    got = sw._least_cost_path(y, ok, 0.75, 1.0, hold_in_gaps=hold)
    b = sw.PATH_BLOCK
    nb = -(-w // b)
    yo = y[ok]
    lo, hi = np.floor(sw._percentile(yo, 0.5)) - 3.0, np.ceil(sw._percentile(yo, 99.5)) + 3.0
    step = max(sw.PATH_STEP_PX, (hi - lo) / sw.PATH_MAX_LEVELS)
    levels = np.arange(lo, hi + 1e-9, step)
    r = np.full(nb * b, np.nan)
    r[:w] = np.where(ok, y, np.nan)
    rb = r.reshape(nb, b)
    z = ((rb[:, None, :] - levels[None, :, None]) / 0.75) ** 2
    data = np.nansum(np.where(rb[:, None, :] > levels[None, :, None], np.minimum(z, sw.PATH_BELOW_CAP),
                              np.minimum(z, sw.PATH_ABOVE_CAP)), axis=2)
    seen = np.isfinite(rb).any(axis=1) if hold else np.ones(nb, bool)
    hop = min(max(1, int(round(sw.PATH_SLOPE * b / step))), levels.size - 1)
    moves = np.r_[0, np.ravel(np.c_[-np.arange(1, hop + 1), np.arange(1, hop + 1)])]
    want_levels = _plain_least_cost_path(levels, data, seen, moves, 1.0 * np.abs(moves) * step)
    want = np.interp(np.arange(w, dtype=float), np.arange(nb) * b + (b - 1) / 2, want_levels)
    assert np.array_equal(got, want)


@pytest.mark.parametrize("case", ["uint8", "uint16", "offset", "mixed", "one-off"])
def test_otsu_of_whole_grey_levels_is_scikit_images(case):
    """A float32 image of whole grey levels (an 8- or 16-bit micrograph made measurable),
    counted level by level before its bins: ``threshold_otsu`` of the values, bit for bit; a
    view with one value off the whole levels is binned value by value, as before."""
    from skimage.filters import threshold_otsu

    from castrig.analysis.section_levels import _histogram, _otsu

    rng = np.random.default_rng(7)
    v = np.r_[rng.normal(40, 8, 30000), rng.normal(190, 20, 70000)]
    v = {"uint8": np.clip(np.rint(v), 0, 255), "uint16": np.rint(v * 250.7), "offset": np.rint(v) - 300.0,
         "mixed": np.rint(v * 0.3) + 1000, "one-off": np.rint(v)}[case].astype(np.float32).reshape(250, 400)
    if case == "one-off":
        v[-1, -1] = 17.5
    assert _otsu(v) == float(threshold_otsu(v))
    got, want = _histogram(v, v.min(), v.max()), np.histogram(v, 256, range=(v.min(), v.max()))
    assert np.array_equal(got[0], want[0]) and got[0].dtype == want[0].dtype
    assert np.array_equal(got[1], want[1]) and got[1].dtype == want[1].dtype


@pytest.mark.parametrize("seed", range(6))
def test_the_best_slope_is_the_first_of_the_best_scores(seed):
    """The slope search that scores only the slopes its bound cannot rule out finds the same
    slope as scoring them all: sections' edges of every tilt, noise, tongue share, whole rows."""
    from castrig.analysis.section_lines import _best_slope

    rng = np.random.default_rng(seed)
    for k in range(25):
        w = int(rng.integers(30, 1200))
        xo = np.sort(rng.choice(w, size=int(rng.integers(12, w)), replace=False)).astype(float)
        yo = 50 + rng.uniform(-0.08, 0.08) * xo + rng.normal(0, rng.uniform(0.1, 3), xo.size)
        yo[rng.random(xo.size) < rng.uniform(0, 0.5)] += rng.uniform(2, 40)
        if k % 3 == 0:
            yo = np.round(yo)
        grid = np.arange(0.0, np.tan(np.radians(5.0)) + 1e-9, 0.5 / w)
        grid = np.concatenate([[0.0], np.ravel(np.c_[grid[1:], -grid[1:]])])
        assert _best_slope(xo, yo, grid) == int(np.argmax(_plain_slope_scores(xo, yo, grid)))


@pytest.mark.parametrize("hold", [False, True])
def test_paths_stepped_together_are_the_paths_one_by_one(hold):
    """Two edges' Viterbis stepped together (the second with more levels: padded with +inf
    levels in the first) take the paths each takes alone; and the interface at two level-change
    costs is the interface at each."""
    import castrig.analysis.section_waves as sw

    rng = np.random.default_rng(5)
    w = 600
    x = np.arange(w, dtype=float)
    y1 = 40 + 4 * np.sin(x / 50) + rng.normal(0, 0.6, w)
    y2 = 40 + 0.05 * x + 9 * np.sin(x / 70) + rng.normal(0, 0.9, w)  # a wider range of rows
    y1[300:330] += 15
    ok = rng.random(w) > 0.1
    ok[100:160] = False
    together = sw._least_cost_paths([y1, y2], ok, 0.8, (0.5, 1.0), hold_in_gaps=hold)
    alone = [sw._least_cost_path(y1, ok, 0.8, 0.5, hold_in_gaps=hold), sw._least_cost_path(y2, ok, 0.8, 1.0, hold_in_gaps=hold)]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone))
    both = sw._interface_paths(y2, ok, (sw.BEND_CHANGE_COST, sw.PATH_CHANGE_COST))
    assert np.array_equal(both[0], sw._interface_path(y2, ok, sw.BEND_CHANGE_COST))
    assert np.array_equal(both[1], sw._interface_path(y2, ok, sw.PATH_CHANGE_COST))
