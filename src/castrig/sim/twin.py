"""The digital twin of a profile: one shared world, one emulator per simulated device.

Drivers reach these emulators only through links (in-process :class:`~castrig.links.SimLink`,
or ptys/sockets via ``castrig sim serve``), exactly as they reach hardware. The simulated camera
renders the film the world formed, with its ground truth in the frame metadata.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

import numpy as np

from castrig.clock import Clock
from castrig.rig.profile import (
    AlicatConfig,
    HMT330Config,
    NE1000Config,
    Profile,
    ScpiChamberConfig,
    SimCameraConfig,
    WatlowF4Config,
    WatlowF4TConfig,
)
from castrig.sim.alicat import AlicatEmulator
from castrig.sim.emulator import Emulator
from castrig.sim.hmt330 import HMT330Emulator
from castrig.sim.ne1000 import NE1000Emulator
from castrig.sim.scpi_chamber import ScpiChamberEmulator
from castrig.sim.world import InternalController, World, chamber_model_of

#: Stable per-device seed streams, so adding a device never changes another's noise.
_STREAMS = {"caster": 1, "water_pump": 2, "dry_mfc": 3, "wet_mfc": 4, "chamber": 5, "rh_near": 6, "rh_room": 7, "camera": 8}


class Twin:
    def __init__(self, profile: Profile, clock: Clock, seed: int | None = None):
        self.profile = profile
        self.clock = clock
        self.seed = profile.sim.seed if seed is None else seed
        sim = profile.sim
        self.world = World(chamber_model_of(sim), params={k: v for k, v in sim.params.items() if k != "chamber"},
                           t0=clock.now())
        self.emulators: dict[str, Emulator] = {}
        self.camera_config: SimCameraConfig | None = None
        self._field = 0
        self._field_views: set[str] = set()
        self._field_cache: dict[str, Any] | None = None
        self._field_started = False  # a view of field ``_field`` taken (or passed over)
        for role, cfg in profile.device_configs().items():
            if getattr(cfg, "link", None) is not None and cfg.link.kind != "sim":
                continue
            emu = self._make(role, cfg)
            if emu is not None:
                self.emulators[role] = emu
        self._wire()

    # -- construction ---------------------------------------------------------------------
    def _seed(self, role: str) -> int:
        return self.seed * 1000 + _STREAMS.get(role, 99)

    def _make(self, role: str, cfg: Any) -> Emulator | None:
        w = self.world
        if isinstance(cfg, NE1000Config):
            return NE1000Emulator(
                role,
                address=cfg.address or 0,
                seed=self._seed(role),
                on_change=w.pump_changing,
                diameter_mm=cfg.syringe_diameter_mm,
                syringe_volume_ml=cfg.syringe_volume_ml,
                t0=self.clock.now(),
            )
        if isinstance(cfg, AlicatConfig):
            return AlicatEmulator(
                role,
                unit_id=cfg.unit_id,
                full_scale_slpm=cfg.full_scale_slpm,
                firmware=cfg.setpoint_form,
                seed=self._seed(role),
                on_change=w.mfc_changing,
                serial_number=f"1234{_STREAMS.get(role, 99):02d}",  # each unit its own (see the HMT330s')
            )
        if isinstance(cfg, HMT330Config):
            source = w.near_sensor if role == "rh_near" else w.room
            # each transmitter its own serial number, as real ones have: what tells two apart
            # when neither has an address (castrig.devices.identity)
            return HMT330Emulator(role, source=source, seed=self._seed(role), address=cfg.address or 0,
                                  serial_number=f"K12345{_STREAMS.get(role, 99):02d}")
        if isinstance(cfg, ScpiChamberConfig):
            return ScpiChamberEmulator(role, seed=self._seed(role), on_change=w.advance, source=self._chamber_reading)
        if isinstance(cfg, WatlowF4Config):
            from castrig.sim.watlow import WatlowF4Emulator

            # a serial number of this twin's own (its seed): a server restarted with another
            # seed is another chamber's controller behind the same port (castrig.devices.identity)
            return WatlowF4Emulator(role, unit=cfg.unit, seed=self._seed(role), on_change=w.advance,
                                    source=self._chamber_reading,
                                    serial_number=(1000 + self.seed % 9000, 5000 + _STREAMS.get(role, 99)))
        if isinstance(cfg, WatlowF4TConfig):
            from castrig.sim.watlow import WatlowF4TEmulator

            return WatlowF4TEmulator(role, unit=cfg.unit, seed=self._seed(role), on_change=w.advance,
                                     source=self._chamber_reading, low_word_first=cfg.word_order == "low_high",
                                     rh_loop=cfg.rh_loop, part_number=f"F4TSIM{self.seed % 10**7:07d}{_STREAMS.get(role, 99):02d}")
        if isinstance(cfg, SimCameraConfig):
            from castrig.sim.camera import CameraEmulator

            self.camera_config = cfg
            return CameraEmulator(role, render=self.render, seed=self._seed(role),
                                  serial=f"0000{_STREAMS.get(role, 99):02d}")
        return None

    def _chamber_reading(self, t: float) -> tuple[float, float]:
        self.world.advance(t)
        return self.world.chamber_rh_pct(), self.world.temperature_c(t)

    def _wire(self) -> None:
        w, e = self.world, self.emulators
        if "dry_mfc" in e:
            w.dry_flow_slpm = e["dry_mfc"].flow_slpm  # type: ignore[attr-defined]
            w.wet_flow_slpm = e["wet_mfc"].flow_slpm  # type: ignore[attr-defined]
            w.dry_delivered_sl = e["dry_mfc"].delivered_sl  # type: ignore[attr-defined]
            w.wet_delivered_sl = e["wet_mfc"].delivered_sl  # type: ignore[attr-defined]
        elif "chamber" in e:
            emu = e["chamber"]
            w.internal = InternalController(
                state=lambda: (emu.setpoint_rh_pct, emu.output_on),  # type: ignore[attr-defined]
                total_flow_slpm=self.profile.control.total_flow_slpm,
                dry_line_rh_pct=w.chamber.dry_line_rh_pct,
                wet_line_rh_pct=w.chamber.bubbler_rh_pct,
            )
        if "caster" in e:
            w.caster_dispensed_ml = e["caster"].dispensed_ml  # type: ignore[attr-defined]
            w.caster_flow_ml_min = e["caster"].flow_ml_min  # type: ignore[attr-defined]
        if "water_pump" in e:
            w.water_dispensed_ml = e["water_pump"].dispensed_ml  # type: ignore[attr-defined]
            w.water_flow_ml_min = e["water_pump"].flow_ml_min  # type: ignore[attr-defined]
        # every pump input is an NE-1000 emulator calling pump_changing before it moves (or 0)
        w.pumps_report_changes = True

    def set_process(self, *, concentration_mg_ml: float, solvent: str, support_pore_um: float | None) -> None:
        """What the recipe says about the solution and support (the twin cannot see it)."""
        self.world.recipe_concentration_mg_ml = concentration_mg_ml
        self.world.recipe_solvent = solvent
        self.world.support_pore_um = support_pore_um

    def snapshot(self) -> dict[str, Any]:
        """The world's state and the camera's next field, for the run's journal: a resumed run
        images its membrane on the field an uninterrupted run would have (the field's number
        seeds its rendering; from 0 again, the same membrane showed another realisation)."""
        snap = self.world.snapshot()
        snap["camera_next_field"] = self._field + (1 if self._field_started else 0)
        return snap

    def has_film(self) -> bool:
        """A film is on the support: cast (drying or formed) and not yet moved on from."""
        return self.world.film is not None

    def restore_camera(self, next_field: int) -> None:
        """The camera's stage back on the field it would have taken next (see :meth:`snapshot`)."""
        self._field, self._field_cache, self._field_views, self._field_started = int(next_field), None, set(), False

    def skip_view(self, view: str) -> None:
        """Move the stage as :meth:`render` would for ``view`` without rendering it: a resumed
        capture passes over the views recorded before the crash, and the fields after them must
        be the ones an uninterrupted run took (each field's number seeds its rendering)."""
        self._next_view(view)

    def _next_view(self, view: str) -> None:
        # a view already taken of this field moves the stage to the next field
        if view in self._field_views or not self._field_started:
            if self._field_started:
                self._field += 1
            self._field_views, self._field_cache, self._field_started = set(), None, True
        self._field_views.add(view)

    def restore(self, snap: dict[str, Any], *, film: bool = True) -> None:
        """Put back the film of a :meth:`snapshot` (formed, or cast and still drying; not if
        ``film`` is false) and the camera's next field, for a resumed run."""
        if film and snap.get("film"):
            self.restore_film(snap["film"])
        elif film and snap.get("film_forming"):
            self.world.restore_forming_film(snap)
        if snap.get("camera_next_field") is not None:
            self.restore_camera(snap["camera_next_field"])

    def restore_film(self, conditions: dict[str, Any]) -> None:
        """Put back a film formed before a crash (from the run's journal), for resumed runs."""
        from castrig.sim.world import FilmConditions, _FilmState

        c = FilmConditions(**conditions)
        film = _FilmState(started_t=self.world.t, concentration_mg_ml=c.concentration_mg_ml, solvent=c.solvent,
                          support_wet=c.support_wet, solvent_left=0.0)
        film.conditions = c
        self.world.film = film
        self.world.cast_volume_ml = c.cast_volume_ml

    # -- the camera -------------------------------------------------------------------------
    def render(self, view: str) -> tuple[np.ndarray, float, float, dict[str, Any]]:
        """(image, pixel_size_um, exposure_ms, metadata) of the current field in ``view``.

        Asking again for a view already taken moves the stage to the next field, so reflected
        and transmitted images of one field are registered to each other.
        """
        cfg = self.camera_config or SimCameraConfig(model="sim")
        self.world.advance(self.clock.now())
        self._next_view(view)
        if self._field_cache is None:
            self._field_cache = self._render_field(cfg)
        cache = self._field_cache
        exposure = {"reflected": 8.0, "transmitted": 25.0, "section": 12.0}[view]
        meta = {"field": self._field, "view": view, "simulated": True, "truth": cache["truth"], "targets": cache["targets"]}
        px = cfg.section_pixel_size_um if view == "section" else cfg.pixel_size_um
        return cache[view], px, exposure, meta

    def _render_field(self, cfg: SimCameraConfig) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, 8, self._field])
        px = cfg.pixel_size_um
        size = cfg.width_px
        targets = self.world.film_targets()
        if targets is None or not targets.ordered:
            # No breath figure: a featureless film (or bare support) under noise.
            base = np.full((size, size), 0.7) + rng.normal(0, 0.02, (size, size))
            scale = 255 if cfg.bit_depth == 8 else 65535
            img = np.clip(base * scale, 0, scale).astype(np.uint8 if cfg.bit_depth == 8 else np.uint16)
            dark = (img * 0.2).astype(img.dtype)
            truth = None if targets is None else {"opening_ratio": 0.0, "pore_count": 0}
            return {"reflected": img, "transmitted": dark, "section": img, "truth": truth,
                    "targets": None if targets is None else asdict(targets)}
        # the renderer (scipy) loads with the first image: `sim serve` and recipes that capture
        # nothing never pay for it
        from castrig.sim.film_images import render_field
        from castrig.sim.physics import MAX_FIELD_PORES, OutsideModel, expected_pore_count

        n = expected_pore_count(targets.mean_diameter_um, targets.opening_ratio, targets.cv, px * size)
        if n > MAX_FIELD_PORES:
            # the pores' count grows with the field's area: a field of pixel_size_um x width_px wider
            # than the twin renders is the camera's, not the recipe's (pixel_size_um: 5 was told to
            # lower the concentration or raise the RH, and the recipe's D was fine)
            widest_um = px * size * math.sqrt(MAX_FIELD_PORES / n)
            raise OutsideModel(
                f"outside the model: the film model gives {targets.mean_diameter_um:.3g} µm pores "
                f"(about {n:.0f} in the {px * size:g} µm field; the twin renders up to {MAX_FIELD_PORES} per field) "
                f"— a field of at most {widest_um:.3g} µm (devices.camera.pixel_size_um = {px:g} × width_px = {size} "
                "in the profile), or larger pores (a lower concentration or a higher RH), is inside")
        field = render_field(targets, rng, pixel_size_um=px, section_pixel_size_um=cfg.section_pixel_size_um,
                             width_px=size, bit_depth=cfg.bit_depth)
        return {**field, "targets": asdict(targets)}
