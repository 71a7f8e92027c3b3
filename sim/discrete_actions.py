"""Discretized actions: N evenly spaced choices in [-1, 1] per action dimension, every combination
one discrete action, for algorithms that pick among choices (DQN) on robots that take continuous
commands.

The table of choices travels with the env in `metadata["action_table"]` (rows: the choices, in
the order of their indices; columns: the action dimensions), so a policy can export the row it
picks: the robot then receives the same continuous action in [-1, 1] as from any other policy.
"""

from __future__ import annotations

import itertools
from typing import Any

import gymnasium as gym
import numpy as np

MAX_CHOICES = 1024
"""The most discrete actions a table may hold: a Q-network has one output per choice, and each
needs data of its own."""


def action_table(choices: int, action_size: int) -> np.ndarray:
    """(choices ** action_size, action_size) float32: every combination of `choices` values
    evenly spaced in [-1, 1] (an odd number includes 0, "do nothing"); the last dimension
    varies fastest.

    Example:
        >>> action_table(3, 2)[:4].tolist()
        [[-1.0, -1.0], [-1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]]
    """
    if isinstance(choices, bool) or not isinstance(choices, int | np.integer) or choices < 2:
        raise ValueError(f"discrete_actions must be an integer >= 2 (choices per action "
                         f"dimension in [-1, 1]), got {choices!r}; 3 gives -1, 0, 1")
    if action_size < 1:
        raise ValueError(f"action_size must be >= 1, got {action_size}")
    count = choices ** action_size
    if count > MAX_CHOICES:
        raise ValueError(f"{choices} choices per dimension over {action_size} action dimensions "
                         f"make {count:,} discrete actions (more than {MAX_CHOICES:,}); use fewer "
                         "choices per dimension, or a continuous-action algorithm (sac, td3, ppo)")
    values = np.linspace(-1.0, 1.0, choices, dtype=np.float32)
    table = np.array(list(itertools.product(values, repeat=action_size)), dtype=np.float32)
    table.flags.writeable = False
    return table


def check_unit_box(space: gym.Space, what: str) -> None:
    """Discretizing needs a 1-D Box in [-1, 1] (what make_env gives after rescaling)."""
    if (not isinstance(space, gym.spaces.Box) or len(space.shape) != 1
            or not (np.all(space.low == -1.0) and np.all(space.high == 1.0))):
        raise ValueError(f"discrete_actions needs continuous actions in [-1, 1] (a 1-D Box); "
                         f"{what} has {space}. Drop discrete_actions (an env with discrete "
                         "actions takes them as they are)")


class DiscreteActions(gym.ActionWrapper):
    """One env's continuous actions as Discrete(choices ** action_size) choices.

    Example:
        >>> env = DiscreteActions(make_env("sim2real/FurutaBalance-v0"), choices=5)
        >>> env.action_space, env.metadata["action_table"][4]
        (Discrete(5), array([1.], dtype=float32))
        >>> obs, reward, terminated, truncated, info = env.step(2)  # 0 V
    """

    def __init__(self, env: gym.Env, choices: int) -> None:
        super().__init__(env)
        check_unit_box(env.action_space, env.spec.id if env.spec else str(env))
        self.table = action_table(choices, env.action_space.shape[0])
        self.action_space = gym.spaces.Discrete(len(self.table))
        self.metadata = {**env.metadata, "action_table": self.table}

    def action(self, action: Any) -> np.ndarray:
        index = int(action)
        if index != action or not 0 <= index < len(self.table):
            raise ValueError(f"action {action!r} is not one of the {len(self.table)} choices "
                             f"(integers 0..{len(self.table) - 1})")
        return self.table[index]


class DiscreteVectorActions(gym.vector.VectorActionWrapper):
    """A vector env's continuous actions as MultiDiscrete choices, one per copy; over our
    BatchRobotEnv or gymnasium's Sync/AsyncVectorEnv alike.

    Example:
        >>> envs = DiscreteVectorActions(make_vector_env("sim2real/FurutaBalance-v0", 4), 5)
        >>> # the same as make_vector_env("sim2real/FurutaBalance-v0", 4, discrete_actions=5)
        >>> envs.single_action_space, envs.action_space
        (Discrete(5), MultiDiscrete([5 5 5 5]))
    """

    def __init__(self, env: gym.vector.VectorEnv, choices: int) -> None:
        super().__init__(env)
        check_unit_box(env.single_action_space, str(env))
        self.table = action_table(choices, env.single_action_space.shape[0])
        self.single_action_space = gym.spaces.Discrete(len(self.table))
        self.action_space = gym.spaces.MultiDiscrete(np.full(self.num_envs, len(self.table)))
        self.metadata = {**env.metadata, "action_table": self.table}

    def actions(self, actions: Any) -> np.ndarray:
        indices = np.asarray(actions)
        if (indices.shape != (self.num_envs,) or not np.issubdtype(indices.dtype, np.integer)
                or indices.min() < 0 or indices.max() >= len(self.table)):
            raise ValueError(f"actions must be {self.num_envs} integers in 0..{len(self.table) - 1} "
                             f"(one choice per copy), got {actions!r}")
        return self.table[indices]


def env_action(space: gym.Space, action: np.ndarray) -> Any:
    """An exported policy's output as an env with `space` takes it. A policy for a Discrete
    env (DQN on CartPole) outputs the chosen index as one float, so that every exported policy
    outputs floats (batch, action_size); the env takes it as an int. Others: unchanged."""
    if isinstance(space, gym.spaces.Discrete):
        return int(np.asarray(action).reshape(-1)[0])
    return action
