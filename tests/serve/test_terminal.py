"""The run's own terminal: a status line every N minutes of run time without a TTY (and at every
step); with one, the live panel shows the run folder, the step label, time left in the step and
in the run, the last warning — and its final state stays on the screen."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import ROOT, castrig

RECIPE = """\
name: two-hours
steps:
  - {type: condition, setpoint_rh_pct: 50, band_rh_pct: 2, stable_for_s: 10, timeout_s: 900, label: "humidify"}
  - {type: wait, duration_s: 7200, label: "overnight hold"}
"""


def test_status_line_every_n_minutes_without_a_terminal(tmp_path: Path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    r = castrig("run", str(recipe), "--data", str(tmp_path / "data"), CASTRIG_STATUS_EVERY_MIN="30")
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if re.match(r"\[\d+:\d\d:\d\d\] step", line)]
    assert lines[0].startswith("[0:00:00] step 1/2: condition") and "(humidify)" in lines[0]
    assert any("step 2/2: wait (overnight hold)" in line and "left: step 2:00:00, run 2:00:00" in line for line in lines)
    periodic = [line for line in lines if "step 2/2" in line]
    assert 4 <= len(periodic) <= 6, lines  # at the step, then every 30 min of run time through a 2-hour hold
    assert all("RH " in line and "setpoint 50.0" in line for line in periodic)
    assert "run folder: " in r.stderr


def test_live_panel_shows_folder_label_time_left_and_stays(tmp_path: Path, terminal_run):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    term = terminal_run(["run", str(recipe), "--data", str(tmp_path / "data")], cwd=ROOT)
    assert term.wait(timeout_s=60) == 0
    out = term.output
    for text in ("run folder", "overnight hold", "left in step", "left in run", "last warning"):
        assert text in out, text
    final = out[out.rfind("castrig · two-hours"):]
    assert "(completed)" in final and "overnight hold" in final, final[-2000:]
