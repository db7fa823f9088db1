"""A ``socket://`` link (a terminal server's port, ``castrig sim serve --tcp``) closes at once.

pyserial's close sleeps 0.3 s after every socket, "in case of quick reconnects, give the server
some time": a rig of seven devices over TCP took 2.1 s to close, one socket after another, and a
Ctrl-C while its lines opened ended the run that much later (over the 3 s bound under load:
tests/rig/test_rig_open_side_by_side.py). The 0.3 s are now waited before this process connects
to that address again, not at every close."""

from __future__ import annotations

import socket
import time

from castrig.links.serial_link import SerialLink
from conftest import LoopbackServer

#: pyserial's sleep after closing a socket
GAP_S = 0.3


class _TerminalServer(LoopbackServer):
    """A listening loopback port that takes every connection and notes when (monotonic)."""

    def __init__(self) -> None:
        self.accepted: list[float] = []
        super().__init__()

    def handle(self, conn: socket.socket) -> None:
        self.accepted.append(time.monotonic())


def test_a_socket_link_closes_without_sleeping_and_its_next_connection_waits_the_gap():
    server, other = _TerminalServer(), _TerminalServer()
    try:
        link = SerialLink(server.url, timeout_s=0.5)
        t = time.monotonic()
        link.close()
        assert time.monotonic() - t < GAP_S - 0.05, time.monotonic() - t  # no 0.3 s sleep at the close
        t1 = time.monotonic()
        elsewhere = SerialLink(other.url, timeout_s=0.5)  # another address: no wait
        assert time.monotonic() - t1 < GAP_S - 0.05, time.monotonic() - t1
        again = SerialLink(server.url, timeout_s=0.5)  # the same address at once: it waits the gap
        again.close()
        elsewhere.close()
        deadline = time.monotonic() + 5
        while len(server.accepted) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(server.accepted) == 2 and server.accepted[1] >= t + GAP_S, (server.accepted, t)
    finally:
        server.close()
        other.close()
