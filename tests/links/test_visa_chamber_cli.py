"""A humidity chamber reached through VISA (``TCPIP::host::port::SOCKET``, pyvisa-py), as the
profile reference suggests for chambers, from the outside: a run against ``castrig sim serve``
completes over it, and a chamber VISA cannot reach — a port nobody listens on, a host that does
not resolve, a port that is no number — is "cannot open the rig" (exit 5, one line naming the
device, the resource and why) before a run folder exists. It was a traceback (exit 1) for the
last two, and for the first a run that started with a silent chamber until the device_comms
interlock aborted it, its safe state then retried for half an hour."""

from __future__ import annotations

import json
import socket

import pytest
import yaml

from conftest import ROOT, castrig, only_run_dir

QUICK = {"name": "visa-quick", "steps": [  # a few wall seconds: the chamber starts at the room's ~45 %RH
    {"type": "condition", "setpoint_rh_pct": 45, "band_rh_pct": 3, "stable_for_s": 1, "timeout_s": 120},
    {"type": "wait", "duration_s": 1},
    {"type": "purge", "duration_s": 1},
]}


def _profile(tmp_path, addresses: dict[str, str], chamber_resource: str):
    """sim-chamber.yaml on the wall clock, its devices at the addresses ``sim serve`` printed,
    the chamber through VISA at ``chamber_resource``."""
    data = yaml.safe_load((ROOT / "hw_profiles" / "sim-chamber.yaml").read_text())
    data["clock"] = "wall"
    for role, cfg in data["devices"].items():
        if role == "chamber":
            cfg["link"] = {"kind": "visa", "resource": chamber_resource, "timeout_s": 2.0}
        elif role in addresses:
            cfg["link"] = {"kind": "serial", "url": addresses[role], "timeout_s": 5.0 if role == "camera" else 1.0}
    path = tmp_path / "rig.yaml"
    path.write_text(yaml.safe_dump(data))
    recipe = tmp_path / "quick.yaml"
    recipe.write_text(yaml.safe_dump(QUICK))
    return path, recipe


def test_a_run_with_the_chamber_over_visa_completes_and_leaves_it_safe(tmp_path, sim_serve):
    with sim_serve("--tcp", "0", profile="hw_profiles/sim-chamber.yaml") as served:
        assert served.addresses["chamber"].startswith("TCPIP::")
        profile, recipe = _profile(tmp_path, served.addresses, served.addresses["chamber"])
        done = castrig("run", str(recipe), "--profile", str(profile), "--data", str(tmp_path / "runs"), timeout_s=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "chamber.humidifier_off" in done.stdout
    run_dir = only_run_dir(tmp_path / "runs")
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "completed"


def _closed_port() -> int:
    with socket.socket() as s:  # bound, never listening: a connect is refused
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("resource, why", [
    (lambda: f"TCPIP::127.0.0.1::{_closed_port()}::SOCKET", "Connection refused"),
    (lambda: "TCPIP::no-such-host.invalid::5025::SOCKET", "could not connect"),
    pytest.param(lambda: "TCPIP::127.0.0.1::SOCKET::SOCKET", "could not connect", marks=pytest.mark.slow),  # CI: the other two
], ids=["nobody listening", "host unknown", "port no number"])
def test_a_chamber_visa_cannot_reach_is_rig_not_reachable_before_any_run_folder(tmp_path, sim_serve, resource, why):
    res = resource()
    with sim_serve("--tcp", "0", profile="hw_profiles/sim-chamber.yaml") as served:
        profile, recipe = _profile(tmp_path, served.addresses, res)
        got = castrig("run", str(recipe), "--profile", str(profile), "--data", str(tmp_path / "runs"), timeout_s=60)
    said = " ".join(got.stderr.split())
    assert got.returncode == 5, got.stdout + got.stderr
    assert "cannot open the rig" in said and f"device chamber (VISA {res})" in said and why in said, said
    assert "Traceback" not in got.stdout + got.stderr
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").glob("*/run.json"))
