"""Moist-air facts the twin uses (textbook formulas, not model parameters)."""

from __future__ import annotations

import math


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
