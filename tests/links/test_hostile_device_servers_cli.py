"""A profile pointing a driver at a TCP server that is no instrument (a wrong address, a port
taken by other software, an attacker): ``castrig run`` ends within the profile's timeouts, in
bounded memory, with one clear line and the rig safe, never waiting on the server for ever.

Outside in: the real CLI on the twin in wall time (``wall_sim_profile``), one device's link
pointed at a hostile server living in a thread of the test.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from castrig.links import LinkTimeout
from castrig.links.base import Link
from conftest import LoopbackServer, castrig, only_run_dir

#: The link timeout the hostile devices' profiles give (s): short, so the tests are.
TIMEOUT_S = 0.5


@pytest.fixture
def hostile() -> Iterator[Callable[[Callable[[socket.socket], None]], LoopbackServer]]:
    """``hostile(behave)``: a loopback server handing every connection to ``behave(conn)``."""
    servers: list[LoopbackServer] = []

    def make(behave: Callable[[socket.socket], None]) -> LoopbackServer:
        servers.append(LoopbackServer(behave))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _run_with(tmp_path: Path, profile: Path, role: str, url: str, recipe: str, **limits: int):
    """``castrig run`` of ``recipe`` on the wall-time twin, ``role`` reached at ``url``."""
    data = yaml.safe_load(profile.read_text())
    cfg = data["devices"][role]
    cfg["link"] = {"kind": "serial", "url": url, "timeout_s": TIMEOUT_S}
    (tmp_path / "rig.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    (tmp_path / "r.yaml").write_text(recipe)
    return castrig("run", str(tmp_path / "r.yaml"), "--profile", str(tmp_path / "rig.yaml"),
                   "--data", str(tmp_path / "runs"), "-q", timeout_s=40, **limits)


def test_a_transmitter_that_never_goes_quiet_is_refused_at_the_opening_not_waited_on(tmp_path, wall_sim_profile, hostile):
    """An HMT330 address where something drips a byte every 0.1 s (less than the driver's 0.3 s
    of quiet that ends a drain): before, ``castrig run`` drained it 1000 times over — over two
    minutes, the rig's other devices held meanwhile. Now the drain is bounded and the rig is not
    opened: exit 5, naming the device and what it saw, no run folder."""
    def drip(conn: socket.socket) -> None:
        conn.setblocking(False)
        while not server.stop.is_set():
            conn.send(b"x")
            time.sleep(0.1)

    server = hostile(drip)
    started = time.monotonic()
    done = _run_with(tmp_path, wall_sim_profile, "rh_near", server.url,
                     "name: t\nsteps:\n  - {type: purge, duration_s: 1}\n")
    said = " ".join(done.stderr.split())
    assert done.returncode == 5 and "Traceback" not in done.stderr, (done.returncode, said[-2000:])
    assert "rh_near" in said and "never went quiet" in said, said
    assert time.monotonic() - started < 20, "bounded by the link's timeout, not by 1000 waits"
    assert only_run_dir(tmp_path / "runs") is None


def test_a_camera_announcing_a_frame_of_10_gb_ends_the_capture_not_the_memory(tmp_path, wall_sim_profile, hostile):
    """A camera address whose SNAP reply announces a 100000 x 100000 frame and then streams
    bytes: before, the run read 3.9 GB off the socket in the camera's 10 s (here, in 1 GB of
    address space, it failed for memory). Now the header is refused before a pixel is read:
    the run is aborted (exit 3) saying why, the rig left safe."""
    header = {"shape": [100000, 100000], "dtype": "uint8", "nbytes": 10**10, "pixel_size_um": 0.25, "exposure_ms": 1}

    def camera(conn: socket.socket) -> None:
        for line in conn.makefile("rb"):
            if line.strip() == b"*IDN?":
                conn.sendall(b"CASTRIG,SIMCAM,1,1.0\n")
            elif line.startswith(b"SNAP"):
                conn.sendall(b"OK " + json.dumps(header).encode() + b"\n")
                while not server.stop.is_set():
                    conn.sendall(bytes(65536))

    server = hostile(camera)
    done = _run_with(tmp_path, wall_sim_profile, "camera", server.url,
                     "name: t\ngrade: claim1\nsupport_pore_um: 5\nsteps:\n  - {type: capture, views: [reflected], fields: 1}\n",
                     address_space=2**31)
    said = " ".join((done.stdout + done.stderr).split())
    assert done.returncode == 3 and "Traceback" not in done.stderr, (done.returncode, said[-2000:])
    assert "bad frame header" in said and "at most 67108864 bytes" in said, said
    assert "safe state verified" in said, said


def test_a_camera_line_that_never_goes_quiet_is_given_up_within_the_profiles_open_drain_s(tmp_path, wall_sim_profile, hostile):
    """A camera address that keeps streaming stale replies (``ERR busy`` every 0.1 s, as a
    backlog without end would): before, every ``castrig run`` drained it a fixed 30 s, whatever
    the profile said, then sent *IDN? into it (exit 5 after 31 s, the message about the identity).
    Now the drain is bounded by the camera's ``open_drain_s``: exit 5 within it, naming the
    camera and the field, no run folder. (Its range is checked as every profile field is: see
    tests/docs/test_config_docs.py.)"""
    def stale(conn: socket.socket) -> None:
        while not server.stop.is_set():
            conn.sendall(b"ERR busy: the last frame is still being sent\n")
            time.sleep(0.1)

    server = hostile(stale)
    data = yaml.safe_load(wall_sim_profile.read_text())
    data["devices"]["camera"]["open_drain_s"] = 1
    wall_sim_profile.write_text(yaml.safe_dump(data, sort_keys=False))
    started = time.monotonic()
    done = _run_with(tmp_path, wall_sim_profile, "camera", server.url,
                     "name: t\ngrade: claim1\nsupport_pore_um: 5\nsteps:\n  - {type: capture, views: [reflected], fields: 1}\n")
    took_s = time.monotonic() - started
    said = " ".join(done.stderr.split())
    assert done.returncode == 5 and "Traceback" not in done.stderr, (done.returncode, said[-2000:])
    assert "device camera" in said and "devices.camera.open_drain_s = 1 s" in said and "never went quiet" in said, said
    assert took_s < 10, f"{took_s:.1f} s: bounded by open_drain_s (1 s), not a fixed 30 s"
    assert only_run_dir(tmp_path / "runs") is None


def test_an_mfc_answering_garbage_at_another_baud_rate_is_said_to_be_a_line_setting_not_silence(tmp_path, wall_sim_profile):
    """An Alicat on a serial port whose speed is not the profile's: every poll is answered at the
    right rate, with bytes of the high bit set and a CR (a baud-rate mismatch). Before, the rig's
    opening said only "'A': no b'\\r' within 0.5 s (no reply)", which sends a person to the cable.
    Now exit 5 names the line's settings as the likely cause, from the profile's field."""
    import os
    import random
    import threading

    master, slave = os.openpty()
    os.set_blocking(master, True)
    rng = random.Random(1)

    def garbled() -> None:
        try:
            while True:
                for _ in range(os.read(master, 4096).count(b"\r")):
                    os.write(master, bytes(rng.randrange(128, 256) for _ in range(20)) + b"\r")
        except OSError:  # the test ended
            pass

    threading.Thread(target=garbled, daemon=True).start()
    try:
        done = _run_with(tmp_path, wall_sim_profile, "dry_mfc", os.ttyname(slave), "name: t\nsteps:\n  - {type: purge, duration_s: 1}\n")
    finally:
        os.close(slave)
        os.close(master)
    said = " ".join(done.stderr.split())
    assert done.returncode == 5 and "Traceback" not in done.stderr, (done.returncode, said[-2000:])
    assert "device dry_mfc" in said and "high bit set" in said and "devices.dry_mfc.link: 19200 baud, 8N1" in said, said
    assert only_run_dir(tmp_path / "runs") is None


def test_a_chamber_address_streaming_responses_of_another_transaction_is_refused_not_waited_on(hostile):
    """A Watlow F4T address (Modbus TCP) where something streams well-formed responses of
    transaction 0 every 5 ms (a peer answering someone else, a gateway replaying its backlog):
    each was taken for a late reply and skipped, with a new wait for the next, so the driver's
    connect (``castrig run`` opening the rig) was still waiting after 15 s, and would for ever.
    Now a bounded number is skipped, then the connect fails within its retries, saying what came."""
    import struct
    import threading

    from castrig.clock import WallClock
    from castrig.devices.modbus import ModbusLinkError
    from castrig.devices.watlow_f4t import WatlowF4T
    from castrig.links.serial_link import SerialLink

    def replay(conn: socket.socket) -> None:
        while not server.stop.is_set():
            conn.sendall(struct.pack(">HHHB", 0, 0, 7, 1) + bytes([3, 4, 0, 0, 0x42, 0x34]))
            time.sleep(0.005)

    server = hostile(replay)
    link = SerialLink(server.url, timeout_s=TIMEOUT_S)
    chamber = WatlowF4T(link, name="chamber", unit=1, framing="tcp", word_order="low_high", temperature_loop=1, rh_loop=2,
                        clock=WallClock())
    done: dict[str, BaseException | None] = {}

    def connect() -> None:  # (in a thread: the old code never returns)
        try:
            chamber.connect()
            done["error"] = None
        except BaseException as exc:  # noqa: BLE001 - looked at below
            done["error"] = exc

    worker = threading.Thread(target=connect, daemon=True)
    worker.start()
    worker.join(10)
    link.close()
    assert "error" in done, "still connecting after 10 s"
    assert isinstance(done["error"], ModbusLinkError), done["error"]
    assert "MBAP responses to other transactions (the last 0)" in str(done["error"]), str(done["error"])


def test_a_pump_address_streaming_garbage_costs_no_memory_while_the_reply_is_awaited(hostile):
    """A pump address where something streams garbage: the NE-1000 driver kept every
    byte of garbage it dropped while waiting for a reply frame (a run peaked at 181 MB for a
    0.5 s timeout; a profile allows 60 s). Now its first bytes only, and the connect fails in
    its timeouts, naming the garbage."""
    import tracemalloc

    from castrig.clock import WallClock
    from castrig.devices.ne1000 import NE1000Pump
    from castrig.devices.roles import DeviceError
    from castrig.links import LinkError
    from castrig.links.serial_link import SerialLink

    garbage = bytes(32 * 2**20)  # (made before memory is traced; then silence: a flood without end costs CPU)

    def flood(conn: socket.socket) -> None:
        conn.recv(4096)  # the first command is answered with it
        conn.sendall(garbage)
        server.stop.wait()

    server = hostile(flood)
    link = SerialLink(server.url, timeout_s=0.3)
    tracemalloc.start()
    try:
        with pytest.raises((DeviceError, LinkError), match="garbage") as err:
            NE1000Pump(link, name="caster", address=1, clock=WallClock()).connect()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        link.close()
    assert peak < 8 * 2**20, (peak, str(err.value))


class Endless(Link):
    """A line that never pauses: every read gets 64 bytes of ``A`` at once (a peer streaming
    garbage faster than it is read); a read that goes on for ever fails the test instead.

    Time is the link's own: each read takes 0.1 ms of it, so a 0.05 s timeout is reached after
    500 reads whatever the machine's speed (on the real clock a fast CI core made 100 000 reads
    inside the 50 ms and tripped the "still reading" guard)."""

    reads = 0
    t_s = 0.0

    def _write(self, data: bytes) -> None:
        pass

    def _read_some(self, deadline_s: float) -> bytes:
        self.reads += 1
        self.t_s += 0.0001
        assert self.reads < 10**5, "still reading"
        return b"A" * 64

    def _now(self) -> float:
        return self.t_s


def test_flushing_a_line_that_streams_without_end_ends_within_the_link_timeout():
    """``flush_input`` (before a retry, at a pump's connect) dropped input until none was there:
    on a line that never pauses it never returned. Now it drops for at most the link's timeout."""
    link = Endless("endless://", timeout_s=0.05)
    started = time.monotonic()
    link.flush_input()
    assert time.monotonic() - started < 1.0


def test_a_frame_read_on_a_line_streaming_garbage_times_out():
    """A Watlow F4T address (Modbus TCP) where something streams garbage: each MBAP header read
    from it is refused and one byte dropped, so the buffer never grows, and a reader past its
    deadline still got what had arrived: the read never ended (``castrig run`` was still opening
    the rig after 14 minutes at full CPU, deaf to the SIGTERM of ``timeout``). Now a timeout."""
    from castrig.devices.modbus import take_mbap

    link = Endless("endless://", timeout_s=0.05)
    started = time.monotonic()
    with pytest.raises(LinkTimeout, match=r"no MBAP response within 0.05 s \(got b'AAAA"):
        link.read_frame(take_mbap, what="MBAP response")
    assert time.monotonic() - started < 1.0


def test_a_line_read_on_a_link_flooded_a_byte_at_a_time_times_out_at_its_deadline():
    """A SCPI chamber's VISA socket flooded without a line end: pyvisa hands over a byte per
    read, and a reader past its deadline still got what had arrived, so each line read went on
    to the 64 KB bound (minutes; ``castrig run`` was still opening the rig after 2 minutes).
    Now the line read ends at the link's timeout, its message cut to 64 bytes."""

    class Trickle(Endless):
        """A byte a read, one every 0.5 ms of the link's own clock (a loaded machine's scheduling
        does not change how many come before the deadline: 100)."""

        def _read_some(self, deadline_s: float) -> bytes:
            super()._read_some(deadline_s)  # (0.1 ms of the link's time)
            self.t_s += 0.0004
            return b"A"

    link = Trickle("TCPIP::127.0.0.1::1::SOCKET", timeout_s=0.05)
    started = time.monotonic()
    with pytest.raises(LinkTimeout, match=r"no b'\\n' within 0.05 s \(got b'A{64}'… \(\d+ bytes\)\)"):
        link.read_until(b"\n")
    assert time.monotonic() - started < 0.5
