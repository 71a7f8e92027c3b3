"""FeetechRobot: an arm of Feetech STS3215 servos on one half-duplex bus (the SO-101), spoken to in
Feetech's own protocol through pyserial: `--robot feetech:/dev/ttyUSB0` (or a pty, socket://).

On connect: the calibration must be of this robot (hardware/feetech/calibration.py), every servo must
answer and be an STS3215 whose Homing_Offset and limits are the calibration's; then the settings
the trained model assumes are written (docs/feetech.md) and torque goes on holding the present
pose. Each cycle is one SYNC READ of Present_Position .. Moving (56..66) and one SYNC WRITE of
Goal_Position; every TORQUE_CHECK_SECONDS (0.2 s) the read also asks every servo's Torque_Enable,
since a servo that browned out powers up limp and its replies do not say so otherwise. What goes
wrong on the line is counted in `stats` (SerialRobot's LinkStats); a servo's alarm bit becomes a
named fault there, and what makes motion unsafe (an overload, overcurrent or overheat alarm; a
servo found powered up again, "POWER-UP <joint>") raises ServoFault on every read and write after
it, so the deploy loop stops safely and releases the arm. numpy and pyserial only: runs on the
robot's computer.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from hardware.feetech.bus import BusError, FeetechBus
from hardware.feetech.calibration import Calibration, CalibrationError, default_path
from hardware.feetech.protocol import CONTROL_TABLE, ServoError, decode_registers, write_packet
from hardware.robot import Robot, RobotFault
from sim.spec import RobotSpec, RobotState

READ_ADDRESS, READ_LENGTH = 56, 11
"""Present_Position, Present_Velocity, Present_Load, Present_Voltage, Present_Temperature, Status,
Moving: one contiguous block."""
ALARMS = (ServoError.VOLTAGE, ServoError.ANGLE_SENSOR, ServoError.OVERHEAT, ServoError.OVERCURRENT,
          ServoError.OVERLOAD)
UNSAFE = ServoError.OVERHEAT | ServoError.OVERCURRENT | ServoError.OVERLOAD
SETTINGS = {"Return_Delay_Time": 0, "P_Coefficient": 32, "D_Coefficient": 32}
"""What the trained model assumes of every servo (docs/feetech.md): no reply delay, the factory
P and D the simulation's gains are."""
JOINT_SETTINGS = {"gripper": {"Max_Torque_Limit": 500}}
"""Half torque on the gripper, as the model's gripper actuator and LeRobot's SO-101."""
TORQUE_CHECK_SECONDS = 0.2
"""How often a reading also checks that every servo still has torque on. A brown-out (the supply
sagging under load) powers the servos up again limp, with nothing in their replies to say so:
the arm sags under gravity while the policy commands servos that ignore it. 0.2 s (every tenth
cycle at 50 Hz) names the fault before a limp arm has fallen far, for one SYNC READ of 1 byte
from six servos (56 bytes, 0.56 ms on the wire at 1 Mbit/s, plus a round trip) on one cycle in
ten: about 0.1 ms a cycle on average, against the cycle's own 1.4 ms of bus traffic."""


class ServoFault(RobotFault):
    """A servo raised an alarm that makes motion unsafe, or powered up again mid-run: the run
    must stop. `reason`: "servo fault: OVERLOAD elbow_flex (servo ID 3)", the deploy loop's stop
    reason."""


class FeetechRobot(Robot):
    """Example:
        >>> with FeetechRobot("/dev/ttyUSB0", SO_ARM) as arm:   # ~/.config/sim2real/...
        ...     state = arm.read_state()
        ...     arm.send_command(state.positions)
        ...     print(arm.stats.summary())
    """

    def __init__(self, url: str, spec: RobotSpec, calibration: Path | Calibration | None = None,
                 baudrate: int = 1_000_000, reply_timeout: float | None = None,
                 attempt_timeout: float | None = None) -> None:
        """`calibration`: a file or a Calibration (default `~/.config/sim2real/calibration/
        <robot>.json`); `reply_timeout`: longest wait for a reading (default half the control
        period); `attempt_timeout`: wait before asking the silent servos again (a third)."""
        if spec.actuator_kind != "position" or spec.num_joints != spec.num_actuators:
            raise ValueError(f"{spec.name} is not an arm of position servos, one per joint: the "
                             "Feetech bus backend drives arms such as so_arm")
        self.url, self.spec = url, spec
        self.calibration_source = calibration if calibration is not None else default_path(spec.name)
        self.reply_timeout = reply_timeout or 0.5 * spec.control_period
        self.attempt_timeout = attempt_timeout or self.reply_timeout / 3
        self.bus = FeetechBus(url, baudrate)
        self.stats = self.bus.stats
        self.calibration: Calibration | None = None
        self.fault = ""
        """Why the robot may not move any more (an unsafe alarm); empty while healthy."""
        self.fault_reason = ""
        """The same, short: "servo fault: OVERLOAD elbow_flex (servo ID 3)"."""
        self.loads = np.zeros(spec.num_actuators)
        """Present_Load of each servo at the last reading, fraction of stall torque."""
        self._alarms: dict[int, ServoError] = {}
        self._sent = np.zeros(spec.num_actuators)
        self._start = 0.0
        self._connected = False
        self._driving = False
        """Torque on, as connect left it (until release): a servo with torque off has powered up."""
        self._next_torque_check = 0.0

    # -- lifecycle -----------------------------------------------------------------------------
    def connect(self) -> None:
        """Check the calibration, the servos and their registers, write the model's settings and
        enable torque holding the present pose. Nothing moves on any mismatch."""
        if self._connected:
            return
        calibration = self.calibration_source
        if not isinstance(calibration, Calibration):
            calibration = Calibration.load(Path(calibration))
        calibration.check(self.spec)
        self.calibration = calibration
        self.bus.open()
        try:
            self.bus.find_servos(calibration.ids)
            problems = calibration.register_mismatches(self.bus)
            if problems:
                raise CalibrationError(f"the servos on {self.url} are not as calibrated, refusing "
                                       "to move: " + "; ".join(problems) + ". Calibrate again "
                                       "(sim2real calibrate) or name the right --calibration")
            self._configure()
            self._start = time.perf_counter()
            self._alarms.clear()
            self.fault = self.fault_reason = ""
            present = self._read_positions()
            goals = calibration.to_counts(calibration.to_radians(present, self.spec), self.spec)
            reg, torque = CONTROL_TABLE["Goal_Position"], CONTROL_TABLE["Torque_Enable"]
            for joint, goal in zip(calibration.joints, goals, strict=True):
                # Torque_Enable 1, Acceleration 0 and the goal in one write (registers 40, 41,
                # 42-43 follow each other): it holds where it is.
                self.bus.write_raw(joint.id, torque.address, bytes((1, 0)) + reg.encode(int(goal)),
                                   "Torque_Enable = 1 holding its position")
            self._sent = calibration.to_radians(goals, self.spec)
        except BaseException:
            self.bus.close()
            raise
        self._connected = self._driving = True
        self._next_torque_check = time.perf_counter() + TORQUE_CHECK_SECONDS

    def _configure(self) -> None:
        for joint in self.calibration.joints:
            wanted = SETTINGS | JOINT_SETTINGS.get(joint.name, {})
            self.bus.write(joint.id, "Torque_Enable", 0)
            self.bus.write(joint.id, "Lock", 0)
            for name, value in wanted.items():
                self.bus.write(joint.id, name, value)
            self.bus.write(joint.id, "Lock", 1)
            if "Max_Torque_Limit" in wanted:  # the live limit follows at power-up only
                self.bus.write(joint.id, "Torque_Limit", wanted["Max_Torque_Limit"])
            found = self.bus.read_block(joint.id, 7, 16)  # Return_Delay_Time .. I_Coefficient
            wrong = {name: found[name] for name, value in wanted.items() if found[name] != value}
            if wrong:
                raise BusError(f"servo ID {joint.id} ({joint.name}) did not keep {wrong} "
                               f"(wanted {wanted})")

    def disconnect(self) -> None:
        if self._connected:
            try:
                self.release()
            except OSError:
                pass  # a dead link: nothing more to tell the servos
            self.bus.close()
            self._connected = False

    def release(self) -> None:
        """Torque off on every servo: the arm goes limp. All at once, then each servo again until
        it acknowledges (BusError naming those that did not)."""
        if self.bus.port is None or self.calibration is None:
            return
        self._driving = False
        address = CONTROL_TABLE["Torque_Enable"].address
        joints = self.calibration.joints
        self.bus.sync_write(address, {joint.id: b"\x00" for joint in joints})
        silent = [f"{joint.name} (ID {joint.id})" for joint in joints
                  if self.bus.request(write_packet(joint.id, address, b"\x00"), joint.id) is None]
        if silent:
            raise BusError(f"torque off not acknowledged by {', '.join(silent)} on {self.url}")

    # -- the cycle -----------------------------------------------------------------------------
    def read_state(self) -> RobotState:
        """One SYNC READ of every servo (the silent ones asked again while `reply_timeout`
        lasts), and every TORQUE_CHECK_SECONDS one of Torque_Enable: TimeoutError if one stays
        silent, ServoFault after an unsafe alarm or a power-up."""
        self._require()
        blocks = self._read_blocks()
        now = time.perf_counter()
        if self._driving and now >= self._next_torque_check:
            self._next_torque_check = now + TORQUE_CHECK_SECONDS
            self._check_torque()
        calibration = self.calibration
        positions = calibration.to_radians([b["Present_Position"] for b in blocks], self.spec)
        velocities = calibration.to_radians([b["Present_Velocity"] for b in blocks], self.spec,
                                            rate=True)
        self.loads = np.array([b["Present_Load"] for b in blocks]) / 1000.0
        return RobotState(positions, velocities, time.perf_counter() - self._start)

    def send_command(self, command: np.ndarray) -> np.ndarray:
        """Clamped to the spec's limits and the calibrated range, in whole counts: returns the
        angles the servos were sent."""
        super().send_command(command)
        return self._sent.copy()

    def _write_command(self, command: np.ndarray) -> None:
        self._require()
        calibration = self.calibration
        counts = calibration.to_counts(command, self.spec)
        reg = CONTROL_TABLE["Goal_Position"]
        self.bus.sync_write(reg.address, {joint.id: reg.encode(int(c))
                                          for joint, c in zip(calibration.joints, counts, strict=True)})
        self._sent = calibration.to_radians(counts, self.spec)

    # -- the bus -------------------------------------------------------------------------------
    def _require(self) -> None:
        if not self._connected:
            raise RuntimeError("FeetechRobot is not connected; call connect() or use `with`")
        if self.fault:
            raise ServoFault(self.fault, self.fault_reason)

    def _read_positions(self) -> np.ndarray:
        return np.array([b["Present_Position"] for b in self._read_blocks()])

    def _read_blocks(self) -> list[dict[str, int]]:
        joints = self.calibration.joints
        ids = [joint.id for joint in joints]
        replies = self.bus.sync_read(READ_ADDRESS, READ_LENGTH, ids, self.reply_timeout,
                                     self.attempt_timeout)
        missing = [f"{joint.name} (ID {joint.id})" for joint in joints if joint.id not in replies]
        if missing:
            raise TimeoutError(f"no reading from {', '.join(missing)} on {self.url} within "
                               f"{self.reply_timeout * 1e3:.1f} ms")
        for joint in joints:
            self._alarm(joint.name, joint.id, replies[joint.id].error)
        if self.fault:
            raise ServoFault(self.fault, self.fault_reason)
        return [decode_registers(READ_ADDRESS, replies[i].params) for i in ids]

    def _alarm(self, name: str, servo_id: int, error: ServoError) -> None:
        """Count each alarm as it begins (a servo repeats it in every reply while it lasts); an
        unsafe one ends the run."""
        new = error & ~self._alarms.get(servo_id, ServoError(0))
        self._alarms[servo_id] = error
        for bit in ALARMS:
            if new & bit:
                key = f"{bit.name} {name}"
                self.stats.faults[key] = self.stats.faults.get(key, 0) + 1
                if bit & UNSAFE and not self.fault:
                    self.fault = (f"servo ID {servo_id} ({name}) reports {bit.name}: stopping; "
                                  "let it cool and find what blocks the joint before moving again")
                    self.fault_reason = f"servo fault: {bit.name} {name} (servo ID {servo_id})"

    def _check_torque(self) -> None:
        """ServoFault naming the servos found with torque off: they powered up again since
        connect (SRAM at power-up values, Torque_Enable 0). A servo that does not answer is left
        to the next reading's timeout."""
        reg = CONTROL_TABLE["Torque_Enable"]
        joints = self.calibration.joints
        replies = self.bus.sync_read(reg.address, reg.size, [joint.id for joint in joints],
                                     self.reply_timeout, self.attempt_timeout)
        limp = [joint for joint in joints if joint.id in replies and
                decode_registers(reg.address, replies[joint.id].params)[reg.name] == 0]
        if not limp:
            return
        for joint in limp:
            key = f"POWER-UP {joint.name}"
            self.stats.faults[key] = self.stats.faults.get(key, 0) + 1
        names = ", ".join(joint.name for joint in limp)
        ids = ("servo ID " if len(limp) == 1 else "servo IDs ") + ", ".join(
            str(joint.id) for joint in limp)
        self.fault = (f"{ids} ({names}) powered up again mid-run, torque off: the arm went limp "
                      "(a brown-out). Stopping; check the servos' power supply and its cable (a "
                      "supply that sags under load, a loose connector) before moving again")
        self.fault_reason = f"servo fault: POWER-UP {names} ({ids})"
        raise ServoFault(self.fault, self.fault_reason)
