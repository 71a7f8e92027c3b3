"""The replay buffer of SAC, TD3, DDPG and DQN: transitions as the envs gave them, sampled
uniformly (hindsight relabelling on top of it: policies/hindsight.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class ReplayBuffer:
    """A ring of transitions (obs, action, reward, next_obs, terminated), raw observations.

    Observations are stored as the env gave them and normalized when sampled, with the current
    statistics: the exported policy is then exactly normalizer + actor.

    A copy that hit its time limit (truncated) did not reach a terminal state: its transition
    keeps terminated=False and its true last observation (info["final_obs"], since the vector
    env has already reset that copy) as next_obs, so the target bootstraps from it.
    """

    def __init__(self, capacity: int, obs_size: int, action_size: int) -> None:
        if capacity < 1:
            raise ValueError(f"buffer_size must be >= 1, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_size), np.float32)
        self.next_obs = np.zeros((capacity, obs_size), np.float32)
        self.actions = np.zeros((capacity, action_size), np.float32)
        self.rewards = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.position = 0
        """Where the next transition goes."""
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, truncated: np.ndarray, info: dict[str, Any]) -> None:
        """One vector-env step of n copies: what `envs.step(action)` returned, and the `obs`
        and `action` that went in. The env must reset finished copies in the same step."""
        next_obs = np.array(next_obs, dtype=np.float32)
        done = np.asarray(terminated) | np.asarray(truncated)
        for i in np.flatnonzero(done):
            next_obs[i] = info["final_obs"][i]
        n = len(next_obs)
        if n > self.capacity:
            raise ValueError(f"buffer_size {self.capacity} is smaller than one step of {n} envs")
        rows = (self.position + np.arange(n)) % self.capacity
        self.obs[rows] = obs
        self.actions[rows] = action
        self.rewards[rows] = reward
        self.next_obs[rows] = next_obs
        self.terminated[rows] = terminated
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def state_dict(self) -> dict[str, Any]:
        """The stored transitions (only the filled rows) and the write position."""
        rows = slice(0, self.size)
        return {"capacity": self.capacity, "position": self.position, "size": self.size,
                "obs": self.obs[rows].copy(), "actions": self.actions[rows].copy(),
                "rewards": self.rewards[rows].copy(), "next_obs": self.next_obs[rows].copy(),
                "terminated": self.terminated[rows].copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity or state["obs"].shape[1:] != self.obs.shape[1:]:
            raise ValueError(f"the saved replay buffer holds {state['capacity']} transitions of "
                             f"{state['obs'].shape[1:]} observations; this one "
                             f"{self.capacity} of {self.obs.shape[1:]}")
        rows = slice(0, state["size"])
        for name in ("obs", "actions", "rewards", "next_obs", "terminated"):
            getattr(self, name)[rows] = state[name]
        self.position, self.size = state["position"], state["size"]

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        """`batch_size` transitions drawn uniformly with replacement, as float32 tensors."""
        if self.size == 0:
            raise ValueError("the replay buffer is empty; collect transitions before sampling")
        rows = rng.integers(0, self.size, batch_size)
        return {"obs": torch.from_numpy(self.obs[rows]),
                "action": torch.from_numpy(self.actions[rows]),
                "reward": torch.from_numpy(self.rewards[rows]),
                "next_obs": torch.from_numpy(self.next_obs[rows]),
                "terminated": torch.from_numpy(self.terminated[rows])}
