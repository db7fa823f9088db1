"""Real time, for hardware."""

from __future__ import annotations

import time

from castrig.clock.base import Clock


class WallClock(Clock):
    """``time.monotonic`` and ``time.sleep``; Ctrl-C and signals interrupt a sleep as usual."""

    virtual = False

    def __init__(self) -> None:
        self._offset = time.time() - time.monotonic()

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def epoch(self) -> float:
        return self.now() + self._offset
