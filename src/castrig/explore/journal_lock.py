"""The study journal's append lock: a kernel ``flock`` on ``PATH.flock``, not held up by a stopped process.

Optuna's own file locks are lock files: one left by a worker killed while appending (the last step
of stopping a map) made every other process wait out their 30 s grace, and a Ctrl-C while waiting
for one removed the *holder's* lock file. A kernel lock goes with its process, however it dies,
and a Ctrl-C while waiting only stops the wait.

A process *stopped* while it holds the lock (Ctrl-Z in its terminal, SIGSTOP, a debugger at a
breakpoint) keeps it for as long as it is stopped: every other worker of the study waited on it
without a word, a map stood still (CI met it: a worker SIGSTOPped just after its trial's mark was
written). So a waiter looks at who holds the lock (``/proc/locks``); one seen stopped for
:data:`STOPPED_HOLDER_S` is passed by: the waiter appends without the lock and says so once. That
is safe because the lock only keeps appends whole, and an append is already whole without it:
Optuna writes its entries as one ``write`` of complete lines to a file opened for appending, which
the kernel does at the end of the file in one piece (a stop cannot cut a write to a local file),
and the journal's order, not the lock's, decides what every process replays. The stopped holder,
woken, appends its own entries after; a live holder, however slow, is always waited for. The one
change that is no append, cutting a torn last entry off, takes the lock ``exclusive``: never
passed by, nor passing by.
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
import time
from pathlib import Path

from optuna.storages.journal._file import BaseJournalFileLock

from castrig.oslock import flock_holder_pid, process_stopped

#: How long the lock's holder must be seen stopped before a waiter appends without it.
STOPPED_HOLDER_S = 2.0
#: How often a waiter tries the lock again (appends hold it for milliseconds).
POLL_S = 0.005
#: What the lock file holds while it is held for a change no waiter may pass by.
EXCLUSIVE = b"exclusive"


class JournalLock(BaseJournalFileLock):
    """The lock Optuna's :class:`~optuna.storages.journal.JournalFileBackend` takes around an append."""

    def __init__(self, lock_path: Path):
        self.path = Path(lock_path)
        self.fd: int | None = None
        self._said = False

    def acquire(self, *, exclusive: bool = False) -> bool:
        """Take the lock for an append (Optuna's call), passing by a stopped holder; ``exclusive``:
        for a change that is no append (cutting a torn last entry off: it measures the file, then
        truncates it), which never passes a holder by and which no waiter passes by while it is
        held (the lock file says so): passed by, it could truncate away entries appended meanwhile."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            taken = self._wait(fd, may_pass=not exclusive)
        except BaseException:
            os.close(fd)
            raise
        if not taken:
            os.close(fd)  # (passed by a stopped holder: nothing of ours to release)
            return True
        if exclusive:
            try:
                os.pwrite(fd, EXCLUSIVE, 0)
            except OSError:  # (a full disk, which may be why an entry was torn: the cut needs no new space)
                pass
        self.fd = fd
        return True

    def _wait(self, fd: int, *, may_pass: bool = True) -> bool:
        """Take the lock (True), or give up on a holder stopped for STOPPED_HOLDER_S (False)."""
        stopped_since: float | None = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            holder = flock_holder_pid(fd) if may_pass and os.pread(fd, len(EXCLUSIVE), 0) != EXCLUSIVE else None
            if holder is None and not may_pass:
                stopped = flock_holder_pid(fd)
                if stopped is not None and process_stopped(stopped, socket.gethostname()) and not self._said:
                    self._said = True  # (waiting without end would be silent otherwise)
                    print(f"note: {self.path}: held by process {stopped}, which is stopped (Ctrl-Z, SIGSTOP, a "
                          "debugger); a torn last entry of the study journal is cut only under the lock: waiting "
                          "for it", file=sys.stderr, flush=True)
            if holder is not None and process_stopped(holder, socket.gethostname()):
                now = time.monotonic()
                stopped_since = now if stopped_since is None else stopped_since
                if now - stopped_since >= STOPPED_HOLDER_S:
                    self._say(holder)
                    return False
            else:
                stopped_since = None
            time.sleep(POLL_S)

    def _say(self, pid: int) -> None:
        if not self._said:
            self._said = True
            print(f"note: {self.path}: held by process {pid}, which is stopped (Ctrl-Z, SIGSTOP, a debugger); "
                  "this worker appends to the study journal without waiting for it (appends are whole "
                  "without the lock)", file=sys.stderr, flush=True)

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            try:
                os.ftruncate(fd, 0)  # (no longer held exclusively, if it was)
            finally:
                os.close(fd)  # (closing the only descriptor drops the lock)


def journal_lock(path: Path) -> JournalLock:
    """The append lock of the journal file ``path``."""
    return JournalLock(path.with_name(path.name + ".flock"))
