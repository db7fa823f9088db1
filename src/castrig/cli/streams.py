"""Console streams that outlive their reader.

A run's console output is for people; its record is the run folder. When the reader goes away —
the terminal closed (writes fail with EIO), ``| tee log`` or ``| head`` ended (BrokenPipeError)
— a write must not end the run where it stands, and the interpreter's last flush at exit must
not turn a completed run's exit code into 1. From the first failed write on, the stream drops
what it is given and its descriptor is pointed at /dev/null (Python's documented answer to
SIGPIPE, `signal` module notes), so nothing buffered can fail later either. A run's console is
dropped on any failed write (a full disk under ``2> log``); another command's output that cannot
be written is an error (:class:`ConsoleWriteError`, said by ``castrig.cli.main``).
"""

from __future__ import annotations

import errno
import io
import os
import sys
from collections.abc import Iterable
from typing import Any, TextIO

#: What a write meets when its reader is gone: a closed pipe, a hung-up or vanished terminal. Any
#: other error (a full disk under ``> file``) is the command's to report -- except while a run's
#: console is not its record (:func:`console_is_not_the_record`).
_GONE = (errno.EPIPE, errno.EIO, errno.ENXIO)
_RUN_CONSOLE: list[bool] = []


class ConsoleWriteError(OSError):
    """The command's output could not be written (a full disk under ``> file``, ``>/dev/full``)."""


def console_is_not_the_record() -> None:
    """``castrig run``, ``resume``, ``queue``: the console only tells people; the run folder is the
    record. From now on any failed write (a full disk under ``2> log`` with the data root's disk
    free) drops the console's output instead of ending the run."""
    _RUN_CONSOLE[:] = [True]


class LossyStream:
    """Wraps a text stream; ``lost`` is the error that ended its output (None while it works)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.lost: OSError | None = None

    def write(self, text: str) -> int:
        if self.lost is None:
            try:
                return self._stream.write(text)
            except OSError as exc:
                self._lose(exc)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self.lost is None:
            try:
                self._stream.flush()
            except OSError as exc:
                self._lose(exc)

    def isatty(self) -> bool:
        return self.lost is None and self._stream.isatty()

    def _lose(self, exc: OSError) -> None:
        if exc.errno not in _GONE and not _RUN_CONSOLE:
            raise ConsoleWriteError(exc.errno, f"cannot write to {self._name()}: {exc.strerror}") from exc
        self.lost = exc
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(null, self._stream.fileno())
            finally:
                os.close(null)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass  # no descriptor (a test's StringIO): dropping the writes is enough

    def _name(self) -> str:
        return {1: "stdout", 2: "stderr"}.get(self._fd(), "the console")

    def _fd(self) -> int:
        try:
            return self._stream.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):
            return -1

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, errors…: the wrapped stream's
        return getattr(self._stream, name)


def keep_going_without_readers() -> None:
    """Wrap stdout and stderr (once) so a vanished reader cannot end the process."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, LossyStream):
            setattr(sys, name, LossyStream(stream))
