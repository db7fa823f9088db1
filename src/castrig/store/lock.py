"""A run folder has one owner: the process that runs or resumes it holds ``RUN/run.lock``.

The lock is an OS lock (:mod:`castrig.oslock`), so it goes with the process: a run whose
``run.json`` still says ``running`` but whose lock nobody holds was left by a process that died
(kill -9, power cut). Readers (``castrig runs``, the report) call that ``crashed`` — resumable —
instead of ``running`` forever — when run.json names this computer as its host; a run recorded
on another host is not judged here (:func:`recorded_elsewhere`). Testing the lock never takes it.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from castrig import oslock
from castrig.errors import Busy
from castrig.store import runjson

LOCK_NAME = "run.lock"


def lock_path(run_dir: Path) -> Path:
    return Path(run_dir) / LOCK_NAME


def claim_run(run_dir: Path, *, purpose: str) -> None:
    """Own ``run_dir`` (re-entrant in this process) or raise :class:`~castrig.errors.Busy`.

    The lock alone is not enough where its file was deleted while its owner could not make it
    again (stopped, or in the 0.2 s before :func:`castrig.oslock` notices): the lock taken on a
    new file, a resume became a second writer of run.sqlite. So the process run.json names, if it
    is alive here and has the run's records open, still owns the folder."""
    oslock.acquire(lock_path(run_dir), purpose=purpose, what=f"run folder {run_dir}")
    writer = _live_writer(Path(run_dir))
    if writer is not None:
        oslock.release(lock_path(run_dir))
        raise Busy(f"run folder {run_dir} is in use by pid {writer} on {socket.gethostname()}: its run.lock was "
                   "deleted, and that process still has the run's records open (it makes the lock file again "
                   "once it runs; a stopped one: `kill -CONT " + str(writer) + "`)",
                   holder={"pid": writer, "host": socket.gethostname()})


def _live_writer(run_dir: Path) -> int | None:
    """The pid run.json records, when it is another live process of this computer that has the
    run's run.sqlite open for writing (read from /proc: None where that cannot be seen)."""
    data = _recorded(run_dir)
    pid = data.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid == os.getpid() or data.get("host") != socket.gethostname():
        return None
    try:
        records = (run_dir / "run.sqlite").resolve()
        fds = os.scandir(f"/proc/{pid}/fd")
    except OSError:  # gone, another user's, or no /proc
        return None
    with fds:
        for fd in fds:
            try:
                if os.readlink(fd.path) == str(records) and _opened_for_writing(pid, fd.name):
                    return pid
            except OSError:
                continue
    return None


def _opened_for_writing(pid: int, fd: str) -> bool:
    """Whether open file ``fd`` of ``pid`` was opened for writing (a reader such as `castrig serve`
    that took over a crashed run's pid opens the records read-only: not a writer)."""
    for line in Path(f"/proc/{pid}/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8) & (os.O_WRONLY | os.O_RDWR) != 0
    return True


def release_run(run_dir: Path) -> None:
    oslock.release(lock_path(run_dir))


def run_holder(run_dir: Path) -> dict[str, Any] | None:
    """Who runs ``run_dir`` now (pid, host, started_utc, purpose), or ``None`` if nobody does."""
    return oslock.holder_info(lock_path(run_dir))


def _recorded(run_dir: Path) -> dict[str, Any]:
    try:
        data = runjson.load(run_dir)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recorded_elsewhere(run_dir: Path) -> str | None:
    """The host run.json says runs ``run_dir`` when that is not this computer, the run is recorded
    ``running`` and no process here holds its lock; else None.

    Such a run is not judged from here: an OS lock taken on another host over a shared folder may
    not show on this one, so its process may well be alive. Readers show it ``running`` ("on HOST?
    cannot tell from here"), lots treat it as not closed, and ``castrig resume`` refuses it without
    ``--take-over``. Only its own host calls it ``crashed``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or run_holder(run_dir) is not None:
        return None
    got = recorded_on_another_host(run_dir)
    return None if got is None else got[0]


def recorded_on_another_host(run_dir: Path) -> tuple[str, int | None] | None:
    """(host, pid) run.json records as running ``run_dir`` when it says ``running`` on a host
    that is not this computer, whatever the lock says here; else None."""
    return _elsewhere(_recorded(run_dir))


def _elsewhere(data: dict[str, Any]) -> tuple[str, int | None] | None:
    """(host, pid) of a run.json ``data`` that says ``running`` on another computer; else None."""
    host, pid = data.get("host"), data.get("pid")
    if data.get("outcome", "running") != "running" or not isinstance(host, str) or not host:
        return None
    if host == socket.gethostname():
        return None
    return host, pid if isinstance(pid, int) and not isinstance(pid, bool) else None


def live_outcome(run_dir: Path, outcome: str) -> str:
    """The outcome a reader should show: ``running`` only while a process owns the folder — or
    while run.json says another host runs it (:func:`recorded_elsewhere`: not ours to judge).

    A folder this machine cannot see (a fleet catalog row of another rig) keeps its outcome.
    """
    if outcome == "running" and Path(run_dir).is_dir() and run_holder(run_dir) is None:
        data = _recorded(run_dir)  # the catalog may lag behind run.json (a run that ended before it was re-indexed)
        recorded = data.get("outcome", "running")
        if recorded != "running":
            return str(recorded)
        return "running" if _elsewhere(data) else "crashed"
    return outcome


def elsewhere_words(host: str) -> str:
    """How a reader shows a run recorded running on ``host``, not this computer."""
    return f"running on {host}? (cannot tell from here)"


CRASHED_REASON = ("the process that ran it is gone (killed or the computer stopped); `castrig resume` continues it, "
                  "`castrig safe --profile P` only makes its rig safe")
