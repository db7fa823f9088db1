"""Serial links over pyserial: a port, a pty path, ``socket://host:port``, ``loop://``."""

from __future__ import annotations

import termios
import time

import serial

from castrig.links.base import Link
from castrig.links.errors import LinkClosed, LinkError

_PARITY = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}


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
    ):
        super().__init__(url, timeout_s)
        try:
            self._port = serial.serial_for_url(
                url,
                baudrate=baudrate,
                bytesize=bytesize,
                parity=_PARITY[parity.upper()],
                stopbits=stopbits,
                timeout=0,
                write_timeout=timeout_s,
            )
        except (serial.SerialException, ValueError, OSError, termios.error) as exc:
            # termios.error: settings a port cannot take (e.g. 7E1 on a pty)
            raise LinkClosed(url, f"cannot open: {exc}") from exc

    def _now(self) -> float:
        return time.monotonic()

    def _write(self, data: bytes) -> None:
        try:
            self._port.write(data)
            self._port.flush()
        except serial.SerialTimeoutException as exc:
            raise LinkError(self.resource, f"write timed out: {exc}") from exc
        except (serial.SerialException, OSError) as exc:
            raise LinkClosed(self.resource, f"write failed: {exc}") from exc

    def _read_some(self, deadline_s: float) -> bytes:
        remaining = max(0.0, deadline_s - self._now())
        try:
            self._port.timeout = remaining
            first = self._port.read(1)
            if not first:
                return b""
            self._port.timeout = 0
            waiting = self._port.in_waiting
            return first + (self._port.read(waiting) if waiting else b"")
        except (serial.SerialException, OSError) as exc:
            raise LinkClosed(self.resource, f"read failed: {exc}") from exc

    def _close(self) -> None:
        try:
            self._port.close()
        except (serial.SerialException, OSError):
            pass
