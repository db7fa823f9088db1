"""Hold RH near the membrane: simple-pid on the wet fraction of a constant total flow.

wet = f·Q, dry = (1 − f)·Q. The PID's clock is our clock (``time_fn``), so the loop runs the same
in virtual and real time. A setpoint change is bumpless: the integral term is re-seeded with the
feed-forward estimate of the new wet fraction (mixing the two lines' RH), so the output moves
straight to where it will settle and the PID only trims leaks, evaporation and drift.
Output limits clamp both the output and the integral (simple-pid's anti-windup).
"""

from __future__ import annotations

from dataclasses import dataclass

from simple_pid import PID

from castrig.clock import Clock
from castrig.devices.roles import ChamberReading, FlowController, HumidityChamber


@dataclass
class LoopGains:
    kp: float
    ki: float
    kd: float
    total_flow_slpm: float
    wet_fraction_min: float = 0.0
    wet_fraction_max: float = 1.0
    dry_line_rh_pct: float = 1.0
    wet_line_rh_pct: float = 98.0
    #: Integrate only within this distance of the setpoint (conditional integration): during a
    #: large step the feed-forward and P term do the work, and the integral cannot wind up.
    integrate_band_rh_pct: float = 3.0


class Ramp:
    """A setpoint that moves at a bounded rate from where it was to where it should go."""

    def __init__(self, start: float, target: float, rate_per_s: float | None, t0: float):
        self.start, self.target, self.rate, self.t0 = start, target, rate_per_s, t0

    def value(self, t: float) -> float:
        if not self.rate:
            return self.target
        step = self.rate * max(0.0, t - self.t0)
        if self.target >= self.start:
            return min(self.target, self.start + step)
        return max(self.target, self.start - step)

    def done(self, t: float) -> bool:
        return self.value(t) == self.target


class _SetpointHolder:
    """The setpoint (and its ramp) that both kinds of loop share."""

    clock: Clock
    ramp: Ramp | None

    @property
    def setpoint_rh_pct(self) -> float | None:
        """Where the setpoint is going (the ramp's end)."""
        return self.ramp.target if self.ramp else None

    def current_setpoint(self) -> float | None:
        """Where the setpoint is now (on the ramp)."""
        return self.ramp.value(self.clock.now()) if self.ramp else None

    def _new_ramp(self, rh_pct: float, ramp_rh_pct_per_min: float | None, measured_rh_pct: float | None) -> Ramp:
        """A ramp from the current setpoint (or the measurement, at first) to ``rh_pct``."""
        start = self.current_setpoint()
        if start is None:
            start = measured_rh_pct if measured_rh_pct is not None else rh_pct
        rate = ramp_rh_pct_per_min / 60.0 if ramp_rh_pct_per_min else None
        return Ramp(start, rh_pct, rate, self.clock.now())


class MfcRhLoop(_SetpointHolder):
    """Two Alicat-style MFCs mixing dry and saturated air."""

    kind = "mfc"

    def __init__(self, gains: LoopGains, clock: Clock, dry: FlowController, wet: FlowController):
        self.gains = gains
        self.clock = clock
        self.dry = dry
        self.wet = wet
        self.pid = PID(
            gains.kp,
            gains.ki,
            gains.kd,
            setpoint=0.0,
            sample_time=None,
            output_limits=(gains.wet_fraction_min, gains.wet_fraction_max),
            time_fn=clock.now,
            auto_mode=False,
        )
        self.ramp: Ramp | None = None
        self.wet_fraction = 0.0
        self.active = False
        self._sent: dict[str, float] = {}

    def feedforward(self, rh_pct: float) -> float:
        g = self.gains
        f = (rh_pct - g.dry_line_rh_pct) / (g.wet_line_rh_pct - g.dry_line_rh_pct)
        return min(g.wet_fraction_max, max(g.wet_fraction_min, f))

    def set_setpoint(self, rh_pct: float, ramp_rh_pct_per_min: float | None = None, measured_rh_pct: float | None = None) -> None:
        self.ramp = self._new_ramp(rh_pct, ramp_rh_pct_per_min, measured_rh_pct)
        sp = self.ramp.value(self.clock.now())
        # Bumpless: restart the PID from the feed-forward output of the new setpoint.
        self.pid.set_auto_mode(False)
        self.pid.setpoint = sp
        self.pid.set_auto_mode(True, last_output=self.feedforward(sp))
        self.active = True

    def update(self, rh_measured_pct: float) -> float:
        """One control step: returns the wet fraction sent to the MFCs."""
        if not self.active or self.ramp is None:
            return self.wet_fraction
        now = self.clock.now()
        sp = self.ramp.value(now)
        if sp != self.pid.setpoint:
            # Ramp: move the integral with the feed-forward so the ramp is tracked, not lagged.
            self.pid._integral += self.feedforward(sp) - self.feedforward(self.pid.setpoint)  # noqa: SLF001
            self.pid.setpoint = sp
        self.pid.Ki = self.gains.ki if abs(sp - rh_measured_pct) <= self.gains.integrate_band_rh_pct else 0.0
        f = float(self.pid(rh_measured_pct))
        self.apply(f)
        return f

    def apply(self, wet_fraction: float) -> None:
        """Send the flows, skipping a controller whose setpoint would not change."""
        q = self.gains.total_flow_slpm
        self.wet_fraction = wet_fraction
        wet, dry = round(wet_fraction * q, 3), round((1.0 - wet_fraction) * q, 3)
        if wet != self._sent.get("wet"):
            self.wet.set_flow_slpm(wet)
            self._sent["wet"] = wet
        if dry != self._sent.get("dry"):
            self.dry.set_flow_slpm(dry)
            self._sent["dry"] = dry

    def stop(self) -> None:
        """Leave closed-loop control (the safe state then sets the flows)."""
        self._sent.clear()
        self.active = False
        self.ramp = None
        self.pid.set_auto_mode(False)


@dataclass
class TrimGains:
    """Gains of the outer loop on a chamber controller's RH set point (%RH per %RH of error)."""

    kp: float
    ki: float
    kd: float = 0.0
    #: The set point sent stays inside these (the chamber's range, off its dry level).
    setpoint_limits: tuple[float, float] = (1.0, 99.0)
    integrate_band_rh_pct: float = 3.0


class ChamberRhLoop(_SetpointHolder):
    """A chamber with its own controller: we send the setpoint and supervise the reading.

    With :class:`TrimGains` (``control.chamber_kp/ki/kd``, from ``castrig tune rh``) an outer PID
    on the near-membrane sensor moves the set point sent to the chamber (cascade): it starts
    from the setpoint itself (bumpless), and the chamber's own controller is the inner loop.
    """

    kind = "chamber"

    def __init__(self, clock: Clock, chamber: HumidityChamber, trim: TrimGains | None = None):
        self.clock = clock
        self.chamber = chamber
        self.ramp: Ramp | None = None
        self._sent: float | None = None
        self.active = False
        self.wet_fraction = float("nan")
        self.trim = trim
        self.pid: PID | None = None
        if trim is not None:
            self.pid = PID(trim.kp, trim.ki, trim.kd, setpoint=0.0, sample_time=None,
                           output_limits=trim.setpoint_limits, time_fn=clock.now, auto_mode=False)

    @classmethod
    def from_control(cls, clock: Clock, chamber: HumidityChamber, control: object) -> "ChamberRhLoop":
        """The loop a profile's ``control`` section asks for (trimmed when any chamber gain is set)."""
        kp, ki, kd = (float(getattr(control, f"chamber_{k}", 0.0)) for k in ("kp", "ki", "kd"))
        if not (kp or ki or kd):
            return cls(clock, chamber)
        lo, hi = 1.0, 99.0
        rh_range = getattr(chamber, "rh_range", None)
        if callable(rh_range):
            try:
                r_lo, r_hi = rh_range()
                lo, hi = max(lo, r_lo + 1.0), min(hi, r_hi - 1.0)
            except Exception:  # noqa: BLE001 - the limits are a refinement; the defaults are safe
                pass
        return cls(clock, chamber, TrimGains(kp, ki, kd, setpoint_limits=(lo, hi)))

    def set_setpoint(self, rh_pct: float, ramp_rh_pct_per_min: float | None = None, measured_rh_pct: float | None = None) -> None:
        self.ramp = self._new_ramp(rh_pct, ramp_rh_pct_per_min, measured_rh_pct)
        if not self.chamber.humidifier_on():
            self.chamber.set_humidifier(True)
        self.active = True
        sp = self.ramp.value(self.clock.now())
        if self.pid is not None:
            self.pid.set_auto_mode(False)
            self.pid.setpoint = sp
            self.pid.set_auto_mode(True, last_output=sp)
        self._send(sp)

    def _send(self, value: float) -> None:
        sp = round(value, 1)
        if sp != self._sent:
            self.chamber.set_rh_setpoint(sp)
            self._sent = sp

    def update(self, rh_measured_pct: float) -> float:
        if self.active and self.ramp is not None:
            sp = self.ramp.value(self.clock.now())
            if self.pid is None or self.trim is None:
                self._send(sp)
            else:
                if sp != self.pid.setpoint:
                    self.pid._integral += sp - self.pid.setpoint  # noqa: SLF001 - track the ramp
                    self.pid.setpoint = sp
                near = abs(sp - rh_measured_pct) <= self.trim.integrate_band_rh_pct
                self.pid.Ki = self.trim.ki if near else 0.0
                self._send(float(self.pid(rh_measured_pct)))
        return self.wet_fraction

    def read(self) -> ChamberReading:
        return self.chamber.read()

    def stop(self) -> None:
        self.active = False
        self.ramp = None
        self._sent = None
        if self.pid is not None:
            self.pid.set_auto_mode(False)
