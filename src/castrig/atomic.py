"""Files that are either whole or absent: write to a temp file, fsync, rename, fsync the folder."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_with(path: Path, write: Callable[[Path], Any], *, sync_dir: bool = True) -> Path:
    """``write(tmp)`` to a new temporary file beside ``path``, fsync it, rename it onto ``path``.

    A reader sees the old file or the new one, never half of one; a full disk leaves no temporary
    behind. The temporary is created exclusively and the rename does not follow links, so a
    symlink already at ``path`` is replaced, never written through. The file gets the mode of any
    new file under the umask (``mkstemp`` alone would make it 0600). The temporary is locked
    (an OS lock, gone with the process) until renamed: one a kill -9 left behind is told from a
    live writer's by :func:`remove_dead_temporaries`.
    """
    path = Path(path)
    fd, tmp = _locked_temporary(path)
    try:
        try:
            os.fchmod(fd, file_mode())
            write(Path(tmp))
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            os.close(fd)  # (the lock goes with it, after the rename)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if sync_dir:
        fsync_dir(path.parent)
    return path


def _temporary_prefix(name: str) -> str:
    return f".{name}."


def _locked_temporary(path: Path) -> tuple[int, str]:
    """A new temporary beside ``path``, open and locked by this process. Between its making and its
    lock a :func:`remove_dead_temporaries` may take it for a dead writer's and remove it: then
    another is made (the lock is taken on the file still at that name, or not at all)."""
    from castrig.oslock import try_lock_open_file

    for _ in range(100):
        fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(path.name), suffix=".tmp", dir=path.parent)
        try:
            try:
                locked = try_lock_open_file(fd)
            except OSError:  # a file system without locks (ENOLCK): written unlocked, as before; no
                return fd, tmp  # cleaner can take a lock on it there either, so none removes it
            if locked and _same_file(fd, tmp):
                return fd, tmp
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # removed (or held) by a cleaner in between: never ours to write
    raise OSError(f"cannot make a temporary file for {path} that stays (something removes them as they are made)")


def _same_file(fd: int, path: str) -> bool:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def remove_dead_temporaries(folder: Path, name: str) -> list[Path]:
    """Remove the temporaries of ``folder/name`` (:func:`atomic_write_with`'s ``.NAME.*.tmp``) whose
    writer is gone: a kill -9 or a power cut mid-write left them. One whose writer lives holds its
    lock and is left alone, as is anything not a regular file. The paths removed."""
    from castrig.oslock import try_lock_open_file

    prefix = _temporary_prefix(name)
    removed = []
    try:
        entries = [e for e in os.scandir(folder) if e.name.startswith(prefix) and e.name.endswith(".tmp")]
    except OSError:
        return removed
    for entry in entries:
        try:
            fd = os.open(entry.path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError:
            continue  # gone, renamed by its writer, a link, or not ours to open
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode) and try_lock_open_file(fd) and _same_file(fd, entry.path):
                os.unlink(entry.path)  # (under its lock: no writer renames it meanwhile)
                removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_with(path, lambda tmp: tmp.write_bytes(data))


def file_mode() -> int:
    """The mode a new file gets under the process's umask (0666 & ~umask): what ``open`` gives."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode())
