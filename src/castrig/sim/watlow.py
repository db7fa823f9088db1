"""Emulators of the Watlow F4 (Modbus RTU) and F4T (Modbus TCP) controllers of a humidity chamber.

Each keeps its own register map, written from the manuals (the drivers' docstrings quote the
same tables; the maps are kept apart so a misread register does not hide in both), and the
framing from the Modbus standard, written here independently of :mod:`castrig.devices.modbus`:

* RTU (F4): a request ends after 3.5 character times of silence (11-bit characters; 1.75 ms
  above 19200 baud); it is then checked (CRC-16/Modbus, low byte first) and answered. A frame
  with a bad CRC or for another unit is ignored (the master times out); unit 0 is a broadcast:
  writes are carried out and nothing is answered.
* TCP (F4T): MBAP-framed requests are answered with the same transaction id and unit; a
  protocol id other than 0 is ignored.
* Functions 03, 06 and 16. Exception 01 for any other function, 02 for a register the
  controller does not have (or a read-only one written, or half of a 32-bit parameter
  written), 03 for a count outside 1-125 (1-123 for writes), a byte count that does not match,
  or a value out of the parameter's range. A write of several registers is all or nothing.

The chamber behind the controller is :class:`~castrig.sim.scpi_chamber.ChamberAir` (shared
with the SCPI chamber): the humidity loop's set point and whether it drives the humidifier
(``setpoint_rh_pct``, ``output_on``), which the twin's chamber model and internal controller
follow; without the twin, a first-order approach to the set point. The temperature loop's set
point is kept but not modelled (the chamber sits at the room temperature of the twin).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from castrig.sim.emulator import Emulator
from castrig.sim.scpi_chamber import ChamberAir, Source

FUNC_READ, FUNC_WRITE_ONE, FUNC_WRITE_MANY = 0x03, 0x06, 0x10
EX_FUNCTION, EX_ADDRESS, EX_VALUE = 0x01, 0x02, 0x03


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc_table()


def modbus_crc(data: bytes) -> bytes:
    """CRC-16/Modbus (table driven), as the two bytes sent: low byte first."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ b) & 0xFF]
    return bytes([crc & 0xFF, crc >> 8])


class ModbusFault(Exception):
    """Raised inside a register handler: answer with this exception code."""

    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class _Param:
    """One parameter of an emulator's map: its first register, width, and how it is read/written."""

    def __init__(self, address: int, words: int, read: Callable[[float], tuple[int, ...]],
                 write: Callable[[tuple[int, ...], float], None] | None = None,
                 check: Callable[[int], bool] | None = None):
        self.address, self.words, self.read, self.write, self.check = address, words, read, write, check


class WatlowEmulator(ChamberAir, Emulator):
    """What the F4 and F4T share: a register table over the chamber air, and the Modbus PDUs."""

    #: ``stuck``: readings freeze; ``exception``: every request answered with exception 04
    #: (server device failure, a controller busy or faulted); ``crc_error`` (RTU only): replies
    #: go out with a damaged CRC, as line noise makes them.
    device_faults = frozenset({"stuck", "exception", "crc_error"})

    def __init__(self, name: str, *, unit: int, seed: int, on_change: Callable[[float], None] | None,
                 source: Source | None, tau_s: float, dry_rh_pct: float, initial_rh_pct: float,
                 temperature_c: float, turnaround_s: float, baudrate: int | None):
        super().__init__(name, seed=seed, turnaround_s=turnaround_s, baudrate=baudrate)
        self._init_air(on_change=on_change, source=source, tau_s=tau_s, dry_rh_pct=dry_rh_pct,
                       initial_rh_pct=initial_rh_pct, temperature_c=temperature_c, setpoint_rh_pct=dry_rh_pct)
        self.unit = unit
        self.params: dict[int, _Param] = {}
        self._frozen: dict[str, float] = {}
        #: Every request PDU received (unit, PDU hex), with its time.
        self.log: list[tuple[float, int, str]] = []

    # -- the table -------------------------------------------------------------------------
    def _add(self, param: _Param) -> None:
        for k in range(param.words):
            self.params[param.address + k] = param

    def _read_words(self, address: int, count: int, t: float) -> list[int]:
        out: list[int] = []
        a = address
        while a < address + count:
            p = self.params.get(a)
            if p is None:
                raise ModbusFault(EX_ADDRESS)
            words = p.read(t)
            offset = a - p.address
            take = min(p.words - offset, address + count - a)
            out.extend(words[offset:offset + take])
            a += take
        return out

    def _write_words(self, address: int, values: tuple[int, ...], t: float) -> None:
        # Check everything first: a write of several registers is all or nothing.
        plan: list[tuple[_Param, tuple[int, ...]]] = []
        a, i = address, 0
        while i < len(values):
            p = self.params.get(a)
            if p is None or p.write is None or a != p.address or i + p.words > len(values):
                raise ModbusFault(EX_ADDRESS)  # not there, read-only, or part of a 32-bit value
            plan.append((p, values[i:i + p.words]))
            a += p.words
            i += p.words
        for p, words in plan:
            self._validate(p, words)
        for p, words in plan:
            p.write(words, t)  # type: ignore[misc]

    def _validate(self, p: _Param, words: tuple[int, ...]) -> None:
        """Raise ModbusFault(EX_VALUE) for a value the parameter does not take (devices add more)."""
        if p.check is not None and not p.check(words[0]):
            raise ModbusFault(EX_VALUE)

    # -- readings --------------------------------------------------------------------------
    def _reading(self, key: str, value: float) -> float:
        if "stuck" in self.faults:
            return self._frozen.setdefault(key, value)
        self._frozen[key] = value
        return value

    def on_fault(self, fault: str, active: bool) -> None:
        if fault == "stuck" and not active:
            self._frozen.clear()

    def chamber_rh(self, t: float) -> float:
        return self._reading("rh", min(100.0, max(0.0, self.rh_pct(t))))

    def chamber_temperature_c(self, t: float) -> float:
        return self._reading("t", self.temperature_c(t))

    # -- PDUs ------------------------------------------------------------------------------
    def handle_pdu(self, pdu: bytes, t: float) -> bytes:
        """The response PDU to a request PDU (an exception response when it fails)."""
        if self._t0 is None:
            self._t0 = t
        function = pdu[0] if pdu else 0
        if "exception" in self.faults:
            return bytes([(function | 0x80) & 0xFF, 0x04])
        try:
            if function == FUNC_READ:
                if len(pdu) != 5:
                    raise ModbusFault(EX_VALUE)
                address, count = struct.unpack(">HH", pdu[1:5])
                if not 1 <= count <= 125:
                    raise ModbusFault(EX_VALUE)
                words = self._read_words(address, count, t)
                return bytes([FUNC_READ, 2 * count]) + struct.pack(f">{count}H", *words)
            if function == FUNC_WRITE_ONE:
                if len(pdu) != 5:
                    raise ModbusFault(EX_VALUE)
                address, value = struct.unpack(">HH", pdu[1:5])
                self._write_words(address, (value,), t)
                return pdu
            if function == FUNC_WRITE_MANY:
                if len(pdu) < 6:
                    raise ModbusFault(EX_VALUE)
                address, count, nbytes = struct.unpack(">HHB", pdu[1:6])
                if not 1 <= count <= 123 or nbytes != 2 * count or len(pdu) != 6 + nbytes:
                    raise ModbusFault(EX_VALUE)
                values = struct.unpack(f">{count}H", pdu[6:])
                self._write_words(address, values, t)
                return pdu[:5]
            raise ModbusFault(EX_FUNCTION)
        except ModbusFault as fault:
            return bytes([(function | 0x80) & 0xFF, fault.code])


def _s16(value: float, decimals: int) -> int:
    raw = int(round(value * 10 ** decimals))
    return max(-32768, min(32767, raw)) & 0xFFFF


def _from_s16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


class WatlowF4Emulator(WatlowEmulator):
    """A Watlow F4 on Modbus RTU: input 1 temperature, input 2 RH, set points 300 / 319.

    The humidifier runs while the loop 2 set point is above input 2's range low (the dry level):
    at the range low the chamber purges with dry air (the F4 has no loop-off register).
    ``temperature_unit``: 1 °C, 0 °F (register 901). ``serial_number``: registers 1 and 2, what
    tells this controller from another F4 at the same unit (register 0, the model, is 5270).
    """

    def __init__(self, name: str, *, unit: int = 1, seed: int = 0, on_change: Callable[[float], None] | None = None,
                 source: Source | None = None, tau_s: float = 60.0, dry_rh_pct: float = 0.0,
                 initial_rh_pct: float = 40.0, temperature_c: float = 23.0, baudrate: int = 19200,
                 turnaround_s: float = 0.005, temperature_unit: int = 1, decimals: tuple[int, int] = (1, 1),
                 silence_floor_s: float = 0.0, serial_number: tuple[int, int] = (1234, 5678)):
        super().__init__(name, unit=unit, seed=seed, on_change=on_change, source=source, tau_s=tau_s,
                         dry_rh_pct=dry_rh_pct, initial_rh_pct=initial_rh_pct, temperature_c=temperature_c,
                         turnaround_s=turnaround_s, baudrate=baudrate)
        char = 11.0 / baudrate
        #: t3.5: the silence that ends a request (``silence_floor_s`` for OS links in wall time).
        self.silence_s = max(silence_floor_s, 0.00175 if baudrate > 19200 else 3.5 * char)
        self._rx = bytearray()
        self._last_rx_t: float | None = None
        # The controller's set-up (registers 602-618, 901) and state.
        self.config = {
            602: _s16(-40.0, decimals[0]), 603: _s16(180.0, decimals[0]), 606: decimals[0], 608: 0,
            612: _s16(dry_rh_pct, decimals[1]), 613: _s16(100.0, decimals[1]), 616: decimals[1], 618: 1,
            901: temperature_unit,
            # model number ("F4") and this unit's serial number, read-only (registers from a
            # public driver, not the manual: see castrig.devices.watlow_f4)
            0: 5270, 1: serial_number[0] & 0xFFFF, 2: serial_number[1] & 0xFFFF,
        }
        self.profile_status = 0
        self.setpoint_temperature = self._to_display(23.0)
        self._build_map()

    # -- unit conversions from the set-up --------------------------------------------------
    def _dec(self, n: int) -> int:
        return self.config[606 if n == 1 else 616]

    def _to_display(self, value_c: float) -> float:
        return value_c if self.config[901] == 1 else value_c * 1.8 + 32.0

    def _range(self, n: int) -> tuple[float, float]:
        lo, hi = (602, 603) if n == 1 else (612, 613)
        d = 10 ** self._dec(n)
        return _from_s16(self.config[lo]) / d, _from_s16(self.config[hi]) / d

    # -- the map (Series F4 User's Manual, Modbus registers) -------------------------------
    def _build_map(self) -> None:
        def const(key: int) -> Callable[[float], tuple[int, ...]]:
            return lambda t: (self.config[key],)

        def store(key: int) -> Callable[[tuple[int, ...], float], None]:
            def write(words: tuple[int, ...], t: float) -> None:
                self.config[key] = words[0]
            return write

        for key in (0, 1, 2):                                  # model and serial number
            self._add(_Param(key, 1, const(key)))
        self._add(_Param(100, 1, lambda t: (_s16(self._to_display(self.chamber_temperature_c(t)), self._dec(1)),)))
        self._add(_Param(104, 1, lambda t: (_s16(self.chamber_rh(t), self._dec(2)),)))
        self._add(_Param(200, 1, lambda t: (self.profile_status,)))
        self._add(_Param(300, 1, lambda t: (_s16(self.setpoint_temperature, self._dec(1)),), self._write_sp1))
        self._add(_Param(319, 1, lambda t: (_s16(self.setpoint_rh_pct, self._dec(2)),), self._write_sp2))
        for key in (602, 603, 612, 613):                       # ranges: any int16
            self._add(_Param(key, 1, const(key), store(key)))
        for key in (606, 616, 608, 618):                       # decimals 0-3, units 0-3
            self._add(_Param(key, 1, const(key), store(key), check=lambda w: w <= 3))
        self._add(_Param(901, 1, const(901), store(901), check=lambda w: w <= 1))  # 0 °F, 1 °C

    def _write_sp1(self, words: tuple[int, ...], t: float) -> None:
        value = _from_s16(words[0]) / 10 ** self._dec(1)
        lo, hi = self._range(1)
        if not lo <= value <= hi:
            raise ModbusFault(EX_VALUE)
        self.setpoint_temperature = value

    def _write_sp2(self, words: tuple[int, ...], t: float) -> None:
        value = _from_s16(words[0]) / 10 ** self._dec(2)
        lo, hi = self._range(2)
        if not lo <= value <= hi:
            raise ModbusFault(EX_VALUE)
        if value != self.setpoint_rh_pct or (value > lo) != self.output_on:
            self._change(t)
            self.setpoint_rh_pct = value
            self.output_on = value > lo

    def _validate(self, p: _Param, words: tuple[int, ...]) -> None:
        super()._validate(p, words)
        if p.address in (300, 319):
            n = 1 if p.address == 300 else 2
            value = _from_s16(words[0]) / 10 ** self._dec(n)
            lo, hi = self._range(n)
            if not lo <= value <= hi:
                raise ModbusFault(EX_VALUE)

    # -- RTU framing: frames end after t3.5 of silence -------------------------------------
    def set_silence_floor(self, floor_s: float) -> None:
        """Serve on an OS link in wall time: a request ends after at least ``floor_s`` of
        silence (a pty or socket may hand over one frame in pieces a few ms apart)."""
        self.silence_s = max(self.silence_s, floor_s)

    def reset_input(self) -> None:
        self._rx.clear()
        self._last_rx_t = None

    def receive_bytes(self, data: bytes, t: float) -> None:
        self._end_frame_before(t)
        self._rx += data
        self._last_rx_t = t

    def _end_frame_before(self, t: float) -> None:
        if self._rx and self._last_rx_t is not None and t - self._last_rx_t >= self.silence_s:
            frame, end = bytes(self._rx), self._last_rx_t + self.silence_s
            self._rx.clear()
            self._handle_frame(frame, end)

    def poll(self, t: float) -> None:
        self._end_frame_before(t)

    def next_unsolicited_time(self, t: float) -> float | None:
        if self._rx and self._last_rx_t is not None:
            return self._last_rx_t + self.silence_s
        return None

    def _handle_frame(self, frame: bytes, t: float) -> None:
        if len(frame) < 4 or modbus_crc(frame[:-2]) != frame[-2:]:
            return  # a damaged frame is ignored: the master times out
        unit, pdu = frame[0], frame[1:-2]
        if unit not in (0, self.unit):
            return  # for another controller on the line
        self.log.append((t, unit, pdu.hex(" ")))
        response = self.handle_pdu(pdu, t)
        if unit == 0:
            return  # broadcast: carried out, never answered
        body = bytes([self.unit]) + response
        crc = modbus_crc(body)
        if "crc_error" in self.faults:
            crc = bytes([crc[0] ^ 0x5A, crc[1]])
        self.send(body + crc, t)


class WatlowF4TEmulator(WatlowEmulator):
    """A Watlow F4T on Modbus TCP: loop 1 temperature, loop 2 RH; floats in two registers.

    ``low_word_first``: the controller's word-order setting (low word first by default).
    Control mode Off (62) on the humidity loop stops the humidifier (dry purge); Auto (10) runs
    it; Manual (54) holds the loop's output at its manual power, 0 % here (dry).
    ``part_number``: registers 16-30, one character in each (what identifies the controller).
    """

    LOOP_STRIDE = 160

    def __init__(self, name: str, *, unit: int = 1, seed: int = 0, on_change: Callable[[float], None] | None = None,
                 source: Source | None = None, tau_s: float = 60.0, dry_rh_pct: float = 0.0,
                 initial_rh_pct: float = 40.0, temperature_c: float = 23.0, turnaround_s: float = 0.002,
                 low_word_first: bool = True, display_units: int = 15, rh_loop: int = 2,
                 part_number: str = "F4T-SIMULATED"):
        super().__init__(name, unit=unit, seed=seed, on_change=on_change, source=source, tau_s=tau_s,
                         dry_rh_pct=dry_rh_pct, initial_rh_pct=initial_rh_pct, temperature_c=temperature_c,
                         turnaround_s=turnaround_s, baudrate=None)
        self.low_word_first = low_word_first
        self.display_units = display_units
        self.rh_loop = rh_loop
        if len(part_number) > 15 or not part_number.isascii():
            raise ValueError(f"{name}: part_number must be up to 15 ASCII characters, got {part_number!r}")
        self.part_number = part_number
        self._rx = bytearray()
        # Per loop (1-4): control mode, range low/high, set point; the RH loop's set point and
        # whether it drives the humidifier live in ChamberAir (setpoint_rh_pct, output_on).
        self.loops: dict[int, dict[str, float]] = {
            n: ({"mode": 62, "low": 0.0, "high": 100.0, "sp": dry_rh_pct} if n == rh_loop
                else {"mode": 10, "low": -40.0, "high": 180.0, "sp": 23.0})
            for n in range(1, 5)
        }
        self._build_map()

    def _f(self, value: float) -> tuple[int, int]:
        high, low = struct.unpack(">HH", struct.pack(">f", value))
        return (low, high) if self.low_word_first else (high, low)

    def _unf(self, words: tuple[int, ...]) -> float:
        a, b = words
        high, low = (b, a) if self.low_word_first else (a, b)
        return struct.unpack(">f", struct.pack(">HH", high, low))[0]

    def _to_display(self, value_c: float) -> float:
        return value_c * 1.8 + 32.0 if self.display_units == 30 else value_c

    # -- the map (F4T User's Guide, Ch. 6: loop n = loop 1 + (n - 1) * 160) ----------------
    def _build_map(self) -> None:
        chars = [ord(c) for c in self.part_number.ljust(15, "\0")]
        for k in range(15):                                    # part number, read-only
            self._add(_Param(16 + k, 1, lambda t, k=k: (chars[k],)))
        self._add(_Param(1328, 1, lambda t: (self.display_units,), self._write_units))
        for n in self.loops:
            base = (n - 1) * self.LOOP_STRIDE
            self._add(_Param(2730 + base, 1, lambda t, n=n: (self._mode(n),), lambda w, t, n=n: self._write_mode(n, w, t)))
            self._add(_Param(2774 + base, 2, lambda t, n=n: self._f(self.loops[n]["low"]),
                             lambda w, t, n=n: self._write_range(n, "low", w)))
            self._add(_Param(2776 + base, 2, lambda t, n=n: self._f(self.loops[n]["high"]),
                             lambda w, t, n=n: self._write_range(n, "high", w)))
            self._add(_Param(2782 + base, 2, lambda t, n=n: self._f(self._sp(n)), lambda w, t, n=n: self._write_sp(n, w, t)))
            self._add(_Param(2810 + base, 2, lambda t, n=n: self._f(self._sp(n))))
            self._add(_Param(2814 + base, 1, lambda t, n=n: (self._mode(n),)))
            self._add(_Param(2820 + base, 2, lambda t, n=n: self._f(self._pv(n, t))))

    def _mode(self, n: int) -> int:
        return int(self.loops[n]["mode"])

    def _sp(self, n: int) -> float:
        return self.setpoint_rh_pct if n == self.rh_loop else float(self.loops[n]["sp"])

    def _pv(self, n: int, t: float) -> float:
        if n == self.rh_loop:
            return self.chamber_rh(t)
        return self._to_display(self.chamber_temperature_c(t))

    def _write_units(self, words: tuple[int, ...], t: float) -> None:
        self.display_units = words[0]

    def _write_mode(self, n: int, words: tuple[int, ...], t: float) -> None:
        mode = words[0]
        if n == self.rh_loop:
            self._change(t)
            self.output_on = mode == 10
        self.loops[n]["mode"] = mode

    def _write_range(self, n: int, key: str, words: tuple[int, ...]) -> None:
        self.loops[n][key] = self._unf(words)

    def _write_sp(self, n: int, words: tuple[int, ...], t: float) -> None:
        value = self._unf(words)
        if n == self.rh_loop:
            self._change(t)
            self.setpoint_rh_pct = value
        else:
            self.loops[n]["sp"] = value

    def _validate(self, p: _Param, words: tuple[int, ...]) -> None:
        a = p.address
        if a == 1328:
            if words[0] not in (15, 30):
                raise ModbusFault(EX_VALUE)
            return
        n = 1 + (a - 2730) // self.LOOP_STRIDE
        off = a - (n - 1) * self.LOOP_STRIDE
        if off == 2730 and words[0] not in (10, 54, 62):
            raise ModbusFault(EX_VALUE)
        if off in (2774, 2776, 2782):
            value = self._unf(words)
            if value != value or abs(value) > 99999.0:
                raise ModbusFault(EX_VALUE)
            if off == 2782 and not self.loops[n]["low"] <= value <= self.loops[n]["high"]:
                raise ModbusFault(EX_VALUE)

    # -- TCP framing: MBAP ---------------------------------------------------------------------
    def reset_input(self) -> None:
        self._rx.clear()

    def receive_bytes(self, data: bytes, t: float) -> None:
        self._rx += data
        while len(self._rx) >= 7:
            tid, pid, length, unit = struct.unpack(">HHHB", self._rx[:7])
            if not 2 <= length <= 254:
                self._rx.clear()  # not a Modbus client: drop what came (a real server closes)
                return
            if len(self._rx) < 6 + length:
                return
            pdu = bytes(self._rx[7:6 + length])
            del self._rx[:6 + length]
            if pid != 0:
                continue
            self.log.append((t, unit, pdu.hex(" ")))
            response = self.handle_pdu(pdu, t)
            self.send(struct.pack(">HHHB", tid, 0, len(response) + 1, unit) + response, t)
