"""The hardware profile: which devices the rig has, on which links, and how it is controlled.

``hw_profiles/sim.yaml`` puts every device on the in-process simulator link in virtual time;
``hw_profiles/sim-serial.yaml`` reaches the same emulators over ptys/sockets served by
``castrig sim serve``; a real rig's profile gives serial ports and VISA resources.
"""

from __future__ import annotations

import math

from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from castrig.inputs import load_model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)


# -- links -------------------------------------------------------------------------------------
#: A reply takes its device's turnaround (up to 50 ms: the camera's) and its bytes' time on the
#: line; a shorter wait can never be met (``timeout_s: 1e-300`` passed `check`, and every run
#: then faulted at the first exchange).
LINK_TIMEOUT_MIN_S = 0.1
TIMEOUT_TEXT = "How long to wait for a reply (at least 0.1 s: the device's turnaround and the reply's bytes on the line)."

class SimLinkConfig(_Strict):
    """The in-process emulator (the digital twin)."""

    kind: Literal["sim"]
    timeout_s: float = Field(1.0, ge=LINK_TIMEOUT_MIN_S, le=60, json_schema_extra={"unit": "s"}, description=TIMEOUT_TEXT)


class SerialLinkConfig(_Strict):
    """A pyserial URL: ``/dev/ttyUSB0``, a pty path, ``socket://host:port``, ``loop://``."""

    kind: Literal["serial"]
    url: str = Field(..., description="pyserial URL: a port (/dev/ttyUSB0, COM3), a pty path, socket://host:port.")
    baudrate: Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200] = Field(
        19200, description="Line speed; must match the device (the HMT330 user port defaults to 4800).", json_schema_extra={"unit": "baud"})
    bytesize: Literal[7, 8] = Field(8, description="Data bits (the HMT330 defaults to 7).")
    parity: Literal["N", "E", "O"] = Field("N", description="Parity: none, even, odd (the HMT330 defaults to E).")
    stopbits: Literal[1, 2] = Field(1, description="Stop bits.")
    timeout_s: float = Field(1.0, ge=LINK_TIMEOUT_MIN_S, le=60, json_schema_extra={"unit": "s"}, description=TIMEOUT_TEXT)

    @field_validator("url")
    @classmethod
    def _a_url_pyserial_opens(cls, url: str) -> str:
        """A URL that cannot be taken apart is refused here, naming the field (it reached the
        port-sharing check as "devices: Invalid IPv6 URL"); a TCP URL needs its host and port."""
        if not url.strip():  # ('' passed check, and the run could not open port '': exit 5)
            raise ValueError("is empty (allowed: a port such as /dev/ttyUSB0, socket://host:port, rfc2217://host:port, "
                             "loop://)")
        if "://" not in url:
            return url
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"is not a URL pyserial can open: {exc} (allowed: a port such as /dev/ttyUSB0, "
                             "socket://host:port, rfc2217://host:port, loop://)") from None
        if parts.scheme in ("socket", "rfc2217") and not (parts.hostname and port):
            raise ValueError(f"needs a host and a port (allowed: {parts.scheme}://host:port, port 1-65535)")
        return url


class VisaLinkConfig(_Strict):
    """A pyvisa resource, e.g. ``TCPIP::127.0.0.1::5025::SOCKET`` (pyvisa-py backend by default)."""

    kind: Literal["visa"]
    resource: str = Field(..., description="VISA resource name, e.g. TCPIP::host::5025::SOCKET.")
    backend: str = Field("@py", description="pyvisa backend: @py (pyvisa-py, pure Python) or a vendor VISA library.")
    timeout_s: float = Field(2.0, ge=LINK_TIMEOUT_MIN_S, le=60, json_schema_extra={"unit": "s"}, description=TIMEOUT_TEXT)


LinkConfig = Annotated[Union[SimLinkConfig, SerialLinkConfig, VisaLinkConfig], Field(discriminator="kind")]


# -- devices -----------------------------------------------------------------------------------
class NE1000Config(_Strict):
    model: Literal["ne1000"]
    link: LinkConfig = Field(..., description="How the pump is reached.")
    address: int | None = Field(None, ge=0, le=99, description="Pump address on a daisy chain; default: none (a pump alone on its port).")
    syringe_diameter_mm: float = Field(14.57, ge=0.1, le=50.0, json_schema_extra={"unit": "mm"},
                                       description="Inner diameter of the syringe; the pump turns volumes into plunger travel with it.")
    syringe_volume_ml: float | None = Field(None, gt=0, le=1000, json_schema_extra={"unit": "mL"},
                                            description="What the loaded syringe holds; a recipe that dispenses more from this pump "
                                                        "(all its steps together: there is no refill step) is refused before the run; so is a "
                                                        "queue whose runs together dispense more (queue --resume: the runs left). "
                                                        "null: not checked.")
    #: Safe-mode watchdog (s): the pump stops itself if the host is silent this long.
    safe_mode_s: int | None = Field(10, ge=1, le=255, json_schema_extra={"unit": "s"},
                                    description="Safe-mode watchdog: the pump stops itself if the host is silent this long; "
                                                "at least 3 control periods (a floor: a tick slowed by a silent device's "
                                                "retries must not outlast it); armed as a run starts; null: basic mode.")


class AlicatConfig(_Strict):
    model: Literal["alicat"]
    link: LinkConfig = Field(..., description="How the controller is reached.")
    unit_id: str = Field("A", pattern=r"^[A-Za-z]$", description="Unit id, one letter A-Z; distinct per controller on a shared line.")
    full_scale_slpm: float = Field(5.0, gt=0, le=5000, json_schema_extra={"unit": "SLPM"}, description="Full scale of the controller (from its label).")
    setpoint_form: Literal["modern", "legacy"] = Field(
        "modern", description="Set-point command: modern (ALS, newer firmware) or legacy (AS<v>).")


class HMT330Config(_Strict):
    model: Literal["hmt330"]
    link: LinkConfig = Field(..., description="How the transmitter is reached.")
    address: int | None = Field(None, ge=0, le=99, description="Transmitter address for SEND in POLL mode; default: none.")


def _reach_rh_pct() -> Any:
    """The optional ``reach_rh_pct`` of a chamber with its own controller (the same for each kind)."""
    return Field(None, json_schema_extra={"unit": "%RH", "prefixItems": [{"type": "number", "minimum": 0, "maximum": 100}] * 2},
                 description="[low, high] RH the chamber can reach and hold, as measured on it; "
                             "`castrig check` refuses set points outside. Default: not stated (not checked).")


def _reach_ordered(reach: tuple[float, float] | None) -> tuple[float, float] | None:
    if reach is not None and not 0.0 <= reach[0] < reach[1] <= 100.0:
        raise ValueError(f"reach_rh_pct = [{reach[0]:g}, {reach[1]:g}]: a relative humidity range "
                         "(allowed: 0 <= low < high <= 100)")
    return reach


class ScpiChamberConfig(_Strict):
    model: Literal["scpi_chamber"]
    link: LinkConfig = Field(..., description="How the chamber is reached (usually VISA).")
    reach_rh_pct: tuple[float, float] | None = _reach_rh_pct()
    _reach = field_validator("reach_rh_pct")(classmethod(lambda cls, v: _reach_ordered(v)))


class WatlowF4Config(_Strict):
    """A humidity chamber run by a Watlow F4 (Modbus RTU; input 1 temperature, input 2 RH)."""

    model: Literal["watlow_f4"]
    link: LinkConfig = Field(..., description="The RS-232/485 line of the controller (Modbus RTU).")
    unit: int = Field(1, ge=1, le=247, description="Modbus address of the controller.")
    #: The humidity set point of the safe state; default: the controller's input 2 range low.
    dry_rh_pct: float | None = Field(None, ge=0, le=100, json_schema_extra={"unit": "%RH"},
                                     description="Humidity set point of the safe state; default: the input 2 range low.")
    reach_rh_pct: tuple[float, float] | None = _reach_rh_pct()
    _reach = field_validator("reach_rh_pct")(classmethod(lambda cls, v: _reach_ordered(v)))


class WatlowF4TConfig(_Strict):
    """A humidity chamber run by a Watlow F4T (Modbus TCP on port 502, e.g. ``socket://host:502``)."""

    model: Literal["watlow_f4t"]
    link: LinkConfig = Field(..., description="How the controller is reached (socket://host:502 for Modbus TCP).")
    unit: int = Field(1, ge=0, le=255, description="Modbus unit id.")
    framing: Literal["tcp", "rtu"] = Field("tcp", description="Modbus TCP (MBAP header) or RTU frames over the link.")
    word_order: Literal["low_high", "high_low"] = Field("low_high", description="Word order of 32-bit floats (the F4T default is low word first).")
    temperature_loop: int = Field(1, ge=1, le=4, description="Control loop that holds temperature.")
    rh_loop: int = Field(2, ge=1, le=4, description="Control loop that holds humidity.")
    reach_rh_pct: tuple[float, float] | None = _reach_rh_pct()
    _reach = field_validator("reach_rh_pct")(classmethod(lambda cls, v: _reach_ordered(v)))

    @model_validator(mode="after")
    def _loops_differ(self) -> "WatlowF4TConfig":
        if self.temperature_loop == self.rh_loop:
            raise ValueError(f"temperature_loop and rh_loop are both {self.rh_loop} (allowed: two different loops 1-4)")
        return self


ChamberConfig = Annotated[Union[ScpiChamberConfig, WatlowF4Config, WatlowF4TConfig], Field(discriminator="model")]


#: A served camera's line is quiet once nothing came for this long (s): the twin renders a
#: 512 px frame in 20 ms, a 4096 px 16-bit one in 1.5 s (while a frame is still unsent it answers
#: SNAP with ``ERR busy`` at once, so unread SNAPs queue no frames behind it).
CAMERA_QUIET_S = 1.0
#: What the longest backlog of castrig's camera protocol takes to drain: a client killed mid-capture
#: leaves one SNAP, a frame of at most 32 MiB; twenty SNAPs in one write leave one frame and 19
#: ``ERR busy`` lines. (A fixed 30 s held every ``castrig run`` on a line that never goes quiet.)
CAMERA_OPEN_DRAIN_S = 10.0


class SimCameraConfig(_Strict):
    """The twin's camera: rendered by the twin, reached through a link like any device."""

    model: Literal["sim"]
    link: LinkConfig = Field(SimLinkConfig(kind="sim"), description="In-process (sim), or the twin served by castrig sim serve (serial).")
    pixel_size_um: float = Field(0.25, ge=0.0005, le=50, json_schema_extra={"unit": "µm"}, description="Pixel size of top views; ≥ 9 px per pore to measure it.")
    #: Sections are imaged at higher magnification (the film is only a few µm thick).
    section_pixel_size_um: float = Field(0.05, ge=0.0005, le=50, json_schema_extra={"unit": "µm"}, description="Pixel size of sections (higher magnification).")
    width_px: int = Field(512, ge=64, le=4096, json_schema_extra={"unit": "px"}, description="Width and height of rendered images.")
    bit_depth: Literal[8, 16] = Field(8, description="Bits per pixel of rendered images.")
    open_drain_s: float = Field(CAMERA_OPEN_DRAIN_S, ge=CAMERA_QUIET_S, le=600, json_schema_extra={"unit": "s"},
                                description="At opening (wall clock), the longest the line is drained of what an earlier client "
                                            "left (its unanswered SNAPs, a frame unread) until quiet for 1 s; a line still sending "
                                            "then is no camera to run with.")


class FolderCameraConfig(_Strict):
    model: Literal["folder"]
    folder: str = Field(..., description="Folder of existing images (replays, SEM images from elsewhere); a run takes only "
                        "the images after those the other runs of its data root took from it, in file-name order.")
    pixel_size_um: float | None = Field(None, ge=0.0005, le=50, json_schema_extra={"unit": "µm"},
                                        description="Pixel size; default: from the images' TIFF tags or instrument metadata.")
    ready_timeout_s: float = Field(5.0, ge=0, le=600, json_schema_extra={"unit": "s"},
                                   description="How long an image still being written is waited for (read again until whole).")


class OpenCVCameraConfig(_Strict):
    model: Literal["opencv"]
    source: int | str = Field(0, description="OpenCV capture source: a camera index or a device path/URL.")
    pixel_size_um: float = Field(..., ge=0.0005, le=50, json_schema_extra={"unit": "µm"}, description="Pixel size at the objective in use (calibrate with a stage micrometer).")


PumpConfig = NE1000Config
CameraConfig = Annotated[Union[SimCameraConfig, FolderCameraConfig, OpenCVCameraConfig], Field(discriminator="model")]


class DevicesConfig(_Strict):
    """The rig's devices by role. A chamber is two MFCs or one controller (or both)."""

    caster: PumpConfig | None = Field(None, description="Syringe pump that casts the polymer solution (needed by cast steps).")
    water_pump: PumpConfig | None = Field(None, description="Syringe pump that pre-wets the support (needed by prewet steps).")
    dry_mfc: AlicatConfig | None = Field(None, description="Mass-flow controller of the dry air line.")
    wet_mfc: AlicatConfig | None = Field(None, description="Mass-flow controller of the water-saturated line (bubbler).")
    chamber: ChamberConfig | None = Field(None, description="A humidity chamber with its own controller (instead of or besides the MFCs).")
    rh_near: HMT330Config = Field(..., description="RH/T transmitter near the membrane: the controlled variable.")
    rh_room: HMT330Config | None = Field(None, description="RH/T transmitter in the room (recorded).")
    camera: CameraConfig | None = Field(None, description="Microscope camera (needed by capture steps).")

    @model_validator(mode="after")
    def _mfcs_in_pairs(self) -> "DevicesConfig":
        if (self.dry_mfc is None) != (self.wet_mfc is None):
            raise ValueError("dry_mfc and wet_mfc come as a pair (give both or neither)")
        return self

    @model_validator(mode="after")
    def _ports_shared_only_by_a_bus(self) -> "DevicesConfig":
        """Two devices on one serial port (or VISA resource) must be a bus the protocol allows:
        NE-1000 pumps on a daisy chain or Alicat units on one line, each with its own address or
        unit id, at the same line settings. Anything else would talk two protocols on one wire.

        "One port" is the device lock's key (:func:`castrig.rig.ownership.serial_key`,
        :func:`~castrig.rig.ownership.visa_key`), however it is spelled: ``socket://localhost:47102``
        and ``socket://127.0.0.1:47102``, a symlink and the tty it points to, are one port (host
        names other than ``localhost`` as written: the device locks, taken when the rig is
        claimed, look them up)."""
        from castrig.rig.ownership import serial_key, visa_key  # ownership imports this module

        users: dict[str, list[tuple[str, Any]]] = {}
        spelled: dict[str, list[str]] = {}
        for role, cfg in self:
            link = getattr(cfg, "link", None)
            url, resource = getattr(link, "url", None), getattr(link, "resource", None)
            if url is None and resource is None:
                continue
            given = url if url is not None else resource
            # (without DNS: validation must not wait on a name server; claiming the rig looks up)
            key = (serial_key(url, resolve=False) if url is not None else visa_key(resource, resolve=False)) or given
            users.setdefault(key, []).append((role, cfg))
            if given not in spelled.setdefault(key, []):
                spelled[key].append(given)
        for key, group in users.items():
            if len(group) < 2:
                continue
            roles = ", ".join(r for r, _ in group)
            port = " = ".join(repr(g) for g in spelled[key])
            port = port if len(spelled[key]) == 1 else f"{port} (one port, spelled {len(spelled[key])} ways)"
            models = {c.model for _, c in group}
            if len(models) > 1 or models - {"ne1000", "alicat"}:
                raise ValueError(f"devices {roles} share the port {port}; only NE-1000 pumps (daisy chain) or "
                                 "Alicat units (one line) may share a port (allowed: one device per port otherwise)")
            ids = [(str(c.unit_id).upper() if c.model == "alicat" else c.address) for _, c in group]
            if len(set(ids)) != len(ids) or None in ids:
                what = "unit_id" if models == {"alicat"} else "address"
                raise ValueError(f"devices {roles} share the port {port} with the same or no {what} "
                                 f"(allowed: a distinct {what} per device on a shared port)")
            settings = {c.link.model_dump_json(exclude={"timeout_s", "url", "resource"}) for _, c in group}
            if len(settings) > 1:
                raise ValueError(f"devices {roles} share the port {port} with different line settings "
                                 "(allowed: the same baudrate, bytesize, parity and stopbits)")
        return self


# -- control and simulation --------------------------------------------------------------------
#: The shortest control.sensor_frozen_s (but 0): this many seconds, and this many control periods
#: (a steady chamber's reading, to 0.1 %RH, repeats: 2 s aborted the twin's demo, 30 s ran its night).
FROZEN_MIN_S, FROZEN_PERIODS = 30.0, 3


class ControlConfig(_Strict):
    """RH loop and safety settings. Gains are for the wet fraction (0-1) per %RH of error."""

    kp: float = Field(0.015, ge=0, le=10, description="Proportional gain: wet fraction per %RH of error.")
    ki: float = Field(0.0005, ge=0, le=10, description="Integral gain: removes the steady offset.")
    kd: float = Field(0.0, ge=0, le=10, description="Derivative gain (usually 0: the sensor is noisy).")
    #: A chamber with its own controller: gains of an outer loop on its RH set point (%RH of set
    #: point per %RH of error at the near-membrane sensor). All 0 (the default): the set point is
    #: sent as it is and the chamber's controller alone holds it. ``castrig tune rh`` writes them.
    chamber_kp: float = Field(0.0, ge=0, le=100, description="Outer-loop proportional gain on a chamber's set point (0: none).")
    chamber_ki: float = Field(0.0, ge=0, le=100, description="Outer-loop integral gain on a chamber's set point (0: none).")
    chamber_kd: float = Field(0.0, ge=0, le=1000, description="Outer-loop derivative gain on a chamber's set point (0: none).")
    total_flow_slpm: float = Field(2.0, gt=0, le=100, json_schema_extra={"unit": "SLPM"}, description="Dry + wet flow held constant while RH is controlled.")
    purge_flow_slpm: float = Field(1.0, ge=0, le=100, json_schema_extra={"unit": "SLPM"}, description="Dry flow of the safe state and of purge steps.")
    wet_fraction_min: float = Field(0.0, ge=0, le=1, description="Lowest wet fraction the loop may command (anti-windup limit).")
    wet_fraction_max: float = Field(1.0, ge=0, le=1, description="Highest wet fraction the loop may command (anti-windup limit).")
    control_period_s: float = Field(1.0, gt=0, le=60, json_schema_extra={"unit": "s"},
                                    description="How often the RH loop reads and acts: its ticks start this far apart, their "
                                                "exchanges inside the period (after one that overran, the next at once).")
    sample_period_s: float = Field(2.0, gt=0, le=3600, json_schema_extra={"unit": "s"},
                                   description="How often every device is sampled into the record: at the first control tick "
                                               "when due, the due times this far apart.")
    sensor_stale_s: float = Field(10.0, gt=0, le=600, json_schema_extra={"unit": "s"}, description="No valid RH reading this long: abort (the loop is blind); checked after every exchange.")
    #: The near-membrane reading (RH and T) bit-identical this long = a frozen sensor (abort).
    #: A live transmitter's noise changes the last digit within seconds; 0 switches it off.
    sensor_frozen_s: float = Field(120.0, ge=0, le=86_400, json_schema_extra={"unit": "s"}, description="RH and T bit-identical this long: a frozen sensor, abort; 0: off; else at least 30 s and 3 control periods.")
    #: A pump, MFC or chamber that does not answer this long trips ``device_comms`` (abort);
    #: shorter gaps are ridden out (the pumps' safe-mode watchdog is the hardware backstop).
    comms_lost_s: float = Field(10.0, gt=0, le=600, json_schema_extra={"unit": "s"}, description="A device silent this long (from the start of its first failed exchange) trips device_comms (abort); checked after every exchange.")
    #: How long the safe state keeps retrying devices it could not yet verify.
    safe_state_retry_s: float = Field(15.0, ge=0, le=600, json_schema_extra={"unit": "s"}, description="How long the safe state retries devices it could not verify.")
    #: Then, before the process lets go of the rig, every ``safe_state_every_s`` for this long:
    #: a wet MFC or chamber whose cable comes back later is still switched off (an unattended
    #: night has nobody to do it). Ctrl-C stops the tries.
    safe_state_keep_trying_s: float = Field(1800.0, ge=0, le=86_400, json_schema_extra={"unit": "s"},
                                            description="After an unverified safe state, keep trying this long before letting go of the rig; 0: do not.")
    safe_state_every_s: float = Field(10.0, gt=0, le=600, json_schema_extra={"unit": "s"},
                                      description="How often those later tries are made (at least every third of a safe-mode pump's watchdog, so a pump that answers again is not in alarm at every try).")
    rh_sensor_range_pct: tuple[float, float] = Field((0.0, 100.0), json_schema_extra={
        "unit": "%RH", "prefixItems": [{"type": "number", "minimum": 0, "maximum": 100}] * 2},
                                                     description="[low, high] a plausible reading lies in; outside: a broken sensor.")

    @model_validator(mode="after")
    def _ranges_ordered(self) -> "ControlConfig":
        lo, hi = self.rh_sensor_range_pct
        if not 0.0 <= lo < hi <= 100.0:  # (wider, the broken-sensor interlock was switched off: [-1e308, 1e308] passed)
            raise ValueError(f"rh_sensor_range_pct = [{lo:g}, {hi:g}]: a relative humidity range (allowed: 0 <= low < high <= 100)")
        shortest = max(FROZEN_MIN_S, FROZEN_PERIODS * self.control_period_s)
        if 0 < self.sensor_frozen_s < shortest:
            # a steady sensor's reading repeats for a while: 0.001 s aborted every run at once
            raise ValueError(f"sensor_frozen_s = {self.sensor_frozen_s:g}: shorter than a steady sensor's reading may "
                             f"repeat (allowed: 0, off, or at least {shortest:g} s: {FROZEN_MIN_S:g} s and "
                             f"{FROZEN_PERIODS} control periods)")
        if self.sample_period_s < self.control_period_s:  # (samples are taken at control ticks)
            raise ValueError(f"sample_period_s = {self.sample_period_s:g}: samples are taken at the control ticks "
                             f"(allowed: at least control_period_s = {self.control_period_s:g} s)")
        if not self.wet_fraction_min < self.wet_fraction_max:
            raise ValueError(f"wet_fraction_min = {self.wet_fraction_min:g} must be below wet_fraction_max = "
                             f"{self.wet_fraction_max:g} (allowed: 0 <= min < max <= 1)")
        return self


class SimConfig(_Strict):
    """Model parameters of the digital twin (not literature facts; see castrig.sim.world)."""

    seed: int = Field(1, ge=0, description="Seed of the twin's noise (castrig run --seed overrides it).")
    chamber_volume_l: float = Field(2.0, gt=0, le=100, json_schema_extra={"unit": "L"}, description="Chamber volume; with the total flow it sets the time constant.")
    room_temperature_c: float = Field(22.0, ge=0, le=50, json_schema_extra={"unit": "°C"}, description="Room temperature (RH depends on it).")
    room_rh_pct: float = Field(45.0, ge=0, le=100, json_schema_extra={"unit": "%RH"}, description="Room RH the chamber leaks towards.")
    bubbler_rh_pct: float = Field(98.0, ge=0, le=100, json_schema_extra={"unit": "%RH"}, description="RH of the wet line leaving the bubbler.")
    dry_line_rh_pct: float = Field(1.0, ge=0, le=100, json_schema_extra={"unit": "%RH"}, description="RH of the dry line.")
    leak_per_min: float = Field(0.02, ge=0, le=10, json_schema_extra={"unit": "1/min"}, description="Exchange rate with room air.")
    sensor_tau_s: float = Field(10.0, ge=0, le=600, json_schema_extra={"unit": "s"}, description="Time constant of the simulated RH sensor.")
    params: dict[str, Any] = Field(default_factory=dict, description="Further model parameters of the twin (see castrig.sim.world).")

    @model_validator(mode="after")
    def _lines_apart(self) -> "SimConfig":
        """The wet line must be wetter than the dry one: at ``bubbler_rh_pct: 0`` every recipe was
        refused with "allowed: 1 to 0 %RH", naming the recipe rather than the profile."""
        if not self.bubbler_rh_pct > self.dry_line_rh_pct:
            raise ValueError(f"bubbler_rh_pct = {self.bubbler_rh_pct:g}: the wet line's RH (allowed: above "
                             f"dry_line_rh_pct = {self.dry_line_rh_pct:g}, at most 100)")
        return self

    @field_validator("params")
    @classmethod
    def _known_numbers(cls, params: dict[str, Any]) -> dict[str, Any]:
        """Groups and names the twin's models have, each a finite number: `check` passed
        ``chamber: {volume_l: x}`` and the run then ended in a TypeError traceback, leaving a
        crashed run folder at every try; ``film: {cv_base: .nan}`` was taken silently."""
        if not params:
            return params
        from dataclasses import fields

        from castrig.sim.world import ChamberModel, FilmModel

        groups = {"chamber": ChamberModel, "film": FilmModel}
        for group, values in params.items():
            if group not in groups:
                raise ValueError(f"{group}: no such group of the twin's parameters (allowed: chamber, film)")
            if not isinstance(values, dict):
                raise ValueError(f"{group} = {str(values)[:40]!r}: expected a mapping of parameter names to numbers")
            known = {f.name for f in fields(groups[group])}
            for name, v in values.items():
                if name not in known:
                    raise ValueError(f"{group}.{str(name)[:40]}: no such parameter of the twin's {group} "
                                     f"(allowed: {', '.join(sorted(known))})")
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise ValueError(f"{group}.{name} = {str(v)[:40]!r}: expected a finite number")
        return params


#: A safe-mode watchdog spans at least this many control periods (the runner's keep-alives go
#: out at ticks: a tick late by a slow exchange must not let it run out).
WATCHDOG_PER_PERIOD = 3.0


class Profile(_Strict):
    #: A file of another kind given as a profile, known by a field of its own (see load_model).
    OTHER_KINDS: ClassVar[dict[str, str]] = {"steps": "a recipe (it has `steps:`): give it as the RECIPE argument"}

    name: str = Field(..., description="Name of the rig (recorded with every run).")
    description: str = Field("", description="Free text: where the rig is, what it has.")
    clock: Literal["virtual", "wall"] = Field(
        "virtual", description="virtual: faster than real time, sim links only; wall: real time (hardware, served emulators).")
    devices: DevicesConfig = Field(..., description="The rig's devices by role.")
    control: ControlConfig = Field(ControlConfig(), description="RH loop and safety settings.")
    sim: SimConfig = Field(SimConfig(), description="Parameters of the digital twin (sim links only).")
    store: str | None = Field(None, description="Run store: a data-root folder or a postgresql:// URL; default: --data / $CASTRIG_DATA / ./runs.")
    #: SQLite durability: FULL fsyncs every commit (power-cut safe); NORMAL is kill-9 safe.
    store_sync: Literal["FULL", "NORMAL"] = Field("FULL", description="SQLite durability: FULL survives a power cut, NORMAL a kill -9.")

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

    @model_validator(mode="after")
    def _watchdogs_outlast_a_tick(self) -> "Profile":
        """A pump's safe-mode watchdog must outlast the gap between the runner's ticks, the only
        times it talks to the pump: a shorter one runs out between them and every run aborts."""
        least = WATCHDOG_PER_PERIOD * self.control.control_period_s
        for role, cfg in self.device_configs().items():
            watchdog = getattr(cfg, "safe_mode_s", None)
            if watchdog is not None and watchdog < least:
                raise ValueError(
                    f"devices.{role}.safe_mode_s = {watchdog}: must be at least {WATCHDOG_PER_PERIOD:g} x "
                    f"control.control_period_s ({self.control.control_period_s:g} s), since the runner talks to a pump "
                    f"once per control period (allowed: {math.ceil(least - 1e-9)}-255 s, or null for basic mode)")
        return self

    def device_configs(self) -> dict[str, Any]:
        return {k: v for k, v in self.devices if v is not None}

    def shared_lines(self) -> dict[str, list[str]]:
        """Each device on a serial line it shares with others (Alicat units on one RS-485 line,
        daisy-chained pumps), to every role on that line, sorted. One line is one port however
        it is spelled (the device lock's key, without DNS; see the validator above)."""
        from castrig.rig.ownership import serial_key  # ownership imports this module

        by_line: dict[str, list[str]] = {}
        for role, cfg in self.device_configs().items():
            link = getattr(cfg, "link", None)
            if isinstance(link, SerialLinkConfig):
                by_line.setdefault(serial_key(link.url, resolve=False) or link.url, []).append(role)
        return {role: sorted(roles) for roles in by_line.values() if len(roles) > 1 for role in roles}


def load_profile(path: str | Path) -> Profile:
    return load_model(Profile, path)
