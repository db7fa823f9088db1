"""Run folders that never started: a `castrig run` killed (a power cut) while it made its folder
leaves run.json and an empty or missing run.sqlite, nothing recorded. `castrig runs`, `status`
and `resume` call it "never started ... run the recipe again"; `castrig runs
--prune-never-started` removes such folders — owning each first, so one being made right now
is kept."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import (KILL_AT_CREATION, KILL_WHILE_MAKING, ROOT, add_graded_run, castrig, castrig_main, membrane_metrics,
                      with_sitecustomize)

from castrig.store.lock import claim_run, release_run

SHORT = str(ROOT / "tests" / "data" / "short.yaml")


def killed_while_made(data: Path, tmp_path: Path, leaves: str) -> Path:
    """The folder of a `castrig run` killed -9 as it made its database."""
    before = {p.parent for p in data.glob("*/run.json")}
    res = castrig("run", SHORT, "--data", str(data), "-q", **with_sitecustomize(tmp_path, KILL_AT_CREATION),
                  KILL_AT_RUN="1", KILL_LEAVES=leaves)
    assert res.returncode == -9, res.stderr
    (cut,) = {p.parent for p in data.glob("*/run.json")} - before
    return cut


def test_runs_prune_never_started_removes_them_and_keeps_one_being_made(tmp_path: Path, capsys):
    """(The listings and prunes through the CLI's entry point in this process, conftest
    ``castrig_main``, but the one made while this process holds the folder, as its maker would:
    that one is a process of its own.)"""
    data = tmp_path / "runs"
    done_id = add_graded_run(data, "done", membrane_metrics(5.0))
    cut = killed_while_made(data, tmp_path, "empty")
    being_made = killed_while_made(data, tmp_path, "missing")
    listed = castrig_main(capsys, "runs", "--data", str(data))
    assert listed.returncode == 0 and " ".join(listed.stdout.split()).count("never started") == 2, listed.stdout

    claim_run(being_made, purpose="test: a castrig run making this folder now")  # its maker lives
    try:
        res = castrig("runs", "--data", str(data), "--prune-never-started")
        status = castrig("status", str(being_made))  # (review: it said the process had died)
    finally:
        release_run(being_made)
    assert "being made now: nothing recorded yet" in status.stdout and "died" not in status.stdout, status.stdout
    err = " ".join(res.stderr.split())
    assert res.returncode == 0, res.stderr
    assert f"removed {cut}: never started (run.sqlite is empty (0 bytes); nothing recorded)" in err, err
    assert f"kept {being_made}: it is being made now" in err, err
    assert not cut.exists() and being_made.is_dir() and (data / done_id).is_dir()
    assert done_id in res.stdout and "never started" not in res.stdout, res.stdout  # one being made is not listed

    res = castrig_main(capsys, "runs", "--data", str(data), "--prune-never-started")  # its maker gone: removed too
    assert res.returncode == 0 and f"removed {being_made}" in " ".join(res.stderr.split()), res.stderr
    assert not being_made.exists() and [p.parent.name for p in data.glob("*/run.json")] == [done_id]
    assert "never started" not in res.stdout and "damaged" not in res.stdout and done_id in res.stdout, res.stdout
    again = castrig_main(capsys, "runs", "--data", str(data), "--prune-never-started")  # nothing left to remove: says nothing
    assert again.returncode == 0 and again.stderr == "" and done_id in again.stdout, again.stderr


# CI kills at the first moment and at the journal's; the other three are in the full set (-m slow)
@pytest.mark.parametrize("moment, holds", [
    ("mkdir", "an empty folder"),
    pytest.param("lock", "no run.json; it holds run.lock", marks=pytest.mark.slow),
    pytest.param("run_json", "no run.json; it holds .run.json.", marks=pytest.mark.slow),
    ("journal", "run.sqlite is empty (0 bytes), its run.sqlite-journal ("),
    pytest.param("wal_header", "run.sqlite holds no table (4096 bytes: its header alone)", marks=pytest.mark.slow),
])
def test_a_run_killed_at_any_moment_of_making_its_folder_never_started(tmp_path: Path, moment: str, holds: str, capsys):
    """kill -9 of `castrig run` at each moment of making its folder (audit 5): listed never started,
    resume says so and names the prune (exit 2), the prune removes it. (The run killed is a process
    of its own; what reads its folder after runs through the CLI's entry point in this process,
    conftest ``castrig_main``: a second process to the run all the same.)"""
    data = tmp_path / "runs"
    data.mkdir()
    res = castrig("run", SHORT, "--data", str(data), "-q", **with_sitecustomize(tmp_path, KILL_WHILE_MAKING), KILL_AT=moment)
    assert res.returncode == -9, res.stderr
    (cut,) = [p for p in data.iterdir() if p.is_dir()]
    if moment == "mkdir":  # an empty folder is kept a minute (its maker may be between mkdir and lock): an hour later
        an_hour_ago = time.time() - 3600
        os.utime(cut, (an_hour_ago, an_hour_ago))
    listed = castrig_main(capsys, "runs", "--data", str(data))
    assert listed.returncode == 0 and cut.name in listed.stdout and "never started" in listed.stdout, listed.stdout
    refused = castrig_main(capsys, "resume", str(cut), "-q")
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 2 and f"{cut}: never started ({holds}" in said, said
    assert "run the recipe again (`castrig runs --prune-never-started` removes it)" in said, said
    for reader in (("status",), ("watch",), ("report", "--out", str(tmp_path / "r.html"))):
        # (they said "not a run folder (needs run.json)" of one killed before its run.json, or
        # wrote a report page of it)
        read = castrig_main(capsys, reader[0], str(cut), *reader[1:])
        said = " ".join((read.stdout + read.stderr).split())
        assert f"never started ({holds}" in said and "Traceback" not in said, (reader, said)
        assert read.returncode == (0 if reader == ("status",) and (cut / "run.json").is_file() else 2), (reader, said)
    pruned = castrig_main(capsys, "runs", "--data", str(data), "--prune-never-started")
    said = " ".join(pruned.stderr.split())
    assert pruned.returncode == 0 and f"removed {cut}: never started ({holds}" in said, said
    assert not cut.exists() and "no runs yet" in pruned.stdout, pruned.stdout


def test_the_prune_removes_only_castrig_folders_that_hold_nothing_and_nobody_owns(tmp_path: Path):
    """Built directly: a folder not named as castrig names run folders, one holding another file, an
    empty one made just now, one whose lock is held, one whose journal is of an older database (its
    header counts pages: it could hold a record), one whose run.json records an ended run (its
    database lost) are all kept; the lock alone, unowned, goes."""
    data = tmp_path / "runs"
    done_id = add_graded_run(data, "done", membrane_metrics(5.0))
    an_hour_ago = time.time() - 3600
    kept = {name: data / name for name in ("exports", "20261202-100000-mine", "20261202-100001-young",
                                           "20261202-100002-held", "20261202-100003-oldjournal", "20261202-100005-lostdb")}
    for folder in kept.values():
        folder.mkdir()
    os.utime(kept["exports"], (an_hour_ago, an_hour_ago))
    (kept["20261202-100000-mine"] / "notes.txt").write_text("not castrig's\n")
    (kept["20261202-100002-held"] / "run.lock").write_text("")
    old = kept["20261202-100003-oldjournal"]
    (old / "run.json").write_bytes((data / done_id / "run.json").read_bytes())
    (old / "run.sqlite").write_bytes(b"")
    (old / "run.sqlite-journal").write_bytes(bytes(16) + (3).to_bytes(4, "big") + bytes(492))  # 3 pages before
    # a completed run whose run.sqlite was lost since: its run.json is a record (review: it was pruned)
    (kept["20261202-100005-lostdb"] / "run.json").write_bytes((data / done_id / "run.json").read_bytes())
    lock_alone = data / "20261202-100004-lockalone"
    lock_alone.mkdir()
    (lock_alone / "run.lock").write_text("")
    claim_run(kept["20261202-100002-held"], purpose="test: a castrig run making this folder now")
    try:
        res = castrig("runs", "--data", str(data), "--prune-never-started")
    finally:
        release_run(kept["20261202-100002-held"])
    said = " ".join(res.stderr.split())
    assert res.returncode == 0 and f"removed {lock_alone}: never started (no run.json; it holds run.lock;" in said, said
    assert said.count("removed") == 1 and f"kept {kept['20261202-100002-held']}: it is being made now" in said, said
    assert not lock_alone.exists() and all(p.is_dir() for p in kept.values()) and (data / done_id).is_dir()
    assert (kept["20261202-100000-mine"] / "notes.txt").is_file() and (old / "run.sqlite-journal").stat().st_size == 512
    shown = " ".join(res.stdout.split())
    assert "never started" not in shown and "20261202-100003-oldjournal │" in shown and "run.sqlite is empty" in shown, shown
    for name in ("exports", "mine", "young", "held"):
        assert name not in shown, shown
