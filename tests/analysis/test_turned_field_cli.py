"""A top view turned to line its lattice up (ImageJ's Rotate with "enlarge"), its corners filled
with one grey: measured with the fill, the twin's view turned 30° in mid-grey read opening 0.14
and D 0.97 µm for 0.58 and 1.74 (the bottom corners taken for an SEM data bar, the rest for film),
unflagged, and claims 1-3 were met. Now the largest upright rectangle inside the turned field is
measured, as a rectangular padding is left out (``quality.margins_px``)."""

from __future__ import annotations

import json

import numpy as np
import tifffile
from scipy import ndimage as ndi

from conftest import castrig, castrig_main


def test_a_top_view_turned_in_a_grey_fill_is_measured_inside_its_field(tmp_path, capsys, rendered_membrane):
    px_um = 0.25
    view = tifffile.imread(rendered_membrane / "m000_reflected.tif")[256:768, 256:768]
    res = dict(resolution=(1e4 / px_um, 1e4 / px_um), resolutionunit="CENTIMETER")
    tifffile.imwrite(tmp_path / "upright.tif", view, **res)
    outs = {}
    for name, fill in (("upright", None), ("grey", 128), ("white", 255)):
        if fill is not None:
            tifffile.imwrite(tmp_path / f"{name}.tif", ndi.rotate(view, 30, reshape=True, order=1, cval=fill), **res)
        done = castrig_main(capsys, "analyse", "surface", str(tmp_path / f"{name}.tif"), "--json")
        assert done.returncode == 0, (name, done.stderr[-2000:])
        outs[name] = json.loads(done.stdout)
    ref = outs["upright"]
    for name in ("grey", "white"):
        out = outs[name]
        assert abs(out["opening_ratio"] - ref["opening_ratio"]) < 0.02, (name, out["opening_ratio"], ref["opening_ratio"])
        d, d_ref = out["mean_pore_diameter_um"], ref["mean_pore_diameter_um"]
        assert abs(d / d_ref - 1) < 0.03, (name, d, d_ref)
        assert "saturated" not in out["quality"]["flags"], name  # (the white fill is no clipped pixel)
        assert out["quality"].get("margins_px") and not out["quality"]["data_bar_rows"], (name, out["quality"])


def test_a_top_view_turned_in_black_or_white_is_not_saturated(tmp_path, capsys, rendered_membrane):
    """Fiji's fill is often black (or white) and a scan may be cropped at an angle: turned 7° or 20°
    in black, the twin's view was flagged saturated (its fill counted as clipped pixels; the black
    corners at the bottom also taken for an SEM data bar) and every metric came out unknown with
    the advice to fix the exposure; turned 7° in white (a one-pixel strip of fill along each edge
    taken for a frame, the corners measured) it was saturated too. Now the turned field of any
    constant fill is measured inside, its flag counting its own pixels."""
    px_um = 0.25
    view = tifffile.imread(rendered_membrane / "m000_reflected.tif")[256:768, 256:768]
    res = dict(resolution=(1e4 / px_um, 1e4 / px_um), resolutionunit="CENTIMETER")
    tifffile.imwrite(tmp_path / "upright.tif", view, **res)
    ref = json.loads(castrig_main(capsys, "analyse", "surface", tmp_path / "upright.tif", "--json").stdout)
    for angle, fill in ((7, 0), (20, 0), (7, 255)):  # (white at 20° was measured inside already)
        path = tmp_path / f"turned{angle}-{fill}.tif"
        tifffile.imwrite(path, ndi.rotate(view, angle, reshape=True, order=1, cval=fill), **res)
        done = castrig_main(capsys, "analyse", "surface", path, "--json")
        assert done.returncode == 0, (path.name, done.stderr[-2000:])
        out = json.loads(done.stdout)
        assert "saturated" not in out["quality"]["flags"], (path.name, out["quality"])
        assert out["quality"].get("margins_px") and not out["quality"]["data_bar_rows"], (path.name, out["quality"])
        assert abs(out["opening_ratio"] - ref["opening_ratio"]) < 0.02, (path.name, out["opening_ratio"], ref["opening_ratio"])
        assert abs(out["mean_pore_diameter_um"] / ref["mean_pore_diameter_um"] - 1) < 0.03, path.name
    # as a user reads it, in a process of its own: measured, no advice on the exposure
    done = castrig("analyse", "surface", str(tmp_path / "turned7-0.tif"))
    assert done.returncode == 0 and "exposure" not in done.stdout and "saturated" not in done.stdout, done.stdout


def test_a_dark_region_at_the_corners_is_no_turned_field(rendered_membrane):
    """Black is trimmed only where its edges are straight: a view whose four corners are clipped
    dark regions (quarter discs at 0) is measured whole and flagged saturated, as before."""
    from castrig.analysis import analyse_surface

    view = tifffile.imread(rendered_membrane / "m000_reflected.tif")[256:768, 256:768].copy()
    y, x = np.mgrid[0:512, 0:512]
    for cy in (0, 511):
        for cx in (0, 511):
            view[(y - cy) ** 2 + (x - cx) ** 2 < 90 ** 2] = 0
    m = analyse_surface(view, 0.25)
    assert m.margins_px == (0, 0, 0, 0) and "saturated" in m.flags, (m.margins_px, m.flags)
