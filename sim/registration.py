"""Gymnasium ids: ours (`sim2real/...`), gymnasium's MuJoCo envs and gymnasium-robotics, and
`make_env`, the one way the CLI and trainers build an env (optionally randomized)."""

from __future__ import annotations

import contextlib
import difflib
import io
from pathlib import Path

import gymnasium as gym
import numpy as np

from sim.catalog import make_task, robot_by_name

OUR_ENVS: dict[str, dict] = {
    "sim2real/ArmReach-v0": {"robot": "so_arm", "task": "reach"},
    "sim2real/FurutaBalance-v0": {"robot": "furuta", "task": "pendulum",
                                  "task_config": {"mode": "balance"}},
    "sim2real/FurutaSwingup-v0": {"robot": "furuta", "task": "pendulum",
                                  "task_config": {"mode": "swingup"}},
}
_registered = False


def register_envs() -> None:
    """Register our ids and gymnasium-robotics' (idempotent)."""
    global _registered
    if _registered:
        return
    for env_id, kwargs in OUR_ENVS.items():
        if env_id not in gym.registry:
            # The task says how long an episode lasts; TimeLimit enforces it.
            task = make_task(kwargs["task"], robot_by_name(kwargs["robot"]),
                             kwargs.get("task_config"))
            gym.register(env_id, entry_point="sim.env:RobotTaskEnv", kwargs=kwargs,
                         max_episode_steps=task.max_steps)
    try:
        # Its import prints a notice about Adroit reward versions to stderr; we use no Adroit env.
        with contextlib.redirect_stderr(io.StringIO()):
            import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
    except ImportError:  # robotics suites are optional at run time
        pass
    _registered = True


def check_env_id(env_id: str) -> None:
    """Raise a one-line error naming the closest known ids when `env_id` is unknown."""
    register_envs()
    if env_id in gym.registry:
        return
    close = difflib.get_close_matches(env_id, list(gym.registry), n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown env id {env_id!r}{hint} Our envs: {', '.join(OUR_ENVS)}; "
                     "any gymnasium MuJoCo id (e.g. InvertedPendulum-v5) also works")


def make_env(env_id: str, randomization: str | Path | None = None, **kwargs) -> gym.Env:
    """Build `env_id` with actions in [-1, 1], wrapped in domain randomization when a preset
    name or YAML path is given."""
    check_env_id(env_id)
    env = gym.make(env_id, **kwargs)
    space = env.action_space
    if (isinstance(space, gym.spaces.Box) and np.all(np.isfinite(space.low))
            and np.all(np.isfinite(space.high))
            and not (np.all(space.low == -1.0) and np.all(space.high == 1.0))):
        # Policies act in [-1, 1]; gymnasium's envs use their own bounds (e.g. +-3 N).
        env = gym.wrappers.RescaleAction(env, np.full(space.shape, -1.0, space.dtype),
                                         np.full(space.shape, 1.0, space.dtype))
    if randomization is not None:
        from randomization.wrapper import DomainRandomization, load_config

        env = DomainRandomization(env, load_config(randomization))
    return env
