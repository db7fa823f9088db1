"""Keep Ctrl-C, SIGTERM and SIGHUP from tearing a write in half.

Writes run inside :func:`deferred_signals`. Handlers installed through :func:`guarded` see
whether a write is in progress: if so, the signal is remembered and handled the moment the
outermost write finishes, so a handler that raises (abort now) never lands mid-commit. The
signals are also blocked in the main thread meanwhile, for handlers not installed through here.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
_depth = 0
_pending: list[tuple[Callable[[int, FrameType | None], Any], int]] = []

Handler = Callable[[int, FrameType | None], Any]


@contextmanager
def deferred_signals() -> Iterator[None]:
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
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
