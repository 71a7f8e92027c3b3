"""What a robot is, described once: the `RobotSpec` shared by simulation, training and deployment.

numpy only: this module runs on the robot's computer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


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

    @cached_property
    def _arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Offsets, skew matrices K and K @ K of the axes, tip: Rodrigues' formula per joint is
        then I + sin(q) K + (1 - cos(q)) K @ K."""
        skews = np.array([[[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]] for x, y, z in self.axes])
        return (np.array(self.offsets, dtype=float), skews, skews @ skews,
                np.array(self.tip_offset, dtype=float))

    def frame_positions(self, positions: np.ndarray) -> np.ndarray:
        """Positions in the base frame of every joint and then the tip: shape (joints + 1, 3)."""
        offsets, skews, skews_squared, tip = self._arrays
        angles = np.asarray(positions, dtype=float)
        if angles.shape != (len(self.axes),):
            raise ValueError(f"chain of {len(self.axes)} joints got angles of shape {angles.shape}")
        joint_rotations = (np.eye(3) + np.sin(angles)[:, None, None] * skews
                           + (1.0 - np.cos(angles))[:, None, None] * skews_squared)
        rotation = np.eye(3)
        points = np.empty((len(angles) + 1, 3))
        point = np.zeros(3)
        for i in range(len(angles)):
            point = point + rotation @ offsets[i]
            points[i] = point
            rotation = rotation @ joint_rotations[i]
        points[-1] = point + rotation @ tip
        return points

    def tip_position(self, positions: np.ndarray) -> np.ndarray:
        """Tip position in the base frame for the chain's joint angles (radians)."""
        return self.frame_positions(positions)[-1]


@dataclass(frozen=True)
class RobotSpec:
    """A robot's joints, units, limits and timing. SI units: rad, rad/s, N*m, s."""

    name: str
    joint_names: tuple[str, ...]
    position_low: tuple[float, ...]
    position_high: tuple[float, ...]
    velocity_limit: tuple[float, ...]
    command_low: tuple[float, ...]
    command_high: tuple[float, ...]
    control_period: float
    actuator: str
    """How commands are interpreted: "position" (servo targets in rad)."""
    nominal_gains: dict[str, float]
    default_pose: tuple[float, ...]
    mjcf: str
    """File name under sim/assets/ of the MuJoCo model (simulation only)."""
    chain: KinematicChain | None = None
    torque_limit: tuple[float, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        for key in ("position_low", "position_high", "velocity_limit", "command_low",
                    "command_high", "default_pose"):
            if len(getattr(self, key)) != n:
                raise ValueError(f"RobotSpec {self.name!r}: {key} has {len(getattr(self, key))} "
                                 f"values for {n} joints; give one per joint")
        if self.control_period <= 0:
            raise ValueError(f"RobotSpec {self.name!r}: control_period must be > 0 s, "
                             f"got {self.control_period}")

    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    def clamp_command(self, command: np.ndarray) -> np.ndarray:
        return np.clip(command, self.command_low, self.command_high)

    def joint_index(self, name: str) -> int:
        try:
            return self.joint_names.index(name)
        except ValueError:
            raise ValueError(f"robot {self.name!r} has no joint {name!r}; "
                             f"its joints are {list(self.joint_names)}") from None

    def summary(self) -> dict:
        """The fields a deployment contract compares (JSON-ready)."""
        return {
            "name": self.name,
            "joint_names": list(self.joint_names),
            "command_low": list(self.command_low),
            "command_high": list(self.command_high),
            "control_period": self.control_period,
            "actuator": self.actuator,
        }


@dataclass
class RobotState:
    """One reading of the robot: joint positions (rad), velocities (rad/s), time (s)."""

    positions: np.ndarray
    velocities: np.ndarray
    time: float = 0.0
