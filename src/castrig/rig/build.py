"""Profile → links → drivers: the one place that knows which class serves which device.

For sim links the digital twin is built first and each driver gets a
:class:`~castrig.links.SimLink` to its emulator; serial and VISA links open real ports. Links
to the same serial URL are shared (daisy-chained pumps on one port, told apart by address).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import threading
from typing import Any

from castrig.clock import Clock, VirtualClock, WallClock
from castrig.devices.identity import watch_identity
from castrig.devices.roles import Camera, Device, FlowController, HumidityChamber, HumiditySensor, SyringePump
from castrig.errors import BadInput, Busy, CastrigError
from castrig.links import Link, SimLink
from castrig.rig.ownership import serial_key
from castrig.rig.profile import (
    CAMERA_QUIET_S,
    AlicatConfig,
    FolderCameraConfig,
    HMT330Config,
    NE1000Config,
    OpenCVCameraConfig,
    Profile,
    ScpiChamberConfig,
    SerialLinkConfig,
    SimCameraConfig,
    SimLinkConfig,
    VisaLinkConfig,
    WatlowF4Config,
    WatlowF4TConfig,
)


@dataclass
class Rig:
    """The devices of one rig by role, the clock they share, and the twin when simulated."""

    profile: Profile
    clock: Clock
    devices: dict[str, Device]
    links: list[Link] = field(default_factory=list)
    twin: Any = None  # castrig.sim.twin.Twin when any device is simulated
    #: The device locks (castrig.rig.ownership.RigClaim) this rig holds; released by close().
    claim: Any = None
    #: Pumps found moving as the rig opened (a dead owner's dispense), stopped then; the run
    #: records it.
    found_moving: list[str] = field(default_factory=list)
    #: Flow controllers found streaming as the rig opened (left so by other software), put back
    #: to polling under their unit id then; the run records it.
    found_streaming: list[str] = field(default_factory=list)
    #: Devices that could not be opened, by role → why (only a rig built with ``partial``:
    #: ``castrig safe`` makes the others safe rather than none).
    unreached: dict[str, str] = field(default_factory=dict)
    #: Devices that answered on their line and then failed to open, by role → why (``partial``
    #: only): reached but not made safe nor read — a pump there may be pumping.
    unverified: dict[str, str] = field(default_factory=dict)
    #: Each role's link, as it was made (``partial``: what a device that failed had heard).
    role_links: dict[str, Link] = field(default_factory=dict)
    #: The pumps by role, fixed once build_rig has added every device (devices are only added
    #: while building): pumps() is asked several times per control tick, and each isinstance
    #: against the SyringePump ABC goes through ABCMeta.__instancecheck__.
    _pumps: dict[str, SyringePump] | None = field(default=None, init=False, repr=False, compare=False)

    def _get(self, role: str) -> Any:
        return self.devices.get(role)

    @property
    def caster(self) -> SyringePump | None:
        return self._get("caster")

    @property
    def water_pump(self) -> SyringePump | None:
        return self._get("water_pump")

    @property
    def dry_mfc(self) -> FlowController | None:
        return self._get("dry_mfc")

    @property
    def wet_mfc(self) -> FlowController | None:
        return self._get("wet_mfc")

    @property
    def chamber(self) -> HumidityChamber | None:
        return self._get("chamber")

    @property
    def rh_near(self) -> HumiditySensor:
        return self.devices["rh_near"]  # type: ignore[return-value]

    @property
    def rh_room(self) -> HumiditySensor | None:
        return self._get("rh_room")

    @property
    def camera(self) -> Camera | None:
        return self._get("camera")

    def pumps(self) -> dict[str, SyringePump]:
        """The syringe pumps by role (a new dict each call: callers may keep or change it)."""
        if self._pumps is not None:
            return dict(self._pumps)
        return {r: d for r, d in self.devices.items() if isinstance(d, SyringePump)}

    def arm_watchdogs(self) -> None:
        """Arm every pump's communications watchdog (safe mode): from now on someone must talk
        to them in time, which the runner's ticks do."""
        for pump in self.pumps().values():
            pump.arm_watchdog()

    def _seal(self) -> None:
        """Every device is in: fix the pump list (see ``_pumps``)."""
        self._pumps = {r: d for r, d in self.devices.items() if isinstance(d, SyringePump)}

    def close(self) -> None:
        # every pump's watchdog first: pumps on one daisy-chained port share its link, which the
        # first device closed would take from the others
        for pump in self.pumps().values():
            try:
                pump.disarm_watchdog()
            except Exception:  # noqa: BLE001 - closing must go on for the others
                pass
        for dev in self.devices.values():
            try:
                dev.close()
            except Exception:  # noqa: BLE001 - closing must go on for the others
                pass
        for link in self.links:
            link.close()
        if self.claim is not None:
            self.claim.release()
            self.claim = None


def make_clock(profile: Profile) -> Clock:
    return VirtualClock() if profile.clock == "virtual" else WallClock()


def build_rig(profile: Profile, *, clock: Clock | None = None, seed: int | None = None, camera_answers: bool = False,
              partial: bool = False) -> Rig:
    """Open every link and driver of ``profile``; on failure, close what was opened.
    ``camera_answers``: the camera must answer too (a recipe that captures); a recipe without a
    capture, or ``tune rh``, runs with the camera switched off. ``partial``: a device that cannot
    be opened is left out and named in :attr:`Rig.unreached` instead (``castrig safe``: one dead
    pump kept the wet air flowing, nothing made safe)."""
    clock = clock or make_clock(profile)
    twin = None
    if any(getattr(c, "link", None) is not None and c.link.kind == "sim" for c in profile.device_configs().values()):
        from castrig.sim.twin import Twin

        twin = Twin(profile, clock, seed)
    rig = Rig(profile, clock, {}, twin=twin)
    shared: dict[str, Link] = {}
    configs = profile.device_configs()
    opened: dict[str, Device] = {}

    def open_device(role: str) -> None:
        cfg = configs[role]
        lc = getattr(cfg, "link", None)
        line = shared.get(_line(lc)) if isinstance(lc, SerialLinkConfig) else None
        heard_before = 0 if line is None else line.heard_bytes
        try:
            opened[role] = _driver(role, cfg, rig, shared, camera_answers=camera_answers)
        except Busy as exc:  # its port held by another process: nothing of this rig is ours to drive
            raise Busy(f"device {role} of profile {profile.name!r}: {exc}") from None
        except CastrigError as exc:  # say which device, on which port, in one line
            link = rig.role_links.get(role)
            # (its line's devices open one after another: what the line heard since is its own)
            heard = 0 if link is None else link.heard_bytes - heard_before
            if partial:
                where = _where(cfg)
                why = str(exc) if where.split(" ", 1)[-1] in str(exc) else f"{where}: {exc}"
                if heard:
                    rig.unverified[role] = f"{why} (after {heard} bytes came back from it)"
                else:
                    rig.unreached[role] = why
                return  # (castrig safe sends such a pump its best-effort STP itself)
            said = _stop_answered_pump(role, cfg, link, heard, clock) if heard else ""
            raise CastrigError(f"device {role} ({_where(cfg)}): {exc}{said}{_garbled_hint(role, cfg, shared)}") from exc

    order = list(configs)
    try:
        try:
            _open_side_by_side(_open_groups(configs, clock), open_device, order)
        finally:  # in the profile's order, whichever line answered first
            rig.devices.update((r, opened[r]) for r in order if r in opened)
            rig.found_moving.sort(key=order.index)
            rig.found_streaming.sort(key=order.index)
            rig.unreached = {r: rig.unreached[r] for r in order if r in rig.unreached}
            rig.unverified = {r: rig.unverified[r] for r in order if r in rig.unverified}
    except BaseException:
        rig.close()
        raise
    rig._seal()
    return rig


def _open_groups(configs: dict[str, Any], clock: Clock) -> list[list[str]]:
    """The roles in groups that open side by side: one group per serial line (its devices in
    the profile's order, one after another), and the rest together first. Each open waits for
    its line to fall quiet (an HMT330 0.3 s after S and after ECHO OFF, the camera 1 s): a rig of
    seven over TCP took 3.1 s one after another. The
    twin's devices (and a virtual clock's) open in order, in this thread: one world, one time."""
    if clock.virtual:
        return [list(configs)]
    by_line: dict[str | None, list[str]] = {None: []}
    for role, cfg in configs.items():
        lc = getattr(cfg, "link", None)
        by_line.setdefault(_line(lc) if isinstance(lc, SerialLinkConfig) else None, []).append(role)
    return [group for group in by_line.values() if group]


def _open_side_by_side(groups: list[list[str]], open_device: Callable[[str], None], order: list[str]) -> None:
    """Open each group's roles in order, the groups in threads side by side (a single group in
    this thread); the error of the first role (in the profile's order) that failed is raised
    once every group has ended. A Ctrl-C ends the wait at once: the caller closes the rig, and a
    thread still talking meets its link closed (not its devices' time-outs, seconds on a silent
    line)."""
    failed: dict[str, BaseException] = {}

    def open_group(group: list[str]) -> None:
        for role in group:
            try:
                open_device(role)
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread below
                failed[role] = exc
                return

    if len(groups) == 1:
        open_group(groups[0])
    else:
        threads = [threading.Thread(target=open_group, args=(g,), name="rig-line", daemon=True) for g in groups]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if failed:
        raise failed[min(failed, key=order.index)]


def _stop_answered_pump(role: str, cfg: Any, link: Link | None, heard: int, clock: Clock) -> str:
    """A pump that answered and then failed to open (a version reply not known, then silence
    or garbage) may be pumping -- a resume after a kill -9 mid-cast met one and ended "cannot
    open the rig" with it still infusing: it is sent :mod:`castrig.devices.blind_stop`'s
    best-effort STP before the open fails, and what came back is said (``""``: not a pump)."""
    if not isinstance(cfg, NE1000Config) or link is None:
        return ""
    from castrig.devices.blind_stop import stop_unconfirmed_ne1000

    blind = stop_unconfirmed_ne1000(link, name=role, address=cfg.address, clock=clock)
    return f"; it answered ({heard} bytes), so a best-effort STP went to it: {blind.detail}"


def _garbled_hint(role: str, cfg: Any, shared: dict[str, Link]) -> str:
    """For a device of an ASCII protocol (HMT330, Alicat) whose serial line gave bytes with the
    high bit set as it failed to open: the line's settings are the likely cause, said with them."""
    lc = getattr(cfg, "link", None)
    if not isinstance(cfg, (HMT330Config, AlicatConfig)) or not isinstance(lc, SerialLinkConfig):
        return ""
    if not getattr(shared.get(_line(lc)), "saw_high_bytes", False):
        return ""
    said = " (bytes with the high bit set came back, which its ASCII replies never hold: "
    if lc.url.startswith("socket://"):  # (the serial server's port has its own settings)
        return said + "is the serial server's port at the device's speed and framing? a socket:// link does not set them)"
    return said + (f"is the line's speed or framing the device's? devices.{role}.link: {lc.baudrate} baud, "
                   f"{lc.bytesize}{lc.parity}{lc.stopbits})")


def _where(cfg: Any) -> str:
    lc = getattr(cfg, "link", None)
    if isinstance(lc, SerialLinkConfig):
        return f"serial {lc.url}"
    if isinstance(lc, VisaLinkConfig):
        return f"VISA {lc.resource}"
    return getattr(cfg, "model", "device")


def _line(lc: SerialLinkConfig) -> str:
    """A serial line as the rig shares it between its devices: one port however the profile spells
    it (the device lock's key, no DNS: as the profile's check takes a bus). By the URL as written,
    daisy-chained pumps given as /dev/pts/N and a by-id symlink to it opened the port twice, and
    the second open was refused by the first's exclusive lock: castrig refused its own rig."""
    return serial_key(lc.url, resolve=False) or lc.url


def _link(role: str, cfg: Any, rig: Rig, shared: dict[str, Link]) -> Link:
    lc = cfg.link
    if isinstance(lc, SimLinkConfig):
        emu = rig.twin.emulators[role]
        link: Link = SimLink(emu, rig.clock, timeout_s=lc.timeout_s)
    elif isinstance(lc, SerialLinkConfig):
        if _line(lc) in shared:
            rig.role_links[role] = shared[_line(lc)]
            return shared[_line(lc)]
        from castrig.links.serial_link import SerialLink

        link = SerialLink(lc.url, baudrate=lc.baudrate, bytesize=lc.bytesize, parity=lc.parity, stopbits=lc.stopbits,
                          timeout_s=lc.timeout_s, exclusive=True)
        shared[_line(lc)] = link
    elif isinstance(lc, VisaLinkConfig):
        from castrig.links.visa_link import VisaLink

        link = VisaLink(lc.resource, timeout_s=lc.timeout_s, backend=lc.backend)
    else:  # pragma: no cover - the profile model admits nothing else
        raise BadInput(f"devices.{role}.link: unknown kind")
    rig.links.append(link)
    rig.role_links[role] = link
    return link


def _driver(role: str, cfg: Any, rig: Rig, shared: dict[str, Link], *, camera_answers: bool = False) -> Device:
    clock = rig.clock
    if isinstance(cfg, NE1000Config):
        from castrig.devices.ne1000 import NE1000Pump

        pump = NE1000Pump(_link(role, cfg, rig, shared), name=role, address=cfg.address, clock=clock, safe_mode_s=cfg.safe_mode_s)
        # in basic mode until the runner's first tick (Rig.arm_watchdogs): the other devices and
        # the run store open in between, and a watchdog armed now could run out before then
        pump.connect(arm=False)
        if pump.last_state is not None and pump.last_state.moving:
            # left pumping by an owner that died mid-dispense (kill -9): nobody drives it now,
            # and it refuses the diameter while it moves (?NA) — stopped before it is set up
            pump.stop()
            rig.found_moving.append(role)
        pump.set_diameter_mm(cfg.syringe_diameter_mm)
        # the same pump after every reopen; another one found there is stopped (see identity)
        watch_identity(pump.link, role, pump.identity, on_wrong=pump.stop)
        return pump
    if isinstance(cfg, AlicatConfig):
        from castrig.devices.alicat import AlicatMFC

        mfc = AlicatMFC(
            _link(role, cfg, rig, shared),
            name=role,
            unit_id=cfg.unit_id,
            full_scale_slpm=cfg.full_scale_slpm,
            clock=clock,
            setpoint_form=cfg.setpoint_form,
        )
        # one data frame before the rig is called open, as the pumps and transmitters answer
        # theirs: a wrong unit id, port or baud rate was met only by the first step's setpoint,
        # a run folder and a device_comms abort later
        devices = rig.profile.device_configs()
        # (on a shared line, only Alicat units: the profile allows no mix)
        peers = [f"{r} ({devices[r].unit_id})" for r in rig.profile.shared_lines().get(role, []) if r != role]
        if mfc.open_line(line_peers=peers):
            rig.found_streaming.append(role)
        from castrig.devices.alicat import AlicatRejected

        try:  # the same unit after every reopen (two units left at the factory's id 'A' swap silently)
            watch_identity(mfc.link, role, mfc.identity)
        except AlicatRejected:  # a unit without ??M*: told apart by its unit id alone
            pass
        return mfc
    if isinstance(cfg, HMT330Config):
        from castrig.devices.hmt330 import HMT330

        return HMT330(_link(role, cfg, rig, shared), name=role, address=cfg.address, clock=clock)
    if isinstance(cfg, ScpiChamberConfig):
        from castrig.devices.scpi_chamber import ScpiHumidityChamber

        chamber = ScpiHumidityChamber(_link(role, cfg, rig, shared), name=role, clock=clock)
        seen = chamber.identify()  # *IDN?: it answers before the rig is called open (see the MFCs above)
        watch_identity(chamber.link, role, chamber.identify, now=seen)  # the same one after a reopen (an ASRL port)
        return chamber
    if isinstance(cfg, WatlowF4Config):
        from castrig.devices.watlow_f4 import WatlowF4

        f4 = WatlowF4(_link(role, cfg, rig, shared), name=role, unit=cfg.unit, clock=clock, dry_rh_pct=cfg.dry_rh_pct)
        f4.connect()
        # the same controller after a reopen (a serial path): two F4s at unit 1 answer alike
        watch_identity(f4.link, role, f4.identity)
        return f4
    if isinstance(cfg, WatlowF4TConfig):
        from castrig.devices.watlow_f4t import WatlowF4T

        f4t = WatlowF4T(_link(role, cfg, rig, shared), name=role, unit=cfg.unit, framing=cfg.framing,
                        word_order=cfg.word_order, temperature_loop=cfg.temperature_loop, rh_loop=cfg.rh_loop,
                        clock=clock)
        f4t.connect()
        watch_identity(f4t.link, role, f4t.identity)  # (RTU on a serial path; a TCP link never reopens)
        return f4t
    if isinstance(cfg, SimCameraConfig):
        from castrig.devices.netcam import NetCamera

        camera = NetCamera(_link(role, cfg, rig, shared), name=role)
        # what the line already holds is no answer to us: a client before us that left SNAPs
        # unanswered or frames unread (a served pty keeps both) had our *IDN? take a frame's
        # header line and our first SNAP its image bytes. The camera renders queued SNAPs one by
        # one, with pauses between: on a real line drained until quiet for a second (its own
        # cost at every open); the twin's in-process line holds nothing but what is here
        if clock.virtual:
            camera.link.flush_input()
        elif not camera.link.went_quiet(CAMERA_QUIET_S, max_s=cfg.open_drain_s) and camera_answers:
            # (a line that never goes quiet had every run wait a fixed 30 s, then send *IDN? into it)
            raise CastrigError(f"{role}: the line never went quiet for {CAMERA_QUIET_S:g} s within "
                               f"devices.{role}.open_drain_s = {cfg.open_drain_s:g} s: still sending (a backlog "
                               "longer than that, or no camera of castrig's frame protocol at this address)")
        if camera_answers:  # *IDN? before the rig is called open for a recipe that captures (see the
            # MFCs above): a camera address where nothing answers was met at the first capture,
            # hours into a night, the membrane made and never imaged
            seen = camera.identify(timeout_s=cfg.link.timeout_s)
            # the same camera after every reopen (its serial number in *IDN?)
            watch_identity(camera.link, role, lambda: camera.identify(timeout_s=cfg.link.timeout_s), now=seen)
        return camera
    if isinstance(cfg, FolderCameraConfig):
        from castrig.devices.camera import FolderCamera

        return FolderCamera(role, folder=cfg.folder, pixel_size_um=cfg.pixel_size_um,
                            ready_timeout_s=cfg.ready_timeout_s)
    if isinstance(cfg, OpenCVCameraConfig):
        from castrig.devices.camera import OpenCVCamera

        return OpenCVCamera(role, source=cfg.source, pixel_size_um=cfg.pixel_size_um)
    raise CastrigError(f"devices.{role}: no driver for {type(cfg).__name__}")
