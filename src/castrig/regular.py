"""Open a file to read only if it is a regular file: never wait on a named pipe, never read a device.

Files in a run folder or a data root can be put there by anyone who may write it. A named pipe
(FIFO) opened the ordinary way blocks until a writer comes, for ever: a FIFO planted as a run's
kept segmentation hung ``castrig report``, and with it ``castrig serve``'s report page and the
report ``castrig queue`` writes after each run. Opened without blocking and looked at (``fstat``)
before anything is read, such a file is simply not there for the reader.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import BinaryIO


#: what a path longer than the file system allows is called, with the limits (Linux); here, where
#: the CLI's option checks take it without loading numpy (castrig.tiffio's imports)
NAME_TOO_LONG = "a name longer than the file system allows (allowed: at most 255 bytes a file or folder name, 4095 the path)"


class NotRegularFile(OSError):
    """The path is a named pipe, a device, a socket or a folder: nothing castrig reads as a file."""


class FileTooBig(OSError):
    """The file holds more than the reader takes."""


def _open(path: str | Path, follow: bool) -> BinaryIO:
    """Looked at before it is opened (as ``castrig.inputs`` reads its inputs): opening a serial
    port's device, a link to one planted as a run's file, can toggle its control lines and reset
    what hangs on it; and again once open, without blocking (swapped since it was looked at)."""
    if not stat.S_ISREG(os.stat(path, follow_symlinks=follow).st_mode):
        raise NotRegularFile(errno.EINVAL, "not a regular file (a named pipe, a device or a folder?)", str(path))
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | (0 if follow else os.O_NOFOLLOW)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegularFile(errno.EINVAL, "not a regular file (a named pipe, a device or a folder?)", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def open_regular(path: str | Path, *, follow: bool = True) -> BinaryIO | None:
    """``path`` opened for reading (binary, blocking again once open) if it is a regular file; None
    if it is not there, not a regular file (a FIFO, a device, a socket, a folder) or cannot be opened.
    ``follow=False``: never through a symbolic link (a file castrig wrote itself is never one)."""
    try:
        return _open(path, follow)
    except OSError:
        return None


def read_regular(path: str | Path, *, max_bytes: int, follow: bool = True) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them: FileNotFoundError
    when it is not there, :class:`NotRegularFile`, :class:`FileTooBig`, or the OSError that
    opening or reading it gave."""
    with _open(path, follow) as fh:
        data = fh.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise FileTooBig(errno.EFBIG, f"more than {max_bytes} bytes", str(path))
    return data
