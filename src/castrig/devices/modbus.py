"""Modbus framing for the register-mapped drivers (Watlow F4 and F4T): RTU and TCP, written once.

From the standard (*MODBUS Application Protocol Specification V1.1b3* and *MODBUS over Serial
Line Specification and Implementation Guide V1.02*, modbus.org; *MODBUS Messaging on TCP/IP
Implementation Guide V1.0b*)
------------------------------------------------------------------------------------------------
* A request or response is a PDU: one function-code byte and its data, big-endian 16-bit words.
  Functions used here: ``03`` read holding registers (address, count 1-125) -> byte count,
  values; ``06`` write single register (address, value) -> the request echoed; ``16`` (``0x10``)
  write multiple registers (address, count 1-123, byte count, values) -> address, count.
* An exception response is the function code with bit 7 set and one exception code: ``01``
  illegal function, ``02`` illegal data address, ``03`` illegal data value, ``04`` server device
  failure (``0x83 0x02``: a read of a register the device does not have).
* RTU (serial): ``unit | PDU | CRC`` with the CRC-16/Modbus (polynomial 0xA001 reflected,
  initial 0xFFFF) sent low byte first. A frame ends after 3.5 character times of silence on the
  line (a character is 11 bits: start, 8 data, parity or a second stop, stop); above 19200 baud
  the standard fixes that silence at 1.75 ms. Unit 0 is broadcast (writes only, never answered);
  a device ignores frames with a bad CRC or for another unit — the master sees a timeout.
* TCP (port 502): the MBAP header ``transaction id | protocol id (0) | length | unit`` in front
  of the PDU, length = the bytes that follow it (unit + PDU); no CRC; the response repeats the
  transaction id, so a late reply is told from the current one.

A driver reads an RTU response of known length by its function code (5 bytes for an exception,
8 for ``06``/``16``, 5 + 2·count for ``03``); an emulator delimits requests by the silence.
Everything above the :class:`ModbusMaster` is a pure function a test can feed any bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from castrig.devices.exchange import InStep, retried_exchange
from castrig.devices.roles import DeviceCommsError, DeviceError
from castrig.links import Link, LinkError, ProtocolError

READ_HOLDING_REGISTERS = 0x03
WRITE_SINGLE_REGISTER = 0x06
WRITE_MULTIPLE_REGISTERS = 0x10

ILLEGAL_FUNCTION = 0x01
ILLEGAL_DATA_ADDRESS = 0x02
ILLEGAL_DATA_VALUE = 0x03
SERVER_DEVICE_FAILURE = 0x04
ACKNOWLEDGE = 0x05
SERVER_DEVICE_BUSY = 0x06
MEMORY_PARITY_ERROR = 0x08
GATEWAY_PATH_UNAVAILABLE = 0x0A
GATEWAY_TARGET_NO_RESPONSE = 0x0B

#: The exception codes of the Modbus Application Protocol (v1.1b3, §7); any other is the device's own.
EXCEPTION_NAMES = {
    ILLEGAL_FUNCTION: "illegal function",
    ILLEGAL_DATA_ADDRESS: "illegal data address",
    ILLEGAL_DATA_VALUE: "illegal data value",
    SERVER_DEVICE_FAILURE: "server device failure",
    ACKNOWLEDGE: "acknowledge: still working",
    SERVER_DEVICE_BUSY: "server device busy",
    MEMORY_PARITY_ERROR: "memory parity error",
    GATEWAY_PATH_UNAVAILABLE: "gateway path unavailable",
    GATEWAY_TARGET_NO_RESPONSE: "gateway target device failed to respond",
}


def exception_text(code: int) -> str:
    """``0B (gateway target device failed to respond)``: codes in hex, as the specification and
    device manuals write them (``11 (unknown)`` was a gateway's 0B)."""
    return f"{code:02X} ({EXCEPTION_NAMES.get(code, 'not a standard code')})"

#: Responses to earlier transactions skipped while one is awaited (late replies: one per earlier
#: try at most); more is no device answering us (a peer streaming frames of transaction 0 had
#: ``castrig run`` opening the rig for ever, each frame a new wait).
MAX_STALE_RESPONSES = 16
MAX_READ_COUNT = 125
MAX_WRITE_COUNT = 123
TCP_PORT = 502
MBAP_HEADER_LEN = 7
#: Bits per RTU character: start, 8 data, parity (or a second stop bit), stop.
BITS_PER_CHAR = 11


# -- errors ------------------------------------------------------------------------------------
class ModbusError(DeviceError):
    """Base of every error a Modbus driver raises."""


class ModbusExceptionReply(ModbusError):
    """The device answered with an exception response (``code``: 1, 2, 3 ...)."""

    def __init__(self, device: str, command: str, function: int, code: int):
        self.function = function
        self.code = code
        super().__init__(device, command, f"Modbus exception {exception_text(code)} to function {function:02d}")


#: Exceptions a device gives while it cannot serve for a moment (04 server device failure, 05
#: acknowledge — still working —, 06 server device busy), and a gateway's in front of it (0A no
#: path to it for now, 0B it did not answer: a timeout one hop further): transient, ridden out
#: like a line glitch. (One 0B from a Modbus TCP gateway faulted a whole run.)
TRANSIENT_EXCEPTIONS = frozenset({SERVER_DEVICE_FAILURE, ACKNOWLEDGE, SERVER_DEVICE_BUSY,
                                  GATEWAY_PATH_UNAVAILABLE, GATEWAY_TARGET_NO_RESPONSE})


class ModbusDeviceBusy(ModbusExceptionReply, DeviceCommsError):
    """An exception reply that says "not now" (04, 05, 06): the runner retries at the next tick
    and stops only when it lasts longer than its comms tolerance."""


class ModbusReplyError(ModbusError, DeviceCommsError):
    """A response that is not this request's (bad CRC, wrong unit or function, wrong length)."""


class ModbusLinkError(ModbusError, DeviceCommsError):
    """The link failed (timeout, closed); ``cause`` is the :class:`LinkError`."""

    def __init__(self, device: str, command: str, cause: LinkError):
        self.cause = cause
        super().__init__(device, command, f"{type(cause).__name__}: {cause}")


class ModbusRangeError(ModbusError, ValueError):
    """A value that does not fit the register (or the device's range); nothing was sent."""


# -- CRC and timing ----------------------------------------------------------------------------
def crc16(data: bytes) -> int:
    """CRC-16/Modbus of ``data`` (poly 0xA001 reflected, init 0xFFFF); ``crc16(b"123456789")``
    is ``0x4B37``."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def char_time_s(baudrate: int) -> float:
    """Time of one RTU character (11 bits) on the line, s."""
    return BITS_PER_CHAR / baudrate


def silence_s(baudrate: int) -> float:
    """The inter-frame silence t3.5: 3.5 character times, fixed at 1.75 ms above 19200 baud."""
    return 0.00175 if baudrate > 19200 else 3.5 * char_time_s(baudrate)


# -- PDUs --------------------------------------------------------------------------------------
def read_holding_pdu(address: int, count: int) -> bytes:
    _check_address(address, count, MAX_READ_COUNT)
    return struct.pack(">BHH", READ_HOLDING_REGISTERS, address, count)


def write_single_pdu(address: int, value: int) -> bytes:
    _check_address(address, 1, 1)
    _check_word(value)
    return struct.pack(">BHH", WRITE_SINGLE_REGISTER, address, value)


def write_multiple_pdu(address: int, values: Sequence[int]) -> bytes:
    _check_address(address, len(values), MAX_WRITE_COUNT)
    for v in values:
        _check_word(v)
    n = len(values)
    return struct.pack(f">BHHB{n}H", WRITE_MULTIPLE_REGISTERS, address, n, 2 * n, *values)


def exception_pdu(function: int, code: int) -> bytes:
    return bytes([function | 0x80, code])


def _check_address(address: int, count: int, max_count: int) -> None:
    if not 1 <= count <= max_count:
        raise ValueError(f"register count {count} outside 1-{max_count}")
    if not 0 <= address <= 0xFFFF or address + count - 1 > 0xFFFF:
        raise ValueError(f"register address {address} (+{count}) outside 0-65535")


def _check_word(value: int) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"register value {value} outside 0-65535 (an unsigned 16-bit word)")


def parse_response(request: bytes, response: bytes) -> tuple[int, ...]:
    """Check ``response`` (a PDU) against the ``request`` PDU it answers; return its words.

    ``03`` gives the values read; ``06`` the value written; ``16`` the address and count.
    Raises :class:`ExceptionResponse` for an exception response and :class:`ValueError` for a
    response that is not this request's.
    """
    if not response:
        raise ValueError("empty response")
    function = request[0]
    if response[0] == function | 0x80:
        if len(response) != 2:
            raise ValueError(f"exception response of {len(response)} bytes (expected 2)")
        raise ExceptionResponse(function, response[1])
    if response[0] != function:
        raise ValueError(f"response to function {response[0]:02d}, expected {function:02d}")
    if function == READ_HOLDING_REGISTERS:
        count = struct.unpack(">H", request[3:5])[0]
        if len(response) < 2 or response[1] != 2 * count or len(response) != 2 + 2 * count:
            raise ValueError(f"read response of {len(response)} bytes for {count} registers")
        return struct.unpack(f">{count}H", response[2:])
    if function == WRITE_SINGLE_REGISTER:
        if response != request:
            raise ValueError(f"write echo {response.hex(' ')} differs from the request {request.hex(' ')}")
        return (struct.unpack(">H", response[3:5])[0],)
    if function == WRITE_MULTIPLE_REGISTERS:
        if len(response) != 5 or response[1:5] != request[1:5]:
            raise ValueError(f"write-multiple response {response.hex(' ')} does not echo address and count")
        return struct.unpack(">HH", response[1:5])
    raise ValueError(f"function {function:02d} is not one this module speaks")


class ExceptionResponse(Exception):
    """An exception response, as a pure parse result (a driver turns it into its own error)."""

    def __init__(self, function: int, code: int):
        self.function = function
        self.code = code
        super().__init__(f"exception {exception_text(code)} to function {function:02d}")


# -- RTU ---------------------------------------------------------------------------------------
def rtu_frame(unit: int, pdu: bytes) -> bytes:
    """``unit | PDU | CRC`` (CRC low byte first)."""
    body = bytes([unit]) + pdu
    return body + crc16(body).to_bytes(2, "little")


def rtu_split(frame: bytes) -> tuple[int, bytes]:
    """``(unit, PDU)`` of a whole RTU frame; :class:`ValueError` on a short frame or a bad CRC."""
    if len(frame) < 4:
        raise ValueError(f"RTU frame of {len(frame)} bytes (at least 4)")
    body, crc = frame[:-2], frame[-2:]
    if crc16(body).to_bytes(2, "little") != crc:
        raise ValueError(f"bad CRC in {frame.hex(' ')}")
    return body[0], body[1:]


def rtu_response_length(head: bytes) -> int | None:
    """Length of the RTU response that starts with ``head`` (unit, function[, byte count]), by
    its function code; ``None`` until enough of it is there to tell."""
    if len(head) < 2:
        return None
    function = head[1]
    if function & 0x80:
        return 5
    if function in (WRITE_SINGLE_REGISTER, WRITE_MULTIPLE_REGISTERS):
        return 8
    if function == READ_HOLDING_REGISTERS:
        return 5 + head[2] if len(head) >= 3 else None
    return 5  # a function we never send: take the shortest frame, the CRC check rejects it


def rtu_request_length(head: bytes) -> int | None:
    """Length of the RTU *request* starting with ``head`` (for servers reading a stream)."""
    if len(head) < 2:
        return None
    function = head[1]
    if function in (READ_HOLDING_REGISTERS, WRITE_SINGLE_REGISTER):
        return 8
    if function == WRITE_MULTIPLE_REGISTERS:
        return 9 + head[6] if len(head) >= 7 else None
    return None


# -- TCP ---------------------------------------------------------------------------------------
def mbap_frame(transaction: int, unit: int, pdu: bytes) -> bytes:
    """MBAP header (transaction, protocol 0, length = 1 + len(PDU), unit) then the PDU."""
    return struct.pack(">HHHB", transaction & 0xFFFF, 0, len(pdu) + 1, unit) + pdu


@dataclass(frozen=True)
class TcpAdu:
    transaction: int
    protocol: int
    unit: int
    pdu: bytes


def take_mbap(buffer: bytes) -> tuple[TcpAdu | None, int]:
    """A whole MBAP frame at the front of ``buffer``: ``(adu, n)``, or ``(None, 0)`` for more.

    A header that cannot be one (length 0, or more than a PDU's 253 bytes + unit) is garbage:
    one byte is dropped to resynchronise, ``(None, 1)``.
    """
    if len(buffer) < MBAP_HEADER_LEN:
        return None, 0
    transaction, protocol, length, unit = struct.unpack(">HHHB", buffer[:MBAP_HEADER_LEN])
    if not 2 <= length <= 254:
        return None, 1
    end = 6 + length
    if len(buffer) < end:
        return None, 0
    return TcpAdu(transaction, protocol, unit, bytes(buffer[MBAP_HEADER_LEN:end])), end


# -- register values ---------------------------------------------------------------------------
def to_int16(word: int) -> int:
    """An unsigned register word as a signed 16-bit integer."""
    return word - 0x10000 if word & 0x8000 else word


def from_int16(value: int) -> int:
    if not -0x8000 <= value <= 0x7FFF:
        raise ValueError(f"{value} does not fit a signed 16-bit register (-32768..32767)")
    return value & 0xFFFF


def float_to_words(value: float, *, low_word_first: bool = True) -> tuple[int, int]:
    """IEEE 754 single in two registers, low word first (Watlow's default) or high word first."""
    high, low = struct.unpack(">HH", struct.pack(">f", value))
    return (low, high) if low_word_first else (high, low)


def words_to_float(words: Sequence[int], *, low_word_first: bool = True) -> float:
    first, second = words
    high, low = (second, first) if low_word_first else (first, second)
    return struct.unpack(">f", struct.pack(">HH", high, low))[0]


# -- the exchange over a link ------------------------------------------------------------------
class ModbusMaster:
    """Sends request PDUs to one unit over a :class:`Link` and returns checked response words.

    ``framing`` is ``"rtu"`` (serial; the response is read by its length, its CRC checked) or
    ``"tcp"`` (MBAP; a response with an older transaction id is a late reply, dropped). Reads
    and writes of absolute values are idempotent, so both are retried ``attempts`` times on a
    timeout or a garbled response; an exception response is the device's answer, never retried.
    Errors name ``device`` and the request (``read 319``, ``write 319=455``).
    """

    def __init__(self, link: Link, *, device: str, unit: int = 1, framing: str = "rtu", attempts: int = 2):
        if framing not in ("rtu", "tcp"):
            raise ValueError(f"{device}: framing must be 'rtu' or 'tcp', got {framing!r}")
        if not (1 <= unit <= 247 if framing == "rtu" else 0 <= unit <= 255):
            raise ValueError(f"{device}: Modbus unit {unit} outside {'1-247' if framing == 'rtu' else '0-255'}")
        self.link = link
        self.device = device
        self.unit = unit
        self.framing = framing
        self.attempts = attempts
        self._transaction = 0
        #: After a timeout or a bad response the line is let go quiet before the next request
        #: (RTU has no transaction id: a late response would otherwise answer the next one).
        self.in_step = InStep(link, marker=None, read_reply=lambda timeout_s=None: "")

    # -- public requests -----------------------------------------------------------------------
    def read_holding(self, address: int, count: int = 1) -> tuple[int, ...]:
        return self._request(read_holding_pdu(address, count), f"read {address}" + (f"+{count}" if count > 1 else ""))

    def write_single(self, address: int, value: int) -> None:
        self._request(write_single_pdu(address, value), f"write {address}={value}")

    def write_multiple(self, address: int, values: Sequence[int]) -> None:
        self._request(write_multiple_pdu(address, values), f"write {address}={list(values)}")

    # -- one exchange --------------------------------------------------------------------------
    def _request(self, pdu: bytes, what: str) -> tuple[int, ...]:
        def once() -> tuple[int, ...]:
            response = self._exchange(pdu, what)
            try:
                return parse_response(pdu, response)
            except ExceptionResponse as exc:
                kind = ModbusDeviceBusy if exc.code in TRANSIENT_EXCEPTIONS else ModbusExceptionReply
                raise kind(self.device, what, exc.function, exc.code) from None
            except ValueError as exc:
                raise ModbusReplyError(self.device, what, str(exc)) from None

        return retried_exchange(self.link, once, attempts=self.attempts, reply_error=ModbusReplyError,
                                link_error=lambda exc: ModbusLinkError(self.device, what, exc), in_step=self.in_step)

    def _exchange(self, pdu: bytes, what: str) -> bytes:
        if self.framing == "tcp":
            self._transaction = (self._transaction + 1) & 0xFFFF
            tid = self._transaction
            self.link.write(mbap_frame(tid, self.unit, pdu))
            for _ in range(MAX_STALE_RESPONSES + 1):
                adu = self.link.read_frame(take_mbap, what="MBAP response")
                if adu.transaction != tid:
                    continue  # a late response to an earlier request
                if adu.protocol != 0 or adu.unit != self.unit:
                    raise ModbusReplyError(self.device, what, f"MBAP protocol {adu.protocol} unit {adu.unit}, "
                                                              f"expected 0 and {self.unit}")
                return adu.pdu
            raise ProtocolError(self.link.resource, f"{MAX_STALE_RESPONSES + 1} MBAP responses to other transactions "
                                                    f"(the last {adu.transaction}), none to {tid}")
        self.link.write(rtu_frame(self.unit, pdu))
        frame = self.link.read_frame(self._take_rtu, what="RTU response")
        try:
            unit, response = rtu_split(frame)
        except ValueError as exc:
            raise ProtocolError(self.link.resource, str(exc)) from None
        if unit != self.unit:
            raise ModbusReplyError(self.device, what, f"response from unit {unit}, expected {self.unit}")
        return response

    @staticmethod
    def _take_rtu(buffer: bytes) -> tuple[bytes | None, int]:
        n = rtu_response_length(buffer)
        if n is None or len(buffer) < n:
            return None, 0
        return bytes(buffer[:n]), n



# -- register maps -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Register:
    """One parameter of a device's Modbus map, declared once; accessors are derived from it.

    ``kind``: ``"int16"`` (signed, one register, ``decimals`` implied: a number, or the
    :class:`Register` that holds it), ``"uint16"`` (one register, an enumeration or a count) or
    ``"float32"`` (IEEE single in two registers, word order from the device). ``limits``: the
    range a write must fall in, numbers or the registers that hold them. ``loop_stride``: the
    address step between instances (loops) of the parameter, ``address`` being instance 1's
    (limit and decimals registers with the same stride move with it).
    """

    address: int
    kind: str
    doc: str
    unit: str = ""
    writable: bool = False
    decimals: "int | Register" = 0
    limits: "tuple[float | Register, float | Register] | None" = None
    choices: "dict[int, str] | None" = None
    loop_stride: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("int16", "uint16", "float32"):
            raise ValueError(f"register {self.address}: kind must be int16, uint16 or float32")

    @property
    def count(self) -> int:
        return 2 if self.kind == "float32" else 1

    def instance(self, n: int) -> "Register":
        """The same parameter for loop (instance) ``n`` (1-based)."""
        if n == 1:
            return self
        if not self.loop_stride:
            raise ValueError(f"register {self.address} has one instance only")
        def shift(x: "float | Register") -> "float | Register":
            return x.instance(n) if isinstance(x, Register) and x.loop_stride else x

        limits = None if self.limits is None else (shift(self.limits[0]), shift(self.limits[1]))
        return Register(self.address + (n - 1) * self.loop_stride, self.kind, self.doc, self.unit, self.writable,
                        shift(self.decimals), limits, self.choices, self.loop_stride)  # type: ignore[arg-type]


class RegisterProperty:
    """A driver attribute derived from a :class:`Register` declaration (PyMeasure's ``control``).

    Reading it reads the register, assigning writes it (when the register is writable), through
    the driver's ``get_register`` / ``set_register``. ``loop`` names the driver attribute that
    holds the loop number for per-loop registers.
    """

    def __init__(self, register: Register, *, loop: str | None = None):
        self.register = register
        self.loop = loop
        verb = "Control" if register.writable else "Get"
        unit = f" ({register.unit})" if register.unit else ""
        self.__doc__ = f"{verb} {register.doc}{unit}; register {register.address}" + (
            f" + (loop - 1) * {register.loop_stride}" if loop else "")

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def _reg(self, obj: object) -> Register:
        return self.register.instance(getattr(obj, self.loop)) if self.loop else self.register

    def __get__(self, obj: object, owner: type | None = None) -> object:
        if obj is None:
            return self
        return obj.get_register(self._reg(obj))  # type: ignore[attr-defined]

    def __set__(self, obj: object, value: float) -> None:
        if not self.register.writable:
            raise AttributeError(f"{self.name}: register {self.register.address} is read-only")
        obj.set_register(self._reg(obj), value)  # type: ignore[attr-defined]


class RegisterDevice:
    """Reads and writes declared :class:`Register` s through a :class:`ModbusMaster`.

    Decimals and limits held in other registers are read once and cached (:meth:`refresh`
    forgets them, e.g. after the range is changed on the front panel).
    """

    name: str
    master: ModbusMaster
    low_word_first: bool = True

    def _init_registers(self) -> None:
        self._cache: dict[int, float] = {}

    def refresh(self) -> None:
        self._cache.clear()

    def _cached(self, register: Register) -> float:
        if register.address not in self._cache:
            self._cache[register.address] = self.get_register(register)
        return self._cache[register.address]

    def _decimals(self, register: Register) -> int:
        d = register.decimals
        return int(self._cached(d)) if isinstance(d, Register) else d

    def limits(self, register: Register) -> tuple[float, float] | None:
        if register.limits is None:
            return None
        lo, hi = (self._cached(x) if isinstance(x, Register) else float(x) for x in register.limits)
        return lo, hi

    def get_register(self, register: Register) -> float:
        words = self.master.read_holding(register.address, register.count)
        if register.kind == "float32":
            return words_to_float(words, low_word_first=self.low_word_first)
        if register.kind == "uint16":
            return words[0]
        return to_int16(words[0]) / 10 ** self._decimals(register)

    def set_register(self, register: Register, value: float) -> None:
        what = f"write {register.address}={value!r}"
        if not register.writable:
            raise ModbusRangeError(self.name, what, f"register {register.address} ({register.doc}) is read-only")
        if value != value or value in (float("inf"), float("-inf")):
            raise ModbusRangeError(self.name, what, f"{value!r} is not a number")
        limits = self.limits(register)
        if limits is not None and not limits[0] <= value <= limits[1]:
            raise ModbusRangeError(self.name, what, f"{register.doc} {value:g} {register.unit} outside "
                                                    f"{limits[0]:g}-{limits[1]:g} {register.unit}".rstrip())
        if register.choices is not None and int(value) not in register.choices:
            raise ModbusRangeError(self.name, what, f"{value!r} is not one of {register.choices}")
        if register.kind == "float32":
            self.master.write_multiple(register.address, float_to_words(float(value), low_word_first=self.low_word_first))
        elif register.kind == "uint16":
            self.master.write_single(register.address, int(value))
        else:
            raw = round(value * 10 ** self._decimals(register))
            try:
                word = from_int16(raw)
            except ValueError as exc:
                raise ModbusRangeError(self.name, what, str(exc)) from None
            self.master.write_single(register.address, word)
