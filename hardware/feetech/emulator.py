"""The Feetech servo bus emulator: the other end of the wire as six STS3215 servos on a half-duplex
TTL bus, each with its own control table, moving the arm's MuJoCo physics in real time. It is the
HIL partner of the Feetech bus backend: `sim2real emulate so_arm --bus feetech --pty`.

It speaks Feetech protocol 0 (hardware/feetech/protocol.py, docs/feetech.md) with the servo's
rules: EEPROM written only while Lock = 0, read-only registers refused, status replies after the
Return_Delay_Time, nothing sent to a broadcast but SYNC READ and PING replies. Each servo drives
its joint as its registers say: P and D coefficients (gains), dead zones, torque limits (% of stall
torque), acceleration and goal velocity (a ramped set point), torque on only while Torque_Enable
is 1, Homing_Offset shifting positions, and the overload trip (Overload_Torque for Protection_Time,
then Protective_Torque only). The bus: wire time at the baud rate (10 bits a byte) both ways, an
absent servo says nothing (the host times out), two servos with one ID answer at once (their bytes
collide). Options as for hardware/emulator.py: pinned physics, wire faults (hardware/faults.py).
Imports MuJoCo: runs on the host, not on the robot's computer.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hardware.emulation import CLEAN_WIRE, apply_pinned_physics, sleep_precisely
from hardware.faults import WireFaults
from hardware.feetech.protocol import (
    BAUD_RATES,
    BROADCAST_ID,
    CENTER_COUNTS,
    CONTROL_TABLE,
    COUNTS_PER_TURN,
    MAX_ID,
    MODEL_STS3215,
    TABLE_SIZE,
    Instruction,
    InstructionPacket,
    InstructionReader,
    ProtocolError,
    ServoError,
    baud_code,
    parse_read,
    parse_sync_read,
    parse_sync_write,
    parse_write,
    registers_in,
    status_packet,
    wire_seconds,
)
from hardware.transports import Transport
from sim.physics import SERVO_DEADBAND_SLOT, SERVO_KP_SLOT, RobotSimulation
from sim.so_arm import STS3215
from sim.spec import RobotSpec

SO101_IDS = (1, 2, 3, 4, 5, 6)
"""The SO-101's servo IDs in its joint order: shoulder_pan 1 ... gripper 6."""
FACTORY = {
    "Model_Number": MODEL_STS3215, "Baud_Rate": 0, "Return_Delay_Time": 250,
    "Response_Status_Level": 1, "Min_Position_Limit": 0, "Max_Position_Limit": COUNTS_PER_TURN - 1,
    "Max_Temperature_Limit": 70, "Max_Voltage_Limit": 80, "Min_Voltage_Limit": 40,
    "Max_Torque_Limit": 1000, "P_Coefficient": 32, "D_Coefficient": 32, "I_Coefficient": 0,
    "CW_Dead_Zone": 1, "CCW_Dead_Zone": 1, "Protection_Current": 500, "Angular_Resolution": 1,
    "Homing_Offset": 0, "Operating_Mode": 0, "Protective_Torque": 20, "Protection_Time": 200,
    "Overload_Torque": 80,
}
"""EEPROM as shipped (ROBOT_FACTS sections 1 and 6; docs/feetech.md says where each comes from and
the choices: Return_Delay_Time 250 = 500 us, Protection_Time 200 x 10 ms = 2 s). Registers not
named are 0."""
POWER_UP = {"Torque_Enable": 0, "Acceleration": 0, "Goal_Time": 0, "Goal_Velocity": 0, "Lock": 1}
"""SRAM after power-up; Goal_Position is the present position, Torque_Limit Max_Torque_Limit."""
GAIN_UNIT = 32
"""The factory P and D coefficient: the servo's loop at these is the model's (sim/so_arm.py)."""
ACCELERATION_UNIT = 100.0
"""counts/s^2 per unit of the Acceleration register (0: no ramp)."""
STALL_CURRENT = 2.5
"""A at stall (7.4 V); Present_Current counts 6.5 mA units in proportion to the load."""
CURRENT_UNIT = 0.0065
AMBIENT_C = 25
RETURN_DELAY_UNIT = 2e-6
"""s per unit of Return_Delay_Time."""
PROTECTION_TIME_UNIT = 0.01
"""s per unit of Protection_Time."""


# -- one servo's memory and firmware, no physics -------------------------------------------------
class Servo:
    """One STS3215's control table and firmware rules (what a write may do, the overload timer),
    without physics: the emulator reads its registers to drive the joint and writes the Present_*
    registers from the physics."""

    def __init__(self, servo_id: int, attached: bool = True) -> None:
        self.memory = bytearray(TABLE_SIZE)
        self.attached = attached
        """False: not on the bus (unplugged); it hears and says nothing, its joint is limp."""
        self.alarm = ServoError(0)
        self.tripped = False
        """Overloaded: holds only Protective_Torque until Torque_Enable is written."""
        self.loaded_for = 0.0
        """s the load has stayed at or above Overload_Torque."""
        self.held: tuple[int, bytes] | None = None
        """A REG_WRITE waiting for ACTION."""
        for name, value in FACTORY.items():
            self.put(name, value)
        self.put("ID", servo_id)
        self.power_up(0)

    def get(self, name: str) -> int:
        reg = CONTROL_TABLE[name]
        return reg.decode(bytes(self.memory[reg.address:reg.end]))

    def put(self, name: str, value: int) -> None:
        """Set a register as the firmware does (no checks: Present_*, power-up values)."""
        reg = CONTROL_TABLE[name]
        low, high = reg.span
        self.memory[reg.address:reg.end] = reg.encode(min(max(int(value), low), high))

    @property
    def servo_id(self) -> int:
        return self.memory[CONTROL_TABLE["ID"].address]

    @property
    def torque_on(self) -> bool:
        return self.get("Torque_Enable") == 1

    def power_up(self, present: int) -> None:
        """SRAM back to power-up values (EEPROM kept): torque off, locked, holding `present`."""
        for name, value in POWER_UP.items():
            self.put(name, value)
        self.put("Torque_Limit", self.get("Max_Torque_Limit"))
        self.put("Goal_Position", present)
        self.alarm, self.tripped, self.loaded_for, self.held = ServoError(0), False, 0.0, None

    def recover(self, present: int) -> None:
        """RECOVERY: the factory table, keeping ID and baud rate (so the servo stays reachable;
        whether a real one keeps them is not published)."""
        servo_id, baud = self.servo_id, self.get("Baud_Rate")
        self.memory[:] = bytes(TABLE_SIZE)
        for name, value in FACTORY.items():
            self.put(name, value)
        self.put("ID", servo_id)
        self.put("Baud_Rate", baud)
        self.power_up(present)

    def refusal(self, address: int, data: bytes) -> str | None:
        """Why the servo refuses to write `data` at `address`, or None if it takes it."""
        end = address + len(data)
        if end > TABLE_SIZE:
            return "outside the table"
        touched = registers_in(address, len(data))
        if sum(min(r.end, end) - max(r.address, address) for r in touched) != len(data):
            return "no register there"
        if any(r.read_only for r in touched):
            return "read-only"
        if any(r.eeprom for r in touched) and self.get("Lock") != 0:
            return "EEPROM locked"
        trial = bytearray(self.memory)
        trial[address:end] = data
        if trial[CONTROL_TABLE["ID"].address] > MAX_ID:
            return "ID out of range"
        if trial[CONTROL_TABLE["Baud_Rate"].address] not in BAUD_RATES:
            return "baud code out of range"
        if trial[CONTROL_TABLE["Operating_Mode"].address] != 0:
            return "only position mode (0) is emulated"
        return None

    def read(self, address: int, length: int) -> bytes | None:
        if length < 1 or address + length > TABLE_SIZE:
            return None
        return bytes(self.memory[address:address + length])

    def torque_fraction(self) -> float:
        """The torque it may apply now, as a fraction of stall torque."""
        if not self.torque_on:
            return 0.0
        if self.tripped:
            return self.get("Protective_Torque") / 100.0
        return min(self.get("Torque_Limit"), self.get("Max_Torque_Limit")) / 1000.0

    def track_load(self, load: float, seconds: float) -> bool:
        """The overload timer: `load` (fraction of stall torque) held for `seconds`. True when the
        servo trips now (Overload_Torque for Protection_Time)."""
        if self.tripped or not self.torque_on:
            self.loaded_for = 0.0
            return False
        if abs(load) >= self.get("Overload_Torque") / 100.0 - 1e-9:
            self.loaded_for += seconds
        else:
            self.loaded_for = 0.0
        if self.loaded_for >= self.get("Protection_Time") * PROTECTION_TIME_UNIT - 1e-9:
            self.tripped, self.loaded_for = True, 0.0
            self.alarm |= ServoError.OVERLOAD
            return True
        return False


def collide(replies: Sequence[bytes]) -> bytes:
    """What the host hears when servos answer at once: the line is wired-AND (a 0 bit from either
    transmitter wins), so identical replies (PING) pass intact and differing ones garble."""
    merged = bytearray(max(replies, key=len))
    for reply in replies:
        for i, byte in enumerate(reply):
            merged[i] &= byte
    return bytes(merged)


@dataclass
class BusCounters:
    packets_received: int = 0
    """Instruction packets taken whole (after fault injection)."""
    bad_packets: int = 0
    """Packets from the host with a bad checksum (corrupted on the way in)."""
    dropped_in: int = 0
    """Packets fault injection dropped on arrival."""
    replies_sent: int = 0
    """Status packets written whole."""
    lost_out: int = 0
    """Status packets fault injection dropped or corrupted."""
    unanswered: int = 0
    """Packets to an ID no servo on the bus has: the host times out."""
    collisions: int = 0
    """Replies two or more servos with one ID sent at once."""
    refused: dict[str, int] = field(default_factory=dict)
    """Instructions answered with the INSTRUCTION error bit, by reason."""
    sync_writes: int = 0
    """SYNC WRITE packets taken (a backend's commands, one a control cycle)."""
    overload_trips: int = 0
    resets: int = 0
    """Brown-outs (WireFaults.reset_at): every servo powered up again, torque off."""


class FeetechBusEmulator:
    """Six STS3215s on one bus, backed by the robot's physics.

    `ids`: the ID register of each servo in the spec's actuator order (the SO-101's 1..6); None
    leaves that servo off the bus, a repeated ID puts two servos on one ID. `zero_counts`: the raw
    encoder count at each joint's zero (default 2048: half a turn), as the horns were assembled.
    `baudrate`: the line's (default 1 Mbit/s, the factory rate); a servo whose Baud_Rate register
    names another rate hears nothing. `model_numbers`: each servo's Model_Number (default 777,
    the STS3215), to put another model on the bus. `plug(k)` and `plug_next()` unplug and plug
    servos as on the bench of a motor setup (`sim2real emulate --one-at-a-time`).

    Example (what `sim2real emulate so_arm --bus feetech --pty` does):
        >>> transport = PtyTransport()   # hardware/transports.py
        >>> print(transport.name)        # the host opens this at 1,000,000 baud
        >>> FeetechBusEmulator(SO_ARM, transport).serve()
    """

    def __init__(self, spec: RobotSpec, transport: Transport, physics: Any = None,
                 baudrate: int | None = None, faults: WireFaults | None = None,
                 initial_pose: np.ndarray | None = None,
                 ids: Sequence[int | None] = SO101_IDS,
                 zero_counts: Sequence[int] | None = None, supply_volts: float = 7.4,
                 seed: int = 0, model_numbers: Sequence[int] | None = None) -> None:
        if spec.actuator_kind != "position":
            raise ValueError(f"robot {spec.name!r} has {spec.actuator_kind} actuators; the "
                             "Feetech bus emulator drives position servos (e.g. so_arm)")
        n = spec.num_actuators
        if len(ids) != n or any(i is not None and not 0 <= i <= MAX_ID for i in ids):
            raise ValueError(f"ids needs one servo ID in 0..{MAX_ID} (or None: not on the bus) "
                             f"per actuator of {spec.name} ({n}), got {tuple(ids)}")
        zero = np.full(n, CENTER_COUNTS) if zero_counts is None else np.asarray(zero_counts, int)
        if zero.shape != (n,):
            raise ValueError(f"zero_counts needs {n} values, got {len(zero)}")
        self.spec, self.transport = spec, transport
        self.baudrate = baudrate or BAUD_RATES[0]
        baud_code(self.baudrate)  # one the servos run at, or an error naming them
        self.faults = faults or WireFaults()
        self.supply_volts = supply_volts
        self.sim = RobotSimulation(spec)
        self.physics_applied: dict[str, float] = {}
        self.command_delay = 0.0
        if physics is not None:
            self.physics_applied, self.command_delay = apply_pinned_physics(
                self.sim.model, physics, spec, seed)
        pose = np.asarray(spec.default_pose if initial_pose is None else initial_pose, float)
        self.sim.reset(pose)
        model, at = self.sim.model, self.sim.ctrl_at
        # The servo's loop at the factory P, D and torque limit is the model's (after physics).
        self._kp = model.actuator_gainprm[at, SERVO_KP_SLOT].copy()
        self._kv = -model.actuator_biasprm[at, 2].copy()
        nominal_limits = np.array([a.torque_limit for a in spec.actuators])
        self.stall_torque = model.actuator_forcerange[at, 1] * STS3215.torque_limit / nominal_limits
        """N*m at 100 % (register value 1000) per servo."""
        self.zero_counts = zero
        self._joint = spec.actuated_joint_index
        self._resolution = 2.0 * np.pi / COUNTS_PER_TURN
        self.servos = [Servo(k + 1 if i is None else i, attached=i is not None)
                       for k, i in enumerate(ids)]
        for servo, model_number in zip(self.servos, model_numbers or (), strict=False):
            servo.put("Model_Number", model_number)  # another servo on the bus, for tests
        dead_zones = model.actuator_gainprm[at, SERVO_DEADBAND_SLOT]  # pinned physics may set it
        self._targets = pose[self._joint].copy()
        """Goal of each servo's loop, rad, once the command delay has passed."""
        self._setpoints = self._targets.copy()
        self._ramp_speed = np.zeros(n)
        self._pending: deque[tuple[float, int, float]] = deque()
        """Goals on their way: (due, servo, rad)."""
        self.counters = BusCounters()
        self._reader = InstructionReader()
        self._line_free = 0.0
        """When the wire is next free (perf_counter s): half duplex, one talker at a time."""
        self._start = 0.0
        for k, servo in enumerate(self.servos):
            servo.put("CW_Dead_Zone", round(dead_zones[k]))
            servo.put("CCW_Dead_Zone", round(dead_zones[k]))
            self._sense(k)
            servo.power_up(servo.get("Present_Position"))
            self._configure(k)
        self.sim.set_command(self._setpoints)

    # -- serving -------------------------------------------------------------------------------
    def serve(self, seconds: float | None = None, stop: Any = None) -> BusCounters:
        """Answer the host until `seconds` pass, `stop` (a threading.Event) is set, Ctrl-C, or a
        scheduled disconnect."""
        self._start = time.perf_counter()
        try:
            while stop is None or not stop.is_set():
                if seconds is not None and self._now() >= seconds:
                    break
                connected = self.faults.since_connected(time.perf_counter())
                if self.faults.disconnect_due(connected):
                    break
                if self.faults.reset_due(connected):
                    self._brown_out()
                data = self.transport.read(0.0005)
                if data:
                    # The host's bytes are on the wire from when they reach us: the last one
                    # arrives their wire time later; the servos act only then.
                    start = max(time.perf_counter(), self._line_free)
                    self._line_free = start + wire_seconds(len(data), self.baudrate)
                    self._feed(self._wire().corrupt(data))
                self._advance()
        finally:
            self.transport.close()
        self.counters.bad_packets = self._reader.bad_checksums
        return self.counters

    def _feed(self, data: bytes) -> None:
        for packet in self._reader.feed(data):
            self.faults.connect(time.perf_counter())
            if self._wire().drop():
                self.counters.dropped_in += 1
                continue
            self.counters.packets_received += 1
            _sleep_until(self._line_free)
            self._advance()
            self._transmit(self._handle(packet))

    def _handle(self, packet: InstructionPacket) -> list[tuple[int, bytes]]:
        """The replies to one packet, in the order they go on the wire: (servo index, bytes)."""
        kind, broadcast = packet.instruction, packet.servo_id == BROADCAST_ID
        listening = [k for k, s in enumerate(self.servos)
                     if s.attached and BAUD_RATES[s.get("Baud_Rate")] == self.baudrate]
        if kind == Instruction.SYNC_READ and broadcast:
            return self._sync_read(packet.params, listening)
        if kind == Instruction.SYNC_WRITE and broadcast:
            self.counters.sync_writes += 1
            self._sync_write(packet.params, listening)
            return []
        targets = listening if broadcast else [k for k in listening
                                               if self.servos[k].servo_id == packet.servo_id]
        if not targets:
            if not broadcast:
                self.counters.unanswered += 1
            return []
        if broadcast and kind == Instruction.PING:  # each answers, in ID order (docs/feetech.md)
            for k in targets:
                self._sense(k)
            order = sorted({self.servos[k].servo_id for k in targets})
            return [self._together([(k, self._status(k)) for k in targets
                                    if self.servos[k].servo_id == i]) for i in order]
        replies = [(k, self._instruction(k, kind, packet.params)) for k in targets]
        answers = [(k, reply) for k, reply in replies if reply is not None]
        return [] if broadcast or not answers else [self._together(answers)]

    def _instruction(self, k: int, kind: int, params: bytes) -> bytes | None:
        """Carry out one instruction on servo k; its reply (None: none due)."""
        servo = self.servos[k]
        self._sense(k, reading=kind == Instruction.READ)
        # The reply comes from the ID the packet reached, and as the status level was: a write
        # of ID or Response_Status_Level takes effect after it.
        servo_id, quiet = servo.servo_id, servo.get("Response_Status_Level") == 0
        try:
            if kind == Instruction.PING:
                return self._status(k)
            if kind == Instruction.READ:
                address, length = parse_read(params)
                data = servo.read(address, length)
                if data is None:
                    return self._refuse(k, "outside the table")
                return self._status(k, data)
            if kind in (Instruction.WRITE, Instruction.REG_WRITE):
                address, data = parse_write(params)
                reason = servo.refusal(address, data)
                if reason is None and kind == Instruction.WRITE:
                    self._write(k, address, data)
                elif reason is None:
                    servo.held = (address, data)
            elif kind == Instruction.ACTION:
                reason = None
                if servo.held is not None:
                    address, data = servo.held
                    servo.held = None
                    reason = servo.refusal(address, data)
                    if reason is None:
                        self._write(k, address, data)
            elif kind == Instruction.RECOVERY:
                reason = None
                servo.recover(servo.get("Present_Position"))
                self._configure(k)
                self._retarget(k, servo.get("Goal_Position"), at_once=True)
            elif kind == Instruction.RESET:
                reason = None  # the multi-turn count: position mode has none
            else:
                reason = "unknown instruction"
        except ProtocolError:
            reason = "bad parameters"
        if reason is not None:
            return self._refuse(k, reason, servo_id)
        return None if quiet else status_packet(servo_id, int(servo.alarm))

    def _sync_read(self, params: bytes, listening: list[int]) -> list[tuple[int, bytes]]:
        try:
            address, length, ids = parse_sync_read(params)
        except ProtocolError:
            return []
        replies = []
        for servo_id in ids:  # in the order asked; an absent servo's turn is skipped
            answers = []
            for k in listening:
                if self.servos[k].servo_id == servo_id:
                    self._sense(k, reading=True)
                    data = self.servos[k].read(address, length)
                    if data is not None:
                        answers.append((k, self._status(k, data)))
            if answers:
                replies.append(self._together(answers))
        return replies

    def _sync_write(self, params: bytes, listening: list[int]) -> None:
        try:
            address, writes = parse_sync_write(params)
        except ProtocolError:
            self._count_refusal("bad parameters")
            return
        for servo_id, data in writes:
            for k in listening:
                if self.servos[k].servo_id == servo_id:
                    self._sense(k)
                    reason = self.servos[k].refusal(address, data)
                    if reason is None:
                        self._write(k, address, data)
                    else:
                        self._count_refusal(reason)

    def _together(self, answers: list[tuple[int, bytes]]) -> tuple[int, bytes]:
        """What the servos sharing one ID send: one reply, or their collision."""
        if len(answers) > 1:
            self.counters.collisions += 1
        return answers[0][0], collide([reply for _, reply in answers])

    def _status(self, k: int, data: bytes = b"") -> bytes:
        servo = self.servos[k]
        return status_packet(servo.servo_id, int(servo.alarm), data)

    def _refuse(self, k: int, reason: str, servo_id: int | None = None) -> bytes:
        self._count_refusal(reason)
        servo = self.servos[k]
        error = servo.alarm | ServoError.INSTRUCTION
        return status_packet(servo.servo_id if servo_id is None else servo_id, int(error))

    def _count_refusal(self, reason: str) -> None:
        self.counters.refused[reason] = self.counters.refused.get(reason, 0) + 1

    def _transmit(self, replies: list[tuple[int, bytes]]) -> None:
        """Each reply after its servo's return delay, at the wire's pace, one after another."""
        if not replies:
            return
        due = max(time.perf_counter(), self._line_free)
        for k, data in replies:
            wire = self._wire()
            delay = self.servos[k].get("Return_Delay_Time") * RETURN_DELAY_UNIT + wire.delay()
            due += delay + wire_seconds(len(data), self.baudrate)
            _sleep_until(due)
            if wire.drop():
                self.counters.lost_out += 1
                continue
            damaged = wire.corrupt(data)
            self.transport.write(damaged)
            if damaged is data:
                self.counters.replies_sent += 1
            else:
                self.counters.lost_out += 1
        self._line_free = due

    # -- what a write does -----------------------------------------------------------------
    def _write(self, k: int, address: int, data: bytes) -> None:
        servo = self.servos[k]
        touched = {r.name for r in registers_in(address, len(data))}
        was_on = servo.torque_on
        servo.memory[address:address + len(data)] = data
        if "Torque_Enable" in touched:
            self._torque_enable(k, was_on, "Goal_Position" in touched)
        if touched & {"Goal_Position", "Homing_Offset", "Min_Position_Limit", "Max_Position_Limit"}:
            self._retarget(k, servo.get("Goal_Position"))
        self._configure(k)

    def _torque_enable(self, k: int, was_on: bool, new_goal: bool) -> None:
        """Writing Torque_Enable clears an overload trip. 1 from 0: hold where it is (the goal
        becomes the present position, unless the same write set a goal). 128: this position
        becomes the middle, 2048 (Feetech's CalibrationOfs), by Homing_Offset; torque as it
        was."""
        servo = self.servos[k]
        value = servo.get("Torque_Enable")
        servo.tripped, servo.loaded_for = False, 0.0
        servo.alarm &= ~ServoError.OVERLOAD
        if value == 128:
            raw = (servo.get("Present_Position") + servo.get("Homing_Offset")) % COUNTS_PER_TURN
            servo.put("Homing_Offset", raw - CENTER_COUNTS)
            servo.put("Torque_Enable", int(was_on))
            self._sense(k)
            servo.put("Goal_Position", servo.get("Present_Position"))
            self._retarget(k, servo.get("Goal_Position"), at_once=True)
        elif value == 1 and not was_on and not new_goal:
            servo.put("Goal_Position", servo.get("Present_Position"))
            self._retarget(k, servo.get("Goal_Position"), at_once=True)

    def _retarget(self, k: int, goal: int, at_once: bool = False) -> None:
        """Goal_Position (counts) -> the loop's goal (rad), after the command delay: within the
        position limits, shifted by Homing_Offset (raw = goal + offset)."""
        servo = self.servos[k]
        low, high = servo.get("Min_Position_Limit"), servo.get("Max_Position_Limit")
        if low or high:  # both 0: no limits (multi-turn, not emulated further)
            goal = min(max(goal, low), high)
        raw = goal + servo.get("Homing_Offset")
        angle = (raw - self.zero_counts[k]) * self._resolution
        if at_once:  # and goals written before, still on their way, are void
            self._pending = deque(p for p in self._pending if p[1] != k)
            self._targets[k] = self._setpoints[k] = angle
            self._ramp_speed[k] = 0.0
            self.sim.set_command(self._setpoints)
        else:
            self._pending.append((self._now() + self.command_delay, k, angle))

    def _configure(self, k: int) -> None:
        """Servo k's registers into its MuJoCo actuator: gains, torque limit."""
        servo, model = self.servos[k], self.sim.model
        a = self.sim.actuator_index[k]
        torque = servo.torque_fraction() * self.stall_torque[k] if servo.attached else 0.0
        model.actuator_forcerange[a] = (-torque, torque)
        model.actuator_gainprm[a, SERVO_KP_SLOT] = self._kp[k] * servo.get("P_Coefficient") / GAIN_UNIT
        model.actuator_biasprm[a, 2] = -self._kv[k] * servo.get("D_Coefficient") / GAIN_UNIT
        self.sim.gain_phase = 0  # the servos decide again whether to drive, with the new gain

    def _brown_out(self) -> None:
        """Every servo loses power for a moment: SRAM as at power-up, torque off (limp)."""
        self.counters.resets += 1
        self._pending.clear()
        for k, servo in enumerate(self.servos):
            self._sense(k)
            servo.power_up(servo.get("Present_Position"))
            self._retarget(k, servo.get("Goal_Position"), at_once=True)
            self._configure(k)

    # -- the motor-setup bench ------------------------------------------------------------------
    def plug(self, k: int | None) -> None:
        """Only servo k (in actuator order) on the bus; None: every servo (the arm assembled)."""
        if k is not None and not 0 <= k < len(self.servos):
            raise ValueError(f"servo {k} does not exist: {self.spec.name} has servos 0.."
                             f"{len(self.servos) - 1} in actuator order")
        # Unplug before plugging in, as a person does.
        for j, servo in enumerate(self.servos):
            if k is not None and j != k:
                servo.attached = False
        for j, servo in enumerate(self.servos):
            if k is None or j == k:
                servo.attached = True

    def plug_next(self) -> str:
        """The bench of `sim2real emulate --one-at-a-time`: unplug the one servo on the bus and
        plug in the next in actuator order; after the last, all of them. Returns `on_bus()`."""
        plugged = [k for k, servo in enumerate(self.servos) if servo.attached]
        last = len(self.servos) - 1
        self.plug(plugged[0] + 1 if len(plugged) == 1 and plugged[0] < last else None)
        return self.on_bus()

    def on_bus(self) -> str:
        """Which servos are plugged in, for a person: "shoulder_lift (servo 2 of 6)"."""
        plugged = [k for k, servo in enumerate(self.servos) if servo.attached]
        n = len(self.servos)
        if len(plugged) == n:
            return f"all {n} servos"
        names = self.spec.actuator_names
        return ", ".join(f"{names[k]} (servo {k + 1} of {n})" for k in plugged) or "no servo"

    # -- the servos' bodies --------------------------------------------------------------------
    def _now(self) -> float:
        return time.perf_counter() - self._start

    def _wire(self) -> WireFaults:
        """The faults in force now: none before `rates_from`."""
        return self.faults if self._now() >= self.faults.rates_from else CLEAN_WIRE

    def _advance(self) -> None:
        """Physics catches up with the wall clock, one physics step at a time (the servos ramp
        their set points and count their overload time each step); goals act on time."""
        sim, timestep = self.sim, self.sim.timestep
        now = self._now()
        while sim.data.time + timestep <= now + 1e-9:
            while self._pending and self._pending[0][0] <= sim.data.time + timestep:
                _, k, angle = self._pending.popleft()
                self._targets[k] = angle
            self._physics_step(timestep)

    def _physics_step(self, timestep: float) -> None:
        sim, model = self.sim, self.sim.model
        if self._ramp(timestep) or sim.gain_phase == 0:
            sim.set_command(self._setpoints)
            # The dead zone on the side the goal lies: CW below the present position.
            measured = sim.data.qpos[sim.actuated_qpos]
            for k, servo in enumerate(self.servos):
                side = "CW_Dead_Zone" if self._setpoints[k] < measured[k] else "CCW_Dead_Zone"
                model.actuator_gainprm[sim.actuator_index[k], SERVO_DEADBAND_SLOT] = servo.get(side)
        sim.step(1)
        loads = sim.data.actuator_force[sim.actuator_index] / self.stall_torque
        for k, servo in enumerate(self.servos):
            if servo.track_load(loads[k], timestep):
                self.counters.overload_trips += 1
                self._configure(k)

    def _ramp(self, timestep: float) -> bool:
        """Move each set point toward its goal within Goal_Velocity (counts/s) and Acceleration
        (100 counts/s^2 a unit); 0 means unlimited. True if any set point moved."""
        moved = False
        for k, servo in enumerate(self.servos):
            error = self._targets[k] - self._setpoints[k]
            if error == 0.0:
                self._ramp_speed[k] = 0.0
                continue
            moved = True
            speed = abs(servo.get("Goal_Velocity")) * self._resolution or math.inf
            accel = servo.get("Acceleration") * ACCELERATION_UNIT * self._resolution or math.inf
            if math.isinf(speed) and math.isinf(accel):
                self._setpoints[k] = self._targets[k]
                continue
            # Fast as allowed, slow enough to stop at the goal: a trapezoidal profile.
            wanted = math.copysign(min(speed, math.sqrt(2 * accel * abs(error))), error)
            change = min(max(wanted - self._ramp_speed[k], -accel * timestep), accel * timestep)
            self._ramp_speed[k] += change
            step = self._ramp_speed[k] * timestep
            if abs(step) >= abs(error) or step * error < 0:
                self._setpoints[k], self._ramp_speed[k] = self._targets[k], 0.0
            else:
                self._setpoints[k] += step
        return moved

    def _sense(self, k: int, reading: bool = False) -> None:
        """Servo k's Present_* registers from the physics, as its firmware would. For a reading
        the host asked for, the stale fault may keep the previous values (a sensor that did not
        update)."""
        servo, sim = self.servos[k], self.sim
        if reading and self._wire().stale():
            return
        joint, a = self._joint[k], sim.actuator_index[k]
        angle = sim.data.qpos[sim.qpos_index[joint]]
        speed = sim.data.qvel[sim.qvel_index[joint]]
        load = sim.data.actuator_force[a] / self.stall_torque[k]
        raw = self.zero_counts[k] + round(angle / self._resolution)
        present = (raw - servo.get("Homing_Offset")) % COUNTS_PER_TURN
        servo.put("Present_Position", present)
        servo.put("Present_Velocity", round(speed / self._resolution))
        servo.put("Present_Load", round(max(-1.0, min(1.0, load)) * 1000))
        volts = round(self.supply_volts * 10)
        servo.put("Present_Voltage", volts)
        servo.put("Present_Temperature", AMBIENT_C)
        if not servo.get("Min_Voltage_Limit") <= volts <= servo.get("Max_Voltage_Limit"):
            servo.alarm |= ServoError.VOLTAGE
        else:
            servo.alarm &= ~ServoError.VOLTAGE
        servo.put("Status", int(servo.alarm))
        dead = max(servo.get("CW_Dead_Zone"), servo.get("CCW_Dead_Zone"))
        moving = servo.torque_on and (abs(servo.get("Goal_Position") - present) > dead
                                      or self._setpoints[k] != self._targets[k])
        servo.put("Moving", int(moving))
        servo.put("Present_Current", round(load * STALL_CURRENT / CURRENT_UNIT))


def _sleep_until(when: float) -> None:
    wait = when - time.perf_counter()
    if wait > 0:
        sleep_precisely(wait)
