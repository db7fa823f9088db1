"""The byte link: the one thing a driver talks through.

A driver never knows whether the bytes go to a serial port, a VISA socket or an in-process
emulator; it only writes, reads up to a terminator, or reads a fixed count. Buffering of bytes
that arrived after a terminator is done here once, so every implementation behaves the same.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import TypeVar

from castrig.links.errors import LinkClosed, LinkTimeout, ProtocolError

T = TypeVar("T")


class Link(ABC):
    """Bytes in, bytes out, with a timeout.

    Implementations provide ``_write`` and ``_read_some``; this class keeps the receive buffer
    and implements the reads on top of them.
    """

    def __init__(self, resource: str, timeout_s: float = 1.0):
        self.resource = resource
        self.timeout_s = timeout_s
        self._rx = bytearray()
        self._closed = False

    # -- to implement --------------------------------------------------------------------
    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def _read_some(self, deadline_s: float) -> bytes:
        """Return at least one byte, or ``b""`` once the deadline has passed.

        ``deadline_s`` is in the link's own time base (see :meth:`_now`).
        """

    @abstractmethod
    def _now(self) -> float: ...

    def _close(self) -> None:  # pragma: no cover - trivial default
        pass

    # -- public --------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        self._check_open()
        self._write(bytes(data))

    def read_until(self, terminator: bytes, *, timeout_s: float | None = None, max_bytes: int = 65536) -> bytes:
        """Read up to and including ``terminator``; bytes after it stay buffered."""
        self._check_open()
        deadline = self._now() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            idx = self._rx.find(terminator)
            if idx >= 0:
                end = idx + len(terminator)
                out = bytes(self._rx[:end])
                del self._rx[:end]
                return out
            if len(self._rx) > max_bytes:
                junk = bytes(self._rx[:64])
                self._rx.clear()
                raise ProtocolError(self.resource, f"no {terminator!r} within {max_bytes} bytes (starts {junk!r})")
            chunk = self._read_some(deadline)
            if not chunk:
                partial = bytes(self._rx)
                raise LinkTimeout(
                    self.resource,
                    f"no {terminator!r} within {self._timeout_text(timeout_s)}"
                    + (f" (got {partial!r})" if partial else " (no reply)"),
                )
            self._rx += chunk

    def read_exactly(self, n: int, *, timeout_s: float | None = None) -> bytes:
        """Read exactly ``n`` bytes."""
        self._check_open()
        deadline = self._now() + (self.timeout_s if timeout_s is None else timeout_s)
        while len(self._rx) < n:
            chunk = self._read_some(deadline)
            if not chunk:
                raise LinkTimeout(
                    self.resource,
                    f"{len(self._rx)} of {n} bytes within {self._timeout_text(timeout_s)}",
                )
            self._rx += chunk
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out

    def read_available(self, *, wait_s: float = 0.0) -> bytes:
        """Whatever has arrived (waiting at most ``wait_s`` for the first byte)."""
        self._check_open()
        if not self._rx:
            self._rx += self._read_some(self._now() + wait_s)
        out = bytes(self._rx)
        self._rx.clear()
        return out

    def flush_input(self) -> None:
        """Drop buffered and pending input, e.g. after a timeout, so replies line up again."""
        self._check_open()
        self._rx.clear()
        while self._read_some(self._now()):
            pass

    def query(self, data: bytes, terminator: bytes, *, timeout_s: float | None = None) -> bytes:
        self.write(data)
        return self.read_until(terminator, timeout_s=timeout_s)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.resource!r})"

    # -- helpers -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise LinkClosed(self.resource, "link is closed")

    def _timeout_text(self, timeout_s: float | None) -> str:
        return f"{self.timeout_s if timeout_s is None else timeout_s:g} s"


def with_retries(
    action: Callable[[], T],
    *,
    attempts: int,
    link: Link,
    retry_on: tuple[type[Exception], ...] = (LinkTimeout, ProtocolError),
    on_retry: Callable[[int, Exception], None] | None = None,
) -> T:
    """Run ``action`` up to ``attempts`` times, flushing the link's input between tries.

    Only for exchanges the protocol allows to repeat (queries, idempotent sets); never for a
    command that moves something, such as a pump's RUN.
    """
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    last: Exception | None = None
    for i in range(attempts):
        try:
            return action()
        except retry_on as exc:
            last = exc
            if i + 1 < attempts:
                if on_retry is not None:
                    on_retry(i + 1, exc)
                try:
                    link.flush_input()
                except LinkClosed:
                    raise exc from None
    assert last is not None
    raise last
