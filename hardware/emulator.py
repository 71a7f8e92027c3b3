"""The device emulator: the other end of the wire, as a robot's microcontroller would be, backed
by the robot's physics running in real time. It is the hardware-in-the-loop sim backend:
`sim2real deploy POLICY --robot serial:///dev/pts/N` drives it exactly as it would drive the
robot, through the real serial driver, framing, CRC and timeouts.

It speaks the protocol of hardware/protocol.py (docs/protocol.md), with the device-side rules:
commands only inside a session opened by HELLO; a watchdog that holds the robot when no COMMAND
or HEARTBEAT arrives in time, and then waits for a new HELLO; ESTOP holds, RELEASE turns torque
off. The physics is `sim.physics.RobotSimulation` with the robot's actuator model (servo P and D
gains, deadband, encoder quantization, torque limit; or the DC motor). Options: physical
parameters pinned in the randomization config's schema (a heavier, weaker, slower robot than the
nominal one), the wire time of a given baud rate, wire faults (hardware/faults.py), and for a
motor-driven robot the hand of the person at the rig (hardware/emulation.py `Hand`: holds a
pendulum up until the host drives the motor, puts it back after a fall); for an arm, what lies
on its table (`TableScene`: push's block, which a person puts back when the host waits for it,
or the targets of a camera calibration).
Imports MuJoCo: runs on the host, not on the robot's computer.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hardware.emulation import CLEAN_WIRE, Hand, TableScene, apply_pinned_physics
from hardware.faults import WireFaults
from hardware.protocol import (
    MODE_OF_ACTUATOR,
    STATUS_DRIVING,
    STATUS_ESTOP,
    STATUS_WATCHDOG,
    VERSION,
    Command,
    Description,
    FaultCode,
    FrameReader,
    MessageType,
    ProtocolError,
    State,
    description_chunks,
    encode_frame,
    fault_payload,
    parse_hello,
)
from hardware.transports import Transport
from sim.physics import RobotSimulation
from sim.spec import RobotSpec

if TYPE_CHECKING:
    pass


@dataclass
class DeviceCounters:
    frames_received: int = 0
    frames_sent: int = 0
    """Frames written whole (after fault injection)."""
    bad_frames: int = 0
    """Frames from the host that failed COBS/CRC/length (corrupted on the way in)."""
    commands: int = 0
    watchdog_trips: int = 0
    faults_sent: dict[str, int] = field(default_factory=dict)
    lost_out: int = 0
    """Frames the device sent that fault injection dropped or corrupted: the host should count
    each as a gap in the device's sequence numbers."""
    dropped_in: int = 0
    """Frames from the host that fault injection dropped on arrival."""
    hand_releases: int = 0
    """Times the hand (`Hand`) let go of the joints: a nonzero command arrived."""
    hand_catches: int = 0
    """Times the hand put the joints back at its pose after `catch_seconds` at 0 V."""


class DeviceEmulator:
    """Example (what `sim2real emulate so_arm --pty` does):
        >>> transport = PtyTransport()   # hardware/transports.py
        >>> print(transport.name)        # connect the host here
        >>> DeviceEmulator(SO_ARM, transport).serve()
    """

    def __init__(self, spec: RobotSpec, transport: Transport, watchdog_ms: float = 100.0,
                 physics: Any = None, baudrate: int | None = None,
                 faults: WireFaults | None = None, initial_pose: np.ndarray | None = None,
                 seed: int = 0, hand: Hand | None = None, table: TableScene | None = None) -> None:
        if watchdog_ms <= 0:
            raise ValueError(f"watchdog_ms must be > 0, got {watchdog_ms}")
        if baudrate is not None and baudrate <= 0:
            raise ValueError(f"baudrate must be > 0, got {baudrate}")
        self.spec, self.transport = spec, transport
        self.watchdog = watchdog_ms * 1e-3
        self.baudrate, self.faults = baudrate, faults or WireFaults()
        self.mode = MODE_OF_ACTUATOR[spec.actuator_kind]
        self.table = table
        self.sim = (RobotSimulation(spec, table.scene, table.objects) if table is not None
                    else RobotSimulation(spec))
        self.command_delay = 0.0
        self.physics_applied: dict[str, float] = {}
        if physics is not None:
            self.physics_applied, self.command_delay = apply_pinned_physics(
                self.sim.model, physics, spec, seed)
        if hand is not None and spec.actuator_kind == "position":
            raise ValueError(f"{spec.name}'s servos hold their own pose: a hand (--catch) is for "
                             "motor-driven robots such as furuta")
        self.hand = hand
        pose = np.asarray(spec.default_pose if initial_pose is None else initial_pose, float)
        self.sim.reset(hand.pose if hand is not None else pose,
                       table.initial_objects if table is not None else None)
        self.description = Description.of_spec(spec, watchdog_ms, firmware="sim2real-emulator")
        self._description_chunks = description_chunks(self.description.to_payload())
        self._force_range = self.sim.model.actuator_forcerange[self.sim.ctrl_at].copy()
        self._force_limited = self.sim.model.actuator_forcelimited[self.sim.ctrl_at].copy()
        self.counters = DeviceCounters()
        self._reader = FrameReader()
        self._seq = 0
        self._session = False
        self._status = 0
        self._last_feed = 0.0
        self._pending: deque[tuple[float, np.ndarray]] = deque()
        self._last_state: State | None = None
        self._command_time_us = 0
        self._command_seq = 0
        self._start = 0.0
        self._outbox: deque[tuple[float, bytes, bool]] = deque()
        """Frames sent, each with the time it reaches the wire: latency (a USB adapter's latency
        timer holds what the device sent) and the baud rate's wire time delay them, in order,
        while the device goes on working as firmware would."""

    # -- serving -------------------------------------------------------------------------------
    def serve(self, seconds: float | None = None, stop: Any = None) -> DeviceCounters:
        """Answer the host until `seconds` pass, `stop` (a threading.Event) is set, Ctrl-C, or
        a scheduled disconnect."""
        self._start = time.perf_counter()
        self._power_up()
        try:
            while stop is None or not stop.is_set():
                now = time.perf_counter()
                if seconds is not None and now - self._start >= seconds:
                    break
                connected = self.faults.since_connected(now)
                if self.faults.disconnect_due(connected):
                    break
                if self.faults.reset_due(connected):
                    self._reset()
                data = self.transport.read(0.0005)
                if data:
                    self._feed(self._wire().corrupt(data))
                self._advance()
                self._tick()
                self._flush()
        finally:
            self.transport.close()
            self._count()  # also when Ctrl-C or SIGTERM ends it
        return self.counters

    def _power_up(self) -> None:
        self._send(MessageType.FAULT, fault_payload(FaultCode.RESET, "powered up"))

    def _tick(self) -> None:
        """The device's own work between frames: its watchdog."""
        if self._session and time.perf_counter() - self._last_feed > self.watchdog:
            self.counters.watchdog_trips += 1
            self._hold(STATUS_WATCHDOG, FaultCode.WATCHDOG,
                       f"no command for {self.watchdog * 1e3:.0f} ms: holding; send "
                       "HELLO to resume")

    def _count(self) -> None:
        """The counters kept elsewhere, into `counters` (when serving ends)."""
        self.counters.bad_frames = self._reader.bad_frames

    def _feed(self, data: bytes) -> None:
        for frame in self._reader.feed(data):
            self.faults.connect(time.perf_counter())
            if self._wire().drop():
                self.counters.dropped_in += 1
                continue
            self.counters.frames_received += 1
            self._handle(frame)

    def _handle(self, frame: Any) -> None:
        if frame.version != VERSION:
            self._fault(FaultCode.VERSION, f"this device speaks protocol version {VERSION}")
            return
        kind = frame.type
        if kind == MessageType.HELLO:
            try:
                asked = parse_hello(frame.payload)
            except ProtocolError:
                return
            if asked != VERSION:
                self._fault(FaultCode.VERSION, f"this device speaks protocol version {VERSION}")
                return
            self._torque(True)
            self._session, self._status = True, STATUS_DRIVING
            self._last_feed = time.perf_counter()
            for chunk in self._description_chunks:
                self._send(MessageType.DESCRIPTION, chunk)
        elif kind == MessageType.DESCRIPTION_REQUEST:
            if self._session and len(frame.payload) == 1 and frame.payload[0] < len(
                    self._description_chunks):
                self._send(MessageType.DESCRIPTION, self._description_chunks[frame.payload[0]])
        elif kind == MessageType.STATE_REQUEST:
            self._advance()
            self._send(MessageType.STATE, self._state(frame.seq).to_payload())
        elif kind == MessageType.COMMAND:
            self._command(frame.payload, frame.seq)
        elif kind == MessageType.HEARTBEAT:
            if self._session:
                self._last_feed = time.perf_counter()
        elif kind == MessageType.ESTOP:
            self._hold(STATUS_ESTOP, FaultCode.ESTOP, "e-stop from the host: holding; send "
                                                      "HELLO to resume")
        elif kind == MessageType.RELEASE:
            self._pending.clear()
            self._torque(False)
            if not self.sim.is_servo:
                self._actuate(np.zeros(self.spec.num_actuators), self._now())  # no voltage now
            self._session, self._status = False, 0

    def _command(self, payload: bytes, seq: int) -> None:
        if not self._session:
            self._fault(FaultCode.NO_SESSION, "no session: send HELLO first")
            return
        try:
            command = Command.from_payload(payload)
        except ProtocolError as error:
            self._fault(FaultCode.BAD_COMMAND, str(error))
            return
        targets = np.asarray(command.targets, dtype=float)
        if command.mode != self.mode or len(targets) != self.spec.num_actuators or not np.all(
                np.isfinite(targets)):
            self._fault(FaultCode.BAD_COMMAND,
                        f"expected {self.spec.num_actuators} finite {self.mode.name} targets, "
                        f"got {len(targets)} {command.mode.name}")
            return
        self.counters.commands += 1
        self._last_feed = time.perf_counter()
        received = self._now()
        self._command_time_us = round(received * 1e6)  # what firmware would stamp on receipt
        self._command_seq = seq
        self._pending.append((received + self.command_delay, targets))

    # -- the device's body ---------------------------------------------------------------------
    def _now(self) -> float:
        return time.perf_counter() - self._start

    def _wire(self) -> WireFaults:
        """The faults in force now: none before `rates_from`."""
        return self.faults if self._now() >= self.faults.rates_from else CLEAN_WIRE

    def _advance(self) -> None:
        """Physics catches up with the wall clock; delayed commands take effect on time."""
        timestep = self.sim.timestep
        target = self._now()
        while self._pending and self._pending[0][0] <= target:
            due, command = self._pending.popleft()
            self._step_to(due, timestep)
            self._actuate(command, due)
        self._step_to(target, timestep)
        if self.hand is not None and self.hand.catch(self.sim, target):
            self.counters.hand_catches += 1
        if self.table is not None and self.table.person is not None:
            self.table.person.tidy(self.sim, target)

    def _actuate(self, command: np.ndarray, when: float) -> None:
        self.sim.set_command(command)
        if self.hand is not None and self.hand.drive(command, when):
            self.counters.hand_releases += 1
        if self.table is not None and self.table.person is not None:
            self.table.person.drive(command, when)

    def _step_to(self, when: float, timestep: float) -> None:
        # Physics time is a sum of float timesteps: without the tolerance, 4.9999999 steps
        # would round down and a command would act a step early now and then.
        steps = int(np.floor((when - self.sim.data.time) / timestep + 1e-6))
        if self.hand is not None:
            self.hand.step(self.sim, steps)  # held still: time passes, nothing moves
        elif steps > 0:
            self.sim.step(steps)

    def _state(self, request_seq: int) -> State:
        if self._last_state is not None and self._wire().stale():
            previous = self._last_state
            return State(request_seq, previous.command_seq, previous.device_time_us,
                         previous.command_time_us,
                         previous.status, previous.positions, previous.velocities,
                         previous.efforts)
        reading = self.sim.state()
        efforts = self.sim.data.qfrc_actuator[self.sim.qvel_index]
        self._last_state = State(request_seq, self._command_seq, round(reading.time * 1e6),
                                 self._command_time_us,
                                 self._status, tuple(reading.positions),
                                 tuple(reading.velocities), tuple(efforts))
        return self._last_state

    def _hold(self, status: int, code: FaultCode, message: str) -> None:
        """Stop where it is (servos hold their measured pose, motors get 0 V); the session ends."""
        self._pending.clear()
        state = self.sim.state()
        if self.sim.is_servo:
            self.sim.set_command(state.positions[self.spec.actuated_joint_index])
        else:
            self._actuate(np.zeros(self.spec.num_actuators), self._now())
        self._session, self._status = False, status
        self._fault(code, message)

    def _torque(self, on: bool) -> None:
        model, at = self.sim.model, self.sim.ctrl_at
        if on:
            model.actuator_forcerange[at] = self._force_range
            model.actuator_forcelimited[at] = self._force_limited
        else:
            model.actuator_forcerange[at] = 0.0
            model.actuator_forcelimited[at] = 1

    def _reset(self) -> None:
        """A brown-out: the session and sequence numbers are gone, the actuators hold."""
        self._hold(0, FaultCode.RESET, "device reset: send HELLO")
        self._seq = 0

    def _fault(self, code: FaultCode, message: str) -> None:
        self.counters.faults_sent[code.name] = self.counters.faults_sent.get(code.name, 0) + 1
        self._send(MessageType.FAULT, fault_payload(code, message))

    def _send(self, message_type: MessageType, payload: bytes = b"") -> None:
        data = encode_frame(message_type, self._seq, payload)
        self._seq = (self._seq + 1) & 0xFFFF
        self._transmit(data)

    def _transmit(self, data: bytes) -> None:
        """One frame (delimiter included) onto the wire: its faults, latency and wire time."""
        wire = self._wire()
        now = time.perf_counter()
        due = now + wire.delay()
        if self._outbox:
            due = max(due, self._outbox[-1][0])  # a wire keeps its order
        if self.baudrate:
            due += len(data) * 10 / self.baudrate  # 8N1: ten bits a byte on the wire
        if wire.drop():
            self.counters.lost_out += 1
            return
        damaged = wire.corrupt(data)
        self._outbox.append((due, damaged, damaged is data))
        self._flush()

    def _flush(self) -> None:
        """Write the frames whose time on the wire has come."""
        now = time.perf_counter()
        while self._outbox and self._outbox[0][0] <= now:
            _, data, intact = self._outbox.popleft()
            self.transport.write(data)
            if intact:
                self.counters.frames_sent += 1
            else:
                self.counters.lost_out += 1

