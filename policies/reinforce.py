"""REINFORCE (Williams 1992): the Monte Carlo policy gradient with reward-to-go, optionally
minus a learned value baseline, in one file.

Reads top to bottom: config, the training loop. Each iteration starts new episodes in every
vector-env copy and runs them until the finished episodes hold at least `batch_steps` steps.
Only whole episodes count: the reward-to-go of a step needs every reward to its episode's end,
so the unfinished tail of each copy is dropped (no critic guesses it, as an actor-critic would).
A time-limit end is taken as the end of the return. The gradient is then
  mean over steps of  grad log pi(a_t | s_t) * (G_t - b(s_t)),
with G_t the discounted reward-to-go and b the baseline (zero without one). The baseline is
fitted to G_t by its own regression after the policy step. The actor-critic, rollout collection
and a run's records are shared with PPO, A2C and TRPO (policies/onpolicy.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from policies.core import DeterministicPolicy, VectorEnvFactory
from policies.cores import torch_threads_for
from policies.onpolicy import OnPolicyRun, compute_gae, learning_rate_at, set_learning_rate
from policies.onpolicy_networks import ActorCritic, load_actor_critic
from policies.records import TrainingProgress
from policies.run import EvaluationHook
from policies.settings import check_settings


@dataclass
class REINFORCEConfig:
    total_steps: int = 500_000
    """Environment steps to train for (summed over the vector envs, dropped tails included)."""
    num_envs: int = 8
    """Envs stepped together in one process."""
    batch_steps: int = 4_000
    """Steps of finished episodes per policy update (at least; whole episodes only)."""
    max_episode_steps: int = 1_000
    """Longest a collection runs; at least the env's episode length, or no episode finishes."""
    learning_rate: float = 1e-3
    anneal_lr: bool = False
    """Decay the learning rates linearly to zero over training."""
    gamma: float = 0.99
    baseline: bool = True
    """Subtract a learned value baseline from the reward-to-go (lower variance, same mean)."""
    baseline_learning_rate: float = 1e-3
    baseline_epochs: int = 5
    """Passes of the baseline's regression over each batch."""
    baseline_minibatch_size: int = 256
    normalize_advantage: bool = True
    """Scale the batch's (G - b) to zero mean and unit std: a per-batch step size."""
    max_grad_norm: float = 0.5
    hidden_sizes: tuple[int, ...] = (64, 64)
    initial_log_std: float = -0.5
    seed: int = 0
    checkpoint_every: int = 10
    """Iterations between checkpoints (one is always written at the end)."""
    checkpoint_seconds: float = 60.0
    """Seconds of training after which a checkpoint is written too (0: none by time): a
    killed run loses at most about this much."""
    eval_every: int = 10
    """Iterations between evaluations of the deterministic policy (0: none); the best is kept
    as best.pt."""
    eval_episodes: int = 10
    torch_threads: int = 1
    """Small MLPs run fastest on one thread; the other core is left to the envs."""

    def __post_init__(self) -> None:
        check_settings(self)


def finished_steps(ends: np.ndarray) -> np.ndarray:
    """Per copy, the steps of its finished episodes in a (steps, envs) array of episode ends:
    one past its last end, 0 where none ended."""
    ended = ends.any(0)
    last_end = len(ends) - 1 - ends[::-1].argmax(0)
    return np.where(ended, last_end + 1, 0)


def train(make_envs: VectorEnvFactory, config: REINFORCEConfig, run_dir: Path,
          metadata: dict[str, Any] | None = None, progress: bool = True,
          resume: dict[str, Any] | None = None,
          on_evaluation: EvaluationHook | None = None) -> dict[str, Any]:
    """Train REINFORCE; write checkpoint.pt, best.pt, metrics.csv, episodes.jsonl and run.json
    into `run_dir`. `resume`: a checkpoint of this run to continue exactly where it was written."""
    torch.set_num_threads(torch_threads_for(config.torch_threads))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    run = OnPolicyRun("reinforce", config, make_envs, run_dir, metadata,
                      ["policy_loss", "baseline_loss", "episodes_per_batch", "dropped_steps"],
                      resume, on_evaluation=on_evaluation)
    agent = ActorCritic(run.obs_size, run.action_size, config.hidden_sizes,
                        config.initial_log_std, run.image_shape)
    policy_parameters = [*agent.actor.parameters(), agent.log_std]
    policy_optimizer = torch.optim.Adam(policy_parameters, lr=config.learning_rate, foreach=True)
    baseline_optimizer = torch.optim.Adam(agent.critic.parameters(),
                                          lr=config.baseline_learning_rate, foreach=True)
    run.keep(agent, {"policy": policy_optimizer, "baseline": baseline_optimizer}, rng)

    run.begin(config.seed)
    iteration = run.first_iteration
    with TrainingProgress(config.total_steps, "REINFORCE", enabled=progress) as bar:
        bar.update(run.steps, run.stats)
        while run.steps < config.total_steps:
            learning_rate = learning_rate_at(config, run.steps / config.total_steps)
            set_learning_rate(policy_optimizer, learning_rate)
            set_learning_rate(baseline_optimizer, config.baseline_learning_rate
                              * learning_rate / config.learning_rate)

            # -- whole episodes --------------------------------------------------------------
            obs = run.reset()
            rollout, obs = run.collect(
                obs, config.max_episode_steps, bootstrap_time_limits=False,
                stop=lambda ends: finished_steps(ends).sum() >= config.batch_steps)
            kept = finished_steps(rollout.ends)
            if not kept.any():
                run.close()
                raise ValueError(f"no episode finished within max_episode_steps="
                                 f"{config.max_episode_steps}; set it to at least the env's "
                                 "episode length")
            keep = np.arange(len(rollout.ends))[:, None] < kept[None, :]
            # Reward-to-go: GAE with lambda 1 and no values is the discounted sum to the end.
            reward_to_go, _ = compute_gae(rollout.rewards, np.zeros_like(rollout.values),
                                          rollout.ends, np.zeros_like(rollout.next_value),
                                          config.gamma, 1.0)
            b_obs, b_act, b_ret = (torch.as_tensor(a[keep]) for a in (
                rollout.obs, rollout.actions, reward_to_go))
            b_pixels = None if rollout.pixels is None else torch.as_tensor(rollout.pixels[keep])

            # -- the policy step ------------------------------------------------------------
            with torch.no_grad():
                features = agent.features(b_obs, b_pixels)
                advantages = b_ret - agent.value(features) if config.baseline else b_ret.clone()
            if config.normalize_advantage:
                advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
            policy_loss = -(advantages * agent.log_prob(b_act, agent.actor(features))).mean()
            run.check_finite(policy_loss)
            policy_optimizer.zero_grad(set_to_none=True)
            policy_loss.backward()
            nn.utils.clip_grad_norm_(policy_parameters, config.max_grad_norm, foreach=True)
            policy_optimizer.step()

            # -- the baseline's regression to the reward-to-go ------------------------------
            baseline_loss = torch.zeros(())
            if config.baseline:
                for _ in range(config.baseline_epochs):
                    order = torch.as_tensor(rng.permutation(len(b_ret)))
                    for begin in range(0, len(order), config.baseline_minibatch_size):
                        part = order[begin:begin + config.baseline_minibatch_size]
                        baseline_loss = (agent.value(features[part]) - b_ret[part]).square().mean()
                        run.check_finite(baseline_loss)
                        baseline_optimizer.zero_grad(set_to_none=True)
                        baseline_loss.backward()
                        baseline_optimizer.step()

            run.after_iteration(iteration, run.steps >= config.total_steps, obs, {
                "policy_loss": policy_loss.detach(), "baseline_loss": baseline_loss.detach(),
                "episodes_per_batch": float(rollout.ends[keep].sum()),
                "dropped_steps": float((~keep).sum())}, learning_rate, bar)
            iteration += 1
    return run.finish()


def load_policy(checkpoint: dict[str, Any]) -> DeterministicPolicy:
    """The deterministic policy (normalizer + actor mean, clipped) of a REINFORCE checkpoint."""
    return load_actor_critic(REINFORCEConfig, checkpoint)
