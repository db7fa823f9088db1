"""Commissioning the RH loop: a bounded step test, a FOPDT model, SIMC PI gains.

The method
----------
1. **Step test** (open loop, bounded): hold the actuator at the level that gives ``rh_lo``
   until the near-membrane RH is steady, step it to the level for ``rh_hi`` and record until
   steady again. The actuator is the wet fraction of the total flow for a two-MFC chamber, or the
   RH set point sent to a chamber with its own controller (which then acts as the inner loop).
   Bounds: each phase ends at ``max_phase_s``; the test stops at once (and the rig goes to the
   safe state) if the RH leaves ``[rh_floor, rh_ceiling]``. Every wait goes through the clock.
2. **Identification**: a first-order-plus-dead-time model ``y = y0 + K·Δu·(1 − e^(−(t−t_s−θ)/τ))``
   fitted to the recorded response of every actuator change by non-linear least squares
   (:func:`scipy.optimize.least_squares`, bounded, from a two-point initial guess). The model
   lumps the chamber's mixing, the sensor's lag and the control period's hold.
3. **Tuning rule**: SIMC (Skogestad, *Simple analytic rules for model reduction and PID
   controller tuning*, J. Process Control 13 (2003) 291-309), PI for a FOPDT model:
   ``Kc = τ / (K·(τc + θ))``, ``τI = min(τ, 4·(τc + θ))``, ``kd = 0``, with θ the dead time
   plus half the control period (a sampled loop's hold). simple-pid's parallel form then takes
   ``kp = Kc``, ``ki = Kc/τI``. The closed-loop time constant defaults to ``τc = 4θ``, SIMC's
   smoother, more robust side rather than its "tight" ``τc = θ``: the FOPDT lumps a second lag
   (the probe's ≈ 10 s) and the sensor is noisy, and on the twin ``τc = θ`` overshoots a 0.5 L
   two-MFC chamber by 2.6 %RH (``3θ``: 1.4 %RH and 3.3 τ to settle), where ``4θ`` keeps every
   chamber of 0.5-5 L within 1 %RH of overshoot and 2.3 τ (``benchmarks/rh_control.py
   --tuned``). ``--tau-c`` sets it.
4. **Prediction**: the closed loop (the same PI with feed-forward, output limits and the loop's
   conditional integration) on the identified model, for a step from ``rh_lo`` to ``rh_hi``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import least_squares

from castrig.errors import BadInput

#: SIMC's closed-loop time constant per dead time (see the module docstring).
TAU_C_PER_THETA = 4.0
#: Loop kinds: the actuator the loop moves.
MFC, CHAMBER = "mfc", "chamber"


@dataclass
class StepTest:
    """A recorded open-loop test: times (s from its start), actuator and near-membrane RH."""

    kind: str
    t_s: list[float]
    u: list[float]
    rh_pct: list[float]
    u_label: str
    aborted: str | None = None

    def levels_pct(self) -> tuple[float, float] | None:
        """The RH each phase ended at (its last 10 readings' mean), None before the step: what
        the test reached, which a wet line short of --to makes less than it asked."""
        u, y = np.asarray(self.u), np.asarray(self.rh_pct)
        if len(u) == 0 or not (u != u[0]).any():
            return None
        return float(y[u == u[0]][-10:].mean()), float(y[u != u[0]][-10:].mean())


@dataclass
class FopdtModel:
    """First order plus dead time: gain (RH per actuator unit), time constant and dead time (s)."""

    gain: float
    tau_s: float
    dead_time_s: float
    y0: float
    u0: float
    rms_pct: float = float("nan")

    def response(self, t_s: np.ndarray, t_changes: Sequence[float], du: Sequence[float]) -> np.ndarray:
        """RH at ``t_s`` for actuator changes ``du`` at ``t_changes`` (from ``u0``/``y0``)."""
        y = np.full_like(np.asarray(t_s, float), self.y0)
        for tc, d in zip(t_changes, du):
            age = np.asarray(t_s, float) - tc - self.dead_time_s
            y += np.where(age > 0, self.gain * d * (1.0 - np.exp(-np.clip(age, 0, None) / self.tau_s)), 0.0)
        return y


@dataclass
class PiGains:
    """Gains proposed by the SIMC rule, in simple-pid's parallel form."""

    kp: float
    ki: float
    kd: float
    tau_c_s: float
    tau_i_s: float
    rule: str = "SIMC PI (Skogestad 2003)"


@dataclass
class TuneResult:
    kind: str
    test: StepTest
    model: FopdtModel
    gains: PiGains
    predicted_t_s: list[float] = field(default_factory=list)
    predicted_rh_pct: list[float] = field(default_factory=list)
    #: None: the predicted RH is still outside the band when the prediction ends (it never settles)
    predicted_settle_s: float | None = float("nan")
    predicted_overshoot_pct: float = float("nan")
    predicted_from_pct: float = 40.0
    predicted_to_pct: float = 70.0
    #: the model's steady RH at the loop's actuator limits (low, high): where it can hold RH at all
    reach_pct: tuple[float, float] = (float("nan"), float("nan"))

    def to_dict(self) -> dict[str, Any]:
        end = self.predicted_rh_pct[-1] if self.predicted_rh_pct else None
        return {"kind": self.kind, "model": asdict(self.model), "gains": asdict(self.gains),
                "predicted_settle_s": self.predicted_settle_s, "predicted_overshoot_pct": self.predicted_overshoot_pct,
                "aborted": self.test.aborted, "predicted_settled": self.predicted_settle_s is not None,
                "predicted_end_rh_pct": end, "predicted_to_rh_pct": self.predicted_to_pct}

    def prediction_text(self) -> str:
        """What the predicted step does, said as it is: a step the loop cannot finish (the rig's
        wet line cannot reach the setpoint, or it settles after the horizon) is not "settles in"
        the horizon's length."""
        head = f"predicted step {self.predicted_from_pct:g} -> {self.predicted_to_pct:g} %RH: "
        if self.predicted_settle_s is not None:
            return head + (f"settles (±{SETTLE_BAND_PCT:g} %RH) in {self.predicted_settle_s:.0f} s, "
                           f"overshoot {self.predicted_overshoot_pct:.2f} %RH")
        horizon = self.predicted_t_s[-1] if self.predicted_t_s else 0.0
        end = self.predicted_rh_pct[-1] if self.predicted_rh_pct else float("nan")
        text = head + (f"does NOT settle (±{SETTLE_BAND_PCT:g} %RH) within the {horizon:.0f} s predicted: RH ends at "
                       f"{end:.1f} %RH")
        lo, hi = self.reach_pct
        if not lo - SETTLE_BAND_PCT <= self.predicted_to_pct <= hi + SETTLE_BAND_PCT:
            what = "wet fraction (control.wet_fraction_min/max)" if self.kind == MFC else "chamber set point"
            text += (f"; the model holds {lo:.1f}-{hi:.1f} %RH at the limits of the {what}: this rig cannot hold "
                     f"{self.predicted_to_pct:g} %RH")
        return text


# -- identification ------------------------------------------------------------------------------
def _changes(t: np.ndarray, u: np.ndarray) -> tuple[list[float], list[float]]:
    idx = np.nonzero(np.diff(u))[0] + 1
    return [float(t[i]) for i in idx], [float(u[i] - u[i - 1]) for i in idx]


def identify_fopdt(t_s: Sequence[float], u: Sequence[float], rh_pct: Sequence[float]) -> FopdtModel:
    """Fit a FOPDT model to a test with at least one actuator change (least squares, bounded).

    The actuator is piecewise constant (``u[i]`` holds from ``t_s[i]`` on); the first change
    must come after a steady stretch, which fixes ``y0``. Raises ``ValueError`` when the record
    cannot identify a model (no change, no response).
    """
    t, uu, y = (np.asarray(a, float) for a in (t_s, u, rh_pct))
    t_changes, du = _changes(t, uu)
    if not t_changes:
        raise ValueError("the actuator never changed: nothing to identify")
    # The baseline is the end of the first hold (its start may still drift from the room's RH).
    keep = t >= t[0] + 0.6 * (t_changes[0] - t[0])
    t, uu, y = t[keep], uu[keep], y[keep]
    before = y[t < t_changes[0]]
    y0_guess = float(np.mean(before[-max(3, len(before) // 4):])) if len(before) else float(y[0])
    tail = y[-max(3, len(y) // 10):]
    k_guess = (float(np.mean(tail)) - y0_guess) / float(np.sum(du))
    if not math.isfinite(k_guess) or abs(k_guess) < 1e-9:
        raise ValueError("the RH did not respond to the step: nothing to identify")
    # Two-point guesses from the first step: 28 % and 63 % of the way (Smith's method).
    after = (t >= t_changes[0]) & (t < (t_changes[1] if len(t_changes) > 1 else np.inf))
    ta, ya = t[after] - t_changes[0], (y[after] - y0_guess) / (k_guess * du[0])
    t28 = float(ta[np.argmax(ya >= 0.283)]) if np.any(ya >= 0.283) else float(ta[-1]) / 3
    t63 = float(ta[np.argmax(ya >= 0.632)]) if np.any(ya >= 0.632) else float(ta[-1]) / 2
    tau0 = max(1.5 * (t63 - t28), 1.0)
    theta0 = max(t63 - tau0, 0.0)
    span = float(t[-1] - t[0])
    u0 = float(uu[0])

    def residuals(p: np.ndarray) -> np.ndarray:
        m = FopdtModel(p[0], p[1], p[2], p[3], u0)
        return m.response(t, t_changes, du) - y

    k_lo, k_hi = sorted((k_guess / 20, k_guess * 20))
    lower = [k_lo, 0.1, 0.0, y0_guess - 20]
    upper = [k_hi, 10 * span, span / 2, y0_guess + 20]
    x0 = np.clip([k_guess, tau0, theta0, y0_guess], np.add(lower, 1e-12), np.subtract(upper, 1e-12))
    fit = least_squares(residuals, x0, bounds=(lower, upper), x_scale="jac")
    k, tau, theta, y0 = (float(v) for v in fit.x)
    rms = float(np.sqrt(np.mean(fit.fun ** 2)))
    return FopdtModel(k, tau, theta, y0, u0, rms)


# -- the tuning rule -----------------------------------------------------------------------------
def simc_pi(model: FopdtModel, control_period_s: float, tau_c_s: float | None = None) -> PiGains:
    """SIMC PI gains for ``model`` on a loop sampled every ``control_period_s``.

    ``θ`` is the model's dead time plus half the control period (the sample-and-hold of a
    digital loop); ``τc`` defaults to ``4θ`` (see the module docstring), and is never below one
    control period.
    """
    theta = model.dead_time_s + control_period_s / 2.0
    tau_c = max(TAU_C_PER_THETA * theta if tau_c_s is None else tau_c_s, control_period_s)
    kc = model.tau_s / (abs(model.gain) * (tau_c + theta))
    tau_i = min(model.tau_s, 4.0 * (tau_c + theta))
    return PiGains(kp=kc, ki=kc / tau_i, kd=0.0, tau_c_s=tau_c, tau_i_s=tau_i,
                   rule=f"SIMC PI (Skogestad 2003), tau_c = {tau_c / theta:.2g} theta")


# -- prediction ------------------------------------------------------------------------------------
def predict_step(model: FopdtModel, gains: PiGains, *, rh_from: float, rh_to: float, control_period_s: float,
                 u_limits: tuple[float, float], duration_s: float, feedforward: Any = None,
                 integrate_band_pct: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """The closed-loop step on the model: the PI (as the loop runs it) sampled every period.

    ``feedforward(rh) -> u`` is where the loop starts the actuator at a setpoint change (default:
    the model's own static inverse). Returns (t_s, rh_pct) on a grid of a tenth of the period.
    """
    ff = feedforward or (lambda rh: model.u0 + (rh - model.y0) / model.gain)
    dt = control_period_s / 10.0
    n = int(duration_s / dt) + 1
    delay = int(round(model.dead_time_s / dt))
    # Start steady at ``rh_from`` (where the loop had brought it), then step the setpoint.
    u_start = min(max(model.u0 + (rh_from - model.y0) / model.gain, u_limits[0]), u_limits[1])
    y_ss = model.y0 + model.gain * (u_start - model.u0)
    y_lag = y_ss  # the first-order state, without dead time
    u_hist = [u_start] * (delay + 1)
    integral = min(max(ff(rh_to), u_limits[0]), u_limits[1])
    u = integral
    decay = math.exp(-dt / model.tau_s)
    t_out, y_out = np.empty(n), np.empty(n)
    y = y_ss
    steps_per_period = max(1, int(round(control_period_s / dt)))
    for i in range(n):
        if i % steps_per_period == 0:
            err = rh_to - y
            if abs(err) <= integrate_band_pct:
                integral = min(max(integral + gains.ki * err * control_period_s, u_limits[0]), u_limits[1])
            u = min(max(gains.kp * err + integral, u_limits[0]), u_limits[1])
        u_hist.append(u)
        u_del = u_hist[-1 - delay]
        target = model.y0 + model.gain * (u_del - model.u0)
        y_lag = target + (y_lag - target) * decay
        y = y_lag
        t_out[i], y_out[i] = i * dt, y
    return t_out, y_out


#: The band (± %RH) a predicted step settles within.
SETTLE_BAND_PCT = 1.0


def settle_and_overshoot(t_s: np.ndarray, rh_pct: np.ndarray, target: float, band: float = SETTLE_BAND_PCT,
                         rising: bool = True) -> tuple[float | None, float]:
    """Time of the last sample outside ``target ± band`` (0 if none; None if the last sample is
    outside: it has not settled by the end -- that end is no settling time) and the overshoot (%RH)."""
    rh = np.asarray(rh_pct, float)
    outside = np.nonzero(np.abs(rh - target) > band)[0]
    if len(outside) and outside[-1] == len(rh) - 1:
        return None, float(max(0.0, (rh.max() - target) if rising else (target - rh.min())))
    settle = float(np.asarray(t_s)[outside[-1]]) if len(outside) else 0.0
    over = float(max(0.0, (rh.max() - target) if rising else (target - rh.min())))
    return settle, over


# -- the test on a rig ---------------------------------------------------------------------------
def _steady(t: list[float], y: list[float], t_phase: float, min_s: float, tol_pct: float) -> bool:
    """Steady: past ``min_s`` in the phase, and the fitted drift over the last window (40 % of
    the phase, at least ``min_s / 2``) is below ``tol_pct``."""
    elapsed = t[-1] - t_phase
    if elapsed < min_s:
        return False
    window = max(min_s / 2, 0.4 * elapsed)
    tt = np.asarray(t)
    sel = tt >= t[-1] - window
    if sel.sum() < 5:
        return False
    slope = np.polyfit(tt[sel], np.asarray(y)[sel], 1)[0]
    return abs(slope) * window < tol_pct


def step_test(rig: Any, *, rh_lo: float, rh_hi: float, max_phase_s: float = 3600.0, min_phase_s: float = 60.0,
              rh_floor: float = 5.0, rh_ceiling: float = 90.0, steady_tol_pct: float = 0.5) -> StepTest:
    """Run the bounded open-loop step test on ``rig`` (see the module docstring).

    The caller brings the rig to the safe state afterwards (also when this raises).
    """
    from castrig.control.rh_loop import LoopGains, MfcRhLoop

    if not 0 < rh_lo < rh_hi < 100:
        raise BadInput(f"step test {rh_lo:g} -> {rh_hi:g} %RH: allowed 0 < low < high < 100", field="--from/--to")
    c, sim = rig.profile.control, rig.profile.sim
    period = c.control_period_s
    if rig.dry_mfc is not None and rig.wet_mfc is not None:
        kind = MFC
        gains = LoopGains(c.kp, c.ki, c.kd, c.total_flow_slpm, c.wet_fraction_min, c.wet_fraction_max,
                          dry_line_rh_pct=sim.dry_line_rh_pct, wet_line_rh_pct=sim.bubbler_rh_pct)
        mixer = MfcRhLoop(gains, rig.clock, rig.dry_mfc, rig.wet_mfc)
        levels = (mixer.feedforward(rh_lo), mixer.feedforward(rh_hi))

        def actuate(v: float) -> None:
            mixer.apply(v)
        label = "wet fraction"
    elif rig.chamber is not None:
        kind = CHAMBER
        levels = (rh_lo, rh_hi)
        rig.chamber.set_humidifier(True)

        def actuate(v: float) -> None:
            rig.chamber.set_rh_setpoint(round(v, 1))
        label = "chamber set point %RH"
    else:
        raise BadInput("the profile has neither a dry/wet MFC pair nor a chamber: no RH loop to tune",
                       field="devices")
    test = StepTest(kind, [], [], [], label)
    t0 = rig.clock.now()
    n = 0
    # RH may start outside the bounds (a chamber dry after a run's safe state, at 1 %RH): the
    # first phase brings it to the starting level, and the bounds hold from when it is inside
    # them (it had been "left the test's bounds" at the first reading, exit 2, nothing run).
    # Until then it must come closer: moving away by more than MOVE_AWAY_PCT (a humidifier
    # stuck on) stops the test. Once inside, a reading beyond them by more than a sensor's noise
    # (1 %RH), or outside them three times in a row, stops it.
    entered = False
    closest = math.inf  # %RH between the bounds and the nearest reading so far, before entering
    outside = 0
    targets = (rh_lo, rh_hi)
    for phase, level in enumerate(levels):
        actuate(level)
        t_phase = rig.clock.now() - t0
        rh_start: float | None = None
        while True:
            rh = rig.rh_near.read().rh_pct
            now = rig.clock.now() - t0
            test.t_s.append(now)
            test.u.append(level)
            test.rh_pct.append(rh)
            for pump in rig.pumps().values():
                pump.state()  # safe-mode keep-alive, as the runner does
            rh_start = rh if rh_start is None else rh_start
            inside = rh_floor <= rh <= rh_ceiling
            beyond = max(rh_floor - rh, rh - rh_ceiling, 0.0)
            entered = entered or inside
            outside = 0 if inside else outside + 1
            if entered and (beyond > 1.0 or outside >= 3):
                test.aborted = f"RH {rh:.1f} %RH left the test's bounds {rh_floor:g}-{rh_ceiling:g} %RH"
                return test
            if not entered:
                closest = min(closest, beyond)
                if beyond > closest + MOVE_AWAY_PCT:
                    test.aborted = (f"RH {rh:.1f} %RH moves away from the test's bounds {rh_floor:g}-{rh_ceiling:g} %RH "
                                    "instead of towards the starting level")
                    return test
            if now - t_phase >= max_phase_s:
                if phase == 0:
                    test.aborted = (f"RH not steady after {max_phase_s:g} s at the starting level" if entered else
                                    f"RH {rh:.1f} %RH not within the test's bounds {rh_floor:g}-{rh_ceiling:g} %RH "
                                    f"after {max_phase_s:g} s at the starting level")
                    return test
                break
            # Steady only once RH has answered the phase: a flat line during a dead time (a chamber
            # 90 s before it moves) read as steady at 60 s, and the step phase ended before the
            # step showed. Far from its target, RH must first have come 30 % of the way, or have
            # stayed put for UNANSWERED_S (a loop that does not move RH: then said by the fit,
            # "did not rise", not after an hour as "not steady").
            far = abs(targets[phase] - rh_start)
            answered = far <= 3.0 or abs(rh - rh_start) >= 0.3 * far or now - t_phase >= UNANSWERED_S
            if entered and answered and _steady(test.t_s, test.rh_pct, t_phase, min_phase_s, steady_tol_pct):
                break
            n += 1
            rig.clock.sleep_until(t0 + n * period)
    return test


#: How long a step-test phase waits for RH to answer before a flat line counts as steady (longer
#: than a chamber's dead time, a minute or two).
UNANSWERED_S = 300.0
#: How much farther from the bounds than its closest a reading outside them may be before the step
#: test stops (a chamber still drying, or noisy, before it turns towards the starting level).
MOVE_AWAY_PCT = 3.0
#: The largest fit RMS a step test's model may have, as a share of the step's RH change.
MAX_RMS_OF_STEP = 0.1


def tune(rig: Any, *, rh_lo: float = 40.0, rh_hi: float = 60.0, predict_from: float = 40.0, predict_to: float = 70.0,
         max_phase_s: float = 3600.0, tau_c_s: float | None = None) -> TuneResult:
    """Step test, FOPDT identification, SIMC gains and the predicted closed-loop step."""
    test = step_test(rig, rh_lo=rh_lo, rh_hi=rh_hi, max_phase_s=max_phase_s)
    if test.aborted and len(set(test.u)) < 2:
        if "not steady" in test.aborted:  # the time given was too short for this chamber: say which option gives it
            raise BadInput(f"step test stopped before the step: {test.aborted} (allowed: a --max-phase-s the chamber "
                           f"settles within, up to 86400 s; nothing written)", field="--max-phase-s")
        raise BadInput(f"step test stopped before the step: {test.aborted} (nothing written)")
    c = rig.profile.control
    what = (f"step test {rh_lo:g} -> {rh_hi:g} %RH on {test.u_label}" if test.kind == MFC
            else f"step test {rh_lo:g} -> {rh_hi:g} %RH on the chamber's set point")
    try:
        model = identify_fopdt(test.t_s, test.u, test.rh_pct)
    except ValueError as exc:  # nothing moved: the limits or levels leave the loop nothing to do
        limits = (f"control.wet_fraction_min/max = {c.wet_fraction_min:g}/{c.wet_fraction_max:g}, " if test.kind == MFC else "")
        raise BadInput(f"{what}: {exc} (check {limits}--from/--to: levels the rig reaches; nothing written)",
                       field="--from") from None
    u, y = np.asarray(test.u), np.asarray(test.rh_pct)
    rise = float(y[u != u[0]][-10:].mean() - y[u == u[0]][-10:].mean())  # (the last readings of each phase)
    # more wet gas (or a higher set point) must raise the RH: any other model is not this rig's;
    # and a rise of under a tenth of the step asked is none (a rig whose RH stays put, its noise fitted)
    if not model.gain > 0 or rise < 0.1 * (rh_hi - rh_lo):
        raise BadInput(f"{what}: the RH did not rise with the step (gain K = {model.gain:.4g}, {rise:+.2f} %RH over the "
                       "step): no gains to propose from it (check the wet line, control.total_flow_slpm and --from/--to; "
                       "nothing written)", field="--to")
    step_pct = abs(model.gain * (max(test.u) - min(test.u)))
    if not model.rms_pct <= MAX_RMS_OF_STEP * step_pct:
        # the model explains the test no better than its own noise: its gains would be a guess
        # (40 -> 40.3 %RH: RMS 0.20 %RH of a 0.3 %RH step, gains proposed all the same)
        raise BadInput(f"{what}: the model fits the test within ±{model.rms_pct:.2f} %RH, "
                       f"{model.rms_pct / max(step_pct, 1e-9):.0%} of the step's {step_pct:.2f} %RH: no gains to propose "
                       f"from it (allowed: a fit within {MAX_RMS_OF_STEP:.0%} of the step; a larger step, "
                       "or a steadier rig; nothing written)", field="--to")
    gains = simc_pi(model, c.control_period_s, tau_c_s)
    if test.kind == MFC:
        sim = rig.profile.sim
        limits = (c.wet_fraction_min, c.wet_fraction_max)

        def ff(rh: float) -> float:
            return (rh - sim.dry_line_rh_pct) / (sim.bubbler_rh_pct - sim.dry_line_rh_pct)
    else:
        limits = (1.0, 99.0)

        def ff(rh: float) -> float:
            return rh
    horizon = max(10 * (model.tau_s + model.dead_time_s), 60.0)
    t, y = predict_step(model, gains, rh_from=predict_from, rh_to=predict_to, control_period_s=c.control_period_s,
                        u_limits=limits, duration_s=horizon, feedforward=ff)
    settle, over = settle_and_overshoot(t, y, predict_to)
    reach = tuple(sorted(model.y0 + model.gain * (u - model.u0) for u in limits))
    return TuneResult(test.kind, test, model, gains, t.tolist(), y.tolist(), settle, over, predict_from, predict_to,
                      reach)  # type: ignore[arg-type]


def gains_updates(result: TuneResult) -> dict[tuple[str, ...], float]:
    """The profile keys the tuned gains go to (``control.kp/ki/kd`` or ``control.chamber_k*``)."""
    prefix = "" if result.kind == MFC else "chamber_"
    g = result.gains
    return {("control", f"{prefix}kp"): float(f"{g.kp:.4g}"), ("control", f"{prefix}ki"): float(f"{g.ki:.4g}"),
            ("control", f"{prefix}kd"): float(f"{g.kd:.4g}")}


#: The report's plot styles (castrig.svgchart), for a stand-alone SVG file.
_SVG_STYLE = ("text{font-family:sans-serif}svg .ptitle{font-size:14px;font-weight:600}svg .tick{font-size:11px;fill:#4a5568}"
              "svg .alabel{font-size:12px;fill:#2d3748}svg .legend{font-size:12px;fill:#2d3748}"
              "svg .grid{stroke:#e5e8ef}svg .axis{stroke:#4a5568}svg .frame{fill:none;stroke:#9aa3b2}")


def plot_svg(result: TuneResult, title: str) -> str:
    """The test (RH and actuator) and the predicted closed-loop step, as one SVG."""
    from castrig.svgchart import PALETTE, Axes, Series, line_chart

    tst, m = result.test, result.model
    t = np.asarray(tst.t_s)
    t_changes, du = _changes(t, np.asarray(tst.u))
    fitted = m.response(t, t_changes, du)
    top = line_chart(
        "tune-test", f"{title}: step test and FOPDT fit (K {m.gain:.4g}, τ {m.tau_s:.1f} s, θ {m.dead_time_s:.1f} s)",
        "RH %", [Series("near-membrane RH", tst.t_s, tst.rh_pct),
                 Series("FOPDT model", tst.t_s, fitted.tolist(), colour=PALETTE["orange"], dashed=True)],
        y2_label=tst.u_label, series2=[Series(tst.u_label, tst.t_s, tst.u, colour=PALETTE["grey"], step=True)])
    g = result.gains
    sp = result.predicted_to_pct  # (the setpoint: the last predicted RH drew a step that never got there as reached)
    said = result.prediction_text().split(": ", 1)[1]
    bottom = line_chart(
        "tune-predicted", f"predicted closed-loop step (SIMC PI, kp {g.kp:.4g}, ki {g.ki:.4g}): {said}",
        "RH %", [Series("predicted RH", result.predicted_t_s, result.predicted_rh_pct, colour=PALETTE["green"]),
                 Series("setpoint", [0.0, result.predicted_t_s[-1]], [sp, sp], colour=PALETTE["red"], dashed=True)])
    ax = Axes()
    h = ax.height_px
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {ax.width_px} {2 * h}" width="{ax.width_px}" '
            f'height="{2 * h}"><style>{_SVG_STYLE}</style><rect width="100%" height="100%" fill="#fff"/>'
            f'{top}<g transform="translate(0,{h})">{bottom}</g></svg>\n')
