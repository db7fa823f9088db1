"""Bounded memos for what a twin's exchanges compute again and again from the same input.

A night on the twin sends the same few hundred setpoint commands and gets the same replies back
thousands of times (flows rounded to 0.001 slpm, replies to 0.01): formatting a command or
matching a reply's regex costs more than the exchange's other work, so each distinct input is
worked out once and looked up after. The bytes on the link are the same either way; a memo only
remembers a pure function's answers. Bounded: past :data:`MEMO_LIMIT` entries it starts again
(a real unit's noisy replies need not fill memory).
"""

from __future__ import annotations

from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: Entries a memo keeps before it is emptied and starts again.
MEMO_LIMIT = 4096

#: What a memo's ``get`` gives for an input not worked out yet (``None`` is a remembered answer).
MISSING: object = object()


def remember(memo: dict[K, V], key: K, value: V, limit: int = MEMO_LIMIT) -> V:
    """Keep ``value`` for ``key`` (emptying ``memo`` first when it holds ``limit``); returns it."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value
