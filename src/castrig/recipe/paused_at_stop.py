"""A run that stopped (kill -9, power) while paused: its resume goes on running, and says so.

The pause held the rig for an operator (``castrig pause`` or Ctrl-C) who has not said to go on;
the process that held it is gone, and with it the pause. ``castrig resume`` is itself the
operator's word to go on (DESIGN §7: ``resume`` is for crashed runs, ``resume-paused`` ends a
pause), so the run goes on -- but before, it did so without a word, and whoever paused it, or
reads its record later, could not tell the pause had ended. Now the resume says it on the console
and in an ``unpaused`` event.
"""

from __future__ import annotations

from typing import Any


def pause_at_stop(events: list[Any]) -> Any | None:
    """The ``pause`` event of a pause the run was held in when its process stopped (no ``resume``
    event after it); None if it was not paused."""
    for e in reversed(events):
        if e.kind == "resume":
            return None
        if e.kind == "pause":
            return e
    return None


def say_unpaused(recorder: Any, t_s: float, pause: Any) -> str:
    """Record (event ``unpaused``, at run clock ``t_s``) that the pause ``pause`` ended with the
    process that held it; the words, for the console."""
    by = (pause.data or {}).get("by") or "Ctrl-C at its terminal"  # (a Ctrl-C pause records no one)
    words = (f"the run was paused when it stopped (paused at t = {pause.t_s:.1f} s by {by}); "
             "the resume goes on with it, not paused (castrig pause pauses it again)")
    recorder.add_event(t_s, "unpaused", "runner", words, {"paused_t_s": pause.t_s, "paused_by": by})
    return words
