"""A pty that comes back to another device: the run faults safe naming both; a plain reconnect goes on.

Met with ``castrig sim serve`` restarted under a running ``castrig run``: its ptys came back in
another order, and ``rh_near`` reopened the pty that then belonged to another device. Two HMT330s
without an address (or two pumps without one) answered as before and swapped roles silently: the
run completed, its RH loop on the room sensor. The profile names the ptys through symlinks, which
the test points at the restarted server's ptys — swapped for two pairs, as renumbered USB-serial
adapters would be after a replug, and as they belong for the others.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from conftest import ROOT, only_run_dir, run_status, start_castrig, wait_until

SWAP = {"rh_near": "rh_room", "rh_room": "rh_near", "caster": "water_pump", "water_pump": "caster"}


def _point(links: Path, addresses: dict[str, str], swap: dict[str, str]) -> None:
    """Each role's symlink at its device's pty (at the other one's, for a role in ``swap``)."""
    for role in addresses:
        new = links / f"{role}.new"
        new.symlink_to(addresses[swap.get(role, role)])
        os.replace(new, links / role)


def test_a_pty_reopened_to_another_device_faults_safe_naming_both(tmp_path: Path, sim_serve, reap) -> None:
    served = yaml.safe_load((ROOT / "hw_profiles/sim-serial.yaml").read_text())
    for role in ("caster", "water_pump"):  # pumps without addresses: only their syringes tell them apart
        del served["devices"][role]["address"], served["devices"][role]["safe_mode_s"]
    (tmp_path / "served.yaml").write_text(yaml.safe_dump(served))
    (tmp_path / "recipe.yaml").write_text(yaml.safe_dump({"name": "swap", "steps": [{"type": "wait", "duration_s": 60}]}))
    links = tmp_path / "links"
    links.mkdir()
    rig = dict(served)
    for role, cfg in rig["devices"].items():
        cfg["link"]["url"] = str(links / role)
    # pumps sampled every 30 s, the near sensor read every 0.2 s: the sensors' swap is met first
    rig["control"].update(control_period_s=0.2, sample_period_s=30, safe_state_retry_s=0.3, safe_state_every_s=0.3,
                          safe_state_keep_trying_s=0.5)
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(rig))
    with sim_serve(profile=str(tmp_path / "served.yaml")) as first:
        _point(links, first.addresses, {})
        run = reap(start_castrig("run", str(tmp_path / "recipe.yaml"), "--profile", str(tmp_path / "rig.yaml"),
                                 "--data", str(tmp_path / "runs"), "-q"))
        run_dir = wait_until(lambda: only_run_dir(tmp_path / "runs"), timeout_s=20, what="the run folder")
        wait_until(lambda: run_status(run_dir).get("state") == "running", timeout_s=20, what="the run running")
    with sim_serve(profile=str(tmp_path / "served.yaml")) as second:  # the ptys given out again
        assert run.poll() is None
        _point(links, second.addresses, SWAP)
        assert run.wait(timeout=20) == 3
    out = run.stdout.read()
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    end = [e for e in log if e.get("kind") == "run_end"][-1]
    assert end["outcome"] == "faulted"
    assert end["reason"].startswith(f"WrongDevice: rh_near: {links / 'rh_near'} reopened to another device: "
                                    "it was HMT330 serial number K1234506, it is now HMT330 serial number K1234507"), end
    # the safe state: the MFCs reconnected to themselves and were made safe; neither pump was
    # taken for the other (nor made "safe" in its place)
    last = [e for e in log if e.get("kind") == "safe_state"][-1]
    assert last["verified"] == {"caster.stopped": False, "water_pump.stopped": False, "dry_mfc.purge": True,
                                "wet_mfc.off": True}, last
    assert ("it was NE-1000 (NE1000V3.928) holding a 4.699 mm syringe, it is now NE-1000 (NE1000V3.928) holding "
            "a 8.585 mm syringe; not used as caster") in last["errors"]["caster.stopped"], last
    assert "holding a 4.699 mm syringe; not used as water_pump" in last["errors"]["water_pump.stopped"], last
    assert "safe state NOT verified" in out and "reopened to another device" in out, out
