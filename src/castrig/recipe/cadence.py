"""Fixed-rate schedules for the runner's periodic work (control ticks, samples).

A period slept *after* each tick's exchanges stretched it by their line time: on the overnight
recipe the ticks came 1.12 s apart for ``control_period_s: 1`` and the samples 5.5-5.7 s apart
for ``sample_period_s: 5``. Here each due time is the last one's plus the period, whatever the
work in between took; when the work overran (a slow line, a pause, a suspended computer), the
next work comes at once and the schedule goes on from its own grid (the due times missed are
skipped: no burst of catch-up ticks or samples), as a PLC's cyclic task does. The control ticks
keep one schedule for the whole run (``Runner._ticks``): a hold that started its own put the
ticks out of step with the samples, 4.2-5.6 s apart across step boundaries for 5 s; re-anchored
at the end of an overrun (a reply held 5.3 s on the wall clock), they left the samples' grid for
the rest of the run. A sample is taken at the tick that stands for its due time
(:meth:`FixedRate.begin`), not at any tick near it: on the overnight recipe a capture's
tick after a view (off the schedule) took one 0.46 s early, 4.54 s then 5.42 s apart.
"""

from __future__ import annotations

import math

#: A due time this close ahead (s) counts as come: due times are sums of periods, and a tick's
#: time and a sample's due time may differ in the last bits of a float.
EARLY_S = 1e-6


class FixedRate:
    """Due times ``t0, t0 + p, t0 + 2p, …``; after an overrun the next at once, then on the grid."""

    def __init__(self, period_s: float, due_t: float | None = None, *, early_s: float = EARLY_S) -> None:
        self.period_s = period_s
        #: The next due time; ``None``: due at once (the first call of :meth:`due`).
        self.due_t = due_t
        #: :meth:`due` this long before the due time (samples: half a control period, so that they
        #: are taken at the tick nearest their due time when the two grids differ; the runner asks
        #: with the tick's due time, not its clock time, which on the wall clock is a little later)
        self.early_s = early_s

    def due(self, now: float) -> bool:
        return self.due_t is None or now >= self.due_t - self.early_s

    def start(self, now: float) -> None:
        """The work done now is the schedule's first (the run's first tick; a pause's, re-anchored)."""
        self.due_t = now

    def resume(self, now: float) -> None:
        """A pause begins (in a tick, or after a step): its ticks go on the run's grid, the first
        at once when the tick the pause cut short was due (it stands for that one); started at
        ``now`` if nothing ticked yet. Re-anchored at the pause, the grid moved by the tick's
        lateness at each pause."""
        if self.due_t is None:
            self.start(now)

    def _last_due(self, now: float) -> float:
        """The grid's last due time at or before ``now`` (:attr:`due_t` at the earliest)."""
        assert self.due_t is not None
        n = math.floor((now - self.due_t) / self.period_s + EARLY_S)
        return self.due_t + (n if n > 0 else 0) * self.period_s

    def begin(self, now: float) -> float | None:
        """Work begins at ``now``: the due time it stands for, the grid's last at or before
        ``now`` (on the wall clock a tick begins a little after its due time; after an overrun
        the due times missed are skipped, not made up), or ``None`` for work before its due time
        (a capture's tick between two views, a hold's last tick at the end of its duration): no
        tick of the schedule."""
        if self.due_t is None:
            return now
        if now < self.due_t - EARLY_S:
            return None
        self.due_t = self._last_due(now)
        return self.due_t

    def advance(self, now: float) -> float:
        """After the work due at :attr:`due_t` (done, and ended at ``now``): the next due time, the
        last one's + the period; when that has passed too (an overrun: a slow device, a pause),
        the grid's last due time at or before ``now`` -- the next work at once, standing for it,
        then on the grid again (the phase kept: re-anchored at ``now``, the ticks left the
        samples' grid for the rest of the run). Work done before its due time (a hold's last tick,
        at the end of its duration) leaves the due time as it was."""
        if self.due_t is None:
            self.due_t = now + self.period_s
            return self.due_t
        if now < self.due_t - EARLY_S:
            return self.due_t
        nxt = self.due_t + self.period_s
        self.due_t = nxt if nxt > now + EARLY_S else self._last_due(now)
        return self.due_t

    def taken(self, at: float) -> None:
        """A sample taken at the tick that stands for ``at`` (its scheduled time, at or after
        :attr:`due_t` less :attr:`early_s`): the next one due a period after the one it stood for,
        or a period after ``at`` when that has passed too (the samples were late by a period or
        more: re-anchored, none made up)."""
        nxt = (at if self.due_t is None else self.due_t) + self.period_s
        self.due_t = nxt if nxt > at + EARLY_S else at + self.period_s
