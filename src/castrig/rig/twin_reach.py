"""What RH a twin's chamber can reach: the rig layer asks the twin's model (castrig.sim.world), so
``castrig check`` (recipe layer) need not reach into the simulator."""

from __future__ import annotations

import math

from castrig.rig.profile import Profile


def _inward_pct(low: float, high: float) -> tuple[float, float]:
    """(low, high) to 0.1 %RH, rounded inward: a quoted bound passes itself and is reached."""
    return math.ceil(low * 10 - 1e-9) / 10, math.floor(high * 10 + 1e-9) / 10


def twin_levels(profile: Profile) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """((low %RH, its total flow slpm), (high %RH, its total flow slpm)): where the twin's chamber
    levels off with its loop saturated at each end (:meth:`castrig.sim.world.ChamberModel.steady_rh_pct`,
    the target of ``World._step_quiet``), unrounded. A chamber twin's own controller mixes all-dry
    to all-wet air of ``control.total_flow_slpm``; an MFC pair ``control.total_flow_slpm`` at the
    loop's ``wet_fraction_min`` and ``_max``, each line within its ``full_scale_slpm``. The leak to
    the room (``sim.leak_per_min``, ``sim.room_rh_pct``) pulls both towards the room's RH. It holds
    at any temperature (the lines and the room are at their RH at the chamber's temperature; the
    slow drift moves the RH by hundredths of a %RH). ``None``: not a twin (nothing in a real rig's
    profile says what its bubbler gives)."""
    d, c = profile.devices, profile.control
    mfc = d.dry_mfc is not None and d.wet_mfc is not None and d.dry_mfc.link.kind == "sim" and d.wet_mfc.link.kind == "sim"
    chamber = d.chamber is not None and d.chamber.link.kind == "sim" and d.dry_mfc is None
    if not (mfc or chamber):
        return None
    from castrig.sim.world import chamber_model_of

    model = chamber_model_of(profile.sim)
    q = c.total_flow_slpm

    def level(wet_fraction: float) -> tuple[float, float]:
        dry, wet = q * (1.0 - wet_fraction), q * wet_fraction
        if mfc:
            dry, wet = min(dry, d.dry_mfc.full_scale_slpm), min(wet, d.wet_mfc.full_scale_slpm)  # type: ignore[union-attr]
        total = dry + wet
        return (model.steady_rh_pct(total, wet / total) if total > 0 else model.room_rh_pct), total

    return (level(c.wet_fraction_min), level(c.wet_fraction_max)) if mfc else (level(0.0), level(1.0))


def chamber_twin_reach_pct(profile: Profile) -> tuple[float, float] | None:
    """(low, high) %RH a twin's chamber with its own controller levels off at (:func:`twin_levels`),
    to 0.1 %RH inward: a 100 %RH evaporate on the chamber twins aborted (it levels off at 96.9).
    ``None`` for a chamber not on a sim link, or a rig whose MFC pair sets the lines."""
    d = profile.devices
    levels = twin_levels(profile) if d.chamber is not None and d.dry_mfc is None else None
    return None if levels is None else _inward_pct(levels[0][0], levels[1][0])


def mfc_twin_reach_pct(profile: Profile) -> tuple[float, float] | None:
    """(low, high) %RH the twin's chamber levels off at when its two mass-flow controllers (on sim
    links) mix the loop's flow (:func:`twin_levels`), to 0.1 %RH inward. The lines' RH alone
    (``sim.dry_line_rh_pct``, ``sim.bubbler_rh_pct``) is not it: all-wet air of a 98 %RH bubbler
    levels off at 96.96 %RH in sim.yaml, and a 98 %RH condition that check passed timed out.
    ``None`` for hardware MFCs, or a chamber with its own controller."""
    levels = twin_levels(profile) if profile.devices.dry_mfc is not None else None
    return None if levels is None else _inward_pct(levels[0][0], levels[1][0])
