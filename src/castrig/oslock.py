"""Ownership locks held by the operating system: released when the process dies, however it dies.

A lock is a small file; holding it means holding an exclusive *open-file-description* lock on it
(Linux ``F_OFD_SETLK``; ``flock`` elsewhere). Either kind goes with the process — kill -9 or a
power cut never leaves a stale lock — and neither is dropped when some other part of the process
opens and closes the same file (the trap of POSIX ``lockf``). The file's contents say who holds
it (pid, host, since when, what for), so a refused second process can name the holder. Whether a
lock is held is *tested* without taking it (``F_OFD_GETLK``), so ``castrig runs`` looking at a
live run can never make that run's own ``resume`` fail.

Within one process a lock is re-entrant: ``castrig queue`` holds the rig's device locks for the
whole night while each run takes them again.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import struct
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from castrig.errors import Busy
from castrig.jsontext import loads

_OFD = sys.platform.startswith("linux") and hasattr(fcntl, "F_OFD_SETLK")
_held: dict[str, "_Held"] = {}
_guard = threading.Lock()


@dataclass
class Holder:
    """Who holds a lock, as written into the lock file by the holder."""

    pid: int | None
    host: str | None
    started_utc: str | None
    purpose: str | None

    def describe(self) -> str:
        who = f"pid {self.pid}" if self.pid is not None else "another process"
        host = f" on {self.host}" if self.host else ""
        since = f" since {self.started_utc}" if self.started_utc else ""
        what = f" ({self.purpose})" if self.purpose else ""
        # a stopped holder (Ctrl-Z, SIGSTOP) lets go only once continued: said, with the way out
        # (a refusal named a pid alone, and the one it waited on never came)
        stopped = f" -- that process is STOPPED (kill -CONT {self.pid} lets it go on)" \
            if self.pid is not None and process_stopped(self.pid, self.host) else ""
        return f"{who}{host}{since}{what}{stopped}"

    @classmethod
    def read(cls, path: Path) -> "Holder":
        from castrig.regular import read_regular

        try:
            data = loads(read_regular(path, max_bytes=HOLDER_MAX_BYTES) or b"{}")
            if not isinstance(data, dict):
                data = {}
        except (OSError, ValueError):
            data = {}
        pid = data.get("pid")
        return cls(pid if isinstance(pid, int) else None, data.get("host"), data.get("started_utc"), data.get("purpose"))


@dataclass
class _Held:
    fd: int
    count: int


def _flock_struct(kind: int) -> bytes:
    # struct flock {short l_type; short l_whence; off_t l_start; off_t l_len; pid_t l_pid;} on Linux x86-64/arm64
    return struct.pack("hhqqi4x", kind, os.SEEK_SET, 0, 0, 0)


def _try_lock(fd: int) -> bool:
    try:
        if _OFD:
            fcntl.fcntl(fd, fcntl.F_OFD_SETLK, _flock_struct(fcntl.F_WRLCK))
        else:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise


def try_lock_open_file(fd: int) -> bool:
    """Take this process's exclusive lock on the open file ``fd`` (a regular file open for
    writing) without waiting: False while another process (or another open of it here) holds it."""
    return _try_lock(fd)


#: A holder record is one line of JSON (~100 bytes); a lock file holding more was not written by a holder.
HOLDER_MAX_BYTES = 64 << 10


def _open_lock_file(key: str, flags: int) -> int:
    """Open a lock file that is a regular file (or make it, with ``O_CREAT``). Anything else at its
    path (a named pipe, a device, a folder: put there by whoever may write the folder) is refused
    before it is opened — opened the ordinary way a named pipe waited for ever for a writer (`castrig
    status`, `report`, `abort` and `export` of a crashed run hung), a serial port's device would have
    its control lines toggled — and looked at again once open, without blocking (swapped between)."""
    from castrig.regular import NotRegularFile

    why = f"{Path(key).name} is not a regular file (a named pipe, a device, a folder or a symlink?)"
    try:
        if not stat.S_ISREG(os.lstat(key).st_mode):
            raise NotRegularFile(errno.EINVAL, why, key)
    except FileNotFoundError:
        if not flags & os.O_CREAT:
            raise
    # a symlink put at its path (in a folder of /tmp another user may write) is not followed:
    # root would have made, truncated and written a file wherever it pointed
    fd = os.open(key, flags | os.O_NONBLOCK | os.O_NOCTTY | os.O_NOFOLLOW, 0o666)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotRegularFile(errno.EINVAL, why, key)
    return fd


def is_locked(path: Path) -> bool:
    """Whether some process (this one included) holds the lock at ``path``; never takes it. False
    when what is at ``path`` is not a regular file: castrig holds no lock on anything else."""
    from castrig.regular import NotRegularFile

    key = str(Path(path).absolute())
    if key in _held:
        return True
    try:
        fd = _open_lock_file(key, os.O_RDONLY)
    except (FileNotFoundError, NotRegularFile):
        return False
    try:
        if _OFD:
            res = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, _flock_struct(fcntl.F_WRLCK))
            return struct.unpack("hhqqi4x", res)[0] != fcntl.F_UNLCK
        try:  # flock has no test: take a shared lock for an instant (not on Linux)
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def acquire(path: Path, *, purpose: str, what: str) -> None:
    """Take the lock at ``path`` (re-entrant in this process) or raise :class:`Busy` naming the holder.

    ``what`` names the thing locked for the message (``run folder runs/x``, ``device /dev/ttyUSB0``).
    """
    path = Path(path)
    key = str(path.absolute())
    with _guard:
        if key in _held:
            _held[key].count += 1
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_lock_file(key, os.O_RDWR | os.O_CREAT)
        try:
            if not _try_lock(fd):
                raise Busy(f"{what} is in use by {Holder.read(path).describe()}", holder=Holder.read(path))
            info = {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
                    "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        _held[key] = _Held(fd, 1)
        _start_keeper()


#: How often a held lock's file is looked at (:func:`_keep_files`).
KEEP_S = 0.2
_keeper: list[threading.Thread] = []


def _start_keeper() -> None:
    if not _keeper:
        _keeper.append(threading.Thread(target=_keep_files, name="castrig-lock-files", daemon=True))
        _keeper[0].start()


def _keep_files() -> None:
    """A held lock's file deleted (``rm run.lock``, a reflex when a tool says "busy"; a clean-up of
    /run/lock) is made again and locked, within :data:`KEEP_S`: with it gone a live run read as
    crashed, `castrig abort` refused it, and a `castrig resume` became a second writer to its
    run.sqlite (32 'started' journal rows for 26 steps)."""
    while True:
        time.sleep(KEEP_S)
        with _guard:
            held = list(_held.items())
        for key, h in held:
            try:
                st, mine = os.stat(key), os.fstat(h.fd)
                if (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino):
                    continue
            except FileNotFoundError:
                pass
            except OSError:
                continue
            _take_again(key, h)


def _take_again(key: str, h: _Held) -> None:
    with _guard:
        if _held.get(key) is not h:  # released meanwhile
            return
        try:
            fd = _open_lock_file(key, os.O_RDWR | os.O_CREAT)
        except OSError:  # its folder gone too (or something not a file in its place): nothing to keep
            return
        try:
            if not _try_lock(fd):  # another process made and took it first: it says so when asked
                os.close(fd)
                return
            os.ftruncate(fd, 0)
            os.pwrite(fd, os.pread(h.fd, 4096, 0), 0)  # the same holder record
        except OSError:
            os.close(fd)
            return
        os.close(h.fd)
        h.fd = fd


def release(path: Path) -> None:
    """Give back one hold of the lock; the last one closes the file (which drops the OS lock).

    The file itself stays: removing it would race a process about to lock the old inode.
    """
    key = str(Path(path).absolute())
    with _guard:
        held = _held.get(key)
        if held is None:
            return
        held.count -= 1
        if held.count <= 0:
            del _held[key]
            os.close(held.fd)


def holder_info(path: Path) -> dict[str, Any] | None:
    """The holder's record, if the lock is held now; ``None`` when it is free."""
    if not is_locked(path):
        return None
    h = Holder.read(path)
    return {"pid": h.pid, "host": h.host, "started_utc": h.started_utc, "purpose": h.purpose}


def process_stopped(pid: int | None, host: str | None) -> bool:
    """Whether process ``pid`` of this computer is stopped (SIGSTOP, Ctrl-Z in its terminal, a
    debugger): it still holds its locks but does nothing. False for another host's process, a
    process that is gone, or where /proc cannot tell."""
    if not pid or host != socket.gethostname():
        return False
    try:
        line = Path(f"/proc/{int(pid)}/stat").read_text()
    except (OSError, ValueError):
        return False
    # "pid (comm) S ...": comm may hold spaces and parentheses, the state follows the last ")"
    fields = line.rpartition(")")[2].split()
    return bool(fields) and fields[0] in ("T", "t")


def flock_holder_pid(fd: int) -> int | None:
    """The process holding a ``flock`` on the file open as ``fd``, from Linux's ``/proc/locks``
    (the kernel's own table: a pid the holder writes into a file can be stale); None where it
    cannot tell (no such table, the lock just dropped)."""
    st = os.fstat(fd)
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in table.splitlines():
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1978 fe:00:2146480 0 EOF"; a waiter's line has "->" after the number
        if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5] == where:
            try:
                return int(fields[4])
            except ValueError:
                return None
    return None
