"""Put emulators on real OS links: ptys and loopback TCP sockets, in wall-clock time.

Each server runs one small thread that moves bytes between the OS endpoint and the emulator;
all servers share one lock, so emulators over a shared physical world are never entered twice
at once. Software written by others opens the pty path or the socket like a real instrument.

A server's thread sleeps until the host's bytes come, the emulator's next output is due, or it
is woken (a fault injected or cleared, a pause, a stop): an idle server takes no CPU.
"""

from __future__ import annotations

import os
import select
import sys
import signal
import socket
import threading
import time
import tty
from typing import Callable, Protocol

from castrig.clock import Clock, WallClock

#: One lock for every served emulator in this process (they may share the twin's world).
WORLD_LOCK = threading.RLock()

#: The wait while the emulator has output due that it did not give (a device that cannot say when).
_POLL_S = 0.002
#: A TCP client that takes none of its replies this long (s) is dropped: it sends and never reads
#: (a hung program, a port scanner that pipes commands in). Long enough for any reader, even one
#: paused a moment; short against the 10 s and more a driver waits before it calls a line dead.
STALLED_CLIENT_S = 10.0
#: After a TCP client closed its sending side, its replies still due are sent for at most this long (s).
_LINGER_S = 0.5
#: A TCP client's send buffer (bytes; the OS doubles it): a frame of the camera goes in pieces.
_CLIENT_SNDBUF = 64 * 1024
#: Signals a server's thread leaves to the others (the main thread): Python runs its handlers
#: there only, and a main thread asleep until a signal (``castrig sim serve``) is not woken by one
#: the kernel gave another thread (SIGINT sent as SIGSTOPped threads were continued: stopped 10 s
#: later by SIGKILL).
_FOR_THE_MAIN_THREAD = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2}


class Served(Protocol):
    name: str

    @property
    def connected(self) -> bool: ...

    def receive(self, data: bytes, t: float) -> None: ...

    def transmit(self, t: float) -> bytes: ...

    def next_output_time(self, t: float) -> float | None: ...

    def reset_io(self, t: float) -> None: ...

    def watch_faults(self, callback: Callable[[], None]) -> None: ...

    def unwatch_faults(self, callback: Callable[[], None]) -> None: ...


class SharedLine:
    """Several emulators on one line (Alicat units on one RS-485 bus, daisy-chained pumps), served
    as one device: every byte reaches each unit, and each answers what is addressed to it; their
    output is merged in the order it is due. (The units take care not to talk over each other,
    as on a real bus: one answers at a time, to its own address.)"""

    def __init__(self, emulators: list[Served]):
        self.emulators = emulators
        self.name = "+".join(e.name for e in emulators)

    @property
    def connected(self) -> bool:
        return all(e.connected for e in self.emulators)

    def receive(self, data: bytes, t: float) -> None:
        for e in self.emulators:
            e.receive(data, t)

    def transmit(self, t: float) -> bytes:
        return b"".join(e.transmit(t) for e in self.emulators)

    def next_output_time(self, t: float) -> float | None:
        due = [x for x in (e.next_output_time(t) for e in self.emulators) if x is not None]
        return min(due) if due else None

    def reset_io(self, t: float) -> None:
        for e in self.emulators:
            e.reset_io(t)

    def watch_faults(self, callback: Callable[[], None]) -> None:
        for e in self.emulators:
            e.watch_faults(callback)

    def unwatch_faults(self, callback: Callable[[], None]) -> None:
        for e in self.emulators:
            e.unwatch_faults(callback)


class _Base:
    address: str = ""

    def __init__(self, emulator: Served, clock: Clock, lock: threading.RLock):
        self.emulator = emulator
        self.clock = clock
        self.lock = lock
        self._stop = threading.Event()
        self._paused = threading.Event()
        #: Its thread waits on this too: a byte written to the other end wakes it (:meth:`wake`).
        self._waker, self._wake_end = socket.socketpair()
        for s in (self._waker, self._wake_end):
            s.setblocking(False)
        self._thread = threading.Thread(target=self._serve, name=f"serve-{self.emulator.name}", daemon=True)
        self.error: BaseException | None = None
        #: Called (no arguments) from the server's thread when it fails while serving.
        self.on_error: Callable[[], None] | None = None
        #: Called with one line for sim serve's log (a client dropped); default: stderr.
        self.on_note: Callable[[str], None] | None = None

    def start(self) -> "_Base":
        self.emulator.watch_faults(self.wake)
        self._thread.start()
        return self

    def wake(self) -> None:
        """Make the thread look again at once (a fault switched, a pause, a stop): it sleeps
        otherwise until the host's bytes or the emulator's next output."""
        try:
            self._waker.send(b"\0")
        except OSError:  # a byte already waiting (the buffer full), or the server stopped
            pass

    def _woken(self) -> None:
        try:
            while self._wake_end.recv(4096):
                pass
        except OSError:
            pass

    def _wait(self, fds: list, timeout: float | None) -> list:
        """``select`` on ``fds`` and the wake-up socket (bounded by ``timeout``, None: none);
        which of ``fds`` are ready (none when woken)."""
        ready, _, _ = select.select([*fds, self._wake_end], [], [], timeout)
        if self._wake_end in ready:
            self._woken()
            return []
        return ready

    def pause(self) -> None:
        """Stall the line (as SIGSTOP does to ``sim serve``): nothing is read or sent until
        :meth:`resume`; the host's bytes wait in the OS buffers meanwhile."""
        self._paused.set()
        self.wake()

    def resume(self) -> None:
        self._paused.clear()
        self.wake()

    def _stalled(self) -> bool:
        if self._paused.is_set():
            self._wait([], None)  # until resumed or stopped
            return True
        return False

    def _failed(self, exc: BaseException) -> None:
        self.error = exc
        if self.on_error is not None:
            self.on_error()

    def _note(self, line: str) -> None:
        if self.on_note is not None:
            self.on_note(line)
        else:
            print(f"sim serve: {line}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        self._thread.join(timeout=2)
        self.emulator.unwatch_faults(self.wake)
        self._cleanup()
        for s in (self._waker, self._wake_end):
            s.close()

    def __enter__(self) -> "_Base":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, _FOR_THE_MAIN_THREAD)
        self._run()

    def _run(self) -> None:  # pragma: no cover - replaced
        raise NotImplementedError

    def _cleanup(self) -> None:
        pass

    def _exchange(self, data: bytes) -> tuple[bytes, float | None]:
        """Hand the host's bytes to the emulator; what it sends now, and how long the thread may
        wait for the host's next bytes before the emulator has output due (None: for ever, the
        device says nothing unless asked; a fault switched wakes the thread, :meth:`wake`).
        (A fixed 2 ms poll cost an idle ``sim serve`` of seven devices 8 % of a core, a 50 ms
        one 2 %: 175 wake-ups a second on ptys, 330 on TCP.)"""
        with self.lock:
            t = self.clock.now()
            if data:
                self.emulator.receive(data, t)
            out = self.emulator.transmit(t)
            nxt = self.emulator.next_output_time(t)
        if nxt is None:
            return out, None
        # (output due but not given: a device that cannot say when; looked at as often as before)
        return out, _POLL_S if nxt <= t else nxt - t


class PtyServer(_Base):
    """An emulator behind a pseudo-terminal; ``address`` is the path clients open (``/dev/pts/N``)."""

    def __init__(self, emulator: Served, clock: Clock, lock: threading.RLock, stalled_client_s: float = STALLED_CLIENT_S):
        super().__init__(emulator, clock, lock)
        self.stalled_client_s = stalled_client_s
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.address = os.ttyname(self._slave)

    def _run(self) -> None:
        wait: float | None = 0.0
        try:
            while not self._stop.is_set():
                if self._stalled():
                    wait = 0.0
                    continue
                ready = self._wait([self._master], wait)
                data = b""
                if ready:
                    try:
                        data = os.read(self._master, 4096)
                    except OSError:
                        data = b""
                out, wait = self._exchange(data)
                if out:
                    self._write_all(out)
        except BaseException as exc:  # noqa: BLE001 - reported to whoever holds the server
            self._failed(exc)

    def _write_all(self, out: bytes) -> None:
        """Write ``out`` as the pty takes it; what nobody reads for ``stalled_client_s`` is dropped
        (a UART sends into a line nobody reads), said in the log. A client that wrote commands and
        never read blocked this thread in ``os.write`` for good: ``sim serve`` then took 2 s per
        such device to stop at a Ctrl-C."""
        view = memoryview(out)
        moved_s = time.monotonic()
        while view and not self._stop.is_set():
            left_s = self.stalled_client_s - (time.monotonic() - moved_s)
            if left_s <= 0:
                self._note(f"{self.emulator.name} on {self.address}: {len(view)} bytes of replies dropped: "
                           f"nobody read them for {self.stalled_client_s:g} s")
                return
            readable, writable, _ = select.select([self._wake_end], [self._master], [], left_s)
            if readable:
                self._woken()  # (a stop ends the loop; a fault or pause waits for the write)
            if writable:
                try:
                    n = os.write(self._master, view)
                except BlockingIOError:
                    continue
                view = view[n:]
                moved_s = time.monotonic()

    def _cleanup(self) -> None:
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass


class TcpServer(_Base):
    """An emulator behind a loopback TCP port; one client at a time, reconnects welcome.

    An injected ``drop`` fault closes the client's connection, as a pulled cable or a
    terminal server reboot would.
    """

    def __init__(self, emulator: Served, clock: Clock, lock: threading.RLock, port: int = 0,
                 stalled_client_s: float = STALLED_CLIENT_S):
        super().__init__(emulator, clock, lock)
        self.stalled_client_s = stalled_client_s
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._listener.bind(("127.0.0.1", port))
            self._listener.listen(1)
        except OSError:
            self._listener.close()  # e.g. EADDRINUSE: the caller names the port
            raise
        self.port = self._listener.getsockname()[1]
        self.address = f"socket://127.0.0.1:{self.port}"

    @property
    def visa_address(self) -> str:
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    def _run(self) -> None:
        client: socket.socket | None = None
        wait: float | None = 0.0
        #: What the emulator sent that the client has not taken yet; while any is left, the
        #: client's next commands are not read (they wait in the OS buffers): memory stays bounded.
        unsent = bytearray()
        moved_s = 0.0  # when the client last took a byte (or unsent began)
        ended_s: float | None = None  # when the client closed its sending side

        def answer(out: bytes) -> bool:
            """``out`` queued for the client, and what its socket takes now handed to it; False:
            the client is gone."""
            nonlocal moved_s
            unsent.extend(out)
            moved_s = time.monotonic()
            return self._send(client, unsent)

        try:
            while not self._stop.is_set():
                if self._stalled():
                    wait = 0.0
                    moved_s = time.monotonic()  # (a pause is the line's, not a client's that stopped reading)
                    continue
                if client is None:
                    unsent.clear()
                    ended_s = None
                    # (a dropped line takes no client until the fault is cleared, which wakes it)
                    ready = self._wait([self._listener] if self.emulator.connected else [], None)
                    if ready and self.emulator.connected:
                        client, _ = self._listener.accept()
                        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        # (an instrument's output buffer is small: grown to MBs by the OS, a client
                        # that never reads had seconds of its commands answered before it was found)
                        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _CLIENT_SNDBUF)
                        client.setblocking(False)
                        self._new_session()
                        wait = 0.0
                    continue
                if not self.emulator.connected:
                    client.close()
                    client = None
                    continue
                if unsent:
                    left_s = self.stalled_client_s - (time.monotonic() - moved_s)
                    if left_s <= 0:
                        self._note(f"{self.emulator.name} on {self.address}: client dropped: it took none of "
                                   f"{len(unsent)} bytes of replies for {self.stalled_client_s:g} s "
                                   "(a client that sends and never reads); the line is free")
                        client.close()
                        client = None
                        continue
                    # (a client that closed its end makes way for the one waiting behind it once its
                    # replies are out: that one is not looked at meanwhile, or select spun on it)
                    ended = _ended(client)
                    readable, writable, _ = select.select([self._wake_end] + ([] if ended else [self._listener]),
                                                          [client], [], left_s)
                    if self._wake_end in readable:
                        self._woken()
                    if self._listener in readable:
                        self._turn_away()  # (the line stays taken, as while it is read)
                    if client in writable:
                        if not self._send(client, unsent):
                            client.close()
                            client = None
                            continue
                        moved_s = time.monotonic()
                    wait = 0.0
                    continue
                if ended_s is not None:
                    # the client closed its sending side (``printf 'A\r' | nc -N``, a script's
                    # shutdown): the replies to what it sent still go out, as a device answers
                    # what it was sent; the line is free once none is due, at most _LINGER_S on
                    left_s = ended_s + _LINGER_S - time.monotonic()
                    if wait is None or left_s <= 0:
                        client.close()
                        client = None
                        continue
                    self._wait([], min(wait, left_s))
                    out, wait = self._exchange(b"")
                    if out and not answer(out):
                        client.close()
                        client = None
                    continue
                ready = self._wait([client, self._listener], wait)
                data: bytes | None = b""
                if client in ready:  # (first: a client that left makes way for the next)
                    try:
                        data = client.recv(4096)
                    except BlockingIOError:
                        data = None  # (nothing after all: not a close)
                    except OSError:  # (reset: gone for good, nothing to answer)
                        client.close()
                        client = None
                        continue
                    if data == b"":
                        ended_s = time.monotonic()  # (before: closed at once, its replies dropped)
                        continue
                data = data or b""
                if self._listener in ready and not _ended(client):
                    self._turn_away()
                out, wait = self._exchange(data)
                if out and not answer(out):
                    client.close()
                    client = None
        except BaseException as exc:  # noqa: BLE001
            self._failed(exc)
        finally:
            if client is not None:
                client.close()

    @staticmethod
    def _send(client: socket.socket, unsent: bytearray) -> bool:
        """Hand the client what its socket takes now (never waiting: a client that does not read
        blocked this device's thread for good, a second client left in the backlog unanswered);
        False: the client is gone."""
        try:
            n = client.send(unsent)
        except BlockingIOError:
            return True
        except OSError:
            return False
        del unsent[:n]
        return True

    def _turn_away(self) -> None:
        """A second client while one holds the line is closed at once, as a terminal server
        set to one connection does: left waiting in the backlog it saw "no reply" and its
        bytes (a pump command) ran when the first client let go, long after it had given up."""
        try:
            extra, _ = self._listener.accept()
        except OSError:
            return
        extra.close()

    def _new_session(self) -> None:
        """A new client starts on a clean line: nothing left over from the last one."""
        with self.lock:
            self.emulator.reset_io(self.clock.now())

    def _cleanup(self) -> None:
        self._listener.close()


def _ended(client: socket.socket) -> bool:
    """The client has closed its end (its last bytes may have come with the close): the one
    waiting behind it is the next client, not a second one."""
    try:
        return client.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def serve_pty(emulator: Served, clock: Clock | None = None, lock: threading.RLock | None = None,
              stalled_client_s: float = STALLED_CLIENT_S) -> PtyServer:
    """A started-on-enter pty server for ``emulator`` (use as a context manager); replies nobody
    reads for ``stalled_client_s`` are dropped."""
    return PtyServer(emulator, clock or WallClock(), lock or WORLD_LOCK, stalled_client_s)


def serve_tcp(
    emulator: Served, clock: Clock | None = None, port: int = 0, lock: threading.RLock | None = None,
    stalled_client_s: float = STALLED_CLIENT_S,
) -> TcpServer:
    """A loopback TCP server for ``emulator``; ``port=0`` picks a free port; a client that takes
    none of its replies for ``stalled_client_s`` is dropped."""
    return TcpServer(emulator, clock or WallClock(), lock or WORLD_LOCK, port, stalled_client_s)
