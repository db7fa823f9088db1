"""Link faults over real OS links: each emulator served on a TCP socket or a pty (``sim serve``),
its real driver on a :class:`~castrig.links.serial_link.SerialLink`, a fault switched on for a
while in wall time, then off.

A trial passes when every failed exchange raised a typed error (a :class:`CastrigError`, no
bare exception, no hang beyond the link's timeout) and the driver talks normally again within
a bounded number of polls once the fault is over — including after a dropped TCP connection
(the port vanished and came back).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from castrig.clock import WallClock
from castrig.errors import CastrigError
from castrig.sim.serve import serve_pty, serve_tcp

#: Polls allowed after the fault is over before the link must work again.
RECOVERY_POLLS = 5


@dataclass
class LinkTrial:
    device: str
    transport: str
    fault: str
    polls: int = 0
    typed_errors: int = 0
    untyped: list[str] = field(default_factory=list)
    recovered_after: int | None = None
    wall_s: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.untyped and self.recovered_after is not None


def _ne1000(url: str, clock: WallClock) -> tuple[Any, Callable[[], Any]]:
    from castrig.devices.ne1000 import NE1000Pump
    from castrig.links.serial_link import SerialLink

    pump = NE1000Pump(SerialLink(url, baudrate=19200, timeout_s=0.2), name="caster", address=1, clock=clock)
    return pump, pump.dispensed


def _alicat(url: str, clock: WallClock) -> tuple[Any, Callable[[], Any]]:
    from castrig.devices.alicat import AlicatMFC
    from castrig.links.serial_link import SerialLink

    mfc = AlicatMFC(SerialLink(url, timeout_s=0.2), name="dry_mfc", unit_id="A", full_scale_slpm=5.0, clock=clock)
    return mfc, mfc.read


def _hmt330(url: str, clock: WallClock) -> tuple[Any, Callable[[], Any]]:
    from castrig.devices.hmt330 import HMT330
    from castrig.links.serial_link import SerialLink

    # 8N1 on ptys/sockets: the served emulator does not care, a pty refuses 7E1 (see serial_link)
    return _lazy(lambda: HMT330(SerialLink(url, baudrate=4800, timeout_s=0.3), name="rh_near", clock=clock), "read")


def _lazy(make: Callable[[], Any], method: str) -> tuple[Any, Callable[[], Any]]:
    dev = make()
    return dev, getattr(dev, method)


def _emulator(device: str, clock: WallClock) -> Any:
    t0 = clock.now()
    if device == "ne1000":
        from castrig.sim.ne1000 import NE1000Emulator

        return NE1000Emulator("caster", address=1, t0=t0)
    if device == "alicat":
        from castrig.sim.alicat import AlicatEmulator

        return AlicatEmulator("dry_mfc", unit_id="A", full_scale_slpm=5.0, t0=t0)
    from castrig.sim.hmt330 import HMT330Emulator

    return HMT330Emulator("rh_near", source=lambda t: (50.0, 22.0), t0=t0)


_DRIVERS = {"ne1000": _ne1000, "alicat": _alicat, "hmt330": _hmt330}
DEVICES = tuple(_DRIVERS)
TRANSPORTS = ("tcp", "pty")
FAULTS = ("no_reply", "garbage", "truncate", "drop")


def link_trial(device: str, transport: str, fault: str, *, fault_s: float = 0.6, poll_s: float = 0.05) -> LinkTrial:
    """Poll a served emulator through its driver; inject ``fault`` for ``fault_s`` wall seconds."""
    trial = LinkTrial(device, transport, fault)
    t_wall = time.perf_counter()
    clock = WallClock()
    emu = _emulator(device, clock)
    server = (serve_tcp if transport == "tcp" else serve_pty)(emu, clock)
    dev = None
    with server:
        try:
            dev, poll = _DRIVERS[device](server.address, clock)
            if device == "ne1000":
                dev.connect()  # acknowledges the power-up alarm R
            poll()
            emu.inject(fault)
            t_end = time.monotonic() + fault_s
            while time.monotonic() < t_end:
                _poll(poll, trial)
                time.sleep(poll_s)
            emu.clear()
            for k in range(RECOVERY_POLLS):
                if _poll(poll, trial):
                    trial.recovered_after = k + 1
                    break
                time.sleep(poll_s)
        except CastrigError as exc:
            trial.untyped.append(f"setup failed: {exc}")
        finally:
            if dev is not None:
                dev.close()
    trial.wall_s = time.perf_counter() - t_wall
    return trial


def _poll(poll: Callable[[], Any], trial: LinkTrial) -> bool:
    trial.polls += 1
    try:
        poll()
        return True
    except CastrigError:
        trial.typed_errors += 1
    except Exception as exc:  # noqa: BLE001 - counted: only typed errors may come out of a driver
        trial.untyped.append(f"{type(exc).__name__}: {exc}")
    return False


def link_campaign(devices: tuple[str, ...] = DEVICES, transports: tuple[str, ...] = TRANSPORTS,
                  faults: tuple[str, ...] = FAULTS, fault_s: float = 0.6) -> list[LinkTrial]:
    return [link_trial(d, t, f, fault_s=fault_s) for d in devices for t in transports for f in faults]
