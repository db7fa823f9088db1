"""Emulator of a New Era NE-1000 family syringe pump, alone on a port or on a daisy chain.

What it answers follows the NE-1000 user manual (publication #1200-01, RS-232 chapter) and the
behaviour field clients rely on (nesp-lib, yaqd-new-era):

* Basic mode: ``[addr]<cmd>[args]<CR>``, spaces and control characters stripped, case ignored;
  replies ``STX aa s [data] ETX`` with no CR/LF (``aa`` the 2-digit address, ``s`` the prompt
  ``I W S P T U X`` or the alarm ``A?R|S|T|E|O``; errors ``?``, ``?NA``, ``?OOR``, ``?COM``,
  ``?IGN`` after the prompt).
* Safe mode (``SAF n``, n = 1..255 s): ``STX len data CRC-hi CRC-lo ETX`` with ``len`` = data + 4
  and CRC-CCITT (initial 0) over data; a 0.5 s gap inside a packet discards it; a bad CRC is
  answered ``?COM``; the host must send a valid packet at least every n s or the pump stops and
  reports ``A?T`` unprompted (auto-alarm). Packets are also accepted in basic mode (nesp-lib sends
  ``SAF`` as a packet from basic mode); ``SAF0`` is answered in basic framing.
* An alarm is reported (and so acknowledged) in the reply to the next command, which is then not
  executed; an alarm sent unprompted in safe mode does not acknowledge it. Power-up is alarm R.
* ``STP`` pauses a running program (prompt P); a second ``STP`` stops it (prompt S), so the next
  ``RUN`` starts a new volume target.
* The pumping program (manual: "all Program Phase Data refers to the currently selected Program
  Phase"): 41 phases, ``PHN [n]`` selects the phase that ``RAT``, ``VOL``, ``DIR`` and ``FUN`` set
  and query; ``RUN [n]`` runs the program from phase 1 (or n); a rate phase that reaches its
  volume target goes on to the next phase, and the program stops at a ``STP`` phase (or after
  phase 41), phase 1 selected again. Rate (``RAT``) and stop (``STP``) phases are modelled; the
  other functions are answered ``?NA``. Power-up program: phase 1 a rate phase, the rest ``STP``
  (what a one-phase client expects); a program left by someone else is set over the wire.

Plunger physics (for the twin): the flow while running, the volumes dispensed at time t, stop
when the volume target is reached, withdraw, purge at the maximum rate. ``dispensed_ml(t)`` and
``flow_ml_min(t)`` are physical (``CLD`` clears only the pump's own counters). With
``syringe_volume_ml`` (the profile's), the syringe is full when the emulator is made and the
plunger stops at the end of its travel as a real one does: the motor stalls, the pump stops and
reports alarm ``S`` -- it does not go on "dispensing" from an empty syringe (a target of exactly
what is left is reached first).
"""

from __future__ import annotations

import binascii
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from collections.abc import Callable, Sequence

from castrig.sim.emulator import Emulator

STX = 0x02
ETX = 0x03
CR = 0x0D

#: Inter-byte time-out inside a safe-mode packet (manual: 0.5 s).
PACKET_GAP_S = 0.5

#: What the syringe's end of travel allows beyond ``syringe_volume_ml`` (mL): a volume target of
#: exactly what is left ends as a target, not as a stall, whatever the rounding of the times.
TRAVEL_SLACK_ML = 1e-6

#: Pump rate units -> factor to mL/min.
RATE_UNITS: dict[str, float] = {"MM": 1.0, "MH": 1.0 / 60.0, "UM": 1e-3, "UH": 1.0 / 60000.0}
#: Pump volume units -> factor to mL.
VOLUME_UNITS: dict[str, float] = {"ML": 1.0, "UL": 1e-3}

#: Diameter at or below which the default volume units are µL (manual: 14.00 mm).
UL_DIAMETER_LIMIT_MM = 14.0

_BAUDS = (19200, 9600, 2400, 1200, 300)
_NUMBER = re.compile(r"^(\d*)(?:\.(\d*))?$")
_ADDRESS = re.compile(r"^(\*|\d{1,2})?(.*)$")
_RATE = re.compile(r"^([\d.]+)(MM|MH|UM|UH)?$")
_ADR = re.compile(r"^(\d{1,2})(?:B(\d+))?$")
#: Bytes the pump ignores in a command: spaces and control characters (all but 0x21-0x7E).
_IGNORED = bytes(b for b in range(256) if not 0x20 < b < 0x7F)


def crc16(data: bytes) -> int:
    """16-bit CCITT CRC with initial value 0, as the pump computes it."""
    return binascii.crc_hqx(data, 0)


def safe_packet(data: bytes) -> bytes:
    """Frame ``data`` as a safe-mode packet."""
    if type(data) is bytes:  # replies repeat (the prompt, a volume held all through a wait)
        return _safe_packet_cached(data)
    return _safe_packet(data)


def _safe_packet(data: bytes) -> bytes:
    return bytes([STX, len(data) + 4]) + data + crc16(data).to_bytes(2, "big") + bytes([ETX])


_safe_packet_cached = lru_cache(maxsize=256)(_safe_packet)

#: Packets and command lines up to this long are checked and taken apart once each (see
#: :func:`_good_packet_payload`, :func:`_command_parts`).
_PACKET_CACHE_BYTES = 64


@lru_cache(maxsize=256)
def _good_packet_payload(packet: bytes) -> bytes | None:
    """The data of ``packet`` when it is exactly one whole safe-mode packet with a good length,
    CRC and ETX (what :meth:`NE1000Emulator._receive_slow` and ``_on_packet`` pass on to
    ``_on_command``; a pure function of the bytes); ``None`` for anything else."""
    if len(packet) < 5 or packet[0] != STX or packet[1] < 4 or len(packet) != packet[1] + 1:
        return None
    length = packet[1]
    data, crc, end = packet[2:length - 2], packet[length - 2:length], packet[length]
    if end != ETX or int.from_bytes(crc, "big") != crc16(data):
        return None
    return data


@lru_cache(maxsize=256)
def _command_parts(raw: bytes) -> tuple[str | None, str]:
    """``(address, command)`` of a command line or packet's data, as ``_on_command`` takes it apart."""
    return NE1000Emulator._split_address(NE1000Emulator._clean(raw))


def format_number(value: float) -> str:
    """Print a value the way the pump does: at most 4 digits and always a decimal point."""
    v = abs(value)
    if v >= 9999.5:
        return "9999."
    if v < 9.9995:
        return f"{v:.3f}"
    if v < 99.995:
        return f"{v:.2f}"
    if v < 999.95:
        return f"{v:.1f}"
    return f"{v:.0f}."


class _Reject(Exception):
    """A command error, answered as ``?<code>`` after the prompt."""

    def __init__(self, code: str = ""):
        self.code = code


def _parse_number(text: str) -> float:
    """The manual's ``<float>``: at most 4 digits, at most 3 after the optional decimal point."""
    m = _NUMBER.match(text)
    if not m or not (m.group(1) or m.group(2)):
        raise _Reject("")
    whole, frac = m.group(1), m.group(2) or ""
    if len(whole.lstrip("0")) + len(frac) > 4 or len(frac) > 3:
        raise _Reject("OOR")
    return float(f"{whole or '0'}.{frac or '0'}")


#: Program phases (manual: 1 to 41).
PHASES = 41
#: The phase functions this emulator runs (the manual has more: INC, DEC, PAS, LPS, JMP, ...).
PHASE_FUNCTIONS = ("RAT", "STP")


@dataclass
class _Phase:
    """One phase of the pumping program: its function and, for a rate phase, its data."""

    function: str = "STP"
    rate_value: float = 1.0
    rate_units: str = "MM"
    volume_value: float = 0.0
    direction: str = "INF"


class _SelectedPhase:
    """An attribute of the pump that is the selected phase's (``RAT``, ``VOL``, ``DIR`` act on it)."""

    def __init__(self, name: str):
        self.name = name

    def __get__(self, pump: "NE1000Emulator | None", owner: type | None = None):  # type: ignore[no-untyped-def]
        return self if pump is None else getattr(pump._selected, self.name)

    def __set__(self, pump: "NE1000Emulator", value: object) -> None:
        setattr(pump._selected, self.name, value)


class NE1000Emulator(Emulator):
    """One NE-1000 pump: protocol, alarms, safe-mode watchdog, pumping program and plunger physics."""

    device_faults = frozenset({"stall"})

    def __init__(
        self,
        name: str,
        *,
        address: int = 0,
        baudrate: int = 19200,
        seed: int = 0,
        on_change: Callable[[float], None] | None = None,
        diameter_mm: float = 26.59,
        max_rate_ml_min: float | None = None,
        max_speed_mm_min: float = 51.0,
        min_speed_mm_min: float = 7.0e-4,
        firmware: str = "NE1000V3.928",
        safe_mode_s: int = 0,
        t0: float = 0.0,
        turnaround_s: float = 0.005,
        stall_after_s: float = 0.5,
        syringe_volume_ml: float | None = None,
    ):
        super().__init__(name, baudrate=baudrate, turnaround_s=turnaround_s, seed=seed)
        if not 0 <= address <= 99:
            raise ValueError(f"{name}: address {address} not in 0..99")
        self.on_change = on_change
        self.address = address
        self.firmware = firmware
        self.max_speed_mm_min = max_speed_mm_min
        self.min_speed_mm_min = min_speed_mm_min
        self._max_rate_override = max_rate_ml_min
        self.stall_after_s = stall_after_s
        #: What the syringe holds, full at power-up (None: a syringe without end, as before).
        self.syringe_volume_ml = syringe_volume_ml
        #: Where output goes when on a daisy chain (set by :class:`NE1000Chain`).
        self._port: Emulator | None = None
        # settings (non-volatile on the real pump); rate_value, rate_units, volume_value and
        # direction are those of the selected phase (the _SelectedPhase attributes below)
        self.diameter_mm = diameter_mm
        self.phases = [_Phase("RAT")] + [_Phase() for _ in range(PHASES - 1)]
        self.phase = 1  # the selected phase (PHN); while the program runs, the running one
        self._selected = self.phases[0]
        self.volume_units = self._default_volume_units()
        self.alarm_enabled = True
        self.safe_mode_s = safe_mode_s
        # run state
        self.prompt = "S"
        self.alarm: str | None = None
        self._run_remaining_ml: float | None = None
        self._flow = 0.0  # signed mL/min, + = out of the syringe
        self._t_mark = t0
        self._last_t = t0
        self._dis_inf_ml = 0.0
        self._dis_wdr_ml = 0.0
        self._out_ml = 0.0
        self._stall_at: float | None = None
        self._travel_end_at: float | None = None  # the plunger at the syringe's end (syringe_volume_ml)
        self._wd_last: float | None = None  # watchdog armed from this time; None = not armed
        # parser
        self._line = bytearray()
        self._pkt: bytearray | None = None
        self._pkt_t = 0.0
        self._advancing = False
        self._power_up(t0)

    # -- the selected phase's data ----------------------------------------------------------
    rate_value = _SelectedPhase("rate_value")
    rate_units = _SelectedPhase("rate_units")
    volume_value = _SelectedPhase("volume_value")
    direction = _SelectedPhase("direction")

    def _select(self, phase: int) -> None:
        self.phase = phase
        self._selected = self.phases[phase - 1]

    # -- the twin's view -------------------------------------------------------------------
    @property
    def safe(self) -> bool:
        return self.safe_mode_s > 0

    def max_rate_ml_min(self) -> float:
        """Fastest rate for the current syringe (purge rate)."""
        if self._max_rate_override is not None:
            return self._max_rate_override
        return self._area_mm2() * self.max_speed_mm_min / 1000.0

    def min_rate_ml_min(self) -> float:
        return self._area_mm2() * self.min_speed_mm_min / 1000.0

    def rate_ml_min(self) -> float:
        """The rate setting in mL/min."""
        return self.rate_value * RATE_UNITS[self.rate_units]

    def flow_ml_min(self, t: float) -> float:
        """Actual plunger flow at ``t`` (mL/min, positive while infusing)."""
        self._advance(t)
        return self._flow

    def dispensed_ml(self, t: float) -> float:
        """Net volume pushed out of the syringe by ``t`` since power-up (withdrawals subtract)."""
        self._advance(t)
        dt = t - self._t_mark  # max(0.0, dt) without the call: the twin asks at every step
        return self._out_ml + self._flow * (dt if dt > 0.0 else 0.0) / 60.0

    def counters_ml(self, t: float) -> tuple[float, float]:
        """The pump's own (``DIS``) infused and withdrawn counters at ``t``, in mL."""
        self._advance(t)
        dv = abs(self._flow) * max(0.0, t - self._t_mark) / 60.0
        inf = self._dis_inf_ml + (dv if self._flow > 0 else 0.0)
        wdr = self._dis_wdr_ml + (dv if self._flow < 0 else 0.0)
        return inf, wdr

    def state(self, t: float) -> str:
        """The prompt character at ``t`` (``A`` while an alarm is pending)."""
        self._advance(t)
        return "A" if self.alarm else self.prompt

    def power_cycle(self, t: float) -> None:
        """Power interrupted and restored at ``t``: the pump stops and reports alarm R."""
        self._advance(t)
        self._stop_motion(t, "S")
        self._line.clear()
        self._pkt = None
        self._power_up(t)

    def raise_alarm(self, kind: str, t: float) -> None:
        """Make the pump report alarm ``kind`` (``R S T E O``) at ``t``, stopping it as it would.

        For fault injection: ``E`` and ``O`` come from pumping programs, which the twin never
        runs, and ``S``/``T`` otherwise need a stall or a silent host.
        """
        if kind not in "RSTEO" or len(kind) != 1:
            raise ValueError(f"{self.name}: unknown alarm {kind!r} (allowed: R, S, T, E, O)")
        self._advance(t)
        self._stop_motion(t, "S")
        self._raise_alarm(kind, t)

    # -- faults ----------------------------------------------------------------------------
    def on_fault(self, fault: str, active: bool) -> None:
        if fault == "stall":
            if active and self._flow != 0.0:
                self._stall_at = self._last_t
            elif not active:
                self._stall_at = None

    def send(self, data: bytes, t: float) -> None:
        if self._port is None:
            super().send(data, t)
            return
        active = self.faults.active  # (the set itself: FaultState's `in` is a Python call)
        if "no_reply" in active or not self.connected:
            return
        self._port.send(self.corrupt(data) if active else data, t)  # (corrupt: data itself without faults)

    # -- time ------------------------------------------------------------------------------
    def poll(self, t: float) -> None:
        self._advance(t)

    def next_unsolicited_time(self, t: float) -> float | None:
        if not self.safe:
            return None
        # the earlier of the watchdog and a stall (the watchdog on a tie), without a list:
        # the link asks at every read
        wd = self._watchdog_deadline()
        stall = self._stall_at if self._flow != 0.0 else None
        end = self._travel_end_at if self._flow != 0.0 else None
        if end is not None and (stall is None or end < stall):
            stall = end
        if stall is None:
            return wd
        return stall if wd is None or stall < wd else wd

    def _watchdog_deadline(self) -> float | None:
        if self.safe and self._wd_last is not None:
            return self._wd_last + self.safe_mode_s
        return None

    def _target_end(self) -> float | None:
        if self._flow == 0.0 or self.prompt == "X" or self._run_remaining_ml is None:
            return None
        return self._t_mark + max(0.0, self._run_remaining_ml) / abs(self._flow) * 60.0

    def _advance(self, t: float) -> None:
        """Play the time-driven events (volume reached, stall, watchdog) due by ``t``, in order.

        Re-entrant calls (the twin catching up inside ``on_change`` and asking for the flow)
        return at once: the state before the change is what the twin must integrate with.
        """
        if self._advancing:
            return
        if self._flow == 0.0:
            # Standing still and no watchdog due: no volume target, stall or alarm can fall due.
            # The usual case (the twin asks a still pump several times per step), kept short.
            wd = self._wd_last
            if wd is None or self.safe_mode_s <= 0 or wd + self.safe_mode_s > t:
                if t > self._last_t:
                    self._last_t = t
                return
        self._advancing = True
        try:
            self._advance_events(t)
        finally:
            self._advancing = False

    def _advance_events(self, t: float) -> None:
        while True:
            # The earliest event due by ``t`` (ties in the order stall, target, watchdog), found
            # without building lists: this runs at every query the twin makes of the pump.
            te, kind = math.inf, ""
            if self._flow != 0.0:
                end = self._target_end()
                if end is not None and end <= t:
                    te, kind = end, "target"
                stall = self._stall_at
                if stall is not None and stall <= t and (stall, "stall") < (te, kind):
                    te, kind = stall, "stall"
                stall = self._travel_end_at  # the motor stalls against the syringe's end
                if stall is not None and stall <= t and (stall, "stall") < (te, kind):
                    te, kind = stall, "stall"
            wd = self._watchdog_deadline()
            if wd is not None and wd <= t and (wd, "watchdog") < (te, kind):
                te, kind = wd, "watchdog"
            if not kind:
                break
            te = max(te, self._t_mark)
            if kind == "target":
                self._next_phase(te)
            elif kind == "stall":
                self._stall_at = self._travel_end_at = None
                self._stop_motion(te, "S")
                self._raise_alarm("S", te)
            else:
                self._wd_last = None  # does not restart until the next valid packet
                self._stop_motion(te, "S")
                self._raise_alarm("T", te)
        self._last_t = max(self._last_t, t)

    # -- motion ----------------------------------------------------------------------------
    def _area_mm2(self) -> float:
        return math.pi / 4.0 * self.diameter_mm**2

    def _bank(self, t: float) -> None:
        dt = max(0.0, t - self._t_mark)
        dv = abs(self._flow) * dt / 60.0
        if self._flow > 0:
            self._dis_inf_ml += dv
        elif self._flow < 0:
            self._dis_wdr_ml += dv
        self._out_ml += self._flow * dt / 60.0
        if self._run_remaining_ml is not None and self.prompt != "X":
            self._run_remaining_ml -= dv
        self._t_mark = max(self._t_mark, t)

    def _changing(self, t: float) -> None:
        if self.on_change is not None:
            self.on_change(t)
        self._bank(t)

    def _sign(self) -> float:
        return -1.0 if self.direction == "WDR" else 1.0

    def _start_motion(self, t: float, prompt: str) -> None:
        self._changing(t)
        self.prompt = prompt
        rate = self.max_rate_ml_min() if prompt == "X" else self.rate_ml_min()
        self._flow = self._sign() * rate
        if "stall" in self.faults:
            self._stall_at = t + self.stall_after_s
        self._aim_travel_end(t)

    def _aim_travel_end(self, t: float) -> None:
        """When the plunger, infusing at the present flow, reaches the end of the syringe's travel
        (``syringe_volume_ml`` pushed out since power-up, net of withdrawals); after every change
        of the flow, the volume out banked up to ``t``."""
        if self.syringe_volume_ml is not None and self._flow > 0.0:
            left = self.syringe_volume_ml + TRAVEL_SLACK_ML - self._out_ml  # a target of all that is left is met first
            self._travel_end_at = t + max(0.0, left) / self._flow * 60.0
        else:
            self._travel_end_at = None

    def _stop_motion(self, t: float, prompt: str) -> None:
        ended = self.prompt != "S"  # a program that ran (or was paused) ends here when prompt is S
        if self._flow != 0.0:
            self._changing(t)
        else:
            self._bank(t)
        self._flow = 0.0
        self._travel_end_at = None
        self.prompt = prompt
        if prompt == "S":
            self._run_remaining_ml = None
            if ended and self.phase != 1:
                self._select(1)  # an ended program starts again at phase 1 (a STP when stopped keeps PHN)

    def _run_phase(self, t: float, phase: int) -> None:
        """Run the program from ``phase``: a rate phase moves the plunger, a ``STP`` phase (or the
        end of the program) stops it."""
        if phase <= PHASES and self.phases[phase - 1].function == "RAT":
            self._select(phase)
            target = self.volume_value * VOLUME_UNITS[self.volume_units]
            self._run_remaining_ml = target if target > 0 else None  # 0: pump until stopped
            self._start_motion(t, "W" if self.direction == "WDR" else "I")
            return
        self._stop_motion(t, "S")

    def _next_phase(self, t: float) -> None:
        """The running phase reached its volume target: on to the next phase."""
        self._stop_motion(t, "P")
        self._run_phase(t, self.phase + 1)

    def _raise_alarm(self, kind: str, t: float) -> None:
        self.alarm = kind
        if self.safe:  # auto-alarm: sent unprompted, does not acknowledge it
            self._emit(f"{self.address:02d}A?{kind}", t)

    def _power_up(self, t: float) -> None:
        self.prompt = "S"
        self._flow = 0.0
        self._run_remaining_ml = None
        self._stall_at = None
        self._wd_last = None  # in safe mode the watchdog waits for the first valid packet
        self.alarm = None
        self._raise_alarm("R", t)

    def reset_input(self) -> None:
        self._line.clear()
        self._pkt = None

    def _default_volume_units(self) -> str:
        return "UL" if self.diameter_mm <= UL_DIAMETER_LIMIT_MM else "ML"

    # -- bytes in --------------------------------------------------------------------------
    def receive_bytes(self, data: bytes, t: float) -> None:
        self._advance(t)
        if data.__class__ is not bytes:  # (bytes(data) of bytes is data itself, at a call's cost)
            data = bytes(data)
        if self._pkt is None and data and data[0] == STX:
            payload = _good_packet_payload(data) if len(data) <= _PACKET_CACHE_BYTES else None
            if payload is not None:
                # One whole good packet (how a host sends it): what _receive_slow -> _on_packet
                # do with it, its checks looked up (a host sends the same few packets all night:
                # the driver frames each command once).
                self._pkt_t = t
                self._line.clear()
                self._on_command(payload, t, packet=True)
                return
        if self._pkt is None and not self.safe and STX not in data:
            # Basic mode, no packet: whole command lines at a time (no per-byte Python work).
            start = 0
            while True:
                end = data.find(b"\r", start)
                if end < 0:
                    break
                self._line += data[start:end]
                line, self._line = bytes(self._line[:256]), bytearray()
                self._on_command(line, t, packet=False)
                start = end + 1
                if self.safe:  # SAF n switched to safe mode: the rest is parsed byte by byte
                    self._receive_slow(data[start:], t)
                    return
            self._line += data[start:]
            del self._line[256:]
            return
        self._receive_slow(data, t)

    def _receive_slow(self, data: bytes, t: float) -> None:
        if self._pkt is None and len(data) >= 5 and data[0] == STX and data[1] >= 4 and len(data) == data[1] + 1:
            # Exactly one whole packet (how a host sends it): what the byte loop below does
            # with it, without a Python step per byte.
            self._pkt_t = t
            self._line.clear()
            self._on_packet(data[1:], t)
            return
        for b in data:
            if self._pkt is not None and t - self._pkt_t > PACKET_GAP_S:
                self._pkt = None  # inter-byte time-out: the partial packet is discarded
            if self._pkt is not None:
                self._pkt.append(b)
                self._pkt_t = t
                length = self._pkt[0]
                if length < 4:
                    self._pkt = None
                elif len(self._pkt) == length:
                    pkt, self._pkt = bytes(self._pkt), None
                    self._on_packet(pkt, t)
                continue
            if b == STX:
                self._pkt = bytearray()
                self._pkt_t = t
                self._line.clear()
                continue
            if self.safe:
                continue  # outside a packet, safe mode listens to nothing
            if b == CR:
                line, self._line = bytes(self._line), bytearray()
                self._on_command(line, t, packet=False)
            elif len(self._line) < 256:
                self._line.append(b)

    def _on_packet(self, pkt: bytes, t: float) -> None:
        length = pkt[0]
        data, crc, end = pkt[1 : length - 3], pkt[length - 3 : length - 1], pkt[length - 1]
        if end != ETX or int.from_bytes(crc, "big") != crc16(data):
            text = self._clean(data)
            addr, _ = self._split_address(text)
            if addr in (None, "*") or int(addr) == self.address:
                self._reply("?COM", t, status=None)
            return
        self._on_command(data, t, packet=True)

    @staticmethod
    def _clean(raw: bytes) -> str:
        """Strip spaces and control characters, upper-case (as the pump does)."""
        return raw.translate(None, _IGNORED).decode("ascii").upper()

    @staticmethod
    def _split_address(text: str) -> tuple[str | None, str]:
        m = _ADDRESS.match(text)
        assert m is not None
        return m.group(1), m.group(2)

    def _on_command(self, raw: bytes, t: float, *, packet: bool) -> None:
        if type(raw) is bytes and len(raw) <= _PACKET_CACHE_BYTES:
            addr, cmd = _command_parts(raw)  # the same few commands all night: taken apart once each
        else:
            addr, cmd = self._split_address(self._clean(raw))
        system = addr == "*"
        if not system and (0 if addr is None else int(addr)) != self.address:
            return  # another pump's command
        if packet and self.safe:
            self._wd_last = t  # a valid packet restarts the communications time-out
        if self.alarm is not None:
            kind, self.alarm = self.alarm, None
            self._emit(f"{self.address:02d}A?{kind}", t)
            return
        try:
            data = self._execute(cmd, t, system)
        except _Reject as rej:
            data = f"?{rej.code}"
        self._reply(data, t, status=None)

    # -- bytes out -------------------------------------------------------------------------
    def _reply(self, data: str, t: float, status: str | None) -> None:
        self._emit(f"{self.address:02d}{status or self.prompt}{data}", t)

    def _emit(self, text: str, t: float) -> None:
        payload = text.encode("ascii")
        self.send(safe_packet(payload) if self.safe else bytes([STX]) + payload + bytes([ETX]), t)

    # -- commands --------------------------------------------------------------------------
    _COMMANDS3 = ("DIA", "RAT", "VOL", "DIR", "RUN", "STP", "PUR", "CLD", "DIS", "VER", "SAF", "ADR", "PHN", "FUN")
    _COMMANDS2 = ("AL",)

    def _execute(self, cmd: str, t: float, system: bool) -> str:
        if cmd == "":
            return ""
        name = cmd[:3] if cmd[:3] in self._COMMANDS3 else cmd[:2] if cmd[:2] in self._COMMANDS2 else None
        if name is None:
            raise _Reject("")
        arg = cmd[len(name) :]
        if name == "ADR" and not system:
            raise _Reject("")
        return getattr(self, f"_cmd_{name.lower()}")(arg, t)

    @property
    def _moving(self) -> bool:
        return self.prompt in ("I", "W", "X")

    def _cmd_dia(self, arg: str, t: float) -> str:
        if not arg:
            return format_number(self.diameter_mm)
        value = _parse_number(arg)
        if self._moving or self.prompt == "P":
            raise _Reject("NA")
        if not 0.1 <= value <= 50.0:
            raise _Reject("OOR")
        self.diameter_mm = value
        self.volume_units = self._default_volume_units()
        return ""

    def _cmd_rat(self, arg: str, t: float) -> str:
        if not arg:
            return format_number(self.rate_value) + self.rate_units
        m = _RATE.match(arg)
        if not m:
            raise _Reject("")
        value = _parse_number(m.group(1))
        units = m.group(2) or self.rate_units
        if self._moving and units != self.rate_units:
            raise _Reject("NA")  # rate units cannot be changed while pumping
        rate = value * RATE_UNITS[units]
        if not self.min_rate_ml_min() * 0.9999 <= rate <= self.max_rate_ml_min() * 1.0001:
            raise _Reject("OOR")
        if self._moving and self.prompt != "X":
            self._changing(t)
            self.rate_value, self.rate_units = value, units
            self._flow = self._sign() * self.rate_ml_min()
            self._aim_travel_end(t)
        else:
            self.rate_value, self.rate_units = value, units
        return ""

    def _cmd_vol(self, arg: str, t: float) -> str:
        if not arg:
            return format_number(self.volume_value) + self.volume_units
        if arg in VOLUME_UNITS:
            self.volume_units = arg
            return ""
        value = _parse_number(arg)
        if self._moving:
            raise _Reject("NA")
        self.volume_value = value
        return ""

    def _cmd_dir(self, arg: str, t: float) -> str:
        if not arg:
            return self.direction
        if arg not in ("INF", "WDR", "REV", "STK"):
            raise _Reject("")
        new = {"REV": "WDR" if self.direction == "INF" else "INF"}.get(arg, arg)
        if self._moving:
            if arg == "STK" or self.volume_value != 0.0 or self.prompt == "X":
                raise _Reject("NA")
            self._changing(t)
            self.direction = new
            self.prompt = "W" if new == "WDR" else "I"
            self._flow = self._sign() * self.rate_ml_min()
            self._aim_travel_end(t)
        else:
            self.direction = new
        return ""

    def _cmd_run(self, arg: str, t: float) -> str:
        phase = 1
        if arg:
            if not arg.isdigit():
                raise _Reject("")
            phase = int(arg)
            if not 1 <= phase <= PHASES:
                raise _Reject("OOR")
        if self._moving:
            return ""
        if self.prompt == "P":  # a paused phase goes on where it was
            self._start_motion(t, "W" if self.direction == "WDR" else "I")
        else:
            self._run_phase(t, phase)
        return ""

    def _cmd_phn(self, arg: str, t: float) -> str:
        if not arg:
            return f"{self.phase:02d}"
        if not arg.isdigit() or not 1 <= int(arg) <= PHASES:
            raise _Reject("OOR")
        if self._moving or self.prompt == "P":
            raise _Reject("NA")
        self._select(int(arg))
        return ""

    def _cmd_fun(self, arg: str, t: float) -> str:
        if not arg:
            return self._selected.function
        if self._moving or self.prompt == "P":
            raise _Reject("NA")
        if arg not in PHASE_FUNCTIONS:
            raise _Reject("NA")  # a function this emulator does not run
        self._selected.function = arg
        return ""

    def _cmd_pur(self, arg: str, t: float) -> str:
        if arg:
            raise _Reject("")
        if self._moving:
            raise _Reject("NA")
        self._start_motion(t, "X")
        return ""

    def press_stop(self, t: float) -> None:
        """The STOP key on the pump's front panel, pressed at ``t`` (someone at the bench): what
        ``STP`` does — the first press pauses a running program, the next stops it."""
        self._advance(t)
        self._cmd_stp("", t)

    def _cmd_stp(self, arg: str, t: float) -> str:
        if arg:
            raise _Reject("")
        if self.prompt == "X":
            self._stop_motion(t, "S")
        elif self._moving:
            self._stop_motion(t, "P")  # first STP pauses the program
        else:
            self._stop_motion(t, "S")  # STP while paused stops it
        return ""

    def _cmd_cld(self, arg: str, t: float) -> str:
        if arg not in ("INF", "WDR"):
            raise _Reject("")
        self._bank(t)
        if arg == "INF":
            self._dis_inf_ml = 0.0
        else:
            self._dis_wdr_ml = 0.0
        return ""

    def _cmd_dis(self, arg: str, t: float) -> str:
        if arg:
            raise _Reject("")
        inf, wdr = self.counters_ml(t)
        f = VOLUME_UNITS[self.volume_units]
        return f"I{format_number(inf / f)}W{format_number(wdr / f)}{self.volume_units}"

    def _cmd_ver(self, arg: str, t: float) -> str:
        if arg:
            raise _Reject("NA")
        return self.firmware

    def _cmd_saf(self, arg: str, t: float) -> str:
        if not arg:
            return str(self.safe_mode_s)
        if not arg.isdigit():
            raise _Reject("")
        n = int(arg)
        if not 0 <= n <= 255:
            raise _Reject("OOR")
        self.safe_mode_s = n
        self._wd_last = t if n > 0 else None
        return ""

    def _cmd_adr(self, arg: str, t: float) -> str:
        if not arg:
            return str(self.address)
        m = _ADR.match(arg)
        if not m:
            raise _Reject("")
        if m.group(2) is not None:
            baud = int(m.group(2))
            if baud not in _BAUDS:
                raise _Reject("OOR")
            if self._port is None:
                self.baudrate = baud
        self.address = int(m.group(1))
        return ""

    def _cmd_al(self, arg: str, t: float) -> str:
        if not arg:
            return "1" if self.alarm_enabled else "0"
        if arg not in ("0", "1"):
            raise _Reject("OOR")
        self.alarm_enabled = arg == "1"
        return ""


class NE1000Chain(Emulator):
    """Several pumps daisy-chained on one port: every pump hears every byte, each answers its address."""

    def __init__(
        self,
        name: str,
        pumps: Sequence[NE1000Emulator],
        *,
        baudrate: int = 19200,
        seed: int = 0,
        turnaround_s: float = 0.0,
    ):
        super().__init__(name, baudrate=baudrate, turnaround_s=turnaround_s, seed=seed)
        addresses = [p.address for p in pumps]
        if len(set(addresses)) != len(addresses):
            raise ValueError(f"{name}: duplicate pump addresses {addresses}")
        self.pumps = list(pumps)
        for p in self.pumps:
            p._port = self
            # Output queued at construction (power-up auto-alarms) moves onto the shared line.
            while p._out:
                t_ready, data = p._out.popleft()
                super().send(data, t_ready)

    def watch_faults(self, callback: Callable[[], None]) -> None:
        """A fault of the line or of one of its pumps (each pump's own inject and clear)."""
        super().watch_faults(callback)
        for p in self.pumps:
            p.watch_faults(callback)

    def unwatch_faults(self, callback: Callable[[], None]) -> None:
        super().unwatch_faults(callback)
        for p in self.pumps:
            p.unwatch_faults(callback)

    def pump(self, address: int) -> NE1000Emulator:
        for p in self.pumps:
            if p.address == address:
                return p
        raise KeyError(f"{self.name}: no pump at address {address}")

    def receive_bytes(self, data: bytes, t: float) -> None:
        for p in self.pumps:
            p.receive(data, t)

    def reset_io(self, t: float) -> None:
        for p in self.pumps:
            p.reset_io(t)
        super().reset_io(t)

    def reset_input(self) -> None:
        for p in self.pumps:
            p.reset_input()

    def poll(self, t: float) -> None:
        for p in self.pumps:
            p.poll(t)

    def next_unsolicited_time(self, t: float) -> float | None:
        times = [x for x in (p.next_unsolicited_time(t) for p in self.pumps) if x is not None]
        return min(times) if times else None
