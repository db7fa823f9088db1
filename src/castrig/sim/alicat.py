"""Emulator of an Alicat mass-flow controller (MC series) speaking the Alicat ASCII protocol.

Answers every command form of :mod:`castrig.devices.alicat`'s docstring, as the unit prints
it, so software written to the Alicat Serial Primer works against it unchanged:

* commands are ``<unit id><command>\\r``, the id not case sensitive; lines for another id are
  ignored (several units share an RS-232/485 line); ``*`` (broadcast) is accepted by modern
  firmware. Every reply is one line ending in CR.
* data frame ``A +014.70 +025.00 +016.67 +015.44 +015.44 N2``: signed, zero padded to 7
  characters with 2 decimals; modern firmware right-aligns the gas in 6 characters (its
  ``??D*`` table gives the gas a width of 6), legacy firmware prints it after one space (the
  form of DESIGN §2). ``firmware="totalizer"`` adds the totalizer (``+0000012.3``, standard
  litres) and the valve drive (``+045.21`` %) between the setpoint and the gas. Status codes
  follow the gas: ``HLD`` (valve hold), ``LCK`` (front panel locked), ``OVR`` (totalizer
  frozen at its maximum), ``MOV`` (mass flow over range).
* ``firmware="legacy"`` (8v17): ``AS<v>`` / ``AG<n>`` / registers; ``ALS`` and ``AGS`` are
  rejected with ``?``. ``"modern"`` / ``"totalizer"`` (10v20): also ``ALS [v]``, ``AGS [n]``;
  they reject with ``A ?``.
* a setpoint outside 0..full scale is limited to the range (Serial Primer: "the setpoint is
  limited to the controller range limits"); ``A<integer>`` sets it in counts (64000 = full
  scale).
* streaming: ``A@=@`` makes the unit id ``@`` and frames (without the id) are sent every
  register 91 milliseconds (default 50 ms); ``@@=A`` stops it and sets id ``A``. ``A@=B``
  changes the id. None of these is answered.

Physics for the twin: the actual flow follows the setpoint with a first-order lag
(``response_tau_s``) and is exposed as :meth:`flow_slpm` (the true flow, without noise) and
:meth:`dispensed_sl` (the totalized volume); the frame reports it with small seeded noise.
Device fault ``stuck``: the valve no longer moves, so the flow stays where it was.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable

from castrig.memo import MISSING, remember
from castrig.sim.emulator import LineEmulator

#: Gas Select numbers, short names (as in the frame) and long names (as ``AGS`` prints them).
GASES: dict[int, tuple[str, str]] = {
    0: ("Air", "Air"), 1: ("Ar", "Argon"), 2: ("CH4", "Methane"), 3: ("CO", "Carbon Monoxide"),
    4: ("CO2", "Carbon Dioxide"), 5: ("C2H6", "Ethane"), 6: ("H2", "Hydrogen"), 7: ("He", "Helium"),
    8: ("N2", "Nitrogen"), 9: ("N2O", "Nitrous Oxide"), 10: ("Ne", "Neon"), 11: ("O2", "Oxygen"),
    12: ("C3H8", "Propane"), 13: ("n-C4H10", "normal-Butane"), 14: ("C2H2", "Acetylene"),
    15: ("C2H4", "Ethylene"), 16: ("i-C4H10", "iso-Butane"), 17: ("Kr", "Krypton"), 18: ("Xe", "Xenon"),
    19: ("SF6", "Sulfur Hexafluoride"),
}

FIRMWARE_VERSIONS = {
    "legacy": "8v17.0-R23 Mar 14 2014,10:11:36",
    "modern": "10v20.0-R24 Jan  9 2025,15:04:07",
    "totalizer": "10v20.0-R24 Jan  9 2025,15:04:07",
}

#: Unit code and label of SLPM in the ``ALS`` reply (Serial Primer, engineering units table).
SLPM_UNIT_CODE = 7
SLPM_UNIT_LABEL = "SLPM"

REG_GAS = 46
REG_STREAM_MS = 91
REG_CONTROL_POINT = 122
#: Register 122's value for control on mass flow (NuMat's driver: 37; 34 absolute pressure).
CONTROL_MASS_FLOW = 37
#: ``$$``-prefixed commands of older firmware, as NuMat's driver sends them: hold the valve where
#: it is, cancel a hold, tare flow, tare pressure (``$$L``/``$$U``/``$$R``/``$$W`` are their own).
_DOLLAR_FORMS = {"H": "HP", "C": "C", "V": "V", "PC": "PC", "P": "P"}
WRITABLE_REGISTERS = frozenset({21, 22, 23, 85, REG_GAS, REG_STREAM_MS, REG_CONTROL_POINT})
MAX_REGISTER = 999
#: Frames kept while nobody reads a stream; older ones are lost, as in a full receive buffer.
MAX_STREAM_BACKLOG = 64
#: A setpoint argument that parses alike as bytes and as the upper-cased text (finite, no spaces).
_PLAIN_NUMBER = re.compile(rb"[+-]?[0-9]+(?:\.[0-9]*)?")
#: Memos (castrig.memo) of the usual ``ALS``: the setpoint per command line (``None``: not a plain
#: number after ``LS ``), and the reply's bytes per (id, setpoint). The RH loop sends the same
#: few hundred setpoints all night.
_LS_VALUES: dict[bytes, float | None] = {}
_SETPOINT_REPLIES: dict[tuple[str, float], bytes] = {}

#: Standard conditions of the mass-flow readings (Alicat default: 25 degC, 14.696 psia).
STD_TEMPERATURE_K = 298.15
STD_PRESSURE_PSIA = 14.696


def _signed(value: float, width: int = 7, decimals: int = 2) -> str:
    """``+014.70``: sign, zero padding to ``width`` characters, fixed decimals. ``z`` makes a
    value that rounds to zero print ``+`` (no "-000.00"), as rounding first and adding 0.0 did,
    without a ``round`` call per field."""
    if width == 7 and decimals == 2:  # the usual field, without building its format spec
        return format(value, "+z07.2f")
    return format(value, f"+z0{width}.{decimals}f")


class AlicatEmulator(LineEmulator):
    """One Alicat MC-series controller: protocol, state and the flow it delivers."""

    terminators = (b"\r",)
    device_faults = frozenset({"stuck"})

    def __init__(
        self,
        name: str,
        *,
        unit_id: str = "A",
        full_scale_slpm: float,
        gas: str | int = "Air",
        firmware: str = "modern",
        response_tau_s: float = 0.5,
        seed: int = 0,
        on_change: Callable[[float], None] | None = None,
        pressure_psia: float = 14.70,
        temperature_c: float = 25.0,
        noise_slpm: float | None = None,
        pressure_noise_psia: float = 0.003,
        temperature_noise_c: float = 0.01,
        baudrate: int = 19200,
        turnaround_s: float = 0.005,
        t0: float = 0.0,
        serial_number: str = "123456",
    ):
        super().__init__(name, baudrate=baudrate, turnaround_s=turnaround_s, seed=seed)
        if firmware not in FIRMWARE_VERSIONS:
            raise ValueError(f"{name}: firmware must be one of {sorted(FIRMWARE_VERSIONS)}, got {firmware!r}")
        if not (len(unit_id) == 1 and unit_id.isalpha()):
            raise ValueError(f"{name}: unit id must be one letter A-Z, got {unit_id!r}")
        self.unit_id = unit_id.upper()
        #: In ``??M*`` (manufacturing info): what tells two units with the same id apart.
        self.serial_number = serial_number
        self.full_scale_slpm = float(full_scale_slpm)
        self.firmware = firmware
        self.response_tau_s = float(response_tau_s)
        self.on_change = on_change
        self.pressure_psia = pressure_psia
        self.temperature_c = temperature_c
        self.noise_slpm = 0.0005 * self.full_scale_slpm if noise_slpm is None else noise_slpm
        self.pressure_noise_psia = pressure_noise_psia
        self.temperature_noise_c = temperature_noise_c
        self._rng = random.Random(seed)

        self.gas_number = self._gas_lookup(gas)
        self.setpoint_slpm = 0.0
        self.hold: str | None = None  # None | "position" | "closed"
        self.locked = False
        self.streaming = False
        self.totalizer_sl = 0.0
        #: The totalizer freezes here and the frame shows OVR (Primer: "frozen at max value").
        self.totalizer_max_sl = 9_999_999.9
        self.registers: dict[int, int] = {
            21: 4000, 22: 1500, 23: 0, 85: 1,
            REG_STREAM_MS: 50,
            REG_CONTROL_POINT: 37,  # mass flow
        }
        self._t0 = float(t0)  # power-up time: physics starts here
        self._f0 = 0.0
        self._delivered_sl = 0.0
        self._t_seen = float(t0)  # the latest time the link showed us: faults act from there
        self._frozen_flow: float | None = None  # valve position held (HP) or stuck
        self._next_stream_t: float | None = None

    # -- physics for the twin ----------------------------------------------------------------
    def _target(self) -> float:
        if "stuck" in self.faults or self.hold == "position":
            return self._frozen_flow if self._frozen_flow is not None else self._f0
        if self.hold == "closed":
            return 0.0
        return self.setpoint_slpm

    def _advance(self, t: float) -> None:
        """Integrate flow and totalizer from the last event to ``t`` (exact for a first-order lag)."""
        dt = t - self._t0
        if dt <= 0:
            return
        # The twin calls this several times per step: plain comparisons instead of max/min
        # calls, and no _target() call in the usual state (no fault, no hold); same values.
        if self.hold is None and not self.faults.active:
            target = self.setpoint_slpm
        else:
            target = self._target()
        tau = self.response_tau_s
        if 1e-9 > tau:
            tau = 1e-9
        decay = math.exp(-dt / tau)
        f0 = self._f0
        f = target + (f0 - target) * decay
        volume_sl = (target * dt + (f0 - target) * tau * (1.0 - decay)) / 60.0
        total = self.totalizer_sl + (0.0 if 0.0 > volume_sl else volume_sl)
        self.totalizer_sl = self.totalizer_max_sl if self.totalizer_max_sl < total else total
        self._delivered_sl += volume_sl
        self._t0, self._f0 = t, f

    def flow_slpm(self, t: float) -> float:
        """The actual mass flow at time ``t`` (SLPM, no measurement noise)."""
        self._advance(t)
        return self._f0

    def delivered_sl(self, t: float) -> float:
        """Standard litres that went through since power-up (the flow's exact integral; unlike
        the totalizer, never reset or frozen): the twin's chamber takes its mean flow from it."""
        self._advance(t)
        return self._delivered_sl

    def dispensed_sl(self, t: float) -> float:
        """Standard litres delivered since power-up (what the totalizer counts)."""
        self._advance(t)
        return self.totalizer_sl

    def _changing(self, t: float) -> None:
        """Before an actuator change: let the twin integrate up to ``t``, then bring us there."""
        if self.on_change is not None:
            self.on_change(t)
        self._advance(t)

    def inject(self, fault: str, t: float | None = None) -> None:
        """Switch a fault on; ``t`` is when (the emulator only knows the times it is called at)."""
        if t is not None:
            self._t_seen = max(self._t_seen, t)
        super().inject(fault)

    def clear(self, fault: str | None = None, t: float | None = None) -> None:
        if t is not None:
            self._t_seen = max(self._t_seen, t)
        super().clear(fault)

    def hold_at_front_panel(self, t: float) -> None:
        """Hold the valve where it is, as its front panel (or another client's ``AHP``) does: the
        frame shows HLD and setpoints no longer move the valve until a cancel (``AC``)."""
        self._changing(t)
        self.hold = "position"
        self._frozen_flow = self._f0

    def on_fault(self, fault: str, active: bool) -> None:
        if fault == "stuck":
            # Integrate up to the last moment we know of under the state before the change
            # (``inject``/``clear`` have already updated the fault set), then freeze or free.
            if active:
                self.faults.active.discard("stuck")
            else:
                self.faults.active.add("stuck")
            self._advance(self._t_seen)
            if active:
                self.faults.active.add("stuck")
            else:
                self.faults.active.discard("stuck")
            self._frozen_flow = self._f0 if active else (self._f0 if self.hold == "position" else None)

    # -- formatting --------------------------------------------------------------------------
    @property
    def modern(self) -> bool:
        return self.firmware != "legacy"

    def _id_for_replies(self) -> str:
        return "@" if self.streaming else self.unit_id

    def _reject(self) -> str:
        return f"{self._id_for_replies()} ?" if self.modern else "?"

    def status_codes(self, mass_slpm: float) -> list[str]:
        codes: list[str] = []
        if self.hold is not None:
            codes.append("HLD")
        if self.locked:
            codes.append("LCK")
        if abs(mass_slpm) > 1.28 * self.full_scale_slpm:
            codes.append("MOV")
        if self.firmware == "totalizer" and self.totalizer_sl >= self.totalizer_max_sl:
            codes.append("OVR")
        return codes

    def frame(self, t: float, *, with_id: bool = True) -> str:
        """The data frame at ``t`` as the unit prints it (without CR)."""
        self._advance(t)
        rng = self._rng
        mass = self._f0 + rng.gauss(0.0, self.noise_slpm)
        pressure = self.pressure_psia + rng.gauss(0.0, self.pressure_noise_psia)
        temperature = self.temperature_c + rng.gauss(0.0, self.temperature_noise_c)
        volumetric = mass * (temperature + 273.15) / STD_TEMPERATURE_K * STD_PRESSURE_PSIA / pressure
        # the five usual fields (_signed's form) in one format
        fields = [f"{pressure:+z07.2f} {temperature:+z07.2f} {volumetric:+z07.2f} {mass:+z07.2f} "
                  f"{self.setpoint_slpm:+z07.2f}"]
        if self.firmware == "totalizer":
            fields.append(_signed(self.totalizer_sl, 10, 1))
            drive = 0.0 if self._target() <= 0 else 20.0 + 60.0 * self._f0 / self.full_scale_slpm
            fields.append(_signed(drive))
        short = GASES[self.gas_number][0]
        fields.append(f"{short:>6}" if self.modern else short)
        fields.extend(self.status_codes(mass))
        line = " ".join(fields)
        return f"{self.unit_id} {line}" if with_id else line

    # -- streaming ---------------------------------------------------------------------------
    def _stream_interval_s(self) -> float:
        return max(self.registers.get(REG_STREAM_MS, 50), 1) / 1000.0

    def poll(self, t: float) -> None:
        if t > self._t_seen:
            self._t_seen = t
        if not self.streaming or self._next_stream_t is None:
            return
        interval = self._stream_interval_s()
        if (t - self._next_stream_t) / interval > MAX_STREAM_BACKLOG:
            self._next_stream_t = t - MAX_STREAM_BACKLOG * interval
        while self._next_stream_t <= t:
            ts = self._next_stream_t
            self.send(self.frame(max(ts, self._t0), with_id=False).encode("ascii") + b"\r", ts)
            self._next_stream_t = ts + interval

    def next_unsolicited_time(self, t: float) -> float | None:
        return self._next_stream_t if self.streaming else None

    # -- protocol ----------------------------------------------------------------------------
    def handle_line(self, line: bytes, t: float) -> None:
        if t > self._t_seen:
            self._t_seen = t
        if not self.streaming and line[:1] == self.unit_id.encode():
            # The two commands of every control period, as a driver sends them (the id as the
            # unit has it, no spaces around): the poll and a modern ``ALS <number>``. The same
            # state changes and reply as the general path below, without taking the line apart.
            if len(line) == 1:
                self.send(self.frame(t).encode("ascii") + b"\r", t)
                return
            if line[1:4] == b"LS " and self.firmware != "legacy":
                value = _LS_VALUES.get(line, MISSING)
                if value is MISSING:
                    value = remember(_LS_VALUES, line, float(line[4:]) if _PLAIN_NUMBER.fullmatch(line, 4) else None)
                if value is not None:
                    self._set_setpoint(value, t)
                    uid, setpoint = self.unit_id, self.setpoint_slpm
                    reply = _SETPOINT_REPLIES.get((uid, setpoint))
                    if reply is None:
                        reply = remember(_SETPOINT_REPLIES, (uid, setpoint), self._setpoint_reply(uid).encode("ascii") + b"\r")
                    self.send(reply, t)
                    return
        text = line.decode("ascii", errors="replace").strip()
        if not text:
            return
        address, body = text[0].upper(), text[1:].strip()
        mine = "@" if self.streaming else self.unit_id
        if address != mine and not (address == "*" and self.modern):
            return  # another unit's line on the shared bus
        reply = self._command(body, t)
        if reply is not None:
            self.send(reply.encode("ascii") + b"\r", t)

    def _manufacturing(self) -> list[str]:
        scale = f"{self.full_scale_slpm:g}SLPM"
        return ["Alicat Scientific Inc.", "www.alicat.com", "Ph   520-290-6060", "+1 888-290-6060",
                f"Model Number MC-{scale}-D", f"Serial Number {self.serial_number}", "Date Manufactured 06/12/2025",
                "Date Calibrated 06/12/2025", "Calibrated By  AS", f"Software Revision {FIRMWARE_VERSIONS[self.firmware]}"]

    def _frame_reply(self, t: float) -> str:
        """The data frame a command is answered with (without the id while streaming)."""
        return self.frame(t, with_id=not self.streaming)

    def _command(self, body: str, t: float) -> str | None:
        cmd = body.upper()
        if cmd == "":  # the poll, most frequent with the setpoint below
            return self._frame_reply(t)
        uid = "@" if self.streaming else self.unit_id  # _id_for_replies()
        if cmd[0] == "L" and cmd[1:2] == "S":  # the setpoint: no branch above LS takes a command starting "LS"
            return self._ls(cmd, uid, t)
        if cmd.startswith("@="):
            return self._change_id(cmd[2:].strip(), t)
        if cmd.startswith("$$"):
            rest = cmd[2:]
            if rest in ("L", "U"):
                self.locked = rest == "L"
                return self._frame_reply(t)
            if rest.startswith("R") or rest.startswith("W"):
                return self._register(rest, uid, t)
            if rest in _DOLLAR_FORMS:  # the older firmware's forms, which NuMat's driver sends
                return self._command(_DOLLAR_FORMS[rest], t)
            return self._reject()
        if cmd[0] in "RW" and len(cmd) > 1 and cmd[1].isdigit():
            return self._register(cmd, uid, t)
        if cmd == "??M*":  # manufacturing info: ten lines, as the units send it
            return "\r".join(f"{uid} M{k:02d} {text}" for k, text in enumerate(self._manufacturing()))
        if cmd == "VE":
            return f"{uid}   {FIRMWARE_VERSIONS[self.firmware]}"
        if cmd.startswith("LS"):
            return self._ls(cmd, uid, t)
        if cmd.startswith("GS"):
            if not self.modern:
                return self._reject()
            arg = cmd[2:].strip()
            if arg:
                number = self._integer(arg.split()[0])
                if number is None or number not in GASES:
                    return self._reject()
                self._set_gas(number, t)
            short, long = GASES[self.gas_number]
            return f"{uid} {self.gas_number} {short} {long}"
        if cmd in ("HP", "HC"):
            self._changing(t)
            self.hold = "position" if cmd == "HP" else "closed"
            self._frozen_flow = self._f0
            return self._frame_reply(t)
        if cmd == "C":
            self._changing(t)
            self.hold = None
            if "stuck" not in self.faults:
                self._frozen_flow = None
            return self._frame_reply(t)
        if cmd in ("L", "U"):
            self.locked = cmd == "L"
            return self._frame_reply(t)
        if cmd in ("V", "P", "PC"):
            return self._frame_reply(t)  # tares: nothing to zero in the emulator
        if cmd.startswith("S") and not cmd.startswith("SR"):
            value = self._number(cmd[1:].strip())
            if value is None:
                return self._reject()
            self._set_setpoint(value, t)
            return self._frame_reply(t)
        if cmd.startswith("G") and cmd[1:].strip().isdigit():
            number = int(cmd[1:].strip())
            if number not in GASES:
                return self._reject()
            self._set_gas(number, t)
            return self._frame_reply(t)
        if cmd.isdigit():
            self._set_setpoint(int(cmd) / 64000.0 * self.full_scale_slpm, t)
            return self._frame_reply(t)
        return self._reject()

    def _ls(self, cmd: str, uid: str, t: float) -> str:
        """``ALS [v]``: set (when given) and report the setpoint (modern firmware)."""
        if self.firmware == "legacy":  # not self.modern
            return self._reject()
        arg = cmd[2:].strip()
        if arg:
            value = self._number(arg)
            if value is None:
                return self._reject()
            self._set_setpoint(value, t)
        return self._setpoint_reply(uid)

    def _setpoint_reply(self, uid: str) -> str:
        """``ALS``'s reply: the setpoint twice (requested and in effect), the unit."""
        setpoint = format(self.setpoint_slpm, "+z07.2f")  # _signed(self.setpoint_slpm)
        return f"{uid} {setpoint} {setpoint} {SLPM_UNIT_CODE} {SLPM_UNIT_LABEL}"

    @staticmethod
    def _number(text: str) -> float | None:
        try:
            value = float(text)
        except ValueError:
            return None
        return value if math.isfinite(value) else None

    @staticmethod
    def _integer(text: str) -> int | None:
        try:
            return int(text)
        except ValueError:
            return None

    def _set_setpoint(self, value: float, t: float) -> None:
        self._changing(t)
        value = 0.0 if 0.0 > value else value  # min(max(value, 0.0), full scale) as comparisons
        fs = self.full_scale_slpm
        self.setpoint_slpm = fs if fs < value else value

    def _set_gas(self, number: int, t: float) -> None:
        self._changing(t)
        self.gas_number = number

    def _change_id(self, new: str, t: float) -> None:
        if new == "@":
            if not self.streaming:
                self.streaming = True
                self._next_stream_t = t + self.turnaround_s
            return None
        if len(new) == 1 and new.isalpha():
            self.unit_id = new.upper()
            self.streaming = False
            self._next_stream_t = None
        return None

    def _register(self, cmd: str, uid: str, t: float) -> str:
        """``R<n>`` or ``W<n>=<v>`` (``$$`` already stripped) -> ``A   046 = 8``."""
        if cmd.startswith("R"):
            number = self._integer(cmd[1:].strip())
            if number is None or not 0 <= number <= MAX_REGISTER:
                return self._reject()
            return f"{uid}   {number:03d} = {self._read_register(number)}"
        reg_text, sep, value_text = cmd[1:].partition("=")
        number = self._integer(reg_text.strip())
        value = self._integer(value_text.strip())
        if not sep or number is None or value is None or number not in WRITABLE_REGISTERS:
            return self._reject()
        if number == REG_GAS:
            gas = value & 0x1FF
            if gas not in GASES:
                return self._reject()
            self._set_gas(gas, t)
        elif number == REG_CONTROL_POINT and value != CONTROL_MASS_FLOW:
            # the emulator controls mass flow only: a pressure control point it took and ignored,
            # its setpoints then clamped to the flow's full scale (NuMat's set_pressure failed)
            return self._reject()
        elif number == REG_STREAM_MS:
            if value < 1:
                return self._reject()
            self.registers[number] = value
        else:
            self.registers[number] = value
        return f"{uid}   {number:03d} = {self._read_register(number)}"

    def _read_register(self, number: int) -> int:
        if number == REG_GAS:
            return self.gas_number
        return self.registers.get(number, 0)

    @staticmethod
    def _gas_lookup(gas: str | int) -> int:
        if isinstance(gas, int):
            if gas not in GASES:
                raise ValueError(f"unknown gas number {gas}")
            return gas
        for number, (short, long) in GASES.items():
            if gas.upper() in (short.upper(), long.upper()):
                return number
        raise ValueError(f"unknown gas {gas!r}")
