"""What every task offers the env and the deploy runtime alike. numpy only."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import asdict, dataclass
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
    scene: str | None
    """MJCF under sim/assets/ with the robot and the task's objects (None: the robot's own)."""
    objects: tuple[str, ...]
    """Free bodies whose positions the task observes (RobotState.objects)."""
    history_length: int
    """How many of the last commands sent the observation ends with (the config's
    `command_history`, k; 0: none). Callers keep them in a `sim.commands.CommandHistory`."""

    @property
    def observation_size(self) -> int: ...

    @property
    def action_size(self) -> int: ...

    def observation_layout(self) -> list[tuple[str, int]]: ...

    def contract(self) -> dict: ...

    def evaluate(self, state: RobotState, goal: np.ndarray, history: np.ndarray) -> TaskStep:
        """Observation, reward and success of a reading (or a batch of them). `history` is the
        last `history_length` commands sent, oldest first (`CommandHistory.commands`): a
        required argument, so that no caller can leave out what the policy was trained to see."""
        ...

    def action_to_command(self, action: np.ndarray, state: RobotState,
                          history: np.ndarray) -> np.ndarray:
        """Policy action -> the robot's command. `history` as for `evaluate`: a task whose
        action steps from the last goal sent reads it there."""
        ...

    def sample_pose(self, rng: np.random.Generator) -> np.ndarray: ...

    def ready(self, state: RobotState) -> bool:
        """Whether an episode may start from this reading: the deploy of a robot that cannot hold
        a pose by itself (a motor) holds 0 V until it is, e.g. until a person holds a pendulum
        upright; a servo robot walks home first (push starts from home). Every state
        `sample_pose` draws, at rest, is ready."""
        ...

    def ready_hint(self) -> str:
        """What `ready` waits for, one line for the person at the robot."""
        ...

    def sample_goal(self, rng: np.random.Generator,
                    start: RobotState | None = None) -> np.ndarray:
        """A goal for an episode that starts at the reading `start` (None: from anywhere):
        never one `start` already meets, which would be a success for doing nothing (reach:
        a target within the success distance of the start's tip is drawn again)."""
        ...


class ObjectLine(Protocol):
    """What the positions of a task's objects pass before the policy observes them
    (randomization's object_hold and object_latency: a camera tracker's frame period and
    delay), for a batch of copies (one row for a single env). A copy's first positions after its
    reset pass at once."""

    def see(self, objects: np.ndarray, rng: np.random.Generator,
            rows: np.ndarray | None = None) -> np.ndarray:
        """Positions (n, objects, 3) now in; those the policy gets now out."""
        ...


def policy_view(task: Task, state: RobotState, goal: np.ndarray, history: np.ndarray,
                judged: TaskStep, line: ObjectLine | None, rng: np.random.Generator,
                rows: np.ndarray | None = None) -> np.ndarray:
    """The observation of `state` the policy gets: `judged`'s (the task's evaluation of the
    state as it is), or, through an object line, the task's observation of the objects where
    the line shows them. Reward and success stay `judged`'s."""
    if line is None or state.objects is None:
        return judged.observation
    one = state.objects.ndim == 2  # a single env's reading: a batch of one
    objects = line.see(state.objects[None] if one else state.objects, rng, rows)
    seen = dataclasses.replace(state, objects=objects[0] if one else objects)
    return task.evaluate(seen, goal, history).observation


def sample_episode(task: Task, rng: np.random.Generator
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Start pose, goal and object positions of a new simulated episode, drawn in this order from
    `rng` (the single env and the batch env both call this, so equal seeds give equal episodes);
    the goal is never met at the start pose, at rest, as the deploy runtime draws it."""
    pose = task.sample_pose(rng)
    goal = task.sample_goal(rng, RobotState(pose, np.zeros_like(pose)))
    objects = task.sample_objects(rng, goal) if task.objects else None
    return pose, goal, objects


def config_to_json(config: object) -> dict:
    """A task config dataclass as the contract stores it (tuples become lists);
    `sim.catalog.make_task` turns the lists back."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}


def judged(outcome: Callable[[np.ndarray], TaskStep], parts: list[np.ndarray]) -> TaskStep:
    """`outcome` of the observation made of `parts`, judged in float64 as the reading is, the
    observation then handed on in float32 as the policy takes it."""
    step = outcome(np.concatenate(parts, axis=-1))
    step.observation = step.observation.astype(np.float32)
    return step


def observation_slots(layout: list[tuple[str, int]]) -> dict[str, slice]:
    """Each named part of an observation layout as a slice of the vector."""
    slots, start = {}, 0
    for name, size in layout:
        slots[name] = slice(start, start + size)
        start += size
    return slots


def column_index(indices: list[int]) -> slice | np.ndarray:
    """Indices into a reading's last axis: consecutive ascending ones as a slice, others as an
    array. Indexing with a slice gives a view and costs 0.1-0.3 us against 0.8 for an index
    array; the control loop indexes a few times every cycle."""
    if indices and indices == list(range(indices[0], indices[0] + len(indices))):
        return slice(indices[0], indices[0] + len(indices))
    return np.array(indices, dtype=np.intp)
