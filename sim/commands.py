"""Commands in flight: the record of the last commands sent that a task's observation ends with
(`CommandHistory`), kept alike by the single env, the batch env and the deploy runtime; and what
sim knows of a delay line between the policy and the robot (`CommandLine`). numpy only: the
history runs in the robot's control loop.

Under several control steps of delay the robot's reading no longer tells the policy what it has
already asked for; the commands still on their way do, so the observation carries them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from sim.task import Task

MAX_COMMAND_HISTORY = 50
"""A task config's `command_history` is at most this (1 s of commands at the arm's 50 Hz)."""


def check_history_length(config_name: str, length: object) -> int:
    """A task config's `command_history` as a whole number in 0..MAX_COMMAND_HISTORY."""
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or not (
            0 <= length <= MAX_COMMAND_HISTORY):
        raise ValueError(f"{config_name}.command_history must be a whole number of commands in "
                         f"0..{MAX_COMMAND_HISTORY} (0: off), got {length!r}")
    return int(length)


class CommandHistory:
    """The last `length` commands sent to one robot, or to each of a batch of `num_envs`, in the
    robot's units and actuator order, oldest first: `commands` has shape (length, actuators) or
    (num_envs, length, actuators), and is what `Task.evaluate` takes as `history`.

    At an episode's start it is filled with the command the robot holds then (`reset`): the env
    passes the start pose's servo goals or 0 V, the deploy runtime the command it last sent.
    Each step it takes the command computed (env) or sent (deploy), before any delay (`push`).

    Example:
        >>> history = CommandHistory.for_task(task)
        >>> history.reset(held)                          # at the episode's start
        >>> step = task.evaluate(state, goal, history.commands)
        >>> history.push(command)                        # the command of this step
    """

    def __init__(self, length: int, actuators: int, num_envs: int | None = None) -> None:
        if length < 0 or actuators < 1:
            raise ValueError(f"a command history needs length >= 0 and actuators >= 1, got "
                             f"{length} and {actuators}")
        self.length = length
        self.commands = np.zeros((length, actuators) if num_envs is None else
                                 (num_envs, length, actuators))

    @classmethod
    def for_task(cls, task: Task, num_envs: int | None = None) -> CommandHistory:
        """The history `task` observes: its `history_length` commands of its robot."""
        return cls(task.history_length, task.robot.num_actuators, num_envs)

    def reset(self, held: np.ndarray, rows: np.ndarray | int | None = None) -> None:
        """Fill every entry (of the batch's `rows`, default all) with the command held:
        (actuators,) for one robot, (len(rows), actuators) or (actuators,) for rows."""
        held = np.asarray(held, dtype=np.float64)
        if rows is None:
            self.commands[...] = held[..., None, :]
        else:
            self.commands[rows] = held[..., None, :]

    def push(self, command: np.ndarray) -> None:
        """Append the step's command (of every robot of a batch), dropping the oldest."""
        if not self.length:
            return  # off: nothing to keep, and the batch's hot loop pays one call
        self.commands[..., :-1, :] = self.commands[..., 1:, :]
        self.commands[..., -1, :] = command


def command_features(history: np.ndarray, length: int, columns: slice | np.ndarray,
                     scale: float = 1.0) -> np.ndarray:
    """A task's observation tail: the history's `columns` (actuator order) times `scale`, the
    entries oldest first, flattened per robot to (..., length * columns)."""
    if history.shape[-2] != length:
        raise ValueError(f"the command history holds {history.shape[-2]} commands, the task "
                         f"observes {length}: build it with CommandHistory.for_task(task)")
    picked = history[..., columns] * scale
    return picked.reshape(*picked.shape[:-2], -1)


class CommandLine(Protocol):
    """A delay line that commands pass on their way to the robot (randomization's action_delay),
    for a batch of copies (one row per copy; one row for a single env). The env fills it with
    the held command at each reset and sends each step's command through it."""

    def hold(self, commands: np.ndarray, rows: np.ndarray | None = None) -> None:
        """At a reset of `rows` (default all): every command in flight is the one held."""
        ...

    def send(self, commands: np.ndarray) -> np.ndarray:
        """This step's commands (n, actuators) in; the ones that reach the robots now out."""
        ...
