"""What every device emulator is: bytes in at a time, bytes out when they are ready.

Emulators know nothing of links or threads. The in-process :class:`~castrig.links.SimLink`
calls them directly (virtual time), and ``castrig sim serve`` pumps them from a pty or socket
(wall time). Physics is read from the shared world at the time passed in, so the same calls at
the same times give the same bytes.
"""

from __future__ import annotations

import random
from abc import ABC, abstractmethod
from collections import deque
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Protocol

from castrig.clock.virtual import VirtualClock


class ClockLike(Protocol):
    """What :meth:`Emulator.read_some` needs of a clock (see :class:`castrig.clock.Clock`)."""

    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


#: Faults every emulator understands; devices add their own (``stall``, ``stuck`` ...).
#: ``truncate`` cuts every reply short (a UART overrun, a cable with a loose pin).
GENERIC_FAULTS = frozenset({"no_reply", "garbage", "drop", "truncate"})


@dataclass
class FaultState:
    """Injected faults, by name. ``drop`` makes the link report the peer gone."""

    active: set[str] = field(default_factory=set)

    def __contains__(self, name: str) -> bool:
        return name in self.active


class Emulator(ABC):
    """Base of all device emulators.

    Subclasses implement :meth:`receive_bytes` and call :meth:`send` to queue output. Output
    becomes readable ``reply_delay_s`` after it is queued (the device's turnaround plus the
    bytes' time on the wire at the configured baud rate).
    """

    #: Faults this device supports beyond the generic ones.
    device_faults: frozenset[str] = frozenset()

    def __init__(self, name: str, *, baudrate: int | None = None, turnaround_s: float = 0.002, seed: int = 0):
        self.name = name
        self.baudrate = baudrate
        self.turnaround_s = turnaround_s
        self.faults = FaultState()
        #: False while the ``drop`` fault is on (kept by inject/clear: the links ask at every read).
        self.connected = True
        #: Queued output as (t_ready, data) pairs, oldest first.
        self._out: deque[tuple[float, bytes]] = deque()
        self._garbage_rng = random.Random(seed)
        self._fault_watchers: list[Callable[[], None]] = []

    # -- faults --------------------------------------------------------------------------
    def inject(self, fault: str) -> None:
        """Switch a fault on (``no_reply``, ``garbage``, ``drop`` or a device fault)."""
        if fault not in GENERIC_FAULTS | self.device_faults:
            allowed = ", ".join(sorted(GENERIC_FAULTS | self.device_faults))
            raise ValueError(f"{self.name}: unknown fault {fault!r} (allowed: {allowed})")
        self.faults.active.add(fault)
        self.connected = "drop" not in self.faults.active
        self.on_fault(fault, True)
        self._faults_changed()

    def clear(self, fault: str | None = None) -> None:
        """Switch one fault (or all) off; clearing ``drop`` is the cable plugged back in."""
        names = list(self.faults.active) if fault is None else [fault]
        for name in names:
            self.faults.active.discard(name)
            self.connected = "drop" not in self.faults.active
            self.on_fault(name, False)
        self._faults_changed()

    def watch_faults(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (from the thread that did it) after every :meth:`inject` and
        :meth:`clear`: a fault changes what the device sends and when (a ``drop``, a stall
        alarm), which whoever waits for its next output must look at again."""
        self._fault_watchers.append(callback)

    def unwatch_faults(self, callback: Callable[[], None]) -> None:
        if callback in self._fault_watchers:
            self._fault_watchers.remove(callback)

    def _faults_changed(self) -> None:
        for callback in list(self._fault_watchers):
            callback()

    def on_fault(self, fault: str, active: bool) -> None:
        """Hook for device faults that change state (a stall alarm, a stuck reading)."""

    def corrupt(self, data: bytes) -> bytes:
        """What an active ``garbage`` or ``truncate`` fault makes of outgoing ``data``."""
        if not self.faults.active:
            return data
        if "garbage" in self.faults:
            data = bytes(self._garbage_rng.randrange(256) for _ in range(max(3, len(data))))
        if "truncate" in self.faults:
            data = data[: len(data) // 2]
        return data

    # -- byte interface ------------------------------------------------------------------
    def receive(self, data: bytes, t: float) -> None:
        """Bytes from the host arrived at time ``t``."""
        if not self.connected:
            return
        self.receive_bytes(data, t)

    @abstractmethod
    def receive_bytes(self, data: bytes, t: float) -> None: ...

    def transmit(self, t: float) -> bytes:
        """Everything the device has sent by time ``t``."""
        self.poll(t)
        q = self._out
        if not q or q[0][0] > t:
            return b""
        out = bytearray()
        while q and q[0][0] <= t:
            out += q.popleft()[1]
        if not self.connected:
            return b""
        return bytes(out)

    def next_output_time(self, t: float) -> float | None:
        """When the next byte will be ready (``None``: nothing is coming unless asked)."""
        self.poll(t)
        if self._out:
            return self._out[0][0]
        return self.next_unsolicited_time(t)

    def transmit_or_next(self, t: float) -> tuple[bytes, float | None]:
        """``transmit(t)`` and, when that gives nothing, ``next_output_time(t)``, with one poll.

        The in-process link asks both at once at every wake-up; a second ``poll(t)`` at the
        same ``t`` has nothing left to produce (everything due by ``t`` was produced by the
        first), so it is skipped. The bytes and times are those of the two calls.
        """
        self.poll(t)
        q = self._out
        if q and q[0][0] <= t:
            out = q.popleft()[1]
            if q and q[0][0] <= t:
                joined = bytearray(out)
                while q and q[0][0] <= t:
                    joined += q.popleft()[1]
                out = bytes(joined)
            if out and self.connected:
                return out, None
        if q:
            return b"", q[0][0]
        return b"", self.next_unsolicited_time(t)

    @property
    def link_shortcuts(self) -> tuple[bool, bool]:
        """What the in-process link (:class:`~castrig.links.SimLink`) may call directly: whether
        ``receive`` is this class's (it only checks ``connected``, which the link has, before
        ``receive_bytes``), and whether ``transmit_or_next`` and ``read_some`` are (``read_some``
        is the link's wait loop over ``transmit_or_next``). A device that overrides them is
        called through them. Asked here, so that the link need not know the emulator classes."""
        cls = type(self)
        return (cls.receive is Emulator.receive,
                cls.transmit_or_next is Emulator.transmit_or_next and cls.read_some is Emulator.read_some)

    def read_some(self, clock: "ClockLike", deadline_s: float) -> bytes | None:
        """The in-process link's wait for output (:meth:`SimLink._read_some` over
        :meth:`transmit_or_next`), in one frame: at each wake-up what is due is taken, else the
        clock sleeps to the next output or the deadline. ``None``: the peer is gone (the link
        raises). The polls, the bytes taken and the sleeps are those of that loop. (Its wake-up
        time is that loop's lines again, inlined: one function shared by both cost 4 % of the
        overnight run's CPU, medians of 5.)"""
        q = self._out
        # a VirtualClock's time read as its attribute (two reads a call; see VirtualClock)
        vclock = clock if clock.__class__ is VirtualClock else None
        while True:
            if not self.connected:
                return None
            now = vclock._t if vclock is not None else clock.now()
            self.poll(now)
            if q and q[0][0] <= now:
                out = q.popleft()[1]
                if q and q[0][0] <= now:
                    joined = bytearray(out)
                    while q and q[0][0] <= now:
                        joined += q.popleft()[1]
                    out = bytes(joined)
                if out and self.connected:
                    return out
            if now >= deadline_s:
                return b""
            nxt = q[0][0] if q else self.next_unsolicited_time(now)
            if nxt is None:
                target = deadline_s
            else:
                target = now if now > nxt else nxt
                if deadline_s < target:
                    target = deadline_s
            if target <= now:
                target = min(now + 1e-6, deadline_s)
            clock.sleep_until(target)

    def reset_io(self, t: float) -> None:
        """A new host session on the line (a TCP client connected): the device's input and
        output buffers start clean, its state (running, volumes, alarms) stays.

        A real instrument has no memory of a TCP session: what it sent while nobody listened,
        and a command cut short by the last client's disconnect, are gone. Output due by ``t``
        (a watchdog alarm, a streamed line) is produced first, so it is dropped too.
        """
        self.poll(t)
        self._out.clear()
        self.reset_input()

    def reset_input(self) -> None:
        """Hook: forget a partly received command (the line parser's state)."""

    def poll(self, t: float) -> None:
        """Hook: produce time-driven output due by ``t`` (streaming, alarms, watchdogs)."""

    def next_unsolicited_time(self, t: float) -> float | None:
        """Hook: when time-driven output will next be produced."""
        return None

    def send(self, data: bytes, t: float) -> None:
        """Queue ``data`` as the device's output, subject to injected faults."""
        active = self.faults.active
        if active:
            if "no_reply" in active or "drop" in active:
                return
            data = self.corrupt(data)
        wire_s = 0.0 if not self.baudrate else len(data) * 10.0 / self.baudrate
        self._out.append((t + self.turnaround_s + wire_s, data))


@lru_cache(maxsize=None)
def _splitter(terminators: tuple[bytes, ...]) -> "re.Pattern[bytes]":
    return re.compile(b"|".join(re.escape(x) for x in terminators))


class LineEmulator(Emulator):
    """An emulator for protocols made of terminated command lines (most ASCII devices)."""

    terminators: tuple[bytes, ...] = (b"\r",)
    max_line = 256

    def __init__(self, name: str, **kwargs: object):
        super().__init__(name, **kwargs)  # type: ignore[arg-type]
        self._line = bytearray()

    def reset_input(self) -> None:
        self._line.clear()

    def receive_bytes(self, data: bytes, t: float) -> None:
        # Whole runs of bytes at a time (no per-byte Python work): split at the terminators,
        # exactly as a byte-by-byte parser would.
        terminators = self.terminators
        if len(terminators) == 1:
            term = terminators[0]
            n = len(data) - len(term)
            if term and not self._line and 0 <= n <= self.max_line and data.find(term) == n:
                # The usual command: one whole line and its terminator, nothing buffered (what
                # the loop below does with it, without splitting)
                line = data[:n]  # (bytes already when the link sent bytes: no copy made)
                self.handle_line(line if line.__class__ is bytes else bytes(line), t)
                return
            parts = bytes(data).split(term)
        else:
            parts = _splitter(terminators).split(bytes(data))
        for part in parts[:-1]:
            if not self._line and len(part) <= self.max_line:
                # The usual command: one whole line, nothing buffered before it.
                self.handle_line(part, t)
                continue
            self.add_to_line(part)
            line = bytes(self._line)
            self._line.clear()
            self.handle_line(line, t)
        self.add_to_line(parts[-1])

    def add_to_line(self, chunk: bytes) -> None:
        """Append bytes holding no terminator; a line longer than ``max_line`` is dropped each
        time it overflows (byte by byte: the line restarts after every ``max_line + 1`` bytes)."""
        if not chunk:
            return
        line = self._line
        line += chunk
        n = len(line)
        if n > self.max_line:
            keep = n % (self.max_line + 1)
            del line[: n - keep]

    @abstractmethod
    def handle_line(self, line: bytes, t: float) -> None:
        """One complete command line arrived (terminator stripped)."""
