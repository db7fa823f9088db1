"""The data bar an SEM writes under its images (DESIGN §4: "An SEM data bar is not part of the
image").

Zeiss, FEI/Thermo, JEOL, Hitachi and TESCAN instruments save the scan with a band of text
below it — magnification, voltage, a scale bar — on a flat background (black, grey or white),
often behind a separating line. Such rows are nothing like a micrograph's: most of their pixels
hold exactly one grey level (the band's background), where a scanned row's pixels spread over
the noise. Found from the bottom up: the run of rows in which at least 40 % of the pixels equal
the row's median, a band between 2 and 35 % of the image height (a thin uniform strip of
padding counts too), set apart from the image above (a noise-free image is flat everywhere:
no band). The image above it is what gets measured.
"""

from __future__ import annotations

import numpy as np

__all__ = ["crop", "find_data_bar", "find_margins", "strip_data_bar", "strip_margins"]

FLAT_SHARE = 0.4
MAX_SHARE = 0.35


def _flat_rows(rows: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):  # (float64 rows near ±1e308: a median of two overflows, no pixel equals it)
        med = np.median(rows, axis=1)
    return (rows == med[:, None]).mean(axis=1) >= FLAT_SHARE


def find_data_bar(image: np.ndarray) -> int | None:
    """First row of the data bar at the bottom of ``image``, or None when there is none.

    Costs two rows when there is none (the bottom row must already be flat)."""
    a = np.asarray(image)
    if a.ndim != 2 or a.shape[0] < 32 or a.shape[1] < 32:
        return None
    h = a.shape[0]
    if not _flat_rows(a[-2:]).any():
        return None
    k = int(h * MAX_SHARE)
    flat = _flat_rows(a[h - k:])
    # the band: from the bottom up, flat rows, allowing text lines (non-flat runs of at most
    # 3 % of the height) inside it
    gap = max(2, int(0.03 * h))
    top = h
    run = 0
    apart = False  # the band ends under more than `gap` rows that are not flat
    for i in range(k - 1, -1, -1):
        if flat[i]:
            top = h - k + i
            run = 0
        else:
            run += 1
            if run > gap:
                apart = True
                break
    height = h - top
    if height < max(3, int(0.02 * h)) or height > k:
        return None
    if not apart and _flat_rows(a[max(0, h - 2 * k):h - k]).mean() > 0.5:
        # flat rows up to the window's top, and mostly flat above it: no band apart from the
        # image (a noise-free image, a clean drawing or a binary mask, every row mostly one level)
        return None
    return int(top)


def strip_data_bar(image: np.ndarray) -> tuple[np.ndarray, int]:
    """``image`` without its data bar (a view) and the number of rows removed (0 if none)."""
    top = find_data_bar(image)
    if top is None:
        return image, 0
    return image[:top], int(np.asarray(image).shape[0] - top)


def find_margins(image: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): the rows and columns at the image's edges whose pixels all
    hold one value above the image's least -- a frame or strip of padding (light, grey or
    white) that an export, a rotation or a montage added; at most a quarter of the height or
    width on each side. Such a strip is no micrograph (a scanned line spreads over the noise);
    measured with the image, a light strip over a section read its film 9x thick, and a frame
    round a top view moved D by 4-8 %. Black is left alone: a clipped dark background looks the
    same, and the saturated flag already speaks for it."""
    a = np.asarray(image)
    if a.ndim != 2 or a.shape[0] < 32 or a.shape[1] < 32:
        return 0, 0, 0, 0
    least = a.min()

    def run(lines) -> tuple[int, object]:
        """How many of ``lines`` (from the edge inwards) each hold one value above the least,
        and the outermost one's value."""
        n, value = 0, None
        for line in lines:
            v = line[0]
            if v <= least or not (line == v).all():
                break
            n, value = n + 1, (v if value is None else value)
        return n, value

    h, w = a.shape
    sides = [run(a[i] for i in range(h // 4)), run(a[h - 1 - i] for i in range(h // 4)),
             run(a[:, j] for j in range(w // 4)), run(a[:, w - 1 - j] for j in range(w // 4))]
    if not any(n for n, _ in sides):
        return 0, 0, 0, 0
    # padding holds a value the image itself seldom does; a noise-free drawing's film rows
    # (its film one grey, the edge rows missing the pores) are the image: kept
    t, b, l, r = (n for n, _ in sides)
    inner = a[t:h - b, l:w - r]
    return tuple(0 if n and np.count_nonzero(inner == v) >= 0.2 * inner.size else n for n, v in sides)  # type: ignore[return-value]


def strip_margins(image: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """``image`` without its uniform padding (a view; :func:`find_margins`) and the margins."""
    margins = find_margins(image) if np.ndim(image) == 2 else (0, 0, 0, 0)
    return crop(image, margins), margins


def crop(image: np.ndarray, margins: tuple[int, int, int, int]) -> np.ndarray:
    """``image`` less ``margins`` (top, bottom, left, right), a view."""
    if not any(margins):
        return image
    t, b, l, r = margins
    h, w = np.shape(image)
    return np.asarray(image)[t:h - b, l:w - r]
