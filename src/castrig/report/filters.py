"""Which runs a list shows: the filters of ``castrig runs`` and of ``castrig serve``'s run list.

One place, so the two answer alike: a bad filter is BadInput naming the field and what it
allows (exit 2 on the command line, 400 from the server), never an empty list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timezone

from castrig.errors import BadInput
from castrig.utc import parse_utc

#: The outcomes a run can end with (the catalog's), as ``--outcome`` takes them.
OUTCOMES = ("running", "completed", "aborted", "faulted", "interrupted", "not_resumable", "crashed")


def parse_since(value: str | None) -> datetime | None:
    """``2026-01-31`` or an ISO date-time (UTC if no zone) → an aware datetime; BadInput otherwise."""
    if value is None or value == "":
        return None
    when = parse_utc(value)
    if when is None:
        try:
            d = date.fromisoformat(value)
        except ValueError:
            raise BadInput(f"--since {value!r}: expected a date YYYY-MM-DD or an ISO date-time", field="--since") from None
        when = datetime(d.year, d.month, d.day, tzinfo=timezone.utc)
    return when


def run_filter(since: str | datetime | None = None, grade: str | None = None, outcome: str | None = None, *,
               outcomes: Sequence[str] = OUTCOMES) -> Callable[[str | None, Sequence[str], str], bool]:
    """The ``runs`` filters checked (BadInput naming the field and what it allows), as a test of
    one run's ``(started_utc, grades, outcome)``: started at or after ``since``, met ``grade``,
    ended ``outcome`` (one of ``outcomes``). ``castrig runs`` and ``castrig serve`` share it."""
    from castrig.analysis.spec import GRADE_NAMES as grades

    when = parse_since(since) if isinstance(since, str) or since is None else since
    if outcome is not None and outcome not in outcomes:
        raise BadInput(f"--outcome {outcome!r}: one of {', '.join(outcomes)}", field="--outcome")
    if grade is not None and grade not in grades:
        raise BadInput(f"--grade {grade!r}: one of {', '.join(grades)}", field="--grade")

    def keep(started_utc: str | None, met: Sequence[str], ended: str) -> bool:
        if when is not None:
            started = parse_utc(started_utc)
            if started is None or started < when:
                return False
        return (grade is None or grade in met) and (outcome is None or ended == outcome)

    return keep
