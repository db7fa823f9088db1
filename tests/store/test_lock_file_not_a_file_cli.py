"""A run folder's ``run.lock`` that is not a file (a named pipe, a folder: whoever may write the
data root), for a run that crashed: who holds the lock is asked by `status`, `report`, `abort`
and `export`, and the ask opened the lock file the ordinary way — on a named pipe it waited for a
writer for ever. castrig holds no lock on anything but a regular file: the run is read as
crashed, and `resume`, which must lock the folder, refuses naming the file."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import campaign, castrig


@pytest.mark.parametrize("made", campaign(["named pipe", "folder"], ci={0}))
def test_a_crashed_runs_lock_that_is_no_file_is_not_waited_on(finished_demo_run, tmp_path: Path, made: str):
    data, uid = finished_demo_run
    root = tmp_path / "data"
    shutil.copytree(data / uid, root / uid)
    run_dir = root / uid
    info = json.loads((run_dir / "run.json").read_text())
    info["outcome"] = "running"  # as a process killed -9 left it
    (run_dir / "run.json").write_text(json.dumps(info))
    (run_dir / "run.lock").unlink()
    (os.mkfifo if made == "named pipe" else os.mkdir)(run_dir / "run.lock")

    said = {}
    for argv in (["status", "--data", str(root)], ["report", str(run_dir)], ["abort", str(run_dir)],
                 ["export", str(run_dir), "--to", str(tmp_path / "out")], ["resume", str(run_dir)]):
        done = castrig(*argv, timeout_s=30)  # (a TimeoutExpired: the wait for ever)
        said[argv[0]] = done
        assert "Traceback" not in done.stderr, (argv, done.stderr)
    assert said["status"].returncode == 0 and said["report"].returncode == 0 and said["export"].returncode == 0
    assert said["abort"].returncode == 2 and "status crashed" in said["abort"].stderr
    resumed = " ".join(said["resume"].stderr.split())
    assert said["resume"].returncode == 2 and "run.lock is not a regular file" in resumed, resumed
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "running"  # nothing written by the refusal
