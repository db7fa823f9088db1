"""The samples come at the profile's ``sample_period_s``, not that plus the ticks' line time.

Measured on recipes/overnight.yaml (docs/records/twin-speed.md): ``control_period_s: 1`` gave ticks
1.12 s apart and ``sample_period_s: 5`` samples 5.5-5.7 s apart (5 090 over 28 596 s), because the
runner slept a whole period after each tick's exchanges. An operator who sets 5 s expects 5 s.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from conftest import ROOT, castrig_in, only_run_dir, run_dir_in_step, run_rows

#: hw_profiles/sim.yaml's control.sample_period_s
SAMPLE_S = 5.0
#: one exchange's line time, at most (the twin's links: ~0.01-0.05 s)
EXCHANGE_S = 0.1


def _twin_run(tmp_path: Path, recipe_text: str) -> Path:
    """``castrig run`` of ``recipe_text`` on hw_profiles/sim.yaml (virtual time): its run folder."""
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(recipe_text)
    data = tmp_path / "data"
    done = castrig_in("run", recipe, "--profile", ROOT / "hw_profiles" / "sim.yaml", "--data", data, "-q", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    run = only_run_dir(data)
    assert run is not None
    return run


def _sample_times(run: Path) -> list[float]:
    return [t for (t,) in run_rows(run, "SELECT t_s FROM samples WHERE channel = 'rh_near_pct' ORDER BY t_s")]


def test_samples_come_at_the_profiles_period_through_a_long_evaporate(tmp_path: Path) -> None:
    run = _twin_run(tmp_path, "name: cadence\nsteps:\n  - {type: evaporate, setpoint_rh_pct: 50, duration_s: 1800, "
                              "band_rh_pct: 20, max_out_of_band_s: 1800}\n")
    (start, end), = run_rows(run, "SELECT MIN(t_s), MAX(t_s) FROM journal WHERE step_index = 0")
    times = [t for t in _sample_times(run) if start <= t <= end]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # each sample a period after the last, within one exchange's time (the sample's time is
    # taken after its reads); before: 5.5-5.7 s, the drift growing by the ticks' line time
    assert min(gaps) >= SAMPLE_S - EXCHANGE_S and max(gaps) <= SAMPLE_S + EXCHANGE_S, (min(gaps), max(gaps))
    # and as many over the step as the period gives (before: 1800 s / 5.6 s, ~322 instead of 361)
    assert abs(len(times) - (end - start) / SAMPLE_S) <= 1.5, (len(times), end - start)
    # on schedule from the step's first sample, not drifting away from it (no error piling up)
    assert abs((times[-1] - times[0]) - SAMPLE_S * (len(times) - 1)) <= EXCHANGE_S


def test_the_schedule_keeps_its_rate_and_its_phase_after_an_overrun() -> None:
    """Due times a period apart whatever the work took; an overrun: the next at once, standing
    for the grid's last due time, then on the grid again (the missed ones skipped: no burst of
    catch-up ticks; before, re-anchored at the overrun's end, out of phase with the samples); a
    sample late by more than a period is not made up either; work moved up (a hold's last tick)
    leaves the schedule as it was and stands for no due time."""
    from castrig.recipe.cadence import FixedRate

    ticks = FixedRate(1.0, due_t=0.0)
    assert [ticks.advance(t) for t in (0.12, 1.3, 2.05)] == [1.0, 2.0, 3.0]  # exchanges inside the period
    assert ticks.advance(7.5) == 7.0 and ticks.begin(7.5) == 7.0  # overran: at once, for 7.0
    assert ticks.advance(7.6) == 8.0  # then on the grid (before: 7.5, then 8.5)
    assert ticks.advance(7.9) == 8.0 and ticks.begin(7.9) is None  # ticked early (a hold's end): the due time stands
    assert ticks.begin(10.3) == 10.0 and ticks.advance(10.4) == 11.0  # begun late (a step's own work): for 10.0, once
    samples = FixedRate(5.0)
    assert samples.due(0.0)
    samples.taken(0.0)
    assert not samples.due(4.9) and samples.due(5.0)
    samples.taken(5.2)  # a tick a little late: the next still 10.0
    assert samples.due_t == 10.0
    samples.taken(23.0)  # late by more than a period: 28.0, not 15.0 and 20.0 at once
    assert samples.due_t == 28.0
    # a sample due a little after a tick (the wall clock's ticks start a little late) is taken at
    # that tick, not a whole control period later
    nearest = FixedRate(1.0, due_t=3.0021, early_s=0.5)
    assert nearest.due(3.0003) and not nearest.due(2.4)
    nearest.taken(3.0003)
    assert nearest.due_t == 4.0021


def test_samples_stay_a_period_apart_across_the_steps_of_a_run(tmp_path: Path) -> None:
    """On recipes/overnight.yaml the samples came 4.2-5.6 s apart across step boundaries (17
    times), 5 s within a step: each hold started its ticks afresh, at the step's own start,
    out of step with the samples' schedule. Now the ticks keep one schedule for the run.
    Then a sample 4.54 s and the next 5.42 s after the last capture's: one of the capture's ticks
    (one after each view, before the schedule's next) took the sample 0.46 s early (here 4.60 s,
    5.40 s). Now a sample goes with the tick that stands for its due time."""
    # durations not whole periods, and steps with exchanges of their own (set RH, purge) between
    # the holds; the capture's views end within half a period before a sample is due
    run = _twin_run(tmp_path, "name: steps\nsteps:\n"
                              "  - {type: evaporate, setpoint_rh_pct: 50, duration_s: 24.45, band_rh_pct: 20, max_out_of_band_s: 100}\n"
                              "  - {type: capture, views: [reflected, transmitted, section], fields: 1}\n"
                              "  - {type: wait, duration_s: 13.7}\n"
                              "  - {type: purge, flow_slpm: 5, duration_s: 9.3}\n"
                              "  - {type: evaporate, setpoint_rh_pct: 40, duration_s: 17.6, band_rh_pct: 20, max_out_of_band_s: 100}\n"
                              "  - {type: wait, duration_s: 11.45}\n")
    times = _sample_times(run)
    gaps = [round(b - a, 3) for a, b in zip(times, times[1:])]
    assert len(gaps) >= 12, gaps
    # before: gaps of 4.4 to 5.6 s where a step began; 4.60 and 5.40 s around the capture
    assert min(gaps) >= SAMPLE_S - EXCHANGE_S and max(gaps) <= SAMPLE_S + EXCHANGE_S, gaps
    # and on one schedule from the run's first sample to its last
    assert abs((times[-1] - times[0]) - SAMPLE_S * (len(times) - 1)) <= EXCHANGE_S, (times[0], times[-1], len(times))


def test_samples_keep_their_period_through_a_pause_at_the_ctrl_c_prompt(tmp_path: Path, terminal_run,
                                                                        wall_sim_profile: Path) -> None:
    """On the wall clock (sampling every second), Ctrl-C, 1.3 s at the prompt, 'r': the samples
    came 1.39 s then 0.61 s apart after the resume -- the hold's own ticks, due long before the
    pause, ticked at once and were re-anchored at the resume, out of step with the prompt's ticks
    and the samples. Now the prompt and the hold tick on the run's one schedule."""
    profile = yaml.safe_load(wall_sim_profile.read_text())
    profile["control"].update(control_period_s=0.5, sample_period_s=0.5)  # (the same, twice as fast)
    wall_sim_profile.write_text(yaml.safe_dump(profile, sort_keys=False))
    recipe = tmp_path / "wait.yaml"
    recipe.write_text("name: wait\nsteps:\n  - {type: wait, duration_s: 2}\n")
    data = tmp_path / "data"
    term = terminal_run(["run", str(recipe), "--profile", str(wall_sim_profile), "--data", str(data)], cwd=ROOT)
    run_dir = run_dir_in_step(data, "wait", timeout_s=30, what="the wait under way")
    term.ctrl_c()
    term.expect("to resume")
    time.sleep(0.65)  # (not a whole number of periods)
    term.send("r\n")
    assert term.wait(30) == 0, term.output[-2000:]
    paused = run_rows(run_dir, "SELECT t_s FROM events WHERE kind = 'pause'")[0][0]
    resumed = run_rows(run_dir, "SELECT t_s FROM events WHERE kind = 'resume'")[0][0]
    times = [t for (t,) in run_rows(run_dir, "SELECT t_s FROM samples WHERE channel = 'rh_near_pct' ORDER BY t_s")]
    gaps = [round(b - a, 3) for a, b in zip(times, times[1:])]
    assert any(t > resumed for t in times[:-1]) and any(t < paused for t in times), (paused, resumed, times)
    # each a period apart (a tick on the wall clock starts a few ms late), across the pause too
    assert all(abs(g - 0.5) <= 0.06 for g in gaps), (paused, resumed, gaps)
