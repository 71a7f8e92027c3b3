"""Randomization of time inside one control step, in whole physics steps (whole control steps of
delay are `action_delay`, a step term). Draws happen per episode; the jitter is drawn every step.

  action_latency         s from the start of a control step until its command reaches the robot;
                         until then the previous command acts. Must stay below one control period
  action_latency_jitter  s, the half-width of a uniform per-step variation of that latency
  control_period_jitter  fraction, the half-width of a uniform per-step variation of the control
                         period (how many physics steps a control step lasts, at least one)
"""

from __future__ import annotations

import numpy as np

from randomization.term_spec import TermSpec

TIMING_NAMES = ("action_latency", "action_latency_jitter", "control_period_jitter")


class Timing:
    """Per copy of a batch: how many physics steps the previous command still acts, and how many
    physics steps the control step lasts."""

    def __init__(self, specs: dict[str, TermSpec], num_envs: int, substeps: int,
                 timestep: float) -> None:
        self.specs = {}
        period = substeps * timestep
        for name, spec in specs.items():
            spec = TermSpec(spec.distribution, spec.match, "set")
            spec.check(name)
            low, high = spec.distribution.support
            if low < 0:
                raise ValueError(f"randomization {name}: draws must be >= 0, the distribution "
                                 f"reaches {low}")
            limit = 1.0 if name == "control_period_jitter" else period
            if high >= limit:
                what = "1 (a fraction of the period)" if limit == 1.0 else \
                    f"the control period {period:g} s; use action_delay for whole steps"
                raise ValueError(f"randomization {name}: draws must stay below {what}; the "
                                 f"distribution reaches {high}")
            self.specs[name] = spec
        self.substeps, self.timestep = substeps, timestep
        self.draws = {name: np.zeros(num_envs) for name in self.specs}

    def reset(self, i: int, rng: np.random.Generator) -> dict[str, dict[str, float]]:
        sample = {}
        for name, spec in self.specs.items():
            self.draws[name][i] = spec.distribution.sample(rng, 1)[0]
            sample[name] = {"all": float(self.draws[name][i])}
        return sample

    def plan(self, rng: np.random.Generator, num_envs: int) -> tuple[np.ndarray, np.ndarray]:
        """(physics steps before the new command acts, physics steps of this control step) per
        copy."""
        zeros = np.zeros(num_envs)
        jitter = self.draws.get("control_period_jitter", zeros)
        total = np.maximum(1, np.round(self.substeps * (1.0 + rng.uniform(-1, 1, num_envs) * jitter)))
        latency = self.draws.get("action_latency", zeros) + rng.uniform(-1, 1, num_envs) * \
            self.draws.get("action_latency_jitter", zeros)
        delay = np.clip(np.round(latency / self.timestep), 0, total - 1)
        return delay.astype(int), total.astype(int)
