"""The sim2real wire protocol, version 2: how the host and a robot's microcontroller talk over a
serial line. docs/protocol.md is the specification for firmware authors; this module is its
reference implementation. Standard library only (and fast enough for a 1 kHz loop in Python).

A frame on the wire is COBS(body) followed by one 0x00 byte; COBS removes every 0x00 from the
body, so a 0x00 always ends a frame and a receiver that lost its place (noise, a reset mid-frame)
finds the next one at the next 0x00. The body:

    version u8 | type u8 | seq u16 | payload ... | crc u16

little-endian throughout; crc is CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) of everything
before it. seq counts each sender's frames (mod 65536), so a receiver sees gaps (dropped frames).
"""

from __future__ import annotations

import binascii
import json
import struct
from dataclasses import MISSING, dataclass, field
from enum import IntEnum
from typing import Any

VERSION = 2
MAX_BODY = 2048
"""Longest body a receiver accepts (a description of a many-joint robot fits easily)."""
HELLO_MAGIC = b"S2R"


class MessageType(IntEnum):
    HELLO = 0x01
    """host -> device: b"S2R" + the protocol version the host speaks (u8). Opens a session."""
    DESCRIPTION = 0x02
    """device -> host: one chunk of the device's self-description, UTF-8 JSON (`Description`):
    index u8 | count u8 | at most DESCRIPTION_CHUNK bytes. All chunks answer a HELLO."""
    STATE_REQUEST = 0x03
    """host -> device: empty; the device answers with one STATE echoing this frame's seq."""
    STATE = 0x04
    """device -> host: one reading (see `State`)."""
    COMMAND = 0x05
    """host -> device: a mode and one target per actuator (see `Command`)."""
    HEARTBEAT = 0x06
    """either way, empty: keeps the device's watchdog fed when no command is due."""
    ESTOP = 0x07
    """host -> device: stop now and hold; the device answers FAULT ESTOP. Device -> host: its
    own e-stop input was pressed."""
    RELEASE = 0x08
    """host -> device: stop driving (torque off); the session ends."""
    FAULT = 0x09
    """device -> host: u16 code (FaultCode), then a UTF-8 message."""
    DESCRIPTION_REQUEST = 0x0A
    """host -> device: index u8; the device sends that DESCRIPTION chunk again (a noisy line
    garbles some: each is asked for again, not the whole description)."""


class CommandMode(IntEnum):
    POSITION = 0
    """targets: joint positions, rad."""
    VELOCITY = 1
    """targets: joint velocities, rad/s."""
    TORQUE = 2
    """targets: joint torques, N*m."""
    VOLTAGE = 3
    """targets: motor voltages, V."""


MODE_OF_ACTUATOR = {"position": CommandMode.POSITION, "velocity": CommandMode.VELOCITY,
                    "torque": CommandMode.TORQUE, "voltage": CommandMode.VOLTAGE}
"""RobotSpec.actuator_kind -> the command mode that drives it."""


class FaultCode(IntEnum):
    WATCHDOG = 1
    """No COMMAND or HEARTBEAT within the watchdog period: the device holds until a new HELLO."""
    ESTOP = 2
    """An e-stop (host's ESTOP frame or the device's own input): holding until a new HELLO."""
    BAD_COMMAND = 3
    """Wrong mode, wrong number of targets, or a non-finite target: ignored."""
    RESET = 4
    """The device (re)started: any earlier session is gone; send HELLO."""
    NO_SESSION = 5
    """A COMMAND arrived before HELLO (or after a stop): ignored."""
    VERSION = 6
    """The HELLO's version is not one the device speaks; the payload names the versions it does."""


class ProtocolError(ValueError):
    """A frame that cannot be decoded: bad COBS, CRC, version, type or length."""


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    payload: bytes
    version: int = VERSION


# -- framing -------------------------------------------------------------------------------------
def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE, as binascii computes it in C."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: `data` with no 0x00 left, one byte longer per 254."""
    out = bytearray()
    for block in data.split(b"\x00"):
        # A run longer than 254 bytes is cut into 254-byte pieces, each marked "no zero after".
        while len(block) >= 254:
            out += b"\xff" + block[:254]
            block = block[254:]
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise ProtocolError("COBS: a zero byte inside a frame")
        end = i + code
        if end > n:
            raise ProtocolError("COBS: a block runs past the end of the frame")
        out += data[i + 1:end]
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(message_type: int, seq: int, payload: bytes = b"",
                 version: int = VERSION) -> bytes:
    """The bytes to write for one frame, delimiter included."""
    body = struct.pack("<BBH", version, message_type, seq & 0xFFFF) + payload
    body += struct.pack("<H", crc16(body))
    return cobs_encode(body) + b"\x00"


def decode_body(encoded: bytes) -> Frame:
    """One frame (without its delimiter) -> Frame; ProtocolError if it is not a valid one."""
    body = cobs_decode(encoded)
    if len(body) < 6:
        raise ProtocolError(f"frame of {len(body)} bytes is shorter than the 6-byte minimum")
    if len(body) > MAX_BODY:
        raise ProtocolError(f"frame of {len(body)} bytes is longer than {MAX_BODY}")
    (crc,) = struct.unpack_from("<H", body, len(body) - 2)
    if crc16(body[:-2]) != crc:
        raise ProtocolError("CRC mismatch")
    version, message_type, seq = struct.unpack_from("<BBH", body)
    return Frame(message_type, seq, body[4:-2], version)


@dataclass
class FrameReader:
    """Turns a byte stream into frames, resynchronising at the next delimiter after anything
    it cannot decode. Counts what it threw away.

    >>> reader = FrameReader()
    >>> for frame in reader.feed(port.read(port.in_waiting or 1)): ...
    """

    bad_frames: int = 0
    """Frames dropped for bad COBS, CRC or length (corruption on the line)."""
    overflows: int = 0
    """Runs of bytes longer than any frame with no delimiter (noise): dropped."""
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames = []
        while True:
            end = self._buffer.find(b"\x00")
            if end < 0:
                if len(self._buffer) > 2 * MAX_BODY:
                    self.overflows += 1
                    self._buffer.clear()
                return frames
            chunk = bytes(self._buffer[:end])
            del self._buffer[:end + 1]
            if not chunk:
                continue  # back-to-back delimiters (a sender flushing a receiver): harmless
            try:
                frames.append(decode_body(chunk))
            except ProtocolError:
                self.bad_frames += 1


# -- messages ------------------------------------------------------------------------------------
def hello_payload(version: int = VERSION) -> bytes:
    return HELLO_MAGIC + bytes([version])


def parse_hello(payload: bytes) -> int:
    """The protocol version a HELLO asks for."""
    if len(payload) != 4 or payload[:3] != HELLO_MAGIC:
        raise ProtocolError(f"HELLO payload {payload!r} is not b'S2R' + version")
    return payload[3]


@dataclass(frozen=True)
class Description:
    """What a device says it is (DESCRIPTION payload, JSON with these keys)."""

    robot: str
    joint_names: list[str]
    actuator_names: list[str]
    mode: str
    """"position", "velocity", "torque" or "voltage": how the actuators are commanded."""
    position_low: list[float]
    position_high: list[float]
    velocity_limit: list[float]
    command_low: list[float]
    command_high: list[float]
    control_period: float
    """s: the period the device expects commands at."""
    watchdog_ms: float
    """The device holds when no COMMAND or HEARTBEAT arrives for this long."""
    sensors: list[str] = field(default_factory=list)
    """Names of the extra sensor values in each STATE."""
    units: dict[str, str] = field(default_factory=lambda: {
        "position": "rad", "velocity": "rad/s", "effort": "N*m", "time": "us"})
    firmware: str = ""
    protocol: int = VERSION

    def to_payload(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True, allow_nan=True).encode()

    @classmethod
    def from_payload(cls, payload: bytes) -> Description:
        try:
            raw = json.loads(payload.decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ProtocolError(f"DESCRIPTION is not UTF-8 JSON: {error}") from None
        if not isinstance(raw, dict):
            raise ProtocolError("DESCRIPTION is not a JSON object")
        fields = cls.__dataclass_fields__
        required = {name for name, f in fields.items()
                    if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(raw))
        if missing:
            raise ProtocolError(f"DESCRIPTION lacks {missing}")
        return cls(**{k: v for k, v in raw.items() if k in fields})

    @classmethod
    def of_spec(cls, spec: Any, watchdog_ms: float, firmware: str = "") -> Description:
        """The description a device implementing `spec` (a RobotSpec) sends."""
        return cls(robot=spec.name, joint_names=list(spec.joint_names),
                   actuator_names=list(spec.actuator_names), mode=spec.actuator_kind,
                   position_low=list(spec.position_low), position_high=list(spec.position_high),
                   velocity_limit=list(spec.velocity_limit),
                   command_low=list(spec.command_low), command_high=list(spec.command_high),
                   control_period=spec.control_period, watchdog_ms=watchdog_ms,
                   firmware=firmware)


DESCRIPTION_CHUNK = 32
"""Bytes of description JSON per DESCRIPTION frame: short frames survive a noisy line (at 1% of
bytes corrupted, 66% of 42-byte frames arrive whole, 0.1% of a 740-byte description)."""


def description_chunks(payload: bytes) -> list[bytes]:
    """A description's JSON as DESCRIPTION payloads: index | count | bytes."""
    count = -(-len(payload) // DESCRIPTION_CHUNK)
    if not 0 < count < 256:
        raise ValueError(f"a description of {len(payload)} bytes needs {count} chunks; the "
                         "protocol carries 1 to 255")
    return [bytes([index, count]) + payload[index * DESCRIPTION_CHUNK:
                                            (index + 1) * DESCRIPTION_CHUNK]
            for index in range(count)]


@dataclass
class DescriptionChunks:
    """The host's side: DESCRIPTION chunks in any order, repeats harmless, until complete.

    >>> chunks = DescriptionChunks()
    >>> chunks.add(frame.payload)
    >>> chunks.missing()       # indices to ask for again with DESCRIPTION_REQUEST
    >>> chunks.joined()        # the JSON, once nothing is missing
    """

    count: int = 0
    parts: dict[int, bytes] = field(default_factory=dict)

    def add(self, payload: bytes) -> None:
        if len(payload) < 2 or not payload[0] < payload[1]:
            raise ProtocolError(f"DESCRIPTION chunk header {payload[:2]!r} is not index < count")
        if self.count and payload[1] != self.count:
            raise ProtocolError(f"DESCRIPTION chunk says {payload[1]} chunks, an earlier one "
                                f"{self.count}")
        self.count = payload[1]
        self.parts[payload[0]] = payload[2:]

    def missing(self) -> list[int]:
        return [index for index in range(self.count) if index not in self.parts]

    def joined(self) -> bytes | None:
        if not self.count or self.missing():
            return None
        return b"".join(self.parts[index] for index in range(self.count))


STATUS_ESTOP, STATUS_WATCHDOG, STATUS_DRIVING, STATUS_FAULT = 1, 2, 4, 8
"""Bits of State.status."""
_STATE_HEAD = struct.Struct("<HHQQBBB")


@dataclass(frozen=True)
class State:
    """STATE payload: request seq u16 | command seq u16 | device time u64 (us) | command time
    u64 (us) | status u8 | joints u8 | sensors u8 | then float32: positions[joints],
    velocities[joints], efforts[joints], sensors[sensors]."""

    request_seq: int
    command_seq: int
    """The seq of the last COMMAND the device applied: the host's acknowledgment (valid when
    command_time_us is not 0)."""
    device_time_us: int
    command_time_us: int
    """When the device received the last COMMAND it acts on (0: none yet)."""
    status: int
    positions: tuple[float, ...]
    velocities: tuple[float, ...]
    efforts: tuple[float, ...]
    sensors: tuple[float, ...] = ()

    def to_payload(self) -> bytes:
        joints = len(self.positions)
        if not len(self.velocities) == len(self.efforts) == joints:
            raise ValueError("positions, velocities and efforts need one value per joint")
        head = _STATE_HEAD.pack(self.request_seq & 0xFFFF, self.command_seq & 0xFFFF,
                                self.device_time_us,
                                self.command_time_us, self.status, joints, len(self.sensors))
        values = (*self.positions, *self.velocities, *self.efforts, *self.sensors)
        return head + struct.pack(f"<{len(values)}f", *values)

    @classmethod
    def from_payload(cls, payload: bytes) -> State:
        if len(payload) < _STATE_HEAD.size:
            raise ProtocolError(f"STATE of {len(payload)} bytes is shorter than its header")
        request_seq, command_seq, time_us, command_us, status, joints, sensors = (
            _STATE_HEAD.unpack_from(payload))
        count = 3 * joints + sensors
        if len(payload) != _STATE_HEAD.size + 4 * count:
            raise ProtocolError(f"STATE for {joints} joints and {sensors} sensors must be "
                                f"{_STATE_HEAD.size + 4 * count} bytes, got {len(payload)}")
        values = struct.unpack_from(f"<{count}f", payload, _STATE_HEAD.size)
        return cls(request_seq, command_seq, time_us, command_us, status, values[:joints],
                   values[joints:2 * joints], values[2 * joints:3 * joints], values[3 * joints:])


@dataclass(frozen=True)
class Command:
    """COMMAND payload: mode u8 | count u8 | float32 targets[count], in actuator order."""

    mode: CommandMode
    targets: tuple[float, ...]

    def to_payload(self) -> bytes:
        return struct.pack(f"<BB{len(self.targets)}f", int(self.mode), len(self.targets),
                           *self.targets)

    @classmethod
    def from_payload(cls, payload: bytes) -> Command:
        if len(payload) < 2:
            raise ProtocolError("COMMAND shorter than its 2-byte header")
        mode, count = payload[0], payload[1]
        if len(payload) != 2 + 4 * count:
            raise ProtocolError(f"COMMAND with {count} targets must be {2 + 4 * count} bytes, "
                                f"got {len(payload)}")
        try:
            mode = CommandMode(mode)
        except ValueError:
            raise ProtocolError(f"COMMAND mode {mode} is unknown") from None
        return cls(mode, struct.unpack_from(f"<{count}f", payload, 2))


def fault_payload(code: FaultCode, message: str) -> bytes:
    return struct.pack("<H", int(code)) + message.encode()[:200]


def parse_fault(payload: bytes) -> tuple[int, str]:
    if len(payload) < 2:
        raise ProtocolError("FAULT shorter than its 2-byte code")
    (code,) = struct.unpack_from("<H", payload)
    return code, payload[2:].decode(errors="replace")
