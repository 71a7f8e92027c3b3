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
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import serial

from hardware.protocol import (
    MODE_OF_ACTUATOR,
    STATUS_DRIVING,
    STATUS_ESTOP,
    STATUS_WATCHDOG,
    VERSION,
    Command,
    Description,
    DescriptionChunks,
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
CHUNK_RETRY_SECONDS = 0.03
"""Ask for missing description chunks after this long without one."""
HEARTBEAT_SECONDS = 0.02
"""While the description comes: a HEARTBEAT this often keeps the device's watchdog fed (its
session, and watchdog, began with the HELLO; 100 ms is a common watchdog)."""
PINGS = 8
"""Answered state requests timed at connect: the round trip that sets the link's timing."""
PING_SPACING = 0.005
"""Between pings: a lossy line loses some, a slow one has several in flight."""
UNASKED_FRAMES = 64
"""Device frames beyond one per host frame that a gap in its sequence may account for: the
description's chunks answering one HELLO, faults it sends on its own."""


class DeviceError(ConnectionError):
    """The device cannot be used: absent, silent, another protocol, or not the robot expected."""


@dataclass(frozen=True)
class LinkTiming:
    """How the host times a link, from its control period and the round trip measured at
    connect. A round trip within a quarter period is read at the tick (ask, wait, retry a lost
    answer); a longer one, such as a USB-serial adapter's 16 ms latency timer at its Linux
    default, is pipelined: between a cycle's write and the next tick the host asks every
    `request_spacing` s, and the read at the tick takes the newest answer that arrived. The
    reading is then a round trip old, as it must be on such a link, and the loop keeps its rate.

    Example:
        >>> LinkTiming.of(control_period=0.02, round_trip=0.0165).pipelined
        True
    """

    control_period: float
    round_trip: float
    """Median of the pings at connect, s."""
    slowest: float
    """The slowest of them, s."""
    reply_timeout: float
    """Longest wait at the tick for a reading (default half the period: a lost one costs at
    most half a cycle; the loop's watchdog judges a run of them)."""
    attempt_timeout: float
    """Read at the tick: wait this long for an answer before asking again."""
    wire_time: float = 0.0
    """Seconds a request and its answer take on the wire at the port's baud rate."""
    answered: float = 1.0
    """The share of the pings at connect that were answered."""

    @classmethod
    def of(cls, control_period: float, round_trip: float = 0.0, slowest: float | None = None,
           reply_timeout: float | None = None, attempt_timeout: float | None = None,
           wire_time: float = 0.0, answered: float = 1.0) -> LinkTiming:
        slowest = round_trip if slowest is None else slowest
        reply_timeout = reply_timeout or 0.5 * control_period
        # An answer is lost when it is later than the slowest ping by half as much again.
        attempt_timeout = attempt_timeout or max(reply_timeout / 3, 1.5 * slowest + 0.0005)
        if reply_timeout <= 0 or attempt_timeout <= 0:
            raise ValueError("reply_timeout and attempt_timeout must be > 0 s, got "
                             f"{reply_timeout} and {attempt_timeout}")
        return cls(control_period, round_trip, slowest, reply_timeout, attempt_timeout,
                   wire_time, answered)

    @property
    def request_spacing(self) -> float:
        """Pipelined: seconds between requests. Eight a period: on a line that loses 3 in 4
        answers (1% of bytes corrupted, 10% of frames lost, a 100-byte STATE) a period still
        has a fresh reading 9 times in 10; never more than half the wire's capacity."""
        return max(self.control_period / 8, 2 * self.wire_time)

    @property
    def pipelined(self) -> bool:
        """The wire has room for two requests a period, and the round trip takes more than a
        quarter period or a tenth of the pings went unanswered: asking again at the tick would
        cost a round trip each time, where requests ahead are already on their way."""
        return (self.request_spacing <= 0.5 * self.control_period
                and (self.slowest > 0.25 * self.control_period or self.answered < 0.9))

    def summary(self) -> dict:
        return {"round_trip_ms": round(self.round_trip * 1e3, 2),
                "slowest_ping_ms": round(self.slowest * 1e3, 2),
                "pings_answered": round(self.answered, 2),
                "reads": (f"pipelined, asked every {self.request_spacing * 1e3:.1f} ms"
                          if self.pipelined else "at the tick"),
                "max_rate_hz_reading_at_the_tick": round(1.0 / (self.slowest + 0.001), 1),
                "reply_timeout_ms": round(self.reply_timeout * 1e3, 2)}


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
    unacknowledged_commands: int = 0
    """Commands whose arrival no reading confirmed before a later one was (lost on the way)."""
    timing: dict = field(default_factory=dict)
    """LinkTiming.summary() of the last connect: what the link allows."""
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
                 handshake_timeout: float = 2.0, reconnects: int = 3) -> None:
        """`reply_timeout`, `attempt_timeout`: fixed, in place of LinkTiming's defaults from the
        round trip measured at connect."""
        if handshake_timeout <= 0:
            raise ValueError(f"handshake_timeout must be > 0 s, got {handshake_timeout}")
        self.url, self.spec, self.baudrate = url, spec, baudrate
        self._timeouts_asked = reply_timeout, attempt_timeout
        self.timing = LinkTiming.of(spec.control_period, 0.0, None, *self._timeouts_asked)
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
        self._sent_at_device_frame = 0
        """stats.frames_sent when the last device frame arrived."""
        self._session_lost = False
        self._asked: set[int] = set()
        """STATE_REQUESTs whose answers the next read may take."""
        self._asked_ahead = False
        """A request went out ahead since the last read began (by request_ahead, or by that
        read while it waited): when the loop ran late and the read did not wait, none did."""
        self._asked_at = 0.0
        """time.perf_counter() of the last request asked ahead."""
        self._newest_time_us = -1
        """device_time of the last reading returned: a pipelined read takes only newer ones."""
        self._unconfirmed: deque[tuple[int, np.ndarray]] = deque(maxlen=64)
        """COMMANDs sent (seq, targets) that no reading has acknowledged yet."""
        self._acknowledged: np.ndarray | None = None
        self._lossy = False
        """The line lost a frame: every command is followed by a HEARTBEAT, so the device's
        watchdog is fed while some commands are lost."""
        self.device_stopped = ""
        """Why the device stopped on its own (its watchdog, its e-stop); it drives no more."""

    # -- lifecycle -----------------------------------------------------------------------------
    def connect(self) -> None:
        """Open the port, shake hands and time the link; a connected robot stays as it is."""
        if self.port is not None:
            return
        try:
            # A read returns as soon as a byte arrives; the timeout only bounds how far past a
            # deadline a wait can run.
            self.port = serial.serial_for_url(self.url, baudrate=self.baudrate,
                                              timeout=POLL_SECONDS,
                                              write_timeout=max(0.05, self.spec.control_period))
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
            self._time_link()
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
        """HELLO until DESCRIPTION chunks come, then each missing chunk asked for again until
        the description is whole: the device's name, joints, limits, units, mode, version."""
        self._reader = FrameReader()
        self.port.reset_input_buffer()
        start = time.perf_counter()
        deadline = start + self.handshake_timeout
        chunks = DescriptionChunks()
        received, ask_at, frames, in_session, beat_at, silent = 0, 0.0, 0, False, 0.0, 0
        while time.perf_counter() < deadline:
            now = time.perf_counter()
            if in_session and now >= beat_at:
                # The device's watchdog started with the session: feed it while chunks come.
                self._send(MessageType.HEARTBEAT)
                beat_at = now + HEARTBEAT_SECONDS
            if now >= ask_at:
                # Again after a silence: a noisy line loses some of either side's frames.
                # Three requests unanswered: the session may be gone (its watchdog, a FAULT
                # lost): HELLO opens a new one, and the chunks come again.
                in_session = in_session and silent < 3
                if in_session:
                    self._send_all([(MessageType.DESCRIPTION_REQUEST, bytes([index]))
                                    for index in chunks.missing()])
                    ask_at, silent = now + CHUNK_RETRY_SECONDS, silent + 1
                else:
                    self._send(MessageType.HELLO, hello_payload())
                    ask_at = now + HELLO_RETRY_SECONDS
            data = self._read_some(min(deadline, ask_at, beat_at if in_session else ask_at))
            received += len(data)
            for frame in self._reader.feed(data):
                frames += 1
                if frame.version != VERSION:
                    raise DeviceError(f"the device at {self.url!r} speaks protocol version "
                                      f"{frame.version}; this host speaks {VERSION}. Update "
                                      "one of them (docs/protocol.md)")
                if frame.type == MessageType.FAULT:
                    code, message = parse_fault(frame.payload)
                    if code == FaultCode.VERSION:
                        raise DeviceError(f"the device at {self.url!r} refused protocol version "
                                          f"{VERSION}: {message}")
                    # RESET at power-up, a watchdog that ended a slow handshake: HELLO again.
                    in_session, ask_at = False, 0.0
                    continue
                if frame.type != MessageType.DESCRIPTION:
                    continue
                try:
                    chunks.add(frame.payload)
                except ProtocolError:
                    continue
                in_session, silent = True, 0
                ask_at = time.perf_counter() + CHUNK_RETRY_SECONDS  # more may be on the way
                self._device_seq = frame.seq
                if (payload := chunks.joined()) is not None:
                    self._described(payload)
                    return
        bad = self._reader.bad_frames
        if frames and bad:
            what = (f"{bad} CRC errors and {len(chunks.missing()) if chunks.count else 'all'} "
                    "description chunks missing: the link is noisy. Check the cable (length, "
                    "shielding, a shared ground) and the baud rate's margin")
        elif bad:
            what = (f"{bad} CRC errors and no whole frame in {received} bytes: another protocol "
                    "or baud rate, or a link too noisy for any frame to survive")
        elif received:
            what = (f"{received} bytes, no valid sim2real frame (another protocol or baud "
                    "rate?)")
        else:
            what = "no answer"
        raise DeviceError(f"handshake with {self.url!r} failed after "
                          f"{self.handshake_timeout:g} s: {what}. Is the device powered and "
                          "running sim2real firmware or `sim2real emulate`?")

    def _described(self, payload: bytes) -> None:
        """The whole description arrived: read it and compare it with the robot expected."""
        try:
            self.description = Description.from_payload(payload)
        except (ProtocolError, TypeError) as error:
            raise DeviceError(f"the device at {self.url!r} sent a self-description this host "
                              f"cannot read: {error}") from None
        problems = description_mismatches(self.description, self.spec)
        if problems:
            raise DeviceError(f"the device at {self.url!r} is not the robot {self.spec.name!r}, "
                              "refusing to move: " + "; ".join(problems))
        self._session_lost = False
        self.device_stopped = ""

    def _time_link(self) -> None:
        """Ping the device with state requests PING_SPACING s apart (each with a HEARTBEAT: the
        device's watchdog runs) until PINGS answers or the handshake's time is up, and set the
        timing of every later read from the round trips (`LinkTiming`)."""
        sent_at: dict[int, float] = {}
        trips: list[float] = []
        deadline = time.perf_counter() + self.handshake_timeout
        while len(trips) < PINGS and time.perf_counter() < deadline:
            seq = self._send_all([(MessageType.STATE_REQUEST, b""), (MessageType.HEARTBEAT, b"")])[0]
            sent_at[seq] = time.perf_counter()
            wait_end = min(deadline, sent_at[seq] + PING_SPACING)
            while time.perf_counter() < wait_end:
                for frame in self._receive(wait_end):
                    if frame.type == MessageType.STATE and len(frame.payload) >= 2:
                        request = int.from_bytes(frame.payload[:2], "little")
                        if request in sent_at:
                            trips.append(time.perf_counter() - sent_at.pop(request))
                if self.device_stopped:
                    raise DeviceError(f"the device at {self.url!r} stopped: "
                                      f"{self.device_stopped}")
        if not trips:
            raise DeviceError(f"the device at {self.url!r} described itself but answered none "
                              f"of {len(sent_at)} state requests within "
                              f"{self.handshake_timeout:g} s ({self.stats.crc_errors} CRC "
                              f"errors, {self.stats.dropped_frames} frames lost): the link is "
                              "too noisy to control a robot over")
        trips.sort()
        # Unanswered: the pings still unanswered that had time to be (a slow link has the
        # last few in flight).
        lost = sum(sent < time.perf_counter() - 1.5 * trips[-1] for sent in sent_at.values())
        self.round_trip = trips[len(trips) // 2]
        self.timing = LinkTiming.of(self.spec.control_period, self.round_trip, trips[-1],
                                    *self._timeouts_asked, wire_time=self._wire_time(),
                                    answered=len(trips) / (len(trips) + lost))
        self.stats.timing = self.timing.summary()

    def _wire_time(self) -> float:
        """Seconds a STATE_REQUEST and its STATE take on the wire (8N1: ten bits a byte)."""
        joints = self.spec.num_joints
        zeros = (0.0,) * joints
        answer = encode_frame(MessageType.STATE, 0, State(0, 0, 0, 0, 0, zeros, zeros,
                                                          zeros).to_payload())
        return (len(answer) + len(encode_frame(MessageType.STATE_REQUEST, 0))) * 10 / self.baudrate

    # -- the cycle -----------------------------------------------------------------------------
    def request_ahead(self, tick: float) -> None:
        """Pipelined (a slow link): ask for a reading every `request_spacing` s until the tick,
        each request with a HEARTBEAT for the device's watchdog."""
        if not self.timing.pipelined or self.port is None or self.device_stopped:
            return
        spacing = self.timing.request_spacing
        while time.perf_counter() < tick - 0.5 * spacing:
            self._ask_ahead()
            time.sleep(max(0.0, min(spacing, tick - time.perf_counter() - 0.5 * spacing)))

    def _ask_ahead(self) -> None:
        seq, _ = self._send_all([(MessageType.STATE_REQUEST, b""), (MessageType.HEARTBEAT, b"")])
        self._asked.add(seq)  # answers wait in the port's buffer for the read
        self._asked_ahead = True
        self._asked_at = time.perf_counter()

    def _take_newest_asking(self, until: float) -> RobotState | None:
        """Pipelined: the newest answer until `until`, asking every `request_spacing` s while
        it waits. Their answers come a round trip later, for the next reads: a read that only
        waited delayed the cycle's write and the requests after it, so the next read had fewer
        answers on their way and failed more often (a run of 7 stopped the arm at 16 ms)."""
        spacing = self.timing.request_spacing
        ask_at = self._asked_at + spacing
        while True:
            state = self._take_answer(min(until, ask_at), newest=True)
            now = time.perf_counter()
            if state is not None or now >= until:
                return state
            if now >= ask_at:
                self._ask_ahead()
                # On the schedule, not a spacing after a poll that ran past it (by up to
                # POLL_SECONDS), never two at once.
                ask_at = max(ask_at + spacing, now + 0.5 * spacing)

    def read_state(self) -> RobotState:
        """The newest reading. At the tick: ask and wait; a request whose answer came back
        corrupted is sent again at once, one with no answer after `attempt_timeout`; any answer
        to this read's requests will do, until `reply_timeout` (then TimeoutError). Pipelined:
        the newest answer to the requests sent ahead, waiting for one up to `reply_timeout`."""
        self._require()
        if self.device_stopped:
            raise DeviceError(f"the device at {self.url!r} stopped: {self.device_stopped}")
        if self._session_lost:
            self._reconnect()
        start = time.perf_counter()
        timing = self.timing
        if timing.pipelined and self._asked:
            # Waiting longer would make the loop late: a read that finds none fails, and the
            # loop's watchdog judges a run of such (the first reading is tried again, asked
            # ahead each time, until its limit).
            if not self._asked_ahead:
                # The loop came late to request_ahead and nothing was asked this cycle: the
                # requests still out may all be lost, and a read that only waits for them
                # would fail every cycle after (the watchdog stopped such runs).
                self._ask_ahead()
            self._asked_ahead = False
            state = self._take_newest_asking(start + timing.reply_timeout)
            if state is not None:
                return state
        else:
            # A read not asked for ahead waits for one answer at least (the first, pipelined).
            deadline = start + max(timing.reply_timeout, timing.attempt_timeout)
            self._asked = set()
            while True:
                self._asked.add(self._send(MessageType.STATE_REQUEST))
                bad_before = self.stats.crc_errors
                attempt_end = min(deadline, time.perf_counter() + timing.attempt_timeout)
                state = self._take_answer(attempt_end, stop_on_bad=bad_before)
                if state is not None:
                    self.stats.round_trips_us.append((time.perf_counter() - start) * 1e6)
                    return state
                if time.perf_counter() >= deadline:
                    break
                self.stats.retries += 1
        self.stats.timeouts += 1
        raise TimeoutError(f"no STATE from {self.url!r} within "
                           f"{(time.perf_counter() - start) * 1e3:.1f} ms")

    def _take_answer(self, until: float, newest: bool = False,
                     stop_on_bad: int | None = None) -> RobotState | None:
        """An answer to one of `_asked` until `until`: the first, or with `newest` every one
        that has arrived by the first, the one sampled last (newer than the last returned).
        `stop_on_bad`: give up early when the CRC error count passes it (a garbled answer)."""
        best: State | None = None
        while best is None:
            for frame in self._receive(until):
                if frame.type != MessageType.STATE:
                    continue
                try:
                    state = State.from_payload(frame.payload)
                except ProtocolError:
                    self.stats.crc_errors += 1
                    continue
                self._acknowledge(state)
                self._check_status(state.status)
                if state.request_seq not in self._asked or (
                        newest and state.device_time_us <= self._newest_time_us):
                    self.stats.late_frames += 1
                    continue
                if best is None or state.device_time_us > best.device_time_us:
                    best = state
                if not newest:
                    break
            if self.device_stopped:
                raise DeviceError(f"the device at {self.url!r} stopped: {self.device_stopped}")
            if best is None and (time.perf_counter() >= until or (
                    stop_on_bad is not None and self.stats.crc_errors > stop_on_bad)):
                return None
        # Requests sent after the one answered may still bring newer readings (seq mod 2^16);
        # the one answered and those before it never will. (Kept, an answer already taken
        # left the next pipelined read waiting for it until the watchdog stopped the run.)
        self._asked = {seq for seq in self._asked
                       if 0 < (seq - best.request_seq) & 0xFFFF < 0x8000}
        self._newest_time_us = best.device_time_us
        self.status = best.status
        return RobotState(np.asarray(best.positions, dtype=float),
                          np.asarray(best.velocities, dtype=float), best.device_time_us * 1e-6,
                          command_time=(best.command_time_us * 1e-6 if best.command_time_us
                                        else np.nan))

    def _check_status(self, status: int) -> None:
        """A reading says whether the device still drives: its FAULT frame may have been lost."""
        if status & (STATUS_WATCHDOG | STATUS_ESTOP):
            if not self.device_stopped:
                kind = "WATCHDOG" if status & STATUS_WATCHDOG else "ESTOP"
                self.device_stopped = f"{kind}: the device's reading says it holds (status {status})"
        elif not status & STATUS_DRIVING:
            self._session_lost = True  # reset (its FAULT RESET lost): shake hands again

    def _acknowledge(self, state: State) -> None:
        """A reading names the last COMMAND the device applied: it and all sent before it are
        settled (arrived, or lost for good)."""
        if not state.command_time_us or not self._unconfirmed:
            return
        seqs = [seq for seq, _ in self._unconfirmed]
        if state.command_seq not in seqs:
            return  # an older acknowledgment, or one of a command already settled
        position = seqs.index(state.command_seq)
        self.stats.unacknowledged_commands += position
        for _ in range(position):
            self._unconfirmed.popleft()
        self._acknowledged = self._unconfirmed.popleft()[1]

    def command_window(self) -> list[np.ndarray]:
        """The last command the device acknowledged and every one sent since: the device holds
        one of them, and may receive any of the later ones next."""
        known = [] if self._acknowledged is None else [self._acknowledged]
        return known + [command for _, command in self._unconfirmed]

    def _write_command(self, command: np.ndarray) -> None:
        self._require()
        messages = [(MessageType.COMMAND, Command(self.mode, tuple(command.tolist())).to_payload())]
        self._lossy = self._lossy or bool(self.stats.crc_errors or self.stats.dropped_frames)
        if self._lossy:
            messages.append((MessageType.HEARTBEAT, b""))
        self._unconfirmed.append((self._seq, command.copy()))  # before sending: it may arrive
        self._send_all(messages)

    def estop(self) -> None:
        """Tell the device to stop and hold now (it answers FAULT ESTOP)."""
        self._send(MessageType.ESTOP)

    # -- the line ------------------------------------------------------------------------------
    def _require(self) -> serial.SerialBase:
        if self.port is None:
            raise RuntimeError("SerialRobot is not connected; call connect() or use `with`")
        return self.port

    def _send(self, message_type: MessageType, payload: bytes = b"") -> int:
        return self._send_all([(message_type, payload)])[0]

    def _send_all(self, messages: list[tuple[MessageType, bytes]]) -> list[int]:
        """Frames in one write (one system call); their seqs."""
        seqs, data = [], b""
        for message_type, payload in messages:
            seqs.append(self._seq)
            data += encode_frame(message_type, self._seq, payload)
            self._seq = (self._seq + 1) & 0xFFFF
        try:
            self.port.write(data)
        except serial.SerialTimeoutException:
            raise TimeoutError(f"writing to {self.url!r} timed out") from None
        except (serial.SerialException, OSError) as error:
            raise ConnectionError(f"the serial link {self.url!r} is gone: {error}") from None
        self.stats.frames_sent += len(messages)
        return seqs

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
                # The device answers what the host sends (a few frames more at most): a larger
                # gap is not frames lost but a sequence number that cannot be, a counter
                # restarted or a corrupted frame whose CRC-16 still matched (1 in 65,536).
                possible = self.stats.frames_sent - self._sent_at_device_frame + UNASKED_FRAMES
                if gap <= possible:
                    self.stats.dropped_frames += gap
            self._device_seq = frame.seq
            self._sent_at_device_frame = self.stats.frames_sent
            if frame.type == MessageType.FAULT:
                code, _ = parse_fault(frame.payload)
                try:
                    name = FaultCode(code).name
                except ValueError:  # a code of a newer firmware
                    name = str(code)
                self.stats.faults[name] = self.stats.faults.get(name, 0) + 1
                if code in (FaultCode.RESET, FaultCode.NO_SESSION):
                    # A brown-out, or one whose FAULT RESET was lost: shake hands again. (A
                    # watchdog or e-stop whose FAULT was lost shows in the next reading's status.)
                    self._session_lost = True
                elif code in (FaultCode.WATCHDOG, FaultCode.ESTOP):
                    # The device holds until a new HELLO; resuming is a person's decision.
                    self.device_stopped = f"{name}: {parse_fault(frame.payload)[1]}"
        return frames

    def _reconnect(self) -> None:
        if self.stats.reconnects >= self.reconnects:
            raise DeviceError(f"the device at {self.url!r} lost its session (reset) more than "
                              f"{self.reconnects} times; check its power and cabling")
        self.stats.reconnects += 1
        self._unconfirmed.clear()
        self._acknowledged = None  # a reset device holds where it stood, not a command
        self._handshake()
