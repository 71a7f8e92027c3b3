"""What every algorithm's networks and envs share: MLPs, the running observation normalizer,
the exportable deterministic policy, vector envs. What a run writes and keeps is in run.py,
from the pieces in records.py.

policies/ knows nothing of MuJoCo: algorithms take an env factory.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from torch import nn

EnvFactory = Callable[[], gym.Env]
VectorEnvFactory = Callable[[int], gym.vector.VectorEnv]
"""Builds a vector env of n copies; algorithms take one of these and know nothing of MuJoCo."""


def mlp(sizes: list[int], activation: type[nn.Module] = nn.Tanh,
        output_gain: float = 1.0) -> nn.Sequential:
    """Linear layers with `activation` between them, orthogonally initialised (hidden gain
    sqrt(2), output gain `output_gain`): the initialisation PPO implementations rely on."""
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        layer = nn.Linear(fan_in, fan_out)
        last = i == len(sizes) - 2
        nn.init.orthogonal_(layer.weight, output_gain if last else np.sqrt(2))
        nn.init.zeros_(layer.bias)
        layers.append(layer)
        if not last:
            layers.append(activation())
    return nn.Sequential(*layers)


class RunningNormalizer(nn.Module):
    """Observation normalizer with running mean and variance (parallel Welford update).

    It lives in the policy's module so export puts it in the ONNX graph; training and the
    robot cannot disagree on it.
    """

    def __init__(self, size: int, clip: float = 10.0, epsilon: float = 1e-8,
                 min_std: float = 1e-2) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("var", torch.ones(size, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(epsilon, dtype=torch.float64))
        # Derived from the three above (not saved; recomputed on load): what `forward` uses.
        self.register_buffer("shift", torch.zeros(size), persistent=False)
        self.register_buffer("scale", torch.ones(size), persistent=False)
        self._shift, self._scale = self.shift.numpy(), self.scale.numpy()
        self.clip = clip
        self.epsilon = epsilon
        # A feature that barely moves in training (a joint the task holds still) would otherwise
        # turn a 0.02 rad nudge on the robot into a 10-sigma input and a wild action.
        self.min_std = min_std
        self._refresh()
        self.register_load_state_dict_post_hook(self._refresh)

    @torch.no_grad()
    def update(self, batch: np.ndarray) -> None:
        # numpy for the arithmetic, on views of the buffers: on a handful of numbers each torch
        # op costs microseconds, and this runs at every env step.
        batch = np.asarray(batch, dtype=np.float64).reshape(-1, len(self._mean))
        count = float(self._count)
        batch_mean, n = batch.mean(0), batch.shape[0]
        delta = batch_mean - self._mean
        total = count + n
        self._var *= count / total
        self._var += batch.var(0) * (n / total) + delta * delta * (count * n / total / total)
        self._mean += delta * (n / total)
        self._count[...] = total
        self._derive()

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)  # a copy or an unpickled one: its views must be its own
        self._shift, self._scale = self.shift.numpy(), self.scale.numpy()
        self._refresh()

    def _refresh(self, *_: object) -> None:
        """float32 shift and scale for `forward`, derived from the float64 statistics."""
        self._mean, self._var = self.mean.numpy(), self.var.numpy()
        self._count = self.count.numpy()
        self._derive()

    def _derive(self) -> None:
        # In place on numpy views of the buffers: fetching a buffer through nn.Module's
        # attribute lookup costs more than this arithmetic, and it runs at every env step.
        self._shift[:] = self._mean
        self._scale[:] = 1.0 / np.maximum(np.sqrt(self._var + self.epsilon), self.min_std)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.clamp((obs - self.shift) * self.scale, -self.clip, self.clip)


class DeterministicPolicy(nn.Module):
    """What gets exported: raw observation -> normalizer -> actor -> action in [-1, 1]."""

    def __init__(self, normalizer: RunningNormalizer, actor: nn.Module, squash: str) -> None:
        super().__init__()
        if squash not in ("clip", "tanh"):
            raise ValueError(f"squash must be 'clip' or 'tanh', got {squash!r}")
        self.normalizer = normalizer
        self.actor = actor
        self.squash = squash

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        raw = self.actor(self.normalizer(obs))
        return torch.tanh(raw) if self.squash == "tanh" else torch.clamp(raw, -1.0, 1.0)


def sync_vector_env(env_factory: EnvFactory) -> VectorEnvFactory:
    """A vector env factory from a one-env factory: copies stepped in turn, a finished copy
    reset in the same step (its last observation in info["final_obs"])."""

    def make(num_envs: int) -> gym.vector.VectorEnv:
        return gym.vector.SyncVectorEnv([env_factory] * num_envs,
                                        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)

    return make


def record_episodes(envs: gym.vector.VectorEnv) -> gym.vector.VectorEnv:
    """Episode returns and lengths in info["episode"]; the env must reset in the same step."""
    if envs.metadata.get("autoreset_mode") != gym.vector.AutoresetMode.SAME_STEP:
        raise ValueError("the vector env must reset finished copies in the same step "
                         "(gymnasium.vector.AutoresetMode.SAME_STEP)")
    return gym.wrappers.vector.RecordEpisodeStatistics(envs)


def check_continuous_actions(space: gym.Space, algo: str) -> None:
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1:
        raise ValueError(f"{algo} needs a continuous (Box, 1-D) action space; this env has {space}")
    if not (np.all(space.low == -1.0) and np.all(space.high == 1.0)):
        raise ValueError(f"{algo} expects actions in [-1, 1]; this env's are {space.low}..{space.high}."
                         " Wrap it in gymnasium.wrappers.RescaleAction(env, -1, 1)")


def check_discrete_actions(space: gym.Space, algo: str) -> None:
    if not isinstance(space, gym.spaces.Discrete):
        raise ValueError(f"{algo} needs discrete actions (a Discrete space); this env has {space}. "
                         "Discretize continuous actions with `sim2real train --discrete-actions N` "
                         "(make_env(..., discrete_actions=N); e.g. 5), or use an algorithm for "
                         "continuous actions (e.g. ppo or sac)")
    if space.start != 0:
        raise ValueError(f"{algo} numbers its choices from 0; this env's Discrete space starts at "
                         f"{space.start}")
