"""A run that stopped (kill -9, power) while paused, or with a pause asked and not yet taken: its
resume goes on running, and says so; ``castrig status`` of the crashed run says so too. (In the
store, read from the run's events: ``castrig status`` reads it, and the runner's resume.)

The pause held the rig for an operator (``castrig pause`` or Ctrl-C) who has not said to go on;
the process that held it is gone, and with it the pause. ``castrig resume`` is itself the
operator's word to go on (DESIGN §7: ``resume`` is for crashed runs, ``resume-paused`` ends a
pause), so the run goes on -- but before, it did so without a word, and whoever paused it, or
reads its record later, could not tell the pause had ended. Now the resume says it on the console
and in an ``unpaused`` event.

A pause asked through the control channel while a pump dispensed waits for the dispense's end
(:meth:`castrig.recipe.runner.Runner.pause_point`): killed in between, the run was ``pausing``,
its ``pause requested`` on record and no pause after it. That pause is gone with the process too,
and was said by neither the resume nor ``castrig status``. (A Ctrl-C pause is on record only once
taken: the terminal that asked it went with the process.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PauseAtStop:
    """The pause a run was under when its process stopped: ``taken`` (paused) or asked and not
    yet taken (pausing: a dispense was finishing), at run clock ``t_s``, by ``by``."""

    taken: bool
    t_s: float
    by: str

    def words(self) -> str:
        """Where the pause stood, for a sentence: 'paused at t = ... s by ...'."""
        if self.taken:
            return f"paused at t = {self.t_s:.1f} s by {self.by}"
        return f"a pause asked at t = {self.t_s:.1f} s by {self.by}, not yet taken"

    def state(self) -> str:
        return "paused" if self.taken else "pausing"


def pause_at_stop(events: list[Any]) -> PauseAtStop | None:
    """The pause the run was under when its process stopped -- its ``pause`` event, or the
    ``pause requested`` command it had accepted -- with no ``resume`` after it; None if it was
    neither paused nor pausing."""
    for e in reversed(events):
        data = e.data or {}
        if e.kind == "resume":
            return None
        if e.kind == "pause":  # (a Ctrl-C pause records no one)
            return PauseAtStop(True, e.t_s, data.get("by") or "Ctrl-C at its terminal")
        if e.kind == "command" and not data.get("discarded"):  # (one discarded was never applied)
            if data.get("command") == "resume":  # asked to go on before the pause was taken
                return None
            if data.get("command") == "pause":
                return PauseAtStop(False, e.t_s, str(data.get("by") or e.source))
    return None


def crashed_words(pause: PauseAtStop) -> str:
    """What ``castrig status`` adds of a crashed run that stopped paused or pausing."""
    return (f"it was {pause.state()} when its process stopped ({pause.words()}); `castrig resume` goes on with it, "
            "not paused")


def say_unpaused(recorder: Any, t_s: float, pause: PauseAtStop) -> str:
    """Record (event ``unpaused``, at run clock ``t_s``) that the pause ``pause`` ended with the
    process that held it; the words, for the console."""
    words = (f"the run was {pause.state()} when it stopped ({pause.words()}); "
             "the resume goes on with it, not paused (castrig pause pauses it again)")
    recorder.add_event(t_s, "unpaused", "runner", words,
                       {"paused_t_s": pause.t_s, "paused_by": pause.by, "pause_taken": pause.taken})
    return words
