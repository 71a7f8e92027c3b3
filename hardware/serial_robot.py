"""SerialRobot: a robot on a serial line speaking the sim2real protocol (hardware/protocol.py),
through pyserial's `serial_for_url`, so `/dev/ttyUSB0`, a pty the emulator opened
(`/dev/pts/N`), `socket://127.0.0.1:PORT` and `loop://` all work.

Each `read_state` sends a STATE_REQUEST and waits for the STATE that echoes it; each command is
a COMMAND frame (which also feeds the device's watchdog). Everything that goes wrong on the line
is counted in `stats`; a device reset mid-run is answered with a new handshake, up to
`reconnects` times. numpy and pyserial only: runs on the robot's computer.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import serial

from hardware.protocol import (
    MODE_OF_ACTUATOR,
    VERSION,
    Command,
    Description,
    FaultCode,
    FrameReader,
    MessageType,
    ProtocolError,
    State,
    encode_frame,
    hello_payload,
    parse_fault,
)
from hardware.robot import Robot
from sim.spec import RobotSpec, RobotState, robot_differences

POLL_SECONDS = 0.002
HELLO_RETRY_SECONDS = 0.1


class DeviceError(ConnectionError):
    """The device cannot be used: absent, silent, another protocol, or not the robot expected."""


@dataclass
class LinkStats:
    """What happened on the line, counted since connect."""

    frames_sent: int = 0
    frames_received: int = 0
    crc_errors: int = 0
    """Frames dropped for bad COBS/CRC/length: corruption on the line."""
    timeouts: int = 0
    """Requests with no answer within the reply timeout."""
    dropped_frames: int = 0
    """Gaps in the device's sequence numbers: frames it sent that never arrived whole."""
    late_frames: int = 0
    """Answers to requests of an earlier read (discarded)."""
    retries: int = 0
    """State requests sent again within a read because the answer was lost or corrupted."""
    faults: dict[str, int] = field(default_factory=dict)
    """FAULT frames by code name."""
    reconnects: int = 0
    round_trips_us: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        trips = np.asarray(self.round_trips_us)
        return {k: v for k, v in self.__dict__.items() if k != "round_trips_us"} | {
            "round_trip_p50_us": round(float(np.percentile(trips, 50)), 1) if trips.size else None,
            "round_trip_p99_us": round(float(np.percentile(trips, 99)), 1) if trips.size else None}


def description_mismatches(description: Description, spec: RobotSpec) -> list[str]:
    """Every way the device's self-description differs from the robot expected."""
    described = {key: value for key, value in description.__dict__.items()
                 if key not in ("robot", "mode")}
    described |= {"name": description.robot, "actuator": description.mode}
    return robot_differences(spec, described, "expected", "device says")


def read_arrived(port: serial.SerialBase, deadline: float, url: str) -> bytes:
    """What has arrived on `port`, waiting at most until `deadline` for the first byte; a port
    that is gone (unplugged, the other end closed) is a ConnectionError naming `url`."""
    try:
        data = port.read(port.in_waiting or 1)
        while not data and time.perf_counter() < deadline:
            data = port.read(port.in_waiting or 1)
        if data and port.in_waiting:
            data += port.read(port.in_waiting)
    except (serial.SerialException, OSError) as error:
        raise ConnectionError(f"the serial link {url!r} is gone: {error}") from None
    return data


class SerialRobot(Robot):
    """Example:
        >>> with SerialRobot("/dev/pts/5", SO_ARM) as arm:
        ...     state = arm.read_state()
        ...     arm.send_command(state.positions)
        ...     print(arm.stats.summary())
    """

    def __init__(self, url: str, spec: RobotSpec, baudrate: int = 1_000_000,
                 reply_timeout: float | None = None, attempt_timeout: float | None = None,
                 handshake_timeout: float = 1.0, reconnects: int = 3) -> None:
        """`reply_timeout`: longest wait for a reading (default half the control period, so a
        lost one costs at most half a cycle); `attempt_timeout`: wait before asking again
        (default a third of that)."""
        self.reply_timeout = reply_timeout or 0.5 * spec.control_period
        self.attempt_timeout = attempt_timeout or self.reply_timeout / 3
        if self.reply_timeout <= 0 or self.attempt_timeout <= 0 or handshake_timeout <= 0:
            raise ValueError("reply_timeout, attempt_timeout and handshake_timeout must be > 0 s")
        self.url, self.spec, self.baudrate = url, spec, baudrate
        self.handshake_timeout = handshake_timeout
        self.reconnects = reconnects
        self.mode = MODE_OF_ACTUATOR[spec.actuator_kind]
        self.port: serial.SerialBase | None = None
        self.description: Description | None = None
        self.stats = LinkStats()
        self.status = 0
        self._reader = FrameReader()
        self._seq = 0
        self._device_seq: int | None = None
        self._session_lost = False
        self.device_stopped = ""
        """Why the device stopped on its own (its watchdog, its e-stop); it drives no more."""

    # -- lifecycle -----------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the port and shake hands; a connected robot stays as it is."""
        if self.port is not None:
            return
        try:
            # A read returns as soon as a byte arrives; the timeout only bounds how far past a
            # deadline a wait can run.
            self.port = serial.serial_for_url(self.url, baudrate=self.baudrate,
                                              timeout=min(POLL_SECONDS, self.reply_timeout),
                                              write_timeout=max(0.01, self.reply_timeout))
        except (serial.SerialException, ValueError, OSError) as error:
            raise DeviceError(f"cannot open serial port {self.url!r}: {error}. Check the cable "
                              "and the name (ls /dev/ttyUSB* /dev/ttyACM*), start the emulator "
                              "(sim2real emulate ROBOT), or deploy with --robot sim") from None
        sock = getattr(self.port, "_socket", None)
        if sock is not None:
            # pyserial's socket:// leaves Nagle's algorithm on: a STATE_REQUEST right after a
            # COMMAND would wait ~40 ms for the first one's ACK.
            import socket

            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self._handshake()
        except BaseException:
            self.port.close()
            self.port = None
            raise

    def disconnect(self) -> None:
        if self.port is not None:
            self.port.close()
            self.port = None

    def release(self) -> None:
        if self.port is not None:
            self._send(MessageType.RELEASE)

    def _handshake(self) -> None:
        """HELLO until DESCRIPTION: the device's name, joints, limits, units, mode, version."""
        self._reader = FrameReader()
        self.port.reset_input_buffer()
        deadline = time.perf_counter() + self.handshake_timeout
        received, resend_at, bad = 0, 0.0, 0
        while time.perf_counter() < deadline:
            if time.perf_counter() >= resend_at or self._reader.bad_frames > bad:
                # Again after a garbled answer or a silence: a noisy line loses some.
                bad = self._reader.bad_frames
                self._send(MessageType.HELLO, hello_payload())
                resend_at = time.perf_counter() + HELLO_RETRY_SECONDS
            data = self._read_some(min(deadline, resend_at))
            received += len(data)
            for frame in self._reader.feed(data):
                if frame.version != VERSION:
                    raise DeviceError(f"the device at {self.url!r} speaks protocol version "
                                      f"{frame.version}; this host speaks {VERSION}. Update "
                                      "one of them (docs/protocol.md)")
                if frame.type == MessageType.FAULT:
                    code, message = parse_fault(frame.payload)
                    if code == FaultCode.VERSION:
                        raise DeviceError(f"the device at {self.url!r} refused protocol version "
                                          f"{VERSION}: {message}")
                    continue  # e.g. RESET at power-up: the HELLO is what answers it
                if frame.type == MessageType.DESCRIPTION:
                    try:
                        self.description = Description.from_payload(frame.payload)
                    except (ProtocolError, TypeError) as error:
                        raise DeviceError(f"the device at {self.url!r} sent a self-description "
                                          f"this host cannot read: {error}") from None
                    self._device_seq = frame.seq
                    problems = description_mismatches(self.description, self.spec)
                    if problems:
                        raise DeviceError(f"the device at {self.url!r} is not the robot "
                                          f"{self.spec.name!r}, refusing to move: "
                                          + "; ".join(problems))
                    self._session_lost = False
                    self.device_stopped = ""
                    return
        what = (f"{received} bytes, no valid sim2real frame (another protocol or baud rate?)"
                if received else "no answer")
        raise DeviceError(f"handshake with {self.url!r} failed after "
                          f"{self.handshake_timeout:g} s: {what}. Is the device powered and "
                          "running sim2real firmware or `sim2real emulate`?")

    # -- the cycle -----------------------------------------------------------------------------
    def read_state(self) -> RobotState:
        """Ask for a reading and wait for it. A request whose answer came back corrupted is sent
        again at once, one with no answer after `attempt_timeout`; any answer to this call's
        requests will do, until `reply_timeout` (then TimeoutError)."""
        self._require()
        if self.device_stopped:
            raise DeviceError(f"the device at {self.url!r} stopped: {self.device_stopped}")
        if self._session_lost:
            self._reconnect()
        start = time.perf_counter()
        deadline = start + self.reply_timeout
        requests: set[int] = set()
        while True:
            requests.add(self._send(MessageType.STATE_REQUEST))
            attempt_end = min(deadline, time.perf_counter() + self.attempt_timeout)
            bad_before = self.stats.crc_errors
            while True:
                for frame in self._receive(attempt_end):
                    if frame.type != MessageType.STATE:
                        continue
                    try:
                        state = State.from_payload(frame.payload)
                    except ProtocolError:
                        self.stats.crc_errors += 1
                        continue
                    if state.request_seq not in requests:
                        self.stats.late_frames += 1
                        continue
                    self.stats.round_trips_us.append((time.perf_counter() - start) * 1e6)
                    self.status = state.status
                    return RobotState(np.asarray(state.positions, dtype=float),
                                      np.asarray(state.velocities, dtype=float),
                                      state.device_time_us * 1e-6,
                                      command_time=(state.command_time_us * 1e-6
                                                    if state.command_time_us else np.nan))
                if self.device_stopped:
                    raise DeviceError(f"the device at {self.url!r} stopped: "
                                      f"{self.device_stopped}")
                if self.stats.crc_errors > bad_before or time.perf_counter() >= attempt_end:
                    break  # the answer was lost: ask again while there is time
            if time.perf_counter() >= deadline:
                self.stats.timeouts += 1
                raise TimeoutError(f"no STATE from {self.url!r} within "
                                   f"{self.reply_timeout * 1e3:.1f} ms")
            self.stats.retries += 1

    def _write_command(self, command: np.ndarray) -> None:
        self._require()
        self._send(MessageType.COMMAND, Command(self.mode, tuple(command.tolist())).to_payload())

    def estop(self) -> None:
        """Tell the device to stop and hold now (it answers FAULT ESTOP)."""
        self._send(MessageType.ESTOP)

    # -- the line ------------------------------------------------------------------------------
    def _require(self) -> serial.SerialBase:
        if self.port is None:
            raise RuntimeError("SerialRobot is not connected; call connect() or use `with`")
        return self.port

    def _send(self, message_type: MessageType, payload: bytes = b"") -> int:
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFFFF
        try:
            self.port.write(encode_frame(message_type, seq, payload))
        except serial.SerialTimeoutException:
            raise TimeoutError(f"writing to {self.url!r} timed out") from None
        except (serial.SerialException, OSError) as error:
            raise ConnectionError(f"the serial link {self.url!r} is gone: {error}") from None
        self.stats.frames_sent += 1
        return seq

    def _read_some(self, deadline: float) -> bytes:
        return read_arrived(self.port, deadline, self.url)

    def _receive(self, deadline: float) -> list:
        bad_before = self._reader.bad_frames
        frames = self._reader.feed(self._read_some(deadline))
        self.stats.crc_errors += self._reader.bad_frames - bad_before
        for frame in frames:
            self.stats.frames_received += 1
            if self._device_seq is not None:
                gap = (frame.seq - self._device_seq - 1) & 0xFFFF
                if gap < 0x8000:
                    self.stats.dropped_frames += gap
            self._device_seq = frame.seq
            if frame.type == MessageType.FAULT:
                code, _ = parse_fault(frame.payload)
                try:
                    name = FaultCode(code).name
                except ValueError:  # a code of a newer firmware
                    name = str(code)
                self.stats.faults[name] = self.stats.faults.get(name, 0) + 1
                if code == FaultCode.RESET:
                    self._session_lost = True  # a brown-out: shake hands again
                elif code in (FaultCode.WATCHDOG, FaultCode.ESTOP):
                    # The device holds until a new HELLO; resuming is a person's decision.
                    self.device_stopped = f"{name}: {parse_fault(frame.payload)[1]}"
        return frames

    def _reconnect(self) -> None:
        if self.stats.reconnects >= self.reconnects:
            raise DeviceError(f"the device at {self.url!r} lost its session (reset) more than "
                              f"{self.reconnects} times; check its power and cabling")
        self.stats.reconnects += 1
        self._handshake()
