"""Console streams that outlive their reader.

A run's console output is for people; its record is the run folder. When the reader goes away —
the terminal closed (writes fail with EIO), ``| tee log`` or ``| head`` ended (BrokenPipeError)
— a write must not end the run where it stands, and the interpreter's last flush at exit must
not turn a completed run's exit code into 1. From the first failed write on, the stream drops
what it is given and its descriptor is pointed at /dev/null (Python's documented answer to
SIGPIPE, `signal` module notes), so nothing buffered can fail later either. A run's console is
dropped on any failed write (a full disk under ``2> log``); another command's output that cannot
be written is an error (:class:`ConsoleWriteError`, said by ``castrig.cli.main``).

A reader that is there but does not read — a terminal stopped with Ctrl-S (XOFF), a stalled ssh
session, a frozen terminal emulator — blocks a write for as long as it lasts. A run's console
therefore never writes from the thread that drives the rig: from :func:`console_is_not_the_record`
on, what is written is queued and a thread of the stream's own writes it (:class:`_Drain`), the
queue bounded (beyond it the newest output is dropped, and that said once the terminal reads
again). A terminal stopped in the middle of an evaporation froze the RH loop, the samples, the
interlocks, ``castrig abort`` and SIGTERM until it was started again (an outside tester).
:func:`settle_consoles` writes what is queued before a command returns (bounded in time).
"""

from __future__ import annotations

import errno
import io
import os
import sys
import threading
import time
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
        self._drain: _Drain | None = None
        self._drain_lock = threading.Lock()

    def write(self, text: str) -> int:
        if self.lost is None:
            if _RUN_CONSOLE:
                self._queue().put(text)
                return len(text)
            return self._write_now(text)
        return len(text)

    def _write_now(self, text: str) -> int:
        if self.lost is None:
            try:
                return self._stream.write(text)
            except OSError as exc:
                self._lose(exc)
        return len(text)

    def _flush_now(self) -> None:
        if self.lost is None:
            try:
                self._stream.flush()
            except OSError as exc:
                self._lose(exc)

    def _queue(self) -> "_Drain":
        with self._drain_lock:
            if self._drain is None:
                self._drain = _Drain(self)
            return self._drain

    def settle(self, timeout_s: float, *, stop: bool = False) -> None:
        """Wait (up to ``timeout_s``) until what is queued has been written; ``stop``: then end the
        writing thread (the command is over: what comes next is written directly)."""
        with self._drain_lock:
            drain = self._drain
            if stop:
                self._drain = None
        if drain is not None:
            drain.settle(timeout_s)
            if stop:
                drain.stop()

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if _RUN_CONSOLE and self._drain is not None:
            return  # (its thread flushes after every write: a flush here could block as a write does)
        self._flush_now()

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


class _Drain:
    """The queue of one stream's output and the thread that writes it (see the module docstring)."""

    #: Characters queued at most: some minutes of a live panel's redraws.
    LIMIT = 1 << 20

    def __init__(self, stream: LossyStream) -> None:
        self._stream = stream
        self._parts: list[str] = []
        self._size = 0
        self._dropped = 0
        self._busy = False
        self._stopped = False
        self._cv = threading.Condition()
        threading.Thread(target=self._run, name="castrig-console", daemon=True).start()

    def put(self, text: str) -> None:
        with self._cv:
            if self._size + len(text) > self.LIMIT:
                self._dropped += len(text)
                return
            self._parts.append(text)
            self._size += len(text)
            self._cv.notify_all()

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._parts and not self._dropped and not self._stopped:
                    self._cv.wait()
                if self._stopped and not self._parts and not self._dropped:
                    return
                chunk, dropped = "".join(self._parts), self._dropped
                self._parts, self._size, self._dropped, self._busy = [], 0, 0, True
            if dropped:
                chunk += (f"\n[castrig: {dropped} characters of output dropped while the terminal did not read; "
                          "the run went on]\n")
            try:
                self._stream._write_now(chunk)
                self._stream._flush_now()
            except Exception:  # noqa: BLE001 - (a text the stream cannot encode): this chunk is lost, not the thread
                pass
            with self._cv:
                self._busy = False
                self._cv.notify_all()

    def settle(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while (self._parts or self._dropped or self._busy) and time.monotonic() < deadline:
                self._cv.wait(max(0.0, min(0.5, deadline - time.monotonic())))


def settle_consoles(timeout_s: float = 10.0) -> None:
    """As a command returns: what a run's console queued is written (a terminal that does not read
    for ``timeout_s`` more: given up; the rig is safe by then), its writing threads end, and what
    comes next is written directly again (castrig.cli.main called again in one process: tests)."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name, None)
        if isinstance(stream, LossyStream):
            stream.settle(timeout_s, stop=True)
    _RUN_CONSOLE.clear()


def keep_going_without_readers() -> None:
    """Wrap stdout and stderr (once) so a vanished reader cannot end the process."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, LossyStream):
            setattr(sys, name, LossyStream(stream))
