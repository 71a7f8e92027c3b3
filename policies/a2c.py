"""Advantage Actor-Critic (A2C; the synchronous A3C of Mnih et al. 2016), in one file.

Reads top to bottom: config, the training loop. Each iteration collects a short rollout from
every vector-env copy, computes n-step (gae_lambda = 1) or GAE (gae_lambda < 1) advantages, and
takes ONE gradient step on policy gradient + value regression - entropy bonus. The actor-critic,
rollout collection and a run's records are shared with PPO, TRPO and REINFORCE
(policies/onpolicy.py). Losses and defaults are Stable-Baselines3's, so the two compare on equal
settings (benchmarks/rl_vs_sb3.py).
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

OPTIMIZERS = ("rmsprop", "adam")


@dataclass
class A2CConfig:
    total_steps: int = 200_000
    """Environment steps to train for (summed over the vector envs)."""
    num_envs: int = 16
    """Envs stepped together in one process."""
    rollout_steps: int = 5
    """Steps per env between updates: the n of n-step returns."""
    learning_rate: float = 7e-4
    anneal_lr: bool = False
    """Decay the learning rate linearly to zero over training."""
    optimizer: str = "rmsprop"
    """"rmsprop" (the paper's, alpha 0.99, eps 1e-5 as Stable-Baselines3) or "adam"."""
    gamma: float = 0.99
    gae_lambda: float = 1.0
    """1: plain n-step returns; below 1: generalized advantage estimation."""
    normalize_advantage: bool = False
    entropy_coef: float = 0.0
    value_coef: float = 0.5
    """Weight of the value loss, the mean squared error to the returns."""
    max_grad_norm: float = 0.5
    hidden_sizes: tuple[int, ...] = (64, 64)
    initial_log_std: float = 0.0
    seed: int = 0
    checkpoint_every: int = 500
    """Iterations between checkpoints (one is always written at the end)."""
    checkpoint_seconds: float = 60.0
    """Seconds of training after which a checkpoint is written too (0: none by time): a
    killed run loses at most about this much."""
    eval_every: int = 500
    """Iterations between evaluations of the deterministic policy (0: none); the best is kept
    as best.pt."""
    eval_episodes: int = 10
    log_every: int = 1_000
    """Env steps between rows of metrics.csv."""
    torch_threads: int = 1
    """Small MLPs run fastest on one thread; the other core is left to the envs."""

    def __post_init__(self) -> None:
        check_settings(self, optimizer=OPTIMIZERS)


def make_optimizer(name: str, parameters: list[nn.Parameter], learning_rate: float,
                   ) -> torch.optim.Optimizer:
    """`name` is one of OPTIMIZERS (A2CConfig checks it)."""
    if name == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=learning_rate, alpha=0.99, eps=1e-5,
                                   foreach=True)
    return torch.optim.Adam(parameters, lr=learning_rate, eps=1e-5, foreach=True)


def train(make_envs: VectorEnvFactory, config: A2CConfig, run_dir: Path,
          metadata: dict[str, Any] | None = None, progress: bool = True,
          resume: dict[str, Any] | None = None,
          on_evaluation: EvaluationHook | None = None) -> dict[str, Any]:
    """Train A2C; write checkpoint.pt, best.pt, metrics.csv, episodes.jsonl and run.json into
    `run_dir`. `resume`: a checkpoint of this run to continue exactly where it was written."""
    torch.set_num_threads(torch_threads_for(config.torch_threads))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    run = OnPolicyRun("a2c", config, make_envs, run_dir, metadata,
                      ["policy_loss", "value_loss", "entropy"], resume, on_evaluation=on_evaluation)
    agent = ActorCritic(run.obs_size, run.action_size, config.hidden_sizes,
                        config.initial_log_std, run.image_shape)
    parameters = list(agent.parameters())
    optimizer = make_optimizer(config.optimizer, parameters, config.learning_rate)
    run.keep(agent, {"policy": optimizer}, rng)

    batch = config.num_envs * config.rollout_steps
    iterations = max(1, -(-config.total_steps // batch))
    obs = run.begin(config.seed)
    with TrainingProgress(iterations * batch, "A2C", enabled=progress) as bar:
        bar.update(run.steps, run.stats)
        for iteration in range(run.first_iteration, iterations + 1):
            learning_rate = learning_rate_at(config, (iteration - 1) / iterations)
            set_learning_rate(optimizer, learning_rate)
            rollout, obs = run.collect(obs, config.rollout_steps)
            advantages, returns = compute_gae(rollout.rewards, rollout.values, rollout.ends,
                                              rollout.next_value, config.gamma, config.gae_lambda)

            # -- one gradient step on the whole rollout ---------------------------------------
            b_obs, b_act, b_adv, b_ret = rollout.flat(rollout.obs, rollout.actions, advantages,
                                                      returns)
            b_pixels = None if rollout.pixels is None else rollout.flat(rollout.pixels)[0]
            if config.normalize_advantage:
                b_adv = (b_adv - b_adv.mean()) / (b_adv.std() + 1e-8)
            features = agent.features(b_obs, b_pixels)
            # Log-probabilities under the current weights, which drew these actions: the plain
            # policy gradient, no ratio (one step per rollout).
            policy_loss = -(b_adv * agent.log_prob(b_act, agent.actor(features))).mean()
            value_loss = (agent.value(features) - b_ret).square().mean()
            entropy = agent.entropy()
            loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
            run.check_finite(loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, config.max_grad_norm, foreach=True)
            optimizer.step()

            run.after_iteration(iteration, iteration == iterations, obs, {
                "policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy},
                learning_rate, bar)
    return run.finish()


def load_policy(checkpoint: dict[str, Any]) -> DeterministicPolicy:
    """The deterministic policy (normalizer + actor mean, clipped) of an A2C checkpoint."""
    return load_actor_critic(A2CConfig, checkpoint)
