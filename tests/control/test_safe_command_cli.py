"""`castrig safe`: after a kill -9 of `castrig tune rh` mid step test the wet air stayed at the
step test's level until someone ran something else, and nothing only made the rig safe (`castrig
resume` needs a run folder, and goes on with the run). Now `castrig safe --profile P` opens the rig
(refused while another process owns it: exit 4, nothing sent), says what it found, brings it to
the safe state every run's end and resume use, read back, and exits 0 -- the wet MFC read over
its own line afterwards says 0."""

from __future__ import annotations

import os
import signal
import socket
import time
from urllib.parse import urlsplit

from castrig.devices.alicat import parse_frame
from conftest import ROOT, castrig, profile_with_addresses, start_castrig, wait_until


def _wet_mfc(address: str, unit: str = "B") -> tuple[float, float]:
    """(setpoint, mass flow) slpm of the served wet MFC, polled over its socket as any client does
    (its line is free once its owner has gone)."""
    u = urlsplit(address)
    with socket.create_connection((u.hostname, u.port), timeout=5) as s:
        s.sendall(f"{unit}\r".encode())
        reply = b""
        while not reply.endswith(b"\r"):
            chunk = s.recv(256)
            assert chunk, reply
            reply += chunk
    frame = parse_frame(reply.decode(), unit_id=unit)
    return frame.setpoint_slpm, frame.mass_flow_slpm


def test_castrig_safe_brings_the_wet_air_a_killed_step_test_left_on_to_zero_read_back_over_the_wire(tmp_path, sim_serve, reap):
    with sim_serve("--tcp", "0") as served:
        profile = profile_with_addresses(ROOT / "hw_profiles" / "sim-serial.yaml", served.addresses, tmp_path / "rig.yaml")
        tune = reap(start_castrig("tune", "rh", "--profile", str(profile), "--plot", str(tmp_path / "t.svg")))
        said = ""
        deadline = time.monotonic() + 30
        while "step test" not in said and time.monotonic() < deadline:
            said += tune.stderr.readline()
        assert "step test" in said and f"if it is killed instead: castrig safe --profile {profile}" in said, said

        busy = castrig("safe", "--profile", str(profile), timeout_s=30)  # the step test owns the rig
        assert busy.returncode == 4 and "Traceback" not in busy.stderr, busy.stderr[-2000:]
        assert "busy" in busy.stderr and "found on" not in busy.stdout, busy.stdout + busy.stderr

        os.kill(tune.pid, signal.SIGKILL)  # mid step test: no handler runs
        tune.wait(timeout=10)
        setpoint, _ = wait_until(lambda: _readable(served.addresses["wet_mfc"]), timeout_s=10, what="the wet MFC's line free")
        assert setpoint > 0.1, setpoint  # the step test's wet air, left on

        done = castrig("safe", "--profile", str(profile), timeout_s=60)
        out = " ".join(done.stdout.split())
        assert done.returncode == 0 and "Traceback" not in done.stderr, (done.returncode, out, done.stderr[-2000:])
        assert f"wet_mfc setpoint {setpoint:g} slpm" in out, out  # what it found, as the killed test left it
        assert "safe state verified:" in out and "wet_mfc.off" in out and "dry_mfc.purge" in out, out
        setpoint_after, flow_after = _wet_mfc(served.addresses["wet_mfc"])
        assert setpoint_after == 0 and abs(flow_after) <= 0.05, (setpoint_after, flow_after)


def _readable(address: str) -> tuple[float, float] | None:
    try:
        return _wet_mfc(address)
    except OSError:
        return None
