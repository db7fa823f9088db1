"""Vaisala HUMICAP HMT330 temperature / relative-humidity transmitter over its serial user port.

The wire protocol (HMT330 User's Guide M210566EN; the 330-series commands it shares with the
PTB330 and HMT310 guides)
-----------------------------------------------------------------------------------------
* User port 4800 baud, even parity, 7 data bits, 1 stop bit by default (``SERI``).
* Commands are ASCII lines ending in CR, upper or lower case. Replies end in CR LF. With
  ``ECHO ON`` (the default) the transmitter echoes what it receives and prints a ``>``
  prompt after each reply; with ``ECHO OFF`` only the reply lines come back.
* ``SEND [addr]`` -> one reading under the current ``FORM``; the default form prints
  ``RH= 45.2 %RH T= 23.1 'C``. ``R`` starts continuous output every ``INTV``; ``S`` (or ESC)
  stops it. While outputting (``R``, or ``SMODE RUN`` after power-up) only ``S`` is accepted
  and nothing is echoed.
* ``INTV n S|MIN|H`` -> ``Output interval: n S``; ``SMODE STOP|RUN|POLL`` -> ``Serial mode :
  STOP`` (the mode is the one the transmitter starts in after power-up); ``FORM <f>`` ->
  ``OK`` (``FORM /`` restores the default); ``ECHO ON|OFF`` -> ``Echo : OFF``; ``UNIT M|N``
  -> ``Output units : metric`` / ``non metric``; ``?`` -> a block of ``Label : value`` lines.
* An invalid reading (sensor failure) is printed as stars, e.g. ``RH= ***.* %RH``.

The driver brings the transmitter to a known state on :meth:`connect` (output stopped, echo
off, STOP mode, metric units, default form) even if it was streaming, and reads it with
``SEND``. On a multi-drop bus in POLL mode give ``address``: the driver then only sends
``SEND <addr>`` and leaves the transmitter's configuration alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

from castrig.clock import Clock, WallClock
from castrig.devices.roles import DeviceCommsError, DeviceError, HumidityReading, HumiditySensor
from castrig.devices.exchange import InStep, resync, retried_after, retried_exchange
from castrig.devices.identity import watch_identity
from castrig.links import Link, LinkError, LinkTimeout

T = TypeVar("T")

TERMINATOR = b"\r\n"
BAUDRATE = 4800
PARITY = "E"
BYTESIZE = 7
STOPBITS = 1

INTERVAL_UNITS = ("S", "MIN", "H")
SERIAL_MODES = ("STOP", "RUN", "POLL")

_VALUE = r"([-+]?\d+(?:\.\d*)?|[-+]?\*+(?:\.\*+)?)"
_RH = re.compile(r"(?<![A-Za-z])RH\s*=\s*" + _VALUE, re.IGNORECASE)
_T = re.compile(r"(?<![A-Za-z])(?:T|Ta|Temp)\s*=\s*" + _VALUE + r"\s*(?:'|°|deg)?\s*([CF])?", re.IGNORECASE)
#: The default FORM's line exactly (``RH= 45.2 %RH T= 23.1 'C``): read with one match, giving
#: what the two searches of :func:`parse_reading` give for it.
_DEFAULT_READING = re.compile(r"RH=\s*(-?\d+\.\d+) %RH T=\s*(-?\d+\.\d+) '([CF])")
#: _DEFAULT_READING on the reply's bytes as they come, CR LF included, in degC, nothing around it:
#: a line this matches gives parse_reading's numbers (ASCII digits and blanks only).
_DEFAULT_READING_LINE = re.compile(rb"RH=[ \t]*(-?[0-9]+\.[0-9]+) %RH T=[ \t]*(-?[0-9]+\.[0-9]+) 'C\r\n")
_ERROR_REPLIES = ("unknown command", "invalid", "error", "not allowed")


# -- errors ----------------------------------------------------------------------------------
class HMT330Error(DeviceError):
    """Base of every error this driver raises."""


class HMT330CommandError(HMT330Error):
    """The transmitter refused a command (``Unknown command``, an invalid parameter)."""


class HMT330SensorError(HMT330Error):
    """The transmitter reports an invalid reading (stars instead of a number)."""


class HMT330ReplyError(HMT330Error, DeviceCommsError):
    """A reply that does not parse (line noise, a FORM without RH or T)."""


class HMT330RangeError(HMT330Error, ValueError):
    """An argument outside what the transmitter accepts; caught before anything is sent."""


class HMT330LinkError(HMT330Error, DeviceCommsError):
    """The link failed (timeout, closed, garbage); ``cause`` is the :class:`LinkError`."""

    def __init__(self, device: str, command: str, cause: LinkError):
        self.cause = cause
        super().__init__(device, command, f"{type(cause).__name__}: {cause}")


@lru_cache(maxsize=64)
def _wire(command: str) -> bytes:
    """A command's bytes on the wire (a reading's ``SEND`` every control period: encoded once)."""
    return command.encode("ascii") + b"\r"


# -- parsing ---------------------------------------------------------------------------------
def parse_reading(line: str) -> tuple[float, float, str]:
    """``RH= 45.2 %RH T= 23.1 'C`` (any FORM with ``RH=`` and ``T=`` labels) -> (rh, t, unit).

    ``unit`` is ``"C"`` or ``"F"`` (``"C"`` when the form prints no unit). Raises
    :class:`ValueError` when a label is missing, :class:`ArithmeticError` for a starred value.
    """
    text = line.strip().lstrip(">").strip()
    m = _DEFAULT_READING.fullmatch(text)
    if m:
        return float(m.group(1)), float(m.group(2)), m.group(3)
    m_rh = _RH.search(text)
    m_t = _T.search(text)
    if not m_rh or not m_t:
        raise ValueError(f"no RH= and T= in {text!r}")
    if "*" in m_rh.group(1) or "*" in m_t.group(1):
        raise ArithmeticError(f"invalid reading {text!r}")
    unit = (m_t.group(2) or "C").upper()
    return float(m_rh.group(1)), float(m_t.group(1)), unit


def parse_info(lines: list[str]) -> dict[str, str]:
    """The ``?`` block -> ``{label: value}``; a first line without a colon is ``"model"``."""
    info: dict[str, str] = {}
    for raw in lines:
        line = raw.strip().lstrip(">").strip()
        if not line:
            continue
        label, sep, value = line.partition(":")
        if not sep:
            info.setdefault("model", line)
            continue
        info[label.strip()] = value.strip()
    return info


def _f_to_c(value_f: float) -> float:
    return (value_f - 32.0) * 5.0 / 9.0


# -- the driver ------------------------------------------------------------------------------
class HMT330(HumiditySensor):
    """One HMT330 on a link (4800 E 7 1 unless the profile says otherwise).

    Readings are retried ``query_attempts`` times on a timeout or garbled line; every failure
    is an :class:`HMT330Error` naming the transmitter and the command.
    """

    def __init__(
        self,
        link: Link,
        *,
        name: str,
        address: int | None = None,
        clock: Clock | None = None,
        connect: bool = True,
        query_attempts: int = 3,
        quiet_s: float = 0.3,
    ):
        if address is not None and not 0 <= address <= 99:
            raise ValueError(f"{name}: address must be 0-99, got {address}")
        self.link = link
        self.name = name
        self.address = address
        self.clock = clock or WallClock()
        self.query_attempts = query_attempts
        #: Silence that marks the end of a multi-line reply or of stray output.
        self.quiet_s = quiet_s
        self.metric = True
        self.streaming = False
        #: After a timeout or a stray reply the next query first drops late replies and sends
        #: ``SMODE`` (a query that changes nothing) until its ``Serial mode : ...`` comes back.
        #: On a POLL bus (``address``) nothing may be sent unaddressed: the line is let go quiet.
        self.in_step = InStep(link, marker=None if address is not None else self._marker,
                              read_reply=self._reply_line, quiet_s=max(0.1, quiet_s), idle=b">\r\n \t")
        if connect:
            self.connect()
            #: What this transmitter said it is as the rig opened, confirmed after every reopen
            #: of its link (a reused pty, a renumbered adapter: castrig.devices.identity)
            self.identity_seen = watch_identity(link, name, self.identity) if address is None else None

    def identity(self) -> str:
        """The transmitter's serial number (``?``): what tells two HMT330s apart when neither has
        an address (a POLL bus's addresses do already)."""
        info = self.info()
        serial = info.get("Serial number") or info.get("Serial no")
        if not serial:
            raise HMT330ReplyError(self.name, "?", "no 'Serial number' line in its reply")
        return f"HMT330 serial number {serial}"

    # -- low level ---------------------------------------------------------------------------
    def _write(self, command: str) -> None:
        try:
            self.link.write(command.encode("ascii") + b"\r")
        except LinkError as exc:
            raise HMT330LinkError(self.name, command, exc) from exc

    def _read_line(self, command: str, *, timeout_s: float | None = None, first: bytes | None = None) -> str:
        """The next non-empty line that is not the echo of ``command`` (``first``: the first line,
        already read off the link)."""
        for _ in range(4):
            if first is None:
                raw = self.link.read_until(TERMINATOR, timeout_s=timeout_s)
            else:
                raw, first = first, None
            try:
                text = raw.decode("ascii").strip()
            except UnicodeDecodeError:
                raise HMT330ReplyError(self.name, command, f"non-ASCII reply {raw!r}") from None
            text = text.lstrip(">").strip()
            if text and text.upper() != command.upper():
                return text
        raise HMT330ReplyError(self.name, command, "only echoes and empty lines came back")

    def _reply_line(self, timeout_s: float | None = None) -> str:
        raw = self.link.read_until(TERMINATOR, timeout_s=timeout_s)
        return raw.decode("ascii", "replace").strip().lstrip(">").strip()

    @staticmethod
    def _marker(k: int) -> tuple[bytes, Callable[[str], bool]]:
        return b"SMODE\r", lambda text: text.partition(":")[0].strip().lower() == "serial mode"

    def _drain(self, command: str) -> None:
        """Read and drop whatever the transmitter still sends until ``quiet_s`` of silence, for
        at most :meth:`_drain_max_s`: a line that never goes quiet is no HMT330 in STOP mode."""
        budget_s = self._drain_max_s()
        try:
            if not self.link.went_quiet(self.quiet_s, max_s=budget_s):
                raise LinkError(self.link.resource, f"the line never went quiet: input kept coming for {budget_s:g} s "
                                f"(allowed: {self.quiet_s:g} s of silence once told to stop; a device that streams "
                                "without end, or another device on this port?)")
        except LinkError as exc:
            raise HMT330LinkError(self.name, command, exc) from exc

    def _drain_max_s(self) -> float:
        """The longest a drain waits for silence: the rest of a line being sent when ``S`` came
        takes a fraction of a second at 4800 baud; the link's timeout if that is longer."""
        return max(self.link.timeout_s, 5 * self.quiet_s)

    def _resync(self) -> None:
        resync(self.link)

    def _query(self, command: str, parse: Callable[[str], T], *, attempts: int = 1) -> T:
        """Send ``command``, read one reply line, map refusals, parse it."""
        if attempts >= 1 and not self.in_step.suspect_now():
            # The usual exchange: retried_exchange's first try, inline (see retried_after)
            try:
                return self._once(command, parse)
            except BaseException as exc:  # noqa: BLE001 - handled as retried_exchange would
                first = exc
            return retried_after(first, self.link, lambda: self._once(command, parse), attempts=attempts,
                                 reply_error=HMT330ReplyError, in_step=self.in_step,
                                 link_error=lambda e: HMT330LinkError(self.name, command, e))
        return retried_exchange(self.link, lambda: self._once(command, parse), attempts=attempts,
                                reply_error=HMT330ReplyError, in_step=self.in_step,
                                link_error=lambda exc: HMT330LinkError(self.name, command, exc))

    def _once(self, command: str, parse: Callable[[str], T]) -> T:
        """One try of :meth:`_query`."""
        self.link.write(_wire(command))
        return self._reply(command, parse)

    def _reply(self, command: str, parse: Callable[[str], T], first: bytes | None = None) -> T:
        """The rest of :meth:`_once` once the command is sent (``first``: the reply's first line,
        already read)."""
        text = self._read_line(command, first=first)
        if text.lower().startswith(_ERROR_REPLIES):
            raise HMT330CommandError(self.name, command, f"refused: {text!r}")
        try:
            return parse(text)
        except ValueError as exc:
            raise HMT330ReplyError(self.name, command, str(exc)) from None

    def _setting(self, command: str, label: str, expected: str | None = None) -> str:
        """A ``Label : value`` reply to a setting command; returns the value."""

        def parse(text: str) -> str:
            got_label, sep, value = text.partition(":")
            if not sep or got_label.strip().lower() != label.lower():
                raise ValueError(f"expected '{label} : ...', got {text!r}")
            value = value.strip()
            if expected is not None and value.upper() != expected.upper():
                raise ValueError(f"{label} is {value!r}, expected {expected!r}")
            return value

        return self._query(command, parse)

    # -- state -------------------------------------------------------------------------------
    def connect(self) -> None:
        """Bring the transmitter to a known state, even if it was streaming.

        ``S`` (after a CR that clears a half-typed line) stops continuous output; what is
        still on the wire is drained; then echo off, STOP mode, metric units, default form.
        With an ``address`` (a POLL-mode bus) only stray input is drained.
        """
        if self.address is not None:
            self._drain("connect")
            self._resync()
            return
        self._write("\rS")
        self._drain("S")
        self._write("ECHO OFF")
        self._drain("ECHO OFF")
        self._resync()
        self.set_serial_mode("STOP")
        self.set_metric(True)
        self.set_form("/")
        self.streaming = False

    def set_serial_mode(self, mode: str) -> None:
        """``SMODE``: the mode the transmitter starts in after power-up."""
        mode = mode.upper()
        if mode not in SERIAL_MODES:
            raise HMT330RangeError(self.name, f"SMODE {mode}", f"mode must be one of {SERIAL_MODES}")
        self._setting(f"SMODE {mode}", "Serial mode", mode)

    def serial_mode(self) -> str:
        return self._setting("SMODE", "Serial mode").upper()

    def set_echo(self, on: bool) -> None:
        """``ECHO ON|OFF``; the driver skips echoes and prompts either way."""
        state = "ON" if on else "OFF"
        self._setting(f"ECHO {state}", "Echo", state)

    def set_metric(self, metric: bool) -> None:
        """``UNIT M|N``; readings are returned in degC either way."""
        command = "UNIT M" if metric else "UNIT N"
        self._setting(command, "Output units", "metric" if metric else "non metric")
        self.metric = metric

    def set_form(self, form: str) -> None:
        """``FORM <format>`` (``/`` for the default); the transmitter answers ``OK``."""

        def parse(text: str) -> None:
            if text.upper() != "OK":
                raise ValueError(f"expected OK, got {text!r}")

        self._query(f"FORM {form}", parse)

    def set_interval(self, interval: int, unit: str = "S") -> None:
        """``INTV n S|MIN|H``: the output interval of ``R`` / RUN mode (0-255)."""
        unit = unit.upper()
        command = f"INTV {interval} {unit}"
        if unit not in INTERVAL_UNITS or not 0 <= interval <= 255:
            raise HMT330RangeError(self.name, command, f"interval 0-255 in {INTERVAL_UNITS}")
        self._setting(command, "Output interval", f"{interval} {unit}")

    def info(self) -> dict[str, str]:
        """``?``: the transmitter's settings as ``{label: value}`` (lines until ``quiet_s``)."""
        command = "?"
        try:
            self.link.write(b"?\r")
            lines = [self._read_line(command)]
            for _ in range(100):
                try:
                    lines.append(self.link.read_until(TERMINATOR, timeout_s=self.quiet_s).decode("ascii", "replace"))
                except LinkTimeout:
                    break
        except LinkError as exc:
            self._resync()
            raise HMT330LinkError(self.name, command, exc) from exc
        if lines[0].lower().startswith(_ERROR_REPLIES):
            raise HMT330CommandError(self.name, command, f"refused: {lines[0]!r}")
        return parse_info(lines)

    # -- readings ----------------------------------------------------------------------------
    def _reading(self, command: str, text: str) -> HumidityReading:
        try:
            rh, t, unit = parse_reading(text)
        except ArithmeticError:
            raise HMT330SensorError(self.name, command, f"invalid reading {text!r} (sensor fault)") from None
        return HumidityReading(rh_pct=rh, temperature_c=_f_to_c(t) if unit == "F" else t)

    def read(self) -> HumidityReading:
        """``SEND`` (``SEND <addr>`` on a POLL bus): one reading, in %RH and degC."""
        if self.address is None and self.query_attempts >= 1 and not self.in_step.suspect_now():
            # The usual reading (every control period), as _query's inline first try makes it:
            # the same bytes and reads; a reply in the default form, in degC, alone on its line,
            # is taken as _read_line and parse_reading take it (one match on the bytes), any
            # other reply goes the general way from the line already read.
            link = self.link
            try:
                link.write(b"SEND\r")
                raw = link.read_until(TERMINATOR)
                m = _DEFAULT_READING_LINE.fullmatch(raw)
                if m is not None:  # (rh_pct, temperature_c: positional, keywords cost a frozen dataclass more)
                    return HumidityReading(float(m[1]), float(m[2]))
                return self._reply("SEND", lambda text: self._reading("SEND", text), raw)
            except BaseException as exc:  # noqa: BLE001 - handled as _query's retries would
                first = exc
            return retried_after(first, link, lambda: self._once("SEND", lambda text: self._reading("SEND", text)),
                                 attempts=self.query_attempts, reply_error=HMT330ReplyError, in_step=self.in_step,
                                 link_error=lambda e: HMT330LinkError(self.name, "SEND", e))
        command = "SEND" if self.address is None else f"SEND {self.address}"
        return self._query(command, lambda text: self._reading(command, text), attempts=self.query_attempts)

    def start_streaming(self, interval_s: int = 1) -> None:
        """``INTV n S`` then ``R``: readings arrive every ``interval_s``; see :meth:`read_streamed`."""
        self.set_interval(interval_s, "S")
        self._write("R")
        self.streaming = True

    def read_streamed(self, *, timeout_s: float | None = None) -> HumidityReading:
        """The next reading the transmitter sends on its own (``R`` or RUN mode)."""
        command = "<stream>"
        for _ in range(3):
            try:
                text = self._read_line("R", timeout_s=timeout_s)
            except LinkError as exc:
                raise HMT330LinkError(self.name, command, exc) from exc
            try:
                return self._reading(command, text)
            except ValueError:
                continue  # a line cut when the stream started, or noise: take the next
        raise HMT330ReplyError(self.name, command, "no streamed line parses")

    def stop_streaming(self) -> None:
        """``S``, then drain what is still on the wire."""
        self._write("S")
        self._drain("S")
        self._resync()
        self.streaming = False

    def close(self) -> None:
        self.link.close()

    def __repr__(self) -> str:
        return f"HMT330({self.name!r}, {self.link!r})"
