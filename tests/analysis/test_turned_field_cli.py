"""A top view turned to line its lattice up (ImageJ's Rotate with "enlarge"), its corners filled
with one grey: measured with the fill, the twin's view turned 30° in mid-grey read opening 0.14
and D 0.97 µm for 0.58 and 1.74 (the bottom corners taken for an SEM data bar, the rest for film),
unflagged, and claims 1-3 were met. Now the largest upright rectangle inside the turned field is
measured, as a rectangular padding is left out (``quality.margins_px``)."""

from __future__ import annotations

import json

import tifffile
from scipy import ndimage as ndi

from conftest import castrig_main


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
