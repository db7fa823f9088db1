"""A pause asked while a pump dispenses is taken when the dispense has ended — never mid-cast.

Met by the audit on the wall-clock twin: ``castrig pause`` 2 s into a 0.2 mL cast answered
"paused at a safe point" while the caster went on from 0.049 to 0.2 mL (the pause was taken
inside the pump step's hold and nothing stopped, or should stop, the pump: a split cast is a
different film). Now the answer and ``status`` say "pausing after the cast", the pause comes once
the cast step is done, and abort still stops the pump at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import castrig_main, only_run_dir, run_dir_in_step, run_rows, run_status, start_castrig, wait_until

RECIPE = """\
name: pause-in-a-cast
concentration_mg_ml: 5.0
support_pore_um: 5.0
steps:
  - {type: purge, duration_s: 10}
  - {type: cast, volume_ml: 0.5, rate_ml_min: 0.0005}
  - {type: purge, duration_s: 10}
"""

#: The same on the wall-clock twin (conftest.wall_sim_profile): a 7.5 s cast, long enough that a
#: pause or Ctrl-C is read well before it ends, and cheap: the 60000 s virtual dispense above
#: simulated every control tick, ~5 s of CPU a run (the audit met the bug on the wall clock).
WALL_RECIPE = RECIPE.replace("duration_s: 10", "duration_s: 1").replace("volume_ml: 0.5, rate_ml_min: 0.0005",
                                                                        "volume_ml: 0.1, rate_ml_min: 0.8")
WALL_ML = 0.1


@pytest.mark.parametrize("step, pump, words", [("cast", "caster", "the cast"),
                                               # ~13 s on CI, the same pump step code as the cast's: in the full set
                                               pytest.param("prewet", "water_pump", "the pre-wet", marks=pytest.mark.slow)])
def test_castrig_pause_during_a_dispense_waits_for_it_to_end(tmp_path: Path, reap, capsys, wall_sim_profile, step, pump,
                                                             words):
    """The twin on the wall clock (a 7.5 s dispense); ``castrig pause`` once status.json shows the
    cast (or the pre-wet) under way."""
    recipe = tmp_path / "dispense.yaml"
    recipe.write_text(WALL_RECIPE.replace("type: cast", f"type: {step}"))
    data = tmp_path / "data"
    run = reap(start_castrig("run", str(recipe), "--profile", str(wall_sim_profile), "--data", str(data), "-q"))
    run_dir = run_dir_in_step(data, step, timeout_s=60, what=f"the {step} under way")
    infused_when_asked = run_status(run_dir)["pumps_ml"].get(pump, 0.0)
    assert infused_when_asked < 0.8 * WALL_ML

    paused = castrig_main(capsys, "pause", str(run_dir))
    assert paused.returncode == 0 and "accepted" in paused.stdout, paused.stdout + paused.stderr
    assert f"after {words}" in paused.stdout  # the answer says when the pause will come, truthfully
    # while the dispense goes on, readers see a pause pending, not a pause (the status is written
    # in the same poll that answered the command: asked before 0.8 of the volume, it goes on)
    shown = run_status(run_dir)
    assert shown.get("state") == "pausing" and shown["step_type"] == step, shown
    assert f"after {words}" in (shown.get("detail") or ""), shown
    line = castrig_main(capsys, "status", str(run_dir)).stdout
    assert "pausing" in line and f"after {words}" in line, line

    wait_until(lambda: run_status(run_dir).get("state") == "paused", timeout_s=60, what="paused")
    at_pause = run_status(run_dir)
    events = run_rows(run_dir, "SELECT id, t_s, kind, source, message FROM events ORDER BY id")
    pause = next(e for e in events if e[2] == "pause")
    step_end = next(e for e in events if e[2] == "step_end" and e[4].startswith("step 2 "))
    dispensed = next(e for e in events if e[2] == "pump" and "dispensed" in e[4] and "dispensing" not in e[4])
    assert dispensed[0] < step_end[0] < pause[0], events  # the whole dispense, then the pause
    assert f"step 2 ({step}) done" in pause[4], pause
    assert at_pause["pumps_ml"][pump] >= 0.98 * WALL_ML  # its whole volume before the run said paused
    # the pump does not move while paused: its last readings are the full volume
    infused = [v for (v,) in run_rows(run_dir, f"SELECT value FROM samples WHERE channel = '{pump}_infused_ml' ORDER BY rowid")]
    assert infused and infused[-1] >= 0.98 * WALL_ML

    resumed = castrig_main(capsys, "resume-paused", str(run_dir))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert run.wait(timeout=60) == 0, run.stderr.read()[-3000:]  # type: ignore[union-attr]
    kinds = [k for _, _, k, _, _ in run_rows(run_dir, "SELECT id, t_s, kind, source, message FROM events ORDER BY id")]
    assert kinds.count("pause") == 1 and kinds.count("resume") == 1
    journal = run_rows(run_dir, "SELECT step_index, state FROM journal ORDER BY seq")
    assert journal.count((1, "started")) == 1  # one dispense, not split


def test_ctrl_c_during_a_cast_pauses_after_it_and_twice_aborts_at_once(tmp_path: Path, terminal_run, wall_sim_profile):
    """The run's own terminal: Ctrl-C during the cast says it pauses after the cast and asks only
    once the cast step is done ('r' goes on); in a second run, Ctrl-C twice during the cast stops
    the pump at once (outcome interrupted, exit 130, safe state verified, the cast short)."""
    from conftest import ROOT

    recipe = tmp_path / "cast.yaml"
    recipe.write_text(WALL_RECIPE)
    data = tmp_path / "data"
    term = terminal_run(["run", str(recipe), "--profile", str(wall_sim_profile), "--data", str(data)], cwd=ROOT)
    run_dir_in_step(data, "cast", timeout_s=60, what="the cast under way")
    term.ctrl_c()
    at = term.expect("pausing after the cast")
    term.expect("Enter to resume", after=at, timeout_s=60)
    run_dir = only_run_dir(data)
    assert run_dir is not None
    kinds = [k for (k,) in run_rows(run_dir, "SELECT kind FROM events WHERE kind IN ('step_end', 'pause') ORDER BY id")]
    assert kinds == ["step_end", "step_end", "pause"], kinds  # asked after the purge and the cast were done
    term.send("r\n")
    assert term.wait(60) == 0, term.output[-3000:]

    data2 = tmp_path / "data2"
    term = terminal_run(["run", str(recipe), "--profile", str(wall_sim_profile), "--data", str(data2)], cwd=ROOT)
    run_dir = run_dir_in_step(data2, "cast", timeout_s=60, what="the cast under way")
    term.ctrl_c()
    term.expect("pausing after the cast")
    term.ctrl_c()
    assert term.wait(30) == 130, term.output[-3000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "interrupted"
    safe = [json.loads(d) for (d,) in run_rows(run_dir, "SELECT data_json FROM events WHERE kind = 'safe_state'")]
    assert safe and safe[-1]["safe"] is True
    infused = [v for (v,) in run_rows(run_dir, "SELECT value FROM samples WHERE channel = 'caster_infused_ml' ORDER BY rowid")]
    assert infused and infused[-1] < 0.9 * WALL_ML  # stopped mid-cast, not run to its end first


def test_a_dispense_shows_the_time_it_should_take_left_not_its_time_out(tmp_path: Path, reap, capsys, wall_sim_profile):
    """A 0.5 mL cast at 0.0005 mL/min takes 60000 s. Readers were shown the step's time-out
    (1.5 × 60000 + 30 s) as its duration: `castrig status` said "left: step 25:00:30" at its start,
    half as long again as the cast could take. Now the planned duration, counting down.

    On the wall-clock twin, a 0.5 mL cast at 0.05 mL/min (600 s planned, time-out 930 s), read
    in its first seconds: the virtual 60000 s cast simulated every tick until the abort (~2 s of CPU)."""
    recipe = tmp_path / "dispense.yaml"
    recipe.write_text(RECIPE.replace("duration_s: 10", "duration_s: 1").replace("rate_ml_min: 0.0005", "rate_ml_min: 0.05"))
    data = tmp_path / "data"
    run = reap(start_castrig("run", str(recipe), "--profile", str(wall_sim_profile), "--data", str(data), "-q"))
    run_dir = wait_until(lambda: (d := only_run_dir(data)) is not None and run_status(d).get("step_type") == "cast"
                         and run_status(d).get("step_elapsed_s", 0) > 0 and d, timeout_s=60, what="the cast under way")
    shown = json.loads(castrig_main(capsys, "status", str(run_dir), "--json").stdout)
    assert shown["step_duration_s"] == pytest.approx(600.0), shown
    assert 0 < shown["step_left_s"] <= 600.0, shown
    assert castrig_main(capsys, "abort", str(run_dir)).returncode == 0
    assert run.wait(timeout=60) == 3


def test_one_ctrl_c_after_a_pause_asked_from_elsewhere_joins_it(tmp_path: Path, terminal_run, capsys, wall_sim_profile):
    """`castrig pause` from another terminal during the cast, then one Ctrl-C at the run's own
    terminal (an outside tester): the run ended at once (exit 130) "interrupted by the operator
    (Ctrl-C twice)", the cast cut short and the membrane lost. The Ctrl-C joins the pause asked
    from elsewhere (said so); the cast ends whole, the run pauses after it, and is resumed where
    the pause was asked; a second Ctrl-C would abort."""
    from conftest import ROOT

    recipe = tmp_path / "cast.yaml"
    recipe.write_text(WALL_RECIPE)
    data = tmp_path / "data"
    term = terminal_run(["run", str(recipe), "--profile", str(wall_sim_profile), "--data", str(data)], cwd=ROOT)
    run_dir = run_dir_in_step(data, "cast", timeout_s=60, what="the cast under way")
    paused = castrig_main(capsys, "pause", str(run_dir))
    assert paused.returncode == 0 and "accepted" in paused.stdout, paused.stdout + paused.stderr
    term.ctrl_c()
    term.expect("the run is pausing or paused already")
    wait_until(lambda: run_status(run_dir).get("state") == "paused", timeout_s=60, what="paused after the cast")
    assert term.proc.poll() is None  # one Ctrl-C did not end it
    resumed = castrig_main(capsys, "resume-paused", str(run_dir))
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert term.wait(60) == 0, term.output[-3000:]
    [(process,)] = run_rows(run_dir, "SELECT process_json FROM membranes")
    assert json.loads(process)["dispensed"]["cast"]["volume_ml"] >= 0.98 * WALL_ML


def test_a_membrane_paused_after_its_cast_says_so_in_its_record(tmp_path: Path, reap, capsys, wall_sim_profile):
    """``castrig pause`` during a cast is taken after it, while the film dries: a 72 s pause there
    (the twin's 0.1 mL film forms in ~64 s) was recorded 'made (evaporated under control)', its
    evaporation 5 s, out of band 0 s, with no word of the pause. Now its record and event say it."""
    recipe = tmp_path / "cast-evaporate.yaml"
    recipe.write_text(WALL_RECIPE.replace("  - {type: purge, duration_s: 1}\n", "", 1).replace(
        "type: purge, duration_s: 1", "type: evaporate, setpoint_rh_pct: 45, duration_s: 1, band_rh_pct: 5, max_out_of_band_s: 5").replace(
        "volume_ml: 0.1,", "volume_ml: 0.05,"))  # a 3.75 s cast
    data = tmp_path / "data"
    run = reap(start_castrig("run", str(recipe), "--profile", str(wall_sim_profile), "--data", str(data), "-q"))
    run_dir = run_dir_in_step(data, "cast", timeout_s=60, what="the cast under way")
    assert castrig_main(capsys, "pause", str(run_dir)).returncode == 0
    wait_until(lambda: run_status(run_dir).get("state") == "paused", timeout_s=60, what="paused")
    import time
    time.sleep(1.0)
    assert castrig_main(capsys, "resume-paused", str(run_dir)).returncode == 0
    assert run.wait(timeout=60) == 0, run.stderr.read()[-3000:]  # type: ignore[union-attr]
    made = [msg for (msg,) in run_rows(run_dir, "SELECT message FROM events WHERE kind = 'membrane' AND message LIKE '%made%'")]
    assert made and "paused" in made[-1], f"the membrane's record says nothing of the pause after its cast: {made}"
    (process,) = [json.loads(p) for (p,) in run_rows(run_dir, "SELECT process_json FROM membranes")]
    assert process.get("paused_s", 0) >= 1.0, process


def test_a_run_killed_while_pausing_says_so_in_status_and_resume(tmp_path: Path, reap, capsys, wall_sim_profile):
    """``castrig pause`` during the cast is taken after it: killed (kill -9) in between, the run
    was pausing -- its pause requested on record, not yet taken. `castrig status` of the crashed
    run and `castrig resume` said nothing of it (the resume went on "after 'running'"), as of a
    run never paused. Now both say the pause asked is gone with the process, as of a run killed
    paused; `castrig resume --help` says what a resume does with such a run."""
    import os
    import signal

    from conftest import castrig

    recipe = tmp_path / "cast.yaml"
    recipe.write_text(WALL_RECIPE)
    data = tmp_path / "data"
    run = reap(start_castrig("run", str(recipe), "--profile", str(wall_sim_profile), "--data", str(data), "-q"))
    run_dir = run_dir_in_step(data, "cast", timeout_s=60, what="the cast under way")
    paused = castrig_main(capsys, "pause", str(run_dir))
    assert paused.returncode == 0 and "after the cast" in paused.stdout, paused.stdout + paused.stderr
    os.kill(run.pid, signal.SIGKILL)
    assert run.wait(timeout=10) == -9
    kinds = [k for (k,) in run_rows(run_dir, "SELECT kind FROM events ORDER BY id")]
    assert "command" in kinds and "pause" not in kinds, kinds  # (killed pausing: asked, not taken)

    line = castrig_main(capsys, "status", str(run_dir)).stdout
    assert "crashed" in line and "pausing when its process stopped" in line and "by cli:" in line, line
    shown = json.loads(castrig_main(capsys, "status", str(run_dir), "--json").stdout)
    assert "not yet taken" in (shown.get("detail") or ""), shown

    resumed = castrig("resume", str(run_dir), "-q")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "was pausing when it stopped" in resumed.stderr and "not paused" in resumed.stderr, resumed.stderr[-2000:]
    [(message, data_json)] = run_rows(run_dir, "SELECT message, data_json FROM events WHERE kind = 'unpaused'")
    assert "by cli:" in message and json.loads(data_json)["pause_taken"] is False, message
    assert "it had been pausing" in run_rows(run_dir, "SELECT message FROM events WHERE kind = 'resume'")[-1][0]
    line = castrig_main(capsys, "status", str(run_dir)).stdout  # (ended: the pause said by the resume, not again)
    assert "completed" in line and "pausing" not in line, line

    helped = " ".join(castrig("resume", "--help", COLUMNS="200").stdout.split())
    assert "stopped paused, or pausing" in helped and "goes on not paused" in helped, helped
