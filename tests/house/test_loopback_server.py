"""conftest's loopback test servers leave nothing open behind them.

Each closed its listener with ``close()`` alone, which does not wake the thread blocked in
``accept()``: the port went on listening after the test, the next connection to it was taken
(a castrig retrying, another test's client given the same port number) and, for a server that
keeps its connections, never closed. :class:`conftest.LoopbackServer` shuts the listener down,
ends its thread and closes every socket it made."""

from __future__ import annotations

import socket
from collections.abc import Callable

import pytest

from conftest import LoopbackServer, Proxy, wait_until

KINDS: dict[str, Callable[[LoopbackServer], LoopbackServer]] = {
    "keeping its connections": lambda target: LoopbackServer(),
    "handing them to behave()": lambda target: LoopbackServer(lambda conn: conn.recv(1)),
    "Proxy": lambda target: Proxy(("127.0.0.1", target.port)),
}


@pytest.mark.parametrize("kind", KINDS)
def test_a_loopback_server_closes_its_port_its_thread_and_its_connections(kind):
    with LoopbackServer() as target, KINDS[kind](target) as server:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=1.0)
        wait_until(lambda: server.socks, timeout_s=2.0, what="the connection taken")
        assert server.url == f"socket://127.0.0.1:{server.port}"
        assert server.listener.getsockname()[0] == "127.0.0.1"
    with client:
        assert client.recv(1) == b"", "the client is told at once that the server has gone"
    assert not server._accepting.is_alive() and server.listener.fileno() == -1
    with pytest.raises(ConnectionRefusedError):  # it was taken by the closed server
        socket.create_connection(("127.0.0.1", server.port), timeout=1.0).close()
    assert server.socks == []
