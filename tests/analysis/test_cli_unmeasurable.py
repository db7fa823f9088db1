"""Images the analysis cannot measure, met as the audit met them (repro_7): the real CLI (the
size refusals through its entry point in the test process, conftest ``castrig_main``: refused
before anything is measured, a process's start-up was all their cost).

A 1×1 or one-row image is "too small" (the minimum and the size found), not "shape ()"; a
saturated (all-black) frame is not a measured opening ratio of 0 and a definite fail: its bounds
are unknown; a bound far outside its interval is never called marginal by the interval.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from castrig.analysis.verdict import judge
from conftest import castrig_in, castrig_main


@pytest.mark.parametrize("name, shape, found", [
    ("one.png", (1, 1), "1 × 1 px"),
    ("row.tif", (1, 100000), "100000 × 1 px"),
    pytest.param("col.tif", (5000, 3), "3 × 5000 px", marks=pytest.mark.slow),  # the full set (-m slow); CI: a row, a pixel, 8 rows
    pytest.param("rgb1.png", (1, 1, 3), "1 × 1 px", marks=pytest.mark.slow),
    ("eight.png", (8, 64), "64 × 8 px"),
])
def test_a_too_small_image_is_said_too_small(tmp_path: Path, name: str, shape, found: str, capsys, monkeypatch):
    a = np.zeros(shape, np.uint8)
    if name.endswith(".png"):
        Image.fromarray(a).save(tmp_path / name)
    else:
        tifffile.imwrite(tmp_path / name, a)
    monkeypatch.chdir(tmp_path)
    res = castrig_main(capsys, "analyse", "surface", name, "--pixel-size", "0.25")
    assert res.returncode == 2
    assert "image too small" in res.stderr and found in res.stderr and "at least 9 × 9 px" in res.stderr, res.stderr
    assert "shape" not in res.stderr and "Traceback" not in res.stderr


def test_the_smallest_allowed_image_is_measured(tmp_path: Path, capsys, monkeypatch):
    Image.fromarray(np.full((9, 9), 120, np.uint8)).save(tmp_path / "nine.png")
    monkeypatch.chdir(tmp_path)
    res = castrig_main(capsys, "analyse", "surface", "nine.png", "--pixel-size", "0.25", "--json")
    assert res.returncode == 0, res.stderr


def test_a_saturated_frame_is_unknown_not_a_measured_fail(tmp_path: Path, capsys, monkeypatch):
    from conftest import castrig_main

    Image.fromarray(np.zeros((256, 256), np.uint8)).save(tmp_path / "black.png")
    monkeypatch.chdir(tmp_path)  # (the JSON through the CLI's entry point in this process; the table below, a castrig process)
    res = castrig_main(capsys, "analyse", "membrane", "--surface", "black.png", "--section", "black.png", "--pixel-size", "0.25",
                       "--grade", "claim1", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert "saturated" in out["quality"]["flags"]
    (g,) = out["verdict"]["grades"]
    opening = [c for c in g["checks"] if c["quantity"] == "opening_ratio"]
    assert [c["status"] for c in opening] == ["unknown", "unknown"]
    assert all(c["value"] is None and c["margin"] is None and "saturated" in c["flags"] for c in opening)
    assert g["status"] in ("unknown", "fail") and not g["met"]
    assert not any(c["status"] == "marginal" and "interval" in c and not c["interval"][0] < c["limit"] < c["interval"][1]
                   and not c.get("flags") for c in g["checks"])
    table = castrig_in("analyse", "membrane", "--surface", "black.png", "--section", "black.png", "--pixel-size", "0.25",
                       "--grade", "claim1", cwd=tmp_path).stdout
    rows = [r for r in table.splitlines() if r.startswith("│ opening_ratio") and ("0.1" in r or "0.9" in r)]
    assert len(rows) == 2 and all("unknown" in r and "marginal" not in r and "fail" not in r for r in rows), table
    # the flags are shown, not eaten as console markup ("[too_few_pores, saturated]", wrapped)
    assert "saturated]" in table and "[too_few_pores" in table


def test_marginal_only_by_the_interval_or_a_named_flag():
    # the bound inside the interval: marginal, with what would settle it
    c = judge({"opening_ratio": 0.101}, ["claim1"], intervals={"opening_ratio": (0.095, 0.107)}).grade("claim1").checks[0]
    assert c.status == "marginal"
    # far outside the interval, no flag: a plain pass
    v = judge({"opening_ratio": 0.5}, ["claim1"], intervals={"opening_ratio": (0.45, 0.55)})
    assert [c.status for c in v.grade("claim1").checks if c.quantity == "opening_ratio"] == ["pass", "pass"]
    # a saturated metric: unknown, whatever its interval says
    v = judge({"opening_ratio": 0.0}, ["claim1"], intervals={"opening_ratio": (0.0, 0.0)},
              flagged={"opening_ratio": ["saturated"]})
    checks = [c for c in v.grade("claim1").checks if c.quantity == "opening_ratio"]
    assert [c.status for c in checks] == ["unknown", "unknown"] and not v.grade("claim1").met
    # a passing bound on a flagged (not trusted) metric stays marginal, and says it is the flag
    c = judge({"opening_ratio": 0.5}, ["claim1"], intervals={"opening_ratio": (0.45, 0.55)},
              flagged={"opening_ratio": ["no_lattice_order"]}).grade("claim1").checks[1]
    assert c.status == "marginal" and c.advice.startswith("passes, but flagged no_lattice_order")
    assert "statistical uncertainty" not in c.advice
