"""Randomization that acts on every step rather than on the model: delays and noise between the
policy and the robot. Each term keeps one state per copy of the env (a batch of n copies, n = 1
for a single env); the per-episode draws happen in `reset(i, rng)`, the per-step noise comes
from the generator passed to `__call__`.

  action_delay        actions reach the robot this many whole control steps late (draw rounded)
  observation_noise   Gaussian noise of this std added to every observation value, every step
  observation_bias    an offset drawn per episode and value, added to every observation
  action_noise        Gaussian noise of this std added to every action, every step (then clipped)
"""

from __future__ import annotations

import numpy as np

from randomization.terms import TermSpec

STEP_TERM_NAMES = ("action_delay", "observation_noise", "observation_bias", "action_noise")
MAX_DELAY_STEPS = 20


class StepTerm:
    """One per-episode draw per copy (a delay, a std or a bias per value)."""

    def __init__(self, name: str, spec: TermSpec, num_envs: int, size: int) -> None:
        if name not in STEP_TERM_NAMES:
            raise ValueError(f"unknown step term {name!r}; known: {', '.join(STEP_TERM_NAMES)}")
        # A delay or a noise level has no nominal value: the draw is the value (set); a bias adds.
        spec = TermSpec(spec.distribution, spec.match, "add" if name == "observation_bias" else "set")
        spec.check(name)
        low, high = spec.distribution.support
        if name != "observation_bias" and low < 0:
            raise ValueError(f"randomization {name}: draws must be >= 0, the distribution "
                             f"reaches {low}")
        if name == "action_delay" and high > MAX_DELAY_STEPS:
            raise ValueError(f"randomization action_delay: at most {MAX_DELAY_STEPS} steps, the "
                             f"distribution reaches {high}")
        self.name, self.spec, self.size = name, spec, size
        per_value = name == "observation_bias"
        self.draws = np.zeros((num_envs, size if per_value else 1))
        self.names = [f"[{k}]" for k in range(size)] if per_value else ["all"]
        self.history = np.zeros((num_envs, MAX_DELAY_STEPS + 1, size))
        self.head = np.zeros(num_envs, dtype=int)

    def reset(self, i: int, rng: np.random.Generator) -> np.ndarray:
        values = self.spec.distribution.sample(rng, self.draws.shape[1])
        if self.name == "action_delay":
            values = np.round(values)
            self.history[i] = 0.0  # "no action yet": a relative-target robot holds still
        self.draws[i] = values
        return values

    def __call__(self, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Apply to a batch (n, size) of actions or observations."""
        if self.name == "action_delay":
            rows = np.arange(len(values))
            self.head = (self.head + 1) % self.history.shape[1]
            self.history[rows, self.head] = values
            delay = self.draws[:, 0].astype(int)
            return self.history[rows, (self.head - delay) % self.history.shape[1]].astype(
                values.dtype)
        if self.name == "observation_bias":
            return (values + self.draws).astype(values.dtype)
        noisy = values + rng.normal(0.0, 1.0, values.shape) * self.draws
        if self.name == "action_noise":
            noisy = np.clip(noisy, -1.0, 1.0)
        return noisy.astype(values.dtype)
