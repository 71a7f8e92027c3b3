"""A Feetech arm's calibration: which servo is which joint, which way it counts, where its middle
and its range are. One JSON file per arm (`~/.config/sim2real/calibration/<robot>.json` unless
told), written by `sim2real calibrate` (guided, over the bus) or imported from LeRobot's SO-101
calibration; plus the motor setup that gives each servo its ID (`sim2real setup-motors`).

Joint angle from a servo's Present_Position (counts, after its Homing_Offset):

    angle = middle + direction * (counts - (range_min + range_max) / 2) * 2 pi / 4096

`middle` is the middle of the joint's range in the RobotSpec: 0 for every SO-101 joint but the
gripper, so these are LeRobot's degrees-mode angles in radians (0 in the middle of the calibrated
range, drive_mode 0 = direction +1), the so101_new_calib convention our model follows.
numpy, pyserial and the standard library: runs on the robot's computer.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hardware.feetech.bus import BusError, FeetechBus
from hardware.feetech.protocol import (
    BAUD_RATES,
    CENTER_COUNTS,
    CONTROL_TABLE,
    COUNTS_PER_TURN,
    baud_code,
    decode_registers,
)
from sim.spec import RobotSpec, robot_differences

FORMAT, VERSION = "sim2real-feetech-calibration", 1
RADIANS_PER_COUNT = 2.0 * np.pi / COUNTS_PER_TURN
DIRECTIONS = {"so101_new_calib": 1}
"""The direction every joint counts in under a model convention: the published SO-101 model's
joints turn as its servos count (LeRobot's drive_mode 0 throughout, no sign flip)."""
MIN_TRAVEL = 20
"""Counts a joint must move during calibration to count as moved through its range."""
Prompt = Callable[[str], object]


class CalibrationError(ValueError):
    """A calibration that is missing, unreadable or not of this robot and its servos."""


@dataclass(frozen=True)
class JointCalibration:
    name: str
    id: int
    """The servo's ID on the bus."""
    direction: int
    """+1: the joint angle grows as the servo's counts grow; -1: the other way."""
    homing_offset: int
    """The servo's Homing_Offset register (counts): Present_Position = raw - homing_offset."""
    range_min: int
    """Min_Position_Limit: the lowest Present_Position of the joint's range (counts)."""
    range_max: int


@dataclass(frozen=True)
class Calibration:
    """Example:
        >>> calibration = Calibration.load(default_path("so_arm"))
        >>> calibration.check(SO_ARM)      # CalibrationError naming what differs
        >>> angles = calibration.to_radians(counts, SO_ARM)
    """

    robot: str
    joints: tuple[JointCalibration, ...]
    """In the RobotSpec's actuator order."""

    @property
    def ids(self) -> dict[str, int]:
        return {joint.name: joint.id for joint in self.joints}

    def _array(self, key: str) -> np.ndarray:
        return np.array([getattr(joint, key) for joint in self.joints], dtype=float)

    # -- counts and radians --------------------------------------------------------------------
    def to_radians(self, counts: np.ndarray, spec: RobotSpec, rate: bool = False) -> np.ndarray:
        """Present_Position counts -> joint angles (rad); `rate`: counts/s -> rad/s."""
        counts = np.asarray(counts, dtype=float)
        direction = self._array("direction")
        if rate:
            return direction * counts * RADIANS_PER_COUNT
        middle = (self._array("range_min") + self._array("range_max")) / 2
        return _spec_middle(spec) + direction * (counts - middle) * RADIANS_PER_COUNT

    def to_counts(self, angles: np.ndarray, spec: RobotSpec) -> np.ndarray:
        """Joint angles (rad) -> the nearest Goal_Position counts within the calibrated range."""
        middle = (self._array("range_min") + self._array("range_max")) / 2
        offset = (np.asarray(angles, dtype=float) - _spec_middle(spec)) / RADIANS_PER_COUNT
        counts = np.rint(middle + self._array("direction") * offset)
        return np.clip(counts, self._array("range_min"), self._array("range_max")).astype(int)

    # -- checks --------------------------------------------------------------------------------
    def check(self, spec: RobotSpec) -> None:
        """Refuse a calibration of another robot, other joints, duplicate IDs, empty ranges or
        directions the model's convention does not have, naming each difference."""
        names = [joint.name for joint in self.joints]
        problems = robot_differences(spec, {"name": self.robot, "actuator_names": names},
                                     "the robot is", "the calibration has")
        problems += [f"joint {ours} is {theirs} in the calibration"
                     for ours, theirs in zip(spec.actuator_names, names, strict=False)
                     if ours != theirs]
        ids = [joint.id for joint in self.joints]
        problems += [f"{joint.name}: ID {joint.id} is also another joint's"
                     for joint in self.joints if ids.count(joint.id) > 1]
        problems += [f"{joint.name}: direction {joint.direction}, must be +1 or -1"
                     for joint in self.joints if joint.direction not in (1, -1)]
        problems += [f"{joint.name}: range {joint.range_min}..{joint.range_max} counts is empty "
                     f"or outside 0..{COUNTS_PER_TURN - 1}" for joint in self.joints
                     if not 0 <= joint.range_min < joint.range_max < COUNTS_PER_TURN]
        expected = DIRECTIONS.get(spec.convention or "")
        problems += [f"{joint.name}: direction {joint.direction}, the {spec.convention} "
                     f"convention of the model counts it {expected:+d} (wrong direction)"
                     for joint in self.joints if expected and joint.direction != expected]
        if problems:
            raise CalibrationError(f"the calibration of {self.robot!r} does not fit the robot "
                                   f"{spec.name!r}, refusing to move: " + "; ".join(problems))

    def register_mismatches(self, bus: FeetechBus) -> list[str]:
        """Where the servos' Homing_Offset and position limits differ from this calibration
        (two servos' IDs swapped, an arm calibrated since with another file)."""
        problems = []
        for joint in self.joints:
            # Min_Position_Limit 9 .. Max_Position_Limit 12, then Homing_Offset 31..32.
            limits = bus.read_block(joint.id, 9, 4)
            offset = bus.read(joint.id, "Homing_Offset")
            found = (offset, limits["Min_Position_Limit"], limits["Max_Position_Limit"])
            wanted = (joint.homing_offset, joint.range_min, joint.range_max)
            if found != wanted:
                problems.append(f"{joint.name} (ID {joint.id}): the servo has Homing_Offset "
                                f"{found[0]}, range {found[1]}..{found[2]}; the calibration "
                                f"{wanted[0]}, {wanted[1]}..{wanted[2]}")
        return problems

    def write_registers(self, bus: FeetechBus) -> None:
        """Each servo's Homing_Offset and Min/Max_Position_Limit as calibrated (torque off, EEPROM
        unlocked for it), read back."""
        for joint in self.joints:
            bus.write(joint.id, "Torque_Enable", 0)
            bus.write(joint.id, "Lock", 0)
            bus.write(joint.id, "Homing_Offset", joint.homing_offset)
            bus.write(joint.id, "Min_Position_Limit", joint.range_min)
            bus.write(joint.id, "Max_Position_Limit", joint.range_max)
            bus.write(joint.id, "Lock", 1)
        problems = self.register_mismatches(bus)
        if problems:
            raise BusError("the servos did not keep their calibration: " + "; ".join(problems))

    # -- the file ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": VERSION, "robot": self.robot,
                "joints": [asdict(joint) for joint in self.joints]}

    @classmethod
    def from_dict(cls, data: dict, source: str = "calibration") -> Calibration:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise CalibrationError(f"{source} is not a sim2real Feetech calibration of version "
                                   f"{VERSION} (format {data.get('format')!r}, version "
                                   f"{data.get('version')!r}); make one with `sim2real calibrate`")
        try:
            joints = tuple(JointCalibration(**{k: (v if k == "name" else int(v))
                                               for k, v in joint.items()})
                           for joint in data["joints"])
            return cls(str(data["robot"]), joints)
        except (KeyError, TypeError, ValueError) as error:
            raise CalibrationError(f"{source} is damaged: {error}") from None

    def save(self, path: Path) -> Path:
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Calibration:
        path = Path(path).expanduser()
        if not path.is_file():
            raise CalibrationError(f"no calibration at {path}: calibrate the arm first (sim2real "
                                   "calibrate feetech:PORT --robot ROBOT, or --from-lerobot FILE), "
                                   "or name one with --calibration FILE")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise CalibrationError(f"{path} is not JSON: {error}") from None
        return cls.from_dict(data, str(path))


def default_path(robot: str) -> Path:
    return Path.home() / ".config" / "sim2real" / "calibration" / f"{robot}.json"


def default_ids(spec: RobotSpec) -> dict[str, int]:
    """The SO-101's servo IDs: 1.. in actuator order."""
    return {name: k + 1 for k, name in enumerate(spec.actuator_names)}


def _spec_middle(spec: RobotSpec) -> np.ndarray:
    joints = spec.actuated_joint_index
    return (np.asarray(spec.position_low)[joints] + np.asarray(spec.position_high)[joints]) / 2


# -- calibrating over the bus ----------------------------------------------------------------
def calibrate(url: str, spec: RobotSpec, out: Path | None = None, prompt: Prompt = input,
              ids: dict[str, int] | None = None, directions: dict[str, int] | None = None,
              baudrate: int = 1_000_000) -> Calibration:
    """Guide a person through calibrating the arm on `url` and write the calibration (to `out`,
    default `default_path`) and the servos' Homing_Offset and position limits. `prompt` shows a
    step and returns when the person is done (input() by default; tests pass a function that
    moves the emulated arm). The servos are limp throughout."""
    ids = ids or default_ids(spec)
    names = list(spec.actuator_names)
    if list(ids) != names:
        raise CalibrationError(f"ids names {list(ids)}; {spec.name}'s joints are {names}")
    directions = directions or {name: DIRECTIONS.get(spec.convention or "", 1) for name in names}
    with FeetechBus(url, baudrate) as bus:
        bus.find_servos(ids)
        for servo_id in ids.values():
            bus.write(servo_id, "Torque_Enable", 0)
            bus.write(servo_id, "Lock", 0)
        prompt(f"Move the {spec.name} to the middle of its range (each joint half way between "
               "its ends), then press Enter")
        offsets = []
        for servo_id in ids.values():
            present = bus.read(servo_id, "Present_Position")
            raw = (present + bus.read(servo_id, "Homing_Offset")) % COUNTS_PER_TURN
            offsets.append(int(np.clip(raw - CENTER_COUNTS, -2047, 2047)))
            bus.write(servo_id, "Homing_Offset", offsets[-1])
            # The factory range while recording, so no old limit narrows the new one.
            bus.write(servo_id, "Min_Position_Limit", 0)
            bus.write(servo_id, "Max_Position_Limit", COUNTS_PER_TURN - 1)
        low, high = _record_ranges(bus, list(ids.values()), prompt,
                                   "Move every joint through its whole range (each end once), "
                                   "then press Enter")
        still = [name for name, lo, hi in zip(names, low, high, strict=True) if hi - lo < MIN_TRAVEL]
        if still:
            raise CalibrationError(f"{', '.join(still)} did not move (less than {MIN_TRAVEL} "
                                   "counts): move every joint from one end to the other, and "
                                   "calibrate again")
        calibration = Calibration(spec.name, tuple(
            JointCalibration(name, ids[name], directions[name], offset, int(lo), int(hi))
            for name, offset, lo, hi in zip(names, offsets, low, high, strict=True)))
        calibration.check(spec)
        calibration.write_registers(bus)
    calibration.save(out or default_path(spec.name))
    return calibration


def _record_ranges(bus: FeetechBus, ids: list[int], prompt: Prompt,
                   message: str) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest Present_Position of each servo while the person moves the arm
    (until `prompt` returns)."""
    done = threading.Event()

    def ask() -> None:
        try:
            prompt(message)
        finally:
            done.set()

    reg = CONTROL_TABLE["Present_Position"]
    low = np.full(len(ids), np.inf)
    high = np.full(len(ids), -np.inf)
    threading.Thread(target=ask, daemon=True).start()
    while True:
        finished = done.is_set()  # one more reading after the person is done
        replies = bus.sync_read(reg.address, reg.size, ids, timeout=0.05)
        for k, servo_id in enumerate(ids):
            if servo_id in replies:
                counts = decode_registers(reg.address, replies[servo_id].params)[reg.name]
                low[k], high[k] = min(low[k], counts), max(high[k], counts)
        if finished:
            break
        time.sleep(0.005)
    if not np.all(np.isfinite(low)):
        raise BusError(f"the servos stopped answering on {bus.url} while recording the ranges")
    return low.astype(int), high.astype(int)


# -- LeRobot's calibration -------------------------------------------------------------------
def import_lerobot(path: Path, spec: RobotSpec, ids: dict[str, int] | None = None) -> Calibration:
    """A LeRobot SO-101 calibration JSON ({motor: {"id", "drive_mode", "homing_offset",
    "range_min", "range_max"}}, motors named as our joints) as ours; one of other joints or
    IDs is refused, naming them."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CalibrationError(f"cannot read the LeRobot calibration {path}: {error}") from None
    ids = ids or default_ids(spec)
    if not isinstance(data, dict) or set(data) != set(spec.actuator_names):
        names = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise CalibrationError(f"{path} calibrates {names}, not the joints of {spec.name} "
                               f"{list(spec.actuator_names)}")
    problems = [f"{name}: ID {data[name].get('id')}, the {spec.name}'s is {servo_id}"
                for name, servo_id in ids.items() if data[name].get("id") != servo_id]
    if problems:
        raise CalibrationError(f"{path} has other servo IDs: " + "; ".join(problems))
    try:
        joints = tuple(JointCalibration(name, int(data[name]["id"]),
                                        -1 if data[name]["drive_mode"] else 1,
                                        int(data[name]["homing_offset"]),
                                        int(data[name]["range_min"]), int(data[name]["range_max"]))
                       for name in spec.actuator_names)
    except (KeyError, TypeError, ValueError) as error:
        raise CalibrationError(f"{path} is not a LeRobot motor calibration: missing or bad "
                               f"{error}") from None
    calibration = Calibration(spec.name, joints)
    calibration.check(spec)
    return calibration


def import_lerobot_to_bus(path: Path, url: str, spec: RobotSpec, out: Path | None = None,
                          baudrate: int = 1_000_000) -> Calibration:
    """Import a LeRobot calibration, write it into the servos on `url` (LeRobot writes the same
    registers) and save it as ours."""
    calibration = import_lerobot(path, spec)
    with FeetechBus(url, baudrate) as bus:
        bus.find_servos(calibration.ids)
        calibration.write_registers(bus)
    calibration.save(out or default_path(spec.name))
    return calibration


# -- motor setup: one servo on the bus at a time ------------------------------------------------
def setup_motors(url: str, spec: RobotSpec, prompt: Prompt = input,
                 ids: dict[str, int] | None = None, baudrate: int = 1_000_000) -> dict[str, int]:
    """For each joint in order: the person connects only its servo; the one servo that answers
    (at any baud rate) gets the joint's ID and `baudrate`, checked by a PING and its model.
    Returns the IDs given. As LeRobot's lerobot-setup-motors."""
    ids = ids or default_ids(spec)
    code = baud_code(baudrate)
    rates = [baudrate, *(rate for rate in BAUD_RATES.values() if rate != baudrate)]
    with FeetechBus(url, baudrate) as bus:
        for name, servo_id in ids.items():
            prompt(f"Connect only the {name} servo to the bus (unplug the others), then press "
                   "Enter")
            found, rate = [], baudrate
            for rate in rates:
                bus.set_baudrate(rate)
                found = bus.broadcast_ping() or ([1] if bus.ping(1) else [])
                if found:
                    break
            if not found:
                raise BusError(f"no servo answers on {url} at any baud rate: connect the {name} "
                               "servo and check the power")
            if len(found) > 1:
                raise BusError(f"servos {found} answer on {url}: connect only the {name} servo")
            old = found[0]
            bus.write(old, "Lock", 0)
            if old != servo_id:
                bus.write(old, "ID", servo_id)  # the reply comes from the old ID
            if rate != baudrate:
                bus.write(servo_id, "Baud_Rate", code)  # answered at the old rate
                bus.set_baudrate(baudrate)
            bus.write(servo_id, "Lock", 1)
            bus.find_servos({name: servo_id})
    return ids
