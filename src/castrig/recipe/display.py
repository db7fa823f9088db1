"""Progress for people: a Rich live panel on a terminal, plain step lines elsewhere."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from castrig.recipe.runner import Status


def _fmt_s(s: float | None) -> str:
    if s is None:
        return "—"
    s = max(0.0, s)
    h, rem = divmod(int(s), 3600)
    mnt, sec = divmod(rem, 60)
    return f"{h:d}:{mnt:02d}:{sec:02d}"


# The display on screen, if any. Anything said to the person at the terminal while it is up (the
# Ctrl-C notice, the pause prompt) goes through it: text written to the terminal behind the live
# panel's back is erased by its next redraw, which is how the pause prompt used to vanish.
_active: "Display | None" = None


class Display:
    """``update(status)`` is called every tick; redraws at most 10 times per wall second."""

    def __init__(self, recipe_name: str, n_steps: int, *, virtual: bool, quiet: bool = False, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.recipe_name = recipe_name
        self.n_steps = n_steps
        self.virtual = virtual
        self.quiet = quiet
        self._live: Live | None = None
        self._suspended = False
        self._last_draw = 0.0
        self._last_step = -1

    def __enter__(self) -> "Display":
        global _active
        if not self.quiet and self.console.is_terminal:
            self._live = Live(console=self.console, refresh_per_second=10, transient=False)
            self._live.__enter__()
        _active = self
        return self

    def __exit__(self, *exc: Any) -> None:
        global _active
        if _active is self:
            _active = None
        if self._live is not None:
            self._live.__exit__(*exc)

    @contextmanager
    def suspended(self) -> Iterator[Console]:
        """Stop the live panel while a person is asked something, so the question stays on screen.

        The panel's last frame is left in place, the question and the typed answer go below it,
        and a fresh panel is drawn below those when the block ends normally (after an exception
        the run is ending and ``__exit__`` has nothing left to stop).
        """
        live = self._live
        if live is None or self._suspended:
            yield self.console
            return
        self._suspended = True
        live.stop()
        yield self.console
        self._suspended = False
        self._live = Live(live.renderable, console=self.console, refresh_per_second=10, transient=False)
        self._live.start()

    def update(self, s: Status) -> None:
        if self.quiet or self._suspended:
            return
        if self._live is None:
            if s.step_index != self._last_step:
                self._last_step = s.step_index
                self.console.print(f"[{_fmt_s(s.t_s)}] step {s.step_index + 1}/{self.n_steps}: {s.step_name}", highlight=False)
            return
        now = time.monotonic()
        if now - self._last_draw < 0.1:
            return
        self._last_draw = now
        self._live.update(self._table(s))

    def _table(self, s: Status) -> Table:
        t = Table(title=f"castrig · {self.recipe_name} · {'virtual' if self.virtual else 'real'} time", show_header=False)
        t.add_column(style="bold")
        t.add_column()
        remaining = None if s.step_duration_s is None else s.step_duration_s - s.step_elapsed_s
        t.add_row("step", f"{s.step_index + 1}/{self.n_steps} {s.step_name} ({s.state})")
        t.add_row("time", f"run {_fmt_s(s.t_s)} · step {_fmt_s(s.step_elapsed_s)} · left {_fmt_s(remaining)}")
        rh = "—" if s.rh_pct is None else f"{s.rh_pct:.1f}"
        sp = "—" if s.setpoint_rh_pct is None else f"{s.setpoint_rh_pct:.1f}"
        t.add_row("RH near membrane", f"{rh} %RH (setpoint {sp})")
        if s.flows_slpm:
            t.add_row("flows", ", ".join(f"{k} {v:.3f} slpm" for k, v in s.flows_slpm.items()))
        if s.pumps_ml:
            t.add_row("pumps", ", ".join(f"{k} {v:.3f} mL" for k, v in s.pumps_ml.items()))
        return t


def say(message: str) -> None:
    """Tell the person at the terminal something, above the live panel if one is up."""
    display = _active
    console = display.console if display is not None else Console(stderr=True)
    console.print(message, highlight=False)


def interactive_prompt(keep_alive: Any, *, virtual: bool, console: Console | None = None) -> str:
    """Ask 'resume or abort' on a terminal while the rig keeps being controlled.

    Returns ``"resume"``, ``"abort"`` (the person chose to abort: the run ends ``aborted``), or
    ``"interrupt"`` when there is nobody to ask (stdin is not a terminal: the run ends
    ``interrupted``). The live panel is stopped while asking, so the question stays visible.
    """
    import select

    display = _active
    if not sys.stdin.isatty():
        out = console or (display.console if display is not None else Console(stderr=True))
        out.print("paused with no terminal to ask: ending the run (interrupted), the rig goes to the safe state", highlight=False)
        return "interrupt"
    asking = display.suspended() if display is not None else nullcontext(Console(stderr=True))
    with asking as screen:
        out = console or screen
        out.print("[bold yellow]Paused.[/] Type [bold]r[/] + Enter to resume, [bold]a[/] + Enter to abort "
                  "(Ctrl-C again aborts now).", highlight=False)
        while True:
            ready, _, _ = select.select([sys.stdin], [], [], 1.0)
            if ready:
                line = sys.stdin.readline()
                if not line:  # end of input (Ctrl-D): nobody left to ask
                    out.print("no more input: ending the run (interrupted), the rig goes to the safe state", highlight=False)
                    return "interrupt"
                answer = line.strip().lower()
                if answer.startswith("r"):
                    out.print("resuming", highlight=False)
                    return "resume"
                if answer.startswith("a"):
                    out.print("aborting to the safe state", highlight=False)
                    return "abort"
                out.print("r or a, please", highlight=False)
            elif not virtual:
                keep_alive()
