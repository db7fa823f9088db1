"""The hardware profile: which devices the rig has, on which links, and how it is controlled.

``hw_profiles/sim.yaml`` puts every device on the in-process simulator link in virtual time;
``hw_profiles/sim-serial.yaml`` reaches the same emulators over ptys/sockets served by
``castrig sim serve``; a real rig's profile gives serial ports and VISA resources.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from castrig.inputs import load_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- links -------------------------------------------------------------------------------------
class SimLinkConfig(_Strict):
    """The in-process emulator (the digital twin)."""

    kind: Literal["sim"]
    timeout_s: float = Field(1.0, gt=0, le=60)


class SerialLinkConfig(_Strict):
    """A pyserial URL: ``/dev/ttyUSB0``, a pty path, ``socket://host:port``, ``loop://``."""

    kind: Literal["serial"]
    url: str
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = 19200
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: float = Field(1.0, gt=0, le=60)


class VisaLinkConfig(_Strict):
    """A pyvisa resource, e.g. ``TCPIP::127.0.0.1::5025::SOCKET`` (pyvisa-py backend by default)."""

    kind: Literal["visa"]
    resource: str
    backend: str = "@py"
    timeout_s: float = Field(2.0, gt=0, le=60)


LinkConfig = Annotated[Union[SimLinkConfig, SerialLinkConfig, VisaLinkConfig], Field(discriminator="kind")]


# -- devices -----------------------------------------------------------------------------------
class NE1000Config(_Strict):
    model: Literal["ne1000"]
    link: LinkConfig
    address: int | None = Field(None, ge=0, le=99)
    syringe_diameter_mm: float = Field(14.57, ge=0.1, le=50.0)
    #: Safe-mode watchdog (s): the pump stops itself if the host is silent this long.
    safe_mode_s: int | None = Field(10, ge=1, le=255)


class AlicatConfig(_Strict):
    model: Literal["alicat"]
    link: LinkConfig
    unit_id: str = Field("A", pattern=r"^[A-Za-z]$")
    full_scale_slpm: float = Field(5.0, gt=0, le=5000)
    setpoint_form: Literal["modern", "legacy"] = "modern"


class HMT330Config(_Strict):
    model: Literal["hmt330"]
    link: LinkConfig
    address: int | None = Field(None, ge=0, le=99)


class ScpiChamberConfig(_Strict):
    model: Literal["scpi_chamber"]
    link: LinkConfig


class WatlowF4Config(_Strict):
    """A humidity chamber run by a Watlow F4 (Modbus RTU; input 1 temperature, input 2 RH)."""

    model: Literal["watlow_f4"]
    link: LinkConfig
    unit: int = Field(1, ge=1, le=247)
    #: The humidity set point of the safe state; default: the controller's input 2 range low.
    dry_rh_pct: float | None = Field(None, ge=0, le=100)


class WatlowF4TConfig(_Strict):
    """A humidity chamber run by a Watlow F4T (Modbus TCP on port 502, e.g. ``socket://host:502``)."""

    model: Literal["watlow_f4t"]
    link: LinkConfig
    unit: int = Field(1, ge=0, le=255)
    framing: Literal["tcp", "rtu"] = "tcp"
    word_order: Literal["low_high", "high_low"] = "low_high"
    temperature_loop: int = Field(1, ge=1, le=4)
    rh_loop: int = Field(2, ge=1, le=4)

    @model_validator(mode="after")
    def _loops_differ(self) -> "WatlowF4TConfig":
        if self.temperature_loop == self.rh_loop:
            raise ValueError(f"temperature_loop and rh_loop are both {self.rh_loop} (allowed: two different loops 1-4)")
        return self


ChamberConfig = Annotated[Union[ScpiChamberConfig, WatlowF4Config, WatlowF4TConfig], Field(discriminator="model")]


class SimCameraConfig(_Strict):
    """The twin's camera: rendered by the twin, reached through a link like any device."""

    model: Literal["sim"]
    link: LinkConfig = SimLinkConfig(kind="sim")
    pixel_size_um: float = Field(0.25, gt=0, le=100)
    #: Sections are imaged at higher magnification (the film is only a few µm thick).
    section_pixel_size_um: float = Field(0.05, gt=0, le=100)
    width_px: int = Field(512, ge=64, le=4096)
    bit_depth: Literal[8, 16] = 8


class FolderCameraConfig(_Strict):
    model: Literal["folder"]
    folder: str
    pixel_size_um: float | None = Field(None, gt=0, le=100)


class OpenCVCameraConfig(_Strict):
    model: Literal["opencv"]
    source: int | str = 0
    pixel_size_um: float = Field(..., gt=0, le=100)


PumpConfig = NE1000Config
CameraConfig = Annotated[Union[SimCameraConfig, FolderCameraConfig, OpenCVCameraConfig], Field(discriminator="model")]


class DevicesConfig(_Strict):
    """The rig's devices by role. A chamber is two MFCs or one controller (or both)."""

    caster: PumpConfig | None = None
    water_pump: PumpConfig | None = None
    dry_mfc: AlicatConfig | None = None
    wet_mfc: AlicatConfig | None = None
    chamber: ChamberConfig | None = None
    rh_near: HMT330Config
    rh_room: HMT330Config | None = None
    camera: CameraConfig | None = None

    @model_validator(mode="after")
    def _mfcs_in_pairs(self) -> "DevicesConfig":
        if (self.dry_mfc is None) != (self.wet_mfc is None):
            raise ValueError("dry_mfc and wet_mfc come as a pair (give both or neither)")
        return self

    @model_validator(mode="after")
    def _ports_shared_only_by_a_bus(self) -> "DevicesConfig":
        """Two devices on one serial port (or VISA resource) must be a bus the protocol allows:
        NE-1000 pumps on a daisy chain or Alicat units on one line, each with its own address or
        unit id, at the same line settings. Anything else would talk two protocols on one wire."""
        users: dict[str, list[tuple[str, Any]]] = {}
        for role, cfg in self:
            link = getattr(cfg, "link", None)
            key = getattr(link, "url", None) or getattr(link, "resource", None)
            if key is not None:
                users.setdefault(key, []).append((role, cfg))
        for key, group in users.items():
            if len(group) < 2:
                continue
            roles = ", ".join(r for r, _ in group)
            models = {c.model for _, c in group}
            if len(models) > 1 or models - {"ne1000", "alicat"}:
                raise ValueError(f"devices {roles} share the port {key!r}; only NE-1000 pumps (daisy chain) or "
                                 "Alicat units (one line) may share a port (allowed: one device per port otherwise)")
            ids = [(str(c.unit_id).upper() if c.model == "alicat" else c.address) for _, c in group]
            if len(set(ids)) != len(ids) or None in ids:
                what = "unit_id" if models == {"alicat"} else "address"
                raise ValueError(f"devices {roles} share the port {key!r} with the same or no {what} "
                                 f"(allowed: a distinct {what} per device on a shared port)")
            settings = {c.link.model_dump_json(exclude={"timeout_s"}) for _, c in group}
            if len(settings) > 1:
                raise ValueError(f"devices {roles} share the port {key!r} with different line settings "
                                 "(allowed: the same baudrate, bytesize, parity and stopbits)")
        return self


# -- control and simulation --------------------------------------------------------------------
class ControlConfig(_Strict):
    """RH loop and safety settings. Gains are for the wet fraction (0-1) per %RH of error."""

    kp: float = Field(0.015, ge=0, le=10)
    ki: float = Field(0.0005, ge=0, le=10)
    kd: float = Field(0.0, ge=0, le=10)
    total_flow_slpm: float = Field(2.0, gt=0, le=100)
    purge_flow_slpm: float = Field(1.0, ge=0, le=100)
    wet_fraction_min: float = Field(0.0, ge=0, le=1)
    wet_fraction_max: float = Field(1.0, ge=0, le=1)
    control_period_s: float = Field(1.0, gt=0, le=60)
    sample_period_s: float = Field(2.0, gt=0, le=3600)
    sensor_stale_s: float = Field(10.0, gt=0, le=600)
    #: The near-membrane reading (RH and T) bit-identical this long = a frozen sensor (abort).
    #: A live transmitter's noise changes the last digit within seconds; 0 switches it off.
    sensor_frozen_s: float = Field(120.0, ge=0, le=86_400)
    #: A pump, MFC or chamber that does not answer this long trips ``device_comms`` (abort);
    #: shorter gaps are ridden out (the pumps' safe-mode watchdog is the hardware backstop).
    comms_lost_s: float = Field(10.0, gt=0, le=600)
    #: How long the safe state keeps retrying devices it could not yet verify.
    safe_state_retry_s: float = Field(15.0, ge=0, le=600)
    rh_sensor_range_pct: tuple[float, float] = (0.0, 100.0)

    @model_validator(mode="after")
    def _ranges_ordered(self) -> "ControlConfig":
        lo, hi = self.rh_sensor_range_pct
        if not lo < hi:
            raise ValueError(f"rh_sensor_range_pct = [{lo:g}, {hi:g}]: the low end must be below the high end (allowed: 0 <= low < high)")
        if not self.wet_fraction_min < self.wet_fraction_max:
            raise ValueError(f"wet_fraction_min = {self.wet_fraction_min:g} must be below wet_fraction_max = "
                             f"{self.wet_fraction_max:g} (allowed: 0 <= min < max <= 1)")
        return self


class SimConfig(_Strict):
    """Model parameters of the digital twin (not literature facts; see castrig.sim.world)."""

    seed: int = Field(1, ge=0)
    chamber_volume_l: float = Field(2.0, gt=0, le=100)
    room_temperature_c: float = Field(22.0, ge=0, le=50)
    room_rh_pct: float = Field(45.0, ge=0, le=100)
    bubbler_rh_pct: float = Field(98.0, ge=0, le=100)
    dry_line_rh_pct: float = Field(1.0, ge=0, le=100)
    leak_per_min: float = Field(0.02, ge=0, le=10)
    sensor_tau_s: float = Field(10.0, ge=0, le=600)
    params: dict[str, Any] = Field(default_factory=dict)


class Profile(_Strict):
    name: str
    description: str = ""
    clock: Literal["virtual", "wall"] = "virtual"
    devices: DevicesConfig
    control: ControlConfig = ControlConfig()
    sim: SimConfig = SimConfig()
    store: str | None = None
    #: SQLite durability: FULL fsyncs every commit (power-cut safe); NORMAL is kill-9 safe.
    store_sync: Literal["FULL", "NORMAL"] = "FULL"

    @model_validator(mode="after")
    def _virtual_needs_sim(self) -> "Profile":
        if self.clock == "virtual":
            for role, cfg in self.device_configs().items():
                link = getattr(cfg, "link", None)
                if link is not None and link.kind != "sim":
                    raise ValueError(
                        f"clock 'virtual' only works with sim links; devices.{role}.link.kind is {link.kind!r}"
                    )
        return self

    def device_configs(self) -> dict[str, Any]:
        return {k: v for k, v in self.devices if v is not None}


def load_profile(path: str | Path) -> Profile:
    return load_model(Profile, path)
