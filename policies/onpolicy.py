"""What PPO, A2C, TRPO and REINFORCE share besides their network (policies/onpolicy_networks.py
`ActorCritic`): collecting a rollout on vector envs, generalized advantage estimation, reward
scaling. A run's bookkeeping (logs, evaluation keeping best.pt, checkpoints that resume exactly,
the stop on a NaN loss) is every algorithm's TrainingRun (policies/run.py).

Each algorithm's own file reads top to bottom and holds only its update; only what is truly
common lives here. Observations are normalized by a running normalizer saved with the policy and
exported inside the ONNX graph. Pixel observations (a Dict of "pixels" and "state",
sim.pixels.PixelObservation) go through a CNN encoder (policies/encoders.py) shared by actor and
critic; a rollout keeps their images uint8.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from policies.core import VectorEnvFactory, check_continuous_actions
from policies.encoders import observation_layout, stack_observations
from policies.onpolicy_networks import ActorCritic
from policies.records import TrainingProgress
from policies.run import EvaluationHook, TrainingRun


def split_observation(obs: Any, state_size: int) -> tuple[np.ndarray | None, np.ndarray]:
    """(pixels or None, float32 state) of a batch of observations, flat or Dict."""
    if not isinstance(obs, dict):
        return None, np.asarray(obs, dtype=np.float32)
    pixels = np.asarray(obs["pixels"])
    state = obs["state"] if state_size else np.zeros((len(pixels), 0))
    return pixels, np.asarray(state, dtype=np.float32)


def compute_gae(rewards: np.ndarray, values: np.ndarray, ends: np.ndarray, next_value: np.ndarray,
                gamma: float, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation over a (steps, envs) rollout.

    `ends[t]` marks an episode that ended at step t; a time-limit end was already bootstrapped
    into its reward, so both kinds stop the recursion here. Returns (advantages, returns).
    lam = 1 gives the Monte Carlo return minus the value; lam = 0 the one-step TD error.
    """
    advantages = np.zeros_like(rewards)
    last = np.zeros_like(next_value)
    for t in reversed(range(len(rewards))):
        following = next_value if t == len(rewards) - 1 else values[t + 1]
        alive = 1.0 - ends[t]
        delta = rewards[t] + gamma * following * alive - values[t]
        last = delta + gamma * lam * alive * last
        advantages[t] = last
    return advantages, advantages + values


class RewardScaler:
    """Reward scaling (Engstrom et al. 2020, "Implementation Matters in Deep Policy Gradients"):
    each reward divided by the running std of its env copy's discounted return, then clipped, so
    value targets sit near unit scale whatever units the task's rewards come in. Stable-Baselines3
    does the same with VecNormalize(norm_reward=True). Training only: a policy never sees rewards,
    so nothing of it is exported."""

    def __init__(self, num_envs: int, gamma: float, clip: float = 10.0,
                 epsilon: float = 1e-8) -> None:
        self.gamma, self.clip, self.epsilon = gamma, clip, epsilon
        self.returns = np.zeros(num_envs)
        """Each copy's discounted return so far in its episode."""
        self.mean, self.var, self.count = 0.0, 1.0, epsilon  # of those returns, as they came

    def __call__(self, reward: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Scaled rewards of one vector step; `ends`: the copies whose episode ended with it."""
        self.returns = self.returns * self.gamma + reward
        n, batch_mean = len(self.returns), float(self.returns.mean())
        delta, total = batch_mean - self.mean, self.count + n
        self.var = (self.var * self.count + float(self.returns.var()) * n
                    + delta * delta * self.count * n / total) / total
        self.mean += delta * n / total
        self.count = total
        self.returns[ends] = 0.0
        scaled = reward / math.sqrt(self.var + self.epsilon)
        return np.clip(scaled, -self.clip, self.clip).astype(np.float32)

    def state_dict(self) -> dict[str, Any]:
        return {"returns": self.returns.copy(), "mean": self.mean, "var": self.var,
                "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["returns"]) != len(self.returns):
            raise ValueError(f"the reward scaler was saved for {len(state['returns'])} env "
                             f"copies, this run has {len(self.returns)}")
        self.returns = np.array(state["returns"], dtype=np.float64)
        self.mean, self.var, self.count = state["mean"], state["var"], state["count"]


@dataclass
class Rollout:
    """What `OnPolicyRun.collect` gathered, as (steps, envs, ...) arrays: observations as the
    policy saw them (normalized), images, actions, their log-probabilities and the means they
    were drawn around, rewards (time-limit ends bootstrapped in when asked), episode ends, values,
    and the value of the observation after the last step."""
    obs: np.ndarray
    pixels: np.ndarray | None
    actions: np.ndarray
    log_probs: np.ndarray
    means: np.ndarray
    rewards: np.ndarray
    ends: np.ndarray
    values: np.ndarray
    next_value: np.ndarray

    def flat(self, *arrays: np.ndarray) -> list[torch.Tensor]:
        """The given (steps, envs, ...) arrays as (steps * envs, ...) tensors, without copies."""
        return [torch.as_tensor(a.reshape(-1, *a.shape[2:])) for a in arrays]


def actor_critic_layout(envs: gym.vector.VectorEnv, algo: str) -> dict[str, Any]:
    """The sizes an ActorCritic is built for, the spaces checked (continuous actions; a flat
    observation or a Dict of an image and the state beside it)."""
    check_continuous_actions(envs.single_action_space, algo)
    # obs_size: of the flat observation, or of the state beside the image.
    obs_size, image_shape = observation_layout(envs.single_observation_space, algo)
    return {"obs_size": obs_size, "image_shape": image_shape,
            "action_size": envs.single_action_space.shape[0]}


class OnPolicyRun:
    """An on-policy run: collecting rollouts with an ActorCritic, on a TrainingRun
    (policies/run.py) that keeps the envs, the logs, the evaluation keeping best.pt and the
    checkpoints that resume exactly (here with the reward scaler's running statistics).

    Use: build it (it makes or restores the envs), build the agent (an ActorCritic) for its
    sizes, `keep` what a checkpoint holds, then `begin()` gives the first observation (reset, or
    restored). The config needs: total_steps, num_envs, gamma, seed, eval_every, eval_episodes,
    checkpoint_every (the last two in iterations), checkpoint_seconds and, if it logs less than
    every iteration, log_every (in env steps)."""

    def __init__(self, algo: str, config: Any, make_envs: VectorEnvFactory, run_dir: Path,
                 metadata: dict[str, Any] | None, loss_names: list[str],
                 resume: dict[str, Any] | None = None,
                 on_evaluation: EvaluationHook | None = None) -> None:
        self.config = config
        self.run = TrainingRun(algo, config, make_envs, run_dir, metadata, resume,
                               actor_critic_layout, [*loss_names, "learning_rate", "action_std"],
                               eval_every=config.eval_every,
                               checkpoint_every=config.checkpoint_every, rows_at_checkpoints=True,
                               checkpoint_seconds=config.checkpoint_seconds,
                               on_evaluation=on_evaluation)
        self.envs, self.stats = self.run.envs, self.run.stats
        self.obs_size, self.image_shape, self.action_size = (
            self.run.sizes[name] for name in ("obs_size", "image_shape", "action_size"))
        self.first_iteration = 1
        """The iteration to run next (after `begin`, a resumed run's)."""
        self.steps_per_iteration = 0
        """Env steps the last iteration took (its rollout)."""

    @property
    def steps(self) -> int:
        """Env steps taken, the runs before a resume included."""
        return self.run.steps

    def keep(self, agent: ActorCritic, optimizers: dict[str, torch.optim.Optimizer],
             rng: np.random.Generator, reward_scaler: RewardScaler | None = None) -> None:
        """What a checkpoint holds and a resume restores, besides the envs and the logs;
        `reward_scaler`, when given, scales the rewards `collect` stores."""
        self.agent, self.rng, self.reward_scaler = agent, rng, reward_scaler
        self.normalizer = agent.state_normalizer
        self.run.keep(agent, optimizers, rng, self._resume_state, self._restore)

    def _resume_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of this run besides what every run keeps."""
        return {"reward_scaler": (None if self.reward_scaler is None
                                  else self.reward_scaler.state_dict())}

    def _restore(self, state: dict[str, Any]) -> None:
        if self.reward_scaler is None:
            return
        if state.get("reward_scaler") is None:
            raise ValueError("this checkpoint was written by a run without reward scaling; "
                             "resume it with its own config (scale_rewards False)")
        self.reward_scaler.load_state_dict(state["reward_scaler"])

    def begin(self, seed: int) -> Any:
        """The first observation: the envs reset from `seed`, or, resuming, everything as it was
        when the checkpoint was written; then `first_iteration` is the iteration to run next."""
        obs = self.run.begin(seed)
        self.first_iteration = self.run.first_iteration
        return obs

    def reset(self) -> Any:
        """New episodes in every copy, seeded from the run's generator (so a resumed run draws
        the same ones): for algorithms that learn from whole episodes only."""
        return self.run.fresh_episodes(int(self.rng.integers(2**31)))

    # -- collecting --------------------------------------------------------------------------

    def value_of(self, observations: Any) -> np.ndarray:
        """The critic's value of raw observations (flat or Dict), under the current normalizer."""
        pixels, state = split_observation(observations, self.obs_size)
        with torch.no_grad():
            features = self.agent.features(self.normalizer(torch.as_tensor(state)),
                                           None if pixels is None else torch.as_tensor(pixels))
            return self.agent.value(features).numpy()

    def collect(self, obs: Any, steps: int, bootstrap_time_limits: bool = True,
                stop: Callable[[np.ndarray], bool] | None = None) -> tuple[Rollout, Any]:
        """Step every copy `steps` times with actions drawn from the policy; returns the rollout
        and the observation after it. The normalizer learns from each observation first.

        bootstrap_time_limits: a time-limit end is not a real end; add gamma times the value of
        its last state to its reward (Monte Carlo methods without a critic say False).
        stop: called with the (steps so far, envs) episode-end flags after each step; the
        rollout is cut short when it returns True."""
        agent, normalizer, config = self.agent, self.normalizer, self.config
        shape = (steps, config.num_envs)
        obs_buf = np.zeros((*shape, self.obs_size), np.float32)  # normalized as the policy saw them
        # uint8 as rendered: a quarter of the memory of float32 (scaled inside the encoder).
        pixel_buf = np.zeros((*shape, *self.image_shape), np.uint8) if self.image_shape else None
        act_buf = np.zeros((*shape, self.action_size), np.float32)
        mean_buf = np.zeros((*shape, self.action_size), np.float32)
        logp_buf, rew_buf, end_buf, val_buf = (np.zeros(shape, np.float32) for _ in range(4))
        taken = steps
        for t in range(steps):
            pixels, state = split_observation(obs, self.obs_size)
            if self.obs_size:
                normalizer.update(state)
            with torch.no_grad():
                norm_obs = normalizer(torch.as_tensor(state, dtype=torch.float32))
                features = agent.features(
                    norm_obs, None if pixels is None else torch.as_tensor(pixels))
                mean = agent.actor(features)
                action = torch.addcmul(mean, torch.randn_like(mean), agent.log_std.exp())
                logp_buf[t] = agent.log_prob(action, mean).numpy()
                val_buf[t] = agent.value(features).numpy()
            obs_buf[t] = norm_obs.numpy()
            if pixel_buf is not None:
                pixel_buf[t] = pixels
            act_buf[t] = action.numpy()
            mean_buf[t] = mean.numpy()
            obs, reward, terminated, truncated, info = self.envs.step(
                np.clip(act_buf[t], -1.0, 1.0))
            if self.reward_scaler is not None:
                reward = self.reward_scaler(reward, terminated | truncated)
            cut = truncated & ~terminated
            if bootstrap_time_limits and cut.any():
                reward = reward.copy()
                # The value is in the units the critic learned: scaled ones, if scaling.
                reward[cut] += config.gamma * self.value_of(
                    stack_observations(list(info["final_obs"][cut])))
            rew_buf[t] = reward
            end_buf[t] = terminated | truncated
            self.run.record(info)
            if stop is not None and stop(end_buf[:t + 1]):
                taken = t + 1
                break
        self.steps_per_iteration = taken * config.num_envs
        cut_to = slice(0, taken)
        rollout = Rollout(obs_buf[cut_to], None if pixel_buf is None else pixel_buf[cut_to],
                          act_buf[cut_to], logp_buf[cut_to], mean_buf[cut_to], rew_buf[cut_to],
                          end_buf[cut_to], val_buf[cut_to], self.value_of(obs))
        return rollout, obs

    # -- learning ----------------------------------------------------------------------------

    def check_finite(self, loss: torch.Tensor) -> None:
        """Stop on a NaN/inf loss, naming the last good checkpoint and what to change."""
        if not torch.isfinite(loss):
            self.run.stop(f"loss became {loss.item()}")

    # -- records -----------------------------------------------------------------------------

    def after_iteration(self, iteration: int, last: bool, obs: Any,
                        losses: dict[str, torch.Tensor], learning_rate: float,
                        bar: TrainingProgress) -> None:
        """Evaluate, log and checkpoint as due after `iteration` (the `last` one always);
        `obs` is what the next action will be for. A row of metrics is written every
        iteration, or every config.log_every env steps where the config has it (A2C's
        iterations are a few dozen steps; one loss value each is noise)."""
        log_every = getattr(self.config, "log_every", 0)
        before = self.steps - self.steps_per_iteration
        self.run.after_iteration(
            iteration, last, obs, self.agent.deterministic_policy, lambda: {
                **{name: (value.item() if isinstance(value, torch.Tensor) else float(value))
                   for name, value in losses.items()},
                "learning_rate": learning_rate,
                "action_std": self.agent.log_std.exp().mean().item()},
            bar, row_due=not log_every or self.steps // log_every > before // log_every)

    def close(self) -> None:
        self.run.close()

    def finish(self) -> dict[str, Any]:
        """After the last iteration (which wrote the last checkpoint)."""
        return self.run.finish({})


def learning_rate_at(config: Any, done: float) -> float:
    """The learning rate with the fraction `done` of training behind: config.learning_rate,
    decayed linearly to zero when config.anneal_lr."""
    if not config.anneal_lr:
        return config.learning_rate
    return config.learning_rate * max(0.0, 1.0 - done)


def set_learning_rate(optimizer: torch.optim.Optimizer, rate: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = rate
