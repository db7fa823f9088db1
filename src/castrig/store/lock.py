"""A run folder has one owner: the process that runs or resumes it holds ``RUN/run.lock``.

The lock is an OS lock (:mod:`castrig.oslock`), so it goes with the process: a run whose
``run.json`` still says ``running`` but whose lock nobody holds was left by a process that died
(kill -9, power cut). Readers (``castrig runs``, the report) call that ``crashed`` — resumable —
instead of ``running`` forever. Testing the lock never takes it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from castrig import oslock

LOCK_NAME = "run.lock"


def lock_path(run_dir: Path) -> Path:
    return Path(run_dir) / LOCK_NAME


def claim_run(run_dir: Path, *, purpose: str) -> None:
    """Own ``run_dir`` (re-entrant in this process) or raise :class:`~castrig.errors.Busy`."""
    oslock.acquire(lock_path(run_dir), purpose=purpose, what=f"run folder {run_dir}")


def release_run(run_dir: Path) -> None:
    oslock.release(lock_path(run_dir))


def run_holder(run_dir: Path) -> dict[str, Any] | None:
    """Who runs ``run_dir`` now (pid, host, started_utc, purpose), or ``None`` if nobody does."""
    return oslock.holder_info(lock_path(run_dir))


def live_outcome(run_dir: Path, outcome: str) -> str:
    """The outcome a reader should show: ``running`` only while a process owns the folder.

    A folder this machine cannot see (a fleet catalog row of another rig) keeps its outcome.
    """
    if outcome == "running" and Path(run_dir).is_dir() and run_holder(run_dir) is None:
        try:  # the catalog may lag behind run.json (a run that ended before it was re-indexed)
            recorded = json.loads((Path(run_dir) / "run.json").read_text()).get("outcome", "running")
        except (OSError, ValueError, AttributeError):
            recorded = "running"
        return "crashed" if recorded == "running" else str(recorded)
    return outcome


CRASHED_REASON = "the process that ran it is gone (killed or the computer stopped); `castrig resume` continues it"
