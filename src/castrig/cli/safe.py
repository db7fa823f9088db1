"""``castrig safe``: only bring the rig to the verified safe state, and say what it found.

A ``castrig tune rh`` or ``castrig run`` killed with kill -9 (or lost with its computer) leaves the
rig as it last drove it: the wet air at the step test's level, a pump's dispense going on until
its watchdog. ``castrig resume`` makes the rig safe first, but needs a run folder (a step test has
none) and then goes on with the run. This command opens the rig as any other does (the devices'
locks first: exit 4 if another process owns one, nothing sent; exit 5 if one cannot be opened),
reads what each device is doing, brings it to the safe state that resume and every run's end use
(:func:`castrig.control.safety.make_rig_safe`: pumps stopped, wet air off, dry purge on, each read
back), says both, and exits 0 when the safe state is verified, 3 when it could not be.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Optional

import typer


def mount(app: typer.Typer) -> None:
    app.command("safe")(safe)


def safe(
    profile: Optional[Path] = typer.Option(None, "--profile", metavar="PROFILE",
                                           help="The rig to make safe (default hw_profiles/sim.yaml)."),
) -> None:
    """Bring the rig to the verified safe state (pumps stopped, wet air off, dry purge on) and say
    what each device was doing: after a killed run or step test, without resuming anything.

    Exit codes: 0 safe state verified, 3 not verified (the report names the device), 4 busy
    (another process owns a device: nothing sent), 5 a device could not be opened.

    \b
    Examples:
      castrig safe --profile hw_profiles/lab-rig.yaml
    """
    from castrig.cli.main import EXIT_ABORTED, default_profile
    from castrig.control.safety import make_rig_safe
    from castrig.rig.ownership import open_owned_rig
    from castrig.rig.profile import load_profile

    path = Path(profile or default_profile())
    prof = load_profile(path)
    held = _StopsWait()  # from the first byte sent to the rig's close: nothing cuts the safe state short
    try:
        rig = open_owned_rig(prof, seed=None, purpose="castrig safe")
        try:
            found = [f"{role} was moving (stopped as the rig was opened)" for role in rig.found_moving]
            found += _found(rig)
            twin_only = rig.twin is not None and all(
                getattr(getattr(c, "link", None), "kind", "sim") == "sim" for c in prof.device_configs().values())
            report = make_rig_safe(rig, retry_for_s=prof.control.safe_state_retry_s)
            now = _found(rig)  # read back once more, as the operator reads the front panels
        finally:
            rig.close()
    finally:
        held.restore()
    typer.echo(f"found on {prof.name}: " + ("; ".join(found) if found else "nothing to read"))
    if twin_only:  # (sim links: the twin is built in each process, never the one another process drove)
        typer.echo(f"note: {path} is a twin of this process's own (kind: sim links); a run or step test elsewhere "
                   "drove its own twin, which ended with it", err=True)
    typer.echo(f"now: {'; '.join(now)}" if now else "now: nothing to read")
    typer.echo(report.summary())
    if held.heard:
        typer.echo(f"{held.heard[0]} received: it waited for the safe state and the rig's close", err=True)
    if not report.safe:
        raise typer.Exit(EXIT_ABORTED)


def _found(rig: Any) -> list[str]:
    """What each pump, flow controller and chamber says it is doing, before anything is sent to it."""
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
    from castrig.errors import CastrigError

    try:
        return str(what())
    except (CastrigError, OSError) as exc:
        return f"not read ({exc})"


class _StopsWait:
    """Ctrl-C, SIGTERM, SIGHUP and SIGQUIT while the rig is made safe are noted, not raised into it
    (a stop there would leave it as the killed process did); the command ends when that is done."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")

    def __init__(self) -> None:
        self.heard: list[str] = []
        self._old = {}
        for name in self.SIGNALS:
            signum = getattr(signal, name)
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue  # (under nohup)
            self._old[signum] = signal.signal(signum, self._on)

    def _on(self, signum: int, frame: object) -> None:
        import os

        if not self.heard:
            try:  # (said at once: the open may take the links' timeouts)
                os.write(2, f"{signal.Signals(signum).name}: castrig safe ends once the rig is safe and closed\n".encode())
            except OSError:  # no terminal left (a SIGHUP)
                pass
        self.heard.append(signal.Signals(signum).name)

    def restore(self) -> None:
        for signum, old in self._old.items():
            signal.signal(signum, old)
