"""What a run that ended records of its membranes (audit 4): a film cast and not evaporated under
control is ``lost`` in every view as soon as the run ends (not only after a resume), a lost
membrane keeps its (partial) process record, and the run and queue summaries hold each membrane
to its own target grade.

From the outside in: the real ``castrig`` in subprocesses, on the twin (virtual time).
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from conftest import ROOT, castrig, castrig_main, drop_micrographs, embedded, only_run_dir, run_rows, run_status, run_then_kill_9, start_castrig, step_running, wait_until

HEAD = """name: NAME
grade: claim1
concentration_mg_ml: 4.5747
support_pore_um: 20.0
steps:
- {type: purge, duration_s: 10}
"""
#: m1: its evaporation long enough (virtual) that the run is stopped in it; m2: short, no camera
LONG_THEN_SHORT = HEAD + """\
- {type: prewet, rate_ml_min: 1.0, volume_ml: 0.2}
- {type: cast, rate_ml_min: 0.5, volume_ml: 0.1}
- {type: evaporate, band_rh_pct: 3.0, duration_s: 80000, max_out_of_band_s: 120, setpoint_rh_pct: 60}
- {type: prewet, rate_ml_min: 1.0, volume_ml: 0.2}
- {type: cast, rate_ml_min: 0.5, volume_ml: 0.1}
- {type: evaporate, band_rh_pct: 3.0, duration_s: 60, max_out_of_band_s: 120, setpoint_rh_pct: 60}
"""
EVAPORATE_M1 = 3  # 0-based step index of m1's evaporation


def _recipe(tmp_path: Path, text: str, name: str = "records") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(text.replace("name: NAME", f"name: {name}", 1))
    return path


def _abort_when(recipe: Path, data: Path, step: int, after_s: float, what: str, capsys) -> tuple[Path, int, str, str]:
    """Run ``recipe`` under data root ``data`` and `castrig abort` it once step ``step`` (0-based)
    has run ``after_s`` of run clock: (run folder, exit code, stdout, stderr). (The abort through
    the CLI's entry point in this process, :func:`castrig_main`: it only leaves the run a command.)"""
    run = start_castrig("run", str(recipe), "--data", str(data), "-q")
    try:
        run_dir = wait_until(lambda: (d := only_run_dir(data)) is not None and step_running(step, after_s)(d) and d,
                             timeout_s=60, what=what)
        aborted = castrig_main(capsys, "abort", str(run_dir))
        assert aborted.returncode == 0, aborted.stdout + aborted.stderr
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    return run_dir, run.returncode, out, err


def _membranes(run_dir: Path) -> dict[int, dict]:
    cols = ("membrane_id", "k", "status", "lost_reason", "process_json", "support_position")
    return {r[1]: dict(zip(cols, r)) for r in run_rows(run_dir, f"select {', '.join(cols)} from membranes order by k")}


def _report_page(run_dir: Path, capsys) -> dict:
    """What `castrig report` put in the page for its script (problems, steps, bands, membranes).
    The run's micrographs are taken out first (:func:`drop_micrographs`): none of these tests reads
    the overlays, and a report measures every micrograph again for them (~0.4 s of CPU each).
    The report is made in this process (:func:`castrig_main`: it only reads the run folder)."""
    drop_micrographs(run_dir)
    done = castrig_main(capsys, "report", str(run_dir))
    assert done.returncode == 0, done.stderr
    html = (run_dir / "report.html").read_text()
    return embedded(html)["report"]


def _report_problems(run_dir: Path, capsys) -> tuple[list[str], list[dict]]:
    page = _report_page(run_dir, capsys)
    return page["problems"], page["membranes"]


def _export_membranes(run_dir: Path, to: Path, capsys) -> dict[str, dict]:
    done = castrig_main(capsys, "export", str(run_dir), "--to", str(to))  # (reads the folder: in this process)
    assert done.returncode == 0, done.stderr
    return {r["membrane_id"]: r for r in csv.DictReader(open(to / "membranes.csv"))}


def _check_partial_record(process: dict, *, before_t: float) -> None:
    """A lost membrane's process record: what was dispensed, the RH it saw, partial up to when."""
    assert process["dispensed"]["prewet"]["volume_ml"] == pytest.approx(0.2, abs=0.01)
    assert process["dispensed"]["cast"]["volume_ml"] == pytest.approx(0.1, abs=0.01)
    assert process["rh_min_pct"] <= process["rh_mean_pct"] <= process["rh_max_pct"]
    assert process["evaporation"]["setpoint_rh_pct"] == 60 and process["evaporation"]["out_of_band_s"] is not None
    assert process["partial"]["up_to_t_s"] <= before_t and process["partial"]["why"].startswith("lost: ")


# -- A: the run that ended says lost ----------------------------------------------------------------
@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_castrig_abort_in_the_evaporation_records_the_film_lost_in_every_view_and_resume_keeps_it_lost(tmp_path, capsys):
    """`castrig abort` during m1's evaporation: the run ends aborted (exit 3) with m1 ``lost`` --
    run.sqlite, membranes.csv, the report's "What went wrong", `castrig lots`, the summary line --
    not ``forming`` until a resume; `resume --after-abort` keeps it lost (same reason, not cast
    again) and makes m2 on the next support position."""
    recipe = _recipe(tmp_path, LONG_THEN_SHORT)
    data = tmp_path / "runs"
    run_dir, code, out, err = _abort_when(recipe, data, EVAPORATE_M1, 60, "m1 evaporating", capsys)
    assert code == 3, out + err
    m1 = f"{run_dir.name}-m1"
    assert "lost: m1" in out.strip().splitlines()[-1], out
    mb = _membranes(run_dir)[1]
    assert mb["status"] == "lost", mb
    reason = mb["lost_reason"]
    assert reason.startswith("the cast film dried without RH control: the run ended aborted in step 4 (evaporate)"), reason
    last_sample = run_rows(run_dir, "select max(t_s) from samples")[0][0]
    _check_partial_record(json.loads(mb["process_json"]), before_t=last_sample)
    row = _export_membranes(run_dir, tmp_path / "x", capsys)[m1]
    assert row["status"] == "lost" and row["lost_reason"] == reason and row["cast_ml"] and row["rh_mean_pct"]
    problems, page = _report_problems(run_dir, capsys)
    assert f"Membrane {m1} lost: {reason}" in problems, problems
    assert page[0]["status"] == "lost" and "partial record" in page[0]["record"]
    lots = castrig_main(capsys, "lots", "--data", str(data)).stdout
    assert f"not a lot: {m1} — lost: the cast film dried" in lots, lots

    done = castrig("resume", str(run_dir), "--after-abort", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    mbs = _membranes(run_dir)
    assert (mbs[1]["status"], mbs[1]["lost_reason"]) == ("lost", reason)  # lost once, its reason kept
    assert (mbs[2]["status"], mbs[2]["support_position"]) == ("made", 2)
    assert run_rows(run_dir, f"select count(*) from journal where step_index={EVAPORATE_M1} and state='started'")[0][0] == 1
    assert run_rows(run_dir, "select count(*) from events where kind='pump' and source='caster' and message like '%dispensing%'")[0][0] == 2


def test_an_abort_in_the_evaporation_leaves_status_at_the_evaporation(tmp_path, capsys):
    """`castrig status` after an abort in m1's evaporation said `step 6/6 analyse`: the lost
    membrane's capture and analyse are journaled skipped after it, and the last journal row was
    taken for where the run stopped (also by `watch` and the web API)."""
    recipe = _recipe(tmp_path, HEAD + """\
- {type: prewet, rate_ml_min: 1.0, volume_ml: 0.2}
- {type: cast, rate_ml_min: 0.5, volume_ml: 0.1}
- {type: evaporate, band_rh_pct: 3.0, duration_s: 80000, max_out_of_band_s: 120, setpoint_rh_pct: 60}
- {type: capture, views: [reflected, transmitted, section]}
- {type: analyse, grade: claim1}
""")
    run_dir, code, out, err = _abort_when(recipe, tmp_path / "runs", EVAPORATE_M1, 60, "m1 evaporating", capsys)
    assert code == 3, out + err
    assert run_rows(run_dir, "select state from journal order by seq desc limit 1") == [("skipped",)]
    step = json.loads(castrig_main(capsys, "status", str(run_dir), "--json").stdout)["step"]
    assert (step["step_index"], step["step_type"]) == (EVAPORATE_M1, "evaporate"), step


def test_ctrl_c_twice_in_the_evaporation_records_the_film_lost_and_a_resume_goes_on_with_the_next(tmp_path, terminal_run):
    """Ctrl-C twice (interrupted, exit 130: a run a plain resume continues) during m1's evaporation:
    m1 is lost at once; `castrig resume` neither loses it again nor makes it, and casts m2 on
    support position 2."""
    recipe = _recipe(tmp_path, LONG_THEN_SHORT)
    data = tmp_path / "runs"
    term = terminal_run(["run", str(recipe), "--data", str(data)], cwd=ROOT)
    run_dir = wait_until(lambda: (d := only_run_dir(data)) is not None and run_status(d).get("step_type") == "evaporate"
                         and step_running(EVAPORATE_M1, 60)(d) and d, timeout_s=60, what="m1 evaporating")
    term.ctrl_c()
    term.expect("pausing")
    term.ctrl_c()
    assert term.wait(30) == 130, term.output[-3000:]
    mb = _membranes(run_dir)[1]
    assert mb["status"] == "lost" and "the run ended interrupted in step 4 (evaporate)" in mb["lost_reason"], mb
    done = castrig("resume", str(run_dir), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    mbs = _membranes(run_dir)
    assert (mbs[1]["status"], mbs[1]["lost_reason"]) == ("lost", mb["lost_reason"])
    assert (mbs[2]["status"], mbs[2]["support_position"]) == ("made", 2)
    assert run_rows(run_dir, "select count(*) from events where kind='membrane_lost'")[0][0] == 1
    assert run_rows(run_dir, "select count(*) from events where kind='pump' and source='caster' and message like '%dispensing%'")[0][0] == 2


def test_a_membrane_made_before_the_abort_is_not_lost_and_every_view_says_why_it_is_not_judged(tmp_path, capsys):
    """Aborted after m1's evaporation ended under control, before its capture (a wait in between):
    m1 stays ``made`` -- it can still be imaged -- and the summary, the report and `castrig lots`
    say it was made but not analysed, and how to go on."""
    recipe = _recipe(tmp_path, HEAD + """\
- {type: prewet, rate_ml_min: 1.0, volume_ml: 0.2}
- {type: cast, rate_ml_min: 0.5, volume_ml: 0.1}
- {type: evaporate, band_rh_pct: 3.0, duration_s: 60, max_out_of_band_s: 120, setpoint_rh_pct: 60}
- {type: wait, duration_s: 80000}
- {type: capture, fields: 1, views: [reflected]}
""")
    data = tmp_path / "runs"
    run_dir, code, out, err = _abort_when(recipe, data, 4, 30, "the wait after m1", capsys)
    assert code == 3, out + err
    m1 = f"{run_dir.name}-m1"
    assert _membranes(run_dir)[1]["status"] == "made"
    assert "not judged: m1 (made, not analysed)" in out, out
    problems, _ = _report_problems(run_dir, capsys)
    assert any(p.startswith(f"Membrane {m1} was made (evaporated under control) but not judged: the run ended aborted")
               and "castrig resume --after-abort" in p for p in problems), problems
    lots = castrig_main(capsys, "lots", "--data", str(data)).stdout
    assert "made, not analysed" in lots and "castrig resume --after-abort" in lots, lots


# -- B: a lost membrane keeps its process record ----------------------------------------------------
def test_kill_9_in_the_evaporation_keeps_the_lost_membranes_process_record(tmp_path, capsys):
    """kill -9 during m1's evaporation, then `castrig resume`: m1 is lost and keeps what was
    dispensed and the RH it saw up to its last record before the crash (partial), in run.sqlite,
    membranes.csv and the report -- not ``{}``, empty columns and "nothing dispensed recorded" --
    with the grade it was cast for."""
    recipe = _recipe(tmp_path, LONG_THEN_SHORT)
    data = tmp_path / "runs"
    run_dir = run_then_kill_9(recipe, data, step_running(EVAPORATE_M1, 60))
    last_sample = run_rows(run_dir, "select max(t_s) from samples")[0][0]
    done = castrig("resume", str(run_dir), "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    mb = _membranes(run_dir)[1]
    assert mb["status"] == "lost", mb
    process = json.loads(mb["process_json"])
    _check_partial_record(process, before_t=last_sample)
    assert process["evaporation"]["duration_s"] >= 60 and process["partial"]["up_to_t_s"] == process["t_end_s"]
    row = _export_membranes(run_dir, tmp_path / "x", capsys)[f"{run_dir.name}-m1"]
    for col in ("rh_mean_pct", "rh_min_pct", "rh_max_pct", "out_of_band_s", "prewet_ml", "cast_ml"):
        assert row[col] != "", (col, row)
    # lost, it still counts against the grade it was cast for (the column was empty)
    assert (row["target_grade"], row["target_met"]) == ("claim1", ""), row
    page = _report_page(run_dir, capsys)
    record = page["membranes"][0]["record"]
    assert "nothing dispensed recorded" not in record and "cast 0.1" in record, record
    # m1's evaporation ends where m1 was lost, not at the run's end: its RH band (60 ± 3) had lain
    # over m2's evaporation in the plot, one membrane's window pinned on another
    steps = {s["index"]: s for s in page["steps"]}
    m1_evaporation, m2_evaporation = steps[EVAPORATE_M1], steps[EVAPORATE_M1 + 3]
    m1_band = [b for b in page["bands"] if b["t0_s"] == m1_evaporation["t0_s"]]
    assert m1_band and all(b["t1_s"] <= m2_evaporation["t0_s"] for b in m1_band), (m1_band, m2_evaporation)
    assert m1_evaporation["t1_s"] is not None and m1_evaporation["t1_s"] <= m2_evaporation["t0_s"], m1_evaporation
    assert m1_evaporation.get("cut") is True, m1_evaporation  # drawn as cut short, membrane lost


# -- C: each membrane against its own target ---------------------------------------------------------
GRADED = HEAD.replace("duration_s: 10}", "duration_s: 20}") + """\
- {type: condition, band_rh_pct: 1.0, setpoint_rh_pct: 80.76, stable_for_s: 20, timeout_s: 1200}
- {type: prewet, rate_ml_min: 1.0, volume_ml: 0.3}
- {type: cast, rate_ml_min: 0.5, volume_ml: 0.6043}
- {type: evaporate, band_rh_pct: 3.0, duration_s: 540.0, max_out_of_band_s: 120, setpoint_rh_pct: 80.76}
- {type: capture, fields: 1, views: [reflected, transmitted, section]}
- {type: analyse, grade: claim3}
- {type: condition, band_rh_pct: 1.0, setpoint_rh_pct: 30, stable_for_s: 20, timeout_s: 1200}
- {type: prewet, rate_ml_min: 1.0, volume_ml: 0.3}
- {type: cast, rate_ml_min: 0.5, volume_ml: 0.3}
- {type: evaporate, band_rh_pct: 3.0, duration_s: 300.0, max_out_of_band_s: 120, setpoint_rh_pct: 30}
- {type: capture, fields: 1, views: [reflected, transmitted, section]}
- {type: analyse}
"""


def test_run_and_queue_summaries_hold_each_membrane_to_its_own_target_grade(tmp_path, capsys):
    """Recipe grade claim1, m1's analyse claim3: m1 (80 %RH) meets claim3, m2 (30 %RH: no pores)
    misses claim1. The run's summary says so per target -- not "target grade claim3 met by 1 (m1);
    NOT met by m2", which held m2 to m1's grade -- and the queue's column counts each target
    ("claim3: 1 of 1 met; claim1: 0 of 1 met"), as `castrig runs --grade claim3` lists the run --
    not "claim3 NOT met". (m2 casts 0.3 mL: with m1's 0.6043 within the twin's 1 mL caster syringe.)"""
    recipe = _recipe(tmp_path, GRADED, "graded")
    data = tmp_path / "runs"
    # (seed 4: m1's film has cavities joined in the twin's geometry, which claim 1 asks for; at
    # most seeds it has none in its one section field -- seeds 1-7 after the pump's program was
    # set at each cast (four more exchanges per dispense moved the twin's timing): only 4 --
    # and m1 met claim 3 only while the section analysis took thin walls for joined)
    done = castrig("queue", str(recipe), "--data", str(data), "--seed", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = only_run_dir(data)
    rows = {k: (t, g) for k, t, g in run_rows(run_dir, "select k, target_grade, grades_met from membranes")}
    assert rows[1][0] == "claim3" and "claim3" in rows[1][1] and rows[2][0] == "claim1" and not rows[2][1], rows
    assert "2 membranes; claim3 met by m1; claim1 NOT met by m2" in done.stdout, done.stdout
    state = json.loads(next(data.glob("queue-*.json")).read_text())
    assert state["items"][0]["target"] == "claim3: 1 of 1 met; claim1: 0 of 1 met", state["items"][0]
    assert "claim3: 1 of 1 met; claim1: 0 of 1 met" in done.stdout and "claim3 NOT met" not in done.stdout
    assert run_dir.name in castrig_main(capsys, "runs", "--data", str(data), "--grade", "claim3").stdout


#: A sitecustomize: the record cannot be read while the run ends (plan_resume is what the end of a
#: run calls to find the films it left; here it meets a disk I/O error, as a read may).
UNREADABLE_AT_RUN_END = """
import sqlite3
import castrig.recipe.session as session

def _unreadable(*a, **kw):
    raise sqlite3.OperationalError("disk I/O error")

session.plan_resume = _unreadable
"""


def test_a_record_unreadable_as_the_run_ends_still_gets_its_outcome(tmp_path):
    """Review of the end-of-run loss: a read error there (sqlite3.Error, not a StoreError) left
    the run with the safe state done but run.json 'running' and a traceback. Now the loss is not
    recorded, the error is said, and the outcome is recorded as before."""
    from conftest import with_sitecustomize

    recipe = _recipe(tmp_path, HEAD + """\
- {type: cast, rate_ml_min: 0.5, volume_ml: 0.01}
- {type: condition, setpoint_rh_pct: 95, band_rh_pct: 0.1, stable_for_s: 30, timeout_s: 30}
""", name="unsettled")  # (held, but not reached in 30 s from the purged chamber: the run faults there)
    data = tmp_path / "runs"
    done = castrig("run", str(recipe), "--data", str(data), "-q", **with_sitecustomize(tmp_path, UNREADABLE_AT_RUN_END))
    assert done.returncode == 3, done.stdout + done.stderr
    text = done.stdout + done.stderr
    assert "Traceback" not in text and "cannot record the lost membrane" in " ".join(text.split()), text
    info = json.loads((only_run_dir(data) / "run.json").read_text())
    assert info["outcome"] == "faulted" and info["ended_utc"], info


def test_a_membrane_without_a_target_does_not_make_the_run_miss_its_targets():
    """Review: m1 met its target, m2 had none (judged against no grade): the summary flag said
    'not met' (a yellow last line, the queue's target_met False)."""
    from castrig.recipe.membranes import target_summary

    m1 = {"membrane_id": "r-m1", "k": 1, "status": "judged", "target_grade": "claim1", "grades_met": ["claim1"]}
    m2 = {"membrane_id": "r-m2", "k": 2, "status": "judged", "target_grade": None, "grades_met": ["claim2"]}
    line, ok = target_summary([m1, m2], {1: "claim1", 2: None})
    assert ok is True and "claim1 met by 1 (m1)" in line and "m2:claim2" in line
    m1_missed = {**m1, "grades_met": []}
    assert target_summary([m1_missed, m2], {1: "claim1", 2: None})[1] is False


# -- D: what went wrong, as the verdict judged it ------------------------------------------------------
UNDER_RESOLVED = HEAD + """\
- {type: condition, band_rh_pct: 1.0, setpoint_rh_pct: 55, stable_for_s: 60, timeout_s: 900}
- {type: prewet, rate_ml_min: 1.0, volume_ml: 0.3}
- {type: cast, rate_ml_min: 0.5, volume_ml: 0.2}
- {type: evaporate, band_rh_pct: 3.0, duration_s: 300, max_out_of_band_s: 120, setpoint_rh_pct: 55}
- {type: capture, fields: 1}
- {type: analyse}
"""


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_the_report_says_marginal_for_a_bound_inside_its_interval_not_not_measured(tmp_path, capsys):
    """At 55 %RH the twin's 0.25 µm pixels leave the pores under-resolved: most claim-1 bounds lie
    inside their 95 % intervals (marginal, flagged under_resolved) and one fails. The report's
    "what went wrong" called every bound that did not fail "not measured", beside a verdict table
    showing each value and MARGINAL."""
    recipe = _recipe(tmp_path, UNDER_RESOLVED, "under")
    data = tmp_path / "runs"
    done = castrig("run", str(recipe), "--data", str(data), "--seed", "3", "-q")
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = only_run_dir(data)
    (verdict_path,) = run_dir.glob("results/*/verdict.json")
    checks = json.loads(verdict_path.read_text())["grades"][0]["checks"]
    marginal = {c["label"] for c in checks if c["status"] == "marginal" and c["value"] is not None}
    assert "opening_ratio" in marginal and any(c["status"] == "fail" for c in checks), checks
    problems, _ = _report_problems(run_dir, capsys)
    (line,) = [p for p in problems if "grade claim1 not met" in p]
    assert "not measured" not in line, line
    assert re.search(r"opening_ratio [\d.]+ marginal \(bound ≥ 0\.1, 95 % interval [\d.]+–[\d.]+, flagged [a-z_,]*under_resolved", line), line
    for label in marginal:
        assert f"{label} " in line, (label, line)


NOT_ANALYSED = HEAD + """\
- {type: prewet, rate_ml_min: 1.0, volume_ml: 0.3}
- {type: cast, rate_ml_min: 0.5, volume_ml: 0.2}
- {type: evaporate, band_rh_pct: 3.0, duration_s: 60, max_out_of_band_s: 120, setpoint_rh_pct: 45}
- {type: capture, views: [reflected]}
"""


def test_lots_does_not_send_to_resume_a_membrane_its_completed_recipe_never_analyses(tmp_path, capsys):
    """A completed run whose recipe captures its membrane and never analyses it: `castrig lots`
    said "`castrig resume` images and judges it", and `castrig resume` refused (the run completed)."""
    recipe = _recipe(tmp_path, NOT_ANALYSED, "noanalyse")
    data = tmp_path / "runs"
    assert castrig("run", str(recipe), "--data", str(data), "--seed", "3", "-q").returncode == 0
    run_dir = only_run_dir(data)
    listed = castrig_main(capsys, "lots", "--data", str(data))
    assert listed.returncode == 0, listed.stdout + listed.stderr
    text = " ".join(listed.stdout.split())
    assert f"{run_dir.name}-m1" in text and "its recipe has no analyse of it" in text and "castrig resume" not in text, text
    refused = castrig_main(capsys, "resume", str(run_dir))
    assert refused.returncode == 2 and "already completed" in refused.stderr


#: m1 cast and left to dry in a wait (no evaporate step), then imaged and judged; m2 cast last,
#: nothing after it
NO_EVAPORATE = HEAD + """\
- {type: condition, band_rh_pct: 1.0, setpoint_rh_pct: 70, stable_for_s: 60, timeout_s: 900}
- {type: prewet, rate_ml_min: 1.0, volume_ml: 0.3}
- {type: cast, rate_ml_min: 0.5, volume_ml: 0.2}
- {type: wait, duration_s: 300}
- {type: capture, fields: 1, views: [reflected]}
- {type: analyse}
- {type: prewet, rate_ml_min: 1.0, volume_ml: 0.3}
- {type: cast, rate_ml_min: 0.5, volume_ml: 0.2}
"""


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_a_membrane_without_an_evaporate_step_is_made_at_its_cast_with_its_process_record(tmp_path, capsys):
    """Only the evaporate step marked a membrane made and wrote its process record: a membrane dried
    in a wait was judged with empty RH and volume columns, and a last cast with nothing after it
    stayed `forming` in a completed run ("not judged" with no reason, "nothing dispensed recorded").
    It is made when its cast is over, as resume already counts it (MembranePlan.made_at_step).
    The queue's target column counted m2 as aimed and missed ("claim1: 0 of 2 met") beside a
    summary saying it was not judged; it now counts as the summary does."""
    recipe = _recipe(tmp_path, NO_EVAPORATE, "noevap")
    data = tmp_path / "runs"
    done = castrig("queue", str(recipe), "--data", str(data), "--seed", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not judged: m2 (made, not analysed)" in done.stdout, done.stdout
    state = json.loads(next(data.glob("queue-*.json")).read_text())
    assert re.fullmatch(r"claim1: [01] of 1 met \(1 not judged\)", state["items"][0]["target"]), state["items"][0]
    run_dir = only_run_dir(data)
    mbs = _membranes(run_dir)
    assert mbs[1]["status"] == "judged" and mbs[2]["status"] == "made", mbs
    rows = _export_membranes(run_dir, tmp_path / "x", capsys)
    for k in (1, 2):
        row = rows[f"{run_dir.name}-m{k}"]
        assert row["prewet_ml"] == "0.3" and row["cast_ml"] == "0.2" and row["rh_mean_pct"] and row["t_end_s"], row
    problems, page = _report_problems(run_dir, capsys)
    assert all("nothing dispensed recorded" not in mb["record"] for mb in page), page
    assert any("m2 was not judged" in p for p in problems), problems
    # `castrig runs` says how the membranes ended, not only the grades some met
    listed = castrig_main(capsys, "runs", "--data", str(data))
    assert re.search(r"2: 1 (met|not met), 1 not judged", listed.stdout), listed.stdout
    # and so does `castrig status` of the run
    assert re.search(r"membranes 2: 1 (met|not met), 1 not judged", castrig_main(capsys, "status", str(run_dir)).stdout)
