"""Randomization that acts on every step rather than on the model: delays and noise between the
policy and the robot. Each term keeps one state per copy of the env (a batch of n copies, n = 1
for a single env); the per-episode draws happen in `reset(i, rng)`, the per-step noise comes
from the generator passed to `__call__`.

  action_delay        commands reach the robot this many whole control steps late (draw
                      rounded). In our envs (sim/env.py, sim/batch_env.py) what is delayed is
                      the command in robot units (servo goals, motor volts) that the action made
                      from the reading the policy saw, as a real link and the device emulator
                      delay it: the same action re-anchored on a later reading would be another
                      command. In other envs (gymnasium's) the action is the command; it is
                      delayed as it is
  observation_noise   Gaussian noise of this std added to every observation value, every step
  observation_bias    an offset drawn per episode and value, added to every observation
  action_noise        Gaussian noise of this std added to every action, every step (then clipped)
  observation_dropout this probability, each step, that no fresh reading arrives and the last
                      observation is seen again (a lost serial frame)
  observation_latency observations reach the policy this many whole control steps late
  observation_scale_noise  Gaussian noise of this std multiplies every observation value by
                      (1 + noise), every step (a gain error that varies)
  observation_quantization every observation value rounded to a multiple of this step (an
                      encoder's count, in observation units)
  object_hold         the positions of the objects a task tracks (RobotState.objects: a camera
                      tracker's) are new every this many control steps, the last held between:
                      a camera's frame period (3.33 at 15 frames/s under a 50 Hz loop; not
                      rounded, the first new one after the episode's first reading at a random
                      phase)
  object_latency      those positions reach the policy this many whole control steps late (a
                      frame's exposure, transfer and locating). Both act on what the policy
                      observes only: reward and success judge where the objects are, and the
                      env applies them before the task's observation (sim/env.py)
"""

from __future__ import annotations

import numpy as np

from randomization.term_spec import TermSpec

STEP_TERM_NAMES = ("action_delay", "observation_noise", "observation_bias", "action_noise",
                   "observation_dropout", "observation_latency", "observation_scale_noise",
                   "observation_quantization", "object_hold", "object_latency")
OBJECT_TERM_NAMES = ("object_hold", "object_latency")
DELAYS = ("action_delay", "observation_latency", "object_latency")
MAX_DELAY_STEPS = 20


class StepTerm:
    """One per-episode draw per copy (a delay, a std or a bias per value)."""

    def __init__(self, name: str, spec: TermSpec, num_envs: int, size: int,
                 commands: bool = False) -> None:
        """`size` values per copy; `commands`: an action_delay that delays an env's commands,
        whose delay line the env fills with the held command at each reset (`fill`)."""
        if name not in STEP_TERM_NAMES:
            raise ValueError(f"unknown step term {name!r}; known: {', '.join(STEP_TERM_NAMES)}")
        # A delay or a noise level has no nominal value: the draw is the value (set); a bias adds.
        spec = TermSpec(spec.distribution, spec.match, "add" if name == "observation_bias" else "set")
        spec.check(name)
        low, high = spec.distribution.support
        if name != "observation_bias" and low < 0:
            raise ValueError(f"randomization {name}: draws must be >= 0, the distribution "
                             f"reaches {low}")
        if name == "observation_dropout" and high > 1:
            raise ValueError(f"randomization observation_dropout: a probability, at most 1; the "
                             f"distribution reaches {high}")
        if name in DELAYS and high > MAX_DELAY_STEPS:
            raise ValueError(f"randomization {name}: at most {MAX_DELAY_STEPS} steps, the "
                             f"distribution reaches {high}")
        if commands and name != "action_delay":
            raise ValueError(f"randomization {name}: only action_delay acts on commands")
        self.name, self.spec, self.size, self.commands = name, spec, size, commands
        per_value = name == "observation_bias"
        self.draws = np.zeros((num_envs, size if per_value else 1))
        self.names = [f"[{k}]" for k in range(size)] if per_value else ["all"]
        # Past actions or commands for the delay (a ring buffer), the last observation for
        # dropout.
        depth = {"action_delay": MAX_DELAY_STEPS + 1, "observation_latency": MAX_DELAY_STEPS + 1,
                 "object_latency": MAX_DELAY_STEPS + 1, "observation_dropout": 1,
                 "object_hold": 1}.get(name, 0)
        self.history = np.zeros((num_envs, depth, size))
        self.head = np.zeros(num_envs, dtype=int)
        # object_hold: steps until the next new position, per copy (a fraction carries over).
        self.until_new = np.zeros(num_envs)

    def reset(self, i: int, rng: np.random.Generator) -> np.ndarray:
        values = self.spec.distribution.sample(rng, self.draws.shape[1])
        if self.name in DELAYS:
            values = np.round(values)
            # Commands in flight are the held one, which the env knows (`fill`); of an action,
            # none yet (0); no observation yet (the first one fills the buffer).
            if not self.commands:
                self.history[i] = 0.0 if self.name == "action_delay" else np.nan
        if self.name in ("observation_dropout", "object_hold"):
            self.history[i, 0] = np.nan  # nothing seen yet: the first reading always arrives
        if self.name == "object_hold":
            # The next new one comes within a period of the first (a step counted off first).
            self.until_new[i] = 1.0 + rng.uniform(0.0, max(values[0], 1.0))
        self.draws[i] = values
        return values

    def fill(self, values: np.ndarray, rows: np.ndarray | None = None) -> None:
        """Every value in flight of the copies `rows` (default all) is `values` (n, size) or
        (size,): at a reset, the command the robot holds."""
        self.history[slice(None) if rows is None else rows] = np.asarray(values)[..., None, :]

    def __call__(self, values: np.ndarray, rng: np.random.Generator,
                 rows: np.ndarray | None = None) -> np.ndarray:
        """Apply to a batch (n, size) of actions or observations: those of all copies, or of the
        copies `rows`."""
        rows = np.arange(len(values)) if rows is None else np.asarray(rows)
        draws = self.draws[rows]
        if self.name in DELAYS:
            depth = self.history.shape[1]
            if self.name != "action_delay":
                # Right after a reset every older observation is this first one.
                fresh = np.isnan(self.history[rows, 0, 0])
                self.history[rows[fresh]] = values[fresh, None, :]
            self.head[rows] = (self.head[rows] + 1) % depth
            self.history[rows, self.head[rows]] = values
            delayed = (self.head[rows] - draws[:, 0].astype(int)) % depth
            return self.history[rows, delayed].astype(values.dtype)
        if self.name == "object_hold":
            last = self.history[rows, 0]
            self.until_new[rows] -= 1.0
            due = self.until_new[rows] <= 0.0
            self.until_new[rows[due]] += np.maximum(draws[due, 0], 1.0)
            new = due | np.isnan(last[:, 0])
            seen = np.where(new[:, None], values, last)
            self.history[rows, 0] = seen
            return seen.astype(values.dtype)
        if self.name == "observation_scale_noise":
            return (values * (1.0 + rng.normal(0.0, 1.0, values.shape) * draws)).astype(values.dtype)
        if self.name == "observation_quantization":
            step = np.where(draws > 0, draws, 1.0)
            return np.where(draws > 0, np.round(values / step) * step, values).astype(values.dtype)
        if self.name == "observation_bias":
            return (values + draws).astype(values.dtype)
        if self.name == "observation_dropout":
            last = self.history[rows, 0]
            lost = (rng.random(len(values)) < draws[:, 0]) & ~np.isnan(last[:, 0])
            seen = np.where(lost[:, None], last, values)
            self.history[rows, 0] = seen
            return seen.astype(values.dtype)
        noisy = values + rng.normal(0.0, 1.0, values.shape) * draws
        if self.name == "action_noise":
            noisy = np.clip(noisy, -1.0, 1.0)
        return noisy.astype(values.dtype)
