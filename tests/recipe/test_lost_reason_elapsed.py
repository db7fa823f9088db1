"""A lost membrane's reason says how long its step had run when the run ended, on the run clock.

Before: "... the run ended aborted in step 3 (cast) after 0 s of it" 2 s (and, with a sample period
longer than the stop's lag, 22 s) into the cast, and "after 0 s" 2 s into a pre-wet: the elapsed
time was taken from the last RH record, which lags the stop by up to a sample period (5 s on the
twin's profile), not from the run clock when the run stopped.

From the outside in: the real ``castrig run`` in a subprocess on the twin (virtual time), sent
SIGTERM by a sitecustomize hook at a seeded moment of the run clock -- once step ``$TERM_STEP``
(0-based) has run ``$TERM_AFTER_S`` s -- since the twin runs far faster than a test could time it.
"""

from __future__ import annotations

import re

import pytest

from conftest import castrig, only_run_dir, run_rows, signal_self, with_sitecustomize

RECIPE = """name: lostclock
grade: claim1
concentration_mg_ml: 4.5747
support_pore_um: 20.0
steps:
- {type: purge, duration_s: 10}
- {type: prewet, rate_ml_min: 0.05, volume_ml: 0.2}
- {type: cast, rate_ml_min: 0.01, volume_ml: 1.0}
- {type: evaporate, band_rh_pct: 3.0, duration_s: 60, max_out_of_band_s: 120, setpoint_rh_pct: 60}
"""

#: SIGTERM to itself once the runner's step ``$TERM_STEP`` has run ``$TERM_AFTER_S`` s of run clock.
TERM_IN_STEP = signal_self("castrig.recipe.runner:Runner._tick", "SIGTERM", after=True, once="_TERM_SENT",
                           when='args[0].status.step_index == int(os.environ["TERM_STEP"]) and args[0].t() '
                                '- state.setdefault("t0", args[0].t()) >= float(os.environ["TERM_AFTER_S"])')  # (t0: the step's first tick)


@pytest.mark.parametrize("step, after_s, words", [
    (1, 2.0, "the pre-wetted support dried without RH control (its water content is unknown): the run ended aborted "
             "in step 2 (prewet)"),
    (2, 2.0, "the cast film dried without RH control: the run ended aborted in step 3 (cast)"),
    (2, 22.0, "the cast film dried without RH control: the run ended aborted in step 3 (cast)"),
], ids=["prewet-2s", "cast-2s", "cast-22s"])
def test_sigterm_in_a_step_states_the_seconds_the_step_had_run(tmp_path, step, after_s, words):
    recipe = tmp_path / "lostclock.yaml"
    recipe.write_text(RECIPE)
    data = tmp_path / "runs"
    done = castrig("run", str(recipe), "--data", str(data), "-q", TERM_STEP=str(step), TERM_AFTER_S=str(after_s),
                   **with_sitecustomize(tmp_path, TERM_IN_STEP))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    run_dir = only_run_dir(data)
    reason = run_rows(run_dir, "select lost_reason from membranes where k = 1")[0][0]
    assert reason.startswith(words), reason
    stated = float(re.search(r" after (\d+) s of it", reason).group(1))
    began = run_rows(run_dir, f"select max(t_s) from journal where step_index = {step} and state = 'started'")[0][0]
    ended = run_rows(run_dir, "select max(t_s) from events where kind = 'run_end'")[0][0]
    # the seeded moment, then at most a control period or two until the run ended (its clock, not a sample's)
    assert after_s - 0.5 <= stated <= after_s + 3, (reason, began, ended)
    assert stated == pytest.approx(ended - began, abs=1.0), (reason, began, ended)
