"""Emulator of a humidity chamber with its own controller, speaking the SCPI dialect of
:mod:`castrig.devices.scpi_chamber` (documented there, with every reply form).

The emulator keeps the controller's state in plain attributes (``setpoint_rh_pct``,
``output_on``) and its chamber air in :meth:`rh_pct` / :meth:`temperature_c`: a first-order
approach to the setpoint while the humidifier output is on, and to the dry-purge RH while it is
off. The digital twin replaces that physics by passing ``source(t) -> (rh_pct, temperature_c)``
and follows every actuator change through ``on_change(t)``, called before the change.

Injected faults: the generic ``no_reply``, ``garbage``, ``drop``, and ``stuck`` (the
controller's readings freeze at the last value reported, as a failed probe or a hung display
board would: the chamber still answers, the numbers stop moving).
"""

from __future__ import annotations

import math
import random
import re
from collections import deque
from collections.abc import Callable

from castrig.sim.emulator import LineEmulator

Source = Callable[[float], tuple[float, float]]

#: SCPI error queue length (IEEE 488.2 asks for at least 2; most instruments keep 10-30).
ERROR_QUEUE_LEN = 10

NO_ERROR = (0, "No error")
ERR_UNDEFINED_HEADER = (-113, "Undefined header")
ERR_DATA_OUT_OF_RANGE = (-222, "Data out of range")
ERR_DATA_TYPE = (-104, "Data type error")
ERR_MISSING_PARAMETER = (-109, "Missing parameter")
ERR_PARAMETER_NOT_ALLOWED = (-108, "Parameter not allowed")
ERR_ILLEGAL_PARAMETER = (-224, "Illegal parameter value")
ERR_QUEUE_OVERFLOW = (-350, "Queue overflow")

_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def _header_matches(word: str, long_form: str) -> bool:
    """SCPI keyword match: the short form (upper-case part) or the full long form."""
    short = "".join(ch for ch in long_form if ch.isupper() or ch.isdigit())
    word = word.upper()
    return word in (short, long_form.upper())


def _match(parts: list[str], pattern: list[str]) -> bool:
    """Match header parts against a pattern; ``[KEYword]`` nodes are optional."""
    i = 0
    for node in pattern:
        optional = node.startswith("[")
        name = node.strip("[]")
        if i < len(parts) and _header_matches(parts[i], name):
            i += 1
        elif not optional:
            return False
    return i == len(parts)


class ChamberAir:
    """The controller's RH state and the chamber air it drives, shared by every chamber emulator
    with its own controller (this SCPI dialect, the Watlow F4 and F4T).

    State in plain attributes (``setpoint_rh_pct``, ``output_on``) read by the twin; the air
    in :meth:`rh_pct` / :meth:`temperature_c`: a first-order approach (``tau_s``) to the
    setpoint while the humidifier output is on, to ``dry_rh_pct`` while it is off. The twin
    replaces that physics by ``source(t) -> (rh_pct, temperature_c)`` and follows every change
    through ``on_change(t)``, called before the change.
    """

    def _init_air(
        self,
        *,
        on_change: Callable[[float], None] | None,
        source: Source | None,
        tau_s: float,
        dry_rh_pct: float,
        initial_rh_pct: float,
        temperature_c: float,
        setpoint_rh_pct: float = 50.0,
    ) -> None:
        self.on_change = on_change
        self.source = source
        self.tau_s = tau_s
        self.dry_rh_pct = dry_rh_pct
        self.ambient_temperature_c = temperature_c
        # Controller state (read by the twin).
        self.setpoint_rh_pct = setpoint_rh_pct
        self.output_on = False
        # First-order air state: rh(t) = target + (rh0 - target) * exp(-(t - t0) / tau); t0 is
        # the first time the emulator hears from anyone (wall-clock servers start far from 0).
        self._rh0 = initial_rh_pct
        self._t0: float | None = None

    # -- state for the twin ----------------------------------------------------------------
    def _target(self) -> float:
        return self.setpoint_rh_pct if self.output_on else self.dry_rh_pct

    def rh_pct(self, t: float) -> float:
        """The chamber air's RH at ``t`` (from ``source`` when the twin supplies it)."""
        if self.source is not None:
            return float(self.source(t)[0])
        if self._t0 is None:
            self._t0 = t
        dt = max(0.0, t - self._t0)
        target = self._target()
        return target + (self._rh0 - target) * math.exp(-dt / self.tau_s)

    def temperature_c(self, t: float) -> float:
        if self.source is not None:
            return float(self.source(t)[1])
        return self.ambient_temperature_c

    def _change(self, t: float) -> None:
        """Before a setpoint/output change: let the twin integrate, and restart our curve."""
        if self.on_change is not None:
            self.on_change(t)
        self._rh0 = self.rh_pct(t)
        self._t0 = t

    def set_setpoint(self, rh_pct: float, t: float) -> None:
        self._change(t)
        self.setpoint_rh_pct = rh_pct

    def set_output(self, on: bool, t: float) -> None:
        self._change(t)
        self.output_on = on


class ScpiChamberEmulator(ChamberAir, LineEmulator):
    """A climatic chamber's RH controller on a LF-terminated SCPI line (VISA socket or serial).

    ``tau_s`` is the chamber's response time constant, ``dry_rh_pct`` the RH the dry purge
    reaches, ``noise_rh_pct`` the standard deviation of the reading noise (seeded).
    """

    terminators = (b"\n",)
    device_faults = frozenset({"stuck"})

    def __init__(
        self,
        name: str,
        *,
        seed: int = 0,
        on_change: Callable[[float], None] | None = None,
        source: Source | None = None,
        tau_s: float = 60.0,
        dry_rh_pct: float = 3.0,
        initial_rh_pct: float = 40.0,
        temperature_c: float = 23.0,
        noise_rh_pct: float = 0.0,
        idn: str = "CASTRIG,HC-SCPI-1,000001,1.00",
        turnaround_s: float = 0.005,
        baudrate: int | None = None,
    ):
        super().__init__(name, seed=seed, turnaround_s=turnaround_s, baudrate=baudrate)
        self._init_air(on_change=on_change, source=source, tau_s=tau_s, dry_rh_pct=dry_rh_pct,
                       initial_rh_pct=initial_rh_pct, temperature_c=temperature_c)
        self.noise_rh_pct = noise_rh_pct
        self.idn = idn
        self._rng = random.Random(seed)
        self.errors: deque[tuple[int, str]] = deque()
        #: IEEE 488.2 status: the Standard Event Status Register, its enable mask, the Service Request enable mask
        self.esr = self.ese = self.sre = 0
        self._frozen: dict[str, float] = {}
        self._last: dict[str, float] = {}
        #: Every command line received, with its time (for tests and the twin's event log).
        self.log: list[tuple[float, str]] = []

    def reset(self, t: float) -> None:
        """``*RST``: output off (dry purge), setpoint 50.0 %RH; the error queue is kept."""
        self._change(t)
        self.output_on = False
        self.setpoint_rh_pct = 50.0

    # -- faults ----------------------------------------------------------------------------
    def on_fault(self, fault: str, active: bool) -> None:
        if fault == "stuck":
            self._frozen = dict(self._last) if active else {}

    def _reading(self, key: str, value: float) -> float:
        if "stuck" in self.faults:
            if key not in self._frozen:
                self._frozen[key] = value
            return self._frozen[key]
        self._last[key] = value
        return value

    # -- error queue -----------------------------------------------------------------------
    def push_error(self, error: tuple[int, str]) -> None:
        # IEEE 488.2's Standard Event Status Register: -1xx command, -2xx execution, -3xx device
        # dependent, -4xx query errors set bits 5, 4, 3 and 2 (read and cleared by *ESR?)
        self.esr |= {1: 32, 2: 16, 3: 8, 4: 4}.get(-error[0] // 100, 0)
        if len(self.errors) >= ERROR_QUEUE_LEN:
            # SCPI: the last entry is replaced by -350 when the queue is full.
            self.errors[-1] = ERR_QUEUE_OVERFLOW
            return
        self.errors.append(error)

    # -- protocol --------------------------------------------------------------------------
    def handle_line(self, line: bytes, t: float) -> None:
        if self._t0 is None:
            self._t0 = t
        text = line.decode("ascii", errors="replace").strip()
        self.log.append((t, text))
        if not text:
            return
        replies: list[str] = []
        for unit in text.split(";"):
            unit = unit.strip()
            if not unit:
                continue
            reply = self._command(unit, t)
            if reply is not None:
                replies.append(reply)
        if replies:
            # IEEE 488.2: replies to several queries in one message are joined by ';'.
            self.send((";".join(replies) + "\n").encode("ascii"), t)

    def _command(self, unit: str, t: float) -> str | None:
        # (IEEE 488.2: any white space between a header and its data, a tab as well as a space)
        header, _, arg = unit.replace("\t", " ").partition(" ")
        arg = arg.strip()
        query = header.endswith("?")
        header = header.rstrip("?")
        if header.startswith("*"):
            return self._common(header.upper(), query, arg, t)
        parts = header.lstrip(":").split(":")
        if query and arg and self._known_query(parts):
            # A query with a parameter this dialect does not take: error, no reply (SCPI).
            self.push_error(ERR_PARAMETER_NOT_ALLOWED)
            return None
        if _match(parts, ["[SOURce]", "HUMidity", "[SETpoint]"]):
            if query:
                return f"{self.setpoint_rh_pct:.1f}"
            value = self._number(arg, minimum=0.0, maximum=100.0, default=50.0)
            if value is not None:
                self.set_setpoint(round(value, 1), t)
            return None
        if _match(parts, ["MEASure", "HUMidity"]) and query:
            rh = self.rh_pct(t)
            if self.noise_rh_pct:
                rh += self._rng.gauss(0.0, self.noise_rh_pct)
            rh = min(100.0, max(0.0, rh))
            return f"{self._reading('rh', rh):.2f}"
        if _match(parts, ["MEASure", "TEMPerature"]) and query:
            return f"{self._reading('t', self.temperature_c(t)):.2f}"
        if _match(parts, ["OUTPut", "[STATe]"]):
            if query:
                return "1" if self.output_on else "0"
            word = arg.upper()
            if not word:
                self.push_error(ERR_MISSING_PARAMETER)
            elif word in ("ON", "1"):
                self.set_output(True, t)
            elif word in ("OFF", "0"):
                self.set_output(False, t)
            else:
                self.push_error(ERR_ILLEGAL_PARAMETER)
            return None
        if _match(parts, ["SYSTem", "ERRor", "[NEXT]"]) and query:
            code, message = self.errors.popleft() if self.errors else NO_ERROR
            return f'{code},"{message}"'
        self.push_error(ERR_UNDEFINED_HEADER)
        return None

    def _common(self, header: str, query: bool, arg: str, t: float) -> str | None:
        if header == "*IDN" and query:
            return self.idn
        if header == "*OPC" and query:
            return "1"
        if header == "*RST" and not query:
            self.reset(t)
            return None
        if header == "*CLS" and not query:
            self.errors.clear()
            self.esr = 0
            return None
        # the rest of IEEE 488.2's mandatory common commands, as generic SCPI clients use them
        if header == "*ESR" and query:
            esr, self.esr = self.esr, 0
            return str(esr)
        if header == "*ESE":
            if query:
                return str(self.ese)
            value = self._number(arg, minimum=0.0, maximum=255.0, default=0.0)
            if value is not None:
                self.ese = int(value)
            return None
        if header == "*STB" and query:  # bit 2: the error queue holds something; 5: an enabled event
            return str((4 if self.errors else 0) | (32 if self.esr & self.ese else 0))
        if header == "*SRE":
            if query:
                return str(self.sre)
            value = self._number(arg, minimum=0.0, maximum=255.0, default=0.0)
            if value is not None:
                self.sre = int(value) & ~64
            return None
        if header == "*WAI" and not query:
            return None  # every command is done before the next is read
        if header == "*TST" and query:
            return "0"  # self-test passed
        self.push_error(ERR_UNDEFINED_HEADER)
        return None

    @staticmethod
    def _known_query(parts: list[str]) -> bool:
        return any(
            _match(parts, pattern)
            for pattern in (
                ["[SOURce]", "HUMidity", "[SETpoint]"],
                ["MEASure", "HUMidity"],
                ["MEASure", "TEMPerature"],
                ["OUTPut", "[STATe]"],
                ["SYSTem", "ERRor", "[NEXT]"],
            )
        )

    def _number(self, arg: str, *, minimum: float, maximum: float, default: float) -> float | None:
        if not arg:
            self.push_error(ERR_MISSING_PARAMETER)
            return None
        word = arg.upper()
        keywords = {"MIN": minimum, "MINIMUM": minimum, "MAX": maximum, "MAXIMUM": maximum, "DEF": default, "DEFAULT": default}
        if word in keywords:
            return keywords[word]
        if not _NUMBER.match(arg):
            self.push_error(ERR_DATA_TYPE)
            return None
        value = float(arg)
        if not minimum <= value <= maximum:
            self.push_error(ERR_DATA_OUT_OF_RANGE)
            return None
        return value
