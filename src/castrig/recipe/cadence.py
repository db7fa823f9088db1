"""Fixed-rate schedules for the runner's periodic work (control ticks, samples).

A period slept *after* each tick's exchanges stretched it by their line time: on the overnight
recipe the ticks came 1.12 s apart for ``control_period_s: 1`` and the samples 5.5-5.7 s apart
for ``sample_period_s: 5``. Here each due time is the last one's plus the period, whatever the
work in between took; when the work overran (a slow line, a pause, a suspended computer), the
schedule is re-anchored at that moment: no burst of catch-up ticks or samples. The control ticks
keep one schedule for the whole run (``Runner._ticks``): a hold that started its own put the
ticks out of step with the samples, 4.2-5.6 s apart across step boundaries for 5 s.
"""

from __future__ import annotations

#: A due time this close ahead (s) counts as come: due times are sums of periods, and a tick's
#: time and a sample's due time may differ in the last bits of a float.
EARLY_S = 1e-6


class FixedRate:
    """Due times ``t0, t0 + p, t0 + 2p, …``, re-anchored when the work overran one."""

    def __init__(self, period_s: float, due_t: float | None = None, *, early_s: float = EARLY_S) -> None:
        self.period_s = period_s
        #: The next due time; ``None``: due at once (the first call of :meth:`due`).
        self.due_t = due_t
        #: :meth:`due` this long before the due time (samples: half a control period, so that they
        #: are taken at the tick nearest their due time; on the wall clock a tick starts a little
        #: after its own due time, and a sample due that little after the next tick waited a whole
        #: control period for the one after: 2 s between samples meant to come every second)
        self.early_s = early_s

    def due(self, now: float) -> bool:
        return self.due_t is None or now >= self.due_t - self.early_s

    def start(self, now: float) -> None:
        """The work done now is the schedule's first (the run's first tick; a pause's, re-anchored)."""
        self.due_t = now

    def advance(self, now: float) -> float:
        """After the work due at :attr:`due_t` (done, and ended at ``now``): the next due time, the
        last one's + the period, or ``now`` when that has passed (the next work at once, the
        schedule re-anchored there). Work done before its due time (a hold's last tick, at the
        end of its duration) leaves the due time as it was."""
        if self.due_t is not None and now < self.due_t - EARLY_S:
            return self.due_t
        nxt = (now if self.due_t is None else self.due_t) + self.period_s
        self.due_t = max(nxt, now)
        return self.due_t

    def taken(self, now: float) -> None:
        """A sample taken at ``now`` (its tick's time, at or after :attr:`due_t`): the next one
        due a period after the one it stood for, or a period after ``now`` when that has passed
        too (the samples were late by a period or more: re-anchored, none made up)."""
        nxt = (now if self.due_t is None else self.due_t) + self.period_s
        self.due_t = nxt if nxt > now + EARLY_S else now + self.period_s
