"""A trained policy, from a run dir (torch) or an exported ONNX file (onnxruntime, as on the
robot), acting in an env for deterministic episodes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from sim.words import counted

Act = Callable[[Any], np.ndarray]


@dataclass
class LoadedPolicy:
    act: Act
    trained_on: str | None
    """The env id it was trained on, if it says."""
    image_shape: tuple[int, ...] | None
    """The camera image it sees beside the state (pixel policies)."""
    source: Path
    obs_size: int
    """Numbers in the observation vector it takes (the state beside the image of a pixel policy)."""
    action_size: int

    def check_fits(self, env: gym.Env, env_id: str) -> None:
        """Refuse, naming both sizes, an env whose observations or actions are not this policy's
        (an env of another task or robot), before onnxruntime or torch meet the wrong shape."""
        space, actions = env.observation_space, env.action_space
        if isinstance(space, gym.spaces.Dict):
            space = space.spaces.get("state", gym.spaces.Box(0, 1, (0,)))
        obs_size = int(np.prod(space.shape))
        action_size = (int(np.prod(actions.shape)) if isinstance(actions, gym.spaces.Box)
                       else self.action_size)  # an env's own discrete choices: the index itself
        if (obs_size, action_size) == (self.obs_size, self.action_size):
            return
        sizes = (f"takes observations of {self.obs_size} numbers and gives {self.action_size} "
                 f"actions, but {env_id} has {obs_size} and {action_size}")
        if env_id == self.trained_on:  # the task's observation changed since
            raise ValueError(f"{self.source} was trained on an earlier version of {env_id}: it "
                             f"{sizes}; train it again to evaluate it (`sim2real deploy` runs it "
                             "as its contract says)")
        raise ValueError(f"{self.source} (trained on {self.trained_on}) {sizes}; evaluate it on "
                         f"{self.trained_on} (leave out --env) or train a policy on {env_id}")


def load_policy(source: Path) -> LoadedPolicy:
    source = Path(source)
    if source.suffix == ".onnx":
        from deploy.onnx_policy import OnnxPolicy

        policy = OnnxPolicy(source)
        contract = policy.contract
        shape = contract.image_shape
        return LoadedPolicy(policy, contract.env_id, tuple(shape) if shape else None, source,
                            contract.observation_size, contract.action_size)
    import torch

    from policies.algorithms import algorithm_by_name
    from policies.encoders import policy_inputs, stack_observations
    from policies.records import load_checkpoint

    checkpoint = load_checkpoint(source / "checkpoint.pt")
    network = algorithm_by_name(checkpoint["algo"]).load_policy(checkpoint)

    def act(obs: np.ndarray | dict) -> np.ndarray:
        with torch.no_grad():
            return network(*policy_inputs(stack_observations([obs])))[0].numpy()

    shape = checkpoint.get("image_shape")
    return LoadedPolicy(act, checkpoint.get("metadata", {}).get("env_id"),
                        tuple(shape) if shape else None, source, int(checkpoint["obs_size"]),
                        int(checkpoint["action_size"]))


def run_episodes(env: gym.Env, act: Act, episodes: int, seed: int = 0) -> dict[str, Any]:
    """`episodes` deterministic episodes from seeds seed, seed + 1, ...: mean and spread of the
    return, success rate (None for an env that does not report success), mean length."""
    from sim.discrete_actions import env_action

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    returns, lengths, successes = [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        total, length, info = 0.0, 0, {}
        while True:
            obs, reward, terminated, truncated, info = env.step(env_action(env.action_space,
                                                                           act(obs)))
            total, length = total + float(reward), length + 1
            if terminated or truncated:
                break
        returns.append(total)
        lengths.append(length)
        if "is_success" in info:
            successes.append(float(info["is_success"]))
    return {"episodes": episodes, "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)),
            "success_rate": float(np.mean(successes)) if successes else None,
            "mean_length": float(np.mean(lengths))}


def evaluate_policy(source: Path, env_id: str | None, episodes: int, seed: int = 0) -> dict:
    """Deterministic episodes of a run dir's policy (torch) or of an ONNX file (onnxruntime,
    as on the robot): mean and spread of the return, success rate, episode length."""
    from randomization.envs import make_env
    from sim.registration import check_env_id

    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    policy = load_policy(source)
    env_id = env_id or policy.trained_on
    if env_id is None:
        raise ValueError(f"{source} does not say which env it was trained on; give --env")
    check_env_id(env_id)
    env = make_env(env_id, pixels=policy.image_shape[0] if policy.image_shape else None)
    try:
        policy.check_fits(env, env_id)
        return {"policy": str(source), "env": env_id, **run_episodes(env, policy.act, episodes,
                                                                      seed)}
    finally:
        env.close()


def evaluation_line(report: dict) -> str:
    """`evaluate_policy`'s report in one line, as `sim2real eval` prints it."""
    success = "" if report["success_rate"] is None else f", success {report['success_rate']:.0%}"
    return (f"{report['policy']} on {report['env']}: return {report['mean_return']:.2f} +- "
            f"{report['std_return']:.2f} over {counted(report['episodes'], 'episode')}{success}, "
            f"{report['mean_length']:.0f} steps each")
