"""Balance and swing-up of a rotary (Furuta) pendulum: the task functions shared by the env and
the deploy runtime. numpy only.

Angles: arm theta (0 at the centre), pendulum alpha (0 upright, pi hanging).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.commands import check_history_length, command_features
from sim.spec import RobotSpec, RobotState
from sim.task import TaskStep, config_to_json


def wrap_angle(angle: np.ndarray | float) -> np.ndarray | float:
    """Into [-pi, pi): the pendulum turns freely, its encoder counts whole turns."""
    return (np.asarray(angle) + np.pi) % (2.0 * np.pi) - np.pi


STILL_SPEED = 1.0
"""rad/s: a joint slower than this counts as still where an episode may start (`ready`). Above
one encoder count per control period (2 pi / 2048 rad in 4 ms: 0.77 rad/s), so a resting joint
whose speed is counted from its encoder reads still."""
HANGING_ANGLE = 0.1
"""rad: swing-up episodes may start within this of hanging, twice the default start spread. With
STILL_SPEED, a swing wider than about 0.13 rad never reads ready (the pendulum on the arm swings
at about 12 rad/s); at 0 V a full swing dies down to that in about 7 s."""


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
    command_history: int = 0
    """k: the observation ends with the motor voltages of the last k commands sent, in units of
    max_voltage, oldest first, so a policy under several steps of command delay knows what is
    still on its way. 0: off."""


class PendulumTask:
    """Observation: sin and cos of both angles, both speeds (scaled), 6 values; then with
    `command_history` k > 0 the last k voltages sent / `max_voltage`, oldest first. Action in
    [-1, 1] is the motor voltage in units of `max_voltage`.

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
        self.history_length = check_history_length("PendulumConfig", config.command_history)
        self.arm_limit = robot.position_high[0]
        # The start region of a deploy (`ready`): held upright in the task's own tolerance, or
        # hanging; the arm in the middle half of its range, with room to move both ways. Never
        # narrower than the training starts: every state `sample_pose` draws is ready.
        self.start_alpha = 0.0 if config.mode == "balance" else np.pi
        near = config.upright_tolerance if config.mode == "balance" else HANGING_ANGLE
        self.ready_angle = max(near, config.start_spread)
        self.ready_arm = max(0.5 * self.arm_limit, config.start_spread)

    @property
    def action_size(self) -> int:
        return 1

    def observation_layout(self) -> list[tuple[str, int]]:
        history = ([("past_voltages_per_max_voltage_oldest_first", self.history_length)]
                   if self.history_length else [])
        return [("sin_cos_arm", 2), ("sin_cos_pendulum", 2), ("arm_velocity_x0.1", 1),
                ("pendulum_velocity_x0.05", 1), *history]

    @property
    def observation_size(self) -> int:
        return 6 + self.history_length

    def contract(self) -> dict:
        return {
            "name": self.name,
            "config": config_to_json(self.config),
            "observation_layout": [[name, size] for name, size in self.observation_layout()],
            "action": {"size": 1, "meaning": "motor voltage in units of max_voltage",
                       "joints": ["arm"], "max_voltage": self.config.max_voltage},
        }

    def evaluate(self, state: RobotState, goal: np.ndarray, history: np.ndarray) -> TaskStep:
        """For one reading, or a batch (positions of shape (n, 2), history (n, k, 1))."""
        theta, alpha = state.positions[..., 0], wrap_angle(state.positions[..., 1])
        theta_dot, alpha_dot = state.velocities[..., 0], state.velocities[..., 1]
        observation = np.stack([np.sin(theta), np.cos(theta), np.sin(alpha), np.cos(alpha),
                                0.1 * theta_dot, 0.05 * alpha_dot], axis=-1).astype(np.float32)
        if self.history_length:
            past = command_features(history, self.history_length, slice(0, 1),
                                    1.0 / self.config.max_voltage)
            observation = np.concatenate([observation, past], axis=-1, dtype=np.float32)
        out_of_range = np.abs(theta) > self.arm_limit
        terminated = out_of_range
        if self.config.mode == "balance":
            terminated = out_of_range | (np.abs(alpha) > self.config.fall_angle)
        reward = 0.5 * (1.0 + np.cos(alpha)) - 0.1 * (theta / 2.0) ** 2
        return TaskStep(observation=observation, reward=reward,
                        success=(np.abs(alpha) < self.config.upright_tolerance) & ~out_of_range,
                        terminated=terminated, distance=np.abs(alpha))

    def action_to_command(self, action: np.ndarray, state: RobotState,
                          history: np.ndarray) -> np.ndarray:
        """Action in [-1, 1] -> motor voltage (V)."""
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return action[..., :1] * self.config.max_voltage

    def ready(self, state: RobotState) -> bool:
        """Whether an episode may start from this reading (one robot): the pendulum near the
        start pose and both joints still, as a person at the rig holds it up or lets it hang."""
        theta, alpha = state.positions[0], state.positions[1]
        return bool(abs(wrap_angle(alpha - self.start_alpha)) < self.ready_angle
                    and abs(theta) < self.ready_arm
                    and np.max(np.abs(state.velocities[:2])) < STILL_SPEED)

    def ready_hint(self) -> str:
        arm = f"the arm within {self.ready_arm:g} rad of its centre"
        if self.config.mode == "balance":
            return f"hold the pendulum upright within {self.ready_angle:g} rad and still, {arm}"
        return f"let the pendulum hang still (within {self.ready_angle:g} rad), {arm}"

    def sample_pose(self, rng: np.random.Generator) -> np.ndarray:
        spread = self.config.start_spread
        return np.array([rng.uniform(-spread, spread),
                         self.start_alpha + rng.uniform(-spread, spread)])

    def sample_goal(self, rng: np.random.Generator,
                    start: RobotState | None = None) -> np.ndarray:
        return np.zeros(0)  # upright is the goal: no target to draw
