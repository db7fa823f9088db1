"""How fast a twin's chamber can move its RH: the least time an evaporate's readings need to come
into its band, for ``castrig check`` (recipe/approach.py walks the recipe; this asks the twin's
model, castrig.sim.world, as rig/twin_reach.py does for where the chamber levels off).

The chamber is first order in its vapour (World._step_quiet): at a constant total flow Q its RH
relaxes to a level at rate k = (Q/V + leak)/60 per second, whatever the wet fraction; the level is
highest with all-wet air (the loop's wet_fraction_max) and lowest with all-dry air. No controller
gets there faster than saturated at one end, and the probe only lags the chamber: the time from
the nearest RH a step can start at to the band's edge, at the saturated rate, is a lower bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from castrig.rig.profile import Profile

#: The reading's allowance around the chamber's RH: 4 sigma of the twin probe's noise plus half
#: its 0.1 %RH print step (a noisy reading can come into the band that much early).
NOISE_SIGMAS = 4.0


def reading_allowance_pct() -> float:
    """How far (%RH) a twin probe's reading can stray from the chamber's RH: :data:`NOISE_SIGMAS`
    of its noise plus half its 0.1 %RH print step. ``castrig check`` allows for it where only a
    reading has to come into a band (an evaporate's approach, a band reaching the chamber's level)."""
    from castrig.sim.hmt330 import RH_NOISE_PCT

    return NOISE_SIGMAS * RH_NOISE_PCT + 0.05


@dataclass(frozen=True)
class TwinChamber:
    """The twin's chamber as ``castrig check`` needs it (RH in %RH, rates in 1/s)."""

    low: tuple[float, float]     # (level %RH, rate 1/s) with the loop at its all-dry end
    high: tuple[float, float]    # the same at its all-wet end
    water_per_s: float           # what water on the support adds to the rate (its most, over the drift)
    room_rh_pct: float
    reading_allowance_pct: float
    model: Any                   # the twin's castrig.sim.world.ChamberModel: a purge's level and rate
    sensor_tau_s: float
    #: a chamber twin: its purge turns the humidifier off, its own flow all dry (:attr:`low`)
    own_flow_purge: bool

    def purge(self, flow_slpm: float) -> tuple[float, float]:
        """(rate 1/s, level %RH) of a purge: dry air at ``flow_slpm`` with the leak (MFC rigs), or
        the chamber twin's own all-dry flow."""
        if self.own_flow_purge:
            return self.low[1], self.low[0]
        return _rate_per_s(self.model, flow_slpm), self.model.steady_rh_pct(flow_slpm, 0.0)

    def after(self, lo: float, hi: float, k: float, level: float, dt: float) -> tuple[float, float]:
        """(lo, hi) holding both the chamber's RH and the probe's reading after ``dt`` s relaxing at
        ``k`` towards ``level``, from chamber and reading anywhere in [lo, hi] (the probe's first-
        order lag in closed form, as World._step_quiet; both rise with where they started)."""
        ek = math.exp(-k * dt)

        def probe(x: float) -> float:
            if self.sensor_tau_s <= 0:
                return level + (x - level) * ek
            b = 1.0 / self.sensor_tau_s
            eb = math.exp(-b * dt)
            forced = (x - level) * (b * (ek - eb) / (b - k) if abs(b - k) > 1e-9 * b else b * dt * eb)
            return level + (x - level) * eb + forced

        return (min(level + (lo - level) * ek, probe(lo)), max(level + (hi - level) * ek, probe(hi)))

    def least_s_into(self, lo: float, hi: float, band_lo: float, band_hi: float, wet_support: bool) -> float | None:
        """The least time (s) before a reading can be in [band_lo, band_hi] from chamber and
        reading in [lo, hi]: 0 where they overlap (with the reading's allowance), ``None`` where no
        end of the loop gets there (the reach check says so)."""
        a = self.reading_allowance_pct
        if hi >= band_lo - a and lo <= band_hi + a:
            return 0.0
        if hi < band_lo - a:  # up: all-wet air, and the support's water if it is wet
            level, k = self.high
            if wet_support:
                k, level = k + self.water_per_s, (k * level + self.water_per_s * 100.0) / (k + self.water_per_s)
            edge, start = band_lo - a, hi
            return math.log((level - start) / (level - edge)) / k if level > edge else None
        (level, k), edge, start = self.low, band_hi + a, lo  # down: all-dry air
        return math.log((start - level) / (edge - level)) / k if level < edge else None


def twin_chamber_of(profile: Profile) -> TwinChamber | None:
    """The twin's chamber of ``profile`` (its MFC pair or its chamber on sim links), else ``None``:
    a real chamber's speed is not in its profile."""
    from castrig.rig.twin_reach import twin_levels
    from castrig.sim.world import chamber_model_of

    levels = twin_levels(profile)
    if levels is None:
        return None
    model = chamber_model_of(profile.sim)
    temps = (model.room_temperature_c - model.temperature_drift_c / 2, model.room_temperature_c + model.temperature_drift_c / 2)

    (low, q_low), (high, q_high) = levels
    return TwinChamber(low=(low, _rate_per_s(model, q_low)), high=(high, _rate_per_s(model, q_high)),
                       water_per_s=max(model.water_rate_per_s(t) for t in temps), room_rh_pct=model.room_rh_pct,
                       reading_allowance_pct=reading_allowance_pct(), model=model,
                       sensor_tau_s=model.sensor_tau_s, own_flow_purge=profile.devices.dry_mfc is None)


def _rate_per_s(model: Any, total_slpm: float) -> float:
    """The rate (1/s) the chamber's vapour relaxes at with ``total_slpm`` flowing in and its leak,
    whatever the wet fraction (World._air_exchange's k)."""
    return (total_slpm / model.volume_l + model.leak_per_min) / 60.0
