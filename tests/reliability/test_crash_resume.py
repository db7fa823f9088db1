"""kill -9 at seeded moments of a (CI-sized) overnight run, `castrig resume`, compare with an
uninterrupted run of the same seed (the full 20-moment campaign on recipes/overnight.yaml is in
benchmarks/reliability.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from castrig.reliability import crash
from conftest import campaign

ROOT = Path(__file__).resolve().parents[2]
MINI = ROOT / "tests" / "data" / "reliability" / "overnight_mini.yaml"


@pytest.fixture(scope="session")
def mini_reference(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The uninterrupted run of the mini overnight with seed 3 (``crash.run_reference``), made once
    per session (:func:`conftest.made_once`, ~1.3 s of CPU); each test process gets its own copy."""
    from conftest import made_once

    data = made_once(tmp_path_factory, worker_id, "mini-reference-3", lambda d: crash.run_reference(MINI, d, seed=3))
    (run_dir,) = [p for p in data.iterdir() if (p / "run.json").is_file()]
    return run_dir


def test_kill_moments_are_seeded_and_spread():
    a = crash.kill_moments(1000.0, 20, seed=5)
    assert a == crash.kill_moments(1000.0, 20, seed=5) and a != crash.kill_moments(1000.0, 20, seed=6)
    assert all(50 * k < t < 50 * (k + 1) for k, t in enumerate(a))  # one in each twentieth


# crash.campaign(MINI, n=3, seed=3)'s three kill moments, one in each third of the run: 228 s (the
# start purge), 1327 s (the hold after m1 was judged) and 2054 s (m2's evaporation). Each trial is
# a kill and a resume through the CLI, ~3.5 s of CPU: CI takes the hold, the one no other test in
# CI kills in (the step-kind test below kills in m2's cast and capture, which loses m2 as the
# evaporation does); -m slow takes all three.
@pytest.mark.parametrize("k", campaign([0, 1, 2], ci={1}))
def test_kill_and_resume_loses_nothing_repeats_no_cast(tmp_path, mini_reference, k):
    # the session's reference run (seed 3), not one more of its own (~1.3 s of CPU); the kill
    # moments are seeded by the seed too, as crash.campaign seeds them
    moment = crash.kill_moments(crash.recipe_duration_s(mini_reference), 3, seed=3)[k]
    trial = crash.crash_trial(MINI, mini_reference, 3, moment, tmp_path / f"k{k:03d}", 120)
    assert trial.killed, (trial.kill_at_s, trial.problems)
    assert trial.passed, (trial.kill_at_s, trial.outcome, trial.reason, trial.problems)


def test_the_checks_can_fail(tmp_path, mini_reference):
    """A resumed run that repeats its cast and duplicates samples is caught."""
    import json
    import shutil
    import sqlite3

    # a copy of the shared reference (spoiled below), checked against itself
    ref = Path(shutil.copytree(mini_reference, tmp_path / "ref" / mini_reference.name))
    run_dir = tmp_path / "ref"
    before = sqlite3.connect(ref / "run.sqlite").execute("select t_s, channel, value from samples order by rowid").fetchall()
    db = sqlite3.connect(ref / "run.sqlite")
    db.execute("insert into samples select * from samples where rowid <= 3")
    db.execute("insert into journal(t_s, step_index, state, data_json) values (9e9, 3, 'started', '{}')")
    db.commit()
    trial = crash.CrashTrial(kill_at_s=0.0, killed=True, resume_rc=0)
    crash.check_resumed(ref, ref, MINI, before, trial)
    assert any("duplicated" in p for p in trial.problems) and any("cast step 3 started 2 times" in p for p in trial.problems)
    assert json.loads((ref / "run.json").read_text())["outcome"] == "completed"
    assert run_dir.exists()


# the second membrane's steps: (step index, whether a kill inside it loses that membrane)
STEP_KINDS = {"prewet": (7, True), "cast": (8, True), "evaporate": (9, True), "capture": (10, False)}


@pytest.mark.parametrize("kinds", [("cast", "capture"),  # CI: a pump mid-dispense, and the step that loses nothing
                                   pytest.param(tuple(STEP_KINDS), marks=pytest.mark.slow)])
def test_kill_inside_each_membrane_step_kind_loses_at_most_that_membrane(tmp_path, kinds, mini_reference):
    """One seeded kill inside a pre-wet, a cast, the middle of an evaporation and a capture of the
    mini overnight: each resumed run completes, names its lost membrane, keeps earlier grades."""
    from concurrent.futures import ThreadPoolExecutor

    ref = mini_reference
    moments = dict(crash.step_moments(ref, seed=3))
    steps = [STEP_KINDS[k][0] for k in kinds]
    with ThreadPoolExecutor(max_workers=2) as pool:
        trials = list(pool.map(lambda i: crash.crash_trial(MINI, ref, 3, moments[i], tmp_path / f"s{i}", 120, i), steps))
    assert all(t.killed for t in trials)
    assert not [(t.kill_in_step, t.outcome, t.problems) for t in trials if not t.passed]
    lost = [getattr(t, "lost", []) for t in trials]
    assert [bool(x) for x in lost] == [STEP_KINDS[k][1] for k in kinds]  # a crash in capture loses nothing
    assert all(x[0].endswith("-m2") for x in lost if x)
