"""Virtual time: sleeping advances a counter, so hours of process pass in microseconds."""

from __future__ import annotations

from castrig.clock.base import Clock

#: 2026-01-01T00:00:00Z, the default origin: virtual runs are reproducible to the byte.
DEFAULT_EPOCH = 1_767_225_600.0


class VirtualClock(Clock):
    """A clock that never sleeps for real.

    Time only moves when someone sleeps; there is no thread and no randomness, so the same
    sequence of calls always gives the same times. Simulated devices read the same clock and
    integrate their physics up to ``now()`` lazily, which keeps the twin deterministic.

    The in-process link's loops (:class:`~castrig.links.SimLink`,
    :meth:`castrig.sim.emulator.Emulator.read_some`) read ``_t`` itself when the clock is exactly
    this class (not a subclass, which may count or shift its time): ~20 times a control tick,
    and a call to ``now()`` costs ~300 machine instructions more than the attribute.
    """

    virtual = True

    def __init__(self, start: float = 0.0, epoch_at_start: float = DEFAULT_EPOCH) -> None:
        self._t = float(start)
        self._epoch0 = epoch_at_start - float(start)

    def now(self) -> float:
        return self._t

    def sleep(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"cannot sleep a negative time ({seconds} s)")
        self._t += seconds

    def sleep_until(self, t: float) -> None:
        if t > self._t:
            self._t = float(t)

    def epoch(self) -> float:
        return self._epoch0 + self._t
