"""Watlow Series F4 ramping controller of a humidity test chamber, over Modbus RTU.

The protocol (Watlow *Series F4 User's Manual*, Ch. 7 "Communications" and the Modbus register
list in its appendix; framing in :mod:`castrig.devices.modbus`)
-----------------------------------------------------------------------------------------------
* Modbus RTU on RS-232 or EIA-485, 8 data bits, no parity, 1 stop; 9600 or 19200 baud; unit
  address 1-247 (1 by default). Functions ``03``, ``06`` and ``16``; exception ``02`` for a
  register the controller does not have, ``03`` for a value out of range.
* Every register is a signed 16-bit integer; a value with decimals is sent with the decimal
  point implied by the decimal-places setting of its input (``0`` whole, ``1`` tenths, ``2``
  hundredths): 23.5 °C with one decimal is ``235`` (``0x00EB``).
* On a humidity chamber input 1 is the temperature (control loop 1) and input 2 the RH
  (control loop 2).

=========  =========================================  ======  ===========================
register   parameter                                  access  values
=========  =========================================  ======  ===========================
0 (*)      model number                               R       5270 on an F4
1 / 2 (*)  serial number (two words)                  R       the unit's own
100        input 1 value (temperature PV)             R       implied decimals of 606
104        input 2 value (humidity PV)                R       implied decimals of 616
200        profile status                             R       2 running, 3 holding; else
                                                              no profile (static set points)
300        set point, loop 1 (static)                 RW      within 602-603
319        set point, loop 2 (static)                 RW      within 612-613
602 / 603  input 1 range low / high                   RW      implied decimals of 606
606        input 1 decimal places                     RW      0 whole, 1 tenths, 2, 3
608        input 1 units                              RW      0 temperature, 1 %RH, 2 PSI,
                                                              3 none (process units)
612 / 613  input 2 range low / high                   RW      implied decimals of 616
616        input 2 decimal places                     RW      as 606
618        input 2 units                              RW      as 608
901        temperature units                          RW      0 °F, 1 °C
=========  =========================================  ======  ===========================

The F4 has no register that switches one loop off: a chamber maker wires that to an event
output, differently on every chamber. So this driver's humidifier "off" (the chamber's part of
the safe state) is the humidity set point at the dry level — input 2's range low unless the
profile says another — and "on" is any set point above it; switching on again restores the set
point last sent. While a profile runs (register 200) the profile, not the static set point,
drives the loops: the driver refuses to take the humidity loop over then.

(*) Registers 0-2 (model number and serial number) are taken from a public F4 driver (a pymodbus
``WatlowF4Chamber`` that reads 0-5 as diagnostics: 0 the model, 5270 = "F4"; 1 and 2 the serial
number; 5 the date of manufacture), not checked against the manual here. They tell this
controller from another after its line reopened (:mod:`castrig.devices.identity`): two F4s at
the factory's unit 1 answer everything else alike. Registers 3 and 4 were not found documented
and are not read.
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

BAUDRATE = 19200

UNITS = {0: "temperature", 1: "%RH", 2: "PSI", 3: "none"}
TEMPERATURE_UNITS = {0: "F", 1: "C"}
PROFILE_RUNNING, PROFILE_HOLDING = 2, 3
#: Model number (0) and serial number (1, 2): the controller's identity, read as one block.
IDENTITY_FIRST, IDENTITY_COUNT = 0, 3

# -- the register map (Series F4 User's Manual, Modbus register list) -------------------------
INPUT1_DECIMALS = Register(606, "uint16", "input 1 decimal places", writable=False, choices={0: "whole", 1: "tenths", 2: "hundredths", 3: "thousandths"})
INPUT2_DECIMALS = Register(616, "uint16", "input 2 decimal places", writable=False, choices={0: "whole", 1: "tenths", 2: "hundredths", 3: "thousandths"})
INPUT1_UNITS = Register(608, "uint16", "input 1 units", choices=UNITS)
INPUT2_UNITS = Register(618, "uint16", "input 2 units", choices=UNITS)
TEMPERATURE_UNIT = Register(901, "uint16", "temperature units", choices=TEMPERATURE_UNITS)
INPUT1_RANGE_LOW = Register(602, "int16", "input 1 range low", "display units", decimals=INPUT1_DECIMALS)
INPUT1_RANGE_HIGH = Register(603, "int16", "input 1 range high", "display units", decimals=INPUT1_DECIMALS)
INPUT2_RANGE_LOW = Register(612, "int16", "input 2 range low", "%RH", decimals=INPUT2_DECIMALS)
INPUT2_RANGE_HIGH = Register(613, "int16", "input 2 range high", "%RH", decimals=INPUT2_DECIMALS)
INPUT1_VALUE = Register(100, "int16", "input 1 value (chamber temperature)", "display units", decimals=INPUT1_DECIMALS)
INPUT2_VALUE = Register(104, "int16", "input 2 value (chamber RH)", "%RH", decimals=INPUT2_DECIMALS)
PROFILE_STATUS = Register(200, "uint16", "profile status")
SET_POINT_1 = Register(300, "int16", "loop 1 (temperature) static set point", "display units", writable=True,
                       decimals=INPUT1_DECIMALS, limits=(INPUT1_RANGE_LOW, INPUT1_RANGE_HIGH))
SET_POINT_2 = Register(319, "int16", "loop 2 (humidity) static set point", "%RH", writable=True,
                       decimals=INPUT2_DECIMALS, limits=(INPUT2_RANGE_LOW, INPUT2_RANGE_HIGH))


class WatlowF4Error(ModbusError):
    """The controller is not set up as a humidity chamber this driver can run."""


def to_celsius(value: float, unit: int) -> float:
    return value if unit == 1 else (value - 32.0) / 1.8


def from_celsius(value_c: float, unit: int) -> float:
    return value_c if unit == 1 else value_c * 1.8 + 32.0


class WatlowF4(RegisterDevice, HumidityChamber):
    """A humidity chamber run by a Watlow F4: temperature on loop 1, RH on loop 2.

    ``dry_rh_pct``: the humidity set point of the safe state (default: input 2's range low).
    """

    temperature_pv = RegisterProperty(INPUT1_VALUE)
    rh_pv = RegisterProperty(INPUT2_VALUE)
    temperature_setpoint = RegisterProperty(SET_POINT_1)
    rh_setpoint = RegisterProperty(SET_POINT_2)
    profile_status = RegisterProperty(PROFILE_STATUS)

    def __init__(self, link: Link, *, name: str, unit: int = 1, clock: Clock | None = None, attempts: int = 2,
                 dry_rh_pct: float | None = None):
        self.link = link
        self.name = name
        self.clock = clock or WallClock()
        self.master = ModbusMaster(link, device=name, unit=unit, framing="rtu", attempts=attempts)
        self.dry_rh_pct = dry_rh_pct
        self._init_registers()
        #: The humidity set point to restore when the humidifier is switched on again.
        self._wet_setpoint: float | None = None

    # -- set-up ----------------------------------------------------------------------------
    def connect(self) -> None:
        """Read the set-up and check that input 2 measures %RH (else the chamber is not one)."""
        units = self._cached(INPUT2_UNITS)
        if int(units) != 1:
            raise WatlowF4Error(self.name, "read 618", f"input 2 units are {UNITS.get(int(units), units)!r}, "
                                                       "not %RH: not a humidity chamber's loop 2")
        self.rh_range()
        self.temperature_range_c()
        if self.profile_running():
            # (left running from another session: castrig's set point and its "humidifier off"
            # would be written and read back while the profile's steps drive the humidity)
            raise WatlowF4Error(self.name, "read 200", "a profile is running on the controller (register 200): its "
                                                       "steps, not castrig's set point, drive the humidity; stop the "
                                                       "profile at the controller first")

    def identity(self) -> str:
        """Model and serial number (registers 0-2): what tells this F4 from another one. A unit
        that refuses those registers (illegal data address: their numbers come from a public
        driver, not the manual) is not refused for it: it is told by that refusal only, as an
        F4 without them (another F4 with them, behind its line after a reopen, still differs)."""
        try:
            model, serial_high, serial_low = self.master.read_holding(IDENTITY_FIRST, IDENTITY_COUNT)
        except ModbusExceptionReply as exc:
            if exc.code != ILLEGAL_DATA_ADDRESS:
                raise
            return "Watlow F4 without identity registers 0-2 (refused: illegal data address)"
        return f"Watlow F4 (model number {model}) serial number {serial_high} {serial_low}"

    def rh_range(self) -> tuple[float, float]:
        """Input 2's range low and high, %RH (the set point's limits)."""
        return self.limits(SET_POINT_2)  # type: ignore[return-value]

    def temperature_unit(self) -> str:
        """``"C"`` or ``"F"`` (register 901)."""
        return TEMPERATURE_UNITS.get(int(self._cached(TEMPERATURE_UNIT)), "?")

    def input_units(self, n: int) -> str:
        """What input ``n`` (1 or 2) measures: temperature, %RH, PSI or none."""
        return UNITS.get(int(self._cached({1: INPUT1_UNITS, 2: INPUT2_UNITS}[n])), "?")

    def temperature_range_c(self) -> tuple[float, float]:
        lo, hi = self.limits(SET_POINT_1)  # type: ignore[misc]
        unit = int(self._cached(TEMPERATURE_UNIT))
        return to_celsius(lo, unit), to_celsius(hi, unit)

    def dry_level_pct(self) -> float:
        return self.dry_rh_pct if self.dry_rh_pct is not None else self.rh_range()[0]

    def profile_running(self) -> bool:
        return int(self.profile_status) in (PROFILE_RUNNING, PROFILE_HOLDING)  # type: ignore[call-overload]

    # -- temperature (loop 1) --------------------------------------------------------------
    def read_temperature_c(self) -> float:
        return to_celsius(self.temperature_pv, int(self._cached(TEMPERATURE_UNIT)))  # type: ignore[arg-type]

    def temperature_setpoint_c(self) -> float:
        return to_celsius(self.temperature_setpoint, int(self._cached(TEMPERATURE_UNIT)))  # type: ignore[arg-type]

    def set_temperature_setpoint_c(self, value_c: float) -> None:
        self.temperature_setpoint = round(from_celsius(value_c, int(self._cached(TEMPERATURE_UNIT))), 3)

    # -- HumidityChamber (loop 2) ----------------------------------------------------------
    def read_rh_pct(self) -> float:
        return self.rh_pv  # type: ignore[return-value]

    def rh_setpoint_pct(self) -> float:
        return self.rh_setpoint  # type: ignore[return-value]

    def set_rh_setpoint(self, rh_pct: float) -> None:
        self._check_static("write 319")
        self.rh_setpoint = rh_pct
        if rh_pct > self.dry_level_pct():
            self._wet_setpoint = rh_pct

    def read(self) -> ChamberReading:
        return ChamberReading(rh_pct=self.read_rh_pct(), temperature_c=self.read_temperature_c(),
                              setpoint_rh_pct=self.rh_setpoint_pct())

    def set_humidifier(self, on: bool) -> None:
        """Off: the humidity set point to the dry level. On: back to the last wet set point."""
        dry = self.dry_level_pct()
        if not on:
            current = self.rh_setpoint_pct()
            if current > dry:
                self._wet_setpoint = current
            self.rh_setpoint = dry
            if self.profile_running():  # (the safe state says why it is not verified, not only that)
                raise WatlowF4Error(self.name, "write 319", "set point at the dry level, but a profile is running on "
                                                            "the controller (register 200): its steps drive the "
                                                            "humidity; stop it at the controller")
            return
        self._check_static("write 319")
        if self._wet_setpoint is not None and self.rh_setpoint_pct() <= dry:
            self.rh_setpoint = self._wet_setpoint

    def humidifier_on(self) -> bool:
        """Whether the chamber may humidify: its static set point above the dry level, or a
        profile running (its steps drive the loops whatever the static set point says: the safe
        state had read back 319 at the dry level and called the humidifier off)."""
        return self.profile_running() or self.rh_setpoint_pct() > self.dry_level_pct()

    def _check_static(self, what: str) -> None:
        if self.profile_running():
            raise WatlowF4Error(self.name, what, "a profile is running on the controller (register 200): "
                                                 "its steps, not the static set point, drive the loops")

    def close(self) -> None:
        self.link.close()

    def __repr__(self) -> str:
        return f"WatlowF4({self.name!r}, unit {self.master.unit}, {self.link!r})"
