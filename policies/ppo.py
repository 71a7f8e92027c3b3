"""Proximal Policy Optimization (Schulman et al. 2017) for continuous actions, in one file.

Reads top to bottom: config, the training loop (collect a rollout on vector envs, GAE, then
several epochs of clipped-surrogate minibatch updates). The actor-critic, rollout collection and
a run's records are shared with A2C, TRPO and REINFORCE (policies/onpolicy.py). Pixel
observations go through the CNN encoder of policies/encoders.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from policies.compiled import (
    Adam,
    clip_grad_norm,
    compile_update,
    gradients,
    parameters_of,
    should_compile,
)
from policies.core import DeterministicPolicy, VectorEnvFactory
from policies.cores import torch_threads_for
from policies.encoders import PixelPolicy
from policies.onpolicy import OnPolicyRun, RewardScaler, compute_gae, learning_rate_at
from policies.onpolicy_networks import ActorCritic, load_actor_critic
from policies.records import TrainingProgress
from policies.run import EvaluationHook
from policies.settings import check_settings

__all__ = ["ActorCritic", "PPOConfig", "compute_gae", "load_policy", "train"]


@dataclass
class PPOConfig:
    total_steps: int = 200_000
    """Environment steps to train for (summed over the vector envs)."""
    num_envs: int = 16
    """Envs stepped together in one process."""
    rollout_steps: int = 64
    """Steps per env between updates; a rollout holds num_envs * rollout_steps transitions."""
    epochs: int = 10
    """Passes over each rollout."""
    minibatch_size: int = 128
    """With 10 epochs: 80 updates a rollout of 16 x 64 steps. Fewer (5 epochs of 256, the
    defaults before) left InvertedPendulum-v5 unsolved at 50k steps (evaluated 84-383, where
    SB3's defaults reach 1000); these solve it on 5 of 5 seeds in 9.6 s."""
    learning_rate: float = 3e-4
    anneal_lr: bool = True
    """Decay the learning rate linearly to zero over training."""
    gamma: float = 0.98
    gae_lambda: float = 0.95
    scale_rewards: bool = False
    """Divide rewards by the running std of the discounted return (onpolicy.RewardScaler): for
    tasks whose rewards come in large or drifting units. Off by default, as in
    Stable-Baselines3; RL Zoo turns it on (VecNormalize) for MuJoCo locomotion."""
    clip_coef: float = 0.2
    """Clip range of the probability ratio in the surrogate objective."""
    entropy_coef: float = 0.0
    value_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden_sizes: tuple[int, ...] = (128, 128)
    initial_log_std: float = -0.5
    image_features: int = 128
    """Features the CNN encoder makes of a camera image (pixel observations only)."""
    seed: int = 0
    checkpoint_every: int = 20
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
    compile: str = "auto"
    """Compile the minibatch update into one graph: "auto" (from MIN_UPDATES_TO_COMPILE
    minibatch updates in the run), "always", "never" (policies/compiled.py)."""

    def __post_init__(self) -> None:
        check_settings(self)


MIN_UPDATES_TO_COMPILE = 8_000
"""Measured on reach (128x128 MLPs, one thread): a minibatch update takes 2.9 ms eager and 1.45 ms
compiled; compiling costs 3.4 s with a warm cache (/tmp/torchinductor_*) and 21 s cold, once.
From 8,000 updates the warm compile pays twice over; the first, cold one costs ~9 s more."""


def train(make_envs: VectorEnvFactory, config: PPOConfig, run_dir: Path,
          metadata: dict[str, Any] | None = None, progress: bool = True,
          resume: dict[str, Any] | None = None,
          on_evaluation: EvaluationHook | None = None) -> dict[str, Any]:
    """Train PPO; write checkpoint.pt, best.pt, metrics.csv, episodes.jsonl and run.json into
    `run_dir`. `resume`: a checkpoint of this run to continue exactly where it was written."""
    torch.set_num_threads(torch_threads_for(config.torch_threads))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    run = OnPolicyRun("ppo", config, make_envs, run_dir, metadata,
                      ["policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"],
                      resume, on_evaluation=on_evaluation)
    agent = ActorCritic(run.obs_size, run.action_size, config.hidden_sizes,
                        config.initial_log_std, run.image_shape, config.image_features)
    params = parameters_of(agent)
    optimizer = Adam(params, lr=config.learning_rate, eps=1e-5)
    run.keep(agent, {"policy": optimizer}, rng,
             RewardScaler(config.num_envs, config.gamma) if config.scale_rewards else None)

    batch = config.num_envs * config.rollout_steps
    iterations = max(1, -(-config.total_steps // batch))  # at least total_steps

    # -- the minibatch update ----------------------------------------------------------------
    @torch.no_grad()  # gradients come from compiled.gradients, for the parameters being trained
    def update(obs: torch.Tensor, pixels: torch.Tensor | None, action: torch.Tensor,
               old_log_prob: torch.Tensor, advantage: torch.Tensor,
               returns: torch.Tensor) -> dict[str, torch.Tensor]:
        """One clipped-surrogate step on a minibatch of normalized observations (and images).
        Returns the losses as tensors (no .item() inside: the step compiles as one graph)."""
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)

        def loss_of(params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
            mean, value = functional_call(agent, params, (obs, pixels))
            log_ratio = agent.log_prob(action, mean, params["log_std"]) - old_log_prob
            ratio = log_ratio.exp()
            policy_loss = torch.max(
                -advantage * ratio,
                -advantage * torch.clamp(ratio, 1 - config.clip_coef, 1 + config.clip_coef),
            ).mean()
            value_loss = 0.5 * (value - returns).square().mean()
            entropy = agent.entropy(params["log_std"])
            loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy
            return loss, {"policy_loss": policy_loss, "value_loss": value_loss,
                          "entropy": entropy, "approx_kl": ((ratio - 1) - log_ratio).mean(),
                          "clip_fraction": ((ratio - 1).abs() > config.clip_coef).float().mean()}

        grads, (loss, losses) = gradients(loss_of, params, has_aux=True)
        optimizer.step(clip_grad_norm(grads, config.max_grad_norm))
        return {"loss": loss, **losses}

    learn = compile_update(update, should_compile(
        config.compile, iterations * config.epochs * -(-batch // config.minibatch_size),
        MIN_UPDATES_TO_COMPILE))

    # -- the training loop ---------------------------------------------------------------------
    obs = run.begin(config.seed)
    with TrainingProgress(iterations * batch, "PPO", enabled=progress) as bar:
        bar.update(run.steps, run.stats)
        for iteration in range(run.first_iteration, iterations + 1):
            learning_rate = learning_rate_at(config, (iteration - 1) / iterations)
            optimizer.set_learning_rate(learning_rate)
            rollout, obs = run.collect(obs, config.rollout_steps)
            advantages, returns = compute_gae(rollout.rewards, rollout.values, rollout.ends,
                                              rollout.next_value, config.gamma, config.gae_lambda)

            # Update: several epochs of minibatches.
            b_obs, b_act, b_logp, b_adv, b_ret = rollout.flat(
                rollout.obs, rollout.actions, rollout.log_probs, advantages, returns)
            b_pixels = None if rollout.pixels is None else rollout.flat(rollout.pixels)[0]
            steps = []
            for _ in range(config.epochs):
                # Shuffle the whole rollout once per epoch; each minibatch is then a slice, a
                # view, not a gather.
                order = torch.as_tensor(rng.permutation(batch))
                e_obs, e_act, e_logp, e_adv, e_ret = (
                    x[order] for x in (b_obs, b_act, b_logp, b_adv, b_ret))
                e_pixels = None if b_pixels is None else b_pixels[order]
                for begin in range(0, batch, config.minibatch_size):
                    part = slice(begin, begin + config.minibatch_size)
                    losses = learn(e_obs[part], None if e_pixels is None else e_pixels[part],
                                   e_act[part], e_logp[part], e_adv[part], e_ret[part])
                    run.check_finite(losses["loss"])
                    steps.append(losses)

            # Logged: the last minibatch's losses, the KL and clip fraction over all of them.
            run.after_iteration(iteration, iteration == iterations, obs, {
                **{name: steps[-1][name] for name in ("policy_loss", "value_loss", "entropy")},
                **{name: torch.stack([s[name] for s in steps]).mean()
                   for name in ("approx_kl", "clip_fraction")}}, learning_rate, bar)
    return run.finish()


def load_policy(checkpoint: dict[str, Any]) -> DeterministicPolicy | PixelPolicy:
    """The deterministic policy (normalizer + actor mean, clipped; with the image encoder for
    pixel observations) of a PPO checkpoint."""
    return load_actor_critic(PPOConfig, checkpoint)
