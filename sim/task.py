"""What every task offers the env and the deploy runtime alike. numpy only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sim.spec import RobotSpec, RobotState


@dataclass
class TaskStep:
    """What a task makes of one robot reading."""

    observation: np.ndarray
    reward: float
    success: bool
    """Whether this reading meets the task's goal."""
    terminated: bool
    """Whether the episode ends here (reached, or failed beyond recovery)."""
    distance: float
    """The task's error measure (m for reach, rad for the pendulum), for logs and info."""


class Task(Protocol):
    """The task functions of DESIGN.md: observation, action scaling, reward, success."""

    name: str
    robot: RobotSpec
    max_steps: int

    @property
    def observation_size(self) -> int: ...

    @property
    def action_size(self) -> int: ...

    def observation_layout(self) -> list[tuple[str, int]]: ...

    def contract(self) -> dict: ...

    def evaluate(self, state: RobotState, goal: np.ndarray) -> TaskStep: ...

    def action_to_command(self, action: np.ndarray, state: RobotState) -> np.ndarray: ...

    def sample_pose(self, rng: np.random.Generator) -> np.ndarray: ...

    def sample_goal(self, rng: np.random.Generator) -> np.ndarray: ...
