"""Progress for people: a Rich live panel on a terminal, plain step lines elsewhere."""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from rich.live import Live
from rich.table import Table
from rich.text import Text

from castrig.printable import Console, shown
from castrig.recipe.runner import Status

#: Without a terminal, a status line every this many minutes of run time (and at every step).
STATUS_EVERY_ENV = "CASTRIG_STATUS_EVERY_MIN"
DEFAULT_STATUS_EVERY_MIN = 5.0


def status_every_s() -> float:
    """``$CASTRIG_STATUS_EVERY_MIN`` (minutes of run time; default 5; unset or empty: the default)
    in seconds; 0 turns it off. Anything else (``abc``, ``-5``, ``nan``, ``inf``) is
    :class:`~castrig.errors.BadInput` naming the variable and what is allowed, as the other
    ``CASTRIG_*`` settings are (``$CASTRIG_MAX_IMAGE_PIXELS``): ``abc`` fell back to 5 min and
    ``-5`` or ``nan`` turned the periodic lines off, silently. Called before a run, resume or
    queue touches anything, so the refusal comes first (exit 2)."""
    from castrig.errors import BadInput

    raw = os.environ.get(STATUS_EVERY_ENV, "").strip()
    if not raw:
        return DEFAULT_STATUS_EVERY_MIN * 60.0
    try:
        minutes = float(raw)
    except ValueError:
        minutes = math.nan
    if not (math.isfinite(minutes) and minutes >= 0.0):
        shown = raw if len(raw) <= 40 else raw[:40] + "…"
        raise BadInput(f"{STATUS_EVERY_ENV} = {shown!r}: not a number of minutes (allowed: 0, no periodic status "
                       f"lines, or a positive number of minutes of run time, e.g. 15; unset: every "
                       f"{DEFAULT_STATUS_EVERY_MIN:g})", field=STATUS_EVERY_ENV)
    return minutes * 60.0


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
        self._snapshot: Any = None  # the runner's status for readers (step label, time left, last warning)
        self.run_dir: Any = None
        self._every_s = status_every_s()
        self._next_line_t: float | None = None
        self._last: Status | None = None

    def follow(self, snapshot: Any, *, run_dir: Any = None) -> None:
        """Show ``snapshot()`` (:meth:`castrig.recipe.remote.RemoteControl.snapshot`) and the run folder."""
        self._snapshot = snapshot
        self.run_dir = run_dir

    def _snap(self) -> dict[str, Any]:
        try:
            return self._snapshot() if self._snapshot is not None else {}
        except Exception:  # noqa: BLE001 - a display must never stop a run
            return {}

    def __enter__(self) -> "Display":
        global _active
        if not self.quiet and self.run_dir is not None:
            self.console.print(f"run folder: {self.run_dir}", markup=False, highlight=False, soft_wrap=True)
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
            if self._last is not None and not self._suspended:  # the final state stays on the screen
                self._live.update(self._table(self._last), refresh=True)
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
        self._last = s
        if self._live is None:
            if s.step_index != self._last_step:
                self._last_step = s.step_index
                self._next_line_t = s.t_s + self._every_s
                self.console.print(self._line(s), markup=False, highlight=False, soft_wrap=True)
            elif self._every_s and self._next_line_t is not None and s.t_s >= self._next_line_t:
                self._next_line_t += self._every_s * max(1, int((s.t_s - self._next_line_t) // self._every_s) + 1)
                self.console.print(self._line(s), markup=False, highlight=False, soft_wrap=True)
            return
        now = time.monotonic()
        if now - self._last_draw < 0.1:
            return
        self._last_draw = now
        self._live.update(self._table(s))

    def _line(self, s: Status) -> str:
        """One status line for a log (no terminal): step, label, time left, RH vs setpoint, last warning."""
        snap = self._snap()
        label = snap.get("step_label") or s.step_name
        rh = "—" if s.rh_pct is None else f"{s.rh_pct:.1f}"
        sp = "—" if s.setpoint_rh_pct is None else f"{s.setpoint_rh_pct:.1f}"
        out = (f"[{_fmt_s(s.t_s)}] step {s.step_index + 1}/{self.n_steps}: {s.step_name}"
               + (f" ({label})" if label and label != s.step_name else ""))
        if snap:
            out += f" · left: step {_fmt_s(snap.get('step_left_s'))}, run {_fmt_s(snap.get('run_left_s'))}"
        out += f" · RH {rh} %RH (setpoint {sp})"
        w = snap.get("last_warning")
        if w:
            out += f" · last warning [{_fmt_s(w['t_s'])}] {w['kind']}: {w['message']}"
        return out

    def _table(self, s: Status) -> Table:
        # every title and cell a Text: the recipe's name and step labels, the folder and the
        # warnings are shown as written, never read as Rich markup ('[link=…]' in a recipe's name
        # made a link in the operator's terminal, '[conceal]' hid text)
        t = Table(title=Text(f"castrig · {shown(self.recipe_name)} · {'virtual' if self.virtual else 'real'} time"), show_header=False)
        t.add_column(style="bold")
        t.add_column()

        def row(name: str, value: str) -> None:
            t.add_row(name, Text(shown(value)))

        remaining = None if s.step_duration_s is None else max(0.0, s.step_duration_s - s.step_elapsed_s)
        snap = self._snap()
        if self.run_dir is not None:
            row("run folder", str(self.run_dir))
        label = snap.get("step_label") or ""
        row("step", f"{s.step_index + 1}/{self.n_steps} {s.step_name}" + (f" · {label}" if label and label != s.step_name else "")
            + f" ({s.state})")
        row("time", f"run {_fmt_s(s.t_s)} · step {_fmt_s(s.step_elapsed_s)} · left in step {_fmt_s(remaining)}"
            + (f" · left in run {_fmt_s(snap.get('run_left_s'))}" if snap else ""))
        rh = "—" if s.rh_pct is None else f"{s.rh_pct:.1f}"
        sp = "—" if s.setpoint_rh_pct is None else f"{s.setpoint_rh_pct:.1f}"
        row("RH near membrane", f"{rh} %RH (setpoint {sp})")
        if s.flows_slpm:
            row("flows", ", ".join(f"{k} {v:.3f} slpm" for k, v in s.flows_slpm.items()))
        if s.pumps_ml:
            row("pumps", ", ".join(f"{k} {v:.3f} mL" for k, v in s.pumps_ml.items()))
        w = snap.get("last_warning")
        row("last warning", f"[{_fmt_s(w['t_s'])}] {w['kind']}: {w['message']}" if w else "none")
        return t


def say(message: str, *, soft_wrap: bool = False) -> None:
    """Tell the person at the terminal something, above the live panel if one is up;
    ``soft_wrap``: its lines whole (a path to copy is never broken)."""
    display = _active
    console = display.console if display is not None else Console(stderr=True)
    console.print(message, highlight=False, soft_wrap=soft_wrap)


def _in_the_background() -> bool:
    """stdin is this process's controlling terminal and another process group has its foreground
    (the run was started with ``&``, or put there with Ctrl-Z then ``bg``): reading it would stop
    the process. A terminal that is not the controlling one (or none) says no."""
    try:
        return os.tcgetpgrp(sys.stdin.fileno()) != os.getpgrp()
    except (OSError, ValueError, AttributeError):
        return False


def _next_wait_s(asked: Any) -> float:
    """The prompt's wait before it calls ``keep_alive`` again: what the last call asked, 0-1 s."""
    return min(1.0, max(0.0, float(asked))) if isinstance(asked, (int, float)) else 1.0


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
        told = False
        # at once (the tick the pause cut short), then when it asks: the rig's next tick, at most 1 s on
        wait_s = _next_wait_s(keep_alive())
        while True:
            if _in_the_background():
                # `castrig run … &` paused by `kill -INT`: a read of the terminal now would stop
                # the process (SIGTTIN: "Stopped (tty input)" as soon as anything was typed in the
                # shell), the rig left uncontrolled. The rig is kept under control; the question
                # waits for `fg` (an abort from elsewhere is heard meanwhile)
                if not told:
                    out.print("(this run is in the background: `fg` to answer here, or `castrig abort RUN_DIR` from "
                              "another terminal)", highlight=False)
                    told = True
                time.sleep(wait_s)
                wait_s = _next_wait_s(keep_alive())
                continue
            ready, _, _ = select.select([sys.stdin], [], [], wait_s)
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
                wait_s = _next_wait_s(keep_alive())  # (typing must not hold the rig's ticks: it ticks only when due)
            else:  # (on the virtual clock it reads the control channel only: see Runner._at_the_prompt)
                wait_s = _next_wait_s(keep_alive())
