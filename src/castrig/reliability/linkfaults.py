"""Link faults over real OS links: each emulator served on a TCP socket or a pty (``sim serve``),
its real driver on a :class:`~castrig.links.serial_link.SerialLink`, a fault switched on for a
while in wall time, then off.

A trial passes when every failed exchange raised a typed error (a :class:`CastrigError`, no
bare exception, no hang beyond the link's timeout) and the driver talks normally again within
a bounded number of polls once the fault is over — including after a dropped TCP connection
(the port vanished and came back).

Stall trials (:func:`stall_trial`) end by putting the device in its safe state and reading it
back; they pass only when the first attempt verified it (the safe path tries once; the figures
also say after how many attempts it would have been verified):

* ``watchdog`` (NE-1000, TCP and pty): the host stops sending keep-alives in safe mode, the
  pump's watchdog raises alarm T unprompted; then ``stop()`` and the state read back STOPPED.
* ``stall`` (NE-1000 pumping, Alicat wet line): the line stalls (the server stops moving bytes,
  as a SIGSTOPped ``sim serve`` does) long enough for the driver to time out, then runs again
  with the late replies; then the pump stopped, or the MFC's setpoint 0 taken and polled back.
* ``leftover`` (NE-1000, TCP): a client leaves mid-exchange in safe mode and the watchdog fires
  while nobody listens; the next client must see no leftover bytes, then stop and verify.
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
    #: Stall trials: the safe state (pump stopped, wet MFC at 0) was set and read back.
    safe_verified: bool | None = None
    #: ``leftover`` trials: bytes a new client got before it sent anything (must be 0).
    leftover_bytes: int = 0

    @property
    def passed(self) -> bool:
        if self.safe_verified is not None:  # a stall trial: the first safe-state attempt must verify it
            return not self.untyped and bool(self.safe_verified) and self.recovered_after == 1 and not self.leftover_bytes
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
                  faults: tuple[str, ...] = FAULTS, fault_s: float = 0.6, *, with_stalls: bool = True) -> list[LinkTrial]:
    """Every fault on every device and transport, then (``with_stalls``) the stall trials."""
    trials = [link_trial(d, t, f, fault_s=fault_s) for d in devices for t in transports for f in faults]
    return trials + (stall_campaign() if with_stalls else [])


# -- stall trials: a safe state verified after the line misbehaved ------------------------------
STALL_CASES: tuple[tuple[str, str, str], ...] = (
    ("ne1000", "tcp", "watchdog"), ("ne1000", "pty", "watchdog"),
    ("ne1000", "tcp", "stall"), ("alicat", "tcp", "stall"), ("alicat", "pty", "stall"),
    ("ne1000", "tcp", "leftover"),
)
#: The pump's safe-mode watchdog in these trials (s).
WATCHDOG_S = 1


def _pump(url: str, clock: WallClock, timeout_s: float = 0.3) -> Any:
    from castrig.devices.ne1000 import NE1000Pump
    from castrig.links.serial_link import SerialLink

    return NE1000Pump(SerialLink(url, baudrate=19200, timeout_s=timeout_s), name="caster", address=1, clock=clock,
                      safe_mode_s=WATCHDOG_S)


def _pump_stopped(pump: Any) -> bool:
    from castrig.devices.roles import PumpState

    pump.stop()
    return pump.state() is PumpState.STOPPED and pump.state() is PumpState.STOPPED


def _running_pump(url: str, clock: WallClock) -> Any:
    pump = _pump(url, clock)
    pump.connect()
    pump.set_diameter_mm(4.699)
    pump.set_rate_ml_min(0.1)
    pump.start()
    return pump


def _verify(trial: LinkTrial, check: Callable[[], bool]) -> None:
    """Up to :data:`RECOVERY_POLLS` tries of ``check`` (set the safe state, read it back)."""
    for k in range(RECOVERY_POLLS):
        trial.polls += 1
        try:
            if check():
                trial.safe_verified = True
                trial.recovered_after = k + 1
                return
        except CastrigError:
            trial.typed_errors += 1
        except Exception as exc:  # noqa: BLE001 - counted: only typed errors may come out of a driver
            trial.untyped.append(f"{type(exc).__name__}: {exc}")
            return
    trial.safe_verified = False


def stall_trial(device: str, transport: str, case: str, *, stall_s: float = 0.8) -> LinkTrial:
    """One of :data:`STALL_CASES`; see the module docstring."""
    trial = LinkTrial(device, transport, case)
    t_wall = time.perf_counter()
    clock = WallClock()
    emu = _emulator(device, clock)
    server = (serve_tcp if transport == "tcp" else serve_pty)(emu, clock)
    devices: list[Any] = []
    with server:
        try:
            if case == "watchdog":
                pump = _running_pump(server.address, clock)
                devices.append(pump)
                time.sleep(WATCHDOG_S + 0.4)  # the host stalls: no keep-alive
                _verify(trial, lambda: _pump_stopped(pump))
            elif case == "stall":
                if device == "ne1000":
                    dev = _running_pump(server.address, clock)
                    stalled: Callable[[], Any] = dev.dispensed
                    check: Callable[[], bool] = lambda: _pump_stopped(dev)  # noqa: E731
                else:
                    dev, _ = _alicat(server.address, clock)
                    dev.set_flow_slpm(2.0)
                    stalled = lambda: dev.set_flow_slpm(3.0)  # noqa: E731
                    check = lambda: _mfc_at_zero(dev)  # noqa: E731
                devices.append(dev)
                server.pause()
                try:
                    t_end = time.monotonic() + stall_s
                    while time.monotonic() < t_end:
                        _poll(stalled, trial)
                finally:
                    server.resume()
                _verify(trial, check)
            elif case == "leftover":
                pump = _running_pump(server.address, clock)
                devices.append(pump)
                pump.link.write(pump._frame("DIS", None))  # noqa: SLF001 - leaves mid-exchange
                pump.close()
                time.sleep(WATCHDOG_S + 0.4)  # the watchdog fires while nobody listens
                fresh = _pump(server.address, clock)
                devices.append(fresh)
                trial.leftover_bytes = len(fresh.link.read_available(wait_s=0.3))
                fresh.connect()
                _verify(trial, lambda: _pump_stopped(fresh))
            else:
                raise ValueError(f"unknown stall case {case!r}")
        except CastrigError as exc:
            trial.untyped.append(f"setup failed: {exc}")
        finally:
            for dev in devices:
                try:
                    dev.close()
                except CastrigError:
                    pass
    trial.wall_s = time.perf_counter() - t_wall
    return trial


def _mfc_at_zero(mfc: Any) -> bool:
    mfc.set_flow_slpm(0.0)
    return mfc.read().setpoint_slpm == 0.0 and mfc.setpoint().requested == 0.0


def stall_campaign(cases: tuple[tuple[str, str, str], ...] = STALL_CASES) -> list[LinkTrial]:
    return [stall_trial(*case) for case in cases]


def format_stall_figures(trials: list[LinkTrial]) -> str:
    """One line per trial and a total: safe state verified, typed errors, polls, wall time."""
    lines = [f"{'device':8} {'link':4} {'case':9} {'safe verified':16} {'typed errors':>12} {'polls':>5} {'wall s':>6}"]
    for t in trials:
        verified = ("yes" if t.recovered_after == 1 else f"try {t.recovered_after}") if t.safe_verified else "NO"
        if t.leftover_bytes:
            verified += f" ({t.leftover_bytes} leftover bytes)"
        lines.append(f"{t.device:8} {t.transport:4} {t.fault:9} {verified:16} {t.typed_errors:>12} {t.polls:>5} "
                     f"{t.wall_s:>6.1f}" + (f"  untyped: {t.untyped}" if t.untyped else ""))
    ok = sum(t.passed for t in trials)
    lines.append(f"stall trials: safe state verified at the first attempt in {ok}/{len(trials)}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m castrig.reliability.linkfaults [--stalls-only]``: print the link-fault figures."""
    import argparse

    ap = argparse.ArgumentParser(description="Link faults and stalls over real OS links (TCP, pty).")
    ap.add_argument("--stalls-only", action="store_true", help="only the stall trials (a few seconds)")
    args = ap.parse_args(argv)
    trials = stall_campaign()
    print(format_stall_figures(trials))
    ok = all(t.passed for t in trials)
    if not args.stalls_only:
        glitches = link_campaign(with_stalls=False)
        passed = sum(t.passed for t in glitches)
        print(f"link faults: {passed}/{len(glitches)} recovered with typed errors only")
        ok &= passed == len(glitches)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
