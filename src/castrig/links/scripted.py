"""A link that plays a script of exact bytes, for protocol tests.

Modelled on PyMeasure's ``expected_protocol``: the test lists ordered ``(written, reply)``
pairs; the driver must write exactly those bytes in that order, a read without a reply pending
fails, and every pair must be used by the end. ``written=None`` marks output the device sends
unprompted (streamed readings, safe-mode alarms); ``reply=None`` a command with no answer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Callable, TypeVar

from castrig.clock import VirtualClock
from castrig.links.base import Link

D = TypeVar("D")

Pair = tuple[bytes | None, bytes | None]


class ScriptMismatch(AssertionError):
    """The driver did something other than what the script says."""


class ScriptedLink(Link):
    def __init__(self, pairs: Sequence[Pair], *, resource: str = "scripted", timeout_s: float = 1.0):
        super().__init__(resource, timeout_s)
        self.clock = VirtualClock()
        self._pairs = list(pairs)
        self._i = 0
        self._written = bytearray()
        self._pending = bytearray()
        self._advance_unsolicited()

    def _now(self) -> float:
        return self.clock.now()

    def _advance_unsolicited(self) -> None:
        while self._i < len(self._pairs) and self._pairs[self._i][0] is None:
            self._pending += self._pairs[self._i][1] or b""
            self._i += 1

    def _write(self, data: bytes) -> None:
        self._written += data
        if self._i >= len(self._pairs):
            raise ScriptMismatch(f"unexpected write {bytes(self._written)!r}: the script is used up")
        expected = self._pairs[self._i][0]
        assert expected is not None
        if not expected.startswith(bytes(self._written)):
            raise ScriptMismatch(f"wrote {bytes(self._written)!r}, script expects {expected!r} (pair {self._i})")
        if bytes(self._written) == expected:
            self._written.clear()
            self._pending += self._pairs[self._i][1] or b""
            self._i += 1
            self._advance_unsolicited()

    def _read_some(self, deadline_s: float) -> bytes:
        if self._pending:
            out = bytes(self._pending)
            self._pending.clear()
            return out
        self.clock.sleep_until(deadline_s)
        return b""

    def assert_done(self) -> None:
        if self._written:
            raise ScriptMismatch(f"partial write left over: {bytes(self._written)!r}")
        if self._i < len(self._pairs):
            raise ScriptMismatch(f"script not used up: pairs {self._i}.. {self._pairs[self._i:]!r} remain")
        if self._pending or self._rx:
            raise ScriptMismatch(f"reply bytes never read: {bytes(self._rx + self._pending)!r}")


@contextmanager
def expected_protocol(factory: Callable[..., D], pairs: Sequence[Pair], **kwargs: Any) -> Iterator[D]:
    """Build a driver on a :class:`ScriptedLink` and check the whole script was played.

    ``factory(link, **kwargs)`` must return the driver (a driver class taking the link first
    fits). Timeouts pass in virtual time, so a test of a missing reply is instant.
    """
    link = ScriptedLink(pairs)
    driver = factory(link, **kwargs)
    yield driver
    link.assert_done()
