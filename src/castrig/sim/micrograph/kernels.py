"""What every renderer of :mod:`castrig.sim.micrograph` shares: discs drawn with their exact
pixel coverage, the transmitted view, the illumination gradient, the blur (a separable Gaussian
in blocks of rows, to bound memory) and the camera's noise and quantisation (:func:`_finish`).
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import ndimage as ndi

from .structure import FilmStructure


# Relative intensities of the transmitted view (film = 1 in reflected light), used by every
# top-view family (surface.py holds the reflected ones).
_FILM_TRANSMITTED = 0.18
_BLIND_TRANSMITTED = 0.28
_THROUGH_TRANSMITTED = 1.0


# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------


def _disc_coverage(img: np.ndarray, cx: float, cy: float, r: float, value: float | None = None,
                   row0: int = 0) -> None:
    """Add the anti-aliased coverage of a disc (pixel units, pixel centres at i+0.5) into img.

    ``img`` may be a band of a taller image, starting at its row ``row0`` (coordinates stay those
    of the whole image, so every pixel gets the value it would get there)."""
    h, w = img.shape
    x0, x1 = max(int(cx - r - 1), 0), min(int(cx + r + 2), w)
    y0, y1 = max(int(cy - r - 1), row0), min(int(cy + r + 2), row0 + h)
    if x0 >= x1 or y0 >= y1:
        return
    yy = np.arange(y0, y1) + 0.5 - cy
    xx = np.arange(x0, x1) + 0.5 - cx
    d = np.sqrt(yy[:, None] ** 2 + xx[None, :] ** 2)
    cov = np.clip(r - d + 0.5, 0.0, 1.0)
    if value is None:
        img[y0 - row0:y1 - row0, x0:x1] += cov
    else:
        img[y0 - row0:y1 - row0, x0:x1] += cov * value


def _discs_coverage(shape: tuple[int, int], cx: np.ndarray, cy: np.ndarray, r: np.ndarray,
                    weights: list[np.ndarray | None]) -> list[np.ndarray]:
    """:func:`_disc_coverage` of many discs at once: for each entry of ``weights`` (one value
    per disc, or ``None`` for 1) the image of the discs' weighted coverages summed.

    Discs are grouped by their patch size so each group is one array operation, and the patches
    are summed into the image by ``np.bincount`` (patches of neighbours overlap).
    """
    h, w = shape
    cx, cy, r = (np.asarray(a, float) for a in (cx, cy, r))
    flats, covs, owners = [], [], []
    rc = np.ceil(r).astype(np.int64)
    for s in np.unique(rc):
        idx = np.nonzero(rc == s)[0]
        off = np.arange(2 * s + 3)
        xx = np.floor(cx[idx] - s - 1).astype(np.int64)[:, None] + off
        yy = np.floor(cy[idx] - s - 1).astype(np.int64)[:, None] + off
        dx, dy = xx + 0.5 - cx[idx, None], yy + 0.5 - cy[idx, None]
        cov = np.clip(r[idx, None, None] + 0.5 - np.sqrt(dy[:, :, None] ** 2 + dx[:, None, :] ** 2), 0.0, 1.0)
        inside = ((yy >= 0) & (yy < h))[:, :, None] & ((xx >= 0) & (xx < w))[:, None, :] & (cov > 0)
        flats.append((yy[:, :, None] * w + xx[:, None, :])[inside])
        covs.append(cov[inside])
        owners.append(np.broadcast_to(idx[:, None, None], cov.shape)[inside])
    flat = np.concatenate(flats) if flats else np.zeros(0, np.int64)
    cov = np.concatenate(covs) if covs else np.zeros(0)
    owner = np.concatenate(owners) if owners else np.zeros(0, np.int64)
    # (float64 even without pores: an empty bincount is int64, and the callers divide in place)
    return [np.bincount(flat, weights=cov if wt is None else cov * np.asarray(wt, float)[owner],
                        minlength=h * w).astype(np.float64, copy=False).reshape(h, w) for wt in weights]


def _transmitted(structure: FilmStructure, shape: tuple[int, int], c: np.ndarray, r: np.ndarray) -> np.ndarray:
    """The transmitted-light view before illumination: dim film and blind pores, bright
    through-pores (every top-view family shows its pores in transmitted light this way)."""
    t = np.where(np.asarray(structure.through, bool), _THROUGH_TRANSMITTED, _BLIND_TRANSMITTED) - _FILM_TRANSMITTED
    cov, trans = _discs_coverage(shape, c[:, 0], c[:, 1], r, [None, t])
    trans /= np.clip(cov, 1, None, out=cov)
    trans += _FILM_TRANSMITTED
    return trans


_BLOCK = 32768  # elements per block of rows (256 kB of float64: stays in the L2 cache)


def _illuminate(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """``img`` times a smooth multiplicative field (a random linear ramp and an off-centre
    vignette), in place, a block of rows at a time: the field's value is fy[y] + fx[x], and it
    is never built whole (the same products, one pass over the image)."""
    fy, fx = _illumination_profiles(img.shape, rng, strength)
    h, w = img.shape
    block = max(1, _BLOCK // max(w, 1))
    tmp = np.empty((min(block, h), w))
    for s in range(0, h, block):
        e = min(s + block, h)
        t = np.add(fy[s:e, None], fx[None, :], out=tmp[: e - s])
        img[s:e] *= t
    return img


def _illumination_profiles(shape: tuple[int, int], rng: np.random.Generator,
                           strength: float) -> tuple[np.ndarray, np.ndarray]:
    """The illumination field of :func:`_illuminate` as its two profiles: value (y, x) = fy[y] + fx[x]."""
    h, w = shape
    y = (np.arange(h) + 0.5) / h - 0.5
    x = (np.arange(w) + 0.5) / w - 0.5
    th = rng.uniform(0, 2 * math.pi)
    c = rng.uniform(-0.2, 0.2, 2)
    # 1 + s·(ramp − vignette) is a sum of a function of x and one of y: built from the two
    # profiles in one pass over the image (and its maximum is the sum of theirs).
    fx = strength * (math.cos(th) * x - (x - c[0]) ** 2)
    fy = 1.0 + strength * (math.sin(th) * y - (y - c[1]) ** 2)
    top = fx.max() + fy.max()
    return fy / top, fx / top


def _top_view_px(structure: FilmStructure, pixel_size_um: float) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    """A top view's (rows, cols), the pores' centres and radii in pixels: what every surface
    renderer draws from."""
    w_um, h_um = structure.field_um
    shape = (int(round(h_um / pixel_size_um)), int(round(w_um / pixel_size_um)))
    return shape, structure.centres_um / pixel_size_um, structure.diameters_um / 2 / pixel_size_um


@functools.lru_cache(maxsize=None)
def _gauss_weights(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The kernel ``ndi.gaussian_filter1d`` applies for ``sigma`` (truncate 4): ``[w0, w1, …, wr]``
    and the whole array it hands to ``correlate1d``. Read off its response to a unit impulse,
    so they are exactly scipy's (no copy of its formula to drift from it)."""
    r = int(4.0 * sigma + 0.5)
    e = np.zeros(4 * r + 3)
    e[2 * r + 1] = 1.0
    resp = ndi.gaussian_filter1d(e, sigma)
    return resp[2 * r + 1: 3 * r + 2].copy(), resp[r + 1: 3 * r + 2][::-1].copy()




def _gaussian(img: np.ndarray, sigma: float) -> np.ndarray:
    """``ndi.gaussian_filter(img, sigma)`` of a 2-D float64 image, bit for bit, ~3× faster.

    scipy filters along the columns (axis 0) one strided line at a time, 4–5× slower than along
    the rows. Here that pass is done on blocks of whole rows with numpy in the order of scipy's
    symmetric kernel loop (``x0·w0``, then ``+= (x[-j] + x[+j])·wj`` from the farthest pair in;
    'reflect' = numpy's 'symmetric' padding), so every sum is rounded the same; then, while the
    block is still in cache, scipy's own pass along its rows (``correlate1d`` with the kernel
    ``gaussian_filter1d`` gives it).
    """
    half, full = _gauss_weights(float(sigma))
    r = len(half) - 1
    h, w = img.shape
    out = np.empty((h, w))
    block = max(1, min(h, _BLOCK // max(w, 1)))  # ~256 kB of rows: the block stays in cache
    span = block + 2 * r
    if h >= span + r:  # the reflected rows at each end from that end only: pad the ends alone
        head = np.pad(img[:span], ((r, 0), (0, 0)), mode="symmetric")  # rows -r .. span
        tail = np.pad(img[h - span:], ((0, r), (0, 0)), mode="symmetric")  # rows h-span .. h+r
    else:
        head = tail = np.pad(img, ((r, r), (0, 0)), mode="symmetric")
    tmp = np.empty((block, w))
    for s in range(0, h, block):
        e = min(s + block, h)
        n = e - s
        if s - r >= 0 and e + r <= h:
            x = img[s - r: e + r]
        elif head is tail:
            x = head[s: e + 2 * r]
        elif s - r < 0:
            x = head[s: e + 2 * r]
        else:
            x = tail[s - r - (h - span): e + r - (h - span)]
        o, t = out[s:e], tmp[:n]
        np.multiply(x[r: r + n], half[0], out=o)
        for j in range(r, 0, -1):
            np.add(x[r - j: r - j + n], x[r + j: r + j + n], out=t)
            t *= half[j]
            o += t
        ndi.correlate1d(o, full, axis=1, output=o, mode="reflect")
    return out


_LEVELS = {8: (215, 12, 255, np.uint8), 16: (52000, 1500, 65535, np.uint16)}  # scale, offset, top, dtype


def _finish(img: np.ndarray, rng: np.random.Generator, blur_px: float, noise: float, bit_depth: int) -> np.ndarray:
    """Blur, additive noise, scale and quantisation. A 2-D float64 image (every renderer's) is
    worked in place on arrays of its own: it is a few MB, and each fresh temporary costs about
    as much as the arithmetic; the values are those of the plain expressions of the other path."""
    if bit_depth not in _LEVELS:
        raise ValueError("bit_depth must be 8 or 16")
    scale, offset, top, dtype = _LEVELS[bit_depth]
    if img.dtype != np.float64 or img.ndim != 2:
        if blur_px > 0:
            img = ndi.gaussian_filter(img, blur_px)
        if noise > 0:
            img = img + rng.normal(0, noise, img.shape)
        return np.clip(np.rint(img * scale + offset), 0, top).astype(dtype)
    own = False
    if blur_px > 0:
        img, own = _gaussian(img, blur_px), True
    if noise > 0:
        # rng.normal(0, noise, shape) is 0 + noise·z of the same standard normals z: noise·z alone
        # differs only in the sign of a zero, which the offset below erases
        n = rng.standard_normal(img.shape)
        n *= noise
        img, own = np.add(img, n, out=img if own else n), True
    if own:
        img *= scale
    else:
        img = img * scale
    img += offset
    np.rint(img, out=img)
    np.clip(img, 0, top, out=img)
    return img.astype(dtype)
