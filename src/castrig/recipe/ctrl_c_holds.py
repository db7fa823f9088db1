"""Ctrl-C (SIGINT) outside a run's own handlers (recipe/session.py), while ``castrig run`` or
``resume`` sets a run up, makes a crashed run's rig safe, or closes the rig after a run: held --
noted and said, acted on where it is safe to -- never raised out of the middle of those steps.

Each hold takes SIGINT from the handler before it and gives it straight on to the next (a hold,
the run's handlers, ``session.keep_exit_code``): a Ctrl-C landing on Python's handler between
two of them raised KeyboardInterrupt there -- exit 130 from a run that completed, a rig not
closed.
"""

from __future__ import annotations

import signal
from typing import Any

from rich.markup import escape

from castrig.recipe.display import say
from castrig.sigint_hold import SigintHold


class HeldCtrlC(SigintHold):
    """Ctrl-C while ``castrig run`` makes its run folder and sets the run up, before the run's own
    handlers (``session._signals``) are in: noted, and taken by them as the run's first Ctrl-C (a
    pause at the first safe point, asked at a terminal; with nobody to ask, the run ends
    interrupted with the rig made safe). It raised out of anywhere there: exit 130 with the folder
    left 'running' (listed crashed, no safe state on record), or an empty folder with its lock
    alone. Handed on as the run returns."""


class DeferredCtrlC(SigintHold):
    """Ctrl-C while a resume opens the rig and makes it safe is held until the safe state is
    recorded; then the resume stops there (interrupted, 130) instead of going on with the run.

    A resume's first duty is the rig a crash left (wet air on, a pump running): Ctrl-C in its
    first seconds raised out of anywhere, and the process ended "interrupted" with the wet MFC
    still at 2 slpm and no safe-state attempt on record."""

    def __init__(self, *, command: str = "resume", now: bool = True) -> None:
        self.command = command  # (a new run whose rig could not be opened holds it too: run/unopened.py)
        super().__init__(now=now)

    def _on_int(self, signum: int, frame: Any) -> None:
        if not self.asked:
            say(f"[yellow]Ctrl-C: the rig is being made safe first; the {self.command} stops there[/]")
        self.asked = True

    def stop_here(self, said: str) -> None:
        """Where the resume may stop: the rig safe, and ``said`` (its state, how to go on) said.
        It stopped with nothing more than the line of the Ctrl-C: no word of the rig, exit 130
        without "interrupted" (raised here, not by the CLI's handler, which remembers a Ctrl-C)."""
        if self.asked:
            say(f"[yellow]{escape(said)}[/]", soft_wrap=True)
            self.restore()
            signal.raise_signal(signal.SIGINT)  # the Ctrl-C, to the handler in place now (the CLI's: "interrupted")
            raise KeyboardInterrupt  # (one that did not raise)


class CtrlCAtClose(SigintHold):
    """Ctrl-C from the end of a run's own handlers until its rig is closed (``session._close_rig``)
    -- and, for a command that ends with its run, until its exit code is kept: said once, noted."""

    def _on_int(self, signum: int, frame: Any) -> None:
        if not self.asked:
            say("[yellow]Ctrl-C: the run has ended and its rig is being closed; the outcome stands as recorded[/]")
        self.asked = True
