"""What a new user feeds `castrig sim fit`, `castrig tune rh` and `castrig export`, from the outside:
a sample time far off, an --out that is a folder, a tune whose limits leave nothing to move or
whose chamber does not respond, an export into the run's own record. Each was a traceback, a fit
without end, gains written from a model that was not the rig's, or files in the run folder."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import pytest

from conftest import ROOT, castrig, castrig_main, crashed_membrane_run


def _copy(finished_demo_run, tmp_path: Path) -> Path:
    data, run_id = finished_demo_run
    return Path(shutil.copytree(data / run_id, tmp_path / "runs" / run_id))


def test_sim_fit_refuses_a_sample_time_far_off_instead_of_fitting_without_end(finished_demo_run, tmp_path, capsys):
    run_dir = _copy(finished_demo_run, tmp_path)
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        db.execute("INSERT INTO samples VALUES (-1e9, 'rh_near_pct', 50)")
    done = castrig_main(capsys, "sim", "fit", str(run_dir))  # was: still fitting when killed at 60 s (pytest's --timeout here)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    said = " ".join(done.stderr.split())
    assert "run.sqlite" in said and "samples.t_s = -1000000000.0" in said and "allowed: 0 to 604800 s" in said, said


def test_sim_fit_out_that_cannot_be_written_is_said_before_the_fit(finished_demo_run, tmp_path, capsys):
    run_dir = _copy(finished_demo_run, tmp_path)
    for out, why in ((tmp_path, "is a folder"), (tmp_path / "no" / "x.yaml", "its folder does not exist")):
        done = castrig_main(capsys, "sim", "fit", str(run_dir), "--out", str(out))
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert f"--out {out}: {why}" in done.stderr and "replay RMS" not in done.stdout, done.stdout + done.stderr


def test_export_into_its_own_run_folder_or_an_empty_path_is_refused(finished_demo_run, tmp_path, monkeypatch, capsys):
    run_dir = _copy(finished_demo_run, tmp_path)
    monkeypatch.chdir(tmp_path)  # (an empty --to is the working folder: nothing may land there)
    before = sorted(p.name for p in run_dir.iterdir())
    for to, says in ((str(run_dir), "inside the run folder"), (str(run_dir / "tables"), "inside the run folder"),
                     ("", "give the folder for the tables")):
        done = castrig_main(capsys, "export", str(run_dir), "--to", to)
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, (to, done.stderr)
    assert sorted(p.name for p in run_dir.iterdir()) == before and not list(tmp_path.glob("*.csv"))
    assert castrig_main(capsys, "export", str(run_dir), "--to", str(tmp_path / "tables")).returncode == 0


def _profile(tmp_path: Path, old: str, new: str) -> Path:
    text = (ROOT / "hw_profiles" / "sim.yaml").read_text()
    assert old in text
    path = tmp_path / "rig.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_tune_whose_limits_leave_nothing_to_move_names_them(tmp_path):
    profile = _profile(tmp_path, "  kd: 0.0\n", "  kd: 0.0\n  wet_fraction_max: 0.1\n")
    done = castrig("tune", "rh", "--profile", str(profile), "--plot", str(tmp_path / "t.svg"), timeout_s=120)
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "Traceback" not in said, said  # was: ValueError traceback, exit 1
    assert "the actuator never changed" in said and "control.wet_fraction_min/max = 0/0.1" in said, said


def test_tune_of_a_chamber_that_does_not_rise_writes_no_gains(tmp_path):
    profile = _profile(tmp_path, "total_flow_slpm: 2.0", "total_flow_slpm: 0.001")
    text = profile.read_text()
    done = castrig("tune", "rh", "--profile", str(profile), "--write", timeout_s=120)
    said = " ".join(done.stderr.split())
    # was: "gain K = -0.1114 ... gains written", exit 0, kp and ki put into the profile
    assert done.returncode == 2 and "Traceback" not in said and "gains written" not in done.stdout, done.stdout + said
    assert re.search(r"the RH did not rise with the step \(gain K = [^)]*\)", said) and "nothing written" in said, said
    assert profile.read_text() == text


def test_sim_fit_of_one_run_given_twice_is_refused(finished_demo_run, tmp_path, capsys):
    run_dir = _copy(finished_demo_run, tmp_path)
    done = castrig_main(capsys, "sim", "fit", str(run_dir), str(run_dir / ".." / run_dir.name))  # was: "2 run(s)", one listed
    assert done.returncode == 2 and "given twice" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_export_of_a_crashed_run_says_its_tables_end_at_the_crash(tmp_path, capsys):
    run_dir = crashed_membrane_run(tmp_path / "runs", "20260101-000001-night")
    done = castrig_main(capsys, "export", str(run_dir), "--to", str(tmp_path / "tables"))
    assert done.returncode == 0, done.stderr
    assert f"warning: {run_dir.name} crashed: the tables hold what it recorded until then" in done.stderr, done.stderr


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_a_second_run_exported_into_one_folder_does_not_replace_the_first(tmp_path, fmt, capsys):
    """`castrig export night1 --to tables` then `castrig export night2 --to tables`: the second
    replaced every table of the first without a word (the tables carry a run_id column to be
    concatenated, so one folder looked like the place for a night's runs). Now refused, naming
    the run whose tables are there; the run exported again replaces its own."""
    first = crashed_membrane_run(tmp_path / "runs", "20260101-000001-night")
    second = crashed_membrane_run(tmp_path / "runs", "20260101-000002-night")
    tables = tmp_path / "tables"
    assert castrig_main(capsys, "export", str(first), "--to", str(tables), "--format", fmt).returncode == 0
    before = {p.name: p.read_bytes() for p in tables.iterdir()}
    done = castrig_main(capsys, "export", str(second), "--to", str(tables), "--format", fmt)
    said = " ".join(done.stderr.split())
    assert done.returncode == 2 and "Traceback" not in said, said
    assert "holds the tables of run 20260101-000001-night" in said and str(tables / "20260101-000002-night") in said, said
    assert {p.name: p.read_bytes() for p in tables.iterdir()} == before  # nothing of the first touched
    assert castrig_main(capsys, "export", str(first), "--to", str(tables), "--format", fmt).returncode == 0  # its own: replaced
    assert castrig_main(capsys, "export", str(second), "--to", str(tables / second.name), "--format", fmt).returncode == 0
