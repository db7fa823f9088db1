"""Times in a run folder that another tool or a person wrote without a zone (``2026-01-31T22:05:00``,
not castrig's ``…Z``): Python reads them as naive times, and subtracting one from castrig's own
raised TypeError -- a traceback from `castrig report` and from `castrig status` on a live run.
Each reader now takes them as UTC, as the fields' names say. Driven through the real CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import castrig, castrig_main, drop_micrographs, held_running_run


def test_a_run_json_time_without_a_zone_is_reported_as_utc(tmp_path: Path, finished_demo_run, capsys):
    data, run_id = finished_demo_run
    run_dir = Path(shutil.copytree(data / run_id, tmp_path / "runs" / run_id))
    drop_micrographs(run_dir)  # the report's times are the point, not its overlays (~0.7 s of CPU less)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["started_utc"].endswith("Z")
    info["started_utc"] = info["started_utc"][:-1]  # as a spreadsheet or a script writes it back
    (run_dir / "run.json").write_text(json.dumps(info))

    done = castrig_main(capsys, "report", str(run_dir))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    html = (run_dir / "report.html").read_text()
    assert f"wall clock {info['started_utc']} → {info['ended_utc']} (" in html
    listed = castrig_main(capsys, "runs", "--data", str(tmp_path / "runs"), "--since", info["started_utc"][:10])
    assert listed.returncode == 0 and run_id in listed.stdout, listed.stderr


def test_a_status_time_without_a_zone_is_aged_as_utc(tmp_path: Path):
    data = tmp_path / "runs"
    with held_running_run(data) as run_dir:
        control = run_dir / "control"
        control.mkdir(exist_ok=True)
        (control / "status.json").write_text(json.dumps({"state": "running", "t_s": 12.0, "written_utc": "2026-01-01T00:00:05"}))
        for argv in (("status", "--data", str(data)), ("status", str(run_dir), "--json")):
            done = castrig(*argv)
            assert done.returncode == 0 and "Traceback" not in done.stderr, (argv, done.stderr)
        status = json.loads(done.stdout)
        assert status["status_written_utc"] == "2026-01-01T00:00:05" and status["status_age_s"] > 3600, status
