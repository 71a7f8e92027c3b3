"""`make_env` and `make_vector_env`, the one way the CLI and trainers build an env: sim's plain
factories (sim/registration.py) with domain randomization given to their hooks. Here, not in
sim, because sim sits below randomization."""

from __future__ import annotations

import functools
from pathlib import Path

import gymnasium as gym

from randomization.config import RandomizationConfig, load_config
from randomization.randomizer import Randomizer
from randomization.wrapper import DomainRandomization
from sim import registration


def make_env(env_id: str, randomization: str | Path | RandomizationConfig | None = None,
             pixels: int | None = None, discrete_actions: int | None = None,
             **kwargs) -> gym.Env:
    """Build `env_id` with actions in [-1, 1], wrapped in domain randomization when a preset
    name or YAML path is given, with `pixels` x `pixels` camera images beside the state when
    `pixels` is set (our envs), with `discrete_actions` evenly spaced choices per action
    dimension instead of continuous actions when it is set (sim/discrete_actions.py)."""
    registration.check_env_id(env_id)  # before the preset: an unknown id is the error to name
    randomize = None
    if randomization is not None:
        randomize = functools.partial(DomainRandomization,
                                      config=load_config(randomization, registration.robot_of(env_id)))
    return registration.make_env(env_id, pixels=pixels, discrete_actions=discrete_actions,
                                 randomize=randomize, **kwargs)


def make_vector_env(env_id: str, num_envs: int,
                    randomization: str | Path | RandomizationConfig | None = None,
                    mode: str = "auto", pixels: int | None = None,
                    discrete_actions: int | None = None) -> gym.vector.VectorEnv:
    """`num_envs` copies of `env_id` that reset a finished copy in the same step, each under
    `randomization` (a preset name, a YAML path or a loaded config); `mode`, `pixels` and
    `discrete_actions` as in `sim.registration.make_vector_env`."""
    registration.check_env_id(env_id)
    randomize = make_randomizer = None
    if randomization is not None:
        config = load_config(randomization, registration.robot_of(env_id))
        # Each copy of a sync or async env is wrapped; async pickles the partials.
        randomize = functools.partial(DomainRandomization, config=config)
        if config.terms or config.adr:
            make_randomizer = functools.partial(Randomizer, config)
    return registration.make_vector_env(env_id, num_envs, mode=mode, pixels=pixels,
                                        discrete_actions=discrete_actions, randomize=randomize,
                                        make_randomizer=make_randomizer)
