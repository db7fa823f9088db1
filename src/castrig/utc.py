"""Times as run folders hold them: ISO 8601 UTC strings, read back by every reader alike.

castrig writes ``2026-01-31T22:05:00Z``; a run.json or status.json edited by hand or written by
another tool may hold ``2026-01-31T22:05:00`` (no zone), which Python parses as a naive time that
cannot be compared with castrig's own (TypeError). A time without a zone is taken as UTC, as its
field's name says.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any


def parse_utc(value: Any) -> datetime | None:
    """An aware datetime from an ISO time string (UTC if it names no zone); None if there is none."""
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
