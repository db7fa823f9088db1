"""VISA links through pyvisa (pyvisa-py backend by default), e.g. ``TCPIP::127.0.0.1::5025::SOCKET``."""

from __future__ import annotations

import errno
import os
import select
import socket
import time

from castrig.links.base import Link
from castrig.links.errors import LinkClosed, LinkError


class VisaLink(Link):
    """A pyvisa message-based resource used as a byte link.

    Termination characters are handled by :class:`Link`, so pyvisa's own termination is
    switched off and bytes are read as they come.
    """

    def __init__(self, resource: str, *, timeout_s: float = 1.0, backend: str = "@py"):
        super().__init__(resource, timeout_s)
        from pyvisa import constants, errors

        self._errors = errors
        self._constants = constants
        self._backend = backend
        #: Set when the peer closed the connection: the next write connects again once, so a
        #: chamber's LAN module that restarted is used again (as a serial link's terminal server).
        self._lost = False
        self._confirming = False
        self.reopens = resource.upper().startswith("ASRL")  # a serial port (see Link.reopens)
        self._open()

    def _open(self) -> None:
        import pyvisa

        resource = self.resource
        try:
            self._rm = pyvisa.ResourceManager(self._backend)
            self._inst = self._rm.open_resource(resource, open_timeout=int(self.timeout_s * 1000))
        except Exception as exc:  # noqa: BLE001 - pyvisa-py raises a bare Exception("could not connect: …") for a host it cannot resolve or a port that is no number
            raise LinkClosed(resource, f"cannot open: {exc}") from exc
        refused = self._connect_error()
        if refused:
            self._close()
            raise LinkClosed(resource, f"cannot open: {os.strerror(refused)}")
        self._inst.read_termination = None
        self._inst.write_termination = None

    def _socket_session(self) -> "tuple[socket.socket, object] | None":
        """pyvisa-py's socket and session of a TCPIP SOCKET resource (None: another backend or kind)."""
        try:
            session = self._rm.visalib.sessions[self._inst.session]
        except Exception:  # noqa: BLE001 - another backend, or not a socket resource
            return None
        sock = getattr(session, "interface", None)
        return (sock, session) if isinstance(sock, socket.socket) else None

    def _socket_readable(self, wait_s: float) -> bool:
        """On a TCPIP SOCKET resource with nothing buffered by pyvisa-py: whether bytes come
        within ``wait_s`` (else the read is a timeout), LinkClosed when the peer closed the
        connection. pyvisa-py's own read spun at a closed peer until its timeout (recv giving b""
        at once, again and again: 3.6 s of CPU in two 4 s reads) and said "timeout", so a chamber
        whose LAN module dropped the connection was "no reply" at every exchange, never connected
        again. True for any other resource (pyvisa waits)."""
        found = self._socket_session()
        if found is None or getattr(found[1], "_pending_buffer", None) != b"":
            return True
        sock = found[0]
        try:
            if not select.select([sock], [], [], wait_s)[0]:
                return False
            if sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                return True
        except BlockingIOError:
            return False
        except (OSError, ValueError):  # (reset, or a socket pyvisa closed)
            pass
        self._lost = True
        raise LinkClosed(self.resource, "read failed: the peer closed the connection")

    def _connect_error(self) -> int:
        """The errno of a TCPIP SOCKET connection that did not come up (0: connected, or not a
        socket pyvisa-py shows). pyvisa-py starts the connection without waiting for its outcome,
        so a refused port opened "successfully" and the run started, its chamber silent, until the
        device_comms interlock aborted it; a serial URL to that port is refused at once."""
        try:
            sock = self._rm.visalib.sessions[self._inst.session].interface
        except Exception:  # noqa: BLE001 - another backend, or not a socket resource: nothing to look at
            return 0
        if not isinstance(sock, socket.socket):
            return 0
        try:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if not err:
                sock.getpeername()  # ENOTCONN while the connection is not up
        except OSError as exc:
            return exc.errno or errno.ENOTCONN
        return err

    @property
    def _byte_stream(self) -> bool:
        """A raw socket or serial resource, read as a stream of bytes. An instrument resource
        (GPIB, USBTMC, VXI-11: ``::INSTR``) is not read without a query pending: that is a
        'Query UNTERMINATED' error (-420) on the instrument's error queue, which every set's
        ``SYST:ERR?`` would then find, and an aborted USBTMC read may misalign replies."""
        name = self.resource.upper()
        return name.endswith("::SOCKET") or name.startswith("ASRL")

    def input_waiting(self) -> bytes:
        """:meth:`Link.input_waiting`, on a byte stream; an instrument resource frames each reply
        itself and is not read (:attr:`_byte_stream`)."""
        if self._byte_stream:
            return super().input_waiting()
        self._check_open()
        return bytes(self._rx)

    def flush_input(self) -> None:
        """:meth:`Link.flush_input`; on an instrument resource a device clear (its input and output
        buffers emptied by the bus, VISA's ``viClear``) instead of reads with no query pending."""
        if self._byte_stream:
            return super().flush_input()
        self._check_open()
        self._rx.clear()
        self._clear()

    def flush_until_quiet(self, quiet_s: float, *, max_s: float | None = None) -> int:
        """:meth:`Link.flush_until_quiet`; on an instrument resource a device clear (a late reply
        waits in its output buffer, which the clear empties)."""
        if self._byte_stream:
            return super().flush_until_quiet(quiet_s, max_s=max_s)
        self._check_open()
        dropped = len(self._rx)
        self._rx.clear()
        self._clear()
        return dropped

    def _clear(self) -> None:
        try:
            self._inst.clear()
        except self._errors.VisaIOError as exc:
            raise self._map(exc, "clear") from exc
        except OSError as exc:
            raise LinkClosed(self.resource, f"clear failed: {exc}") from exc

    def _now(self) -> float:
        return time.monotonic()

    def _write(self, data: bytes) -> None:
        if self._lost:
            if self._confirming:  # lost again while the device's identity was being confirmed
                raise LinkClosed(self.resource, "lost again as it reconnected")
            self._close()
            self._open()  # raises LinkClosed while the peer is still gone
            self._lost = False
            self._rx.clear()
            self._confirming = True
            try:
                self._confirm_reopened()  # the same device as before? (see Link.on_reopen)
            except BaseException:  # not back: let go of it, tried again at the next write
                self._lost = True
                self._close()
                raise
            finally:
                self._confirming = False
        try:
            self._inst.write_raw(data)
        except self._errors.VisaIOError as exc:
            raise self._map(exc, "write") from exc
        except OSError as exc:  # pyvisa-py connects lazily: a refused socket shows up here
            raise LinkClosed(self.resource, f"write failed: {exc}") from exc

    def _read_some(self, deadline_s: float) -> bytes:
        remaining = deadline_s - self._now()
        if remaining <= 0:
            # Non-blocking peek: pyvisa has no zero timeout, so use the shortest it takes.
            remaining = 0.001
        if self._lost:
            raise LinkClosed(self.resource, "read failed: the peer closed the connection (connected again at the next write)")
        if not self._socket_readable(remaining):
            return b""
        self._inst.timeout = max(1, int(remaining * 1000))
        try:
            data = self._inst.read_bytes(1, break_on_termchar=False) + self._drain()
            self.heard_bytes += len(data)
            return data
        except self._errors.VisaIOError as exc:
            if exc.error_code == self._constants.StatusCode.error_timeout:
                return b""
            raise self._map(exc, "read") from exc
        except OSError as exc:
            raise LinkClosed(self.resource, f"read failed: {exc}") from exc

    def _drain(self) -> bytes:
        """Bytes already waiting after the first one (pyvisa-py keeps them in its buffer)."""
        out = bytearray()
        self._inst.timeout = 1
        while True:
            try:
                out += self._inst.read_bytes(1, break_on_termchar=False)
            except self._errors.VisaIOError:
                return bytes(out)
            if len(out) >= 4096:
                return bytes(out)

    def _map(self, exc: Exception, what: str) -> LinkError:
        code = getattr(exc, "error_code", None)
        if code in (self._constants.StatusCode.error_connection_lost, self._constants.StatusCode.error_io):
            return LinkClosed(self.resource, f"{what} failed: {exc}")
        return LinkError(self.resource, f"{what} failed: {exc}")

    def _close(self) -> None:
        try:
            self._inst.close()
            self._rm.close()
        except Exception:  # noqa: BLE001 - closing must never raise
            pass
