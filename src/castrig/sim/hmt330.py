"""Emulator of a Vaisala HMT330 T/RH transmitter's serial user port.

Speaks the commands of :mod:`castrig.devices.hmt330`'s docstring as the transmitter prints
them: echo of every received character and a ``>`` prompt after each reply while ``ECHO ON``
(the factory setting), replies ending in CR LF, ``SEND [addr]``, ``R`` / ``S`` / ESC,
``INTV``, ``SMODE``, ``FORM`` (a working subset of the FORM language: quoted text, ``x.y``
length modifiers, the quantities ``RH T Ta Td Tdf``, ``U<n>`` unit fields, ``#t #r #n #xxx``,
``ADDR SN``), ``ECHO``, ``UNIT``, ``ADDR``, ``SERI``, ``VERS``, ``OPEN`` / ``CLOSE`` and ``?``
/ ``??``. A command it does not know is answered ``Unknown command``; a bad argument
``Invalid parameter``.

Modes: ``SMODE`` stores the mode the transmitter starts in; it takes effect at
:meth:`power_cycle` (the guide: the selected mode "will be activated after power outages"),
as does the constructor's ``smode``. While outputting (``R``, or RUN after power-up) nothing
is echoed and only ``S`` / ESC is accepted; in POLL mode only ``SEND <addr>``, ``OPEN <addr>``
and ``??`` are answered, without echo.

The measurement: ``source(t)`` gives the TRUE (rh_pct, temperature_c) at the probe (the twin
adds the probe's lag); the emulator adds Gaussian noise from ``seed`` (sigma 0.15 %RH, so 95 %
of readings within +/-0.3 %RH, and 0.03 degC) and prints it at the resolution of the FORM
(0.1 %RH and 0.1 degC for the default form). RH is clipped to 0-100 %RH. Streamed lines are
produced in virtual time through :meth:`poll`. Device faults: ``stuck`` (the reading freezes
at its last value), ``sensor_error`` (values printed as stars, as after a probe failure),
``noisy`` (a failing probe: ``noisy_rh_pct`` of noise) and ``out_of_range`` (a broken element
reading ``out_of_range_rh_pct``, above 100 %RH).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from castrig.sim.emulator import LineEmulator

DEFAULT_FORM = '"RH=" RH " " U3 " T=" T " " U2 #r #n'
#: The emulated probe's RH noise (sigma, %RH) unless told otherwise; ``castrig check`` allows for it.
RH_NOISE_PCT = 0.15
MODEL = "HMT330"
SOFTWARE_VERSION = "5.16"
UNKNOWN = "Unknown command"
INVALID = "Invalid parameter"
#: Lines kept while nobody reads a stream; older ones are lost, as in a full receive buffer.
MAX_STREAM_BACKLOG = 64
#: The transmitter's measurement cycle: ``INTV 0`` outputs at this rate.
MIN_INTERVAL_S = 1.0
_INTERVAL_UNIT_S = {"S": 1.0, "MIN": 60.0, "H": 3600.0}

_FORM_TOKEN = re.compile(
    r'"[^"]*"|#\d{3}|#[trn]|\\[trn]|(?<![A-Za-z0-9])[Uu]\d*(?![A-Za-z])|\d+\.\d+|[A-Za-z][A-Za-z0-9]*|\S',
)
_QUANTITIES = {"RH", "T", "TA", "TD", "TDF"}
@lru_cache(maxsize=64)
def _compile_form(form: str) -> tuple[tuple[str, Any], ...]:
    """A FORM string parsed once into (operation, argument) pairs (``_render`` runs them per line)."""
    ops: list[tuple[str, Any]] = []
    for token in _FORM_TOKEN.findall(form):
        upper = token.upper()
        if token.startswith('"'):
            ops.append(("text", token[1:-1]))
        elif upper in ("#T", "\\T"):
            ops.append(("text", "\t"))
        elif upper in ("#R", "\\R"):
            ops.append(("text", "\r"))
        elif upper in ("#N", "\\N"):
            ops.append(("text", "\n"))
        elif token.startswith("#") and token[1:].isdigit():
            ops.append(("text", chr(int(token[1:]) % 128)))
        elif re.fullmatch(r"\d+\.\d+", token):
            ops.append(("digits", tuple(int(p) for p in token.split("."))))
        elif upper.startswith("U") and upper[1:].isdigit() or upper == "U":
            ops.append(("unit", int(upper[1:]) if upper[1:] else 0))
        elif upper == "ADDR":
            ops.append(("addr", None))
        elif upper == "SN":
            ops.append(("sn", None))
        else:
            ops.append(("value", upper))  # a quantity, or nothing if the transmitter has none
    return tuple(ops)


#: Where each quantity's value goes in a :func:`_form_template` (RH, temperature, dew point).
_VALUE_INDEX = {"RH": 0, "T": 1, "TA": 1, "TD": 2, "TDF": 2}


@lru_cache(maxsize=64)
def _form_template(form: str, metric: bool, invalid: bool, address: int,
                   serial_number: str) -> tuple[str, bool, str, tuple[int, ...]]:
    """A FORM as a ``str.format`` template over (rh, temperature, dew point), and whether it
    shows the dew point. Everything but the three numbers is fixed by the FORM and the
    settings, so it is worked out once instead of for every line printed. Also the same line
    as a ``%`` template and the indices of the values it takes, in order: ``'%6.2f' % x`` is
    ``'{:6.2f}'.format(x)`` (the same conversion) in ~2/3 of the machine instructions."""
    t_unit = "'C" if metric else "'F"
    units = {"RH": "%RH", "T": t_unit, "TA": t_unit, "TD": t_unit, "TDF": t_unit}
    out: list[str] = []
    pct: list[str] = []  # the % template's pieces
    order: list[int] = []
    digits, decimals = 4, 1
    last_unit = ""
    dew_point = False

    def text(value: str) -> None:
        out.append(value.replace("{", "{{").replace("}", "}}"))
        pct.append(value.replace("%", "%%"))

    for op, arg in _compile_form(form):
        if op == "text":
            text(arg)
        elif op == "digits":
            digits, decimals = arg
        elif op == "unit":
            text(last_unit.ljust(arg))
        elif op == "value":
            if arg not in units:
                continue  # a quantity the transmitter does not have: nothing printed
            last_unit = units[arg]
            dew_point = dew_point or _VALUE_INDEX[arg] == 2
            width = digits + decimals
            if invalid:
                text(("*" * max(digits - 1, 1) + ("." + "*" * decimals if decimals else "")).rjust(width))
            else:
                out.append(f"{{{_VALUE_INDEX[arg]}:{width}.{decimals}f}}")
                pct.append(f"%{width}.{decimals}f")
                order.append(_VALUE_INDEX[arg])
        elif op == "addr":
            text(f"{address:02d}")
        elif op == "sn":
            text(serial_number)
    return "".join(out), dew_point, "".join(pct), tuple(order)


#: Input bytes that do more than join the line (see :meth:`HMT330Emulator.receive_bytes`).
_ACTING_BYTE = re.compile(rb"[\x1b\x0a\x08\x7f\r]")


def dewpoint_c(rh_pct: float, temperature_c: float) -> float:
    """Dew point by the Magnus formula (over water), for the ``Td`` / ``Tdf`` quantities."""
    a, b = 17.62, 243.12
    rh = min(max(rh_pct, 0.01), 100.0)
    gamma = math.log(rh / 100.0) + a * temperature_c / (b + temperature_c)
    return b * gamma / (a - gamma)


class HMT330Emulator(LineEmulator):
    """One HMT330 user port; its reading comes from ``source(t)``."""

    terminators = (b"\r",)
    device_faults = frozenset({"stuck", "sensor_error", "noisy", "out_of_range"})
    #: Noise of a failing probe (``noisy``), %RH standard deviation.
    noisy_rh_pct = 8.0
    #: What a probe with a broken element reports (``out_of_range``), %RH.
    out_of_range_rh_pct = 142.0

    def __init__(
        self,
        name: str,
        *,
        source: Callable[[float], tuple[float, float]],
        serial_number: str = "K1234567",
        seed: int = 0,
        address: int = 0,
        echo: bool = True,
        smode: str = "STOP",
        interval: tuple[int, str] = (1, "S"),
        metric: bool = True,
        rh_noise_pct: float = RH_NOISE_PCT,
        t_noise_c: float = 0.03,
        baudrate: int = 4800,
        turnaround_s: float = 0.01,
        t0: float = 0.0,
    ):
        super().__init__(name, baudrate=baudrate, turnaround_s=turnaround_s, seed=seed)
        self.source = source
        self.serial_number = serial_number
        self.address = address
        self.echo = echo
        self.smode = smode.upper()
        self.interval = interval
        self.metric = metric
        self.form = DEFAULT_FORM
        self.seri = "4800 E 7 1"
        self.rh_noise_pct = rh_noise_pct
        self.t_noise_c = t_noise_c
        self._rng = random.Random(seed)
        self._last: tuple[float, float] | None = None
        self.running = False  # continuous output (R, or RUN mode)
        self.polled = False  # POLL mode and the line not opened
        self._next_out_t: float | None = None
        self._command_table: dict[str, Callable] | None = None
        self.power_cycle(t0)

    # -- state -------------------------------------------------------------------------------
    def power_cycle(self, t: float) -> None:
        """Power-up: the stored ``SMODE`` takes effect."""
        self._line.clear()
        self.running = self.smode == "RUN"
        self.polled = self.smode == "POLL"
        self._next_out_t = t + MIN_INTERVAL_S if self.running else None

    def interval_s(self) -> float:
        n, unit = self.interval
        return max(n * _INTERVAL_UNIT_S[unit], MIN_INTERVAL_S)

    def on_fault(self, fault: str, active: bool) -> None:
        if fault == "stuck" and not active:
            self._last = None

    # -- the measurement ---------------------------------------------------------------------
    def measure(self, t: float) -> tuple[float, float]:
        """(rh_pct, temperature_c) as the transmitter measures them at ``t`` (noise added)."""
        faults = self.faults.active
        if "stuck" in faults and self._last is not None:
            return self._last
        rh_true, t_true = self.source(t)
        if "out_of_range" in faults:
            self._last = (self.out_of_range_rh_pct, t_true)
            return self._last
        sigma = self.noisy_rh_pct if "noisy" in faults else self.rh_noise_pct
        rh = rh_true + self._rng.gauss(0.0, sigma)
        rh = 0.0 if 0.0 > rh else rh  # min(max(rh, 0.0), 100.0) as comparisons: a reading a tick
        rh = 100.0 if 100.0 < rh else rh
        temp = t_true + self._rng.gauss(0.0, self.t_noise_c)
        self._last = (rh, temp)
        return self._last

    def reading_line(self, t: float) -> str:
        """The output of ``SEND`` / ``R`` at ``t`` under the current FORM (with its CR LF)."""
        rh, temp = self.measure(t)
        return self._render(self.form, rh, temp)

    def _render(self, form: str, rh: float, temp: float) -> str:
        template, dew_point, percent, order = _form_template(form, self.metric, "sensor_error" in self.faults.active,
                                                             self.address, self.serial_number)
        metric = self.metric
        t_out = temp if metric else temp * 9 / 5 + 32
        if dew_point:  # the dew point only when the FORM shows it
            td = dewpoint_c(rh, temp)
            return template.format(rh, t_out, td if metric else td * 9 / 5 + 32)
        if order == (0, 1):  # RH then T, each once (the default FORM): the same line, by %
            return percent % (rh, t_out)
        return template.format(rh, t_out)

    @staticmethod
    def form_is_valid(form: str) -> bool:
        for token in _FORM_TOKEN.findall(form):
            upper = token.upper()
            if token.startswith('"') or token.startswith("#") or token.startswith("\\"):
                continue
            if re.fullmatch(r"\d+\.\d+", token) or re.fullmatch(r"U\d*", upper):
                continue
            if upper in _QUANTITIES or upper in ("ADDR", "SN"):
                continue
            return False
        return True

    # -- output ------------------------------------------------------------------------------
    def _emit(self, text: str, t: float) -> None:
        """Queue output line by line, so a long block becomes readable as it goes out."""
        if text.find("\n") in (-1, len(text) - 1):  # one line (the usual reading): one piece
            self.send(text.encode("ascii"), t)
            return
        for chunk in re.findall(r"[^\n]*\n|[^\n]+", text):
            self.send(chunk.encode("ascii"), t)
            if self.baudrate:
                t += len(chunk) * 10.0 / self.baudrate

    def _reply(self, lines: list[str], t: float) -> None:
        """Reply lines, each CR LF terminated, then the prompt when echo is on."""
        text = "".join(f"{line}\r\n" for line in lines)
        if self.echo:
            text += ">"
        if text:
            self._emit(text, t)

    def poll(self, t: float) -> None:
        if not self.running or self._next_out_t is None:
            return
        interval = self.interval_s()
        if (t - self._next_out_t) / interval > MAX_STREAM_BACKLOG:
            self._next_out_t = t - MAX_STREAM_BACKLOG * interval
        while self._next_out_t <= t:
            ts = self._next_out_t
            self._emit(self.reading_line(ts), ts)
            self._next_out_t = ts + interval

    def next_unsolicited_time(self, t: float) -> float | None:
        return self._next_out_t if self.running else None

    # -- input -------------------------------------------------------------------------------
    def receive_bytes(self, data: bytes, t: float) -> None:
        if data == b"SEND\r" and not self._line and not self.echo and not self.running and not self.polled:
            # The usual reading, as the path below takes it: one whole line, not echoed, and
            # handle_line's SEND (the reading, then the prompt only with echo on: it is off)
            self._emit(self.reading_line(t), t)
            return
        data = bytes(data)
        i, n = 0, len(data)
        if n and not self._line and not (self.echo and not self.running and not self.polled):
            m = _ACTING_BYTE.search(data)
            if m is not None and m.start() == n - 1 and data[-1] == 0x0D and n - 1 <= self.max_line:
                # The usual command: one whole line, nothing buffered before it (what the loop
                # below does with it, without going through the line buffer).
                self.handle_line(data[:-1], t)
                return
        while i < n:
            if self.echo and not self.running and not self.polled:
                self._receive_byte(data[i], t)  # echoed: byte by byte, as typed
                i += 1
                continue
            # Not echoing: plain bytes go to the line in one piece, up to the next byte that
            # acts (ESC, LF, backspace, the terminator), which may change the state above.
            m = _ACTING_BYTE.search(data, i)
            j = n if m is None else m.start()
            self.add_to_line(data[i:j])
            if m is None:
                break
            if data[j] == 0x0D:  # the terminator (not echoed here): the line is complete
                line = bytes(self._line)
                self._line.clear()
                self.handle_line(line, t)
            else:
                self._receive_byte(data[j], t)
            i = j + 1

    def _receive_byte(self, b: int, t: float) -> None:
        if b == 0x1B:  # ESC stops continuous output
            self._line.clear()
            if self.running:
                self._stop_output(t)
            return
        if b == 0x0A:  # LF after CR from terminal programs: ignored
            return
        if self.echo and not self.running and not self.polled:
            self._emit("\r\n" if b == 0x0D else chr(b & 0x7F), t)
        if b == 0x08 or b == 0x7F:  # backspace
            if self._line:
                self._line.pop()
            return
        super().receive_bytes(bytes([b]), t)

    def _stop_output(self, t: float) -> None:
        self.running = False
        self._next_out_t = None
        if self.echo:
            self._emit(">", t)

    def handle_line(self, line: bytes, t: float) -> None:
        if line == b"SEND" and not self.running and not self.polled:
            self._commands()["SEND"]([], t)  # the usual poll, without taking the line apart
            return
        text = line.decode("ascii", errors="replace").strip()
        words = text.split()
        head = words[0].upper() if words else ""
        args = words[1:]
        if self.running:
            if head == "S" and not args:
                self._stop_output(t)
            return  # while outputting only S is accepted
        if self.polled:
            self._polled_line(head, args, t)
            return
        if not text:
            self._reply([], t)
            return
        handler = self._commands().get(head)
        if handler is None:
            self._reply([UNKNOWN], t)
            return
        if head == "FORM":
            # FORM takes the rest of the line as it was typed (quotes, spacing).
            rest = text[len(words[0]) :].strip()
            handler(rest, t)
        else:
            handler(args, t)

    def _commands(self) -> dict[str, Callable]:
        """The command table (built once: every line looks its command up here)."""
        if self._command_table is None:
            self._command_table = self._build_commands()
        return self._command_table

    def _build_commands(self) -> dict[str, Callable]:
        return {
            "SEND": self._cmd_send, "R": self._cmd_r, "S": self._cmd_s, "INTV": self._cmd_intv,
            "SMODE": self._cmd_smode, "FORM": self._cmd_form, "ECHO": self._cmd_echo,
            "UNIT": self._cmd_unit, "ADDR": self._cmd_addr, "SERI": self._cmd_seri,
            "VERS": self._cmd_vers, "OPEN": self._cmd_open, "CLOSE": self._cmd_close,
            "?": self._cmd_info, "??": self._cmd_info,
        }

    def _polled_line(self, head: str, args: list[str], t: float) -> None:
        """POLL mode: answer only what is addressed to us; never echo."""
        if head == "SEND" and len(args) == 1 and args[0].isdigit() and int(args[0]) == self.address:
            self._emit(self.reading_line(t), t)
        elif head == "OPEN" and len(args) == 1 and args[0].isdigit() and int(args[0]) == self.address:
            self.polled = False
            self._reply([f"{MODEL} {self.address:>2} line opened for operator commands"], t)
        elif head == "??":
            self._emit("".join(f"{line}\r\n" for line in self._info_lines()), t)

    # -- commands ----------------------------------------------------------------------------
    def _cmd_send(self, args: list[str], t: float) -> None:
        if args and not (len(args) == 1 and args[0].isdigit()):
            self._reply([INVALID], t)
            return
        if args and int(args[0]) != self.address:
            return  # another transmitter's address
        text = self.reading_line(t)
        if self.echo:
            text += ">"
        self._emit(text, t)

    def _cmd_r(self, args: list[str], t: float) -> None:
        if args:
            self._reply([INVALID], t)
            return
        self.running = True
        self._emit(self.reading_line(t), t)
        self._next_out_t = t + self.interval_s()

    def _cmd_s(self, args: list[str], t: float) -> None:
        self._reply([], t)  # nothing is being output: just the prompt

    def _cmd_intv(self, args: list[str], t: float) -> None:
        n, unit = self.interval
        if args:
            if args[0].isdigit():
                n = int(args[0])
                args = args[1:]
            if args:
                unit = args[0].upper()
                args = args[1:]
            if args or not 0 <= n <= 255 or unit not in _INTERVAL_UNIT_S:
                self._reply([INVALID], t)
                return
            self.interval = (n, unit)
        self._reply([f"Output interval: {self.interval[0]} {self.interval[1]}"], t)

    def _cmd_smode(self, args: list[str], t: float) -> None:
        if args:
            mode = args[0].upper()
            if len(args) > 1 or mode not in ("STOP", "RUN", "POLL"):
                self._reply([INVALID], t)
                return
            self.smode = mode
        self._reply([f"Serial mode : {self.smode}"], t)

    def _cmd_form(self, rest: str, t: float) -> None:
        if not rest:
            self._reply([self.form], t)
            return
        if rest == "/":
            self.form = DEFAULT_FORM
        elif self.form_is_valid(rest):
            self.form = rest
        else:
            self._reply([INVALID], t)
            return
        self._reply(["OK"], t)

    def _cmd_echo(self, args: list[str], t: float) -> None:
        if args:
            state = args[0].upper()
            if len(args) > 1 or state not in ("ON", "OFF"):
                self._reply([INVALID], t)
                return
            self.echo = state == "ON"
        self._reply([f"Echo : {'ON' if self.echo else 'OFF'}"], t)

    def _cmd_unit(self, args: list[str], t: float) -> None:
        if args:
            choice = args[0].upper()
            if len(args) > 1 or choice not in ("M", "N", "METRIC", "NON"):
                self._reply([INVALID], t)
                return
            self.metric = choice.startswith("M")
        self._reply([f"Output units : {'metric' if self.metric else 'non metric'}"], t)

    def _cmd_addr(self, args: list[str], t: float) -> None:
        if args:
            if len(args) > 1 or not args[0].isdigit() or not 0 <= int(args[0]) <= 99:
                self._reply([INVALID], t)
                return
            self.address = int(args[0])
        self._reply([f"Address : {self.address}"], t)

    def _cmd_seri(self, args: list[str], t: float) -> None:
        if args:
            self.seri = " ".join(a.upper() for a in args)  # takes effect after reset
        self._reply([f"Baud P D S : {self.seri}"], t)

    def _cmd_vers(self, args: list[str], t: float) -> None:
        self._reply([f"{MODEL} / {SOFTWARE_VERSION}"], t)

    def _cmd_close(self, args: list[str], t: float) -> None:
        self.polled = True
        self._emit("line closed\r\n", t)

    def _cmd_open(self, args: list[str], t: float) -> None:
        self._reply([], t)  # no effect outside POLL mode

    def _info_lines(self) -> list[str]:
        def row(label: str, value: str) -> str:
            return f"{label:<15}: {value}"

        n, unit = self.interval
        return [
            f"{MODEL} / {SOFTWARE_VERSION}",
            row("Serial number", self.serial_number),
            row("Batch number", "K2345678"),
            row("Adjust. date", "2025-06-12"),
            row("Adjust. info", "VAISALA/HEL"),
            row("Serial mode", self.smode),
            row("Baud P D S", self.seri),
            row("Output interval", f"{n} {unit}"),
            row("Address", str(self.address)),
            row("Echo", "ON" if self.echo else "OFF"),
            row("Output units", "metric" if self.metric else "non metric"),
            row("Pressure", "1013.25 hPa"),
            row("Filter", "OFF"),
            row("Ch1 output", "4...20mA"),
            row("Ch2 output", "4...20mA"),
            row("Ch1 RH lo", "0.00 %RH"),
            row("Ch1 RH hi", "100.00 %RH"),
            row("Ch2 T lo", "-40.00 'C"),
            row("Ch2 T hi", "60.00 'C"),
        ]

    def _cmd_info(self, args: list[str], t: float) -> None:
        self._reply(self._info_lines(), t)
