"""A pty that comes back to another device: the run faults safe naming both; a plain reconnect goes on.

Met with ``castrig sim serve`` restarted under a running ``castrig run``: its ptys came back in
another order, and ``rh_near`` reopened the pty that then belonged to another device. Two HMT330s
without an address (or two MFCs left at the same unit id, or two pumps without an address) answered
as before and swapped roles silently: the run completed, its RH loop on the room sensor; a cast
faulted as if the caster had dispensed nothing (the pre-wetting pump's counter read) and its safe
state was "verified" through the swapped drivers. The profile names the ptys through symlinks, which
the test points at the restarted server's ptys — swapped for two pairs (the pumps, in the second
test), as renumbered USB-serial adapters would be after a replug, and as they belong for the others.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import yaml

from castrig.clock import WallClock
from castrig.devices.ne1000 import NE1000Pump, PumpState
from castrig.links.serial_link import SerialLink
from conftest import ROOT, SimServe, only_run_dir, run_status, start_castrig, wait_until

SWAP = {"rh_near": "rh_room", "rh_room": "rh_near", "dry_mfc": "wet_mfc", "wet_mfc": "dry_mfc"}


def _point(links: Path, addresses: dict[str, str], swap: dict[str, str], roles: object = None) -> None:
    """Each role's symlink (of ``roles``, default all) at its device's pty (at the other one's,
    for a role in ``swap``; at none for an address ``None``: the cable pulled)."""
    for role in roles or addresses:
        new = links / f"{role}.new"
        target = addresses[swap.get(role, role)]
        new.symlink_to(target or links / "unplugged")
        os.replace(new, links / role)


def _profiles(tmp_path: Path, served: dict, step: dict | None = None, **control: float) -> Path:
    """``served`` (a profile ``sim serve`` serves) written as TMP/served.yaml, and the rig's
    profile beside it (TMP/rig.yaml: each link at TMP/links/ROLE, ``control`` changed), with a
    recipe of one ``step`` (default: a minute's wait): the folder of the role's symlinks."""
    for role in ("caster", "water_pump"):  # no watchdog to keep alive: pumps talked to at samples only
        del served["devices"][role]["safe_mode_s"]
    (tmp_path / "served.yaml").write_text(yaml.safe_dump(served))
    step = step or {"type": "wait", "duration_s": 60}
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"name": "swap", "steps": [step]}))
    links = tmp_path / "links"
    links.mkdir()
    rig = dict(served)
    for role, cfg in rig["devices"].items():
        cfg["link"]["url"] = str(links / role)
    rig["control"].update(control)
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(rig))
    return links


def _run_until_running(tmp_path: Path, links: Path, first: SimServe, reap) -> tuple[subprocess.Popen[str], Path]:
    """``castrig run`` on the rig's profile, once running on ``first``'s devices; the links then
    pointed at none (not at the next server's ptys while it starts)."""
    _point(links, first.addresses, {})
    run = reap(start_castrig("run", str(tmp_path / "recipe.yaml"), "--profile", str(tmp_path / "rig.yaml"),
                             "--data", str(tmp_path / "runs"), "-q"))
    run_dir = wait_until(lambda: only_run_dir(tmp_path / "runs"), timeout_s=20, what="the run folder")
    wait_until(lambda: run_status(run_dir).get("state") == "running", timeout_s=20, what="the run running")
    _point(links, dict.fromkeys(first.addresses), {})
    return run, run_dir


def test_a_pty_reopened_to_another_device_faults_safe_naming_both(tmp_path: Path, sim_serve, reap) -> None:
    served = yaml.safe_load((ROOT / "hw_profiles/sim-serial.yaml").read_text())
    for role in ("dry_mfc", "wet_mfc"):  # both left at the factory's unit id: only their serial numbers differ
        served["devices"][role]["unit_id"] = "A"
    # devices sampled every 30 s, the near sensor read every 0.2 s: the sensors' swap is met first
    links = _profiles(tmp_path, served, control_period_s=0.2, sample_period_s=30, safe_state_retry_s=0.3,
                      safe_state_every_s=0.3, safe_state_keep_trying_s=0.5)
    with sim_serve(profile=str(tmp_path / "served.yaml")) as first:
        run, run_dir = _run_until_running(tmp_path, links, first, reap)
    with sim_serve(profile=str(tmp_path / "served.yaml")) as second:  # the ptys given out again
        assert run.poll() is None
        # the near sensor first, the others once its line is being checked: the restarted pumps'
        # power-up alarm (a pump_alarm abort of its own) comes after the sensors' swap
        _point(links, second.addresses, SWAP, ["rh_near"])
        time.sleep(0.3)
        _point(links, second.addresses, SWAP)
        assert run.wait(timeout=20) == 3
    out = run.stdout.read()
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    end = [e for e in log if e.get("kind") == "run_end"][-1]
    assert end["outcome"] == "faulted"
    assert end["reason"].startswith(f"WrongDevice: rh_near: {links / 'rh_near'} reopened to another device: "
                                    "it was HMT330 serial number K1234506, it is now HMT330 serial number K1234507"), end
    # the safe state: the pumps reconnected to themselves and were made safe (their restart's
    # power-up alarm acknowledged, not swallowed); neither MFC was taken for the other
    last = [e for e in log if e.get("kind") == "safe_state"][-1]
    assert last["verified"] == {"caster.stopped": True, "water_pump.stopped": True, "dry_mfc.purge": False,
                                "wet_mfc.off": False}, last
    assert ("it was Alicat MC-5SLPM-D serial number 123403, it is now Alicat MC-5SLPM-D serial number 123404; "
            "not used as dry_mfc") in last["errors"]["dry_mfc.purge"], last
    assert "serial number 123403; not used as wet_mfc" in last["errors"]["wet_mfc.off"], last
    assert "safe state NOT verified" in out and "reopened to another device" in out, out


def _pump(path: str, name: str) -> NE1000Pump:
    """The NE-1000 at the pty ``path``, talked to as the rig's driver does (its alarms acknowledged)."""
    pump = NE1000Pump(SerialLink(path, exclusive=True), name=name, clock=WallClock())
    pump.connect(arm=False)
    return pump


def test_pumps_swapped_behind_their_ptys_are_stopped_and_the_run_faults_naming_both(tmp_path: Path, sim_serve,
                                                                                     reap) -> None:
    """Two NE-1000s without an address, told apart by their syringes only: a caster still casting
    when its adapter came back as the pre-wetting pump's is stopped by the driver that found it
    there, neither is driven as the other, and the run faults naming both."""
    served = yaml.safe_load((ROOT / "hw_profiles/sim-serial.yaml").read_text())
    for role in ("caster", "water_pump"):
        del served["devices"][role]["address"]
    # casting (a minute's 0.5 mL) when the pumps' adapters are replugged
    links = _profiles(tmp_path, served, {"type": "cast", "volume_ml": 0.5, "rate_ml_min": 0.5}, control_period_s=0.2,
                      sample_period_s=0.2, safe_state_retry_s=0.3, safe_state_every_s=0.3, safe_state_keep_trying_s=0.5)
    with sim_serve(profile=str(tmp_path / "served.yaml")) as first:
        run, run_dir = _run_until_running(tmp_path, links, first, reap)
    with sim_serve(profile=str(tmp_path / "served.yaml")) as second:
        # the pumps did not lose power (only their adapters were replugged): their restart's
        # power-up alarm acknowledged, the caster casting again as it was
        caster, water = _pump(second.addresses["caster"], "caster"), _pump(second.addresses["water_pump"], "water_pump")
        caster.set_rate_ml_min(0.5)
        caster.start()
        caster.close()
        water.close()
        _point(links, second.addresses, {"caster": "water_pump", "water_pump": "caster"})
        try:
            code = run.wait(timeout=20)
        except subprocess.TimeoutExpired:  # a run that goes on, each driver on the other's pump: ended here,
            run.kill()  # its pumps read as it left them
            code = run.wait(timeout=10)
        # read back over the wire: the caster found in the pre-wetting pump's place was stopped,
        # and nothing was pumped through either pump in the other's place
        caster, water = _pump(second.addresses["caster"], "caster"), _pump(second.addresses["water_pump"], "water_pump")
        caster_state, caster_ml = caster.state(), caster.dispensed()
        water_state, water_ml = water.state(), water.dispensed()
        caster.close()
        water.close()
    assert caster_state is PumpState.STOPPED, caster_state  # (not sent a stop first: infusing on, out of reach)
    assert water_state is PumpState.STOPPED and water_ml.infused_ml == water_ml.withdrawn_ml == 0, (water_state, water_ml)
    assert 0 < caster_ml.infused_ml < 0.5 * 20 / 60, caster_ml  # its own cast, up to its stop only
    assert code == 3, code
    out = run.stdout.read()
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    caster_is = "NE-1000 (NE1000V3.928) holding a 4.699 mm syringe"
    water_is = "NE-1000 (NE1000V3.928) holding a 8.585 mm syringe"
    found = {"caster": f"it was {caster_is}, it is now {water_is}; not used as caster",
             "water_pump": f"it was {water_is}, it is now {caster_is}; not used as water_pump"}
    end = [e for e in log if e.get("kind") == "run_end"][-1]
    assert end["outcome"] == "faulted", end
    # (before the identity checks: "step 1: caster dispensed 0 mL of 0.5 mL", the pre-wetting
    # pump's counter read as the caster's, and a safe state "verified" through the swapped drivers)
    assert any(end["reason"].startswith(f"WrongDevice: {role}: {links / role} reopened to another device: {text}")
               for role, text in found.items()), end
    # neither driver reached its own pump again: the safe state says so, naming what it found
    last = [e for e in log if e.get("kind") == "safe_state"][-1]
    assert last["verified"] == {"caster.stopped": False, "water_pump.stopped": False, "dry_mfc.purge": True,
                                "wet_mfc.off": True}, last
    for role, text in found.items():
        assert text in last["errors"][f"{role}.stopped"], last
    assert "safe state NOT verified" in out and "reopened to another device" in out, out


def test_a_watlow_f4_line_reopened_to_another_f4_faults_safe_naming_both(tmp_path: Path, sim_serve, reap) -> None:
    """Two F4s at the factory's unit 1 answer every control register alike: before the identity
    check a run whose chamber's adapter came back on another chamber's controller went on
    driving that chamber as its own. Its model and serial number (registers 0-2) now differ,
    and the run faults naming both.

    The other lines came back to their own devices first, and confirming that held the control
    tick: ~2.8 s against a 0.2 s control period, each HMT330's ``?`` listing ~1.3 s at its
    line's speed (its serial number is on the listing's second line; no shorter command reads
    it), and nothing in the run's log said why the tick was late. Each reopened line is now
    logged with the identity confirmed and the seconds it took."""
    served = yaml.safe_load((ROOT / "hw_profiles/sim-watlow-f4-serial.yaml").read_text())
    for role in ("caster", "water_pump"):  # (talked to below as _pump does: without an address)
        del served["devices"][role]["address"]
    links = _profiles(tmp_path, served, control_period_s=0.2, sample_period_s=0.2, safe_state_retry_s=0.3,
                      safe_state_every_s=0.3, safe_state_keep_trying_s=0.5, comms_lost_s=30, sensor_stale_s=30)
    with sim_serve(profile=str(tmp_path / "served.yaml")) as first:
        run, run_dir = _run_until_running(tmp_path, links, first, reap)

    def reopened() -> dict[str, dict]:
        text = (run_dir / "log.jsonl").read_text()
        return {e["source"]: e for e in map(json.loads, text.splitlines()) if e.get("kind") == "link_reopened"}

    # another twin's F4 (its seed: another serial number) behind the chamber's port
    with sim_serve("--seed", "2", profile=str(tmp_path / "served.yaml")) as second:
        assert run.poll() is None
        for role in ("caster", "water_pump"):  # (their restart's power-up alarm acknowledged: no pump_alarm abort)
            _pump(second.addresses[role], role).close()
        _point(links, second.addresses, {}, [role for role in second.addresses if role != "chamber"])
        said = wait_until(lambda: {"rh_near", "rh_room"} <= set(reopened()) and reopened(), timeout_s=20,
                          what="both sensors' reopening said")
        _point(links, second.addresses, {}, ["chamber"])
        try:
            code = run.wait(timeout=20)
        except subprocess.TimeoutExpired:  # (before: the run went on, on the other chamber)
            run.kill()
            code = run.wait(timeout=10)
    near = said["rh_near"]
    assert near["identity"] == "HMT330 serial number K1234506", near
    assert near["event"].startswith(f"rh_near: {links / 'rh_near'} reopened to the same device (HMT330 serial number "
                                    "K1234506); confirming it took "), near
    assert "this tick was late by that much" in near["event"], near
    for role in ("rh_near", "rh_room"):  # the listing at the line's speed (not the link's timeouts)
        assert 0.5 < said[role]["confirm_s"] < 3.0, said[role]
    assert code == 3, code
    out = run.stdout.read()
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    end = [e for e in log if e.get("kind") == "run_end"][-1]
    assert end["outcome"] == "faulted", end
    assert end["reason"].startswith(f"WrongDevice: chamber: {links / 'chamber'} reopened to another device: it was "
                                    "Watlow F4 (model number 5270) serial number 1001 5005, it is now Watlow F4 "
                                    "(model number 5270) serial number 1002 5005"), end
    last = [e for e in log if e.get("kind") == "safe_state"][-1]
    assert last["verified"]["caster.stopped"] and last["verified"]["water_pump.stopped"], last
    assert not any(ok for check, ok in last["verified"].items() if check.startswith("chamber")), last
    assert "safe state NOT verified" in out and "reopened to another device" in out, out
