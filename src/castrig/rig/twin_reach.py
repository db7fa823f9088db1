"""What RH a twin's chamber with its own controller can reach: the rig layer asks the twin's
model (castrig.sim.world), so ``castrig check`` (recipe layer) need not reach into the simulator."""

from __future__ import annotations

import math

from castrig.rig.profile import Profile


def chamber_twin_reach_pct(profile: Profile) -> tuple[float, float] | None:
    """(low, high) %RH a twin's chamber with its own controller levels off at (to 0.1 %RH, inward):
    its controller saturates at all-dry or all-wet air of ``control.total_flow_slpm``, which the
    leak to the room (``sim.leak_per_min``, ``sim.room_rh_pct``) pulls towards the room's RH
    (:meth:`castrig.sim.world.ChamberModel.steady_rh_pct`). ``None`` for a chamber not on a sim
    link, or a rig whose MFC pair sets the lines (:func:`castrig.recipe.compat.rh_reach_pct`)."""
    d = profile.devices
    if d.chamber is None or d.chamber.link.kind != "sim" or d.dry_mfc is not None:
        return None
    from castrig.sim.world import chamber_model_of

    model = chamber_model_of(profile.sim)
    q = profile.control.total_flow_slpm
    return (math.ceil(model.steady_rh_pct(q, 0.0) * 10 - 1e-9) / 10,
            math.floor(model.steady_rh_pct(q, 1.0) * 10 + 1e-9) / 10)
