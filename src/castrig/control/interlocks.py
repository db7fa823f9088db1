"""Interlocks: watch a condition, and act when it holds too long — like Bluesky's suspenders,
but for safety.

Each interlock has a documented action:

=====================  ===============================================  ====================
interlock              trips when                                        action
=====================  ===============================================  ====================
``sensor_stale``       no valid near-membrane RH reading for            abort (safe state):
                       ``control.sensor_stale_s``                       the loop is blind
``sensor_range``       near-membrane RH outside the profile's           abort: the sensor
                       ``rh_sensor_range_pct`` (default 0–100)          is broken
``rh_band``            evaporate: RH outside setpoint ± band for         abort: the film
                       longer than ``max_out_of_band_s``                 cannot be held
``rh_band_hold``       wait: RH outside setpoint ± 3 %RH                 hold: the step's
                                                                          clock stops until
                                                                          RH is back within
                                                                          ± 1.5 %RH for 30 s
``mfc_following``      an MFC's flow differs from its setpoint by more   abort
                       than max(0.1 slpm, 5 % of full scale) for 30 s
                       (or 3 control periods, if longer)
``sensor_frozen``      the near-membrane RH and T readings stay          abort: the loop is
                       bit-identical for ``control.sensor_frozen_s``    blind (stuck sensor)
``pump_alarm``         a pump reports an alarm (stall, reset, comms      abort
                       timeout …) or an error
``device_comms``       a pump, MFC or chamber gives no (intelligible)    abort; shorter gaps
                       answer for ``control.comms_lost_s`` (10 s)        are ridden out with
                                                                         a ``warning`` event
                                                                         (recovery: retried
                                                                         every tick)
``camera_missing``     the camera fails to deliver a frame               abort
=====================  ===============================================  ====================

Every trip and every clear is an event in the run. Bounded retries below the interlocks:
drivers retry a query (never a pump's ``RUN``) 3 times on a timeout or garbled reply; the safe
state retries what it could not verify for ``control.safe_state_retry_s`` (15 s).

``sensor_stale`` and ``device_comms`` count from the last moment the sensor or device was known to
answer (the start of the first exchange it failed) and are checked after every exchange and at
every tick, not once per tick: when several devices hang at once, a tick that waits on each in
turn overruns a limit by at most the exchange in hand (that device's timeout x tries), not by
the sum of every device's retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Action = Literal["hold", "abort"]


@dataclass
class Trip:
    name: str
    action: Action
    message: str


class Monitor:
    """A condition that must persist ``for_s`` before it trips, and clears with hysteresis.

    ``update(now, bad, clear_ok)``: ``bad`` is the trip condition, ``clear_ok`` the (stricter)
    condition for clearing; a tripped monitor clears once ``clear_ok`` has held ``clear_for_s``.
    """

    def __init__(self, name: str, action: Action, *, for_s: float, clear_for_s: float = 0.0):
        self.name = name
        self.action = action
        self.for_s = for_s
        self.clear_for_s = clear_for_s
        self.bad_since: float | None = None
        self.ok_since: float | None = None
        self.tripped = False

    def reset(self) -> None:
        self.bad_since = self.ok_since = None
        self.tripped = False

    def update(self, now: float, bad: bool, clear_ok: bool | None = None) -> Literal["tripped", "cleared", None]:
        clear_ok = (not bad) if clear_ok is None else clear_ok
        if not self.tripped:
            if bad:
                if self.bad_since is None:
                    self.bad_since = now
                if now - self.bad_since >= self.for_s:
                    self.tripped = True
                    self.ok_since = None
                    return "tripped"
            else:
                self.bad_since = None
            return None
        if clear_ok:
            if self.ok_since is None:
                self.ok_since = now
            if now - self.ok_since >= self.clear_for_s:
                self.reset()
                return "cleared"
        else:
            self.ok_since = None
        return None


class InterlockTripped(Exception):
    """Raised by the runner when an abort-action interlock trips."""

    def __init__(self, trip: Trip):
        self.trip = trip
        super().__init__(f"interlock {trip.name}: {trip.message}")
