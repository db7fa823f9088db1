"""One query/reply exchange with the care every ASCII driver needs, written once.

Timeouts, bad frames and unparseable replies are retried a bounded number of times; after a
failure stray input is dropped so the next reply lines up with its command; a link failure is
re-raised as the device's own error, naming the device and the command.

Dropping what is there is not enough after a timeout: the late reply may still be on its way
(a stalled device, terminal server or ``sim serve`` answers its backlog when it runs again).
:class:`InStep` marks the link out of step and, before the next reply is trusted, confirms with
a marker query that the replies line up again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from castrig.links import Link, LinkClosed, LinkError, LinkTimeout, ProtocolError
from castrig.links.base import retry_loop

T = TypeVar("T")


def resync(link: Link) -> None:
    """Drop stray input after a failure so the next reply lines up with its command."""
    try:
        link.flush_input()
    except LinkError:
        pass


def retried_exchange(
    link: Link,
    once: Callable[[], T],
    *,
    attempts: int,
    reply_error: type[Exception],
    link_error: Callable[[LinkError], Exception],
    in_step: "InStep | None" = None,
) -> T:
    """Run ``once`` (write a command, read and parse its reply) with bounded retries.

    With ``in_step``, every try starts in step with the device (:meth:`InStep.ensure`), and a
    timeout, a garbled reply or one that is not this command's marks the link out of step.
    """
    retry_on = (LinkTimeout, ProtocolError, reply_error)
    try:
        if in_step is None or in_step.suspect_now() or attempts < 1:
            return retry_loop(link, once, attempts=attempts, retry_on=retry_on, in_step=in_step)
        # The usual exchange, in step: retry_loop's first try without its frame (every exchange
        # of the twin comes here); a failed try goes on as retry_loop would after it.
        try:
            return once()
        except retry_on as exc:
            in_step.mark()
            if attempts == 1:
                raise
            try:
                link.flush_input()
            except LinkClosed:
                raise exc from None
            return retry_loop(link, once, attempts=attempts - 1, retry_on=retry_on, in_step=in_step)
    except LinkError as exc:
        resync(link)
        raise link_error(exc) from exc
    except reply_error:
        resync(link)
        raise


def after_first_try(first_error: BaseException, once: Callable[[], T]) -> Callable[[], T]:
    """``once`` for a retry loop whose first try was made inline and raised ``first_error``: its
    first call raises that error again (the loop handles it as its own first try's), later calls
    try ``once``."""
    pending = [first_error]

    def first_then_once() -> T:
        if pending:
            raise pending.pop()
        return once()

    return first_then_once


def retried_after(
    first_error: BaseException,
    link: Link,
    once: Callable[[], T],
    *,
    attempts: int,
    reply_error: type[Exception],
    link_error: Callable[[LinkError], Exception],
    in_step: "InStep | None" = None,
) -> T:
    """:func:`retried_exchange` whose first try was made inline by the driver and raised
    ``first_error``: that try counts as the first, and what follows it (marking the link out of
    step, the retries, the errors raised) is exactly what :func:`retried_exchange` does.

    A driver's usual exchange (in step, ``attempts >= 1``) then runs without building closures
    or going through the retry frames; only a failure pays for them. The inline try must be
    ``once`` itself (the same bytes, reads and parse), made while the link was in step.
    """
    return retried_exchange(link, after_first_try(first_error, once), attempts=attempts, reply_error=reply_error,
                            link_error=link_error, in_step=in_step)


class InStep:
    """Whether the replies on a link still line up with the commands sent, and getting them back in step.

    A reply that timed out may still come: a device (or a terminal server, or ``sim serve``)
    that stalled answers every command it was sent once it runs again, in order. Read then,
    each late reply would be taken for the answer to the next command and every later reply
    would be one behind, while the device looks alive. So a failed exchange marks the link
    out of step (:meth:`mark`), and before the next exchange is trusted :meth:`ensure` drops
    the late replies and sends a *marker* query, reading replies until the marker's own: the
    device answers in order, so everything before it is stale.

    ``marker(k)`` gives the bytes of the ``k``-th marker and a predicate that recognises its
    reply. With ``unique=True`` each marker's reply names it (an Alicat register number), so
    it is trusted at once. Otherwise markers' replies look alike (``*IDN?``, ``VER``) and a
    late reply to an earlier marker could be taken for this one's: the last marker-like reply
    before ``quiet_s`` of silence is the one (a device that runs again answers its backlog in
    one burst). ``marker=None``: nothing may be sent (a POLL bus), the line is let go quiet.
    ``read_reply(timeout_s)`` reads one reply (a line, a frame) as text. ``idle``: bytes a device
    may send after a reply on its own (an HMT330's ``>`` prompt), which do not put it out of step.
    """

    def __init__(
        self,
        link: Link,
        *,
        marker: Callable[[int], tuple[bytes, Callable[[str], bool]]] | None,
        read_reply: Callable[[float | None], str],
        unique: bool = False,
        quiet_s: float = 0.1,
        max_replies: int = 64,
        idle: bytes = b"",
    ):
        self.link = link
        self.idle = idle
        self.marker = marker
        self.read_reply = read_reply
        self.unique = unique
        self.quiet_s = quiet_s
        self.max_replies = max_replies
        #: Set when a reply may still be on its way (or a reply was not the command's own).
        self.suspect = False
        #: How many times the link was confirmed back in step (for logs and benchmarks).
        self.resyncs = 0
        #: How many times input was found waiting before a command (:meth:`suspect_now`).
        self.strays = 0
        self._k = 0

    def mark(self) -> None:
        """An exchange failed: its reply (if it comes) must not be taken for the next one's."""
        self.suspect = True

    def suspect_now(self) -> bool:
        """:attr:`suspect`, or made so by input that is here before a command is sent (a reply
        sent twice, a line streamed unasked: :meth:`Link.input_waiting`), which no failure had
        shown: every reply after it was one behind, and parsed well. Said on stderr. Input of
        :attr:`idle` bytes only (a prompt after a reply) is left for the next read to skip."""
        if self.suspect:
            return True
        try:
            waiting = self.link.input_waiting()
        except LinkError:  # (the exchange itself meets it, and names the device and the command)
            return False
        if waiting and waiting.strip(self.idle):
            self.suspect = True
            self.strays += 1
            if self.strays in (1, 10, 100) or self.strays % 1000 == 0:
                from castrig.logs import module_logger

                module_logger("castrig.devices").warning(
                    "unasked input before a command: dropped, replies put back in step", link=self.link.resource,
                    times=self.strays)
        return self.suspect

    def ensure(self) -> None:
        """Nothing to do when in step; else drop late replies and confirm with a marker.

        Raises :class:`LinkTimeout` (still out of step) when the marker is not answered, and
        :class:`ProtocolError` when replies keep coming but none is the marker's.
        """
        if not self.suspect:
            return
        self._drop_late()
        if self.marker is None:
            self.suspect = False
            self.resyncs += 1
            return
        command, is_marker = self.marker(self._k)
        self._k += 1
        self.link.write(command)
        found = False
        for _ in range(self.max_replies):
            try:
                reply = self.read_reply(self.quiet_s if found else None)
            except LinkTimeout:
                if found:
                    break
                raise
            except (ProtocolError, ValueError, UnicodeDecodeError):
                continue
            if is_marker(reply):
                found = True
                if self.unique:
                    break
        if not found:
            raise ProtocolError(self.link.resource, f"out of step: no reply to the marker {command!r} "
                                                    f"within {self.max_replies} replies")
        self.link.flush_input()
        self.suspect = False
        self.resyncs += 1

    def _drop_late(self) -> None:
        """Late replies already here or still arriving: dropped until ``quiet_s`` of silence."""
        self.link.flush_until_quiet(self.quiet_s)


def in_step_exchange(in_step: InStep | None, once: Callable[[], T], *,
                     mark_on: tuple[type[Exception], ...] = ()) -> T:
    """``once`` after :meth:`InStep.ensure`; a timeout or bad reply marks the link out of step
    (:func:`retry_loop` with one try)."""
    if in_step is None:
        return once()
    return retry_loop(in_step.link, once, attempts=1, retry_on=(LinkTimeout, ProtocolError, *mark_on), in_step=in_step)
