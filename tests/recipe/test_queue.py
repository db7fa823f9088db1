"""`castrig queue`: unattended runs, a failure recorded and the queue going on."""

from __future__ import annotations

import json
from pathlib import Path

from castrig.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"


def test_queue_records_failures_and_goes_on(tmp_path, capsys):
    failing = tmp_path / "unreachable.yaml"
    failing.write_text("name: unreachable\nsteps:\n"
                       "  - {type: condition, setpoint_rh_pct: 99.5, band_rh_pct: 0.2, stable_for_s: 60, timeout_s: 60}\n")
    data = tmp_path / "runs"
    code = main(["queue", str(failing), str(DATA / "short.yaml"), "--repeat", "2", "--data", str(data)])
    assert code == 3  # not all completed
    (summary_path,) = data.glob("queue-*.json")
    summary = json.loads(summary_path.read_text())
    outcomes = [r["outcome"] for r in summary["runs"]]
    assert outcomes == ["faulted", "completed", "faulted", "completed"]
    assert all(r["safe"] for r in summary["runs"])
    assert len({r["seed"] for r in summary["runs"]}) == 4  # each run its own seed
    assert all(Path(r["report"]).is_file() for r in summary["runs"])
    assert "queue summary" in capsys.readouterr().out


def test_queue_checks_every_recipe_before_starting(tmp_path, capsys):
    data = tmp_path / "runs"
    assert main(["queue", str(DATA / "short.yaml"), str(DATA / "broken.yaml"), "--data", str(data)]) == 2
    assert not data.exists()
    assert "broken.yaml" in capsys.readouterr().err
