"""A device that comes back as someone else: its identity confirmed after every reopen.

A link that lost its peer reopens itself (:meth:`castrig.links.Link.on_reopen`). Behind the same
path there may then be another device: ``castrig sim serve`` restarted gives its ptys out in
another order, a replugged USB-serial adapter gets another number. Two HMT330s without an
address, or two pumps, would answer as before and swap roles silently: the RH loop regulating on
the room sensor, the wrong pump casting. So each driver reads what identifies its device when
the rig opens and again after every reopen; another answer is :class:`WrongDevice`, a fault (not
a lost line that came back), naming both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from castrig.devices.roles import DeviceCommsError
from castrig.errors import CastrigError
from castrig.links import Link, LinkClosed, LinkError


class WrongDevice(CastrigError):
    """A link reopened to another device than the one it had: never used in its place."""


@dataclass(frozen=True)
class ReopenNote:
    """A link reopened to the same device: who, where, its identity, and how long confirming took."""

    name: str
    resource: str
    identity: str
    confirm_s: float

    def text(self) -> str:
        return (f"{self.name}: {self.resource} reopened to the same device ({self.identity}); confirming it took "
                f"{self.confirm_s:.1f} s, which the exchange that reopened the line waited for")


def watch_identity(link: Link, name: str, identify: Callable[[], str], *, now: str | None = None,
                   on_wrong: Callable[[], object] | None = None) -> str | None:
    """``identify()`` now (or ``now``: its answer, just read), and again each time ``link``
    reopens: another answer raises :class:`WrongDevice`; one that cannot be read leaves the link
    lost (tried again at its next use, as a port still gone); an error or alarm the device
    reports is raised as it came. ``None`` (nothing read) for a link that never reopens.
    ``on_wrong``: what is done to the other device first (a pump's stop: its own driver cannot
    reach it any more, and nothing it is sent may keep it going); its errors are ignored."""
    if not link.reopens:
        return None
    before = identify() if now is None else now

    def check() -> None:
        t0 = time.monotonic()
        try:
            now = identify()
        except (LinkError, DeviceCommsError) as exc:
            raise LinkClosed(link.resource, f"{name}: reopened, but its identity could not be read: {exc}") from exc
        # (an error or alarm the device reports goes up as it came: a pump's power-up reset alarm
        # says the pump lost power, and is the run's to act on, not swallowed here)
        if now != before:
            if on_wrong is not None:
                try:
                    on_wrong()
                except CastrigError:
                    pass
            raise WrongDevice(f"{name}: {link.resource} reopened to another device: it was {before}, "
                              f"it is now {now}; not used as {name} (is a port numbered otherwise after a "
                              "restart or a replug?)")
        # what the exchange that reopened the link waited for (an HMT330's listing: ~1.3 s), said
        # by whoever drives the rig (the runner logs it: its control tick was held that long)
        link.reopen_notes.append(ReopenNote(name, link.resource, now, time.monotonic() - t0))
        del link.reopen_notes[:-16]  # (a process that does not say them keeps the last few)

    link.on_reopen(check)
    return before
