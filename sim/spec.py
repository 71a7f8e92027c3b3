"""What a robot is, described once: the `RobotSpec` shared by simulation, training and deployment.

numpy only: this module runs on the robot's computer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np

from sim.words import counted

_IDENTITY = np.eye(3)


@dataclass(frozen=True)
class KinematicChain:
    """A serial chain of revolute joints, for forward kinematics without MuJoCo.

    Joint i sits at `offsets[i]` in the frame of joint i-1 (rotated by the angles before it) and
    turns about `axes[i]`; the tip sits at `tip_offset` in the last joint's frame.
    """

    joint_names: tuple[str, ...]
    offsets: tuple[tuple[float, float, float], ...]
    axes: tuple[tuple[float, float, float], ...]
    tip_offset: tuple[float, float, float]

    def __post_init__(self) -> None:
        if not len(self.joint_names) == len(self.offsets) == len(self.axes):
            raise ValueError(f"KinematicChain: {len(self.joint_names)} joint names, "
                             f"{len(self.offsets)} offsets and {len(self.axes)} axes; give one "
                             "offset and one axis per joint")
        for name, axis in zip(self.joint_names, self.axes, strict=True):
            if abs(math.hypot(*axis) - 1.0) > 1e-9:  # Rodrigues' formula needs unit axes
                raise ValueError(f"KinematicChain: joint {name!r} has axis {axis} of length "
                                 f"{math.hypot(*axis):.6g}; give a unit vector")

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Offsets, skew matrices K and K @ K of the axes, tip: Rodrigues' formula per joint is
        then I + sin(q) K + (1 - cos(q)) K @ K."""
        skews = np.array([[[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]] for x, y, z in self.axes])
        return (np.array(self.offsets, dtype=float), skews, skews @ skews,
                np.array(self.tip_offset, dtype=float))

    def frame_positions(self, positions: np.ndarray) -> np.ndarray:
        """Positions in the base frame of every joint and then the tip: shape (..., joints + 1, 3)
        for angles of shape (..., joints); leading axes are a batch."""
        offsets, skews, skews_squared, tip = self._arrays
        angles = np.asarray(positions, dtype=float)
        if angles.shape[-1:] != (len(self.axes),):
            raise ValueError(f"chain of {len(self.axes)} joints got angles of shape {angles.shape}")
        sin, cos = np.sin(angles)[..., None, None], np.cos(angles)[..., None, None]
        joint_rotations = _IDENTITY + sin * skews + (1.0 - cos) * skews_squared
        points = np.empty((*angles.shape[:-1], len(self.axes) + 1, 3))
        # The base frame is unrotated: the first joint sits at its offset as given.
        point = points[..., 0, :] = offsets[0]
        rotation = joint_rotations[..., 0, :, :]
        for i in range(1, len(self.axes)):
            point = points[..., i, :] = point + rotation @ offsets[i]
            rotation = rotation @ joint_rotations[..., i, :, :]
        points[..., -1, :] = point + rotation @ tip
        return points

    def tip_position(self, positions: np.ndarray) -> np.ndarray:
        """Tip position in the base frame for the chain's joint angles (radians), (..., 3)."""
        angles = np.asarray(positions, dtype=float)
        if angles.shape == (len(self.axes),):
            return np.array(self._one_tip_position(angles.tolist()))
        return self.frame_positions(angles)[..., -1, :]

    def _one_tip_position(self, angles: list[float]) -> tuple[float, float, float]:
        """The tip for one reading, the control loop's case, in plain floats: numpy's per-call
        cost on 3-vectors is most of `frame_positions` (19 us there, 3.5 us here).

        Nested from the tip inwards, tip = o0 + R0 (o1 + R1 (... + R_last tip_offset)), so each
        joint rotates one vector (Rodrigues: c v + s k x v + (1 - c)(k . v) k), not a matrix."""
        x, y, z = self.tip_offset
        for (ox, oy, oz), (kx, ky, kz), angle in zip(reversed(self.offsets), reversed(self.axes),
                                                     reversed(angles), strict=True):
            s, c = math.sin(angle), math.cos(angle)
            along = (kx * x + ky * y + kz * z) * (1.0 - c)
            x, y, z = (c * x + s * (ky * z - kz * y) + along * kx + ox,
                       c * y + s * (kz * x - kx * z) + along * ky + oy,
                       c * z + s * (kx * y - ky * x) + along * kz + oz)
        return x, y, z


@dataclass(frozen=True)
class PositionServo:
    """A serial-bus position servo (STS3215 class): its own P and D loop on a quantized encoder,
    a torque limit, and a deadband in which it does not drive. Commands are goal angles (rad)."""

    kp: float
    """Proportional gain at the joint, N*m/rad."""
    kv: float
    """Derivative (velocity) gain at the joint, N*m*s/rad."""
    torque_limit: float
    """N*m at the joint."""
    counts_per_rev: int = 4096
    """Goal positions are whole encoder counts."""
    deadband_counts: int = 1
    """Within this many counts of the goal the servo does not drive."""
    kind: ClassVar[str] = "position"

    @property
    def resolution(self) -> float:
        return 2.0 * np.pi / self.counts_per_rev


@dataclass(frozen=True)
class DCMotor:
    """A brushed DC motor driven by voltage, inductance neglected: torque =
    kt * (V - ke * omega) / R, so back-EMF brakes it and stall torque is kt * V_max / R."""

    resistance: float
    """Armature resistance R, ohm."""
    torque_constant: float
    """kt, N*m/A."""
    back_emf_constant: float
    """ke, V*s/rad."""
    voltage_limit: float
    """|V| the amplifier may apply."""
    kind: ClassVar[str] = "voltage"

    @property
    def stall_torque(self) -> float:
        return self.torque_constant * self.voltage_limit / self.resistance


Actuator = PositionServo | DCMotor


@dataclass(frozen=True)
class RobotSpec:
    """A robot's joints, actuators, units, limits and timing, defined once. SI units: rad, rad/s,
    N*m, V, s. Each actuator drives the joint of the same name; joints without an actuator are
    passive (a pendulum's)."""

    name: str
    joint_names: tuple[str, ...]
    position_low: tuple[float, ...]
    position_high: tuple[float, ...]
    velocity_limit: tuple[float, ...]
    actuator_names: tuple[str, ...]
    actuators: tuple[Actuator, ...]
    command_low: tuple[float, ...]
    """One per actuator, in the actuator's unit (rad for servos, V for motors)."""
    command_high: tuple[float, ...]
    control_period: float
    default_pose: tuple[float, ...]
    mjcf: str
    """File name under sim/assets/ of the MuJoCo model (simulation only)."""
    encoder_counts_per_rev: tuple[int, ...] = ()
    """Joint encoders' resolution; positions read from the robot are whole counts. Empty: exact."""
    chain: KinematicChain | None = None
    convention: str = ""
    """Where each joint's zero is and which way it turns, named (e.g. the published model the
    robot follows). It travels in the contract: a policy trained under another convention would
    drive the robot's joints the wrong way, so deploy refuses it. Empty: none stated."""

    def __post_init__(self) -> None:
        per_joint = ("position_low", "position_high", "velocity_limit", "default_pose")
        per_actuator = ("actuators", "command_low", "command_high")
        for keys, names, what in ((per_joint, self.joint_names, "joint"),
                                  (per_actuator, self.actuator_names, "actuator")):
            for key in keys:
                if len(getattr(self, key)) != len(names):
                    raise ValueError(f"RobotSpec {self.name!r}: {key} has {len(getattr(self, key))} "
                                     f"values for {counted(len(names), what)}; give one per {what}")
        if self.encoder_counts_per_rev and len(self.encoder_counts_per_rev) != len(self.joint_names):
            raise ValueError(f"RobotSpec {self.name!r}: encoder_counts_per_rev needs one value per joint")
        for name in self.actuator_names:
            self.joint_index(name)
        if len({a.kind for a in self.actuators}) > 1:
            raise ValueError(f"RobotSpec {self.name!r}: mixed actuator kinds are not supported")
        if self.control_period <= 0:
            raise ValueError(f"RobotSpec {self.name!r}: control_period must be > 0 s, "
                             f"got {self.control_period}")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def num_actuators(self) -> int:
        return len(self.actuator_names)

    @property
    def actuator_kind(self) -> str:
        return self.actuators[0].kind

    @cached_property
    def actuated_joint_index(self) -> np.ndarray:
        """Index in the joint order of the joint each actuator drives."""
        return np.array([self.joint_index(name) for name in self.actuator_names])

    def clamp_command(self, command: np.ndarray) -> np.ndarray:
        return np.clip(command, self.command_low, self.command_high)

    def quantize_positions(self, positions: np.ndarray) -> np.ndarray:
        """What the encoders report: positions rounded to whole counts."""
        if not self.encoder_counts_per_rev:
            return positions
        return np.round(positions / self._encoder_step) * self._encoder_step

    @cached_property
    def _encoder_step(self) -> np.ndarray:
        return 2.0 * np.pi / np.asarray(self.encoder_counts_per_rev, dtype=float)

    def joint_index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise ValueError(f"robot {self.name!r} has no joint {name!r}; "
                             f"its joints are {list(self.joint_names)}") from None

    def description(self) -> dict:
        """Every field `robot_differences` compares, keyed as it names them (JSON-ready)."""
        return self.summary() | {"position_low": list(self.position_low),
                                 "position_high": list(self.position_high),
                                 "velocity_limit": list(self.velocity_limit)}

    def summary(self) -> dict:
        """The fields a deployment contract stores and compares (JSON-ready)."""
        return {
            "name": self.name,
            "joint_names": list(self.joint_names),
            "actuator_names": list(self.actuator_names),
            "command_low": list(self.command_low),
            "command_high": list(self.command_high),
            "control_period": self.control_period,
            "actuator": self.actuator_kind,
        } | ({"convention": self.convention} if self.convention else {})


@dataclass
class RobotState:
    """One reading of the robot: joint positions (rad), velocities (rad/s), time (s), and the
    positions (m) of the objects a task tracks (a block seen by a camera, say), shape
    (objects, 3). With a leading batch axis on each array it is a batch of readings."""

    positions: np.ndarray
    velocities: np.ndarray
    time: float = 0.0
    objects: np.ndarray | None = None
    command_time: float = float("nan")
    """When (s, the robot's clock) the robot received the last command it acts on: what a
    telemetry log needs to replay the commands in simulation (evaluation/sysid.py). NaN where
    the backend does not say."""


_EXACT_FIELDS = ("name", "joint_names", "actuator_names", "actuator", "convention")
_LABELS = {"name": "robot", "joint_names": "joint order", "actuator_names": "actuators",
           "actuator": "actuator kind", "control_period": "control period",
           "convention": "joint convention"}


def robot_differences(spec: RobotSpec, other: dict, spec_is: str, other_is: str) -> list[str]:
    """Every way `other` (a robot as a contract stores it, or as a device describes itself, keyed
    as `RobotSpec.description()`; fields it lacks are not compared) differs from `spec`, one line
    each: "WHAT: SPEC_IS VALUE, OTHER_IS VALUE" (WHAT: the field, or its plain name). The one
    comparison of robot and spec: the contract check, the serial handshake and the servo bus
    backend all call it.

    Names, order and actuator kind must be equal. Numbers may differ by what the spec cannot tell
    apart: positions and position commands by half an encoder count, velocities by one count per
    control period, the control period and other commands (volts) by float32 rounding."""
    mine = spec.description()
    problems = [f"{_LABELS[key]}: {spec_is} {mine[key]!r}, {other_is} {other[key]!r}"
                for key in _EXACT_FIELDS if key in other and key in mine and other[key] != mine[key]]
    tolerances = _tolerances(spec)
    for key, tolerance in tolerances.items():
        if key not in other:
            continue
        ours, theirs = np.asarray(mine[key], dtype=float), np.asarray(other[key], dtype=float)
        if ours.shape != theirs.shape:
            problems.append(f"{_LABELS.get(key, key)}: {spec_is} {mine[key]}, {other_is} {other[key]}")
            continue
        with np.errstate(invalid="ignore"):  # inf - inf: equal infinite limits match by ==
            close = (ours == theirs) | (np.abs(ours - theirs) <= tolerance)
        if not np.all(close):
            problems.append(f"{_LABELS.get(key, key)}: {spec_is} {mine[key]}, {other_is} {other[key]}")
    return problems


def _tolerances(spec: RobotSpec) -> dict[str, np.ndarray | float]:
    float32 = float(np.finfo(np.float32).eps)
    if spec.encoder_counts_per_rev:
        count = 2.0 * np.pi / np.asarray(spec.encoder_counts_per_rev, dtype=float)
    else:
        count = np.full(spec.num_joints, 1e-9)
    command = (count[spec.actuated_joint_index] / 2 if spec.actuator_kind == "position"
               else float32 * np.maximum(np.abs(spec.command_low), np.abs(spec.command_high)))
    return {"control_period": float32 * spec.control_period,
            "position_low": count / 2, "position_high": count / 2,
            "velocity_limit": count / spec.control_period,
            "command_low": command, "command_high": command}


ASSETS = Path(__file__).parent / "assets"
"""The MuJoCo models (MJCF), one per robot: `RobotSpec.mjcf` names the file."""


def model_path(spec: RobotSpec) -> Path:
    """The robot's MJCF file: its one definition, which MuJoCo loads."""
    return ASSETS / spec.mjcf


def urdf_path(spec: RobotSpec) -> Path:
    """The robot's URDF, generated from its MJCF (sim/urdf.py): what Foxglove's 3D panel and ROS
    tools draw it from."""
    return ASSETS / Path(spec.mjcf).with_suffix(".urdf").name
