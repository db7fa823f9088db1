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
    if any(_rotated_field(a)):  # the fill round a turned field, not a band of text
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
    same, and the saturated flag already speaks for it -- but for the fill round a turned field,
    of any value (:func:`_rotated_field`: straight edges across the corners)."""
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

    turned = _rotated_field(a)  # (of any fill, black too: its straight edges tell it from a dark region)
    if any(turned):
        return turned
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


def _rotated_field(a: np.ndarray) -> tuple[int, int, int, int]:
    """The margins round the largest centred upright rectangle inside a field turned by a rotation
    whose corners were filled with one value (an ImageJ rotation with "enlarge", a scan cropped at
    an angle; a fill of grey, white or black): (0, 0, 0, 0) when the corners are not such a fill.
    Measured with its fill, a top view turned 30° in mid-grey read opening 0.14 and D 0.97 µm for
    0.58 and 1.74, unflagged, and claims 1-3 were met; turned 7° or 20° in black (or 7° in white)
    it was flagged saturated and nothing was measured. A black fill is told from a clipped dark
    region at the border (left alone: see :func:`find_margins`) by its exact value reaching the
    corners and by its straight edges: a turned field is a convex piece bounded by lines; an
    upright one (a rectangular frame) is left to :func:`find_margins`."""
    from scipy import ndimage as ndi

    h, w = a.shape
    v = a[0, 0]
    none = (0, 0, 0, 0)
    if h < 32 or w < 32 or not (a[0, -1] == v and a[-1, 0] == v and a[-1, -1] == v):
        return none
    lab, _ = ndi.label(a == v)
    corners = {int(lab[0, 0]), int(lab[0, -1]), int(lab[-1, 0]), int(lab[-1, -1])}
    field = ~np.isin(lab, list(corners))
    rows = np.nonzero(field.any(1))[0]
    if field.sum() > 0.99 * a.size or rows.size == 0:
        return none
    if np.count_nonzero(field & (a == v)) >= 0.2 * np.count_nonzero(field):
        return none  # the fill's grey is the image's own (a noise-free drawing's film)
    # one convex piece: each row's field pixels in one run (but for a few of the turned edge's
    # pixels that took the fill's value), no row inside without any
    first, last = field[rows].argmax(1), w - 1 - field[rows, ::-1].argmax(1)
    if rows[-1] - rows[0] + 1 != rows.size or (last - first + 1 - field[rows].sum(1) > 2).any():
        return none
    cols = last.max() - first.min() + 1
    if field.sum() >= 0.98 * rows.size * cols:
        return none  # an upright field: a frame (find_margins)
    if not (_two_lines(first, int(first.argmin())) and _two_lines(last, int(last.argmax()))):
        return none  # its sides not straight: a dark region, not a turned field's fill
    cy, cx = np.argwhere(field).mean(0)
    hh, hw = (rows[-1] - rows[0] + 1) / 2, (last.max() - first.min() + 1) / 2
    lo, hi = 0.0, 1.0
    for _ in range(20):  # the largest box of the field's proportions, centred on it, wholly inside it
        s = (lo + hi) / 2
        t, b = int(np.ceil(cy - s * hh)), int(np.floor(cy + s * hh))
        l, r = int(np.ceil(cx - s * hw)), int(np.floor(cx + s * hw))
        if t >= 0 and l >= 0 and b < h and r < w and (~field[t:b + 1, l:r + 1]).sum() <= 4:
            lo = s
        else:
            hi = s
    # (2 px in from the edge: its pixels blend the field with the fill)
    t, b = int(np.ceil(cy - lo * hh)) + 2, int(np.floor(cy + lo * hh)) - 2
    l, r = int(np.ceil(cx - lo * hw)) + 2, int(np.floor(cx + lo * hw)) - 2
    if b - t + 1 < 32 or r - l + 1 < 32:
        return none
    return t, h - 1 - b, l, w - 1 - r


def _two_lines(edge: np.ndarray, corner: int, tol_px: float = 2.0) -> bool:
    """Whether ``edge`` (a field side's column, row by row) is two straight lines meeting at row
    ``corner``, but for a few rows (the pixels of the turned edge that took the fill's value)."""
    off = 0
    for part in (edge[:corner + 1], edge[corner:]):
        if part.size < 3:
            continue
        y = np.arange(part.size, dtype=float)
        fit = np.polyval(np.polyfit(y, part, 1), y)
        inl = np.abs(part - fit) <= tol_px
        if inl.sum() >= 3:  # once more, from the rows on the line
            fit = np.polyval(np.polyfit(y[inl], part[inl], 1), y)
        off += int(np.count_nonzero(np.abs(part - fit) > tol_px))
    return off <= 0.05 * edge.size
