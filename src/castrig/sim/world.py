"""The digital twin's physical world: chamber air, the wet support, the cast film.

One :class:`World` is shared by every emulator of a simulated rig. It integrates lazily: any
emulator that reads or changes something calls :meth:`World.advance` with the current time
first, so the physics is exact for piecewise-constant inputs and fully deterministic.

Chamber: well mixed, volume V, fed by the dry and wet lines (total flow Q, residence time V/Q),
with a leak towards room air and the water evaporating from the pre-wetted support. Water is
tracked as vapour pressure, so a temperature change moves RH through the Magnus formula.
The coefficients of :class:`ChamberModel` and :class:`FilmModel` are model parameters,
documented here and set in the sim profile (``sim.params``), not literature facts.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

from castrig.sim.physics import logistic, rh_from_vapour, saturation_vapour_pressure_hpa, vapour_from_rh

#: Universal gas constant J/(mol K), molar mass of water g/mol.
_R = 8.314462618
_M_WATER = 18.015
#: Largest integration step while something changes fast (liquid on the support, a film drying,
#: a pump moving, a chamber's own controller acting), and in quiet phases (holds, purges,
#: conditioning: chamber air and probe only), where each step is exact for its inputs (chamber
#: and probe lag solved in closed form, the MFCs' mean flow over the step from what they
#: delivered). Module constants, so a benchmark can integrate a fine-step reference.
MAX_STEP_S = 0.5
QUIET_STEP_S = 10.0


@dataclass
class ChamberModel:
    """Chamber parameters (the defaults give τ = V/Q = 1 min at 2 L and 2 L/min)."""

    volume_l: float = 2.0
    room_temperature_c: float = 22.0
    #: Peak-to-peak slow drift of room (and chamber) temperature, and its period.
    temperature_drift_c: float = 0.4
    temperature_period_s: float = 6 * 3600.0
    room_rh_pct: float = 45.0
    bubbler_rh_pct: float = 98.0
    dry_line_rh_pct: float = 1.0
    #: Air exchange with the room through leaks, per minute (fraction of the volume).
    leak_per_min: float = 0.02
    #: Evaporation from a fully wet support into completely dry air, mg/s.
    support_evaporation_mg_s: float = 0.05
    #: Time constant of the near-membrane sensor's own response (HMT330 probe), s.
    sensor_tau_s: float = 10.0

    def steady_rh_pct(self, total_flow_slpm: float, wet_fraction: float) -> float:
        """The RH the chamber levels off at with ``wet_fraction`` of ``total_flow_slpm`` from the
        bubbler, the rest from the dry line, and the leak to the room (no water on the support):
        where dx/dt = drive - k·x is zero (:meth:`World._air_exchange`, both sides over psat)."""
        q = total_flow_slpm / self.volume_l  # 1/min
        lines = q * (wet_fraction * self.bubbler_rh_pct + (1.0 - wet_fraction) * self.dry_line_rh_pct)
        return (lines + self.leak_per_min * self.room_rh_pct) / (q + self.leak_per_min) if q + self.leak_per_min > 0 \
            else self.room_rh_pct


    def water_rate_per_s(self, temperature_c: float) -> float:
        """What water on the support adds to the rate the chamber's RH relaxes at (1/s): it
        evaporates at E·(1 - x/psat), so dr/dt gains e·(100 - r) with e = E·g/psat
        (:meth:`World._step_quiet`; g from :meth:`World._hpa_s_per_mg_s`)."""
        g = _R * (temperature_c + 273.15) / (_M_WATER * self.volume_l * 100.0)
        return self.support_evaporation_mg_s * g / saturation_vapour_pressure_hpa(temperature_c)


def chamber_model_of(sim: Any) -> ChamberModel:
    """The twin's chamber for a profile's ``sim`` section (its fields, then ``sim.params.chamber``):
    the one :class:`castrig.sim.twin.Twin` builds, and the one ``castrig check`` asks what it reaches."""
    chamber = ChamberModel(
        volume_l=sim.chamber_volume_l,
        room_temperature_c=sim.room_temperature_c,
        room_rh_pct=sim.room_rh_pct,
        bubbler_rh_pct=sim.bubbler_rh_pct,
        dry_line_rh_pct=sim.dry_line_rh_pct,
        leak_per_min=sim.leak_per_min,
        sensor_tau_s=sim.sensor_tau_s,
    )
    return _update(chamber, dict(sim.params or {}).get("chamber", {}))


@dataclass
class FilmModel:
    """How process conditions map to a film structure (model parameters; see module docstring).

    Pore diameter: ``d_ref_um · exp((RH_s − rh_ref_pct)/rh_scale_pct) · (c/c_ref)^−conc_exponent
    · (t_evap/t_ref)^(1/3)`` where RH_s is the mean RH at the film surface while the solvent
    evaporates (chamber RH + evaporative-cooling offset, capped at 100). Below
    ``threshold_rh_pct`` at the surface no ordered pores form.
    """

    surface_rh_offset_pct: float = 8.0
    threshold_rh_pct: float = 45.0
    d_ref_um: float = 3.0
    rh_ref_pct: float = 78.0
    rh_scale_pct: float = 14.0
    conc_ref_mg_ml: float = 5.0
    conc_exponent: float = 0.3
    #: Solvent evaporation time for 0.2 mL at 2 L/min and 22 °C, s (chloroform).
    evaporation_ref_s: float = 90.0
    flow_ref_slpm: float = 2.0
    cv_base: float = 0.06
    cv_near_saturation: float = 0.25
    saturation_onset_pct: float = 92.0
    cv_per_rh_std: float = 0.04
    defect_base: float = 0.02
    defect_per_rh_std: float = 0.05
    wall_ratio_ref: float = 0.2
    polymer_density_g_cm3: float = 1.05
    support_area_cm2: float = 10.0
    thickness_cv: float = 0.1
    through_td_mid: float = 0.8
    through_td_width: float = 0.15
    through_wet: float = 0.95
    through_dry: float = 0.3
    support_pore_um: float = 5.0
    #: claim 1 (issue 16). Polymer penetration into the support's surface pores: the fraction of
    #: the interface entered and the depth (× support pore size), each × (c_ref/c)^0.5 (a dilute
    #: solution flows in further) and × (support pore / support_pore_um)^0.5 (wide pores admit it)
    penetration_fraction_wet: float = 0.3
    penetration_fraction_dry: float = 0.12
    penetration_depth_wet: float = 0.3
    penetration_depth_dry: float = 0.15
    #: neighbouring cavities joined by an opening: a logistic in the surface RH around
    #: communication_rh_mid (width communication_rh_width) between communication_min and _max,
    #: times (wall_ratio_ref / wall)^0.5 (thin walls break through), capped at 0.95
    communication_min: float = 0.35
    communication_max: float = 0.85
    communication_rh_mid_pct: float = 88.0
    communication_rh_width_pct: float = 4.0
    #: support pores joined by channels (a support with continuous pores)
    support_link_prob: float = 0.9


SOLVENT_SPEED = {"chloroform": 1.0, "dichloromethane": 1.6, "carbon_disulfide": 1.4, "toluene": 0.25}


@dataclass
class FilmConditions:
    """What the film experienced while it formed: the inputs of the structure model."""

    cast_volume_ml: float
    concentration_mg_ml: float
    solvent: str
    evaporation_s: float
    surface_rh_mean_pct: float
    surface_rh_std_pct: float
    chamber_rh_mean_pct: float
    support_wet: bool
    mean_flow_slpm: float
    temperature_c: float


@dataclass
class FilmTargets:
    """The structure statistics the renderer is asked for (ground truth comes from geometry)."""

    ordered: bool
    mean_diameter_um: float
    cv: float
    opening_ratio: float
    through_fraction: float
    thickness_um: float
    thickness_cv: float
    support_pore_um: float
    defect_rate: float
    penetration_depth_um: float = 0.0
    penetration_fraction: float = 0.0
    communication: float = 0.0
    support_link_prob: float = 0.0


def film_targets(c: FilmConditions, m: FilmModel, support_pore_um: float | None = None) -> FilmTargets:
    """Process conditions → film statistics (the twin's structure model)."""
    ordered = c.surface_rh_mean_pct >= m.threshold_rh_pct
    t_ratio = max(c.evaporation_s, 1.0) / m.evaporation_ref_s
    conc = c.concentration_mg_ml / m.conc_ref_mg_ml
    d = m.d_ref_um * math.exp((c.surface_rh_mean_pct - m.rh_ref_pct) / m.rh_scale_pct)
    d *= conc ** (-m.conc_exponent) * t_ratio ** (1.0 / 3.0)
    sat = min(1.0, max(0.0, (c.surface_rh_mean_pct - m.saturation_onset_pct) / (100.0 - m.saturation_onset_pct)))
    cv = m.cv_base + m.cv_near_saturation * sat + m.cv_per_rh_std * c.surface_rh_std_pct
    defects = m.defect_base + m.defect_per_rh_std * c.surface_rh_std_pct
    wall = m.wall_ratio_ref * math.sqrt(conc)
    opening = (math.pi / (2 * math.sqrt(3))) / (1.0 + wall) ** 2
    if not ordered:
        d, cv, opening, defects = 0.3, 0.5, 0.05, 1.0
    solid_cm3 = c.cast_volume_ml * c.concentration_mg_ml / 1000.0 / m.polymer_density_g_cm3
    porosity = min(0.8, 0.6 * opening)
    thickness_um = solid_cm3 / m.support_area_cm2 * 1e4 / (1.0 - porosity)
    td = thickness_um / d
    through = logistic((td - m.through_td_mid) / m.through_td_width)  # no overflow for a thick film
    through *= m.through_wet if c.support_wet else m.through_dry
    sup = support_pore_um or m.support_pore_um
    flow_in = math.sqrt(1.0 / max(conc, 1e-3)) * math.sqrt(sup / m.support_pore_um)
    pen_frac = min(0.45, (m.penetration_fraction_wet if c.support_wet else m.penetration_fraction_dry) * flow_in)
    pen_depth = sup * min(0.6, (m.penetration_depth_wet if c.support_wet else m.penetration_depth_dry) * flow_in)
    x = (c.surface_rh_mean_pct - m.communication_rh_mid_pct) / m.communication_rh_width_pct
    comm = m.communication_min + (m.communication_max - m.communication_min) / (1.0 + math.exp(-x))
    comm = min(0.95, comm * math.sqrt(m.wall_ratio_ref / max(wall, 1e-6)))
    return FilmTargets(
        ordered=ordered,
        mean_diameter_um=d,
        cv=min(cv, 0.6),
        opening_ratio=opening,
        through_fraction=through,
        thickness_um=thickness_um,
        thickness_cv=m.thickness_cv,
        support_pore_um=sup,
        defect_rate=min(defects, 1.0),
        penetration_depth_um=pen_depth,
        penetration_fraction=pen_frac,
        communication=comm,
        support_link_prob=m.support_link_prob,
    )


def _update(model: Any, params: dict[str, Any]) -> Any:
    known = {f.name for f in fields(model)}
    unknown = set(params) - known
    if unknown:
        raise ValueError(f"unknown {type(model).__name__} parameter(s): {', '.join(sorted(unknown))}")
    return replace(model, **params)


@dataclass
class _FilmState:
    started_t: float
    concentration_mg_ml: float
    solvent: str
    support_wet: bool
    solvent_left: float = 1.0
    dt_sum: float = 0.0
    rh_s_sum: float = 0.0
    rh_s_sq: float = 0.0
    rh_c_sum: float = 0.0
    flow_sum: float = 0.0
    temp_sum: float = 0.0
    conditions: FilmConditions | None = None


@dataclass
class InternalController:
    """The SCPI chamber's own RH controller: a slow PI on the wet fraction of its own flow.

    ``state()`` returns the controller's (setpoint_rh_pct, output_on), as set over SCPI.
    """

    state: Callable[[], tuple[float, bool]]
    total_flow_slpm: float = 2.0
    kp: float = 0.01
    ki: float = 0.0003
    integrate_band_pct: float = 3.0
    dry_line_rh_pct: float = 1.0
    wet_line_rh_pct: float = 98.0
    integral: float = 0.0

    def wet_fraction(self, rh_pct: float, dt: float) -> float:
        setpoint, on = self.state()
        if not on:
            self.integral = 0.0
            return 0.0
        err = setpoint - rh_pct
        if abs(err) <= self.integrate_band_pct:
            self.integral = min(0.5, max(-0.5, self.integral + self.ki * err * dt))
        ff = (setpoint - self.dry_line_rh_pct) / (self.wet_line_rh_pct - self.dry_line_rh_pct)
        return min(1.0, max(0.0, ff + self.kp * err + self.integral))


class World:
    """Shared physical state of the simulated rig."""

    def __init__(
        self,
        chamber: ChamberModel | None = None,
        film: FilmModel | None = None,
        *,
        t0: float = 0.0,
        params: dict[str, Any] | None = None,
    ):
        params = dict(params or {})
        self.chamber = _update(chamber or ChamberModel(), params.pop("chamber", {}))
        self.film_model = _update(film or FilmModel(), params.pop("film", {}))
        if params:
            raise ValueError(f"unknown sim parameter group(s): {', '.join(sorted(params))} (allowed: chamber, film)")
        self.t = t0
        ch = self.chamber
        self.vapour_hpa = vapour_from_rh(ch.room_rh_pct, self.temperature_c(t0))
        self.sensor_rh_pct = self.chamber_rh_pct()
        self.support_water_ml = 0.0
        # Inputs, wired by the twin to the emulators (piecewise constant between changes).
        self.dry_flow_slpm: Callable[[float], float] = lambda t: 0.0
        self.wet_flow_slpm: Callable[[float], float] = lambda t: 0.0
        self.caster_dispensed_ml: Callable[[float], float] = lambda t: 0.0
        self.caster_flow_ml_min: Callable[[float], float] = lambda t: 0.0
        self.water_dispensed_ml: Callable[[float], float] = lambda t: 0.0
        self.water_flow_ml_min: Callable[[float], float] = lambda t: 0.0
        #: Standard litres each MFC has delivered since power-up (its flow's exact integral).
        self.dry_delivered_sl: Callable[[float], float] | None = None
        self.wet_delivered_sl: Callable[[float], float] | None = None
        self._delivered_mark: tuple[float, float] | None = None
        self.internal: InternalController | None = None
        self._water_seen_ml = 0.0
        self._cast_seen_ml = 0.0
        self.cast_volume_ml = 0.0
        self.film: _FilmState | None = None
        self.recipe_concentration_mg_ml = self.film_model.conc_ref_mg_ml
        self.recipe_solvent = "chloroform"
        self.support_pore_um: float | None = None
        self.film_formed_t: float | None = None
        self._advancing = False
        self._lock = threading.RLock()  # (advance: re-entered by its own thread's emulators, waited for by others)
        #: Set by the twin when every pump calls :meth:`pump_changing` before its flow changes
        #: (the NE-1000 emulators' ``on_change``); then a pump found still stays still until it
        #: says otherwise, and quiet steps need not ask the four pump inputs again.
        self.pumps_report_changes = False
        self._pumps_still = False

    # -- outside conditions -------------------------------------------------------------
    def temperature_c(self, t: float) -> float:
        ch = self.chamber
        return ch.room_temperature_c + 0.5 * ch.temperature_drift_c * math.sin(2 * math.pi * t / ch.temperature_period_s)

    def chamber_rh_pct(self) -> float:
        return min(100.0, rh_from_vapour(self.vapour_hpa, self.temperature_c(self.t)))

    def room(self, t: float) -> tuple[float, float]:
        """True (rh_pct, temperature_c) of the room."""
        return self.chamber.room_rh_pct, self.temperature_c(t)

    def near_sensor(self, t: float) -> tuple[float, float]:
        """True (rh_pct, temperature_c) at the near-membrane probe (after the probe's lag)."""
        self.advance(t)
        return self.sensor_rh_pct, self.temperature_c(t)

    def flows(self, t: float) -> tuple[float, float]:
        """(dry, wet) flows into the chamber, slpm."""
        if self.internal is not None:
            f = self.internal.wet_fraction(self.chamber_rh_pct(), 0.0)
            q = self.internal.total_flow_slpm
            return q * (1 - f), q * f
        return max(0.0, self.dry_flow_slpm(t)), max(0.0, self.wet_flow_slpm(t))

    # -- integration ----------------------------------------------------------------------
    def pump_changing(self, t: float) -> None:
        """A pump's ``on_change``: integrate up to ``t`` with its state before the change, then
        ask the pump inputs again at the next step."""
        self.advance(t)
        self._pumps_still = False

    def mfc_changing(self, t: float) -> None:
        """An MFC's ``on_change`` (before its setpoint or valve moves). In a quiet phase the step
        need not end here: a quiet step takes the MFCs' mean flows over it from what they
        delivered (each MFC integrates its own flow exactly through the change), and with those
        the chamber's closed form is exact to first order in k·dt (k ≈ 1/60 s⁻¹ at 2 slpm), so the
        step goes on to the next query — one chamber step a control tick instead of three
        (the RH loop's two setpoints fall between the sensor's reads). A busy step takes the
        flows at its start, and the first quiet step after one has no delivered volumes to start
        from (``_delivered_mark``): there the step ends at the change, as before. So does a change
        more than ``QUIET_STEP_S`` after the world's time: the step to the next query is then cut
        in pieces, and a piece ending before the change would find the MFC already past it (its
        delivered volume counted up to the change); a fine-step reference ends every step there."""
        with self._lock:  # (as advance: the wall-clock twin's camera thread may be stepping)
            if self._advancing:
                return  # asked from inside a step: advance's own answer
            if self._delivered_mark is None or t - self.t > QUIET_STEP_S or not self._quiet(self.t):
                self.advance(t)

    def advance(self, t: float) -> None:
        """Integrate from the last time to ``t`` (no-op if ``t`` is not later). One thread at a
        time: on the wall clock the camera renders on a worker thread while the rig ticks
        (Runner._while_ticking), and both bring the world up to their time."""
        with self._lock:
            if self._advancing:
                # An emulator queried during a step asked us to catch up: we are already doing so.
                return
            self._advancing = True
            try:
                while self.t < t:
                    # (min(·, ·) as a comparison, the same value: this runs at every query)
                    if self._quiet(self.t):
                        dt = t - self.t
                        if dt > QUIET_STEP_S:
                            dt = QUIET_STEP_S
                        self._step_quiet(dt)
                    else:
                        self._delivered_mark = None
                        dt = t - self.t
                        if dt > MAX_STEP_S:
                            dt = MAX_STEP_S
                        self._step(dt)
                    self.t += dt
            finally:
                self._advancing = False

    def _quiet(self, t: float) -> bool:
        """Only chamber air, the probe and the water left on the support change: no film drying,
        no pump moving (a pump that starts tells us through ``on_change``: a step ends there)."""
        if self.internal is not None:
            return False
        if self.film is not None and self.film.conditions is None:
            return False
        if self._pumps_still:
            # still since the last check, and no pump has changed since (pump_changing): a still
            # pump's flow is 0 and its dispensed volume the one already seen
            return True
        if self.caster_flow_ml_min(t) != 0.0 or self.water_flow_ml_min(t) != 0.0:
            return False
        still = self.water_dispensed_ml(t) == self._water_seen_ml and self.caster_dispensed_ml(t) == self._cast_seen_ml
        self._pumps_still = still and self.pumps_report_changes
        return still

    def _mean_flows(self, t: float, dt: float) -> tuple[float, float]:
        """(dry, wet) mean flows over [t, t + dt], slpm: what the MFCs delivered in the step,
        so a flow still settling after a setpoint change counts as it really went."""
        if self.dry_delivered_sl is None or self.wet_delivered_sl is None:
            return max(0.0, self.dry_flow_slpm(t)), max(0.0, self.wet_flow_slpm(t))
        end = (self.dry_delivered_sl(t + dt), self.wet_delivered_sl(t + dt))
        mark, self._delivered_mark = self._delivered_mark, end
        if mark is None or dt <= 0:
            return max(0.0, self.dry_flow_slpm(t)), max(0.0, self.wet_flow_slpm(t))
        dry, wet = (end[0] - mark[0]) * 60.0 / dt, (end[1] - mark[1]) * 60.0 / dt
        return (dry if dry > 0.0 else 0.0), (wet if wet > 0.0 else 0.0)  # max(0.0, ·) at every step, without calls

    def _step_quiet(self, dt: float) -> None:
        """One step of a quiet phase, exact for constant mean flows: the chamber's vapour relaxes
        exponentially to its target and the probe (a first-order lag) follows that exponential
        in closed form, so a step may last from one query to the next."""
        ch = self.chamber
        t = self.t
        # temperature_c, saturation_vapour_pressure_hpa, _air_exchange and _hpa_s_per_mg_s written
        # in (the same expressions, so the same numbers): a quiet step runs at every query the
        # emulators make, and the calls cost as much as the arithmetic
        temp = ch.room_temperature_c + 0.5 * ch.temperature_drift_c * math.sin(2 * math.pi * t / ch.temperature_period_s)
        psat = 6.112 * math.exp(17.62 * temp / (243.12 + temp))
        q_dry, q_wet = self._mean_flows(t, dt)
        x0 = self.vapour_hpa
        k_leak = ch.leak_per_min / 60.0
        k_air = (q_dry + q_wet) / ch.volume_l / 60.0 + k_leak
        drive = ((q_wet * ch.bubbler_rh_pct + q_dry * ch.dry_line_rh_pct) / 100.0 * psat / (ch.volume_l * 60.0)
                 + k_leak * ch.room_rh_pct / 100.0 * psat)
        # Water on the support evaporates at E·(1 - x/psat) mg/s: a source linear in the vapour
        # pressure x, so dx/dt = -K·x + K·target stays linear with constant coefficients.
        e_mg_s = ch.support_evaporation_mg_s if self.support_water_ml > 0 else 0.0
        g = _R * (temp + 273.15) / (_M_WATER * ch.volume_l * 100.0)
        k = k_air + e_mg_s * g / psat
        target = (drive + e_mg_s * g) / k if k > 0 else x0
        decay = math.exp(-k * dt)
        x1 = target + (x0 - target) * decay
        mean_x = target + (x0 - target) * ((1.0 - decay) / (k * dt) if k * dt > 1e-12 else 1.0)
        water_left = self.support_water_ml - e_mg_s * (1.0 - mean_x / psat) * dt / 1000.0
        if (target if target > x0 else x0) > psat or (e_mg_s and water_left <= 0.0):  # max(x0, target)
            # condensation on the walls clips the exponential, or the support dries within the
            # step (the source stops): small explicit steps, as in busy phases
            self._delivered_mark = None
            self._step(dt)
            return
        self.vapour_hpa = x1
        self.support_water_ml = water_left
        tau = ch.sensor_tau_s
        if tau > 0:
            # probe: s' = (rh - s)/tau with rh = rt + (r0 - rt)·exp(-k·t)
            r0, rt = 100.0 * x0 / psat, 100.0 * target / psat
            b = 1.0 / tau
            eb = math.exp(-b * dt)
            forced = (r0 - rt) * (b * (decay - eb) / (b - k) if abs(b - k) > 1e-9 * b else b * dt * eb)
            self.sensor_rh_pct = rt + (self.sensor_rh_pct - rt) * eb + forced
        else:
            self.sensor_rh_pct = 100.0 * x1 / psat
        # No _step_film here: a quiet step has no film drying and no new liquid (``_quiet``
        # checked both at this very ``t``), so it would find nothing to do.

    def _air_exchange(self, q_dry: float, q_wet: float, psat: float) -> tuple[float, float]:
        """(k, drive): how fast the chamber's vapour pressure x relaxes (1/s: inflow and leak)
        and what the dry and wet lines and the room bring in (hPa/s): dx/dt = drive − k·x, before
        the support's evaporation. Each line's vapour at its own RH at this temperature."""
        ch = self.chamber
        k_leak = ch.leak_per_min / 60.0
        lines = (q_wet * ch.bubbler_rh_pct + q_dry * ch.dry_line_rh_pct) / 100.0 * psat / (ch.volume_l * 60.0)
        return (q_dry + q_wet) / ch.volume_l / 60.0 + k_leak, lines + k_leak * ch.room_rh_pct / 100.0 * psat

    def _hpa_s_per_mg_s(self, temp_c: float) -> float:
        """Vapour pressure rise in the chamber per mg/s of water evaporated into it (ideal gas)."""
        return _R * (temp_c + 273.15) / (_M_WATER * self.chamber.volume_l * 100.0)

    def _step(self, dt: float) -> None:
        ch = self.chamber
        t = self.t
        temp = self.temperature_c(t)
        psat = saturation_vapour_pressure_hpa(temp)
        if self.internal is not None:
            f = self.internal.wet_fraction(self.chamber_rh_pct(), dt)
            q_wet = self.internal.total_flow_slpm * f
            q_dry = self.internal.total_flow_slpm - q_wet
        else:
            q_dry, q_wet = max(0.0, self.dry_flow_slpm(t)), max(0.0, self.wet_flow_slpm(t))
        q = q_dry + q_wet
        k, drive = self._air_exchange(q_dry, q_wet, psat)

        # Water arriving on the support from the water pump, and evaporating from it.
        water_now = self.water_dispensed_ml(t)
        if water_now > self._water_seen_ml:
            if self.film is not None and self.film.conditions is not None:
                self._new_support()
            self.support_water_ml += water_now - self._water_seen_ml
        self._water_seen_ml = water_now
        source_hpa_s = 0.0
        if self.support_water_ml > 0:
            deficit = max(0.0, 1.0 - self.vapour_hpa / psat)
            mg_s = ch.support_evaporation_mg_s * deficit
            self.support_water_ml = max(0.0, self.support_water_ml - mg_s * dt / 1000.0)
            source_hpa_s = mg_s * self._hpa_s_per_mg_s(temp)

        if k > 0:
            target = (drive + source_hpa_s) / k
            self.vapour_hpa = target + (self.vapour_hpa - target) * math.exp(-k * dt)
        else:
            self.vapour_hpa += source_hpa_s * dt
        self.vapour_hpa = min(self.vapour_hpa, psat)  # excess condenses on the walls

        rh = min(100.0, 100.0 * self.vapour_hpa / psat)  # chamber_rh_pct() (self.t is still t)
        if ch.sensor_tau_s > 0:
            self.sensor_rh_pct += (rh - self.sensor_rh_pct) * (1.0 - math.exp(-dt / ch.sensor_tau_s))
        else:
            self.sensor_rh_pct = rh

        self._step_film(t, dt, rh, q, temp)

    def _step_film(self, t: float, dt: float, rh: float, q: float, temp: float) -> None:
        fm = self.film_model
        cast_now = self.caster_dispensed_ml(t)
        if cast_now > self._cast_seen_ml:
            if self.film is not None and self.film.conditions is not None:
                self._new_support()
            self.cast_volume_ml += cast_now - self._cast_seen_ml
            if self.film is None:
                self.film = _FilmState(
                    started_t=t,
                    concentration_mg_ml=self.recipe_concentration_mg_ml,
                    solvent=self.recipe_solvent,
                    support_wet=self.support_water_ml > 0.0,
                )
                self.film_formed_t = None
        self._cast_seen_ml = cast_now
        film = self.film
        if film is None or film.conditions is not None:
            return
        # Solvent evaporation: faster with flow and temperature, slower for more liquid.
        speed = SOLVENT_SPEED.get(film.solvent, 1.0)
        vol = max(self.cast_volume_ml, 1e-3)
        t_evap = (
            fm.evaporation_ref_s
            * math.sqrt(vol / 0.2)
            * math.sqrt(fm.flow_ref_slpm / max(q, 0.05))
            * math.exp(-(temp - 22.0) / 15.0)
            / speed
        )
        if self.caster_flow_ml_min(t) <= 0.0:  # solvent evaporates once the casting has stopped
            if film.solvent_left <= dt / t_evap:
                dt = film.solvent_left * t_evap  # the film forms within this step: count up to then
                film.solvent_left = 0.0
            else:
                film.solvent_left -= dt / t_evap
        rh_s = min(100.0, rh + fm.surface_rh_offset_pct)
        film.dt_sum += dt
        film.rh_s_sum += rh_s * dt
        film.rh_s_sq += rh_s * rh_s * dt
        film.rh_c_sum += rh * dt
        film.flow_sum += q * dt
        film.temp_sum += temp * dt
        if film.solvent_left <= 0.0:
            n = film.dt_sum
            mean = film.rh_s_sum / n
            std = math.sqrt(max(0.0, film.rh_s_sq / n - mean * mean))
            film.conditions = FilmConditions(
                cast_volume_ml=self.cast_volume_ml,
                concentration_mg_ml=film.concentration_mg_ml,
                solvent=film.solvent,
                evaporation_s=n,
                surface_rh_mean_pct=mean,
                surface_rh_std_pct=std,
                chamber_rh_mean_pct=film.rh_c_sum / n,
                support_wet=film.support_wet,
                mean_flow_slpm=film.flow_sum / n,
                temperature_c=film.temp_sum / n,
            )
            self.film_formed_t = t + dt

    def _new_support(self) -> None:
        """Liquid arriving after a film has formed goes onto a fresh support position (the
        stage moves on between casts), so the finished membrane is left as it was made."""
        self.film = None
        self.film_formed_t = None
        self.cast_volume_ml = 0.0
        self.support_water_ml = 0.0

    # -- queries for the camera and for tests -------------------------------------------
    def film_targets(self) -> FilmTargets | None:
        if self.film is None or self.film.conditions is None:
            return None
        return film_targets(self.film.conditions, self.film_model, self.support_pore_um)

    def snapshot(self) -> dict[str, Any]:
        """State worth recording (for the run's journal and for debugging)."""
        return {
            "t": self.t,
            "vapour_hpa": self.vapour_hpa,
            "sensor_rh_pct": self.sensor_rh_pct,
            "support_water_ml": self.support_water_ml,
            "cast_volume_ml": self.cast_volume_ml,
            "film": None if self.film is None or self.film.conditions is None else vars(self.film.conditions),
            # a film cast and still drying (its solvent not all gone): a resume puts it back to dry on
            "film_forming": None if self.film is None or self.film.conditions is not None else _forming_state(self.film),
        }

    def restore_forming_film(self, snap: dict[str, Any]) -> None:
        """Put back a film cast before a crash and still drying then (``film_forming`` of
        :meth:`snapshot`), in the chamber air it was drying in: it dries on from where it was, on
        the resumed clock, as it would have in a run not stopped (from the room's air, the film
        of a recipe without an evaporate step dried at 71 %RH where it was cast into 79 %RH, its
        pores half the size)."""
        self.film = _FilmState(started_t=self.t, **snap["film_forming"])
        self.film_formed_t = None
        self.cast_volume_ml = float(snap["cast_volume_ml"])
        self.support_water_ml = float(snap["support_water_ml"])
        self.vapour_hpa, self.sensor_rh_pct = float(snap["vapour_hpa"]), float(snap["sensor_rh_pct"])


def _forming_state(film: _FilmState) -> dict[str, Any]:
    """A drying film's state but its start time (on the crashed process's clock)."""
    return {k: v for k, v in vars(film).items() if k not in ("started_t", "conditions")}
