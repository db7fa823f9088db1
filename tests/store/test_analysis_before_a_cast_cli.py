"""A run that images and judges the bare support before its first cast, then casts: the run's own
analysis is exported and reported beside its membrane's, not dropped.

Met from outside: ``castrig run`` of such a recipe recorded the first analysis under no membrane
(results ``metrics``, ``verdict``); ``castrig export`` wrote only the membrane's rows to
metrics.csv and verdict.csv, and ``castrig report`` showed its micrograph with no metrics or
verdict: what the run measured first was in no table or page.
"""

from __future__ import annotations

import csv
from pathlib import Path

from conftest import castrig, castrig_main, embedded, only_run_dir

#: The support imaged and judged first, then one cast (no evaporate: made at its cast).
RECIPE = """\
name: support-first
grade: claim1
support_pore_um: 5.0
steps:
  - {type: capture, views: [reflected], fields: 1}
  - {type: analyse}
  - {type: prewet, volume_ml: 0.05, rate_ml_min: 1.0}
  - {type: cast, volume_ml: 0.05, rate_ml_min: 0.5}
"""


def test_an_analysis_before_the_first_cast_is_in_the_export_and_the_report(tmp_path, capsys):
    (tmp_path / "support-first.yaml").write_text(RECIPE)
    done = castrig("run", str(tmp_path / "support-first.yaml"), "--data", str(tmp_path / "runs"), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = only_run_dir(tmp_path / "runs")
    assert castrig_main(capsys, "export", run_dir, "--to", tmp_path / "x").returncode == 0
    for table in ("metrics", "verdict"):
        rows = list(csv.DictReader(open(tmp_path / "x" / f"{table}.csv", newline="", encoding="utf-8")))
        assert any(r["membrane_id"] == "" for r in rows), (table, {r["membrane_id"] for r in rows})
    membranes = list(csv.DictReader(open(tmp_path / "x" / "membranes.csv", newline="", encoding="utf-8")))
    assert [m["membrane_id"] for m in membranes] == [f"{run_dir.name}-m1"]
    report = castrig_main(capsys, "report", run_dir)
    assert report.returncode == 0, report.stderr
    other = embedded(Path(run_dir, "report.html").read_text())["report"]["other"]
    assert [g["grade"] for g in other["grades"]] == ["claim1", "claim2", "claim3", "claim4"]
    assert any(name == "opening_ratio" for name, *_ in other["metrics"]) and len(other["micrographs"]) == 1
