"""Keep Ctrl-C, SIGTERM and SIGHUP from tearing a write in half.

Writes run inside :func:`deferred_signals`. Handlers installed through :func:`guarded` see
whether a write is in progress: if so, the signal is remembered and handled the moment the
outermost write finishes, so a handler that raises (abort now) never lands mid-commit. The
signals are also blocked in the main thread meanwhile, for handlers not installed through here.
"""

from __future__ import annotations

import _signal
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
#: signal.pthread_sigmask without its wrapper, which turns every mask it returns into a set of
#: Signals members (a third of a store write's Python time); the mask is only handed back to it
_sigmask = _signal.pthread_sigmask
_depth = 0
_pending: list[tuple[Callable[[int, FrameType | None], Any], int]] = []

Handler = Callable[[int, FrameType | None], Any]


class deferred_signals:  # noqa: N801 - used as ``with deferred_signals():``, as the function it was
    """``with deferred_signals():`` — a write that Ctrl-C, SIGTERM and SIGHUP cannot tear.

    Outside the main thread it does nothing (signals are handled there). Nested uses are
    counted; the signals that came meanwhile are handled when the outermost one ends. A class
    rather than a generator context manager: every store write goes through it.
    """

    __slots__ = ("_old",)

    def __enter__(self) -> None:
        global _depth
        if threading.get_ident() != threading.main_thread().ident:
            self._old = None
            return
        self._old = _sigmask(signal.SIG_BLOCK, _SIGNALS)
        _depth += 1

    def __exit__(self, *exc: object) -> None:
        global _depth
        old = self._old
        if old is None:
            return
        _depth -= 1
        _sigmask(signal.SIG_SETMASK, old)
        if _depth == 0:
            _run_pending()


def _run_pending() -> None:
    while _pending:
        handler, signum = _pending.pop(0)
        handler(signum, None)


def guarded(handler: Handler) -> Handler:
    """Wrap a signal handler so it never runs inside a store write."""

    def wrapper(signum: int, frame: FrameType | None) -> Any:
        if _depth > 0:
            _pending.append((handler, signum))
            return None
        return handler(signum, frame)

    return wrapper
