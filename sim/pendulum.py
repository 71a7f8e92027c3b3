"""Balance and swing-up of a rotary (Furuta) pendulum: the task functions shared by the env and
the deploy runtime. numpy only.

Angles: arm theta (0 at the centre), pendulum alpha (0 upright, pi hanging).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.spec import RobotSpec, RobotState
from sim.task import TaskStep, config_to_json


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Into [-pi, pi): the pendulum turns freely, its encoder counts whole turns."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


@dataclass(frozen=True)
class PendulumConfig:
    """Parameters of the pendulum tasks; they travel in the exported contract."""

    mode: str = "balance"
    """"balance" starts near upright and ends when the pendulum falls; "swingup" starts hanging."""
    max_voltage: float = 6.0
    """Action 1 means this many volts (below the amplifier's 10 V, for the hardware's sake)."""
    episode_seconds: float = 5.0
    upright_tolerance: float = 0.2
    """|alpha| (rad) below which the pendulum counts as upright."""
    fall_angle: float = 0.4
    """Balance: the episode fails when |alpha| exceeds this (rad)."""
    start_spread: float = 0.05
    """Start angles are drawn within +- this (rad) of the start pose."""


class PendulumTask:
    """Observation: sin and cos of both angles, both speeds (scaled), 6 values. Action in [-1, 1]
    is the motor voltage in units of `max_voltage`.

    Reward per step: (1 + cos alpha) / 2 for height, minus 0.1 (theta / 2)^2 to stay near the
    centre. Balance ends when the pendulum falls; both end when the arm leaves its range.
    """

    name = "pendulum"
    scene: str | None = None
    objects: tuple[str, ...] = ()

    def __init__(self, robot: RobotSpec, config: PendulumConfig | None = None) -> None:
        config = config or PendulumConfig()
        if config.mode not in ("balance", "swingup"):
            raise ValueError(f"pendulum mode {config.mode!r} is unknown; use 'balance' or 'swingup'")
        if robot.actuator_kind != "voltage" or robot.joint_names != ("arm", "pendulum"):
            raise ValueError(f"the pendulum tasks need a voltage-driven arm and a free pendulum; "
                             f"{robot.name!r} has joints {list(robot.joint_names)}")
        limit = robot.command_high[0]
        if not 0 < config.max_voltage <= limit:
            raise ValueError(f"PendulumConfig.max_voltage {config.max_voltage} must be in (0, {limit}] V")
        self.robot = robot
        self.config = config
        self.max_steps = round(config.episode_seconds / robot.control_period)
        self.arm_limit = robot.position_high[0]

    @property
    def action_size(self) -> int:
        return 1

    def observation_layout(self) -> list[tuple[str, int]]:
        return [("sin_cos_arm", 2), ("sin_cos_pendulum", 2), ("arm_velocity_x0.1", 1),
                ("pendulum_velocity_x0.05", 1)]

    @property
    def observation_size(self) -> int:
        return 6

    def contract(self) -> dict:
        return {
            "name": self.name,
            "config": config_to_json(self.config),
            "observation_layout": [[name, size] for name, size in self.observation_layout()],
            "action": {"size": 1, "meaning": "motor voltage in units of max_voltage",
                       "joints": ["arm"], "max_voltage": self.config.max_voltage},
        }

    def evaluate(self, state: RobotState, goal: np.ndarray) -> TaskStep:
        """For one reading, or a batch (positions of shape (n, 2))."""
        theta, alpha = state.positions[..., 0], wrap_angle(state.positions[..., 1])
        theta_dot, alpha_dot = state.velocities[..., 0], state.velocities[..., 1]
        observation = np.stack([np.sin(theta), np.cos(theta), np.sin(alpha), np.cos(alpha),
                                0.1 * theta_dot, 0.05 * alpha_dot], axis=-1).astype(np.float32)
        out_of_range = np.abs(theta) > self.arm_limit
        terminated = out_of_range
        if self.config.mode == "balance":
            terminated = out_of_range | (np.abs(alpha) > self.config.fall_angle)
        reward = 0.5 * (1.0 + np.cos(alpha)) - 0.1 * (theta / 2.0) ** 2
        return TaskStep(observation=observation, reward=reward,
                        success=(np.abs(alpha) < self.config.upright_tolerance) & ~out_of_range,
                        terminated=terminated, distance=np.abs(alpha))

    def action_to_command(self, action: np.ndarray, state: RobotState) -> np.ndarray:
        """Action in [-1, 1] -> motor voltage (V)."""
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return action[..., :1] * self.config.max_voltage

    def sample_pose(self, rng: np.random.Generator) -> np.ndarray:
        start = 0.0 if self.config.mode == "balance" else np.pi
        return np.array([rng.uniform(-self.config.start_spread, self.config.start_spread),
                         start + rng.uniform(-self.config.start_spread, self.config.start_spread)])

    def sample_goal(self, rng: np.random.Generator) -> np.ndarray:
        return np.zeros(0)
