"""``castrig serve`` against slow, half-sent requests (slowloris; the audit's repro_2), over real TCP.

It held every half-sent request for ever: ~1,100 of them took all 1024 file descriptors, nobody
got an answer, and asyncio logged an EMFILE traceback per accept retry (300 MB of stderr in a
minute). Now it holds a bounded number (from the descriptor limit, or ``--max-connections``),
closes the oldest idle one for a newcomer, and closes a request not sent whole within
``--request-timeout-s`` (default ``READ_TIMEOUT_S``, 10 s; the tests give 2 s to spare CI the wait).
"""

from __future__ import annotations

import os
import resource
import select
import socket
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlsplit

from castrig.serve.guard import READ_TIMEOUT_S
from conftest import drop_micrographs, held_running_run, wait_until

HALF = b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # the blank line never comes


def half_sent(url: str, n: int, *, wave: int = 16, pause_s: float = 0.05, timeout_s: float = 60.0) -> list[socket.socket]:
    """``n`` connections, each having sent half a request, connected ``wave`` at a time (the
    server's listen backlog under a low descriptor limit is 16: a bigger flood's connects are
    dropped and left to the kernel's SYN retries, 1 s, 3 s, 7 s … later, which a loaded machine
    can push past any short wait), ``pause_s`` between waves: a wave is connected once the kernel
    queued it, before the server accepted it, and the next wave at once overflowed the queue —
    one SYN retry (1 s) per wave, 6 s of the 200. Bounded by ``timeout_s`` in all."""
    u = urlsplit(url)
    socks: list[socket.socket] = []
    deadline = time.monotonic() + timeout_s
    while len(socks) < n:
        waiting = []
        for _ in range(min(wave, n - len(socks))):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((u.hostname, u.port))
            socks.append(s)
            waiting.append(s)
        while waiting and time.monotonic() < deadline:
            _, ready, _ = select.select([], waiting, [], 0.5)
            for s in ready:
                s.send(HALF)
                waiting.remove(s)
        if waiting:
            for s in socks:
                s.close()
            raise AssertionError(f"{len(waiting) + n - len(socks)} of {n} not connected in {timeout_s} s")
        time.sleep(pause_s)
    return socks


def still_open(socks: list[socket.socket]) -> int:
    """How many the server has not closed (a closed one reads EOF or a reset)."""
    n = 0
    for s in socks:
        try:
            n += s.recv(1 << 16) != b""
        except BlockingIOError:
            n += 1
        except OSError:
            pass
    return n


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def answer(url: str) -> int:
    try:
        with urllib.request.urlopen(url + "api/runs", timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_half_sent_requests_do_not_freeze_the_server(tmp_path: Path, castrig_serve):
    """The default bounds, under a low open-file limit (128): more half-sent requests than the
    limit, and a normal request is still answered at once, the server's descriptors stay bounded
    and stderr stays quiet."""
    data = tmp_path / "data"
    data.mkdir()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with ExitStack() as stack:
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))  # the server inherits it
        try:
            served = stack.enter_context(castrig_serve(data))
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        socks = half_sent(served.url, 200)
        stack.callback(lambda: [s.close() for s in socks])
        t0 = time.monotonic()
        assert answer(served.url) == 200 and time.monotonic() - t0 < 5
        assert open_fds(served.proc.pid) < 100  # bounded, well under the 128 descriptors
        more = half_sent(served.url, 100)  # newcomers push out the oldest idle ones
        stack.callback(lambda: [s.close() for s in more])
        assert answer(served.url) == 200 and open_fds(served.proc.pid) < 100
        served.proc.send_signal(2)
        served.proc.wait(timeout=10)
        err = served.proc.stderr.read()
        assert len(err) < 2000 and "Traceback" not in err, err[-2000:]


#: the --request-timeout-s the tests give (the default, READ_TIMEOUT_S, is 10 s)
TIMEOUT_S = 2.0


def test_max_connections_and_the_read_timeout(tmp_path: Path, castrig_serve):
    """``--max-connections 5``: 30 half-sent requests, 5 held at most, a normal request answered;
    those held are closed once ``--request-timeout-s`` passed without the rest of their request."""
    data = tmp_path / "data"
    data.mkdir()
    with castrig_serve(data, "--max-connections", "5", "--request-timeout-s", str(TIMEOUT_S)) as served:
        t0 = time.monotonic()  # before any connection began: none can time out before t0 + TIMEOUT_S
        socks = half_sent(served.url, 30)
        try:
            assert answer(served.url) == 200
            wait_until(lambda: still_open(socks) <= 5, timeout_s=10, what="the connections over the cap closed")
            assert still_open(socks) > 0 or time.monotonic() - t0 >= TIMEOUT_S  # those held wait for the timeout
            wait_until(lambda: still_open(socks) == 0, timeout_s=TIMEOUT_S + 20, what="the half-sent requests closed")
            assert time.monotonic() - t0 >= TIMEOUT_S  # by the timeout, not at once
            assert answer(served.url) == 200
        finally:
            for s in socks:
                s.close()


def streaming(url: str, uid: str) -> socket.socket:
    """A connection being answered: ``GET /api/runs/UID/stream`` (a live run's server-sent
    events, answered for as long as the run runs), its first event read."""
    u = urlsplit(url)
    s = socket.create_connection((u.hostname, u.port), timeout=10)
    s.sendall(f"GET /api/runs/{uid}/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    got = b""
    while b"\ndata: " not in got:
        chunk = s.recv(1 << 16)
        assert chunk, f"the stream closed before its first event: {got[:300]!r}"
        got += chunk
    assert got.startswith(b"HTTP/1.1 200"), got[:300]
    return s


def whole_answer(url: str, path: str = "/api/runs", *, method: str = "GET", headers: str = "", timeout_s: float = 10.0) -> bytes:
    """Send a whole request on a new connection (``headers``: more header lines, each ending in
    CRLF) and read the answer until the server closes it (``timeout_s`` of silence at most)."""
    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=timeout_s) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n".encode())
        got = b""
        try:
            while chunk := s.recv(1 << 16):
                got += chunk
        except ConnectionResetError:  # the guard closes a busy newcomer without reading its request:
            pass  # the kernel may follow the answer with a reset (an HTTP client stops at content-length)
    return got


def test_streams_without_a_token_cannot_lock_the_operator_out(tmp_path: Path, castrig_serve):
    """Reading needs no token on loopback: a script held every slot with never-read live streams
    (``--max-connections`` of them; 256 by default) and every newcomer got 503 'busy' — the
    operator's Abort with its token too (found by probing castrig serve as an attacker). Now a
    newcomer closes the oldest stream (a browser's EventSource reconnects by itself): the token's
    POST is answered, and the younger stream still is."""
    data = tmp_path / "data"
    with held_running_run(data) as run_dir, castrig_serve(data, "--max-connections", "2") as served:
        streams = [streaming(served.url, run_dir.name) for _ in range(2)]
        try:
            # (the held run has no runner to answer: the server waits 10 s for one, then says the
            # abort was sent — 202)
            got = whole_answer(served.url, f"/api/runs/{run_dir.name}/abort", method="POST", timeout_s=30,
                               headers=f"Authorization: Bearer {served.token}\r\nContent-Length: 0\r\n")
            assert got.startswith(b"HTTP/1.1 202") and b"sent; the runner has not answered yet" in got, got[:300]
            streams[0].settimeout(5)
            assert _drained(streams[0]), "the oldest stream was not closed"
            streams[1].settimeout(5)
            assert b"data: " in streams[1].recv(1 << 16)  # the younger stream is still answered
        finally:
            for s in streams:
                s.close()
        served.proc.send_signal(2)
        served.proc.wait(timeout=10)
        err = served.proc.stderr.read()
        assert "Traceback" not in err, err[-2000:]


def _drained(s: socket.socket) -> bool:
    """Read what ``s`` still holds until the server's close (True), or False on a 5 s silence."""
    try:
        while s.recv(1 << 16):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_the_request_timeout_is_10_s_unless_given_and_out_of_range_is_refused(tmp_path: Path, capsys):
    """`--request-timeout-s` (default 10 s) outside 1 … 3600 s, or not a number: exit 2 naming
    the option and its range, nothing made."""
    from conftest import castrig_main

    from castrig.serve.guard import bounded_config

    async def app(scope, receive, send):  # never called
        raise AssertionError

    assert READ_TIMEOUT_S == 10 and bounded_config(app, lifespan="off").castrig_request_timeout_s == 10
    helped = castrig_main(capsys, "serve", "--help")
    assert helped.returncode == 0 and "1 to 3600, default 10." in " ".join(helped.stdout.split()), helped.stdout
    assert bounded_config(app, lifespan="off", request_timeout_s=2).castrig_request_timeout_s == 2
    data = tmp_path / "data"
    for bad in ("0.5", "0", "-1", "3601", "nan", "inf"):
        res = castrig_main(capsys, "serve", "--data", data, "--port", "0", "--request-timeout-s", bad)
        assert res.returncode == 2 and res.stdout == "", (bad, res)
        assert f"--request-timeout-s {bad}" in res.stderr.replace(".0:", ":") and "1 to 3600" in res.stderr, (bad, res.stderr)
    res = castrig_main(capsys, "serve", "--data", data, "--port", "0", "--request-timeout-s", "soon")
    assert res.returncode == 2 and "--request-timeout-s" in res.stderr and "Traceback" not in res.stderr
    assert not data.exists()


def test_max_connections_beyond_the_descriptor_limit_is_refused(tmp_path: Path):
    """`--max-connections 100` under a 128-descriptor limit was taken as given (the server then
    ran out of descriptors under load): refused, exit 2, naming the option, the limit and the most it allows."""
    from conftest import castrig

    from castrig.serve.guard import limits

    data = tmp_path / "data"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))  # the command inherits it
    try:
        most = limits()[0]
        res = castrig("serve", "--data", str(data), "--port", "0", "--max-connections", "100", timeout_s=30)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert most == 32
    assert res.returncode == 2 and res.stdout == "", (res.returncode, res.stdout, res.stderr)
    err = " ".join(res.stderr.split())
    assert "--max-connections 100" in err and "RLIMIT_NOFILE soft limit 128" in err and "at most 32" in err, err
    assert "Traceback" not in err and not data.exists()


def test_a_uvicorn_without_what_the_guard_relies_on_is_refused(monkeypatch):
    """The guard reaches into uvicorn's h11 protocol; a uvicorn that changed it is refused at
    start, naming what is missing and the versions it was checked with, not served unguarded."""
    import pytest
    from uvicorn.protocols.http.h11_impl import H11Protocol

    from castrig.errors import BadInput
    from castrig.serve.guard import UVICORN_CHECKED, bounded_config

    async def app(scope, receive, send):  # never called
        raise AssertionError

    bounded_config(app, lifespan="off")  # the installed uvicorn has it all
    real_init = H11Protocol.__init__

    def init_without_connections(self, *a, **kw):
        real_init(self, *a, **kw)
        del self.connections

    monkeypatch.setattr(H11Protocol, "__init__", init_without_connections)
    with pytest.raises(BadInput) as exc:
        bounded_config(app, lifespan="off")
    assert "H11Protocol().connections" in str(exc.value) and UVICORN_CHECKED in str(exc.value)


def test_abandoned_report_requests_do_not_keep_the_operator_waiting(tmp_path: Path, castrig_serve, finished_demo_run):
    """Report requests sent and abandoned at once (no token needed on loopback): each still
    decoded the run's micrographs in the one decoding slot, one after another — 20 made the next
    report wait 19 s, 300 made it wait 325 s (an outside tester). A request whose client has gone
    is dropped as it reaches the slot, and no more than DECODE_QUEUE wait (503 beyond)."""
    import shutil

    from castrig.serve.app import DECODE_QUEUE

    data, run_id = finished_demo_run
    shutil.copytree(data / run_id, tmp_path / "runs" / run_id)
    with castrig_serve(tmp_path / "runs") as served:
        u = urlsplit(served.url)
        report = f"{served.url}runs/{run_id}/report.html"
        t0 = time.monotonic()
        with urllib.request.urlopen(report, timeout=60) as r:
            assert r.status == 200
        one_s = time.monotonic() - t0
        for _ in range(3 * DECODE_QUEUE):
            s = socket.create_connection((u.hostname, u.port))
            s.sendall(f"GET /runs/{run_id}/report.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            s.close()
        t0 = time.monotonic()

        def answered() -> bool:
            try:
                with urllib.request.urlopen(report, timeout=60) as r:
                    return r.status == 200
            except urllib.error.HTTPError as exc:
                assert exc.code == 503 and exc.headers.get("Retry-After"), exc
                time.sleep(0.2)
                return False

        wait_until(answered, timeout_s=120, what="the report")
        waited = time.monotonic() - t0
        # a few of them may have begun before their client was seen gone; not all 48 one after another
        assert waited < 6 * one_s + 5, (waited, one_s)


def test_a_saved_report_of_a_run_folder_with_any_name_downloads_under_that_name(tmp_path: Path, castrig_serve, finished_demo_run):
    """The saved report's Content-Disposition carried the folder's name raw: one outside Latin-1
    (an emoji) ended in a 500 and a traceback, one holding ``"; filename*=…`` chose the name and
    extension the browser saves the download under."""
    import shutil
    from urllib.parse import quote

    data, run_id = finished_demo_run
    names = (f"{run_id}-😀", f'{run_id}-a"; filename*=UTF-8\'\'evil.svg; x="')
    for name in names:
        shutil.copytree(data / run_id, tmp_path / "runs" / name)
        drop_micrographs(tmp_path / "runs" / name)  # (the name is at stake, not the overlays)
    with castrig_serve(tmp_path / "runs") as served:
        for name in names:
            with urllib.request.urlopen(f"{served.url}runs/{quote(name)}/report.html", timeout=60) as r:
                assert r.status == 200
                disposition = r.headers["Content-Disposition"]
            assert disposition.endswith(f"filename*=UTF-8''{quote(name + '.html', safe='')}"), disposition
            assert disposition.count("filename*=") == 1 and disposition.count('"') == 2, disposition
