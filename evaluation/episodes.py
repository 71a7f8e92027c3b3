"""A trained policy, from a run dir (torch) or an exported ONNX file (onnxruntime, as on the
robot), acting in an env for deterministic episodes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

Act = Callable[[Any], np.ndarray]


@dataclass
class LoadedPolicy:
    act: Act
    trained_on: str | None
    """The env id it was trained on, if it says."""
    image_shape: tuple[int, ...] | None
    """The camera image it sees beside the state (pixel policies)."""
    source: Path


def load_policy(source: Path) -> LoadedPolicy:
    source = Path(source)
    if source.suffix == ".onnx":
        from deploy.onnx_policy import OnnxPolicy

        policy = OnnxPolicy(source)
        shape = policy.contract.image_shape
        return LoadedPolicy(policy, policy.contract.env_id, tuple(shape) if shape else None,
                            source)
    import torch

    from deploy.export import load_run
    from policies.algorithms import algorithm_by_name
    from policies.encoders import policy_inputs, stack_observations

    checkpoint, _ = load_run(source)
    network = algorithm_by_name(checkpoint["algo"]).load_policy(checkpoint)

    def act(obs: np.ndarray | dict) -> np.ndarray:
        with torch.no_grad():
            return network(*policy_inputs(stack_observations([obs])))[0].numpy()

    shape = checkpoint.get("image_shape")
    return LoadedPolicy(act, checkpoint.get("metadata", {}).get("env_id"),
                        tuple(shape) if shape else None, source)


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
        return {"policy": str(source), "env": env_id, **run_episodes(env, policy.act, episodes,
                                                                      seed)}
    finally:
        env.close()


def evaluation_line(report: dict) -> str:
    """`evaluate_policy`'s report in one line, as `sim2real eval` prints it."""
    success = "" if report["success_rate"] is None else f", success {report['success_rate']:.0%}"
    return (f"{report['policy']} on {report['env']}: return {report['mean_return']:.2f} +- "
            f"{report['std_return']:.2f} over {report['episodes']} episodes{success}, "
            f"{report['mean_length']:.0f} steps each")
