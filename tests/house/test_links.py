"""Every link kind over real bytes: loop://, a pty pair, a loopback socket, VISA over TCP, sim."""

from __future__ import annotations

import os
import socket
import threading
import time
import tty

import pytest

from castrig.clock import VirtualClock
from castrig.links import LinkClosed, LinkTimeout, ProtocolError, SimLink, with_retries
from castrig.links.scripted import ScriptMismatch, ScriptedLink, expected_protocol
from castrig.links.serial_link import SerialLink
from castrig.sim.emulator import LineEmulator
from conftest import LoopbackServer


class Echo(LineEmulator):
    """Answers ``ECHO <line>\\r\\n``; ``SPLIT`` answers in two pieces 0.3 s apart."""

    def handle_line(self, line: bytes, t: float) -> None:
        if line == b"SPLIT":
            self.send(b"PART", t)
            self.send(b"TWO\r\n", t + 30.0)
        else:
            self.send(b"ECHO " + line + b"\r\n", t)


def test_serial_loop_url_reads_back_what_was_written():
    link = SerialLink("loop://", timeout_s=0.2)
    link.write(b"abc\rdef\r")
    assert link.read_until(b"\r") == b"abc\r"
    assert link.read_until(b"\r") == b"def\r"
    link.write(b"12345")
    assert link.read_exactly(3) == b"123"
    assert link.read_available() == b"45"
    link.close()
    with pytest.raises(LinkClosed, match="loop://"):
        link.write(b"x")


def test_serial_timeout_names_the_resource_and_keeps_partial_bytes():
    link = SerialLink("loop://", timeout_s=0.05)
    link.write(b"no terminator")
    with pytest.raises(LinkTimeout) as info:
        link.read_until(b"\n")
    assert "loop://" in str(info.value) and "no terminator" in str(info.value)


def test_serial_over_a_real_pty_pair():
    master, slave = os.openpty()
    tty.setraw(slave)
    path = os.ttyname(slave)
    try:
        link = SerialLink(path, baudrate=19200, timeout_s=1.0)
        link.write(b"PING\r")
        got = b""
        while not got.endswith(b"\r"):
            got += os.read(master, 64)
        assert got == b"PING\r"
        os.write(master, b"\x02 00S\x03trailing")
        assert link.read_until(b"\x03") == b"\x02 00S\x03"
        assert link.read_exactly(8) == b"trailing"
        link.close()
    finally:
        os.close(master)
        os.close(slave)


def test_serial_open_failure_is_a_typed_error():
    with pytest.raises(LinkClosed, match="/dev/does-not-exist"):
        SerialLink("/dev/does-not-exist")


@pytest.fixture
def echo_server():
    """A plain loopback TCP server that echoes lines, then can drop the connection."""
    state = {"drop": threading.Event()}

    def echo(conn: socket.socket) -> None:
        buf = b""
        conn.settimeout(0.05)
        while not state["drop"].is_set():
            try:
                data = conn.recv(1024)
            except socket.timeout:
                continue
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                conn.sendall(b"ECHO " + line + b"\n")

    with LoopbackServer(echo) as srv:
        yield srv.port, state


def test_serial_socket_url(echo_server):
    port, state = echo_server
    link = SerialLink(f"socket://127.0.0.1:{port}", timeout_s=1.0)
    assert link.query(b"hello\n", b"\n") == b"ECHO hello\n"
    state["drop"].set()
    time.sleep(0.2)
    with pytest.raises((LinkClosed, LinkTimeout)):
        link.query(b"again\n", b"\n", timeout_s=0.3)
    link.close()


def test_visa_over_tcpip_socket(echo_server):
    from castrig.links.visa_link import VisaLink

    port, _ = echo_server
    link = VisaLink(f"TCPIP::127.0.0.1::{port}::SOCKET", timeout_s=1.0)
    assert link.query(b"*IDN?\n", b"\n") == b"ECHO *IDN?\n"
    with pytest.raises(LinkTimeout, match=f"TCPIP::127.0.0.1::{port}::SOCKET"):
        link.read_until(b"\n", timeout_s=0.1)
    link.close()


def test_visa_open_failure_is_a_typed_error():
    from castrig.links.visa_link import VisaLink

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(LinkClosed, match=str(port)):
        # pyvisa-py connects lazily, so the refusal may come at open or at the first write
        link = VisaLink(f"TCPIP::127.0.0.1::{port}::SOCKET", timeout_s=0.5)
        link.write(b"*IDN?\n")


def test_sim_link_waits_in_virtual_time():
    clock = VirtualClock()
    emu = Echo("echo", baudrate=19200, turnaround_s=0.01)
    link = SimLink(emu, clock, timeout_s=60.0)
    t0 = time.perf_counter()
    assert link.query(b"hi\r", b"\n") == b"ECHO hi\r\n"
    # turnaround + 9 bytes at 19200 baud (10 bits each)
    assert clock.now() == pytest.approx(0.01 + 9 * 10 / 19200)
    assert link.query(b"SPLIT\r", b"\n") == b"PARTTWO\r\n"
    # the reply's second piece came 30 s later in virtual time, a fraction of a second on the
    # wall clock (a gap of 0.3 s against a bound of 0.5 s was 0.501 s once on a loaded CI machine)
    assert clock.now() > 30.0
    assert time.perf_counter() - t0 < 5.0


def test_sim_link_faults_become_typed_errors():
    clock = VirtualClock()
    emu = Echo("echo")
    link = SimLink(emu, clock, timeout_s=2.0)
    emu.inject("no_reply")
    with pytest.raises(LinkTimeout, match="sim://echo"):
        link.query(b"x\r", b"\n")
    assert clock.now() == pytest.approx(2.0)  # the timeout passed in virtual time
    emu.clear()
    emu.inject("drop")
    with pytest.raises(LinkClosed, match="sim://echo"):
        link.write(b"x\r")
    emu.clear("drop")
    assert link.query(b"back\r", b"\n") == b"ECHO back\r\n"


def test_read_until_refuses_endless_garbage():
    link = ScriptedLink([(b"Q", b"x" * 100)])
    link.write(b"Q")
    with pytest.raises(ProtocolError):
        link.read_until(b"\n", max_bytes=50)


def test_with_retries_is_bounded_and_flushes_between_tries():
    clock = VirtualClock()
    emu = Echo("echo")
    link = SimLink(emu, clock, timeout_s=0.5)
    emu.inject("no_reply")
    calls = []

    def attempt():
        calls.append(clock.now())
        return link.query(b"q\r", b"\n")

    with pytest.raises(LinkTimeout):
        with_retries(attempt, attempts=3, link=link)
    assert len(calls) == 3
    emu.clear()
    assert with_retries(attempt, attempts=3, link=link) == b"ECHO q\r\n"


def test_expected_protocol_checks_every_byte():
    class Thing:
        def __init__(self, link):
            self.link = link

        def ask(self, q: bytes) -> bytes:
            return self.link.query(q, b"\r")

    with expected_protocol(Thing, [(b"A\r", b"1\r"), (b"B\r", b"2\r")]) as thing:
        assert thing.ask(b"A\r") == b"1\r"
        assert thing.ask(b"B\r") == b"2\r"

    with pytest.raises(ScriptMismatch, match="script expects"):
        with expected_protocol(Thing, [(b"A\r", b"1\r")]) as thing:
            thing.ask(b"Z\r")

    with pytest.raises(ScriptMismatch, match="not used up"):
        with expected_protocol(Thing, [(b"A\r", b"1\r"), (b"B\r", b"2\r")]) as thing:
            thing.ask(b"A\r")

    with pytest.raises(LinkTimeout):  # a read with no reply pending fails (in virtual time)
        with expected_protocol(Thing, [(b"A\r", None)]) as thing:
            thing.ask(b"A\r")


@pytest.mark.parametrize("resource, peeks", [("GPIB0::5::INSTR", False), ("USB0::0x1AB1::0x04CE::DS1ZA1::INSTR", False),
                                             ("TCPIP::10.0.0.5::inst0::INSTR", False), ("ASRL/dev/ttyUSB0::INSTR", True),
                                             ("TCPIP::10.0.0.5::5025::SOCKET", True)])
def test_an_instrument_resource_is_not_read_before_a_command(monkeypatch, resource, peeks):
    """A review of the look for unasked input before each command: on GPIB, USBTMC or VXI-11 a read
    with no query pending is a 'Query UNTERMINATED' error (-420) on the instrument's error queue,
    which the SCPI chamber's SYST:ERR? after every set would find. pyvisa is the outside world here:
    its resource manager is replaced by one that counts reads."""
    import pyvisa

    from castrig.links.visa_link import VisaLink

    reads: list[int] = []
    clears: list[bool] = []

    class Instrument:
        read_termination = write_termination = None
        timeout = session = 0

        def read_bytes(self, n: int, break_on_termchar: bool = False) -> bytes:
            reads.append(n)
            raise pyvisa.errors.VisaIOError(pyvisa.constants.StatusCode.error_timeout)

        def clear(self) -> None:
            clears.append(True)

    class Manager:
        def __init__(self, backend: str):
            pass

        def open_resource(self, name: str, open_timeout: int) -> Instrument:
            return Instrument()

    monkeypatch.setattr(pyvisa, "ResourceManager", Manager)
    link = VisaLink(resource, timeout_s=0.5)
    assert link.input_waiting() == b""
    link.flush_input()  # (after a failed exchange: a second review found these reading too)
    link.flush_until_quiet(0.01, max_s=0.05)
    assert bool(reads) is peeks and bool(clears) is not peeks, (reads, clears)
