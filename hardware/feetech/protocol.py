"""Feetech protocol 0, as the STS series servos (the SO-101's STS3215) speak it on their half-duplex
TTL bus: packets, the STS3215 control table and the encodings of its register values. The packet
layer of the Feetech bus backend and of its emulator (hardware/feetech/emulator.py); docs/feetech.md
describes it. It never touches a port: it turns values into bytes and bytes into packets, so a
driver can write and read however it likes (non-blocking, with its own timeouts). numpy and the
standard library only: it runs on the robot's computer.

The published format (shared/ROBOT_FACTS.md section 6: Feetech's SDK `scservo_sdk/
protocol_packet_handler.py` and `scservo_def.py`, its Arduino library's `INST.h`, LeRobot's
`motors/feetech/tables.py`):

    instruction (host -> servo):  FF FF ID LEN INSTR P1..Pn CHK
    status      (servo -> host):  FF FF ID LEN ERR   P1..Pn CHK

LEN = n + 2 and CHK = ~(ID + LEN + INSTR/ERR + P1 + ... + Pn) & 0xFF. ID 0xFE is the broadcast
address. Multi-byte register values are little-endian (the SDK's SCS_END = 0 for STS); signed
values are sign-magnitude with the sign in a register-specific bit.

>>> port.write(sync_read_packet(CONTROL_TABLE["Present_Position"].address, 2, (1, 2, 3)))
>>> reader = StatusReader()
>>> for packet in reader.feed(port.read(port.in_waiting or 1)): ...
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, IntFlag

import numpy as np

HEADER = b"\xff\xff"
BROADCAST_ID = 0xFE
"""Every servo takes a packet sent here; none answers, except to SYNC READ and PING (below)."""
MAX_ID = 0xFC
"""IDs a servo can have: 0..252."""
MAX_LENGTH = 250
"""The largest LEN byte we send or take (Feetech's SDK refuses status packets with LEN > 250)."""
STATUS_OVERHEAD = 6
"""Bytes of a status packet besides its parameters: FF FF ID LEN ERR ... CHK."""
MODEL_STS3215 = 777
"""Model_Number (registers 3-4) of the STS3215."""
COUNTS_PER_TURN = 4096
"""The STS3215's 12-bit magnetic encoder: 4096 counts a turn (1.53 mrad a count)."""
CENTER_COUNTS = 2048
"""Half a turn: where the emulator puts each joint's zero (docs/feetech.md)."""
BAUD_RATES = {0: 1_000_000, 1: 500_000, 2: 250_000, 3: 128_000, 4: 115_200, 5: 57_600,
              6: 38_400, 7: 19_200}
"""Baud_Rate register (6) code -> bits per second; the factory code is 0."""
BITS_PER_BYTE = 10
"""8N1 on the wire: a start bit, eight data bits, a stop bit."""


class Instruction(IntEnum):
    """The instruction byte of a host's packet (Feetech's INST.h, ROBOT_FACTS section 6)."""

    PING = 0x01
    """No parameters; the servo answers a status packet with no parameters."""
    READ = 0x02
    """Address, length: the servo answers with that many bytes of its control table."""
    WRITE = 0x03
    """Address, data...: written at once."""
    REG_WRITE = 0x04
    """Address, data...: held by the servo until ACTION."""
    ACTION = 0x05
    """No parameters, usually broadcast: every servo applies its held REG_WRITE."""
    RECOVERY = 0x06
    """Restore the factory control table."""
    RESET = 0x0A
    """Listed in INST.h; reported to reset the multi-turn count (not the control table)."""
    CAL = 0x0B
    """Listed in INST.h; what it does is not published."""
    SYNC_READ = 0x82
    """To 0xFE: address, length, ID1..IDk; each servo answers its own status packet in turn."""
    SYNC_WRITE = 0x83
    """To 0xFE: address, length L, then per servo its ID and L bytes; nobody answers."""


class ServoError(IntFlag):
    """The ERR byte of a status packet: the servo's alarms (Feetech SDK's ERRBIT_*)."""

    VOLTAGE = 1
    """Supply outside Min/Max_Voltage_Limit."""
    ANGLE_SENSOR = 2
    """The magnetic encoder failed."""
    OVERHEAT = 4
    """Above Max_Temperature_Limit."""
    OVERCURRENT = 8
    """Above Protection_Current (the SDK calls it OVERELE)."""
    OVERLOAD = 32
    """Overload_Torque exceeded for Protection_Time: the servo holds only Protective_Torque."""
    INSTRUCTION = 64
    """Not in Feetech's list: protocol 1.0 of the Dynamixel servos Feetech's protocol follows
    uses this bit for an instruction the servo refuses. Our emulator sets it when it refuses a
    packet (a read-only register, a locked EEPROM, an address outside the table, an unknown
    instruction). Whether a real STS3215 refuses or silently ignores such a write is not
    published: read back what matters. The SDK takes error bytes up to 0x7F, so it passes."""


class ProtocolError(ValueError):
    """Bytes that are not the packet the caller asked for: a bad header, length, checksum,
    parameters, or a reply from another servo or of another size. The streaming readers never
    raise it; the strict decoders and parameter parsers do, naming what is wrong."""


# -- packets -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstructionPacket:
    """A host's packet: FF FF ID LEN INSTR P1..Pn CHK."""

    servo_id: int
    instruction: int
    """An `Instruction`, or the unknown byte as sent."""
    params: bytes = b""

    def to_bytes(self) -> bytes:
        return encode_packet(self.servo_id, self.instruction, self.params)


@dataclass(frozen=True)
class StatusPacket:
    """A servo's reply: FF FF ID LEN ERR P1..Pn CHK."""

    servo_id: int
    error: ServoError
    params: bytes = b""
    """The data read (READ, SYNC READ); empty for the other replies."""

    def to_bytes(self) -> bytes:
        return encode_packet(self.servo_id, int(self.error), self.params)


def checksum(body: bytes | bytearray) -> int:
    """~(ID + LEN + INSTR/ERR + params) & 0xFF of the bytes between the header and CHK."""
    return ~sum(body) & 0xFF


def encode_packet(servo_id: int, code: int, params: bytes = b"") -> bytes:
    """FF FF ID LEN CODE params CHK, CODE being the instruction (host) or error byte (servo)."""
    if not 0 <= servo_id <= BROADCAST_ID:
        raise ValueError(f"servo ID {servo_id} is outside 0..{MAX_ID} (or {BROADCAST_ID}: "
                         "broadcast)")
    if not 0 <= code <= 0xFF:
        raise ValueError(f"instruction or error byte {code} is not a byte")
    if len(params) + 2 > MAX_LENGTH:
        raise ValueError(f"{len(params)} parameter bytes make LEN {len(params) + 2}, more than "
                         f"the {MAX_LENGTH} a servo takes; split the transfer")
    body = bytes((servo_id, len(params) + 2, code)) + bytes(params)
    return HEADER + body + bytes((checksum(body),))


def decode_packet(data: bytes) -> tuple[int, int, bytes]:
    """Exactly one packet -> (ID, instruction or error byte, params); ProtocolError otherwise."""
    if len(data) < STATUS_OVERHEAD:
        raise ProtocolError(f"{len(data)} bytes are shorter than the shortest packet "
                            f"({STATUS_OVERHEAD}): {data.hex(' ')}")
    if data[:2] != HEADER:
        raise ProtocolError(f"packet starts {data[:2].hex(' ')}, not the header ff ff")
    if data[3] + 4 != len(data):
        raise ProtocolError(f"LEN {data[3]} says {data[3] + 4} bytes, the packet has "
                            f"{len(data)}")
    if checksum(data[2:-1]) != data[-1]:
        raise ProtocolError(f"checksum 0x{data[-1]:02x}, expected "
                            f"0x{checksum(data[2:-1]):02x}: {data.hex(' ')}")
    return data[2], data[4], bytes(data[5:-1])


def decode_status(data: bytes) -> StatusPacket:
    servo_id, error, params = decode_packet(data)
    if error & 0x80:
        raise ProtocolError(f"error byte 0x{error:02x} has bit 7 set: not a status packet")
    return StatusPacket(servo_id, ServoError(error), params)


def decode_instruction(data: bytes) -> InstructionPacket:
    return InstructionPacket(*decode_packet(data))


# -- instruction packets (host -> servo) ---------------------------------------------------------
def ping_packet(servo_id: int) -> bytes:
    """PING: the servo answers a status packet with no parameters. Sent to BROADCAST_ID, every
    servo answers, one after another (the emulator in ID order; see docs/feetech.md)."""
    return encode_packet(servo_id, Instruction.PING)


def read_packet(servo_id: int, address: int, length: int) -> bytes:
    """READ `length` bytes from `address`: the reply carries them as its parameters."""
    return encode_packet(_unicast(servo_id, "READ"), Instruction.READ,
                         bytes((_byte(address, "address"), _length(length))))


def write_packet(servo_id: int, address: int, data: bytes) -> bytes:
    """WRITE `data` at `address` (see `Register.encode`); the servo answers an empty status
    unless it was broadcast or its Response_Status_Level is 0."""
    return encode_packet(servo_id, Instruction.WRITE, bytes((_byte(address, "address"),))
                         + _data(data))


def reg_write_packet(servo_id: int, address: int, data: bytes) -> bytes:
    """REG_WRITE: as WRITE, but held until ACTION (moves several servos at once)."""
    return encode_packet(servo_id, Instruction.REG_WRITE, bytes((_byte(address, "address"),))
                         + _data(data))


def action_packet(servo_id: int = BROADCAST_ID) -> bytes:
    """ACTION: apply the held REG_WRITE."""
    return encode_packet(servo_id, Instruction.ACTION)


def recovery_packet(servo_id: int) -> bytes:
    """RECOVERY: back to the factory control table."""
    return encode_packet(_unicast(servo_id, "RECOVERY"), Instruction.RECOVERY)


def reset_packet(servo_id: int) -> bytes:
    """RESET (0x0A), as listed in Feetech's INST.h."""
    return encode_packet(_unicast(servo_id, "RESET"), Instruction.RESET)


def sync_read_packet(address: int, length: int, servo_ids: Sequence[int]) -> bytes:
    """SYNC READ of `length` bytes at `address` from each of `servo_ids`; they answer one status
    packet each, in this order: 6 + length bytes apiece."""
    if not servo_ids:
        raise ValueError("SYNC READ needs at least one servo ID")
    ids = bytes(_unicast(i, "SYNC READ") for i in servo_ids)
    return encode_packet(BROADCAST_ID, Instruction.SYNC_READ,
                         bytes((_byte(address, "address"), _length(length))) + ids)


def sync_write_packet(address: int, data_by_id: Mapping[int, bytes]) -> bytes:
    """SYNC WRITE: each servo of `data_by_id` takes its own data (all of one length) at
    `address`; no reply. 8 + n * (length + 1) bytes."""
    if not data_by_id:
        raise ValueError("SYNC WRITE needs data for at least one servo")
    lengths = {len(d) for d in data_by_id.values()}
    if len(lengths) != 1:
        raise ValueError(f"SYNC WRITE data must have one length for every servo, got "
                         f"{ {i: len(d) for i, d in data_by_id.items()} }")
    length = _length(lengths.pop())
    params = bytearray((_byte(address, "address"), length))
    for servo_id, data in data_by_id.items():
        params.append(_unicast(servo_id, "SYNC WRITE"))
        params += data
    return encode_packet(BROADCAST_ID, Instruction.SYNC_WRITE, bytes(params))


def status_packet(servo_id: int, error: int = 0, params: bytes = b"") -> bytes:
    """A servo's reply (what the emulator sends)."""
    if not 0 <= error <= 0x7F:
        raise ValueError(f"a status packet's error byte is 0..0x7f (bit 7 is never set), "
                         f"got 0x{error:x}")
    return encode_packet(_unicast(servo_id, "a status packet"), error, params)


def _unicast(servo_id: int, what: str) -> int:
    if not 0 <= servo_id <= MAX_ID:
        raise ValueError(f"{what} needs a servo ID in 0..{MAX_ID}, got {servo_id}")
    return servo_id


def _byte(value: int, what: str) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{what} {value} is not a byte (0..255)")
    return value


def _length(length: int) -> int:
    if not 1 <= length <= MAX_LENGTH - STATUS_OVERHEAD:
        raise ValueError(f"length {length} is outside 1..{MAX_LENGTH - STATUS_OVERHEAD}")
    return length


def _data(data: bytes) -> bytes:
    if not data:
        raise ValueError("a write needs at least one data byte")
    return bytes(data)


# -- parameters of instruction packets (the servo's side) ---------------------------------------
def parse_read(params: bytes) -> tuple[int, int]:
    """READ parameters -> (address, length)."""
    if len(params) != 2:
        raise ProtocolError(f"READ takes 2 parameters (address, length), got {len(params)}")
    return params[0], params[1]


def parse_write(params: bytes) -> tuple[int, bytes]:
    """WRITE or REG_WRITE parameters -> (address, data)."""
    if len(params) < 2:
        raise ProtocolError(f"WRITE takes an address and data, got {len(params)} parameter(s)")
    return params[0], bytes(params[1:])


def parse_sync_read(params: bytes) -> tuple[int, int, tuple[int, ...]]:
    """SYNC READ parameters -> (address, length, servo IDs in reply order)."""
    if len(params) < 3:
        raise ProtocolError(f"SYNC READ takes address, length and IDs, got {len(params)} "
                            "parameter(s)")
    return params[0], params[1], tuple(params[2:])


def parse_sync_write(params: bytes) -> tuple[int, list[tuple[int, bytes]]]:
    """SYNC WRITE parameters -> (address, [(servo ID, data), ...])."""
    if len(params) < 2 or params[1] == 0 or (len(params) - 2) % (params[1] + 1):
        raise ProtocolError(f"SYNC WRITE parameters ({len(params)} bytes) are not address, "
                            "length L and (ID + L bytes) per servo")
    address, length = params[0], params[1]
    step = length + 1
    return address, [(params[i], bytes(params[i + 1:i + step])) for i in range(2, len(params), step)]


def expect_reply(packet: StatusPacket, servo_id: int, length: int) -> bytes:
    """The data of a READ or SYNC READ reply, checked to be from `servo_id` and `length` bytes
    long: ProtocolError naming the mismatch otherwise. Alarms (packet.error) are the caller's."""
    if packet.servo_id != servo_id:
        raise ProtocolError(f"reply from servo {packet.servo_id}, expected servo {servo_id}")
    if len(packet.params) != length:
        raise ProtocolError(f"servo {servo_id} answered {len(packet.params)} bytes, expected "
                            f"{length}")
    return packet.params


# -- streaming readers ---------------------------------------------------------------------------
@dataclass
class _Reader:
    """Finds packets in a byte stream however it is chunked. Scans for FF FF; takes ID and LEN
    when they are plausible, waits for the rest, and takes the packet only if its checksum is
    right. Anything else costs one byte: the search resumes at the next byte, so a packet that
    began inside garbage (or inside a damaged packet) is still found. Never raises."""

    max_length: int = MAX_LENGTH
    """Longest LEN believed; lower it to what you expect, and a damaged LEN byte costs less."""
    bad_checksums: int = 0
    """Packets whose checksum did not match (corruption on the line, colliding replies)."""
    skipped_bytes: int = 0
    """Bytes that began no packet."""
    _buffer: bytearray = field(default_factory=bytearray)

    def _id_ok(self, servo_id: int) -> bool:
        raise NotImplementedError

    def _code_ok(self, code: int) -> bool:
        return True

    def _scan(self, data: bytes) -> list[tuple[int, int, bytes]]:
        buffer = self._buffer
        buffer += data
        found, at = [], 0
        while True:
            start = buffer.find(HEADER, at)
            if start < 0:
                keep = len(buffer) - 1 if buffer.endswith(b"\xff") else len(buffer)
                self.skipped_bytes += max(keep - at, 0)
                del buffer[:max(keep, at)]
                return found
            self.skipped_bytes += start - at
            if len(buffer) < start + 5:
                del buffer[:start]
                return found
            servo_id, length = buffer[start + 2], buffer[start + 3]
            if (not self._id_ok(servo_id) or not 2 <= length <= self.max_length
                    or not self._code_ok(buffer[start + 4])):
                at = start + 1  # FF FF FF ...: the header may begin one byte later
                self.skipped_bytes += 1
                continue
            end = start + 4 + length
            if len(buffer) < end:
                del buffer[:start]
                return found
            if checksum(buffer[start + 2:end - 1]) != buffer[end - 1]:
                self.bad_checksums += 1
                self.skipped_bytes += 1
                at = start + 1
                continue
            found.append((servo_id, buffer[start + 4], bytes(buffer[start + 5:end - 1])))
            at = end

    def pending(self) -> int:
        """Bytes held: a packet begun and not yet complete."""
        return len(self._buffer)

    def clear(self) -> int:
        """Drop a partial packet (after a timeout, say); returns how many bytes it held."""
        held = len(self._buffer)
        self.skipped_bytes += held
        self._buffer.clear()
        return held


@dataclass
class StatusReader(_Reader):
    """Status packets from the servos (the host's side)."""

    def _id_ok(self, servo_id: int) -> bool:
        return servo_id <= MAX_ID

    def _code_ok(self, code: int) -> bool:
        return not code & 0x80  # as the SDK: an error byte never has bit 7 set

    def feed(self, data: bytes) -> list[StatusPacket]:
        return [StatusPacket(i, ServoError(e), p) for i, e, p in self._scan(data)]


@dataclass
class InstructionReader(_Reader):
    """Instruction packets from the host (the servo's, and the emulator's, side)."""

    def _id_ok(self, servo_id: int) -> bool:
        return servo_id <= BROADCAST_ID

    def feed(self, data: bytes) -> list[InstructionPacket]:
        return [InstructionPacket(*packet) for packet in self._scan(data)]


# -- the control table ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Register:
    """One entry of the control table. Values are unsigned little-endian, or sign-magnitude with
    the sign in `sign_bit` (magnitude below it)."""

    name: str
    address: int
    size: int
    eeprom: bool
    """In EEPROM (kept over power cycles; written only while Lock = 0), else SRAM."""
    read_only: bool = False
    sign_bit: int | None = None

    @property
    def end(self) -> int:
        """The address after the register."""
        return self.address + self.size

    @property
    def span(self) -> tuple[int, int]:
        """The values it holds: (lowest, highest)."""
        if self.sign_bit is not None:
            return -(1 << self.sign_bit) + 1, (1 << self.sign_bit) - 1
        return 0, (1 << (8 * self.size)) - 1

    def encode(self, value: int) -> bytes:
        """The bytes to write: sign-magnitude where the register is signed, little-endian."""
        low, high = self.span
        if int(value) != value or not low <= value <= high:
            raise ValueError(f"{self.name} takes whole numbers in {low}..{high}, got {value}")
        raw = to_sign_magnitude(int(value), self.sign_bit) if self.sign_bit else int(value)
        return raw.to_bytes(self.size, "little")

    def decode(self, data: bytes) -> int:
        if len(data) != self.size:
            raise ProtocolError(f"{self.name} is {self.size} byte(s), got {len(data)}")
        raw = int.from_bytes(data, "little")
        return from_sign_magnitude(raw, self.sign_bit) if self.sign_bit else raw


def to_sign_magnitude(value: int, sign_bit: int) -> int:
    """-5 with sign bit 11 -> 0x805. Magnitudes must fit below the sign bit."""
    if abs(value) >= 1 << sign_bit:
        raise ValueError(f"{value} does not fit a sign-magnitude value with the sign in bit "
                         f"{sign_bit} (|value| <= {(1 << sign_bit) - 1})")
    return (-value | (1 << sign_bit)) if value < 0 else value


def from_sign_magnitude(raw: int, sign_bit: int) -> int:
    """0x805 with sign bit 11 -> -5 (Feetech's SCS_TOHOST). Bits above the sign are ignored."""
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if raw & (1 << sign_bit) else magnitude


_E, _S = True, False
# ROBOT_FACTS section 6, in address order. Sign bits: Homing_Offset 11, Goal/Present_Velocity 15
# (section 6); Goal/Present_Position 15 (LeRobot's table and Feetech's WritePosEx/ReadPos: only
# step mode reaches negative positions), Present_Load 10 and Present_Current 15 (Feetech's
# SMS/STS library, ReadLoad and ReadCurrent).
_TABLE = (
    Register("Model_Number", 3, 2, _E, read_only=True),
    Register("ID", 5, 1, _E),
    Register("Baud_Rate", 6, 1, _E),
    Register("Return_Delay_Time", 7, 1, _E),
    Register("Response_Status_Level", 8, 1, _E),
    Register("Min_Position_Limit", 9, 2, _E),
    Register("Max_Position_Limit", 11, 2, _E),
    Register("Max_Temperature_Limit", 13, 1, _E),
    Register("Max_Voltage_Limit", 14, 1, _E),
    Register("Min_Voltage_Limit", 15, 1, _E),
    Register("Max_Torque_Limit", 16, 2, _E),
    Register("Phase", 18, 1, _E),
    Register("Unloading_Condition", 19, 1, _E),
    Register("LED_Alarm_Condition", 20, 1, _E),
    Register("P_Coefficient", 21, 1, _E),
    Register("D_Coefficient", 22, 1, _E),
    Register("I_Coefficient", 23, 1, _E),
    Register("Minimum_Startup_Force", 24, 2, _E),
    Register("CW_Dead_Zone", 26, 1, _E),
    Register("CCW_Dead_Zone", 27, 1, _E),
    Register("Protection_Current", 28, 2, _E),
    Register("Angular_Resolution", 30, 1, _E),
    Register("Homing_Offset", 31, 2, _E, sign_bit=11),
    Register("Operating_Mode", 33, 1, _E),
    Register("Protective_Torque", 34, 1, _E),
    Register("Protection_Time", 35, 1, _E),
    Register("Overload_Torque", 36, 1, _E),
    Register("Velocity_P", 37, 1, _E),
    Register("Over_Current_Protection_Time", 38, 1, _E),
    Register("Velocity_I", 39, 1, _E),
    Register("Torque_Enable", 40, 1, _S),
    Register("Acceleration", 41, 1, _S),
    Register("Goal_Position", 42, 2, _S, sign_bit=15),
    Register("Goal_Time", 44, 2, _S),
    Register("Goal_Velocity", 46, 2, _S, sign_bit=15),
    Register("Torque_Limit", 48, 2, _S),
    Register("Lock", 55, 1, _S),
    Register("Present_Position", 56, 2, _S, read_only=True, sign_bit=15),
    Register("Present_Velocity", 58, 2, _S, read_only=True, sign_bit=15),
    Register("Present_Load", 60, 2, _S, read_only=True, sign_bit=10),
    Register("Present_Voltage", 62, 1, _S, read_only=True),
    Register("Present_Temperature", 63, 1, _S, read_only=True),
    Register("Status", 65, 1, _S, read_only=True),
    Register("Moving", 66, 1, _S, read_only=True),
    Register("Present_Current", 69, 2, _S, read_only=True, sign_bit=15),
)
CONTROL_TABLE: dict[str, Register] = {r.name: r for r in _TABLE}
"""The STS3215's registers by name (ROBOT_FACTS section 6)."""
TABLE_SIZE = _TABLE[-1].end
"""Addresses 0..70: the memory a READ may cover."""


def register(name: str) -> Register:
    """The register called `name`, or an error listing them."""
    try:
        return CONTROL_TABLE[name]
    except KeyError:
        raise ValueError(f"the STS3215 has no register {name!r}; registers: "
                         f"{', '.join(CONTROL_TABLE)}") from None


def registers_in(address: int, length: int) -> list[Register]:
    """The registers that overlap bytes address..address + length - 1, in address order."""
    return [r for r in _TABLE if r.address < address + length and address < r.end]


def decode_registers(address: int, data: bytes) -> dict[str, int]:
    """Every register wholly inside a block read at `address` (a SYNC READ of 56..63, say),
    by name."""
    return {r.name: r.decode(data[r.address - address:r.end - address])
            for r in registers_in(address, len(data))
            if r.address >= address and r.end <= address + len(data)}


# -- units ---------------------------------------------------------------------------------------
def baud_code(baudrate: int) -> int:
    """The Baud_Rate register code of a rate."""
    for code, rate in BAUD_RATES.items():
        if rate == baudrate:
            return code
    raise ValueError(f"the STS3215 does not run at {baudrate} baud; it runs at "
                     f"{', '.join(str(r) for r in BAUD_RATES.values())}")


def wire_seconds(n_bytes: int, baudrate: int) -> float:
    """How long `n_bytes` take on the wire: 10 bits a byte (10 us at 1 Mbit/s)."""
    return n_bytes * BITS_PER_BYTE / baudrate


def counts_to_radians(counts: int | np.ndarray, zero: int | np.ndarray = CENTER_COUNTS
                      ) -> float | np.ndarray:
    """Position counts -> joint angle (rad), `zero` counts being the joint's zero."""
    return (np.asarray(counts) - zero) * (2.0 * np.pi / COUNTS_PER_TURN)


def radians_to_counts(angle: float | np.ndarray, zero: int | np.ndarray = CENTER_COUNTS
                      ) -> int | np.ndarray:
    """Joint angle (rad) -> the nearest whole count."""
    counts = np.rint(np.asarray(angle) * (COUNTS_PER_TURN / (2.0 * np.pi))).astype(int) + zero
    return int(counts) if np.ndim(counts) == 0 else counts
