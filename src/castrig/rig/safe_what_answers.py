"""Make safe every device of a rig that answers, when the whole rig cannot be opened.

One dead pump's port (its cable out, a pty gone) kept ``castrig safe`` and ``castrig resume``
from opening the rig, and so from making anything safe: the wet air a killed run left on went
on flowing. Here the rig is opened ``partial`` (each device that answers), a pump that answered
and then failed to open is sent :mod:`castrig.devices.blind_stop`'s best-effort STP, the rest are
brought to :func:`castrig.control.safety.make_rig_safe`'s safe state, and the devices that could
not be reached are named in the same report (never verified safe). The rig is closed before
this returns. ``castrig safe`` says it all; ``castrig resume`` says it and records it in the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from castrig.errors import Busy, CastrigError, RigUnreachable


@dataclass
class WhatAnswered:
    """What :func:`make_safe_what_answers` found, did and read back."""

    #: The safe state of the devices opened, the unreached and unconfirmed ones in it as not verified.
    report: Any
    #: Each device's state as found, before anything was sent (:func:`read_states`).
    found: list[str] = field(default_factory=list)
    #: Read back once more after the safe state (pumps stopped blind said so).
    now: list[str] = field(default_factory=list)
    #: Not reached, by role → why.
    unreached: dict[str, str] = field(default_factory=dict)
    #: Answered, failed to open and not read back stopped after a best-effort STP: may be running.
    unverified: dict[str, str] = field(default_factory=dict)
    #: Answered, failed to open, and read back stopped after a best-effort STP.
    stopped_blind: dict[str, str] = field(default_factory=dict)
    #: The rig was a twin built in this process (sim links).
    twin: bool = False

    def words(self) -> str:
        """One line: what was made safe, and what was not (for a run's events and a resume's error)."""
        made = sorted(k.split(".")[0] for k, ok in self.report.verified.items() if ok)
        with_safe_state = {k.split(".")[0] for k in self.report.verified}
        not_made = {**self.unverified, **{r: f"not reached: {w}" for r, w in self.unreached.items() if r in with_safe_state}}
        not_made.update({k.split(".")[0]: self.report.errors.get(k, "not verified")
                         for k, ok in self.report.verified.items() if not ok and k.split(".")[0] not in not_made})
        others = {r: w for r, w in self.unreached.items() if r not in with_safe_state}  # (a sensor, the camera)
        return (f"made safe (read back): {', '.join(made) or 'nothing'}; NOT made safe: "
                + ("; ".join(f"{r} ({w})" for r, w in not_made.items()) or "none")
                + (f"; not reached (no safe state): {unreached_words(others)}" if others else ""))


def safe_state_roles(prof: Any) -> set[str]:
    """The roles :func:`make_rig_safe` acts on: pumps, flow controllers and the chamber (not the
    humidity transmitters or the camera, which have no safe state)."""
    from castrig.rig.profile import NE1000Config

    return {role for role, cfg in prof.device_configs().items()
            if isinstance(cfg, NE1000Config) or role in ("dry_mfc", "wet_mfc", "chamber")}


def make_safe_what_answers(prof: Any, *, purpose: str, seed: int | None = None) -> WhatAnswered:
    """Own the rig of ``prof`` (:class:`~castrig.errors.Busy` before a byte is sent), open every
    device that answers, make those safe and read them back. :class:`RigUnreachable` when none of
    the devices with a safe state answered at all (nothing made safe). The caller holds its stop
    signals meanwhile: a stop raised into the safe state leaves the rig as the killed process did."""
    from castrig.control.safety import make_rig_safe
    from castrig.rig.ownership import open_owned_rig

    rig = open_owned_rig(prof, seed=seed, purpose=purpose, partial=True)
    try:
        out = WhatAnswered(report=None, unreached=dict(rig.unreached))
        unverified = dict(rig.unverified)  # answered, then failed to open
        to_make_safe = safe_state_roles(prof)
        if to_make_safe and to_make_safe <= set(out.unreached):
            raise RigUnreachable(f"cannot open the rig of profile {prof.name!r}: none of its devices with a safe "
                                 f"state answered ({unreached_words(out.unreached)}); nothing was made safe")
        out.found = [f"{role} was moving (stopped as the rig was opened)" for role in rig.found_moving] + read_states(rig)
        out.twin = rig.twin is not None and all(
            getattr(getattr(c, "link", None), "kind", "sim") == "sim" for c in prof.device_configs().values())
        # first: a pump that answered and then failed to open may be pumping (a best-effort STP)
        blind = _stop_unconfirmed_pumps(rig, prof, unverified)
        report = make_rig_safe(rig, retry_for_s=prof.control.safe_state_retry_s)
        for role, tried in blind.items():  # (recorded as a pump's best-effort stop in a run's safe state is)
            report.best_effort[role] = {"stop_failed": unverified[role], "sent": tried.sent, "stopped": tried.stopped,
                                        "detail": tried.detail}
        for role in [r for r in unverified if r in to_make_safe]:
            tried = blind.get(role)
            if tried is not None and tried.stopped:
                report.verified[f"{role}.stopped"] = True
                continue
            said = f"; {tried.detail}" if tried is not None else ""
            report.verified[f"{role}.verified"] = False
            report.errors[f"{role}.verified"] = (f"reached, but NOT made safe: it answered, then failed as it was "
                                                 f"opened, its state unknown ({unverified[role]}{said}); it may "
                                                 "still be running: make it safe at the device")
        for role in [r for r in out.unreached if r in to_make_safe]:  # (the same report: one safe state, one verdict)
            report.verified[f"{role}.reached"] = False
            report.errors[f"{role}.reached"] = f"not reached, not made safe ({out.unreached[role]})"
        out.report = report
        out.now = read_states(rig)  # read back once more, as the operator reads the front panels
        out.now += [f"{role} stopped (a best-effort STP, read back)" if tried.stopped else f"{role} unknown (not read back)"
                    for role, tried in blind.items()]
    finally:
        rig.close()
    out.stopped_blind = {r: f"{why}; {blind[r].detail}" for r, why in unverified.items() if r in blind and blind[r].stopped}
    out.unverified = {r: why + (f"; {blind[r].detail}" if r in blind else "")
                      for r, why in unverified.items() if r not in out.stopped_blind}
    return out


def make_safe_what_answers_said(prof: Any, *, purpose: str, seed: int | None = None) -> tuple[str, dict[str, Any]]:
    """:func:`make_safe_what_answers` for a command whose rig could not be opened (a run, a
    resume, a step test): one line of what was and was not made safe, and the safe state's record
    (``safe``, ``verified``, ``errors``); nothing made safe where nothing answered, or where another
    process owns the rig by now (``owned_by_another``: nothing sent, nothing to do by hand)."""
    try:
        done = make_safe_what_answers(prof, purpose=purpose, seed=seed)
    except Busy as why:
        return (f"nothing was made safe, nothing was sent: another process owns the rig now ({why})",
                {"safe": False, "verified": {}, "errors": {"rig": str(why)}, "owned_by_another": True})
    except RigUnreachable as why:
        return f"nothing was made safe ({why})", {"safe": False, "verified": {}, "errors": {"rig": str(why)}}
    return done.words(), done.report.to_dict()


def _stop_unconfirmed_pumps(rig: Any, prof: Any, unverified: dict[str, str]) -> dict[str, Any]:
    """A best-effort STP to each NE-1000 that answered and then failed to open, over the link
    the failed open left (see :mod:`castrig.devices.blind_stop`); by role, what came back."""
    from castrig.devices.blind_stop import stop_unconfirmed_ne1000
    from castrig.rig.profile import NE1000Config

    configs = prof.device_configs()
    out = {}
    for role in unverified:
        cfg, link = configs.get(role), rig.role_links.get(role)
        if isinstance(cfg, NE1000Config) and link is not None:
            out[role] = stop_unconfirmed_ne1000(link, name=role, address=cfg.address, clock=rig.clock)
    return out


def unreached_words(unreached: dict[str, str]) -> str:
    return "; ".join(f"{role} ({why})" for role, why in unreached.items())


def read_states(rig: Any) -> list[str]:
    """What each pump, flow controller and chamber says it is doing (nothing sent but the queries)."""
    out = []
    for role, pump in rig.pumps().items():
        out.append(f"{role} {_read(lambda: pump.state().name.lower())}")
    for role in ("dry_mfc", "wet_mfc"):
        mfc = getattr(rig, role)
        if mfc is not None:
            out.append(f"{role} {_read(lambda: _flow(mfc.read()))}")
    if rig.chamber is not None:
        out.append(f"chamber humidifier {_read(lambda: 'on' if rig.chamber.humidifier_on() else 'off')}")
    return out


def _flow(reading: Any) -> str:
    return f"setpoint {reading.setpoint_slpm:g} slpm, flowing {reading.mass_flow_slpm:g} slpm"


def _read(what: Any) -> str:
    try:
        return str(what())
    except (CastrigError, OSError) as exc:
        return f"not read ({exc})"
