"""The action noises TD3 and DDPG explore with: Gaussian, and Ornstein-Uhlenbeck."""

from __future__ import annotations

from typing import Any

import numpy as np


class GaussianNoise:
    """Independent N(0, std^2) action noise at every step (TD3's exploration)."""

    def __init__(self, shape: tuple[int, int], std: float, rng: np.random.Generator) -> None:
        self.shape, self.std, self.rng = shape, std, rng

    def __call__(self) -> np.ndarray:
        return self.rng.normal(0.0, self.std, self.shape).astype(np.float32)

    def reset(self, copies: np.ndarray) -> None:
        """Nothing to forget: each draw is independent."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore (the generator is restored by the run)."""


class OrnsteinUhlenbeckNoise:
    """Temporally correlated noise (DDPG's original exploration), one process per env copy:
    x <- x + theta * (0 - x) * dt + std * sqrt(dt) * N(0, 1). It drifts back to zero at rate
    theta, so a copy keeps pushing the same way for about 1 / (theta * dt) steps."""

    def __init__(self, shape: tuple[int, int], std: float, rng: np.random.Generator,
                 theta: float = 0.15, dt: float = 1e-2) -> None:
        if theta <= 0 or dt <= 0:
            raise ValueError(f"Ornstein-Uhlenbeck theta and dt must be > 0, got {theta}, {dt}")
        self.std, self.rng, self.theta, self.dt = std, rng, theta, dt
        self.state = np.zeros(shape, np.float32)

    def __call__(self) -> np.ndarray:
        self.state += (-self.theta * self.state * self.dt
                       + self.std * np.sqrt(self.dt) * self.rng.standard_normal(self.state.shape))
        return self.state.copy()

    def reset(self, copies: np.ndarray) -> None:
        """Start the finished copies' processes again from zero (a new episode)."""
        self.state[copies] = 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"state": self.state.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state[...] = state["state"]


ACTION_NOISE = {"gaussian": GaussianNoise, "ornstein_uhlenbeck": OrnsteinUhlenbeckNoise}


def make_action_noise(kind: str, shape: tuple[int, int], std: float,
                      rng: np.random.Generator) -> GaussianNoise | OrnsteinUhlenbeckNoise:
    """Exploration noise for `shape` = (num_envs, action_size), by name."""
    if kind not in ACTION_NOISE:
        raise ValueError(f"exploration noise {kind!r} is unknown; use one of: "
                         f"{', '.join(ACTION_NOISE)}")
    if std < 0:
        raise ValueError(f"exploration noise std must be >= 0, got {std}")
    return ACTION_NOISE[kind](shape, std, rng)
