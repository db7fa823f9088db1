"""The in-process link to an emulator: no threads, no OS, time from the clock.

Reading waits on the clock until the emulator says its reply is ready, so with a virtual clock a
query costs the device's turnaround in virtual time and nothing in real time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

from castrig.clock import Clock, VirtualClock
from castrig.links.base import Link
from castrig.links.errors import LinkClosed, LinkTimeout

T = TypeVar("T")


class EmulatorPort(Protocol):
    """What a :class:`SimLink` needs of an emulator (see :class:`castrig.sim.emulator.Emulator`)."""

    name: str

    @property
    def connected(self) -> bool: ...

    def receive(self, data: bytes, t: float) -> None: ...

    def transmit(self, t: float) -> bytes: ...

    def next_output_time(self, t: float) -> float | None: ...


class SimLink(Link):
    def __init__(self, emulator: EmulatorPort, clock: Clock, *, timeout_s: float = 1.0, resource: str | None = None):
        super().__init__(resource or f"sim://{emulator.name}", timeout_s)
        self.emulator = emulator
        self.clock = clock
        # One call per wake-up when the emulator offers it (see Emulator.transmit_or_next).
        self._transmit_or_next = getattr(emulator, "transmit_or_next", None)
        # What the emulator says may be called directly (Emulator.link_shortcuts: receive_bytes
        # for receive, read_some for this class's wait loop); the link knows no emulator class
        self._direct, self._emulator_reads = getattr(emulator, "link_shortcuts", (False, False))
        # A VirtualClock's time is read as its attribute in the usual exchange's steps (see
        # VirtualClock; a call to now() costs more than the step's other work)
        self._vclock = clock if clock.__class__ is VirtualClock else None

    def _now(self) -> float:
        return self.clock.now()

    def _write(self, data: bytes) -> None:
        emulator = self.emulator
        if not emulator.connected:
            raise LinkClosed(self.resource, "peer disconnected")
        emulator.receive(data, self.clock.now())

    def _read_some(self, deadline_s: float) -> bytes:
        if self._emulator_reads:
            data = self.emulator.read_some(self.clock, deadline_s)
            if data is None:
                raise LinkClosed(self.resource, "peer disconnected")
            return data
        emulator, clock, both = self.emulator, self.clock, self._transmit_or_next
        while True:
            if not emulator.connected:
                raise LinkClosed(self.resource, "peer disconnected")
            now = clock.now()
            if both is not None:
                data, nxt = both(now)
                if data:
                    return data
                if now >= deadline_s:
                    return b""
            else:
                data = emulator.transmit(now)
                if data:
                    return data
                if now >= deadline_s:
                    return b""
                nxt = emulator.next_output_time(now)
            # min(max(nxt, now), deadline_s) as two comparisons (this runs at every wake-up)
            if nxt is None:
                target = deadline_s
            else:
                target = now if now > nxt else nxt
                if deadline_s < target:
                    target = deadline_s
            if target <= now:
                # A reply due "now" that transmit() did not hand over: avoid spinning.
                target = min(now + 1e-6, deadline_s)
            clock.sleep_until(target)

    # -- the usual exchange, in fewer calls ----------------------------------------------------
    # Link.write/read_frame/read_available for the usual case (nothing buffered, the reply in
    # one chunk; Link.read_until has that fast path itself) without the general loops and the
    # extra layer of calls: every twin exchange goes through them, and the layers cost more
    # than the work. The bytes, the clock's sleeps and the errors are those of the general
    # versions (tests/sim/test_simlink_fast_paths.py); anything else goes to the general loop,
    # deadline kept.
    def write(self, data: bytes) -> None:
        if self._closed:
            self._check_open()
        emulator = self.emulator
        if not emulator.connected:
            raise LinkClosed(self.resource, "peer disconnected")
        if data.__class__ is not bytes:  # (bytes(data) of bytes is data itself, at a call's cost)
            data = bytes(data)
        vclock = self._vclock
        now = vclock._t if vclock is not None else self.clock.now()
        if self._direct:
            emulator.receive_bytes(data, now)
        else:
            emulator.receive(data, now)

    def read_until(self, terminator: bytes, *, timeout_s: float | None = None, max_bytes: int = 65536) -> bytes:
        if self._rx or self._closed or not terminator:
            return super().read_until(terminator, timeout_s=timeout_s, max_bytes=max_bytes)
        # Link.read_until's usual reply (nothing buffered, one whole line in the first chunk),
        # the deadline taken from the clock as _now() does
        vclock = self._vclock
        deadline = (vclock._t if vclock is not None else self.clock.now()) + (self.timeout_s if timeout_s is None else timeout_s)
        chunk = self._read_some(deadline)
        if not chunk:
            raise LinkTimeout(self.resource, f"no {terminator!r} within {self._timeout_text(timeout_s)} (no reply)")
        end = len(chunk) - len(terminator)
        if end >= 0 and chunk.find(terminator) == end:  # (its first terminator ends it: it ends with one)
            return chunk if chunk.__class__ is bytes else bytes(chunk)
        self._rx += chunk
        return self._read_until_buffered(terminator, deadline, timeout_s, max_bytes)

    def read_frame(
        self,
        take: Callable[[bytes], tuple[T | None, int]],
        *,
        timeout_s: float | None = None,
        what: str = "whole frame",
    ) -> T:
        if self._rx or self._closed:
            return super().read_frame(take, timeout_s=timeout_s, what=what)
        deadline = self.clock.now() + (self.timeout_s if timeout_s is None else timeout_s)
        chunk = self._read_some(deadline)
        if not chunk:
            raise LinkTimeout(self.resource, f"no {what} within {self._timeout_text(timeout_s)} (no reply)")
        # Link.read_frame's loop on a buffer holding just this chunk, without copying it there
        frame, n = take(chunk if chunk.__class__ is bytes else bytes(chunk))
        rest = chunk[n:] if n else chunk
        if rest:
            self._rx += rest
        if frame is not None:
            return frame
        return self._read_frame_buffered(take, deadline, timeout_s, what, read_first=not n)

    def input_waiting(self) -> bytes:
        # Link.input_waiting in one look at what is due now (read_available(0)'s): before every
        # command of most drivers
        if self._rx or self._closed:
            return super().input_waiting()
        emulator = self.emulator
        if not emulator.connected:
            raise LinkClosed(self.resource, "peer disconnected")
        vclock = self._vclock
        data = emulator.transmit(vclock._t if vclock is not None else self.clock.now())
        if not data:
            return b""  # (what bytes(data) of an empty answer is)
        self._rx += data
        return data if data.__class__ is bytes else bytes(data)

    def read_available(self, *, wait_s: float = 0.0) -> bytes:
        if self._rx or self._closed:
            return super().read_available(wait_s=wait_s)
        now = self.clock.now()
        if wait_s <= 0.0:
            # _read_some(now): one look at what is due by now, its deadline already come (the
            # time of the next output, which transmit_or_next would work out too, is not needed);
            # a driver asks this before every command (NE-1000: unsolicited alarms)
            emulator = self.emulator
            if not emulator.connected:
                raise LinkClosed(self.resource, "peer disconnected")
            data = emulator.transmit(now)
            return data if data.__class__ is bytes else bytes(data)
        return bytes(self._read_some(now + wait_s))
