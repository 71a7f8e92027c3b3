"""The algorithms by name, as a plain dict: what `sim2real train --algo` and export look up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from policies import a2c, ddpg, dqn, ppo, reinforce, sac, td3, trpo


@dataclass(frozen=True)
class Algorithm:
    config: type
    train: Callable[..., dict[str, Any]]
    load_policy: Callable[[dict[str, Any]], Any]


ALGORITHMS: dict[str, Algorithm] = {
    "ppo": Algorithm(config=ppo.PPOConfig, train=ppo.train, load_policy=ppo.load_policy),
    "sac": Algorithm(config=sac.SACConfig, train=sac.train, load_policy=sac.load_policy),
    "td3": Algorithm(config=td3.TD3Config, train=td3.train, load_policy=td3.load_policy),
    "ddpg": Algorithm(config=ddpg.DDPGConfig, train=ddpg.train, load_policy=ddpg.load_policy),
    "dqn": Algorithm(config=dqn.DQNConfig, train=dqn.train, load_policy=dqn.load_policy),
    "a2c": Algorithm(config=a2c.A2CConfig, train=a2c.train, load_policy=a2c.load_policy),
    "trpo": Algorithm(config=trpo.TRPOConfig, train=trpo.train, load_policy=trpo.load_policy),
    "reinforce": Algorithm(config=reinforce.REINFORCEConfig, train=reinforce.train,
                           load_policy=reinforce.load_policy),
}


def algorithm_by_name(name: str) -> Algorithm:
    if name not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; choose one of: {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]
