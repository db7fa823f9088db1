"""Ctrl-C (SIGINT) held by a process that drives the rig while it must not be cut short (a run
set up or closed, a rig made safe): :class:`SigintHold`, which the holds of ``castrig run`` and
``resume`` (recipe/ctrl_c_holds.py) and of ``castrig tune rh`` say their own words in. Light to
import: every command loads the commissioning commands that use it."""

from __future__ import annotations

import signal
import threading
from typing import Any


#: ``take``'s default: :meth:`SigintHold.restore` puts back the handler the hold replaced.
_REPLACED = object()


class SigintHold:
    """SIGINT taken over from the handler in place (on the main thread only: elsewhere Python has
    none to replace) until :meth:`restore` puts that one back; :meth:`_on_int` says what a Ctrl-C
    does meanwhile. ``now=False``: taken later (:meth:`take`)."""

    def __init__(self, *, now: bool = True) -> None:
        self.asked = False
        self._old: Any = None
        self._taken = False
        if now:
            self.take()

    def take(self, restores: Any = _REPLACED) -> bool:
        """SIGINT to this hold from now on, if it is not already (main thread only): whether it is.
        ``restores``: the handler :meth:`restore` puts back, where the one replaced is a hold
        handing SIGINT on (default: the one replaced)."""
        if self._taken:
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        replaced = signal.signal(signal.SIGINT, self._on_int)
        self._old, self._taken = (replaced if restores is _REPLACED else restores), True
        return True

    def hand_to(self, other: "SigintHold") -> None:
        """SIGINT straight on to ``other`` (never Python's own handler between), which puts back
        what this hold replaced; if this hold is not in, ``other`` takes it from the one that is."""
        if self.held:
            other.take(restores=self.release())
        else:
            other.take()

    def _on_int(self, signum: int, frame: Any) -> None:
        self.asked = True

    @property
    def held(self) -> bool:
        return self._old is not None

    def release(self) -> Any:
        """The handler the hold replaced, no longer to be put back by :meth:`restore`."""
        old, self._old = self._old, None
        return old

    def restore(self) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self.release())
