"""Driver for New Era NE-1000 family syringe pumps (RS-232, basic and safe mode, daisy chain).

Protocol (NE-1000 user manual, publication #1200-01, RS-232 chapter):

* basic mode: ``[addr]<cmd>[args]<CR>`` → ``STX aa s [data] ETX`` (no CR/LF);
* safe mode: ``STX len data CRC-hi CRC-lo ETX``, ``len`` = data + 4, CRC-CCITT with initial 0
  over the data; replies framed alike; alarms arrive unprompted; the host must send a valid packet
  at least every ``n`` s (``SAF n``) or the pump stops with alarm ``T``;
* ``s`` is the prompt (``I W S P T U X``) or an alarm ``A?R|S|T|E|O``; errors ``?``, ``?NA``,
  ``?OOR``, ``?COM``, ``?IGN`` follow the prompt;
* an alarm is acknowledged by the reply that reports it, and that command is not executed.

The driver reads both framings whatever mode it believes the pump is in (the second byte tells:
an address digit for basic, a length byte for safe), so a pump left in safe mode by a crashed
host is recovered by :meth:`NE1000Pump.connect`.

Imperfect lines: replies are reassembled from whatever pieces the link delivers (a socket may
cut a frame anywhere, :func:`next_frame`); a partial frame stays buffered for the next read;
garbage is dropped up to the next STX (and a query asked again); after a timeout the reply may
still come, so the next exchange first sends ``VER`` and reads up to its reply
(:class:`~castrig.devices.exchange.InStep`) before a reply is trusted again.
"""

from __future__ import annotations

import binascii
import re
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, TypeVar

from castrig.clock import Clock
from castrig.devices.roles import DeviceError, Dispensed, PumpState, SyringePump
from castrig.devices.exchange import InStep, after_first_try
from castrig.errors import CastrigError
from castrig.links import Link, LinkError, LinkTimeout, ProtocolError
from castrig.links.base import retry_loop
from castrig.memo import MISSING, remember

if TYPE_CHECKING:
    from castrig.devices.blind_stop import BlindStop

T = TypeVar("T")

STX = 0x02
ETX = 0x03

#: Rate units the pump knows, with the factor to mL/min.
RATE_UNITS: dict[str, float] = {"MM": 1.0, "MH": 1.0 / 60.0, "UM": 1e-3, "UH": 1.0 / 60000.0}
#: Volume units, with the factor to mL.
VOLUME_UNITS: dict[str, float] = {"ML": 1.0, "UL": 1e-3}
#: Diameters at or below this use µL as default volume units (manual: 14.00 mm).
UL_DIAMETER_LIMIT_MM = 14.0

ALARM_KINDS: dict[str, str] = {
    "R": "pump reset (power was interrupted)",
    "S": "motor stalled",
    "T": "safe-mode communications time-out",
    "E": "pumping program error",
    "O": "pumping program phase out of range",
}
ERROR_CODES: dict[str, str] = {
    "": "command not recognised",
    "NA": "command not applicable now",
    "OOR": "command data out of range",
    "COM": "invalid communications packet",
    "IGN": "command ignored (simultaneous phase start)",
}

_REPLY = re.compile(r"^(\d\d)(?:A\?([A-Z])|([IWSPTUX])(.*))$", re.DOTALL)
#: Prompt character -> state (every prompt _REPLY admits), without an Enum call per reply.
_STATES = {state.value: state for state in PumpState}
_DIS = re.compile(r"^I(\d*\.?\d*)W(\d*\.?\d*)(UL|ML)$")
#: _REPLY's and _DIS's groups per text (``None``: no match), in bounded memos (castrig.memo): a
#: pump's replies repeat all night (its prompt alone to a state query, the same DIS while still).
_REPLY_GROUPS: dict[str, tuple[str | None, ...] | None] = {}
_DIS_GROUPS: dict[str, tuple[str | None, ...] | None] = {}


def _groups(pattern: re.Pattern[str], memo: dict[str, tuple[str | None, ...] | None],
            text: str) -> tuple[str | None, ...] | None:
    """``pattern.match(text).groups()`` (``None`` when it does not match), once per distinct text."""
    found = memo.get(text, MISSING)
    if found is MISSING:
        m = pattern.match(text)
        found = remember(memo, text, None if m is None else m.groups())
    return found  # type: ignore[return-value]
_VALUE_UNITS = re.compile(r"^(\d*\.?\d*)([A-Z]{2})$")
_VERSION = re.compile(r"^NE\d+V\d+\.\d+")

#: Longest frame the pump sends (``01SNE1000V3.928`` is 15 bytes of data); a length byte or a
#: basic frame beyond it is garbage.
MAX_FRAME = 64
#: The manual's inter-byte time-out inside a packet: a frame cut longer than this is dropped.
PACKET_GAP_S = 0.5
#: Silence that ends garbage on the line before a query is asked again.
GARBAGE_QUIET_S = 0.05
#: Bytes of dropped garbage kept to show in a message (see :meth:`NE1000._take`).
_GARBAGE_KEPT = 64


class PumpError(DeviceError):
    """An NE-1000 answered with an error or an alarm."""


class PumpAlarm(PumpError):
    """The pump reports an alarm (``A?<kind>``); reporting it acknowledged it. ``new``: False when
    it reports the alarm the pump had sent unprompted just before (read and recorded already)."""

    def __init__(self, device: str, command: str, kind: str, *, new: bool = True):
        self.kind = kind
        self.new = new
        super().__init__(device, command, f"alarm {kind}: {ALARM_KINDS.get(kind, 'unknown alarm')}")


class PumpCommandError(PumpError):
    """The pump rejected a command (``?``, ``?NA``, ``?OOR``, ``?COM``, ``?IGN``)."""

    def __init__(self, device: str, command: str, code: str):
        self.code = code
        super().__init__(device, command, f"error ?{code}: {ERROR_CODES.get(code, 'unknown error')}")


def crc16(data: bytes) -> int:
    """CRC-CCITT, initial value 0 (the manual's safe-mode checksum)."""
    return binascii.crc_hqx(data, 0)


def safe_packet(data: bytes) -> bytes:
    if type(data) is bytes:  # the same few commands all run long: framed once each
        return _safe_packet_cached(data)
    return _safe_packet(data)


def _safe_packet(data: bytes) -> bytes:
    return bytes([STX, len(data) + 4]) + data + crc16(data).to_bytes(2, "big") + bytes([ETX])


_safe_packet_cached = lru_cache(maxsize=256)(_safe_packet)

#: Replies up to this long are parsed once per distinct reply (a pump's replies repeat: its
#: prompt, the same dispensed volume all through a hold).
_CACHED_FRAME_BYTES = 64


def next_frame(buf: bytes) -> tuple[str | None, int]:
    """The reply frame at the front of ``buf`` (see :func:`_next_frame`); a pure function of
    the bytes, so a short buffer seen before gets its earlier answer."""
    if type(buf) is bytes and len(buf) <= _CACHED_FRAME_BYTES:
        return _next_frame_cached(buf)
    return _next_frame(buf)


def _next_frame(buf: bytes) -> tuple[str | None, int]:
    """The reply frame at the front of ``buf``, reassembled from whatever bytes have arrived.

    Returns ``(text, n)``: ``text`` is the frame's data (``01S...``, basic ``STX ... ETX`` or a
    safe-mode packet with a good length, CRC and ETX) and ``n`` the bytes it took. ``(None, n)``
    with ``n > 0``: ``n`` bytes of garbage to drop (up to the next STX that may start a frame);
    ``(None, 0)``: ``buf`` starts with a partial frame, keep it and wait for more bytes.
    """
    i = buf.find(STX)
    if i < 0:
        return None, len(buf)
    if i > 0:
        return None, i
    if len(buf) < 2:
        return None, 0
    if 0x30 <= buf[1] <= 0x39:  # basic: an address digit follows STX
        end = buf.find(ETX, 1)
        nxt = buf.find(STX, 1)
        if nxt > 0 and (end < 0 or nxt < end):
            return None, nxt  # a frame cut short, and a new one starts
        if end < 0:
            return (None, 1) if len(buf) > MAX_FRAME else (None, 0)
        text = buf[1:end].decode("ascii", "replace")
        return (text, end + 1) if _REPLY.match(text) else (None, 1)
    length = buf[1]
    if not 4 <= length <= MAX_FRAME:
        return None, 1
    if len(buf) < 1 + length:
        nxt = buf.find(STX, 2)
        if nxt > 0 and next_frame(buf[nxt:])[0] is not None:
            return None, nxt  # this "packet" was cut (or noise): a whole frame follows it
        return None, 0
    data, crc, end = buf[2 : length - 2], buf[length - 2 : length], buf[length]
    if end != ETX or int.from_bytes(crc, "big") != crc16(data):
        return None, 1
    text = data.decode("ascii", "replace")
    return (text, 1 + length) if _REPLY.match(text) else (None, 1)


_next_frame_cached = lru_cache(maxsize=512)(_next_frame)


def split_frames(buf: bytes) -> tuple[list[str], bytes, bytes]:
    """Every whole frame in ``buf``: ``(frames, garbage dropped, partial frame left)``."""
    frames: list[str] = []
    garbage = bytearray()
    while buf:
        text, n = next_frame(buf)
        if not n:
            break
        if text is None:
            garbage += buf[:n]
        else:
            frames.append(text)
        buf = buf[n:]
    return frames, bytes(garbage), buf


def format_number(value: float) -> str:
    """The manual's ``<float>``: at most 4 digits, at most 3 decimals, always a decimal point."""
    if value < 0:
        raise ValueError(f"negative value {value}")
    if value >= 9999.5:
        raise ValueError(f"{value} does not fit the pump's 4 digits")
    if value < 9.9995:
        return f"{value:.3f}"
    if value < 99.995:
        return f"{value:.2f}"
    if value < 999.95:
        return f"{value:.1f}"
    return f"{value:.0f}."


def rate_setting(rate_ml_min: float) -> tuple[str, str]:
    """(units, 4-digit text) a rate is sent as by a pump standing still: the units that keep the
    most digits (``castrig check`` judges the rate the pump will get from this very function)."""
    units, value = best_units(rate_ml_min, RATE_UNITS)
    return units, format_number(value)


def volume_setting(volume_ml: float, diameter_mm: float) -> tuple[str, str]:
    """(units, 4-digit text) a volume target is sent as: µL for syringes up to 14.00 mm, mL
    above (units the pump's 4 digits may still cut: ``0.0004`` mL is ``VOL0.000``, i.e. pump
    without end — ``castrig check`` refuses such a volume from this very function)."""
    units = "UL" if diameter_mm <= UL_DIAMETER_LIMIT_MM else "ML"
    value = volume_ml / VOLUME_UNITS[units]
    if value >= 9999.5:
        units, value = best_units(volume_ml, VOLUME_UNITS)
    return units, format_number(value)


def best_units(value_base: float, units: dict[str, float]) -> tuple[str, float]:
    """The first units (in the given order of preference) that show 4 significant digits.

    A value in [1, 9999.5) prints with 4 significant digits; if no units give that, the units
    giving the largest value that still fits are used.
    """
    fitting = [(name, value_base / f) for name, f in units.items() if value_base / f < 9999.5]
    if not fitting:
        raise ValueError(f"{value_base} does not fit the pump's 4 digits in any units")
    for name, v in fitting:
        if v >= 1.0:
            return name, v
    return max(fitting, key=lambda item: item[1])


class NE1000Pump(SyringePump):
    """An NE-1000 family pump on a link, alone or at ``address`` on a daisy chain.

    Call :meth:`connect` once after opening: it acknowledges the power-up reset alarm, puts
    the pump in the mode asked for (``safe_mode_s``) and reads the firmware version. In safe mode
    the runner must call :meth:`keepalive` more often than every ``safe_mode_s`` seconds.
    ``connect(arm=False)`` leaves it in basic mode until :meth:`arm_watchdog`: the rig opens its
    pumps before its other devices and its run store, and nothing talks to them in between.
    """

    def __init__(
        self,
        link: Link,
        *,
        name: str,
        address: int | None = None,
        clock: Clock,
        safe_mode_s: int | None = None,
        retries: int = 3,
    ):
        if address is not None and not 0 <= address <= 99:
            raise ValueError(f"{name}: address {address} not in 0..99")
        if safe_mode_s is not None and not 0 <= safe_mode_s <= 255:
            raise ValueError(f"{name}: safe_mode_s {safe_mode_s} not in 0..255")
        self.link = link
        self.name = name
        self.address = address
        self.clock = clock
        self.safe_mode_s = safe_mode_s or 0
        self.retries = retries
        #: Whether the driver frames commands as safe-mode packets.
        self.safe = False
        self.firmware: str | None = None
        self.last_state: PumpState | None = None
        #: Most recent alarm kind seen (in a reply or unprompted), for logs and the runner.
        self.last_alarm: str | None = None
        #: Alarms acknowledged by :meth:`connect` (power-up ``R``, a stale ``T`` ...).
        self.connect_alarms: list[str] = []
        #: Alarms the pump raised on its own (safe mode: its watchdog's, a stall's) that no
        #: exception to a caller reported: sent unprompted, answering the in-step marker, or
        #: answering the safe state's ``STP`` (which goes on past them); oldest first, one per alarm.
        self.unsolicited_alarms: list[str] = []
        #: The alarm last read while no reply has acknowledged it yet: in safe mode the pump sends
        #: an alarm unprompted, then reports it again in the reply to the next command (which
        #: acknowledges it). That reply come late (the line stalled: a ``sim serve`` SIGSTOPped)
        #: and read before a later command is the same alarm, not a second one: it was recorded
        #: twice ("sent by the pump on its own").
        self._alarm_unacknowledged: str | None = None
        self._diameter_mm: float | None = None
        self._rate_units: str | None = None
        self._garbage = bytearray()
        self._marker_alarm = False  # the last in-step marker was answered by an alarm
        #: After a timeout the next exchange first confirms the replies line up (``VER``).
        self.in_step = InStep(link, marker=self._marker, read_reply=self._read_text)

    # -- connection and modes --------------------------------------------------------------
    def connect(self, *, arm: bool = True) -> None:
        """Acknowledge pending alarms (power-up ``A?R``), set the mode, read the version.
        ``arm=False``: basic mode for now, safe mode at :meth:`arm_watchdog`."""
        if self.in_step.suspect:  # late replies may still come: let the line go quiet first
            self._guard("connect", lambda: self.link.flush_until_quiet(self.in_step.quiet_s))
            self.in_step.suspect = False
        self._guard("connect", self.link.flush_input)
        self.connect_alarms.clear()
        for _ in range(4):
            try:
                self._command("SAF0", framing="safe")
                break
            except PumpAlarm as alarm:  # acknowledged now; the SAF0 itself was not executed
                self.connect_alarms.append(alarm.kind)
        else:
            raise PumpError(self.name, "SAF0", f"alarms kept coming on connect: {self.connect_alarms}")
        self.safe = False
        if arm:
            self.arm_watchdog()
        self.firmware = self.version()

    def arm_watchdog(self) -> None:
        """Safe mode with the watchdog asked for (``safe_mode_s``), unless already in it: from
        now on the pump stops and alarms when it hears nothing for that long."""
        if self.safe_mode_s and not self.safe:
            self.enter_safe_mode(self.safe_mode_s)

    def enter_safe_mode(self, timeout_s: int) -> None:
        """Switch to safe mode with a ``timeout_s`` watchdog (1..255 s)."""
        if not 1 <= timeout_s <= 255:
            raise ValueError(f"{self.name}: safe-mode time-out {timeout_s} not in 1..255 s")
        self._command(f"SAF{timeout_s}", framing="safe")
        self.safe = True
        self.safe_mode_s = timeout_s

    def leave_safe_mode(self) -> None:
        """Back to basic mode (the manual's ``SAF0`` packet, answered in basic framing)."""
        self._command("SAF0", framing="safe")
        self.safe = False
        self.safe_mode_s = 0

    def keepalive(self) -> PumpState:
        """A status query: in safe mode it restarts the pump's communications watchdog."""
        return self.state()

    def disarm_watchdog(self) -> None:
        """Back to basic mode if the pump was last read stopped on a sound line. A stopped pump
        needs no watchdog, and one left in safe mode alarms ``A?T`` (and beeps) a watchdog after
        every run: at an empty lab after an overnight run, and as an alarm the next connect must
        acknowledge. Anything else (moving, a suspect line, an error here) leaves the watchdog
        armed: it is what stops a pump castrig can no longer reach. Never raises."""
        try:
            if self.safe and self.last_state is PumpState.STOPPED and not self.in_step.suspect:
                watchdog_s = self.safe_mode_s
                self.leave_safe_mode()
                self.safe_mode_s = watchdog_s  # the configured watchdog, for a later arm_watchdog
        except (CastrigError, OSError):
            pass

    def close(self) -> None:
        self.link.close()

    # -- SyringePump -----------------------------------------------------------------------
    def set_diameter_mm(self, diameter_mm: float) -> None:
        self._command(f"DIA{format_number(diameter_mm)}")
        self._diameter_mm = float(format_number(diameter_mm))

    def set_rate_ml_min(self, rate_ml_min: float) -> None:
        """Set the rate, in the units that keep 4 significant digits (current ones while pumping)."""
        if rate_ml_min <= 0:
            raise ValueError(f"{self.name}: rate must be positive, got {rate_ml_min}")
        if self.last_state is not None and self.last_state.moving:
            units = self._rate_units or self._query_rate()[1]
            value = rate_ml_min / RATE_UNITS[units]
            text = format_number(value)
        else:
            units, text = rate_setting(rate_ml_min)
        self._command(f"RAT{text}{units}")
        self._rate_units = units

    def set_volume_ml(self, volume_ml: float) -> None:
        """Volume target (0 = pump continuously); µL for syringes ≤ 14.00 mm, else mL."""
        if volume_ml < 0:
            raise ValueError(f"{self.name}: volume must be >= 0, got {volume_ml}")
        diameter = self._diameter_mm if self._diameter_mm is not None else self.diameter_mm()
        units, text = volume_setting(volume_ml, diameter)
        self._command(f"VOL{units}")
        self._command(f"VOL{text}")

    def set_direction(self, infuse: bool) -> None:
        self._command("DIRINF" if infuse else "DIRWDR")

    def start(self) -> None:
        """``RUN``: never retried, a lost reply must not start the pump twice."""
        self._command("RUN")

    def stop(self) -> None:
        """Stop the program: ``STP`` pauses a running pump, a second ``STP`` stops it.

        Part of the safe state, so a pending alarm does not prevent it: the alarm reply
        acknowledges the alarm (kept in :attr:`last_alarm`) and ``STP`` is sent again.
        """
        for _ in range(4):
            try:
                state, _ = self._command("STP")
            except PumpAlarm as alarm:
                if alarm.new:  # gone past, so recorded as one the pump raised on its own (its watchdog's)
                    self.unsolicited_alarms.append(alarm.kind)
                continue
            if state is PumpState.STOPPED:
                return
            # paused (a second STP stops it), or a reply that is not this STP's (one behind: an
            # outside tester's pump was left paused mid-program when an 'I' was read here)
        raise PumpError(self.name, "STP", f"pump did not reach the stopped state (last state {self.last_state}, "
                                          f"last alarm {self.last_alarm})")

    def best_effort_stop(self) -> "BlindStop":
        """:meth:`stop` failed: a pump whose replies are lost or garbled still hears, but every
        exchange here first waits for ``VER``'s reply (the line out of step) and sent nothing
        else -- while each ``VER`` packet kept its safe-mode watchdog from stopping it. So the
        ``STP`` goes out as :mod:`castrig.devices.blind_stop` sends it, then the state is read
        back; this driver's next exchange confirms the line first (what came back is no reply
        to it)."""
        from castrig.devices.blind_stop import stop_unconfirmed_ne1000

        blind = stop_unconfirmed_ne1000(self.link, name=self.name, address=self.address, clock=self.clock)
        self.in_step.mark()
        if blind.stopped:
            self.last_state = PumpState.STOPPED
        return blind

    def use_one_phase(self) -> None:
        """Phase 1 a rate phase and phase 2 ``STP``, phase 1 selected.

        The pump keeps a pumping program of up to 41 phases (set at its keypad or by another
        client) and ``RAT``, ``VOL`` and ``DIR`` set whichever phase is selected (``PHN``), while
        ``RUN`` runs the program from phase 1. On a pump left with phase 3 selected and a
        continuous phase 2, a cast would set phase 3, run someone else's phase 1 and pump on
        in phase 2 past its volume. (The manual's quick start "assumes that the pump was not
        previously programmed with a multiple Phase Pumping Program".)"""
        self._command("PHN2")
        self._command("FUNSTP")
        self._command("PHN1")
        self._command("FUNRAT")

    def pause(self) -> None:
        """One ``STP``: a running program pauses (``P``) and :meth:`start` resumes it."""
        self._command("STP")

    def purge(self) -> None:
        """Run at the maximum rate in the set direction until stopped."""
        self._command("PUR")

    def state(self) -> PumpState:
        return self._query("")[0]

    def dispensed(self) -> Dispensed:
        _, data = self._query("DIS")
        g = _groups(_DIS, _DIS_GROUPS, data)
        if not g:  # (another command's reply: asked again once the replies are back in step)
            self.in_step.mark()
            _, data = self._query("DIS")
            g = _groups(_DIS, _DIS_GROUPS, data)
        if not g:
            raise self._bad_reply("DIS", data)
        f = VOLUME_UNITS[g[2]]
        return Dispensed(float(g[0]) * f, float(g[1]) * f)  # (infused_ml, withdrawn_ml)

    def clear_dispensed(self) -> None:
        self._command("CLDINF")
        self._command("CLDWDR")

    # -- queries ---------------------------------------------------------------------------
    def diameter_mm(self) -> float:
        _, data = self._query("DIA")
        self._diameter_mm = self._float("DIA", data)
        return self._diameter_mm

    def rate_ml_min(self) -> float:
        value, units = self._query_rate()
        return value * RATE_UNITS[units]

    def volume_ml(self) -> float:
        _, data = self._query("VOL")
        value, units = self._value_units("VOL", data, VOLUME_UNITS)
        return value * VOLUME_UNITS[units]

    def direction(self) -> str:
        """``INF``, ``WDR`` (or ``STK``, sticky direction, if set at the keypad)."""
        _, data = self._query("DIR")
        if data not in ("INF", "WDR", "STK"):
            raise self._bad_reply("DIR", data)
        return data

    def version(self) -> str:
        """Firmware, e.g. ``NE1000V3.928``."""
        _, data = self._query("VER")
        if not re.match(r"^NE\d+V\d+\.\d+", data):
            raise self._bad_reply("VER", data)
        return data

    def identity(self) -> str:
        """What tells this pump from another: its address, firmware and the syringe diameter
        it holds (set by the rig as it opened; kept through a power cycle). Two pumps without
        addresses differ by their syringes, the caster's from the pre-wetting pump's."""
        version = self.version()
        diameter_mm = self.diameter_mm()
        where = "" if self.address is None else f" at address {self.address}"
        return f"NE-1000{where} ({version}) holding a {diameter_mm:g} mm syringe"

    def safe_mode_timeout_s(self) -> int:
        _, data = self._query("SAF")
        if not data.isdigit():
            raise self._bad_reply("SAF", data)
        return int(data)

    def _query_rate(self) -> tuple[float, str]:
        _, data = self._query("RAT")
        value, units = self._value_units("RAT", data, RATE_UNITS)
        self._rate_units = units
        return value, units

    # -- exchange --------------------------------------------------------------------------
    def _query(self, command: str) -> tuple[PumpState, str]:
        """A query: repeatable, so link timeouts and bad frames are retried a bounded number of times."""
        try:
            if self.retries >= 1:
                # retry_loop's first try, inline (every sample asks each pump); a failure goes
                # on in retry_loop as if its own first try had raised it
                try:
                    return self._exchange(command, None, query=True)
                except BaseException as exc:  # noqa: BLE001 - handled as retry_loop would
                    first = exc
                return retry_loop(self.link, after_first_try(first, lambda: self._exchange(command, None, query=True)),
                                  attempts=self.retries)
            return retry_loop(self.link, lambda: self._exchange(command, None, query=True), attempts=self.retries)
        except LinkError as exc:
            named = self._named(command, exc)
            if named is None:
                raise
            raise named from exc

    def _command(self, command: str, *, framing: str | None = None) -> tuple[PumpState, str]:
        """A set or an action: sent once."""
        return self._guard(command, lambda: self._exchange(command, framing))

    def _guard(self, command: str, action: Callable[[], T]) -> T:
        """Re-raise link errors with the pump's name and the command in the message."""
        try:
            return action()
        except LinkError as exc:
            named = self._named(command, exc)
            if named is None:
                raise
            raise named from exc

    def _named(self, command: str, exc: LinkError) -> LinkError | None:
        """``exc`` again with the pump's name and the command in the message (``None``: it has them)."""
        prefix = f"{exc.resource}: "
        detail = str(exc)[len(prefix) :] if str(exc).startswith(prefix) else str(exc)
        if detail.startswith(f"{self.name}: "):
            return None
        return type(exc)(exc.resource, f"{self.name}: {command!r}: {detail}")

    def _frame(self, command: str, framing: str | None) -> bytes:
        data = (("" if self.address is None else str(self.address)) + command).encode("ascii")
        if (framing or ("safe" if self.safe else "basic")) == "safe":
            return safe_packet(data)
        return data + b"\r"

    def _exchange(self, command: str, framing: str | None, *, query: bool = False) -> tuple[PumpState, str]:
        self._drain_unsolicited()
        try:
            self.in_step.ensure()
            if self._marker_alarm:
                # The marker was answered by an alarm — VER's own, or one the pump sent unprompted
                # just before (which does not acknowledge it): with VER's reply still to come, the
                # next reply would be one behind. The alarm is acknowledged now, so a second VER is
                # answered with the version alone.
                self._marker_alarm = False
                self.in_step.mark()
                self.in_step.ensure()
                self._marker_alarm = False
        except (LinkTimeout, ProtocolError) as exc:
            # said as it was: the command never went out (the safe state's record read "'STP':
            # no reply" while only VER packets had been sent, and the pump went on infusing)
            detail = str(exc).removeprefix(f"{exc.resource}: ")
            raise type(exc)(exc.resource, f"not sent: the line is out of step and the VER sent before it to "
                                          f"confirm it got no answer ({detail})") from exc
        self.link.write(self._frame(command, framing))
        text = self._read_reply(command, query=query)
        return self._parse(command, text)

    def _take(self, buf: bytes) -> tuple[str | None, int]:
        """:func:`next_frame`, keeping the garbage it drops (for :meth:`_read_reply`)."""
        text, n = next_frame(buf)
        if text is None and n and len(self._garbage) < _GARBAGE_KEPT:
            # (its first bytes only: they are all a message shows; a line streaming garbage
            # kept every byte of it until the reply's timeout, 180 MB in 0.5 s on loopback)
            self._garbage += buf[: min(n, _GARBAGE_KEPT)]
        return text, n

    def _take_own(self, buf: bytes) -> tuple[str | None, int]:
        """:meth:`_take`, dropping another address's reply frame: on a daisy chain a pump answers
        only its own address, so that frame is a peer's (a late one) and never this command's
        reply. Taken for it, the water pump's stop read the caster's late reply ("reply from
        address 00, expected 1") and a stopped pump was left NOT verified."""
        text, n = self._take(buf)
        if text is not None and self.address is not None:
            g = _groups(_REPLY, _REPLY_GROUPS, text)
            if g and int(g[0]) != self.address:  # type: ignore[arg-type]
                return None, n
        return text, n

    def _read_text(self, timeout_s: float | None = None) -> str:
        """The next whole frame from the link, reassembled from whatever pieces arrive."""
        return self.link.read_frame(self._take, timeout_s=timeout_s, what="reply frame (STX ... ETX)")

    def _read_reply(self, command: str, *, query: bool) -> str:
        """The reply frame, from whatever pieces arrive.

        Garbage before it is dropped up to the next STX; for a query that is not trusted (the
        garbage may have been its reply): the line is let go quiet and a :class:`ProtocolError`
        makes the caller ask again. No whole frame in time: the reply may still come, so the
        line is marked out of step (the next exchange confirms with ``VER`` first).
        """
        self._garbage.clear()
        try:
            text = self.link.read_frame(self._take_own, what="reply frame (STX ... ETX)")
        except LinkTimeout as exc:
            self.in_step.mark()
            if self._garbage:
                junk = bytes(self._garbage[:32])
                raise ProtocolError(self.link.resource, f"no valid reply frame, only garbage (bad framing, "
                                                        f"length or CRC): {junk!r}") from exc
            raise
        if self._garbage and query:
            junk = bytes(self._garbage[:32])
            self.link.flush_until_quiet(GARBAGE_QUIET_S)
            raise ProtocolError(self.link.resource, f"garbage before the reply: {junk!r}")
        return text

    def _drain_unsolicited(self) -> None:
        """Collect alarm packets the pump sent unprompted (and stale replies) before a command.

        A frame cut by the read is completed first (within the manual's 0.5 s packet gap), so
        it is neither lost nor taken for the reply to the command about to be sent.
        """
        for _ in range(16):
            pending = self.link.read_available()
            if not pending:
                return
            frames, _garbage, rest = split_frames(pending)
            for text in frames:
                self._note_unsolicited(text)
            if not rest:
                continue
            self.link.unread(rest)
            self._garbage.clear()
            try:
                self._note_unsolicited(self._read_text(PACKET_GAP_S))
            except LinkTimeout:
                self.link.flush_input()  # the pump would have dropped that packet too
                return

    def alarms_sent(self) -> list[str]:
        """``alarm T: safe-mode communications time-out``, one per alarm read unprompted."""
        return [f"alarm {code}: {ALARM_KINDS.get(code, 'unknown alarm')}" for code in self.unsolicited_alarms]

    def _note_unsolicited(self, text: str) -> None:
        m = _REPLY.match(text)
        if m and m.group(2) and int(m.group(1)) == (self.address or 0):
            self.last_alarm = m.group(2)
            if not self._note_alarm(m.group(2)):  # a late reply, the replies one behind
                self.in_step.mark()
        else:
            # a reply nobody asked for now: a late or repeated one, so the last reply read may
            # have been another's and the next would be one behind (an outside tester: a stale
            # "stopped" ended a healthy cast, and the safe state then read a pump it had left
            # paused as stopped). The next exchange confirms with VER first.
            self.in_step.mark()

    def _alarm_read(self, kind: str) -> bool:
        """An ``A?<kind>`` frame, wherever read: True if it is a new alarm, False if it is the
        report that acknowledges the one read before it (a reply's; none came in between)."""
        if self._alarm_unacknowledged == kind:
            self._alarm_unacknowledged = None
            return False
        self._alarm_unacknowledged = kind
        return True

    def _note_alarm(self, kind: str) -> bool:
        """An alarm read outside a command's reply: recorded if new (see :meth:`_alarm_read`)."""
        new = self._alarm_read(kind)
        if new:
            self.unsolicited_alarms.append(kind)
        return new

    def _marker(self, k: int) -> tuple[bytes, Callable[[str], bool]]:
        """The in-step marker: ``VER``, whose reply no other command gives — or an alarm.

        A pump whose watchdog ran out while the line was stalled answers the marker with its
        alarm (``A?T``), which acknowledges it and is the marker's reply all the same: waiting
        for a version instead cost the reply timeout, and the safe state's first ``STP`` after
        a stall failed as "no reply" from a pump that had answered."""
        address = self.address or 0

        def is_marker_reply(text: str) -> bool:
            m = _REPLY.match(text)
            if not m or int(m.group(1)) != address:
                return False
            if m.group(2):
                self.last_alarm = m.group(2)
                self.last_state = PumpState.STOPPED
                self._marker_alarm = True
                # recorded as any alarm read outside a reply: a watchdog's that the markers after a
                # stall read (unprompted, then answering VER) was in no record at all
                self._note_alarm(m.group(2))
                return True
            return bool(m.group(4) and _VERSION.match(m.group(4)))

        return self._frame("VER", None), is_marker_reply

    def _parse(self, command: str, text: str) -> tuple[PumpState, str]:
        g = _groups(_REPLY, _REPLY_GROUPS, text)  # (address, alarm, prompt, data)
        if not g:
            raise ProtocolError(self.link.resource, f"unparseable reply {text!r}")
        if int(g[0]) != (self.address or 0):  # type: ignore[arg-type]
            raise ProtocolError(self.link.resource, f"reply from address {g[0]}, expected {self.address or 0}")
        if g[1]:
            self.last_alarm = g[1]
            self.last_state = PumpState.STOPPED
            raise PumpAlarm(self.name, command, g[1], new=self._alarm_read(g[1]))
        self._alarm_unacknowledged = None  # a reply with no alarm: none is pending
        state = _STATES[g[2]]
        self.last_state = state
        data = g[3]
        if data.startswith("?"):
            raise PumpCommandError(self.name, command, data[1:])
        return state, data

    # -- reply fields ----------------------------------------------------------------------
    def _bad_reply(self, command: str, data: str) -> ProtocolError:
        """A reply whose data is not its command's: another command's reply, the replies one
        behind; the link is marked out of step, so the next exchange confirms with VER first."""
        self.in_step.mark()
        return ProtocolError(self.link.resource, f"{self.name}: {command!r}: unexpected data {data!r}")

    def _float(self, command: str, data: str) -> float:
        try:
            return float(data)
        except ValueError:
            raise self._bad_reply(command, data) from None

    def _value_units(self, command: str, data: str, units: dict[str, float]) -> tuple[float, str]:
        m = _VALUE_UNITS.match(data)
        if not m or m.group(2) not in units:
            raise self._bad_reply(command, data)
        return self._float(command, m.group(1)), m.group(2)


__all__ = [
    "NE1000Pump",
    "PumpAlarm",
    "PumpCommandError",
    "PumpError",
    "format_number",
    "best_units",
    "next_frame",
    "split_frames",
]
