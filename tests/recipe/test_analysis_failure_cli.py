"""An analysis that fails costs its own membrane's verdict, not the night.

Found from the outside: a folder camera served a float64 micrograph whose pixels were finite but
near ±1e308; the analysis overflowed ('the image has NaN or infinite pixels'), `castrig analyse`
ended in a traceback, the run faulted after m1, and every `castrig resume --after-abort` ran the
same analysis into the same error: m2–m4 were never cast.
"""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from castrig.tiffio import read_micrograph, write_micrograph
from conftest import analysed, castrig, castrig_main, run_rows, with_sitecustomize

#: recipes/demo.yaml's membrane twice (its film meets claim 1 on the twin)
TWO_MEMBRANES = """name: two
polymer: polystyrene
solvent: chloroform
concentration_mg_ml: 5.0
grade: claim1
support_pore_um: 5.0
steps:
- {type: condition, setpoint_rh_pct: 70, band_rh_pct: 1.0, stable_for_s: 60, timeout_s: 900}
""" + """\
- {type: prewet, volume_ml: 0.3, rate_ml_min: 1.0}
- {type: cast, volume_ml: 0.2, rate_ml_min: 0.5}
- {type: evaporate, setpoint_rh_pct: 70, duration_s: 300, band_rh_pct: 3.0, max_out_of_band_s: 120}
- {type: capture, fields: 1}
- {type: analyse}
""" * 2

#: the first surface measured in the process raises, as a bug in the analysis would
FIRST_ANALYSIS_FAILS = """\
import castrig.analysis as a
_real, _calls = a.analyse_surface, []
def _failing(*args, **kw):
    _calls.append(1)
    if len(_calls) == 1:
        raise RuntimeError("injected: the first membrane's analysis fails")
    return _real(*args, **kw)
a.analyse_surface = _failing
"""


def test_a_membrane_whose_analysis_fails_is_left_not_judged_and_the_next_cast_is_made(tmp_path, capsys):
    recipe = tmp_path / "two.yaml"
    recipe.write_text(TWO_MEMBRANES)
    data = tmp_path / "runs"
    done = castrig("run", str(recipe), "--data", str(data), "-q", **with_sitecustomize(tmp_path, FIRST_ANALYSIS_FAILS))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stdout + done.stderr[-2000:]
    assert done.stdout.startswith("completed") and "not judged: m1 (made, not analysed)" in done.stdout, done.stdout
    (run_dir,) = [p.parent for p in data.glob("*/run.json")]
    status = dict(run_rows(run_dir, "select k, status from membranes"))
    assert status == {1: "made", 2: "judged"}, status
    ((message, data_json),) = run_rows(run_dir, "select message, data_json from events where kind = 'error' and source = 'analysis'")
    assert "analysis failed (RuntimeError: injected" in message and "castrig analyse membrane --surface " in message, message
    assert json.loads(data_json)["membrane_id"].endswith("-m1")
    lots = " ".join(castrig_main(capsys, "lots", "--data", str(data)).stdout.split())  # (reads the folder: in this process)
    assert "its analysis failed: RuntimeError: injected" in lots, lots
    # the command it gives measures the membrane's own images
    args = shlex.split(message.split("castrig analyse membrane ", 1)[1])
    again = analysed("membrane", *args)
    assert again["mean_pore_diameter_um"] and again["mean_thickness_um"], (message, again)


def _extreme(image: np.ndarray) -> np.ndarray:
    """The same view as float64 from -1.7e308 to +1.7e308: finite, its range beyond float64's."""
    a = image.astype(np.float64)
    return ((a - a.min()) / np.ptp(a) * 2.0 - 1.0) * 1.7e308


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_a_float64_micrograph_near_the_type_s_limits_measures_as_the_same_view(tmp_path, rendered_membrane):
    """The analysis rescales float images to [0, 1]: their range overflowed there.

    Each view cropped to half its width (the surface also to half its height: 512 × 512 px at
    0.25 µm, ~250 pores; the section 2560 px wide, its whole depth): the overflow is the value
    range's, not the size's, and each analysis costs a quarter to a half of the whole view's."""
    for view, kind in (("reflected", "surface"), ("section", "section")):
        img, px_um, _ = read_micrograph(rendered_membrane / f"m000_{view}.tif")
        img = img[: img.shape[0] // 2 if kind == "surface" else None, : img.shape[1] // 2]
        src = write_micrograph(tmp_path / f"{view}.tif", img, px_um)
        wide = write_micrograph(tmp_path / f"{view}-float64.tif", _extreme(img), px_um)
        done = castrig("analyse", kind, str(wide), "--json")
        assert done.returncode == 0 and done.stderr == "", done.stderr[-2000:]
        got, want = json.loads(done.stdout), analysed(kind, str(src))
        key = "mean_pore_diameter_um" if kind == "surface" else "mean_thickness_um"
        assert got[key] is not None and abs(got[key] / want[key] - 1) < 0.005, (kind, got[key], want[key])
