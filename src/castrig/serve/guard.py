"""What one ``castrig serve`` holds for its clients, bounded: connections, time to send a request.

uvicorn (h11) keeps a connection that sends half a request, or nothing, for ever: a few hundred
such connections from one script (slowloris) took every file descriptor (1024 is the usual
limit), nobody got an answer, and asyncio then logged an EMFILE traceback per accept retry
(hundreds of MB of stderr in a minute). uvicorn has no header timeout of its own for h11, and its
``limit_concurrency`` counts connections only once a whole request arrived. So:

- a connection must have sent its whole request (headers and body) within
  :data:`READ_TIMEOUT_S` (``castrig serve --request-timeout-s``) of starting it (of connecting,
  or of the first byte after the previous answer), else it is closed;
- at most ``max_connections`` are held (default from the file-descriptor limit,
  :func:`limits`): a new one beyond that closes the oldest one that is not being answered
  (half-sent or idle between requests); else the oldest live stream (``/api/runs/ID/stream``,
  readable without a token on loopback: a script holding every slot with never-read streams
  answered the operator's token-bearing Abort ``503``; a browser's EventSource reconnects by
  itself); if every one is being answered otherwise, the new one gets ``503`` and is closed;
- the listen backlog (also the number asyncio accepts in one go) is small, so what is accepted
  before the limit acts stays well under the descriptor limit;
- should accepting still fail for want of descriptors, asyncio's message is logged once a minute,
  not once per retry.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: seconds a client has to send a whole request (headers and body; ours have none to speak of), by default
READ_TIMEOUT_S = 10.0
#: the ``--request-timeout-s`` allowed: a second is plenty on a LAN or an SSH tunnel; an hour is already no bound
REQUEST_TIMEOUT_RANGE_S = (1.0, 3600.0)
#: connections held at most by default, whatever the descriptor limit allows
MAX_CONNECTIONS = 256

_BUSY = b"castrig serve is busy: too many connections; try again\n"
_503 = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        b"content-length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY))


def limits(max_connections: int | None = None) -> tuple[int, int]:
    """``(max_connections, backlog)`` under this process's file-descriptor limit: the held
    connections, plus two accept batches of ``backlog``, plus what SQLite readers and the rest
    need (half the descriptors), stay below it. ``max_connections`` given: that many (at least
    2), backlog to suit; more than the limit can hold is a BadInput naming the option, the limit
    and the most it allows (never clamped quietly: the operator asked for that number)."""
    from castrig.errors import BadInput

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = soft if soft != resource.RLIM_INFINITY else 65536
    backlog = max(16, min(64, soft // 16))
    most = max(8, soft // 2 - 2 * backlog)
    if max_connections is None:
        max_connections = min(MAX_CONNECTIONS, most)
    elif max_connections > most:
        raise BadInput(f"--max-connections {max_connections}: more than the open-file limit can hold (RLIMIT_NOFILE "
                       f"soft limit {soft}: at most {most} connections; give at most {most}, or raise the limit "
                       "with `ulimit -n` first)", field="--max-connections")
    return max(2, max_connections), backlog


def request_timeout(seconds: float | None = None) -> float:
    """The time a client has to send a whole request: ``seconds`` (default :data:`READ_TIMEOUT_S`),
    else BadInput naming ``--request-timeout-s`` and :data:`REQUEST_TIMEOUT_RANGE_S`."""
    import math

    from castrig.errors import BadInput

    if seconds is None:
        return READ_TIMEOUT_S
    lo, hi = REQUEST_TIMEOUT_RANGE_S
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and lo <= seconds <= hi):
        raise BadInput(f"--request-timeout-s {seconds}: seconds to send a whole request, {lo:g} to {hi:g} "
                       f"(default {READ_TIMEOUT_S:g})", field="--request-timeout-s")
    return float(seconds)


class BoundedH11(H11Protocol):
    """uvicorn's h11 protocol with a time limit to send a request (``config.castrig_request_timeout_s``)
    and a cap on connections held (``config.castrig_max_connections``)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._born = time.monotonic()
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()
        self._shed()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:  # a request begins (or goes on): its clock runs
            self._arm()
        super().data_received(data)
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()  # the whole request is in

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(getattr(self.config, "castrig_request_timeout_s", READ_TIMEOUT_S), self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing() and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self.transport.close()

    def _answering(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _streaming(self) -> bool:
        """Answering a live run's event stream (it lasts as long as the run)."""
        return self._answering() and str(getattr(self.cycle, "scope", {}).get("path", "")).endswith("/stream")

    def _shed(self) -> None:
        """Over the cap: close the oldest connection not being answered, else the oldest live
        stream, else answer this one 503."""
        cap = getattr(self.config, "castrig_max_connections", MAX_CONNECTIONS)
        while len(self.connections) > cap:
            others = [c for c in self.connections if c is not self and isinstance(c, BoundedH11) and not c.transport.is_closing()]
            idle = [c for c in others if not c._answering()] or [c for c in others if c._streaming()]
            if not idle:
                self.transport.write(_503)
                self.transport.close()
                self.connections.discard(self)
                return
            oldest = min(idle, key=lambda c: c._born)
            oldest.transport.close()
            self.connections.discard(oldest)  # closing: it no longer counts


class _OncePerMinute(logging.Filter):
    """Let asyncio's 'socket.accept() out of system resource' through once a minute, not per retry."""

    def __init__(self) -> None:
        super().__init__()
        self.last = -1e9
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if "out of system resource" not in record.getMessage():
            return True
        now = time.monotonic()
        if now - self.last < 60:
            self.dropped += 1
            return False
        self.last = now
        if self.dropped:
            record.msg = f"{record.msg} ({self.dropped} more like it in the last minute not shown)"
            self.dropped = 0
        record.exc_info = None  # the traceback says nothing more than the message
        return True


def quiet_accept_errors() -> None:
    logging.getLogger("asyncio").addFilter(_OncePerMinute())


#: the uvicorn versions whose H11Protocol internals :class:`BoundedH11` was checked against (pyproject says the same)
UVICORN_CHECKED = ">=0.29,<0.55"


def check_uvicorn(config: Any) -> None:
    """Refuse (BadInput) a uvicorn whose h11 protocol lacks what :class:`BoundedH11` relies on:
    its ``connection_made``/``data_received``/``connection_lost``, and on each connection ``conn``
    (an ``h11.Connection``), ``connections`` (the server's set), ``loop``, ``transport``,
    ``config``, ``cycle`` — a request cycle that keeps ``response_complete``.

    Refused rather than served without the guard: without it one script's half-sent requests
    take every descriptor and nobody gets an answer, while the server looks up; a clear refusal
    at start names the fix (a uvicorn in :data:`UVICORN_CHECKED`). A probe connection is made on
    ``config`` (which loads it, as serving would) on a loop of its own, never connected."""
    import uvicorn
    from uvicorn.protocols.http import h11_impl

    from castrig.errors import BadInput

    missing = [f"H11Protocol.{m}" for m in ("connection_made", "data_received", "connection_lost")
               if not callable(getattr(H11Protocol, m, None))]
    cycle = getattr(h11_impl, "RequestResponseCycle", None)
    init = getattr(getattr(cycle, "__init__", None), "__code__", None)
    if init is None or "response_complete" not in init.co_names:
        missing.append("RequestResponseCycle.response_complete")
    if not missing:
        loop = asyncio.new_event_loop()
        try:
            from uvicorn.server import ServerState

            state = ServerState()
            probe = BoundedH11(config, state, {}, _loop=loop)
            checks = {"conn": isinstance(getattr(probe, "conn", None), h11.Connection),
                      "connections": getattr(probe, "connections", None) is state.connections,
                      "loop": getattr(probe, "loop", None) is loop,
                      "transport": hasattr(probe, "transport"), "config": getattr(probe, "config", None) is config,
                      "cycle": hasattr(probe, "cycle")}
            missing += [f"H11Protocol().{name}" for name, ok in checks.items() if not ok]
        except Exception as exc:  # noqa: BLE001 - whatever a changed constructor raises is the answer
            missing.append(f"H11Protocol(config, server_state, app_state, _loop) ({type(exc).__name__}: {exc})")
        finally:
            loop.close()
    if missing:
        raise BadInput(f"uvicorn {getattr(uvicorn, '__version__', '?')}: its h11 protocol lacks what castrig serve's "
                       f"connection guard relies on ({', '.join(missing)}); install a uvicorn it was checked with: "
                       f"pip install 'uvicorn{UVICORN_CHECKED}'")


def bounded_config(app: Any, *, max_connections: int | None = None, request_timeout_s: float | None = None, **kw: Any) -> Any:
    """A ``uvicorn.Config`` for ``app`` with the bounds above (``kw``: host, port, log level …),
    once :func:`check_uvicorn` found what the guard relies on."""
    import uvicorn

    cap, backlog = limits(max_connections)
    timeout_s = request_timeout(request_timeout_s)
    config = uvicorn.Config(app, http=BoundedH11, backlog=backlog, limit_concurrency=cap + 1, timeout_keep_alive=5, **kw)
    config.castrig_max_connections = cap  # type: ignore[attr-defined]
    config.castrig_request_timeout_s = timeout_s  # type: ignore[attr-defined]
    check_uvicorn(config)
    quiet_accept_errors()
    return config
