"""What RH a twin's chamber can reach: the rig layer asks the twin's model (castrig.sim.world), so
``castrig check`` (recipe layer) need not reach into the simulator."""

from __future__ import annotations

import math

from castrig.rig.profile import Profile


def _inward_pct(low: float, high: float) -> tuple[float, float]:
    """(low, high) to 0.1 %RH, rounded inward: a quoted bound passes itself and is reached."""
    return math.ceil(low * 10 - 1e-9) / 10, math.floor(high * 10 + 1e-9) / 10


def chamber_twin_reach_pct(profile: Profile) -> tuple[float, float] | None:
    """(low, high) %RH a twin's chamber with its own controller levels off at (to 0.1 %RH, inward):
    its controller saturates at all-dry or all-wet air of ``control.total_flow_slpm``, which the
    leak to the room (``sim.leak_per_min``, ``sim.room_rh_pct``) pulls towards the room's RH
    (:meth:`castrig.sim.world.ChamberModel.steady_rh_pct`). ``None`` for a chamber not on a sim
    link, or a rig whose MFC pair sets the lines (:func:`mfc_twin_reach_pct`)."""
    d = profile.devices
    if d.chamber is None or d.chamber.link.kind != "sim" or d.dry_mfc is not None:
        return None
    from castrig.sim.world import chamber_model_of

    model = chamber_model_of(profile.sim)
    q = profile.control.total_flow_slpm
    return _inward_pct(model.steady_rh_pct(q, 0.0), model.steady_rh_pct(q, 1.0))


def mfc_twin_reach_pct(profile: Profile) -> tuple[float, float] | None:
    """(low, high) %RH the twin's chamber levels off at when its two mass-flow controllers (on sim
    links) mix ``control.total_flow_slpm`` at the loop's ``wet_fraction_min`` and ``_max`` (each
    line's flow within its ``full_scale_slpm``), to 0.1 %RH inward. The lines' RH alone
    (``sim.dry_line_rh_pct``, ``sim.bubbler_rh_pct``) is not it: the leak to the room
    (``sim.leak_per_min``, ``sim.room_rh_pct``) pulls the chamber towards the room's RH, so all-wet
    air of a 98 %RH bubbler levels off at 96.96 %RH in sim.yaml, and a 98 %RH condition that
    check passed timed out. The level is where the twin's quiet step (``World._step_quiet``) has
    its target, :meth:`~castrig.sim.world.ChamberModel.steady_rh_pct`; it holds at any temperature
    (the lines and the room are at their RH at the chamber's temperature; the slow drift moves the
    RH by hundredths of a %RH). ``None`` for hardware MFCs: nothing in the profile says what their
    bubbler gives."""
    d, c = profile.devices, profile.control
    if d.dry_mfc is None or d.wet_mfc is None or d.dry_mfc.link.kind != "sim" or d.wet_mfc.link.kind != "sim":
        return None
    from castrig.sim.world import chamber_model_of

    model = chamber_model_of(profile.sim)
    q = c.total_flow_slpm

    def level(wet_fraction: float) -> float:
        dry = min(q * (1.0 - wet_fraction), d.dry_mfc.full_scale_slpm)  # type: ignore[union-attr]
        wet = min(q * wet_fraction, d.wet_mfc.full_scale_slpm)  # type: ignore[union-attr]
        return model.steady_rh_pct(dry + wet, wet / (dry + wet)) if dry + wet > 0 else model.room_rh_pct

    return _inward_pct(level(c.wet_fraction_min), level(c.wet_fraction_max))
