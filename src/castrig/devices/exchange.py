"""One query/reply exchange with the care every ASCII driver needs, written once.

Timeouts, bad frames and unparseable replies are retried a bounded number of times; after a
failure stray input is dropped so the next reply lines up with its command; a link failure is
re-raised as the device's own error, naming the device and the command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from castrig.links import Link, LinkError, LinkTimeout, ProtocolError, with_retries

T = TypeVar("T")


def resync(link: Link) -> None:
    """Drop stray input after a failure so the next reply lines up with its command."""
    try:
        link.flush_input()
    except LinkError:
        pass


def retried_exchange(
    link: Link,
    once: Callable[[], T],
    *,
    attempts: int,
    reply_error: type[Exception],
    link_error: Callable[[LinkError], Exception],
) -> T:
    """Run ``once`` (write a command, read and parse its reply) with bounded retries."""
    try:
        return with_retries(once, attempts=attempts, link=link, retry_on=(LinkTimeout, ProtocolError, reply_error))
    except LinkError as exc:
        resync(link)
        raise link_error(exc) from exc
    except reply_error:
        resync(link)
        raise
