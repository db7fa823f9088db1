"""The segmentation as an ImageJ/Fiji ROI set (``castrig analyse ... --rois FILE.zip``).

Open the micrograph in Fiji (it is calibrated in µm when castrig wrote it, see
:func:`castrig.tiffio.write_micrograph`), then File > Open the .zip: the ROI Manager lists one
ROI per measured pore — a polygon of the pore's measured equivalent circle (sub-pixel vertices
around its centroid), so Fiji's Measure gives back the area castrig measured — named
``pore-<label>`` (``-through`` when the transmitted view shows it open). Sections give polylines
of the film's upper envelope, the interface, and the bottoms of the polymer tongues in the
support.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

__all__ = ["surface_rois", "section_rois", "write_rois", "is_roi_set", "roi_set_problem"]


def _circle(cy: float, cx: float, r: float, n: int) -> np.ndarray:
    """(n, 2) x/y vertices (ImageJ: x = column, y = row, pixel corners at integers)."""
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    r = r * math.sqrt(2 * math.pi / (n * math.sin(2 * math.pi / n)))  # polygon area = circle area
    # analysis centres are pixel indices (centre of pixel k at k); ImageJ's pixel k spans [k, k+1)
    return np.column_stack([cx + 0.5 + r * np.cos(t), cy + 0.5 + r * np.sin(t)])


def surface_rois(m) -> list:
    """ROIs of a :class:`~castrig.analysis.surface.SurfaceMetrics`: one per measured pore."""
    from roifile import ImagejRoi

    ids = np.asarray(m.measured_labels, int)
    if ids.size == 0:
        return []
    centres = np.asarray(m.centres_px)[ids - 1]
    r_px = np.asarray(m.diameters_um) / 2 / m.pixel_size_um
    out = []
    for k, (lab, (cy, cx), r) in enumerate(zip(ids, centres, r_px)):
        n = int(min(64, max(16, round(2 * math.pi * r / 2))))
        name = f"pore-{int(lab)}"
        if m.through is not None and k < len(m.through) and bool(m.through[k]):
            name += "-through"
        out.append(ImagejRoi.frompoints(_circle(float(cy), float(cx), float(r), n), name=name))
    return out


def section_rois(m) -> list:
    """Polylines of a :class:`~castrig.analysis.section.SectionMetrics`: upper envelope,
    interface, tongue bottoms (rows are the sub-pixel edges the analysis found)."""
    from roifile import ROI_TYPE, ImagejRoi

    out = []
    for name, rows in (("film-top", m.top_row), ("interface", m.interface_row), ("penetration", m.penetration_rows)):
        rows = np.asarray(rows, float)
        if rows.size == 0:
            continue
        ok = np.isfinite(rows)
        # runs of finite rows, one polyline each (the tongues are separate)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], ok.astype(np.int8), [0]])))
        for i, (a, b) in enumerate(zip(edges[::2], edges[1::2])):
            if b - a < 2:
                continue
            x = np.arange(a, b) + 0.5
            roi = ImagejRoi.frompoints(np.column_stack([x, rows[a:b]]), name=f"{name}-{i + 1}" if name == "penetration" else name)
            roi.roitype = ROI_TYPE.POLYLINE
            out.append(roi)
    return out


#: the most members and directory bytes of an existing zip looked at to see whether it is an
#: earlier ROI set (castrig writes one member, some 60 bytes of directory, a pore)
MAX_ROI_SET_MEMBERS = 1 << 20
MAX_ROI_SET_DIRECTORY_BYTES = 128 << 20


def roi_set_problem(path: str | Path) -> str | None:
    """None when ``path`` is an ImageJ ROI set: a zip whose members are all ``.roi`` files (an
    empty zip counts: castrig writes one for an image without pores); else why not, in a few
    words. Its directory is read a piece at a time and only so far (:mod:`castrig.zipdir`):
    one that declares more than :data:`MAX_ROI_SET_MEMBERS` members or
    :data:`MAX_ROI_SET_DIRECTORY_BYTES` bytes is no set castrig wrote, and is not read."""
    from castrig.zipdir import ZipTooLarge, member_names

    try:
        names = member_names(path, max_members=MAX_ROI_SET_MEMBERS, max_bytes=MAX_ROI_SET_DIRECTORY_BYTES)
        if names is None:
            return "not a zip file"
        for name in names:
            if not name.lower().endswith(b".roi"):
                return f"it holds {name[:80].decode('utf-8', 'replace')!r}, which is no .roi file"
    except ZipTooLarge as exc:
        return str(exc)
    except (OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return None


def is_roi_set(path: str | Path) -> bool:
    """True when ``path`` is an ImageJ ROI set (:func:`roi_set_problem`)."""
    return roi_set_problem(path) is None


def write_rois(path: str | Path, rois: list) -> Path:
    """Write ROIs as an ImageJ ROI set (.zip) at ``path``, a new file (callers make it atomic:
    ``castrig analyse --rois`` writes it to a temporary beside its target and renames it)."""
    import zipfile

    from roifile import roiwrite

    if rois:
        roiwrite(path, rois, mode="w")
    else:  # an empty set: an empty zip Fiji opens without complaint
        zipfile.ZipFile(path, "w").close()
    return Path(path)
