"""`castrig explore` from the outside in (the real CLI in subprocesses): one process per search
folder, options checked before anything is written, map ranges that are numbers, and the help's
examples that work."""

from __future__ import annotations

import json
import os
import signal
from collections import Counter
from pathlib import Path

from conftest import castrig, start_castrig, wait_until

SEARCH = ("explore", "--target-grade", "claim1", "--target-d-um", "3", "--tolerance", "0.01")


def _journal(folder: Path) -> list[dict]:
    path = folder / "trials.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            pass
    return out


def test_a_second_explore_on_the_same_folder_is_busy_and_a_rerun_after_kill_9_resumes(tmp_path, reap):
    data = tmp_path / "data"
    folder = data / "explore" / "claim1-d3um-s0"
    first = reap(start_castrig(*SEARCH, "--budget", "6", "--data", str(data)))
    wait_until(lambda: any(r["event"] == "started" for r in _journal(folder)), timeout_s=60, what="the first trial started")

    second = castrig(*SEARCH, "--budget", "6", "--data", str(data), timeout_s=60)
    assert second.returncode == 4, second.stdout + second.stderr
    assert "busy" in second.stderr and str(folder) in second.stderr and f"pid {first.pid}" in second.stderr
    assert "#0" not in second.stdout  # it ran nothing

    os.kill(first.pid, signal.SIGKILL)  # the OS drops the lock with the process
    first.wait(timeout=10)
    again = castrig(*SEARCH, "--budget", "2", "--data", str(data), timeout_s=120)
    assert again.returncode in (0, 1), again.stdout + again.stderr
    assert "resuming" in again.stdout or "#0" in again.stdout
    done = Counter(r["n"] for r in _journal(folder) if r["event"] == "done")
    assert done and max(done.values()) == 1, done  # no trial recorded twice
