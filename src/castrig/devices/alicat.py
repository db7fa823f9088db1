"""Alicat mass-flow controller over the Alicat ASCII serial protocol (dry and wet air lines).

The wire protocol (Alicat *Serial Communications Primer*, Rev. 2, Feb 2023; MC-series manuals)
------------------------------------------------------------------------------------------
* 19200 8N1 by default. Every command is ``<unit id><command>\\r``; the unit id is a letter
  ``A``-``Z`` and is not case sensitive. Every reply is one line ending in ``\\r`` (no LF).
* Poll: ``A\\r`` -> the data frame ``A +014.70 +025.00 +016.67 +015.44 +015.44 N2``: unit id,
  absolute pressure (psia), flow temperature (degC), volumetric flow, mass flow, setpoint, gas.
  Numbers carry a sign and are zero padded to 7 characters (``+000.00``). Newer firmware may
  add columns (totalizer, valve drive) between the setpoint and the gas; status codes
  ``ADC EXH HLD LCK MOV OPL OVR POV TMF TOV VOV`` follow the gas. A unit in streaming mode
  (unit id ``@``, entered with ``A@=@``, left with ``@@=A``) prints frames without its id.
* Setpoint: legacy ``AS<v>`` (no space), answered with a data frame; modern (9v00+)
  ``ALS <v>`` / ``ALS`` answered ``A <current> <requested> <unit code> <unit label>``, e.g.
  ``A +001.50 +001.50 7 SLPM``.
* Gas: legacy ``AG<n>`` (data frame), modern (10v05+) ``AGS <n>`` -> ``A 8 N2 Nitrogen``; or
  register 46 (``A$$W46=<n>``; the low 9 bits are the gas number).
* Registers: ``AR<n>`` -> ``A   <nnn> = <v>`` (three spaces, number zero padded to 3 digits),
  ``AW<n>=<v>`` -> the same line with the new value; also written ``A$$R<n>`` / ``A$$W<n>=<v>``.
  Register 122 is the control point (37 = mass flow), 91 the streaming interval in ms.
* Valve hold ``AHP`` (hold position) / ``AHC`` (hold closed) / ``AC`` (cancel); display lock
  ``AL`` / ``AU`` (or ``A$$L`` / ``A$$U``). These answer with a data frame.
* A command the unit rejects is answered ``?`` (older firmware) or ``A ?``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from castrig.clock import Clock, WallClock
from castrig.devices.roles import DeviceCommsError, DeviceError, FlowController, FlowReading
from castrig.devices.exchange import InStep, retried_after, retried_exchange
from castrig.links import Link, LinkError, LinkTimeout
from castrig.memo import MISSING, remember

T = TypeVar("T")

TERMINATOR = b"\r"
BAUDRATE = 19200

#: Status codes a data frame may carry after the gas (Serial Primer, "Status/Error Codes").
STATUS_CODES = frozenset({"ADC", "EXH", "HLD", "LCK", "MOV", "OPL", "OVR", "POV", "TMF", "TOV", "VOV"})

#: Gas numbers of the standard Gas Select table (the first entries; the same in all firmware).
GAS_NUMBERS: dict[str, int] = {
    "Air": 0, "Ar": 1, "CH4": 2, "CO": 3, "CO2": 4, "C2H6": 5, "H2": 6, "He": 7, "N2": 8,
    "N2O": 9, "Ne": 10, "O2": 11, "C3H8": 12, "n-C4H10": 13, "C2H2": 14, "C2H4": 15,
    "i-C4H10": 16, "Kr": 17, "Xe": 18, "SF6": 19,
}

REGISTER_GAS = 46
REGISTER_STREAM_INTERVAL_MS = 91
REGISTER_CONTROL_POINT = 122
GAS_REGISTER_MASK = 0x1FF
#: Registers read, in turn, to confirm the replies line up after a timeout (:class:`InStep`):
#: the reply names its register, so a late reply to an earlier marker is never taken for it.
#: Reading a register changes nothing; none of these is read by the driver otherwise.
MARKER_REGISTERS = tuple(range(1, 17))

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)$")
#: An ``ALS`` reply as the unit sends it (single blanks, CR): id, current, requested, unit code and
#: label. A line this matches passes _setpoint_tokens' checks when the id is the unit's.
_SETPOINT_REPLY = re.compile(rb"([A-Za-z@]) [+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+) ([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)) "
                             rb"[0-9]+ [!-~]+\r")
#: A data frame as a unit polled by its id sends it: id, the five numbers (as _NUMBER takes them), the
#: gas (which no number or status code is), nothing after it. A line this matches, with the unit's
#: id, parses in parse_frame to exactly these fields.
_FRAME_NUMBER = rb"([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))"
_PLAIN_FRAME = re.compile(rb"([A-Za-z@]) " + rb" ".join([_FRAME_NUMBER] * 5) + rb" +([A-Za-z][!-~]*)\r")
_STATUS_BYTES = frozenset(code.encode("ascii") for code in STATUS_CODES)
#: Memos (castrig.memo) of the RH loop's setpoints: a command's text per (setpoint, unit id, form),
#: and an ``ALS`` reply's (id, requested setpoint) per reply line, ``None`` for a line
#: _SETPOINT_REPLY does not match. 0.0 is not kept (it and -0.0 are one key but two texts).
_SETPOINT_COMMANDS: dict[tuple[float, str, bool], tuple[str, str]] = {}
_SETPOINT_ECHOES: dict[bytes, tuple[bytes, float] | None] = {}
#: Mass flows a unit shows without ``MOV``, as shares of its full scale: up to the over-range
#: limit, and down to a little below zero (a zero that drifted, a back-flow transient).
OVER_RANGE_SHARE = 1.3
NEGATIVE_FLOW_SHARE = 0.05
_REGISTER_REPLY = re.compile(r"^([A-Za-z@])\s+(\d+)\s*=\s*([+-]?\d+)$")


# -- errors ----------------------------------------------------------------------------------
class AlicatError(DeviceError):
    """Base of every error this driver raises."""


class AlicatRejected(AlicatError):
    """The unit answered ``?`` / ``A ?``: command not understood or not allowed."""


class AlicatRangeError(AlicatError, ValueError):
    """A value outside what the unit accepts; caught before anything is sent."""


class AlicatReplyError(AlicatError, DeviceCommsError):
    """A reply that does not parse (line noise, another unit answering, wrong firmware)."""


class AlicatSetpointNotTaken(AlicatError, DeviceCommsError):
    """The echoed setpoint is not the one sent: a reply mangled on the line as often as a unit
    refusing, so the caller may send it again (the runner does, within ``comms_lost_s``)."""


class AlicatLinkError(AlicatError, DeviceCommsError):
    """The link failed (timeout, closed, garbage); ``cause`` is the :class:`LinkError`."""

    def __init__(self, device: str, command: str, cause: LinkError):
        self.cause = cause
        super().__init__(device, command, f"{type(cause).__name__}: {cause}")


# -- replies ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class AlicatReading(FlowReading):
    """A data frame: the role's :class:`FlowReading` plus what the frame says beyond it.

    ``unit_id`` is ``None`` for a frame streamed without its id; ``extra`` holds the columns
    newer firmware puts between the setpoint and the gas (totalizer, valve drive), in order.
    """

    unit_id: str | None = None
    extra: tuple[float, ...] = field(default=())


@dataclass(frozen=True)
class SetpointReply:
    """The ``ALS`` reply: what the controller is using now and what was last requested."""

    current: float
    requested: float
    unit_code: int
    unit_label: str


@dataclass(frozen=True)
class GasReply:
    """The ``AGS`` reply: gas number, short name, long name."""

    number: int
    short_name: str
    long_name: str


def _is_number(token: str) -> bool:
    return bool(_NUMBER.match(token))


def parse_frame(line: str, *, unit_id: str | None = None) -> AlicatReading:
    """Parse one data frame; tolerant of extra columns, status codes and a missing unit id.

    Raises :class:`ValueError` when the line is not a controller's data frame (fewer than five
    numbers, no gas, a different unit's id).
    """
    tokens = line.split()
    if not tokens:
        raise ValueError("empty line")
    frame_id: str | None = None
    if not _is_number(tokens[0]):
        frame_id = tokens[0]
        if len(frame_id) != 1 or not (frame_id.isalpha() or frame_id == "@"):
            raise ValueError(f"no unit id in {line!r}")
        tokens = tokens[1:]
    if unit_id is not None and (frame_id is None or frame_id.upper() != unit_id.upper()):
        # A polled unit answers with its id. A frame without one (or with ``@``) is a streaming
        # unit's: on a shared line, another unit's data taken for this one's.
        raise ValueError(f"frame from unit {frame_id!r}, expected {unit_id!r}" if frame_id is not None
                         else f"frame without a unit id (a streaming unit's), expected {unit_id!r}")
    numbers: list[float] = []
    i = 0
    is_number = _NUMBER.match  # _is_number without a call per token (a frame has a dozen)
    while i < len(tokens) and is_number(tokens[i]):
        numbers.append(float(tokens[i]))
        i += 1
    if len(numbers) < 5:
        raise ValueError(f"{len(numbers)} numbers where a controller frame has at least 5 in {line!r}")
    if i >= len(tokens):
        raise ValueError(f"no gas in {line!r}")
    gas = tokens[i]
    if gas.upper() in STATUS_CODES:
        raise ValueError(f"status code {gas!r} where the gas belongs in {line!r}")
    status = tuple(t.upper() for t in tokens[i + 1 :])
    unknown = [s for s in status if s not in STATUS_CODES]
    if unknown:
        raise ValueError(f"unknown status code(s) {unknown} in {line!r}")
    pressure, temperature, volumetric, mass, setpoint = numbers[:5]
    return AlicatReading(
        pressure_psia=pressure,
        temperature_c=temperature,
        volumetric_flow_lpm=volumetric,
        mass_flow_slpm=mass,
        setpoint_slpm=setpoint,
        gas=gas,
        status=status,
        unit_id=frame_id,
        extra=tuple(numbers[5:]),
    )


def parse_setpoint_reply(line: str, *, unit_id: str) -> SetpointReply:
    tokens = _setpoint_tokens(line, unit_id)
    return SetpointReply(float(tokens[1]), float(tokens[2]), int(tokens[3]), tokens[4])


def _setpoint_tokens(line: str, unit_id: str) -> list[str]:
    """The five fields of an ``ALS`` reply, checked (what :func:`parse_setpoint_reply` reads)."""
    tokens = line.split()
    if len(tokens) != 5 or tokens[0].upper() != unit_id.upper():
        raise ValueError(f"expected '<id> <current> <requested> <code> <label>', got {line!r}")
    if not (_NUMBER.match(tokens[1]) and _NUMBER.match(tokens[2]) and tokens[3].isdigit()):
        raise ValueError(f"expected numbers in {line!r}")
    return tokens


def _requested_setpoint(line: str, unit_id: str) -> float:
    """``parse_setpoint_reply(line, unit_id=unit_id).requested``, without building the reply
    (the fields it checks are checked alike; the reply line is ASCII, so its code converts)."""
    return float(_setpoint_tokens(line, unit_id)[2])


def parse_gas_reply(line: str, *, unit_id: str) -> GasReply:
    tokens = line.split(maxsplit=3)
    if len(tokens) < 3 or tokens[0].upper() != unit_id.upper() or not tokens[1].isdigit():
        raise ValueError(f"expected '<id> <number> <short> <long>', got {line!r}")
    return GasReply(int(tokens[1]), tokens[2], tokens[3] if len(tokens) > 3 else tokens[2])


def parse_register_reply(line: str, *, unit_id: str) -> tuple[int, int]:
    m = _REGISTER_REPLY.match(line.strip())
    if not m or m.group(1).upper() != unit_id.upper():
        raise ValueError(f"expected '<id>   <register> = <value>', got {line!r}")
    return int(m.group(2)), int(m.group(3))


# -- the driver ------------------------------------------------------------------------------
class AlicatMFC(FlowController):
    """One Alicat mass-flow controller (MC series) on a link, possibly shared by several units.

    ``setpoint_form`` picks the command set: ``"modern"`` (firmware 9v00+, ``ALS``/``AGS``)
    or ``"legacy"`` (``AS``/``AG``, answered with data frames). Polls and other queries are
    retried ``poll_attempts`` times on a timeout or garbled reply (they are harmless to
    repeat); a setpoint is re-sent only by the caller. Every failure is an :class:`AlicatError`
    naming this controller and the command.
    """

    def __init__(
        self,
        link: Link,
        *,
        name: str,
        unit_id: str = "A",
        full_scale_slpm: float,
        clock: Clock | None = None,
        setpoint_form: str = "modern",
        poll_attempts: int = 3,
        setpoint_tolerance_slpm: float | None = None,
    ):
        if len(unit_id) != 1 or not unit_id.isalpha():
            raise ValueError(f"{name}: unit id must be one letter A-Z, got {unit_id!r}")
        if setpoint_form not in ("modern", "legacy"):
            raise ValueError(f"{name}: setpoint_form must be 'modern' or 'legacy', got {setpoint_form!r}")
        if not full_scale_slpm > 0:
            raise ValueError(f"{name}: full_scale_slpm must be positive, got {full_scale_slpm!r}")
        self.link = link
        self.name = name
        self.unit_id = unit_id.upper()
        self.full_scale_slpm = float(full_scale_slpm)
        self.clock = clock or WallClock()
        self.setpoint_form = setpoint_form
        self.poll_attempts = poll_attempts
        #: How far the echoed setpoint may differ from the request (the unit rounds it).
        self.setpoint_tolerance_slpm = (
            setpoint_tolerance_slpm if setpoint_tolerance_slpm is not None else max(0.01, 0.002 * full_scale_slpm)
        )
        #: After a timeout or a reply that is not the command's, the next exchange first
        #: drops late replies and reads a marker register until its own reply comes back.
        self.in_step = InStep(link, marker=self._marker, read_reply=self._read_line, unique=True)

    def _read_line(self, timeout_s: float | None = None) -> str:
        return self.link.read_until(TERMINATOR, timeout_s=timeout_s).decode("ascii", "replace").strip()

    def _marker(self, k: int) -> tuple[bytes, Callable[[str], bool]]:
        register = MARKER_REGISTERS[k % len(MARKER_REGISTERS)]

        def is_marker(text: str) -> bool:
            try:
                return parse_register_reply(text, unit_id=self.unit_id)[0] == register
            except ValueError:
                return False

        return f"{self.unit_id}R{register}".encode("ascii") + TERMINATOR, is_marker

    # -- low level ---------------------------------------------------------------------------
    def _exchange(
        self,
        command: str,
        parse: Callable[[str], T],
        *,
        attempts: int = 1,
        timeout_s: float | None = None,
    ) -> T:
        """Send ``<id><command>\\r``, read one CR-terminated line, reject ``?``, parse it."""
        full = f"{self.unit_id}{command}"
        if attempts >= 1 and not self.in_step.suspect_now():
            # The usual exchange: retried_exchange's first try, inline (see retried_after)
            try:
                return self._once(full, parse, timeout_s)
            except BaseException as exc:  # noqa: BLE001 - handled as retried_exchange would
                first = exc
            return retried_after(first, self.link, lambda: self._once(full, parse, timeout_s), attempts=attempts,
                                 reply_error=AlicatReplyError, in_step=self.in_step,
                                 link_error=lambda e: AlicatLinkError(self.name, full, e))
        return retried_exchange(self.link, lambda: self._once(full, parse, timeout_s), attempts=attempts,
                                reply_error=AlicatReplyError, in_step=self.in_step,
                                link_error=lambda exc: AlicatLinkError(self.name, full, exc))

    def _once(self, full: str, parse: Callable[[str], T], timeout_s: float | None) -> T:
        """One try of :meth:`_exchange` (``full``: the command with the unit id)."""
        self.link.write(full.encode("ascii") + TERMINATOR)
        return self._reply(full, parse, self.link.read_until(TERMINATOR, timeout_s=timeout_s))

    def _reply(self, full: str, parse: Callable[[str], T], raw: bytes) -> T:
        """The rest of :meth:`_once` once the reply line ``raw`` is read."""
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise AlicatReplyError(self.name, full, f"non-ASCII reply {raw!r}") from None
        if self._rejection(text):
            raise AlicatRejected(self.name, full, f"rejected by the unit (reply {text!r})")
        try:
            return parse(text)
        except ValueError as exc:
            raise AlicatReplyError(self.name, full, f"{exc}") from None

    def _rejection(self, text: str) -> bool:
        """``?`` or ``A ?``: the unit did not understand or would not do the command."""
        return text == "?" or (text.endswith("?") and text[:-1].strip().upper() == self.unit_id)

    def _frame(self, text: str) -> AlicatReading:
        reading = parse_frame(text, unit_id=self.unit_id)
        if not self._possible(reading):
            raise ValueError(f"a flow or setpoint this {self.full_scale_slpm:g} slpm controller cannot show in {text!r} "
                             "(a garbled line; if every reply says so, is the profile's full_scale_slpm the unit's?)")
        return reading

    def _possible(self, reading: AlicatReading) -> bool:
        """Whether a frame's mass flow and setpoint are ones this controller can show. The ASCII
        protocol has no checksum: one flipped bit made ``+001.04`` read ``+801.04`` on a 5 slpm
        unit, a dropped byte ``+00104``. A unit shows flow beyond its range with ``MOV``, and
        refuses setpoints beyond its full scale."""
        fs = self.full_scale_slpm
        flow_ok = "MOV" in reading.status or -NEGATIVE_FLOW_SHARE * fs <= reading.mass_flow_slpm <= OVER_RANGE_SHARE * fs
        return flow_ok and -self.setpoint_tolerance_slpm <= reading.setpoint_slpm <= fs + self.setpoint_tolerance_slpm

    def _check_setpoint(self, flow_slpm: float, command: str) -> None:
        if not (0.0 <= flow_slpm <= self.full_scale_slpm):  # also rejects NaN
            raise AlicatRangeError(
                self.name, command, f"setpoint {flow_slpm} SLPM outside 0-{self.full_scale_slpm:g} SLPM"
            )

    @staticmethod
    def _format_value(value: float) -> str:
        return f"{value:.3f}"

    # -- FlowController ----------------------------------------------------------------------
    def read(self) -> AlicatReading:
        """Poll the data frame (retried on timeouts and garbled lines)."""
        if self.poll_attempts >= 1 and not self.in_step.suspect_now():
            # The usual poll (every sample): _exchange's inline first try, the same bytes and
            # read; a frame of the usual form (the unit's id, the five numbers, the gas, no
            # status codes or extra columns) is read with one match on its bytes, taking what
            # parse_frame takes from it; any other reply goes the general way from the line read.
            full = self.unit_id
            link = self.link
            try:
                link.write(full.encode("ascii") + TERMINATOR)
                raw = link.read_until(TERMINATOR)
                m = _PLAIN_FRAME.fullmatch(raw)
                if m is not None and m[1] == full.encode("ascii") and m[7].upper() not in _STATUS_BYTES:
                    # (pressure_psia, temperature_c, volumetric_flow_lpm, mass_flow_slpm, setpoint_slpm,
                    # gas, status, unit_id, extra: positional, keywords cost a frozen dataclass more)
                    reading = AlicatReading(float(m[2]), float(m[3]), float(m[4]), float(m[5]), float(m[6]),
                                            m[7].decode("ascii"), (), full, ())
                    if self._possible(reading):
                        return reading
                return self._reply(full, self._frame, raw)
            except BaseException as exc:  # noqa: BLE001 - handled as _exchange's retries would
                first = exc
            return retried_after(first, link, lambda: self._once(full, self._frame, None), attempts=self.poll_attempts,
                                 reply_error=AlicatReplyError, in_step=self.in_step,
                                 link_error=lambda e: AlicatLinkError(self.name, full, e))
        return self._exchange("", self._frame, attempts=self.poll_attempts)

    def set_flow_slpm(self, flow_slpm: float) -> None:
        """Set the mass-flow setpoint; the echoed setpoint is checked against the request."""
        modern = self.setpoint_form == "modern"
        key = (flow_slpm, self.unit_id, modern)
        texts = _SETPOINT_COMMANDS.get(key) if flow_slpm != 0.0 else None
        if texts is None:
            value = self._format_value(flow_slpm) if math.isfinite(flow_slpm) else str(flow_slpm)
            command = f"LS {value}" if modern else f"S{value}"
            texts = (command, f"{self.unit_id}{command}")
            if flow_slpm != 0.0:
                remember(_SETPOINT_COMMANDS, key, texts)
        command, full = texts
        if not (0.0 <= flow_slpm <= self.full_scale_slpm):  # (the command text only when refused)
            self._check_setpoint(flow_slpm, full)
        if modern and not self.in_step.suspect_now():
            # The usual setpoint (the RH loop's, every control period): _exchange's inline first
            # try, the same bytes and read; a reply of the usual form (single blanks, the unit id
            # as sent, ASCII) is read with one match on its bytes (once per distinct reply: the
            # memo), taking what _requested_setpoint takes; any other reply goes the general way
            # from the line already read.
            link = self.link
            parse = lambda t: _requested_setpoint(t, self.unit_id)  # noqa: E731
            first: BaseException | None = None
            try:
                link.write(full.encode("ascii") + TERMINATOR)
                raw = link.read_until(TERMINATOR)
                echo = _SETPOINT_ECHOES.get(raw, MISSING)
                if echo is MISSING:
                    m = _SETPOINT_REPLY.fullmatch(raw)
                    echo = remember(_SETPOINT_ECHOES, raw, None if m is None else (m[1], float(m[2])))
                if echo is not None and echo[0] == self.unit_id.encode("ascii"):
                    echoed = echo[1]
                else:
                    echoed = self._reply(full, parse, raw)
            except BaseException as exc:  # noqa: BLE001 - handled as _exchange's retries would
                first = exc
            if first is not None:
                echoed = retried_after(first, link, lambda: self._once(full, parse, None), attempts=1,
                                       reply_error=AlicatReplyError, in_step=self.in_step,
                                       link_error=lambda e: AlicatLinkError(self.name, full, e))
        elif self.setpoint_form == "modern":
            echoed = self._exchange(command, lambda t: _requested_setpoint(t, self.unit_id))
        else:
            echoed = self._exchange(command, self._frame).setpoint_slpm
        if abs(echoed - flow_slpm) > self.setpoint_tolerance_slpm:
            self.in_step.mark()  # a late reply to an earlier command looks just like this
            raise AlicatSetpointNotTaken(
                self.name, f"{self.unit_id}{command}", f"setpoint not taken: asked {flow_slpm:g}, unit has {echoed:g}"
            )

    # -- more of the device ------------------------------------------------------------------
    def setpoint_slpm(self) -> float:
        """The setpoint the controller is using (``ALS`` on modern firmware, else the frame's)."""
        if self.setpoint_form == "modern":
            reply = self._exchange(
                "LS", lambda t: parse_setpoint_reply(t, unit_id=self.unit_id), attempts=self.poll_attempts
            )
            return reply.current
        return self.read().setpoint_slpm

    def setpoint(self) -> SetpointReply:
        """The full ``ALS`` reply (modern firmware only)."""
        return self._exchange("LS", lambda t: parse_setpoint_reply(t, unit_id=self.unit_id), attempts=self.poll_attempts)

    def set_gas(self, gas: str | int) -> None:
        """Select the gas calibration by number or short name (``AGS n`` / legacy ``AGn``)."""
        number = self._gas_number(gas)
        if self.setpoint_form == "modern":
            command = f"GS {number}"
            reply = self._exchange(command, lambda t: parse_gas_reply(t, unit_id=self.unit_id))
            if reply.number != number:
                raise AlicatError(self.name, f"{self.unit_id}{command}", f"gas not taken: unit has {reply.number}")
        else:
            command = f"G{number}"
            self._exchange(command, self._frame)

    def gas(self) -> GasReply:
        """The active gas (``AGS``; modern firmware)."""
        return self._exchange("GS", lambda t: parse_gas_reply(t, unit_id=self.unit_id), attempts=self.poll_attempts)

    def set_gas_by_register(self, gas: str | int) -> None:
        """Select the gas through register 46 (``A$$W46=n``), as many field clients do."""
        number = self._gas_number(gas)
        value = self.write_register(REGISTER_GAS, number, dollar_form=True)
        if value & GAS_REGISTER_MASK != number:
            raise AlicatError(self.name, f"{self.unit_id}$$W46={number}", f"gas not taken: register 46 = {value}")

    def gas_number(self) -> int:
        """The active gas number from register 46 (low 9 bits)."""
        return self.read_register(REGISTER_GAS, dollar_form=True) & GAS_REGISTER_MASK

    def _gas_number(self, gas: str | int) -> int:
        if isinstance(gas, int):
            if not 0 <= gas <= 255:
                raise AlicatRangeError(self.name, f"{self.unit_id}GS {gas}", "gas number outside 0-255")
            return gas
        for known, number in GAS_NUMBERS.items():
            if known.upper() == gas.upper():
                return number
        raise AlicatRangeError(self.name, f"{self.unit_id}GS {gas}", f"unknown gas {gas!r} (known: {', '.join(GAS_NUMBERS)})")

    def read_register(self, register: int, *, dollar_form: bool = False) -> int:
        """Read a register (``AR<n>``, or ``A$$R<n>``)."""
        command = f"{'$$' if dollar_form else ''}R{register}"
        return self._exchange(command, lambda t: self._register_value(t, register), attempts=self.poll_attempts)

    def write_register(self, register: int, value: int, *, dollar_form: bool = False) -> int:
        """Write a register (``AW<n>=<v>``, or ``A$$W<n>=<v>``); returns the value read back."""
        command = f"{'$$' if dollar_form else ''}W{register}={int(value)}"
        return self._exchange(command, lambda t: self._register_value(t, register))

    def _register_value(self, text: str, register: int) -> int:
        reg, value = parse_register_reply(text, unit_id=self.unit_id)
        if reg != register:
            raise ValueError(f"reply names register {reg}, not {register}")
        return value

    def control_point(self) -> int:
        """Register 122: what the loop controls (37 = mass flow, 36 = volumetric flow ...)."""
        return self.read_register(REGISTER_CONTROL_POINT)

    def hold_valve(self, *, closed: bool = False) -> AlicatReading:
        """Hold the valve at its position (``AHP``) or closed (``AHC``); the frame shows HLD."""
        return self._exchange("HC" if closed else "HP", self._frame)

    def cancel_hold(self) -> AlicatReading:
        """Resume closed-loop control (``AC``)."""
        return self._exchange("C", self._frame)

    def release_hold(self) -> None:
        """The role's hold release (see :meth:`FlowController.release_hold`): ``AC``."""
        self.cancel_hold()

    def lock_display(self, locked: bool = True) -> AlicatReading:
        """Lock (``AL``) or unlock (``AU``) the front panel; the frame shows LCK when locked."""
        return self._exchange("L" if locked else "U", self._frame)

    def firmware(self) -> str:
        """``AVE`` -> the firmware version line without the unit id."""

        def parse(text: str) -> str:
            tokens = text.split(maxsplit=1)
            if len(tokens) < 2 or tokens[0].upper() != self.unit_id:
                raise ValueError(f"expected '<id> <version>', got {text!r}")
            return tokens[1].strip()

        return self._exchange("VE", parse, attempts=self.poll_attempts)

    def identity(self) -> str:
        """``??M*`` (manufacturing info): the unit's model and serial number, what tells two
        units apart that answer to the same id on lines of their own (both left at the factory's
        ``A``). Its ten lines end at ``M09``; a unit that sends fewer is heard out for 0.2 s."""
        full = f"{self.unit_id}??M*"
        info: dict[str, str] = {}
        try:
            self.link.write(full.encode("ascii") + TERMINATOR)
            text = self._read_line()
            for _ in range(16):
                if self._rejection(text):
                    raise AlicatRejected(self.name, full, f"rejected by the unit (reply {text!r})")
                parts = text.split(None, 2)
                if len(parts) == 3 and parts[1][:1] == "M":
                    info[parts[1]] = parts[2]
                if parts[1:2] == ["M09"]:
                    break
                try:
                    text = self._read_line(timeout_s=0.2)
                except LinkTimeout:
                    break
        except LinkError as exc:
            raise AlicatLinkError(self.name, full, exc) from exc
        fields = dict(v.split(" Number ", 1) for v in info.values() if " Number " in v)
        if not fields.get("Serial"):
            raise AlicatReplyError(self.name, full, f"no serial number in its manufacturing info ({len(info)} lines)")
        return f"Alicat {fields.get('Model', '?').strip()} serial number {fields['Serial'].strip()}"

    # -- unit id and streaming ---------------------------------------------------------------
    def change_unit_id(self, new_id: str) -> None:
        """``A@=B``: give the unit a new id (the unit does not answer), then poll it there."""
        new_id = new_id.upper()
        if len(new_id) != 1 or not new_id.isalpha():
            raise AlicatRangeError(self.name, f"{self.unit_id}@={new_id}", "unit id must be one letter A-Z")
        command = f"{self.unit_id}@={new_id}"
        try:
            self.link.write(command.encode("ascii") + TERMINATOR)
        except LinkError as exc:
            raise AlicatLinkError(self.name, command, exc) from exc
        old = self.unit_id
        self.unit_id = new_id
        try:
            self.read()
        except AlicatError:
            self.unit_id = old
            raise

    def start_streaming(self) -> None:
        """``A@=@``: the unit sends frames (without its id) every register-91 milliseconds."""
        command = f"{self.unit_id}@=@"
        try:
            self.link.write(command.encode("ascii") + TERMINATOR)
        except LinkError as exc:
            raise AlicatLinkError(self.name, command, exc) from exc

    def read_streamed(self, *, timeout_s: float | None = None) -> AlicatReading:
        """The next streamed frame (the first whole line that parses as a frame)."""
        command = "<stream>"
        for _ in range(3):
            try:
                raw = self.link.read_until(TERMINATOR, timeout_s=timeout_s)
            except LinkError as exc:
                raise AlicatLinkError(self.name, command, exc) from exc
            try:
                return parse_frame(raw.decode("ascii", errors="replace").strip())
            except ValueError:
                continue  # a line cut by the start of the stream, or noise: take the next
        raise AlicatReplyError(self.name, command, "no streamed frame parses")

    def open_line(self, *, line_peers: list[str] | tuple[str, ...] = ()) -> bool:
        """The first look at the unit's line as a rig opens: a frame of its own, and a unit left
        streaming (``@=@``, by other software) found. Its frames carry no id, and every reply
        we wait for meets them. Alone on its line, it is this unit: back to polling under our
        id (``@@=A``); returns True then. With ``line_peers`` (the other units on the line, as
        named to a person), ``@@=A`` would give our id to whichever unit streams (two units
        answering A, the other's setpoints lost): refused, for a person to say which unit it is."""
        try:
            frame = self.poll_any()  # a streaming unit's frame too: it answers no poll
        except AlicatRejected:
            # a partial command already on the line (a stray byte, a client that died mid-command)
            # ran into ours ("AA": "A ?"), and the rig was called not reachable: end it, ask again
            self.end_partial_command()
            frame = None
        if frame is None or frame.unit_id in (None, "@"):
            # no frame: a unit streaming slower than the link's timeout is heard out before the
            # poll's retries and line resyncs (which meet its frames for a minute or more); a
            # frame without an id is a streaming unit's only if more follow (one could be the
            # tail of a frame cut short, left on the line by another client). Twice the link's
            # timeout: a unit streaming every 1.2 s behind a 1 s timeout sent its first frame
            # into the poll's wait and its next one after a wait of one timeout (or at 1 s, late
            # by a loaded terminal server), and the open failed with "no reply"
            streaming = self.streaming_heard(listen_s=2.0 * max(1.0, getattr(self.link, "timeout_s", 1.0)))
            if not streaming:
                self.read()  # this unit's frame, or the error saying why not
        else:
            streaming = False
        if not streaming and line_peers:
            streaming = self.streaming_heard()  # another unit on the line, streaming
        if not streaming:
            return False
        if line_peers:
            raise AlicatReplyError(self.name, "<open>", f"a unit on its line streams data frames without an id, and "
                                   f"{', '.join(line_peers)} share that line: castrig cannot tell which unit streams. "
                                   "Put it back to polling (its front panel, or '@@=<its id>') and start again")
        try:
            self.stop_streaming()  # (ends with a poll of our own frame)
        except AlicatReplyError as exc:
            raise AlicatReplyError(self.name, f"@@={self.unit_id}", f"still streaming: {exc}") from exc
        return True

    def poll_any(self) -> AlicatReading | None:
        """One poll, its answer taken from whoever sent it: this unit's frame, or a streaming
        unit's (no id, or ``@``: a unit streams and does not answer polls). ``None`` when
        nothing, or nothing that parses as a frame, came within the link's timeout. For the
        first look at a line (rig open); every other read takes only this unit's frames."""
        command = self.unit_id
        try:
            self.link.write(command.encode("ascii") + TERMINATOR)
            raw = self.link.read_until(TERMINATOR)
        except LinkTimeout:
            return None
        except LinkError as exc:
            raise AlicatLinkError(self.name, command, exc) from exc
        text = raw.decode("ascii", errors="replace").strip()
        if self._rejection(text):
            raise AlicatRejected(self.name, command, f"rejected by the unit (reply {text!r})")
        try:
            frame = parse_frame(text)
        except ValueError:
            return None
        return frame if frame.unit_id in (None, "@", self.unit_id) else None

    def streaming_heard(self, *, listen_s: float = 0.3, max_lines: int = 20) -> bool:
        """Whether a unit on the line streams: a data frame without an id (or with ``@``) arrives
        unasked within ``listen_s``. Nothing is sent."""
        for _ in range(max_lines):
            try:
                raw = self.link.read_until(TERMINATOR, timeout_s=listen_s)
            except LinkTimeout:
                return False
            except LinkError as exc:
                raise AlicatLinkError(self.name, "<listening>", exc) from exc
            try:
                frame = parse_frame(raw.decode("ascii", errors="replace").strip())
            except ValueError:
                continue  # a line cut short, noise: the next
            if frame.unit_id in (None, "@"):
                return True
        return False

    def stop_streaming(self, *, quiet_s: float = 0.2, max_lines: int = 200) -> None:
        """``@@=A``: back to polling under our id; frames already on the wire are drained."""
        command = f"@@={self.unit_id}"
        try:
            self.link.write(command.encode("ascii") + TERMINATOR)
            for _ in range(max_lines):
                try:
                    self.link.read_until(TERMINATOR, timeout_s=quiet_s)
                except LinkTimeout:
                    break
            self.link.flush_input()
        except LinkError as exc:
            raise AlicatLinkError(self.name, command, exc) from exc
        self.read()

    def end_partial_command(self, *, quiet_s: float = 0.2) -> None:
        """A bare CR ends whatever partial command lies on the line; what it draws is dropped."""
        try:
            self.link.write(TERMINATOR)
            self.link.flush_until_quiet(quiet_s)
        except LinkError as exc:
            raise AlicatLinkError(self.name, "<CR>", exc) from exc

    def close(self) -> None:
        self.link.close()

    def __repr__(self) -> str:
        return f"AlicatMFC({self.name!r}, unit {self.unit_id}, {self.link!r})"
