"""A run whose run.json says it runs on another host (a run folder on a shared disk): only its own
host judges it crashed (its OS lock may not show here). `castrig runs` and `castrig status` say
"running on HOST?", lots take it as not closed, and `castrig resume` refuses (exit 4, naming the
host) unless --take-over, which the run's events record. Outside in: the real CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conftest import castrig, castrig_main, crashed_membrane_run, run_then_kill_9, step_running

OTHER = "rig-pc-2"
RUN_ID = "20260101-000001-night"


def recorded_on(run_dir: Path, host: str) -> None:
    """run.json (and its last part) as a run of ``host`` leaves it."""
    path = run_dir / "run.json"
    info = json.loads(path.read_text())
    info["host"] = host
    for part in info.get("parts", []):
        part["host"] = host
    path.write_text(json.dumps(info, indent=2))


def test_a_run_recorded_on_another_host_is_not_judged_crashed_here(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("CASTRIG_STORE", raising=False)
    root = tmp_path / "data"
    run_dir = crashed_membrane_run(root, RUN_ID)
    recorded_on(run_dir, OTHER)

    listed = castrig_main(capsys, "runs", "--data", str(root))
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if RUN_ID in line)
    assert f"running on {OTHER}?" in row and "crashed" not in row

    status = castrig_main(capsys, "status", str(run_dir))
    assert status.returncode == 0 and f"recorded running on {OTHER}?" in status.stdout, status.stdout + status.stderr

    lots = castrig_main(capsys, "lots", "--data", str(root), "assign", RUN_ID + "-m1", "--use", "blood_filter")
    assert lots.returncode == 2 and f"recorded running on {OTHER}" in lots.stderr, lots.stderr
    assert not (root / "lots.json").exists()

    before = (run_dir / "run.json").read_text()
    resumed = castrig("resume", str(run_dir), "-q")
    assert resumed.returncode == 4, resumed.stdout + resumed.stderr
    said = " ".join(resumed.stderr.split())
    assert f"running on {OTHER}" in said and f"castrig resume --take-over {run_dir}" in said, said
    assert (run_dir / "run.json").read_text() == before  # refused before a byte was written


#: the second wait long enough (virtual) that the kill lands in it: a 30 s wait ended first, now and then
RECIPE = """
name: waits
steps:
  - {type: wait, duration_s: 30}
  - {type: wait, duration_s: 3000}
"""


@pytest.mark.parametrize("step", [1])
def test_resume_take_over_continues_it_and_records_the_take_over(tmp_path, step):
    import socket

    recipe = tmp_path / "waits.yaml"
    recipe.write_text(RECIPE)
    run_dir = run_then_kill_9(recipe, tmp_path / "runs", step_running(step, after_s=5))
    recorded_on(run_dir, OTHER)
    assert castrig("resume", str(run_dir), "-q").returncode == 4

    done = castrig("resume", str(run_dir), "-q", "--take-over")
    assert done.returncode == 0, done.stdout + done.stderr
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "completed" and info["host"] == socket.gethostname()
    db = sqlite3.connect(f"file:{run_dir / 'run.sqlite'}?mode=ro", uri=True)
    (data,) = db.execute("SELECT data_json FROM events WHERE kind = 'take_over'").fetchone()
    db.close()
    assert json.loads(data)["from_host"] == OTHER and json.loads(data)["by_host"] == socket.gethostname()
