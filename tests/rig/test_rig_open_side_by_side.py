"""A rig of seven devices over TCP (``castrig sim serve --tcp 0``, as behind a terminal server)
opened one device after another: every line waited for quiet in turn (each HMT330 0.3 s after
``S`` and after ``ECHO OFF``, the camera 1 s), 3.1 s of a one-second purge's 10 s of an
operator's time (a profile of ``castrig run``). The lines now open side by side; the errors read
as before. (They close one after another: closed side by side, a served MFC's port was left held
by the run's connection in 3 of 10 runs of test_safe_state_flow_cli's held-valve test.)"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from conftest import ROOT, profile_with_addresses

#: What one device after another cannot take less than: 2 HMT330 x 2 drains x 0.3 s and the
#: camera's 1 s.
SEQUENTIAL_FLOOR_S = 2 * 2 * 0.3 + 1.0


def _served_profile(tmp_path, addresses):
    from castrig.rig.profile import load_profile

    return load_profile(profile_with_addresses(ROOT / "hw_profiles" / "sim-serial.yaml", addresses, tmp_path / "rig.yaml"))


def test_a_rig_over_tcp_opens_its_lines_side_by_side(tmp_path, sim_serve):
    from castrig.rig.build import build_rig

    with sim_serve("--tcp", "0") as served:
        profile = _served_profile(tmp_path, served.addresses)
        t0 = time.monotonic()
        rig = build_rig(profile, camera_answers=True)
        opened_s = time.monotonic() - t0
        try:
            assert list(rig.devices) == list(profile.device_configs())  # the profile's order, as before
            assert 0 < rig.rh_near.read().rh_pct < 100  # open, and answering
        finally:
            rig.close()
    assert opened_s < SEQUENTIAL_FLOOR_S, opened_s


def test_of_two_lines_that_cannot_open_the_first_in_the_profile_is_named(tmp_path, sim_serve):
    from castrig.errors import CastrigError
    from castrig.rig.build import build_rig

    with socket.socket() as s:  # a port where nothing listens: refused at once
        s.bind(("127.0.0.1", 0))
        dead = f"socket://127.0.0.1:{s.getsockname()[1]}"
    with sim_serve("--tcp", "0") as served:
        profile = _served_profile(tmp_path, served.addresses | {"dry_mfc": dead, "wet_mfc": dead})
        with pytest.raises(CastrigError, match=r"^device dry_mfc \(serial socket://127\.0\.0\.1:\d+\)"):
            build_rig(profile)
        # everything the others opened was closed again: the served ports take a new client
        rig = build_rig(_served_profile(tmp_path, served.addresses))
        rig.close()


def test_ctrl_c_while_the_lines_of_a_silent_rig_open_ends_the_run_at_once(tmp_path, sim_serve):
    """Every device silent (the server stopped, SIGSTOP) as `castrig run` opens the rig, and a
    Ctrl-C as soon as a line is connected: the process ends at once, as when the lines opened
    one after another, not once every line's device has timed out (3-4 s here, 6.6 s when
    the side-by-side open first waited for its threads)."""
    import os
    import signal

    import yaml

    from conftest import start_castrig, wait_until

    (tmp_path / "purge.yaml").write_text(yaml.safe_dump({"name": "p", "steps": [{"type": "purge", "duration_s": 1}]}))
    with sim_serve("--tcp", "0") as served:
        profile = profile_with_addresses(ROOT / "hw_profiles" / "sim-serial.yaml", served.addresses, tmp_path / "rig.yaml")
        served.stall()
        try:
            proc = start_castrig("run", str(tmp_path / "purge.yaml"), "--profile", str(profile), "--data", str(tmp_path / "runs"))

            def sockets() -> int:
                n = 0
                try:
                    for fd in Path(f"/proc/{proc.pid}/fd").iterdir():
                        n += os.readlink(fd).startswith("socket:")
                except FileNotFoundError:  # an fd (or the process) gone as it was read
                    pass
                return n

            try:
                wait_until(lambda: sockets() >= 1, timeout_s=30, what="a line connected")
                t0 = time.monotonic()
                proc.send_signal(signal.SIGINT)
                _, err = proc.communicate(timeout=30)
                took_s = time.monotonic() - t0
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
        finally:
            served.resume()
    assert proc.returncode == 130, err[-2000:]
    assert took_s < 3.0, (took_s, err[-2000:])
