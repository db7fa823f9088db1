"""The analysis gives the same numbers on its worker threads and with none
(CASTRIG_ANALYSIS_THREADS=0, what `castrig explore` worker processes use when they fill the cores)."""

from __future__ import annotations

import json

import numpy as np

from castrig.sim.micrograph import make_structure, render_surface, render_surface_sem
from castrig.tiffio import write_micrograph
from conftest import castrig


def test_no_analysis_threads_same_numbers(tmp_path):
    rng = np.random.default_rng(3)
    st = make_structure(rng, mean_diameter_um=3.0, opening_ratio=0.5, field_um=384 * 0.25)
    refl, trans = render_surface(st, 0.25, rng)
    sem, _ = render_surface_sem(st, 0.25, rng)
    for name, img in (("r", refl), ("t", trans), ("s", sem)):
        write_micrograph(tmp_path / f"{name}.tif", img, 0.25)
    runs = {}
    for threads in ("0", "2"):
        a = castrig("analyse", "surface", str(tmp_path / "r.tif"), "--transmitted", str(tmp_path / "t.tif"), "--json",
                    CASTRIG_ANALYSIS_THREADS=threads)
        b = castrig("analyse", "surface", str(tmp_path / "s.tif"), "--appearance", "sem", "--json",
                    CASTRIG_ANALYSIS_THREADS=threads)
        assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
        runs[threads] = (json.loads(a.stdout), json.loads(b.stdout))
    assert runs["0"] == runs["2"]
