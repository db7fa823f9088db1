"""The one small interface every clock offers."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable


class Clock(ABC):
    """Monotonic seconds plus a way to wait.

    ``now()`` is monotonic seconds since an arbitrary origin; ``epoch()`` maps it to Unix time for
    timestamps that people read (run start/end).
    """

    #: True when waiting costs no real time (the runner then skips real-time niceties).
    virtual: bool = False

    @abstractmethod
    def now(self) -> float:
        """Monotonic time in seconds."""

    @abstractmethod
    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (never negative)."""

    def sleep_until(self, t: float) -> None:
        """Wait until ``now() >= t``; returns at once if that moment has passed."""
        remaining = t - self.now()
        if remaining > 0:
            self.sleep(remaining)

    @abstractmethod
    def epoch(self) -> float:
        """Unix time corresponding to ``now()``."""


def wait_until(
    clock: Clock,
    condition: Callable[[], bool],
    *,
    timeout_s: float,
    poll_s: float,
) -> bool:
    """Poll ``condition`` every ``poll_s`` until it holds or ``timeout_s`` has passed.

    Returns whether the condition held. Used where the runner waits on several things at once:
    each poll is a point where samples are taken and interlocks are checked by the caller's
    condition function.
    """
    if poll_s <= 0:
        raise ValueError("poll_s must be positive")
    deadline = clock.now() + timeout_s
    while True:
        if condition():
            return True
        now = clock.now()
        if now >= deadline:
            return False
        clock.sleep_until(min(deadline, now + poll_s))
