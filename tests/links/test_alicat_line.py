"""Alicat units as labs wire them and lines as they are, over real TCP through `sim serve`.
An outside tester found: a unit left streaming on an RS-485 line shared with another was taken
for the other unit (its frames carry no id) — at rig open the streaming unit was given the
other's id (`@@=A`: two units answering A); and one corrupted byte in a frame (the protocol has
no checksum) was recorded as a reading, 801 slpm on a 5 slpm controller."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from conftest import (ROOT, Proxy, castrig, free_tcp_ports, profile_with_addresses, run_recipe_through_a_proxy, run_rows,
                      run_with_a_proxied_device)

PROFILE = "hw_profiles/sim-serial.yaml"


def _one_line_profile(tmp_path: Path) -> Path:
    """sim-serial with both MFCs on one line (dry A, wet B), no camera."""
    data = yaml.safe_load((ROOT / PROFILE).read_text())
    data["devices"]["wet_mfc"]["link"]["url"] = data["devices"]["dry_mfc"]["link"]["url"]
    data["devices"].pop("camera")
    out = tmp_path / "rs485.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def _say(address: str, *lines: bytes, listen_s: float = 0.3) -> bytes:
    """Send ``lines`` on the served line as another client would; what came back."""
    url = urlsplit(address)
    with socket.create_connection((url.hostname, url.port), timeout=5) as s:
        got = b""
        for line in lines:
            s.sendall(line)
            time.sleep(0.05)
        end = time.monotonic() + listen_s  # (a streaming unit never falls silent)
        try:
            while (left := end - time.monotonic()) > 0:
                s.settimeout(left)
                if not (chunk := s.recv(4096)):
                    break
                got += chunk
        except TimeoutError:
            pass
    return got


def test_both_units_on_one_line_run_and_are_made_safe(tmp_path, sim_serve):
    profile = _one_line_profile(tmp_path)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"name": "line", "steps": [{"type": "purge", "duration_s": 3}]}))
    with sim_serve("--tcp", "0", profile=str(profile)) as served:
        assert served.addresses["dry_mfc"] == served.addresses["wet_mfc"]  # one line, one port
        rig = profile_with_addresses(profile, served.addresses, tmp_path / "rig.yaml")
        done = castrig("run", str(tmp_path / "r.yaml"), "--profile", str(rig), "--data", str(tmp_path / "runs"), "-q")
    assert done.returncode == 0, done.stderr[-2000:]
    (last,) = run_rows(next((tmp_path / "runs").glob("2*")), "select message from events where kind = 'safe_state' order by id desc limit 1")
    assert last[0].startswith("safe state verified") and "dry_mfc.purge" in last[0] and "wet_mfc.off" in last[0], last


def test_a_unit_left_streaming_on_a_shared_line_is_named_not_given_the_other_units_id(tmp_path, sim_serve):
    profile = _one_line_profile(tmp_path)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"name": "line", "steps": [{"type": "purge", "duration_s": 3}]}))
    with sim_serve("--tcp", "0", profile=str(profile)) as served:
        line = served.addresses["dry_mfc"]
        assert b"B +" in _say(line, b"B\r")
        _say(line, b"B@=@\r")  # left streaming by other software
        rig = profile_with_addresses(profile, served.addresses, tmp_path / "rig.yaml")
        done = castrig("run", str(tmp_path / "r.yaml"), "--profile", str(rig), "--data", str(tmp_path / "runs"), "-q")
        said = " ".join(done.stderr.split())
        assert done.returncode == 5, (done.returncode, said[-2000:])
        assert "streams data frames without an id" in said and "wet_mfc (B)" in said, said
        # nothing was renamed: the operator ends the stream as told, and each unit answers as itself
        heard = _say(line, b"@@=B\r", b"A\r", b"B\r", listen_s=0.5)
        ids = re.findall(rb"(?:^|\r)([A-Z]) [+-]", heard)
        assert sorted(ids[-2:]) == [b"A", b"B"], heard


def test_a_corrupted_flow_field_is_asked_again_not_recorded(tmp_path, sim_serve):
    """One bit flipped in the mass-flow field of some of the wet MFC's frames."""
    flips = {"n": 0, "frames": 0}

    def reply(request: bytes, data: bytes) -> bytes:
        m = re.match(rb"(B \S+ \S+ \S+ [+-])0", data)
        if request == b"B\r" and m is not None:
            flips["frames"] += 1
            if flips["frames"] % 2 == 0 and flips["n"] < 3:  # every other frame, after the one at rig open
                flips["n"] += 1
                return data[:m.end(1)] + b"8" + data[m.end():]  # '0' (0x30) -> '8' (0x38): +000.00 -> +800.00
        return data

    done, _ = run_recipe_through_a_proxy(tmp_path, sim_serve, "wet_mfc", {"name": "flip", "steps": [{"type": "purge", "duration_s": 8}]},
                                         reply=reply)
    assert flips["n"] >= 2, flips  # the frames were corrupted
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = next((tmp_path / "runs").glob("2*"))
    flows = [v for (v,) in run_rows(run_dir, "select value from samples where channel = 'wet_flow_slpm'")]
    assert flows and max(flows) <= 0.1, flows


def test_a_unit_left_streaming_slowly_alone_on_its_line_is_put_back_to_polling(tmp_path, sim_serve):
    """A unit streaming every 1.2 s (register 91 = 1200 ms, alone on its line, slower than the
    link's 1 s timeout): after the poll took only its own unit's frames, the rig's open met its
    frames through every retry and resync, and gave up after two minutes (a review of the
    shared-line change). Then the open listened one timeout for a second frame: a frame that
    came into the poll's wait was followed by none within it, and the open said "no reply"
    (once a second, 1000 ms, it failed so on a loaded machine)."""
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"name": "slow-stream", "steps": [{"type": "purge", "duration_s": 3}]}))
    with sim_serve("--tcp", "0") as served:
        _say(served.addresses["dry_mfc"], b"AW91=1200\r", b"A@=@\r")
        t0 = time.monotonic()
        dry = urlsplit(served.addresses["dry_mfc"])
        proxy = Proxy((dry.hostname, dry.port))  # (passing every byte as it is)
        try:
            done = run_with_a_proxied_device(tmp_path, served, PROFILE, "dry_mfc", proxy, tmp_path / "r.yaml")
        finally:
            proxy.close()
        took_s = time.monotonic() - t0
    assert done.returncode == 0, done.stderr[-2000:]
    run_dir = next((tmp_path / "runs").glob("2*"))
    said = [m for (m,) in run_rows(run_dir, "select message from events") if "streaming" in m]
    assert said and "dry_mfc" in said[0], said
    assert took_s < 30, took_s


def test_sim_serve_keeps_every_roles_port_when_a_line_is_shared(tmp_path, sim_serve):
    """`--tcp BASE` serves roles in sorted order on BASE, BASE + 1, ...: a line shared by two
    roles is served on its first role's port, and no later role moves down."""
    data = yaml.safe_load((ROOT / PROFILE).read_text())
    data["devices"].pop("camera")
    data["devices"]["water_pump"]["link"]["url"] = data["devices"]["caster"]["link"]["url"]  # a daisy chain
    profile = tmp_path / "chain.yaml"
    profile.write_text(yaml.safe_dump(data))
    held = free_tcp_ports(len(data["devices"]))
    base = held[0].getsockname()[1]
    for s in held:
        s.close()
    with sim_serve("--tcp", str(base), profile=str(profile)) as served:
        ports = {role: urlsplit(a).port for role, a in served.addresses.items()}
    expected = {role: base + i for i, role in enumerate(sorted(ports))}  # (the profile's header's rule)
    expected["water_pump"] = expected["caster"]  # on its line's port; wet_mfc, after it, keeps its own
    assert ports == expected, (ports, expected)


def test_the_tail_of_a_cut_frame_on_a_shared_line_is_not_taken_for_a_streaming_unit(tmp_path, sim_serve):
    """A review: the tail of a frame cut short (no id: '4.70 +025.00 ... Air'), left on the line
    ahead of the first reply, was taken for a streaming unit's frame, and a shared line's rig
    did not open (exit 5, "castrig cannot tell which unit streams")."""
    tail = {"left": True}

    def reply(request: bytes, data: bytes) -> bytes:
        if tail["left"]:
            tail["left"] = False
            return b"4.70 +025.00 +000.00 +000.00 +000.00    Air\r" + data
        return data

    profile = _one_line_profile(tmp_path)
    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"name": "line", "steps": [{"type": "purge", "duration_s": 2}]}))
    with sim_serve("--tcp", "0", profile=str(profile)) as served:
        line = urlsplit(served.addresses["dry_mfc"])
        proxy = Proxy((line.hostname, line.port), reply=reply)
        try:
            addresses = dict(served.addresses, dry_mfc=f"socket://127.0.0.1:{proxy.port}", wet_mfc=f"socket://127.0.0.1:{proxy.port}")
            rig = profile_with_addresses(profile, addresses, tmp_path / "rig.yaml")
            done = castrig("run", str(tmp_path / "r.yaml"), "--profile", str(rig), "--data", str(tmp_path / "runs"), "-q")
        finally:
            proxy.close()
    assert not tail["left"]  # the tail was sent
    assert done.returncode == 0, (done.returncode, " ".join(done.stderr.split())[-1500:])
