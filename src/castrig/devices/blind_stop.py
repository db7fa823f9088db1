"""A best-effort stop of a pump that answered on its line and then failed as it was opened,
or whose stop failed mid-run (:meth:`NE1000Pump.best_effort_stop`, in every safe state).

``castrig safe`` met such a pump (a reply, then silence or garbage; a version reply it did not
know) and only said "reached but not verified safe (it may still be running)": nothing was
tried, while the one command that matters is harmless. What is sent here, and nothing else:
``STP`` -- to an NE-1000 already stopped a no-op, to a running one a pause, a second one a stop
(:meth:`NE1000Pump.stop`; sent twice when no reply comes) -- and then the status query, both as
safe-mode packets, which the pump takes in basic and in safe mode alike (a pump left armed by a
killed run ignores a basic line). The device's identity was not confirmed, but the profile says
that line and address are that pump, and every open already sends it a ``SAF0`` packet before
anything is read: nothing that sets a rate, a volume, a diameter or starts a program is sent
blind. On a daisy chain the packets carry the pump's address: the others ignore them.
"""

from __future__ import annotations

from dataclasses import dataclass

from castrig.clock import Clock
from castrig.devices.roles import PumpState
from castrig.errors import CastrigError
from castrig.links import Link, LinkTimeout, ProtocolError


@dataclass
class BlindStop:
    """What came back: ``stopped`` (read back stopped after the STP), else why not."""

    sent: bool
    stopped: bool
    detail: str


def stop_unconfirmed_ne1000(link: Link, *, name: str, address: int | None, clock: Clock) -> BlindStop:
    """Send ``STP`` (up to the driver's four, until the pump reports stopped) over ``link`` to
    the NE-1000 at ``address``, then read its state back once. Never raises."""
    from castrig.devices.ne1000 import NE1000Pump, PumpError

    pump = NE1000Pump(link, name=name, address=address, clock=clock, retries=1)
    pump.safe = True  # framed as packets: taken in basic and safe mode alike
    try:
        link.flush_input()  # (what the failed open left unread is no reply to this STP)
    except (CastrigError, OSError):
        pass
    try:
        pump.stop()
    except (CastrigError, OSError) as exc:
        # (a time-out, garbage or the pump's own error: it went out; a lost line: perhaps not)
        sent = isinstance(exc, (LinkTimeout, ProtocolError, PumpError))
        if not sent:
            return BlindStop(False, False, f"STP perhaps not sent ({exc})")
        if isinstance(exc, PumpError):
            return BlindStop(True, False, f"STP sent, no stopped state came back ({exc})")
        # no reply read: the first STP of a running pump only pauses it (a keypad RUN goes on
        # with the dispense); a second stops it, and to a stopped pump it is a no-op
        again = _send_stp(link, address)
        return BlindStop(True, False, f"STP sent{' twice' if again else ''}, no stopped state came back ({exc})")
    try:
        state = pump.state()
    except (CastrigError, OSError) as exc:
        return BlindStop(True, False, f"STP answered stopped, its state not read back ({exc})")
    if state is not PumpState.STOPPED:
        return BlindStop(True, False, f"STP answered stopped, but it read back {state.name.lower()}")
    return BlindStop(True, True, "STP answered and read back stopped")


def _send_stp(link: Link, address: int | None) -> bool:
    """One more ``STP`` packet, its reply not waited for (the line gave none to the first)."""
    from castrig.devices.ne1000 import safe_packet

    try:
        link.write(safe_packet(f"{'' if address is None else address}STP".encode("ascii")))
        return True
    except (CastrigError, OSError):
        return False
