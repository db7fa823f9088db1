"""Whole-number settings from ``CASTRIG_*`` environment variables, checked as inputs are: a value
that is no whole number in range is :class:`~castrig.errors.BadInput` naming the variable and
what is allowed (exit 2), never a traceback at import or a silent fallback to the default."""

from __future__ import annotations

import os

from castrig.errors import BadInput

#: name -> (default, least allowed, what it sets); checked by every command as it starts
WHOLE_NUMBERS: dict[str, tuple[int, int, str]] = {
    "CASTRIG_ANALYSIS_THREADS": (2, 0, "worker threads of the analysis; 0 runs it in the calling thread"),
    "CASTRIG_EXPLORE_HEARTBEAT_S": (5, 1, "seconds between an explore worker's heartbeats"),
}


def whole_number(name: str) -> int:
    """``$name`` as a whole number (its default when unset or empty)."""
    default, least, what = WHOLE_NUMBERS[name]
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = None
    if value is None or value < least:
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise BadInput(f"{name} = {shown!r}: allowed a whole number ≥ {least} ({what}); unset: {default}", field=name)
    return value


def check_environment() -> None:
    """Every whole-number setting, before a command does anything."""
    for name in WHOLE_NUMBERS:
        whole_number(name)
