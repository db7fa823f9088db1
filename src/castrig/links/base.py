"""The byte link: the one thing a driver talks through.

A driver never knows whether the bytes go to a serial port, a VISA socket or an in-process
emulator; it only writes, reads up to a terminator, reads a fixed count, or reads a frame its
own ``take`` function recognises (:meth:`Link.read_frame`). Buffering of bytes that arrived
after a terminator or frame is done here once, so every implementation behaves the same; bytes
may arrive cut at any boundary (a socket delivers what it has), and a partial frame stays
buffered (or is pushed back with :meth:`Link.unread`) for the next read.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

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
        #: Checks run right after the link reopened itself (:meth:`on_reopen`).
        self._reopen_checks: list[Callable[[], None]] = []
        #: What the checks found after a reopen (castrig.devices.identity.ReopenNote), for the
        #: rig's driver to say and clear: the time they held the exchange that reopened the line.
        self.reopen_notes: list[Any] = []

    #: Whether the link reopens itself after its peer went away *and* the path it reopens may
    #: then lead to another device: a serial device path or pty (``/dev/ttyUSB0`` is another
    #: adapter after a replug, ``/dev/pts/3`` another device after ``sim serve`` restarted). A
    #: network port stays wired to its device, and an in-process link never reopens.
    reopens = False

    #: Bytes read from the peer since the link was made (counted by the OS links): whether
    #: anything answered on it, whatever it was. ``castrig safe`` tells a device that never
    #: answered from one that answered and then failed (it may be running).
    heard_bytes = 0

    def on_reopen(self, check: Callable[[], None]) -> None:
        """Run ``check`` each time the link has reopened, before the read or write that reopened
        it goes on: a driver confirms there that the device is the one it talked to before (a pty
        number or a USB adapter's port taken by another device after a restart or a replug). An
        error it raises leaves the link lost, so the next read or write reopens and checks again."""
        self._reopen_checks.append(check)

    def _confirm_reopened(self) -> None:
        for check in list(self._reopen_checks):
            check()

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
        if self._closed:
            self._check_open()
        self._write(bytes(data))

    def read_until(self, terminator: bytes, *, timeout_s: float | None = None, max_bytes: int = 65536) -> bytes:
        """Read up to and including ``terminator``; bytes after it stay buffered."""
        if self._closed:
            self._check_open()
        deadline = self._now() + (self.timeout_s if timeout_s is None else timeout_s)
        if not self._rx and terminator:
            # The usual reply: nothing buffered, and the first chunk is exactly one whole line.
            chunk = self._read_some(deadline)
            if not chunk:
                raise LinkTimeout(self.resource, f"no {terminator!r} within {self._timeout_text(timeout_s)} (no reply)")
            if chunk.endswith(terminator) and chunk.find(terminator) == len(chunk) - len(terminator):
                return bytes(chunk)
            self._rx += chunk
        return self._read_until_buffered(terminator, deadline, timeout_s, max_bytes)

    def _read_until_buffered(self, terminator: bytes, deadline: float, timeout_s: float | None, max_bytes: int) -> bytes:
        """:meth:`read_until` once its first chunk (if any) is in the buffer: up to ``deadline``,
        which holds while bytes keep coming (see :meth:`_read_frame_buffered`): a VISA socket
        flooded without a terminator read its 64 KB a byte at a time, for minutes."""
        reads = 0
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
            chunk = self._read_some(deadline) if not reads or self._now() < deadline else b""
            reads += 1
            if not chunk:
                partial = bytes(self._rx)
                raise LinkTimeout(
                    self.resource,
                    f"no {terminator!r} within {self._timeout_text(timeout_s)}"
                    + (f" (got {partial[:64]!r}{f'… ({len(partial)} bytes)' if len(partial) > 64 else ''})"
                       if partial else " (no reply)"),
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

    def read_frame(
        self,
        take: Callable[[bytes], tuple[T | None, int]],
        *,
        timeout_s: float | None = None,
        what: str = "whole frame",
    ) -> T:
        """Read until ``take`` finds a whole frame at the front of the buffered input.

        ``take(buffer)`` returns ``(frame, n)``: the first ``n`` bytes are consumed (a frame,
        or garbage dropped while resynchronising); a ``frame`` that is not ``None`` is
        returned; ``(None, 0)`` asks for more bytes. A partial frame stays buffered, so bytes
        may arrive cut at any boundary; on a timeout the partial frame is still buffered.
        """
        self._check_open()
        deadline = self._now() + (self.timeout_s if timeout_s is None else timeout_s)
        return self._read_frame_buffered(take, deadline, timeout_s, what)

    def _read_frame_buffered(
        self,
        take: Callable[[bytes], tuple[T | None, int]],
        deadline: float,
        timeout_s: float | None,
        what: str,
        *,
        read_first: bool = False,
    ) -> T:
        """:meth:`read_frame` up to ``deadline``; ``read_first``: ``take`` has just asked for more bytes.

        The deadline holds while bytes keep coming: a reader past it still gets what has arrived,
        so a peer streaming garbage (which ``take`` drops, the buffer never growing) kept a Modbus
        TCP read going for ever — ``castrig run`` still opening the rig after 14 minutes, deaf to
        SIGTERM. After the first read, none is made once the deadline has passed."""
        reads = 0
        while True:
            while self._rx and not read_first:
                frame, n = take(bytes(self._rx))
                if n:
                    del self._rx[:n]
                if frame is not None:
                    return frame
                if not n:
                    break
            read_first = False
            chunk = self._read_some(deadline) if not reads or self._now() < deadline else b""
            reads += 1
            if not chunk:
                partial = bytes(self._rx)
                raise LinkTimeout(
                    self.resource,
                    f"no {what} within {self._timeout_text(timeout_s)}"
                    + (f" (got {partial[:64]!r})" if partial else " (no reply)"),
                )
            self._rx += chunk

    def read_available(self, *, wait_s: float = 0.0) -> bytes:
        """Whatever has arrived (waiting at most ``wait_s`` for the first byte)."""
        self._check_open()
        if not self._rx:
            self._rx += self._read_some(self._now() + wait_s)
        out = bytes(self._rx)
        self._rx.clear()
        return out

    def input_waiting(self) -> bytes:
        """What input is buffered or has arrived, never waiting (it stays buffered for the next read).

        Before a command of a query/reply protocol, any is unasked: a reply sent twice (a noisy
        line, a terminal server repeating a packet), a line a transmitter streams, a late reply.
        Read as the next command's reply, every reply after it was one behind (a chamber's
        temperature recorded as its set point; a humidity 15 s stale fed to the RH loop)."""
        self._check_open()
        if not self._rx:
            chunk = self._read_some(self._now())
            if chunk:
                self._rx += chunk
        return bytes(self._rx)

    def unread(self, data: bytes) -> None:
        """Push ``data`` back in front of the buffered input: the next read returns it first.

        For a driver that took more than one frame (or part of the next one) off the link: the
        partial frame is kept for the next read instead of being lost.
        """
        self._check_open()
        if data:
            self._rx[:0] = data

    def flush_input(self) -> None:
        """Drop buffered and pending input, e.g. after a timeout, so replies line up again;
        for at most the link's timeout (a peer that streams without end kept it dropping for
        as long as it streamed)."""
        self._check_open()
        self._rx.clear()
        end = self._now() + self.timeout_s
        while self._read_some(self._now()) and self._now() < end:
            pass

    def flush_until_quiet(self, quiet_s: float, *, max_s: float | None = None) -> int:
        """Drop input until none has arrived for ``quiet_s`` (at most ``max_s``, default the
        link timeout); returns how many bytes were dropped.

        A plain :meth:`flush_input` drops only what is already here; replies still on the wire
        (a device that was late, a terminal server that held them) arrive after it.
        """
        return self._drop_until_quiet(quiet_s, max_s)[0]

    def went_quiet(self, quiet_s: float, *, max_s: float) -> bool:
        """:meth:`flush_until_quiet`, saying whether the line did go quiet within ``max_s``:
        False when input kept coming (a device that streams without end, another device on the
        port, a server that drips a byte at a time) — for a driver that waits for silence and
        must not wait for ever (an HMT330 dripping a byte every 0.3 s held ``castrig run`` at
        the rig's opening: 1000 waits of its 0.3 s quiet, over 2 minutes)."""
        return self._drop_until_quiet(quiet_s, max_s)[1]

    def _drop_until_quiet(self, quiet_s: float, max_s: float | None) -> tuple[int, bool]:
        """(bytes dropped, whether ``quiet_s`` of silence came before ``max_s`` ran out)."""
        self._check_open()
        dropped = len(self._rx)
        self._rx.clear()
        end = self._now() + (self.timeout_s if max_s is None else max_s)
        while True:
            now = self._now()
            if now >= end:
                return dropped, False
            chunk = self._read_some(min(now + quiet_s, end))
            if not chunk:
                return dropped, now + quiet_s <= end
            dropped += len(chunk)

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


class StepGuard(Protocol):
    """What :func:`retry_loop` needs of an in-step guard (:class:`castrig.devices.exchange.InStep`)."""

    suspect: bool

    def ensure(self) -> None: ...

    def mark(self) -> None: ...


def retry_loop(
    link: Link,
    once: Callable[[], T],
    *,
    attempts: int,
    retry_on: tuple[type[Exception], ...] = (LinkTimeout, ProtocolError),
    in_step: StepGuard | None = None,
    on_retry: Callable[[int, Exception], None] | None = None,
) -> T:
    """Run ``once`` up to ``attempts`` times, flushing the link's input between tries: the one
    retry loop of every driver (:func:`with_retries`, the ASCII drivers' ``retried_exchange``,
    the NE-1000's queries).

    With ``in_step``, each try first gets back in step with the device when the link is suspect
    (``in_step.ensure()``, whose own timeout counts as the try's), and a try whose ``once``
    fails with ``retry_on`` marks the link out of step (``in_step.mark()``). The last try's
    error is raised as it came. Written in one frame: it runs at every exchange of the twin.
    """
    if attempts < 1:
        raise ValueError("attempts must be >= 1")
    last: Exception | None = None
    for i in range(attempts):
        try:
            if in_step is None:
                return once()
            if in_step.suspect:
                in_step.ensure()
            try:
                return once()
            except retry_on:
                in_step.mark()
                raise
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
    return retry_loop(link, action, attempts=attempts, retry_on=retry_on, on_retry=on_retry)
