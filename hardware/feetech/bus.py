"""The host's end of a Feetech STS servo bus: a pyserial port (`/dev/ttyUSB0`, a pty, socket://)
and the transactions the backend, the calibration and the motor setup share: ping, read, write,
sync read, sync write, each with its timeout and retries, everything that goes wrong counted in
`LinkStats` (the counters our own protocol's SerialRobot keeps, so the deploy report reads the same).
Packets come from hardware/feetech/protocol.py. numpy and pyserial only: runs on the robot's computer.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import serial

from hardware.feetech.protocol import (
    BROADCAST_ID,
    CONTROL_TABLE,
    MODEL_STS3215,
    ServoError,
    StatusPacket,
    StatusReader,
    decode_registers,
    expect_reply,
    ping_packet,
    read_packet,
    sync_read_packet,
    sync_write_packet,
    write_packet,
)
from hardware.serial_robot import LinkStats, read_arrived

POLL_SECONDS = 0.001
"""Longest a read blocks waiting for a first byte: a byte that comes returns it at once."""


class BusError(ConnectionError):
    """The bus cannot be used as it is: a port that does not open, nothing answering, a servo
    missing or of another model, a write refused."""


class FeetechBus:
    """Example:
        >>> with FeetechBus("/dev/ttyUSB0") as bus:
        ...     bus.find_servos({"shoulder_pan": 1, "gripper": 6})
        ...     bus.write(6, "Lock", 0)
        ...     replies = bus.sync_read(56, 2, (1, 6), timeout=0.01)
    """

    def __init__(self, url: str, baudrate: int = 1_000_000, timeout: float = 0.02,
                 retries: int = 2, stats: LinkStats | None = None) -> None:
        """`timeout`: wait for one reply to a single servo's instruction; `retries`: instructions
        sent again after a silence or a garbled reply before giving up."""
        self.url, self.baudrate, self.timeout, self.retries = url, baudrate, timeout, retries
        self.stats = stats or LinkStats()
        self.port: serial.SerialBase | None = None
        self._reader = StatusReader()

    def open(self) -> FeetechBus:
        if self.port is not None:
            return self
        try:
            self.port = serial.serial_for_url(self.url, baudrate=self.baudrate,
                                              timeout=POLL_SECONDS, write_timeout=0.1)
        except (serial.SerialException, ValueError, OSError) as error:
            raise BusError(f"cannot open serial port {self.url!r}: {error}. Check the cable and "
                           "the name (ls /dev/ttyUSB* /dev/ttyACM*), or start the bus emulator "
                           "(sim2real emulate so_arm --bus feetech)") from None
        sock = getattr(self.port, "_socket", None)
        if sock is not None:  # socket://: no Nagle delay between a sync write and a sync read
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def close(self) -> None:
        if self.port is not None:
            self.port.close()
            self.port = None

    def __enter__(self) -> FeetechBus:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_baudrate(self, baudrate: int) -> None:
        self.baudrate = baudrate
        self._require().baudrate = baudrate

    # -- the servos on the bus -----------------------------------------------------------------
    def find_servos(self, ids: Mapping[str, int], model: int = MODEL_STS3215) -> None:
        """Every joint's servo answers a PING and is of `model`, or BusError naming the one that
        is not (or the port, when nothing answers at all)."""
        missing = {name: i for name, i in ids.items() if not self.ping(i)}
        if missing and len(missing) == len(ids):
            found = self.broadcast_ping()
            if not found:
                raise BusError(f"nothing answers at {self.baudrate:,} baud on {self.url}: check "
                               "the port, the power and the baud rate")
            raise BusError(f"no servo answers at the IDs {sorted(ids.values())} on {self.url}; "
                           f"servo IDs {found} do: give each its ID with `sim2real setup-motors`")
        if missing:
            answered = sorted(set(ids.values()) - set(missing.values()))
            raise BusError("; ".join(f"servo ID {i} ({name}) does not answer on {self.url}"
                                     for name, i in missing.items())
                           + f" (IDs {answered} do): check its cable, or give it its ID with "
                           "`sim2real setup-motors`")
        for name, i in ids.items():
            found_model = self.read(i, "Model_Number")
            if found_model != model:
                raise BusError(f"servo ID {i} ({name}) on {self.url} is model {found_model}, not "
                               f"an STS3215 ({model}): refusing to drive it")

    def ping(self, servo_id: int) -> bool:
        return self.request(ping_packet(servo_id), servo_id) is not None

    def broadcast_ping(self, wait: float = 0.05) -> list[int]:
        """The IDs of every servo that answers a PING to all (the servos answer in turn)."""
        self._flush()
        self._send(ping_packet(BROADCAST_ID))
        found: set[int] = set()
        end = time.perf_counter() + wait
        while time.perf_counter() < end:
            found |= {packet.servo_id for packet in self._receive(end, 2)}
        return sorted(found)

    # -- transactions --------------------------------------------------------------------------
    def request(self, packet: bytes, servo_id: int, length: int = 0) -> StatusPacket | None:
        """Send an instruction to one servo and wait for its reply (`length` data bytes); sent
        again after a silence or a garbled reply, up to `retries` times. None: no reply."""
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
            self._flush()
            self._send(packet)
            end = time.perf_counter() + self.timeout
            while time.perf_counter() < end:
                for reply in self._receive(end, 2 + length):
                    if reply.servo_id == servo_id and len(reply.params) == length:
                        return reply
                    self.stats.late_frames += 1
        self.stats.timeouts += 1
        return None

    def read(self, servo_id: int, name: str) -> int:
        reg = CONTROL_TABLE[name]
        return self.read_block(servo_id, reg.address, reg.size)[name]

    def read_block(self, servo_id: int, address: int, length: int) -> dict[str, int]:
        reply = self.request(read_packet(servo_id, address, length), servo_id, length)
        if reply is None:
            raise BusError(f"servo ID {servo_id} does not answer a READ on {self.url}")
        return decode_registers(address, expect_reply(reply, servo_id, length))

    def write(self, servo_id: int, name: str, value: int) -> None:
        """Write a register and wait for the servo's acknowledgement: BusError if it refuses."""
        reg = CONTROL_TABLE[name]
        self.write_raw(servo_id, reg.address, reg.encode(value), f"{name} = {value}")

    def write_raw(self, servo_id: int, address: int, data: bytes, what: str) -> None:
        reply = self.request(write_packet(servo_id, address, data), servo_id)
        if reply is None:
            raise BusError(f"servo ID {servo_id} does not acknowledge writing {what} on {self.url}")
        if reply.error & ServoError.INSTRUCTION:
            raise BusError(f"servo ID {servo_id} refused writing {what} (is its EEPROM locked?)")

    def sync_read(self, address: int, length: int, ids: Sequence[int], timeout: float,
                  attempt_timeout: float | None = None) -> dict[int, StatusPacket]:
        """One SYNC READ; the servos whose replies did not come whole within `attempt_timeout`
        are asked again while `timeout` lasts. Returns the replies that came (missing ones are
        counted as dropped, and as a timeout if any is still missing at the end)."""
        start = time.perf_counter()
        deadline = start + timeout
        attempt_timeout = attempt_timeout or timeout
        replies: dict[int, StatusPacket] = {}
        wanted = list(ids)
        while True:
            self._flush()
            self._send(sync_read_packet(address, length, wanted))
            end = min(deadline, time.perf_counter() + attempt_timeout)
            bad = self._reader.bad_checksums
            # Read at least once, even past `end`: on a busy computer this process may wake after
            # the attempt's end with every reply already in the buffer; asking again then would
            # throw them away (and, on a real half-duplex line, talk over nobody for nothing).
            while len(replies) < len(ids):
                for reply in self._receive(end, 2 + length):
                    if reply.servo_id in wanted and len(reply.params) == length:
                        replies[reply.servo_id] = reply
                    else:
                        self.stats.late_frames += 1
                if self._reader.bad_checksums > bad and self._reader.pending() == 0:
                    break  # a garbled reply: ask again at once, not after the timeout
                if time.perf_counter() >= end:
                    break
            wanted = [i for i in ids if i not in replies]
            if not wanted:
                self.stats.round_trips_us.append((time.perf_counter() - start) * 1e6)
                return replies
            self.stats.dropped_frames += len(wanted)
            if time.perf_counter() >= deadline:
                self.stats.timeouts += 1
                return replies
            self.stats.retries += 1

    def sync_write(self, address: int, data_by_id: Mapping[int, bytes]) -> None:
        """One SYNC WRITE (nobody answers)."""
        self._send(sync_write_packet(address, data_by_id))

    # -- the line ------------------------------------------------------------------------------
    def _require(self) -> serial.SerialBase:
        if self.port is None:
            raise RuntimeError("the Feetech bus is not open; call open() or use `with`")
        return self.port

    def _send(self, packet: bytes) -> None:
        try:
            self._require().write(packet)
        except serial.SerialTimeoutException:
            raise TimeoutError(f"writing to {self.url!r} timed out") from None
        except (serial.SerialException, OSError) as error:
            raise ConnectionError(f"the serial link {self.url!r} is gone: {error}") from None
        self.stats.frames_sent += 1

    def _flush(self) -> None:
        """Drop what came after the last transaction ended (a late reply): it answers nothing
        asked now."""
        port = self._require()
        try:
            stale = port.read(port.in_waiting) if port.in_waiting else b""
        except (serial.SerialException, OSError) as error:
            raise ConnectionError(f"the serial link {self.url!r} is gone: {error}") from None
        if stale or self._reader.pending():
            self.stats.late_frames += len(self._reader.feed(stale))
            self._reader.clear()

    def _receive(self, deadline: float, max_length: int | None = None) -> list[StatusPacket]:
        """The status packets completed by what arrives before `deadline` (at most one poll
        past it)."""
        if max_length is not None:
            self._reader.max_length = max_length
        data = read_arrived(self._require(), deadline, self.url)
        bad = self._reader.bad_checksums
        packets = self._reader.feed(data)
        self.stats.crc_errors += self._reader.bad_checksums - bad
        self.stats.frames_received += len(packets)
        return packets
