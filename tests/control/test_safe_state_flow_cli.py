"""Wet air off means no wet air flowing, not a setpoint of 0. An outside tester held the wet
MFC's valve (``BHP``, as its front panel or another client on the line does) during a run over
`sim serve`: the run ended "safe state verified: … wet_mfc.off" from the setpoint read back
while the held valve still passed 1 slpm of wet air. The safe state now cancels a hold and
reads the measured flow back."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from castrig.devices.alicat import AlicatMFC
from castrig.errors import CastrigError
from castrig.links.serial_link import SerialLink

from conftest import ROOT, Proxy, castrig, run_rows, start_castrig, wait_until

PROFILE = "hw_profiles/sim-serial.yaml"


def _served_profile(tmp_path: Path, served, wet_port: int) -> Path:
    data = yaml.safe_load((ROOT / PROFILE).read_text())
    for role, cfg in data["devices"].items():
        if "link" in cfg and role in served.addresses:
            cfg["link"]["url"] = served.addresses[role]
    data["devices"]["wet_mfc"]["link"]["url"] = f"socket://127.0.0.1:{wet_port}"
    data["devices"].pop("camera")
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "rig.yaml"


def _frame_of(port: int):
    """What the controller itself says now (once the run's connection is gone: one client a port)."""
    try:
        mfc = AlicatMFC(SerialLink(f"socket://127.0.0.1:{port}", timeout_s=1.0), name="wet_mfc", unit_id="B", full_scale_slpm=5.0)
    except CastrigError:
        return None
    try:
        return mfc.read()
    except CastrigError:
        return None
    finally:
        mfc.close()


def test_a_wet_valve_held_during_a_run_is_released_and_its_flow_read_back(tmp_path, sim_serve):
    recipe = tmp_path / "held.yaml"
    recipe.write_text(yaml.safe_dump({"name": "held", "steps": [
        {"type": "condition", "setpoint_rh_pct": 60, "band_rh_pct": 20, "stable_for_s": 1, "timeout_s": 12},
        {"type": "wait", "duration_s": 60}]}))
    with sim_serve("--tcp", "0") as served:
        wet = urlsplit(served.addresses["wet_mfc"])
        proxy = Proxy((wet.hostname, wet.port))
        try:
            profile = _served_profile(tmp_path, served, proxy.port)
            run = start_castrig("run", str(recipe), "--profile", str(profile), "--data", str(tmp_path / "runs"), "-q")
            try:
                def flowing() -> bool:
                    runs = list((tmp_path / "runs").glob("2*"))
                    return bool(runs) and bool(run_rows(runs[0], "select 1 from samples where channel = 'wet_flow_slpm' and value > 0.3"))
                wait_until(lambda: flowing() or run.poll() is not None, timeout_s=60, what="wet air flowing")
                assert run.poll() is None, run.communicate()
                proxy.inject(b"BHP\r")  # the valve held where it is, wet air flowing
                run_dir = next((tmp_path / "runs").glob("2*"))
                wait_until(lambda: run_rows(run_dir, "select 1 from events where message like '%valve is held%'") or run.poll() is not None,
                           timeout_s=30, what="the hold said")
                castrig("abort", str(run_dir))  # the operator, told the valve is held
                out, err = run.communicate(timeout=120)
            finally:
                run.kill()
            frame = wait_until(lambda: _frame_of(proxy.port), timeout_s=10, what="the wet MFC answering a new client")
        finally:
            proxy.close()
    said = " ".join(err.split())
    assert run.returncode == 3, (run.returncode, said[-2000:])  # aborted
    assert "HLD" not in frame.status and frame.mass_flow_slpm <= 0.05, frame
    (last,) = run_rows(run_dir, "select message from events where kind = 'safe_state' order by id desc limit 1")
    assert "safe state verified" in last[0] and "wet_mfc.off" in last[0], last
    held = run_rows(run_dir, "select message from events where kind = 'warning' and message like '%valve is held%'")
    assert len(held) == 1 and held[0][0].startswith("wet_mfc: its valve is held (HLD)"), held  # said once, as it began
