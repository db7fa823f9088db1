"""The twin's TCP server with a client that half-closed or a line that was paused, in-process:
what it costs and whom it drops (found by review of the stalled-client handling)."""

from __future__ import annotations

import socket
import threading
import time

from castrig.sim.serve import serve_tcp


class _Frames:
    """A served device that answers any command with an 8 MiB frame (a camera's SNAP, in size)."""

    name = "frames"
    connected = True

    def __init__(self) -> None:
        self.due = b""

    def receive(self, data: bytes, t: float) -> None:
        self.due += b"x" * (8 << 20)

    def transmit(self, t: float) -> bytes:
        out, self.due = self.due, b""
        return out

    def next_output_time(self, t: float) -> None:
        return None

    def reset_io(self, t: float) -> None:
        self.due = b""

    def watch_faults(self, callback) -> None:
        pass

    def unwatch_faults(self, callback) -> None:
        pass


def _port(server) -> int:
    return int(str(server.address).rsplit(":", 1)[-1])


def _thread_cpu_s(thread: threading.Thread) -> float:
    """CPU seconds of one thread of this process so far (Linux /proc)."""
    with open(f"/proc/self/task/{thread.native_id}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime, stime in clock ticks (USER_HZ 100)


def test_a_client_waiting_behind_one_that_half_closed_does_not_spin_the_server():
    """A client sent a command, shut its sending side and read nothing; a second connected. The
    listener stayed readable and the device's thread spun on select until the first was
    dropped (2.3 s of CPU in 3 s)."""
    server = serve_tcp(_Frames(), stalled_client_s=5.0)
    server.on_note = lambda line: None
    with server:
        first = socket.create_connection(("127.0.0.1", _port(server)))
        first.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        first.sendall(b"SNAP\r")
        time.sleep(0.2)
        first.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        with socket.create_connection(("127.0.0.1", _port(server))):
            before = _thread_cpu_s(server._thread)  # (the device's server thread)
            time.sleep(1.0)
            after = _thread_cpu_s(server._thread)
        first.close()
    assert after - before < 0.3, f"the server used {after - before:.2f} s of CPU in 1 s of waiting"


def test_a_pause_of_the_line_is_not_counted_against_a_client_that_reads():
    """A paused line (the fault campaigns' 'stall') counted as the client's own stall: a client
    reading all along was dropped as one that never reads, with most of its frame unsent."""
    notes: list[str] = []
    server = serve_tcp(_Frames(), stalled_client_s=0.5)
    server.on_note = notes.append
    with server:
        client = socket.create_connection(("127.0.0.1", _port(server)))
        client.settimeout(8)
        client.sendall(b"SNAP\r")
        got = len(client.recv(65536))
        server.pause()
        threading.Timer(0.8, server.resume).start()
        while got < 8 << 20:
            chunk = client.recv(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        client.close()
    assert got == 8 << 20 and not notes, (got, notes)
