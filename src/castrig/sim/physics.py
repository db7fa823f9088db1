"""Moist-air facts the twin uses (textbook formulas, not model parameters)."""

from __future__ import annotations

import math

from castrig.errors import CastrigError


def saturation_vapour_pressure_hpa(temperature_c: float) -> float:
    """Magnus formula over water (WMO coefficients): within about 0.5 % from -45 to 60 °C."""
    return 6.112 * math.exp(17.62 * temperature_c / (243.12 + temperature_c))


def rh_from_vapour(vapour_hpa: float, temperature_c: float) -> float:
    return 100.0 * vapour_hpa / saturation_vapour_pressure_hpa(temperature_c)


def vapour_from_rh(rh_pct: float, temperature_c: float) -> float:
    return rh_pct / 100.0 * saturation_vapour_pressure_hpa(temperature_c)


def dew_point_c(rh_pct: float, temperature_c: float) -> float:
    gamma = math.log(max(rh_pct, 1e-6) / 100.0) + 17.62 * temperature_c / (243.12 + temperature_c)
    return 243.12 * gamma / (17.62 - gamma)


def logistic(x: float) -> float:
    """1 / (1 + e^x) for any finite ``x``, without overflow: 0 far above, 1 far below.

    The film model's through-pore fraction falls off with thickness over pore diameter; a thick
    film (200 mg/mL at low RH) puts ``x`` in the thousands, where ``math.exp`` overflows.
    """
    if x >= 0:
        z = math.exp(-x) if x < 745.0 else 0.0
        return z / (1.0 + z)
    return 1.0 / (1.0 + math.exp(x)) if x > -745.0 else 1.0


class OutsideModel(CastrigError):
    """The twin was asked for something its model does not cover (a clear answer, not a hang)."""


#: The most pores the twin draws in one field of view: beyond, the film is outside what the
#: structure renderer covers (its time grows with the fourth power of 1 / pitch — 72 000 pores
#: take ~45 s); e.g. 200 mg/mL near the breath-figure threshold gives ~0.14 µm pores.
MAX_FIELD_PORES = 100_000


def expected_pore_count(mean_diameter_um: float, opening_ratio: float, cv: float, field_um: float) -> float:
    """Pores a square field of ``field_um`` holds at this diameter and opening ratio."""
    return opening_ratio / (math.pi / 4 * mean_diameter_um**2 * (1 + cv**2)) * field_um**2
