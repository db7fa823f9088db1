"""The clock of a hold under way (a wait, a purge, an evaporate...), where a pause's ticks reach it.

A pause asked inside a hold is taken at one of its ticks and lasts as long as the operator wants;
on the wall clock the rig is kept under control meanwhile (RH loop, keep-alive, samples). What a
pause means for the step, written once:

* its clock runs on: the paused time counts toward its duration. The film cast before it goes on
  drying whatever the runner does, at the RH the loop holds, so an evaporate of 600 s is 600 s of
  film time, paused or not (a pause longer than what is left of the step ends it at the resume).
  An evaporate's record says how long it was paused (``paused_s``, also in its membrane's).
* its per-tick check runs on: an evaporate's RH band (out-of-band time, the error, the interlock
  that aborts after ``max_out_of_band_s``) is the film's, paused or not; a condition's settling
  (RH held in band while paused counts toward ``stable_for_s``, as the pause counts toward
  ``timeout_s``).
* readers see both: ``castrig status`` counts the step's time left down through the pause.

On the virtual clock no time passes while paused (nothing ticks), so nothing of this arises.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class HoldClock:
    """How far a hold is, advanced at each of its ticks and at each tick of a pause inside it."""

    #: the step's duration (s) counted from this hold's start; None: until a condition only
    duration_s: float | None
    #: the run clock at the hold's last tick (its own or a pause's)
    last_t: float
    elapsed_s: float = 0.0
    #: a wait step's: its clock stands still while RH is out of band (``Runner._check_hold_band``)
    hold_band: bool = False
    #: called at every tick, a pause's included (an evaporate's RH band check)
    watch: Callable[[], object] | None = None

    def advance(self, now: float, *, counting: bool = True) -> float:
        """The time since the last tick counts toward the hold unless ``counting`` is False (a
        wait step's clock held while RH is out of band); returns the elapsed seconds."""
        if counting:
            self.elapsed_s += now - self.last_t
        self.last_t = now
        return self.elapsed_s

    @property
    def over(self) -> bool:
        return self.duration_s is not None and self.elapsed_s >= self.duration_s - 1e-9
