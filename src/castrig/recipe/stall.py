"""Stretches when the whole process stood still (SIGSTOP, a debugger, a suspended computer).

The runner's ``control_gap`` is measured from the end of the tick before, so that a tick kept
long by a slow device is not taken for one. But a process stopped *during* a tick's exchanges
(on real links a tick is ~0.3 s of a 0.5 s period: half the time) came back to finish that tick
and tick again at once: 5.6 s stopped, nothing recorded. A thread that only notes the time every
:data:`BEAT_S` tells the two apart: a slow device holds the runner's thread, not this one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: how often the watch notes the time (s): a stand-still is seen to within this
BEAT_S = 0.25


class StallWatch:
    """A daemon thread noting ``now()`` every :data:`BEAT_S`; a note far later than that means
    the process stood still in between. :meth:`take` hands the stretches seen to the runner."""

    def __init__(self, now: Callable[[], float], *, beat_s: float = BEAT_S, floor_s: float = 1.0) -> None:
        self._now = now
        self.beat_s = beat_s
        #: stretches between two notes longer than this (s) are kept (a loaded machine's late
        #: wake-ups are not)
        self.floor_s = floor_s
        self._stalls: list[tuple[float, float]] = []  # (from, to): the notes either side
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="castrig-stall-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        last = self._now()
        while not self._stop.wait(self.beat_s):
            t = self._now()
            if t - last > self.floor_s:
                with self._lock:
                    self._stalls.append((last, t))
            last = t

    def take(self, since: float) -> float:
        """The longest stand-still begun at or after ``since`` (s; 0.0 if none), an upper bound
        (by a beat); every stretch seen so far is dropped (those begun before ``since`` were
        counted already, as the gap between two ticks)."""
        with self._lock:
            stalls, self._stalls = self._stalls, []
        return max((b - a for a, b in stalls if a >= since), default=0.0)
