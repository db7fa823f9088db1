"""``castrig safe``: only bring the rig to the verified safe state, and say what it found.

A ``castrig tune rh`` or ``castrig run`` killed with kill -9 (or lost with its computer) leaves the
rig as it last drove it: the wet air at the step test's level, a pump's dispense going on until
its watchdog. ``castrig resume`` makes the rig safe first, but needs a run folder (a step test has
none) and then goes on with the run. This command takes the devices' locks as any other does
(exit 4 if another process owns one: nothing sent), opens every device that answers, reads what
each is doing, brings them to the safe state that resume and every run's end use
(:func:`castrig.control.safety.make_rig_safe`: pumps stopped, wet air off, dry purge on, each read
back), says both, and exits 0 when the safe state is verified, 3 when it could not be. A device
that cannot be opened is named and keeps the safe state from being verified (exit 3) -- but no
longer keeps the others from being made safe: a dead pump's port made the whole command exit 5
with the wet MFC still flowing. Exit 5 only when none of the devices that have a safe state
(pumps, flow controllers, chamber) answered at all. One that answered and then failed as it was
opened (a reply, then silence or garbage) is "reached but not verified safe", said apart from
"not reached": it may be running, and it was counted "not reached" (exit 5 if it was the only one).
Such a pump was then sent nothing; now a best-effort STP goes over its line
(:mod:`castrig.devices.blind_stop`): read back stopped, it is safe and said so; otherwise it is
"reached but not verified safe" with what came back.

A stop while it works (Ctrl-C, SIGTERM, SIGHUP, SIGQUIT, SIGXCPU) waits for the safe state and the rig's
close, as ``castrig resume`` and ``tune rh`` wait for theirs; then it ends as they do: Ctrl-C 130
("interrupted"), the others 3, the rig's state said first. It ended 0 as if nothing had come.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional

import typer


def mount(app: typer.Typer) -> None:
    app.command("safe")(safe)


def safe(
    profile: Optional[Path] = typer.Option(None, "--profile", metavar="PROFILE",
                                           help="The rig to make safe (default hw_profiles/sim.yaml)."),
) -> None:
    """Bring the rig to the verified safe state (pumps stopped, wet air off, dry purge on) and say
    what each device was doing: after a killed run or step test, without resuming anything.

    Exit codes: 0 safe state verified, 3 not verified (the report names the device: one read back
    unsafe, one that answered and then failed to open and did not read back stopped after a
    best-effort STP -- it may still be running --, or one that
    could not be reached while the others were made safe; also SIGTERM/SIGHUP once the rig is
    safe), 4 busy (another process owns a device: nothing sent), 5 none of the devices to make
    safe answered at all, 130 Ctrl-C (once the rig is safe and closed).

    \b
    Examples:
      castrig safe --profile hw_profiles/lab-rig.yaml
    """
    from castrig.cli.main import EXIT_ABORTED, EXIT_INTERRUPTED, default_profile
    from castrig.rig.profile import load_profile
    from castrig.rig.safe_what_answers import make_safe_what_answers, unreached_words

    path = Path(profile or default_profile())
    prof = load_profile(path)
    held = _StopsWait()  # from the first byte sent to the rig's close: nothing cuts the safe state short
    try:
        done = make_safe_what_answers(prof, purpose="castrig safe")
    finally:
        held.restore()
    report = done.report
    if done.stopped_blind:
        typer.echo(f"REACHED, FAILED TO OPEN, STOPPED by a best-effort STP on {prof.name}: "
                   + unreached_words(done.stopped_blind), err=True)
    if done.unverified:
        typer.echo(f"REACHED BUT NOT VERIFIED SAFE on {prof.name} (it may still be running): "
                   f"{unreached_words(done.unverified)}", err=True)
    if done.unreached:
        typer.echo(f"NOT REACHED on {prof.name}: {unreached_words(done.unreached)}", err=True)
    typer.echo(f"found on {prof.name}: " + ("; ".join(done.found) if done.found else "nothing to read"))
    if done.twin:  # (sim links: the twin is built in each process, never the one another process drove)
        typer.echo(f"note: {path} is a twin of this process's own (kind: sim links); a run or step test elsewhere "
                   "drove its own twin, which ended with it", err=True)
    typer.echo(f"now: {'; '.join(done.now)}" if done.now else "now: nothing to read")
    typer.echo(report.summary())
    if held.heard:  # (ended as resume and tune rh end a stop during their safe state: 130 or 3)
        verdict = "verified" if report.safe else "NOT verified"
        typer.echo(f"{held.heard[0]} received: it waited for the safe state ({verdict}) and the rig's close", err=True)
        if report.safe:
            if held.heard[0] == "SIGINT":
                typer.echo("interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED if held.heard[0] == "SIGINT" else EXIT_ABORTED)
    if not report.safe:
        raise typer.Exit(EXIT_ABORTED)


class _StopsWait:
    """Ctrl-C, SIGTERM, SIGHUP, SIGQUIT and SIGXCPU while the rig is made safe are noted, not raised into it
    (a stop there would leave it as the killed process did); the command ends when that is done."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGXCPU")

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
