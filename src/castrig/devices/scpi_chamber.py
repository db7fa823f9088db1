"""Humidity chamber with its own RH controller, set and read over SCPI (VISA socket or serial).

No single vendor: climatic chambers speak many dialects (Espec ``HUMI, S50`` / ``HUMI?``,
Watlow F4T as in the TestEquity chambers ``:SOURCE:CLOOP2:SPOINT 50`` on TCP 5025, Thunder
Scientific generators ``RH=50``). This module fixes one small SCPI dialect in the style of
those controllers, so a chamber whose own dialect differs needs a thin translating driver only.

The dialect (IEEE 488.2 / SCPI conventions)
-------------------------------------------
* ASCII, one message per line, terminated by LF (``\\n``; a CR before it is ignored). Over VISA
  this is a raw socket (``TCPIP::host::5025::SOCKET``) or a serial port (``ASRL...``).
* Headers are case-insensitive, in short (``SOUR``) or long (``SOURce``) form, and separated
  from their data by any white space (a space or a tab); a leading ``:``
  is allowed; ``[...]`` nodes are optional. Several commands may share one line, separated by
  ``;`` (each is a full header); replies to several queries come back on one line joined by ``;``.
* Sets are silent: the controller answers nothing, and an error is put on the error queue. A
  client reads it with ``SYST:ERR?`` (this driver does after every set). A query with an error
  also answers nothing (the error goes to the queue).

=========================================  ===============================================
``*IDN?``                                  ``CASTRIG,HC-SCPI-1,000001,1.00``
                                           (maker, model, serial, firmware)
``*RST``                                   output OFF (dry purge), setpoint 50.0 %RH
``*CLS``                                   clear the error queue and the event status
``*OPC?``                                  ``1``
``*ESR?`` / ``*ESE[?]`` / ``*SRE[?]``      Standard Event Status Register (read clears; bit 5
                                           command, 4 execution, 3 device, 2 query error),
                                           its enable mask, the service request enable mask
``*STB?``                                  status byte: 4 while the error queue holds an
                                           error, 32 when an enabled event is set
``*WAI`` / ``*TST?``                       nothing (each command done before the next) / ``0``
``[SOURce]:HUMidity[:SETpoint] <rh>``      RH setpoint, 0-100 %RH, resolution 0.1 %RH;
                                           NR1/NR2/NR3 (``45``, ``45.5``, ``4.55E+01``) or
                                           ``MIN`` / ``MAX`` / ``DEF`` (0 / 100 / 50)
``[SOURce]:HUMidity[:SETpoint]?``          ``45.5`` (one decimal)
``MEASure:HUMidity?``                      ``44.87`` chamber RH in %RH (two decimals)
``MEASure:TEMPerature?``                   ``23.02`` chamber temperature in degC
``OUTPut[:STATe] ON|OFF|1|0``              humidifier (wet air) on; off = dry purge
``OUTPut[:STATe]?``                        ``1`` or ``0``
``SYSTem:ERRor[:NEXT]?``                   ``0,"No error"`` or the oldest error, e.g.
                                           ``-222,"Data out of range"``
=========================================  ===============================================

Errors (SCPI numbers): ``-104,"Data type error"`` (not a number), ``-108,"Parameter not
allowed"`` (a query given a parameter), ``-109,"Missing parameter"``, ``-113,"Undefined
header"``, ``-222,"Data out of range"``, ``-224,"Illegal parameter value"`` (``OUTP MAYBE``),
``-350,"Queue overflow"`` (more than 10 errors unread). Some controllers print the no-error
code as ``+0``; the driver accepts both.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from castrig.clock import Clock, WallClock, wait_until
from castrig.devices.roles import DeviceCommsError, ChamberReading, DeviceError, HumidityChamber
from castrig.devices.exchange import InStep, retried_exchange
from castrig.links import Link, LinkError

T = TypeVar("T")

TERMINATOR = b"\n"
RH_MIN_PCT = 0.0
RH_MAX_PCT = 100.0

_ERROR_REPLY = re.compile(r'^\s*([+-]?\d+)\s*,\s*"(.*)"\s*$')


class ChamberError(DeviceError):
    """Base of every error this chamber driver raises."""


class ChamberCommandError(ChamberError):
    """The controller put an error on its queue after a command (``SYST:ERR?`` not 0)."""

    def __init__(self, device: str, command: str, errors: list[tuple[int, str]]):
        self.errors = errors
        self.code, self.error_message = errors[0]
        text = "; ".join(f'{code},"{message}"' for code, message in errors)
        super().__init__(device, command, f"controller error {text}")


class ChamberRangeError(ChamberError, ValueError):
    """A setpoint outside what the controller accepts; caught before anything is sent."""


class ChamberReplyError(ChamberError, DeviceCommsError):
    """A reply that does not parse (line noise, wrong instrument on the address)."""


class ChamberLinkError(ChamberError, DeviceCommsError):
    """The link failed (timeout, closed, garbage); ``cause`` is the :class:`LinkError`."""

    def __init__(self, device: str, command: str, cause: LinkError):
        self.cause = cause
        super().__init__(device, command, f"{type(cause).__name__}: {cause}")


def _parse_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("expected a number") from None
    if value != value:  # NaN: "nan" parses but no controller prints it
        raise ValueError("expected a number")
    return value


def _parse_error(text: str) -> tuple[int, str]:
    m = _ERROR_REPLY.match(text)
    if not m:
        raise ValueError('expected <code>,"<message>"')
    return int(m.group(1)), m.group(2)


def _parse_bool(text: str) -> bool:
    value = text.upper()
    if value in ("1", "ON"):
        return True
    if value in ("0", "OFF"):
        return False
    raise ValueError("expected 1 or 0")


class ScpiHumidityChamber(HumidityChamber):
    """Driver for a chamber speaking the SCPI dialect above.

    Every set is followed by ``SYST:ERR?`` so a rejected command is an exception at the call
    that caused it, not a silent wrong state. A query that times out or comes back garbled
    is tried again, up to ``query_attempts`` tries in all (queries are harmless to repeat).
    """

    def __init__(self, link: Link, *, name: str, clock: Clock | None = None, query_attempts: int = 2):
        self.link = link
        self.name = name
        self.clock = clock or WallClock()
        self.query_attempts = query_attempts
        #: After a timeout or a reply that does not parse, the next query first drops late
        #: replies and sends ``*IDN?`` until its ``maker,model,serial,firmware`` line comes back.
        self.in_step = InStep(link, marker=self._marker, read_reply=self._reply_line)

    def _reply_line(self, timeout_s: float | None = None) -> str:
        return self.link.read_until(TERMINATOR, timeout_s=timeout_s).decode("ascii", "replace").strip()

    @staticmethod
    def _marker(k: int) -> tuple[bytes, Callable[[str], bool]]:
        return b"*IDN?" + TERMINATOR, lambda text: text.count(",") == 3 and text[:1].isalpha()

    # -- low level -------------------------------------------------------------------------
    def write(self, command: str) -> None:
        """Send one command line (no reply expected)."""
        try:
            self._send(command)
        except LinkError as exc:
            raise ChamberLinkError(self.name, command, exc) from exc

    def _send(self, command: str) -> None:
        self.link.write(command.encode("ascii") + TERMINATOR)

    def ask(self, command: str, parse: Callable[[str], T] | None = None) -> T | str:
        """Send a query and return its reply line, stripped, through ``parse`` if given.

        ``parse`` raises :class:`ValueError` on a reply it cannot read; that, a timeout and
        line noise are retried, then raised as typed errors naming the chamber and command.
        """

        def once() -> T | str:
            self._send(command)
            raw = self.link.read_until(TERMINATOR)
            try:
                text = raw.decode("ascii").strip()
            except UnicodeDecodeError:
                raise ChamberReplyError(self.name, command, f"non-ASCII reply {raw!r}") from None
            if parse is None:
                return text
            try:
                return parse(text)
            except ValueError as exc:
                raise ChamberReplyError(self.name, command, f"{exc} (reply {text!r})") from None

        return retried_exchange(self.link, once, attempts=self.query_attempts, reply_error=ChamberReplyError,
                                link_error=lambda exc: ChamberLinkError(self.name, command, exc), in_step=self.in_step)

    def ask_float(self, command: str) -> float:
        return self.ask(command, _parse_number)  # type: ignore[return-value]

    def next_error(self) -> tuple[int, str]:
        """The oldest entry of the controller's error queue (``(0, "No error")`` when empty)."""
        return self.ask("SYST:ERR?", _parse_error)  # type: ignore[return-value]

    def errors(self, *, limit: int = 20) -> list[tuple[int, str]]:
        """Read the error queue until it is empty (at most ``limit`` entries)."""
        out: list[tuple[int, str]] = []
        for _ in range(limit):
            code, message = self.next_error()
            if code == 0:
                break
            out.append((code, message))
        return out

    def command(self, command: str) -> None:
        """Send a set, then check the error queue; a controller error raises."""
        self.write(command)
        errors = self.errors()
        if errors:
            raise ChamberCommandError(self.name, command, errors)

    # -- identification and status ---------------------------------------------------------
    def identify(self) -> str:
        return self.ask("*IDN?")

    def reset(self) -> None:
        """``*RST``: output off (dry purge) and the default setpoint."""
        self.command("*RST")

    def clear_status(self) -> None:
        """``*CLS``: forget errors left on the queue (by another client, or before power-up)."""
        self.write("*CLS")

    # -- HumidityChamber -------------------------------------------------------------------
    def set_rh_setpoint(self, rh_pct: float) -> None:
        command = f"SOUR:HUM:SET {rh_pct:.1f}"
        if not RH_MIN_PCT <= rh_pct <= RH_MAX_PCT:  # also rejects NaN
            raise ChamberRangeError(
                self.name, command, f"setpoint {rh_pct} %RH outside {RH_MIN_PCT:g}-{RH_MAX_PCT:g} %RH"
            )
        self.command(command)

    def rh_setpoint_pct(self) -> float:
        return self.ask_float("SOUR:HUM:SET?")

    def read_rh_pct(self) -> float:
        return self.ask_float("MEAS:HUM?")

    def read_temperature_c(self) -> float:
        return self.ask_float("MEAS:TEMP?")

    def read(self) -> ChamberReading:
        return ChamberReading(
            rh_pct=self.read_rh_pct(),
            temperature_c=self.read_temperature_c(),
            setpoint_rh_pct=self.rh_setpoint_pct(),
        )

    def set_humidifier(self, on: bool) -> None:
        self.command("OUTP ON" if on else "OUTP OFF")

    def humidifier_on(self) -> bool:
        return self.ask("OUTP?", _parse_bool)  # type: ignore[return-value]

    # -- supervision -----------------------------------------------------------------------
    def wait_settled(self, tolerance_rh_pct: float, *, timeout_s: float, poll_s: float = 5.0) -> bool:
        """Poll the RH until it is within ``tolerance_rh_pct`` of the setpoint (or time out).

        Waits go through the driver's clock, so on the twin this costs no real time.
        """
        setpoint = self.rh_setpoint_pct()
        return wait_until(
            self.clock,
            lambda: abs(self.read_rh_pct() - setpoint) <= tolerance_rh_pct,
            timeout_s=timeout_s,
            poll_s=poll_s,
        )

    def close(self) -> None:
        self.link.close()

    def __repr__(self) -> str:
        return f"ScpiHumidityChamber({self.name!r}, {self.link!r})"
