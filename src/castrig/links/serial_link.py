"""Serial links over pyserial: a port, a pty path, ``socket://host:port``, ``loop://``."""

from __future__ import annotations

import errno
import socket
import termios
import threading
import time

import serial

from castrig.errors import Busy
from castrig.links.base import Link
from castrig.links.errors import LinkClosed, LinkError

#: what a line that went away raises: pyserial's own errors, the OS's, and termios.error (not an
#: OSError), which pyserial's posix flush (tcdrain) lets through as it is when a pty's other side
#: or a USB adapter goes between a write and its drain: met as "internal error error: (5,
#: 'Input/output error')" ending a run whose sim serve restarted, where the line should reopen
_LINE_GONE = (serial.SerialException, OSError, termios.error)

#: Largest non-blocking read after the first byte.
_CHUNK = 4096

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}

#: The time a terminal server is given to free its port between our closing a ``socket://``
#: connection and our next connection to that address. pyserial's close sleeps it after every
#: socket ("in case of quick reconnects"); here it is waited before a reconnect only, not at
#: every close: a rig of seven devices over TCP, its sockets closed one after another, took 2.1 s
#: to close, and so long to end after a Ctrl-C (over 3 s under load).
RECONNECT_GAP_S = 0.3
_closed_at: dict[str, float] = {}  # address: when this process last closed a connection to it
_closed_lock = threading.Lock()


class SerialLink(Link):
    """A pyserial ``serial_for_url`` port. Timeouts are real seconds: hardware is real."""

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: float = 1,
        timeout_s: float = 1.0,
        exclusive: bool = False,
    ):
        super().__init__(url, timeout_s)
        self._settings = {"baudrate": baudrate, "bytesize": bytesize, "parity": _PARITY[parity.upper()],
                          "stopbits": stopbits, "timeout": 0, "write_timeout": timeout_s}
        #: A port of our own (``flock`` on a device or pty path), so a second process is refused
        #: before it sends a byte. pyserial refuses ``exclusive`` for URLs (``socket://``,
        #: ``loop://``): those are owned by the rig's resource locks instead.
        self.exclusive = bool(exclusive) and "://" not in url
        if self.exclusive:
            self._settings["exclusive"] = True
        #: Set when the peer went away (socket closed, USB adapter unplugged): the next read or
        #: write reopens the port once, so a terminal server or adapter that comes back is used
        #: again (while it is gone, each attempt fails at once with LinkClosed).
        self._lost = False
        self._confirming = False
        self.reopens = "://" not in url  # a device path or pty (see Link.reopens)
        #: Whether any byte read had its high bit set: never, in an ASCII protocol's replies, but
        #: what a line at another speed or framing than the device's gives (the rig's opening
        #: says so: the error alone read "no reply" for an MFC answering garbage at 9600 baud).
        self.saw_high_bytes = False
        self._port = self._open(first=True)

    def _open(self, *, first: bool = False) -> serial.SerialBase:
        with _closed_lock:
            closed = _closed_at.get(self.resource)
        if closed is not None:
            time.sleep(max(0.0, closed + RECONNECT_GAP_S - time.monotonic()))
        try:
            return serial.serial_for_url(self.resource, **self._settings)
        except (serial.SerialException, ValueError, OSError, termios.error) as exc:
            if first and self.exclusive and getattr(exc, "errno", None) in (errno.EAGAIN, errno.EWOULDBLOCK):
                # the port's own exclusive lock is held: another process has it open (another castrig
                # whose device locks are in another folder, or another program). Said as busy (exit
                # 4), not 'rig not reachable' (exit 5), whose resume goes on to make safe what opens
                raise Busy(f"{self.resource}: held open exclusively by another process (a castrig whose device "
                           "locks are in another folder -- another $CASTRIG_LOCK_DIR -- or another program)") from None
            # termios.error: settings a port cannot take (e.g. 7E1 on a pty)
            raise LinkClosed(self.resource, f"cannot open: {exc}") from exc

    def _reopen(self) -> None:
        if self._confirming:  # lost again while the device's identity was being confirmed
            raise LinkClosed(self.resource, "lost again as it reopened")
        self._close()
        self._port = self._open()  # raises LinkClosed while the port is still gone
        self._lost = False
        self._rx.clear()
        self._confirming = True
        try:
            self._confirm_reopened()  # the same device as before? (a reused pty, a renumbered adapter)
        except BaseException:
            # not back: the port let go at once (another role's device must not stay locked by
            # us), and the next read or write reopens and checks again
            self._lost = True
            self._close()
            raise
        finally:
            self._confirming = False

    def _now(self) -> float:
        return time.monotonic()

    def _write(self, data: bytes) -> None:
        if self._lost:
            self._reopen()
        try:
            self._port.write(data)
            self._port.flush()
        except serial.SerialTimeoutException as exc:
            raise LinkError(self.resource, f"write timed out: {exc}") from exc
        except _LINE_GONE as exc:
            raise self._lost_line("write", exc) from exc

    def _read_some(self, deadline_s: float) -> bytes:
        if self._lost:
            self._reopen()
        remaining = max(0.0, deadline_s - self._now())
        try:
            self._port.timeout = remaining
            first = self._port.read(1)
            if not first:
                return b""
            # What is really there, in one non-blocking read: ``in_waiting`` is not to be trusted
            # (on ``socket://`` it is 0 or 1, whatever has arrived), and the framing above
            # reassembles replies from any byte boundaries anyway.
            self._port.timeout = 0
            data = first + self._port.read(_CHUNK)
            self.heard_bytes += len(data)
            if not data.isascii():
                self.saw_high_bytes = True
            return data
        except _LINE_GONE as exc:
            raise self._lost_line("read", exc) from exc

    def _lost_line(self, what: str, exc: BaseException) -> LinkClosed:
        """The peer went away. A network port that drops the connection at once is most often
        held by another client (a terminal server or ``castrig sim serve`` takes one at a
        time): say so, rather than pyserial's "read failed: read failed: [Errno 104] ..."."""
        self._lost = True
        text = str(exc).removeprefix(f"{what} failed: ")
        dropped = ("reset by peer", "disconnected", "broken pipe", "connection aborted")
        if self.resource.startswith(("socket://", "rfc2217://")) and any(d in text.lower() for d in dropped):
            text += "; the server closed the connection (is another client connected to that port?)"
        return LinkClosed(self.resource, f"{what} failed: {text}")

    def _close(self) -> None:
        port = self._port
        sock = getattr(port, "_socket", None) if _is_socket_port(port) else None
        if sock is None:
            try:
                port.close()
            except _LINE_GONE:
                pass
            return
        # pyserial's close without its sleep (RECONNECT_GAP_S): the same shutdown and close
        port._socket, port.is_open = None, False  # noqa: SLF001
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass
        with _closed_lock:
            _closed_at[self.resource] = time.monotonic()


def _is_socket_port(port: object) -> bool:
    from serial.urlhandler import protocol_socket

    return isinstance(port, protocol_socket.Serial)
