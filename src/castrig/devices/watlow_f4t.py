"""Watlow F4T controller of a humidity test chamber, over Modbus TCP (or RTU).

The protocol (Watlow *F4T Setup and Operations User's Guide*, Ch. 6 Appendix, "Introduction to
the Modbus Protocol" and the Modbus register tables; framing in :mod:`castrig.devices.modbus`)
-----------------------------------------------------------------------------------------------
* Modbus TCP on the Ethernet port, TCP port 502 (the F4T also speaks Modbus RTU on its
  EIA-485 port); functions ``03``, ``06``, ``16``.
* Registers are listed as relative (actual) addresses. A 32-bit parameter (IEEE 754 float,
  signed 32-bit) takes two registers, of which the table lists the first; by default the low
  order word comes first ("the low order word contains the two low bytes"). The controller's
  Modbus word-order setting can swap them: ``word_order="high_low"`` here.
* Enumerations are unsigned 16-bit numbers shared across the manual: Off ``62``, On ``63``,
  Auto ``10``, Manual ``54``, °F ``30``, °C ``15``.
* Per control loop ``n`` the address is loop 1's plus ``(n - 1) * 160``:

==============  =================================  ======  ================================
loop 1 address  parameter                          access  values
==============  =================================  ======  ================================
2730            control mode (user)                RW      Off 62, Auto 10, Manual 54
2774            range low                          RW      float, the set point's minimum
2776            range high                         RW      float, the set point's maximum
2782            closed loop set point              RW      float
2810            current (working, ramping) SP      R       float
2814            control mode active                R       Off 62, Auto 10, Manual 54
2820            process value                      R       float
==============  =================================  ======  ================================

and, once for the controller, 1328 display units (°F 30, °C 15): temperatures go over Modbus
in these units. A humidity chamber has loop 1 temperature and loop 2 RH (``rh_loop``).

The humidifier's "off" (the chamber's part of the safe state) is the humidity loop's control
mode Off: the F4T then drives no humidity output at all; "on" is Auto. Whether the loop is on
is read back from the *active* control mode (2814), which is what the loop really does.

The controller's part number, 15 registers from 16, one ASCII character in each (0 unused), is
what identifies it after its line reopened (:mod:`castrig.devices.identity`; Espec's
ChamberConnectLibrary reads the F4T's options from it the same way). It tells an F4T from a
controller of another part number, not two F4Ts of the same one: no register with the F4T's
serial number was found documented, so none is read.
"""

from __future__ import annotations

from castrig.clock import Clock, WallClock
from castrig.devices.modbus import (
    ILLEGAL_DATA_ADDRESS,
    ModbusError,
    ModbusExceptionReply,
    ModbusMaster,
    Register,
    RegisterDevice,
    RegisterProperty,
)
from castrig.devices.roles import ChamberReading, HumidityChamber
from castrig.links import Link

TCP_PORT = 502
LOOP_STRIDE = 160

OFF, ON, AUTO, MANUAL = 62, 63, 10, 54
FAHRENHEIT, CELSIUS = 30, 15
CONTROL_MODES = {OFF: "off", AUTO: "auto", MANUAL: "manual"}
DISPLAY_UNITS = {FAHRENHEIT: "F", CELSIUS: "C"}
#: The part number: one character per register (see above).
PART_NUMBER_FIRST, PART_NUMBER_COUNT = 16, 15

# -- the register map (F4T User's Guide, Ch. 6 Modbus tables; loop 1 addresses) ---------------
DISPLAY_UNIT = Register(1328, "uint16", "display units", choices=DISPLAY_UNITS)
CONTROL_MODE = Register(2730, "uint16", "control mode", writable=True, choices=CONTROL_MODES, loop_stride=LOOP_STRIDE)
RANGE_LOW = Register(2774, "float32", "loop range low", "loop units", loop_stride=LOOP_STRIDE)
RANGE_HIGH = Register(2776, "float32", "loop range high", "loop units", loop_stride=LOOP_STRIDE)
SET_POINT = Register(2782, "float32", "closed loop set point", "loop units", writable=True,
                     limits=(RANGE_LOW, RANGE_HIGH), loop_stride=LOOP_STRIDE)
CURRENT_SET_POINT = Register(2810, "float32", "current (ramping) set point", "loop units", loop_stride=LOOP_STRIDE)
CONTROL_MODE_ACTIVE = Register(2814, "uint16", "control mode active", choices=CONTROL_MODES, loop_stride=LOOP_STRIDE)
PROCESS_VALUE = Register(2820, "float32", "process value", "loop units", loop_stride=LOOP_STRIDE)


class WatlowF4TError(ModbusError):
    """The controller reports a state this driver cannot work with."""


def to_celsius(value: float, display_unit: int) -> float:
    return (value - 32.0) / 1.8 if display_unit == FAHRENHEIT else value


def from_celsius(value_c: float, display_unit: int) -> float:
    return value_c * 1.8 + 32.0 if display_unit == FAHRENHEIT else value_c


class WatlowF4T(RegisterDevice, HumidityChamber):
    """A humidity chamber run by a Watlow F4T: temperature on ``temperature_loop``, RH on ``rh_loop``.

    ``framing``: ``"tcp"`` (port 502; a ``socket://host:502`` link) or ``"rtu"`` (EIA-485).
    ``word_order``: ``"low_high"`` (the F4T's default) or ``"high_low"``.
    """

    temperature_pv = RegisterProperty(PROCESS_VALUE, loop="temperature_loop")
    temperature_setpoint = RegisterProperty(SET_POINT, loop="temperature_loop")
    rh_pv = RegisterProperty(PROCESS_VALUE, loop="rh_loop")
    rh_setpoint = RegisterProperty(SET_POINT, loop="rh_loop")
    rh_current_setpoint = RegisterProperty(CURRENT_SET_POINT, loop="rh_loop")
    rh_control_mode = RegisterProperty(CONTROL_MODE, loop="rh_loop")
    rh_control_mode_active = RegisterProperty(CONTROL_MODE_ACTIVE, loop="rh_loop")

    def __init__(self, link: Link, *, name: str, unit: int = 1, framing: str = "tcp", word_order: str = "low_high",
                 temperature_loop: int = 1, rh_loop: int = 2, clock: Clock | None = None, attempts: int = 2):
        if word_order not in ("low_high", "high_low"):
            raise ValueError(f"{name}: word_order must be 'low_high' or 'high_low', got {word_order!r}")
        if not (1 <= temperature_loop <= 4 and 1 <= rh_loop <= 4) or temperature_loop == rh_loop:
            raise ValueError(f"{name}: loops must be two different numbers 1-4")
        self.link = link
        self.name = name
        self.clock = clock or WallClock()
        self.master = ModbusMaster(link, device=name, unit=unit, framing=framing, attempts=attempts)
        self.low_word_first = word_order == "low_high"
        self.temperature_loop = temperature_loop
        self.rh_loop = rh_loop
        self._init_registers()

    # -- set-up ----------------------------------------------------------------------------
    def connect(self) -> None:
        """Read the display units and the humidity loop's range (which the set point must keep)."""
        lo, hi = self.rh_range()
        if not (0.0 <= lo and lo + 1.0 <= hi <= 100.0):  # a swapped word order reads ~1e-41
            raise WatlowF4TError(self.name, f"read {RANGE_LOW.instance(self.rh_loop).address}",
                                 f"loop {self.rh_loop} range {lo:g}-{hi:g} is not a %RH range (word order?)")
        self.temperature_unit()

    def identity(self) -> str:
        """The part number (registers 16-30): what tells this controller from another model. A
        unit that refuses those registers (illegal data address) is told by that refusal only,
        not refused for it (see :meth:`castrig.devices.watlow_f4.WatlowF4.identity`)."""
        try:
            words = self.master.read_holding(PART_NUMBER_FIRST, PART_NUMBER_COUNT)
        except ModbusExceptionReply as exc:
            if exc.code != ILLEGAL_DATA_ADDRESS:
                raise
            return "Watlow F4T without part-number registers 16-30 (refused: illegal data address)"
        return "Watlow F4T part number " + repr("".join(chr(w) for w in words if w))

    def rh_range(self) -> tuple[float, float]:
        return self.limits(SET_POINT.instance(self.rh_loop))  # type: ignore[return-value]

    def temperature_range_c(self) -> tuple[float, float]:
        lo, hi = self.limits(SET_POINT.instance(self.temperature_loop))  # type: ignore[misc]
        unit = self._display_unit()
        return to_celsius(lo, unit), to_celsius(hi, unit)

    def temperature_unit(self) -> str:
        return DISPLAY_UNITS.get(self._display_unit(), "?")

    def _display_unit(self) -> int:
        return int(self._cached(DISPLAY_UNIT))

    # -- temperature -----------------------------------------------------------------------
    def read_temperature_c(self) -> float:
        return to_celsius(self.temperature_pv, self._display_unit())  # type: ignore[arg-type]

    def temperature_setpoint_c(self) -> float:
        return to_celsius(self.temperature_setpoint, self._display_unit())  # type: ignore[arg-type]

    def set_temperature_setpoint_c(self, value_c: float) -> None:
        self.temperature_setpoint = from_celsius(value_c, self._display_unit())

    # -- HumidityChamber -------------------------------------------------------------------
    def read_rh_pct(self) -> float:
        return self.rh_pv  # type: ignore[return-value]

    def rh_setpoint_pct(self) -> float:
        return self.rh_setpoint  # type: ignore[return-value]

    def current_rh_setpoint_pct(self) -> float:
        return self.rh_current_setpoint  # type: ignore[return-value]

    def set_rh_setpoint(self, rh_pct: float) -> None:
        self.rh_setpoint = round(rh_pct, 3)

    def read(self) -> ChamberReading:
        return ChamberReading(rh_pct=self.read_rh_pct(), temperature_c=self.read_temperature_c(),
                              setpoint_rh_pct=self.rh_setpoint_pct())

    def set_humidifier(self, on: bool) -> None:
        """The humidity loop's control mode: Auto (on) or Off."""
        self.rh_control_mode = AUTO if on else OFF

    def humidifier_on(self) -> bool:
        """Whether the humidity loop is controlling (its *active* mode is not Off)."""
        return int(self.rh_control_mode_active) != OFF  # type: ignore[call-overload]

    def close(self) -> None:
        self.link.close()

    def __repr__(self) -> str:
        return f"WatlowF4T({self.name!r}, {self.master.framing} unit {self.master.unit}, {self.link!r})"
