"""Real time, for hardware."""

from __future__ import annotations

import time

from castrig.clock.base import Clock

#: CLOCK_BOOTTIME (Linux) goes on while the computer is suspended, as the membrane goes on drying;
#: CLOCK_MONOTONIC stands still, so a 2 h evaporation interrupted by a suspend lasted 2 h + the
#: suspend, and the record showed no gap (the runner records one: ``control_gap``)
_CLOCK_ID = getattr(time, "CLOCK_BOOTTIME", time.CLOCK_MONOTONIC)


def _now() -> float:
    return time.clock_gettime(_CLOCK_ID)


class WallClock(Clock):
    """Real time that counts a suspend (CLOCK_BOOTTIME where there is one), and ``time.sleep``;
    Ctrl-C and signals interrupt a sleep as usual."""

    virtual = False

    def __init__(self) -> None:
        self._offset = time.time() - _now()

    def now(self) -> float:
        return _now()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def epoch(self) -> float:
        return self.now() + self._offset
