"""What a resume writes about the crash it follows: when the crashed part stopped (its last
record of any kind — a sample, an event, a journal entry — not its last event), and the crashed
part closed in run.json as ``crashed`` at that record instead of ``running`` forever.

Outside in: a wall-clock twin run killed with SIGKILL at a seeded moment of a long evaporation
(samples every second, no event after the step's start), then ``castrig resume``.
"""

from __future__ import annotations

import json
import random
import time
from datetime import datetime
from pathlib import Path

import pytest

from conftest import campaign, castrig, run_rows, run_then_kill_9

RECIPE = """
name: evap
steps:
  - {type: cast, volume_ml: 0.01, rate_ml_min: 0.8}
  - {type: evaporate, setpoint_rh_pct: 45, duration_s: 60, band_rh_pct: 20, max_out_of_band_s: 600}
  - {type: wait, duration_s: 1}
"""


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def _evaporating_for(delay_s: float):
    def ready(run_dir: Path) -> bool:
        start = run_rows(run_dir, "select max(t_s) from journal where step_index=1 and state='started'")
        if not start or start[0][0] is None:
            return False
        last = run_rows(run_dir, "select max(t_s) from samples")[0][0]
        return last is not None and last >= start[0][0] + delay_s

    return ready


def _look_with_a_read_write_connection(run_dir: Path) -> None:
    """What the sqlite3 shell or pandas does to a crashed run it opens: a read-write connection,
    which folds the WAL into run.sqlite as it closes and deletes it (run.sqlite newly dated)."""
    import sqlite3

    time.sleep(2.0)
    db = sqlite3.connect(run_dir / "run.sqlite")
    db.execute("select count(*) from samples").fetchone()
    db.close()
    assert not (run_dir / "run.sqlite-wal").exists()


@pytest.mark.parametrize("seed, looked_at", campaign([(4, False), (5, True)], ci={1}))
def test_resume_after_kill_9_dates_the_stop_by_the_last_record_and_closes_the_crashed_part(tmp_path, wall_sim_profile, seed,
                                                                                            looked_at):
    """``looked_at``: the crashed run read with the sqlite3 shell before the resume, which dated
    the stop by that read ("resumed 10 s later" of a film that stood 47 s uncontrolled)."""
    recipe = tmp_path / "evap.yaml"
    recipe.write_text(RECIPE)
    delay = random.Random(seed).uniform(5.0, 8.0)  # samples keep coming; the last event is the step's start
    run_dir = run_then_kill_9(recipe, tmp_path / "runs", _evaporating_for(delay),
                              args=("--profile", str(wall_sim_profile)))
    killed = time.time()
    last_sample = run_rows(run_dir, "select max(t_s) from samples")[0][0]
    last_event = run_rows(run_dir, "select max(t_s) from events")[0][0]
    assert last_sample - last_event >= 4.0  # the case the audit found: records long after the last event
    crashed = json.loads((run_dir / "run.json").read_text())["parts"][0]
    if looked_at:
        _look_with_a_read_write_connection(run_dir)
    time.sleep(2.0)  # a gap the resume must not count as run time
    done = castrig("resume", str(run_dir), "-q", timeout_s=120)
    assert done.returncode == 0, done.stdout + done.stderr

    [resume] = [json.loads(d) for (d,) in run_rows(run_dir, "select data_json from events where kind='resume'")]
    stopped = _epoch(resume["stopped_utc"])
    # the last sample was written at most a sample period (1 s) before the kill
    assert killed - 2.5 <= stopped <= killed + 0.2, (killed, resume)  # stopped_utc: whole seconds
    assert resume["gap_s"] >= 2.0
    [(reason,)] = run_rows(run_dir, "select lost_reason from membranes where status='lost'")
    assert f"stopped at {resume['stopped_utc']}" in reason

    info = json.loads((run_dir / "run.json").read_text())
    first, second = info["parts"]
    assert first["outcome"] == "crashed" and first["started_utc"] == crashed["started_utc"]
    assert first["ended_utc"] == resume["stopped_utc"]
    assert first["t1_s"] == pytest.approx(last_sample, abs=1e-3)
    assert second["outcome"] == "completed" and second["t0_s"] > first["t1_s"]


@pytest.mark.slow  # ~15 s: the wall-clock case above runs in every suite
def test_a_twin_run_looked_at_with_sqlite3_after_a_crash_is_dated_by_its_records(tmp_path):
    """The same on the twin's virtual clock (two membranes, killed as the second is cast): its
    run-clock times are no wall times, and the stop is read from the log's last write."""
    from conftest import ROOT

    def casting_m2(run_dir: Path) -> bool:
        return bool(run_rows(run_dir, "select 1 from membranes where k = 2"))

    run_dir = run_then_kill_9(ROOT / "tests" / "data" / "two_membranes_judged.yaml", tmp_path / "runs", casting_m2)
    killed = time.time()
    _look_with_a_read_write_connection(run_dir)
    time.sleep(2.0)
    done = castrig("resume", str(run_dir), "-q", timeout_s=120)
    assert done.returncode == 0, done.stdout + done.stderr
    [resume] = [json.loads(d) for (d,) in run_rows(run_dir, "select data_json from events where kind='resume'")]
    assert killed - 2.5 <= _epoch(resume["stopped_utc"]) <= killed + 0.2, (killed, resume)
    assert resume["gap_s"] >= 4.0, resume
