"""Trust Region Policy Optimization (Schulman et al. 2015), in one file.

Reads top to bottom: config, the two pieces of a trust-region step (conjugate gradient, the
natural-gradient step with its backtracking line search), the training loop. Each iteration
collects a rollout on vector envs, computes GAE advantages, then
- the policy: maximise the surrogate L = mean(ratio * advantage) subject to the mean
  KL(old || new) <= target_kl. The direction is F^-1 g (g the surrogate's gradient, F the Fisher
  matrix, i.e. the Hessian of the KL), solved by conjugate gradient from Hessian-vector products
  of the KL without ever forming F; the step is scaled so the quadratic model of the KL meets the
  bound, then shrunk (by line_search_shrink a try) until the MEASURED KL is within the bound and
  the surrogate improves, or left out if no fraction does;
- the value function: a few epochs of Adam regression to the returns.
The actor-critic, rollout collection and a run's records are shared with PPO, A2C and REINFORCE
(policies/onpolicy.py). Defaults are sb3-contrib's TRPO's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils import parameters_to_vector, vector_to_parameters

from policies.core import DeterministicPolicy, VectorEnvFactory
from policies.cores import torch_threads_for
from policies.onpolicy import OnPolicyRun, compute_gae
from policies.onpolicy_networks import ActorCritic, load_actor_critic
from policies.records import TrainingProgress
from policies.run import EvaluationHook
from policies.settings import check_settings


@dataclass
class TRPOConfig:
    total_steps: int = 200_000
    """Environment steps to train for (summed over the vector envs)."""
    num_envs: int = 8
    """Envs stepped together in one process."""
    rollout_steps: int = 256
    """Steps per env between updates; a rollout holds num_envs * rollout_steps transitions."""
    gamma: float = 0.99
    gae_lambda: float = 0.95
    target_kl: float = 0.01
    """The trust region: the largest mean KL(old || new) a policy step may make."""
    cg_iterations: int = 15
    """Conjugate-gradient iterations solving F x = g."""
    cg_damping: float = 0.1
    """Added to F's diagonal: keeps the solve stable where the KL is flat."""
    line_search_shrink: float = 0.8
    """Factor the step is shrunk by each time the line search rejects it."""
    line_search_steps: int = 10
    normalize_advantage: bool = True
    critic_learning_rate: float = 1e-3
    critic_epochs: int = 10
    """Passes of the value regression over each rollout."""
    critic_minibatch_size: int = 128
    hidden_sizes: tuple[int, ...] = (64, 64)
    initial_log_std: float = 0.0
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

    def __post_init__(self) -> None:
        check_settings(self)


def conjugate_gradient(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor,
                       iterations: int, tolerance: float = 1e-10) -> torch.Tensor:
    """x with matvec(x) ~= b for a symmetric positive-definite operator, from products with it
    alone (Hestenes and Stiefel 1952); exact after as many iterations as b has entries."""
    x = torch.zeros_like(b)
    residual, direction = b.clone(), b.clone()
    residual_norm = residual @ residual
    for _ in range(iterations):
        product = matvec(direction)
        step = residual_norm / (direction @ product)
        x += step * direction
        residual -= step * product
        new_norm = residual @ residual
        if new_norm < tolerance:
            break
        direction = residual + (new_norm / residual_norm) * direction
        residual_norm = new_norm
    return x


def gaussian_kl(old_mean: torch.Tensor, old_log_std: torch.Tensor, mean: torch.Tensor,
                log_std: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of KL(old || new) between diagonal Gaussians, summed over dims."""
    kl = (log_std - old_log_std
          + (torch.exp(2 * old_log_std) + (old_mean - mean).square()) / (2 * torch.exp(2 * log_std))
          - 0.5)
    return kl.sum(-1).mean()


@dataclass
class TrustRegionStep:
    """What one policy step did: the surrogate before it, the KL it measured after the step (0
    if none was taken), the surrogate's improvement, how many times the line search shrank it,
    and whether it moved."""
    surrogate: float
    kl: float
    improvement: float
    shrinks: int
    accepted: bool


def trust_region_step(agent: ActorCritic, features: torch.Tensor, actions: torch.Tensor,
                      advantages: torch.Tensor, old_log_probs: torch.Tensor, config: TRPOConfig,
                      ) -> TrustRegionStep:
    """Move the actor's weights and log-std by the natural gradient of the surrogate, within
    the KL bound, checked by measuring; leave them as they were if no step passes."""
    parameters = [*agent.actor.parameters(), agent.log_std]
    with torch.no_grad():
        old_mean, old_log_std = agent.actor(features), agent.log_std.clone()

    def surrogate() -> torch.Tensor:
        log_ratio = agent.log_prob(actions, agent.actor(features)) - old_log_probs
        return (log_ratio.exp() * advantages).mean()

    def kl() -> torch.Tensor:
        return gaussian_kl(old_mean, old_log_std, agent.actor(features), agent.log_std)

    old_surrogate = surrogate()
    gradient = parameters_to_vector(torch.autograd.grad(old_surrogate, parameters))
    kl_gradient = parameters_to_vector(torch.autograd.grad(kl(), parameters, create_graph=True))

    def fisher_product(vector: torch.Tensor) -> torch.Tensor:
        # The Hessian of the KL times `vector`: the gradient of (grad KL . vector).
        hessian_vector = torch.autograd.grad(kl_gradient @ vector, parameters, retain_graph=True)
        return parameters_to_vector(hessian_vector) + config.cg_damping * vector

    direction = conjugate_gradient(fisher_product, gradient, config.cg_iterations)
    curvature = direction @ fisher_product(direction)
    old_parameters = parameters_to_vector(parameters).detach()
    if not (curvature > 0 and torch.isfinite(curvature)):
        return TrustRegionStep(old_surrogate.item(), 0.0, 0.0, 0, False)
    # The step whose quadratic KL model 0.5 s^T F s equals target_kl.
    full_step = torch.sqrt(2 * config.target_kl / curvature) * direction
    with torch.no_grad():
        old_value = old_surrogate.item()
        for shrinks in range(config.line_search_steps):
            vector_to_parameters(old_parameters + config.line_search_shrink ** shrinks * full_step,
                                 parameters)
            measured_kl, improvement = kl().item(), surrogate().item() - old_value
            if measured_kl <= config.target_kl and improvement > 0:
                return TrustRegionStep(old_value, measured_kl, improvement, shrinks, True)
        vector_to_parameters(old_parameters, parameters)
    return TrustRegionStep(old_value, 0.0, 0.0, config.line_search_steps, False)


def train(make_envs: VectorEnvFactory, config: TRPOConfig, run_dir: Path,
          metadata: dict[str, Any] | None = None, progress: bool = True,
          resume: dict[str, Any] | None = None,
          on_evaluation: EvaluationHook | None = None) -> dict[str, Any]:
    """Train TRPO; write checkpoint.pt, best.pt, metrics.csv, episodes.jsonl and run.json into
    `run_dir`. `resume`: a checkpoint of this run to continue exactly where it was written."""
    torch.set_num_threads(torch_threads_for(config.torch_threads))
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    run = OnPolicyRun("trpo", config, make_envs, run_dir, metadata,
                      ["surrogate_gain", "kl", "line_search_shrinks", "value_loss"],
                      resume, on_evaluation=on_evaluation)
    if run.image_shape is not None:
        run.close()
        raise ValueError("TRPO takes flat observations; train from camera images with PPO")
    agent = ActorCritic(run.obs_size, run.action_size, config.hidden_sizes,
                        config.initial_log_std)
    critic_optimizer = torch.optim.Adam(agent.critic.parameters(), lr=config.critic_learning_rate,
                                        foreach=True)
    run.keep(agent, {"critic": critic_optimizer}, rng)

    batch = config.num_envs * config.rollout_steps
    iterations = max(1, -(-config.total_steps // batch))
    obs = run.begin(config.seed)
    with TrainingProgress(iterations * batch, "TRPO", enabled=progress) as bar:
        bar.update(run.steps, run.stats)
        for iteration in range(run.first_iteration, iterations + 1):
            rollout, obs = run.collect(obs, config.rollout_steps)
            advantages, returns = compute_gae(rollout.rewards, rollout.values, rollout.ends,
                                              rollout.next_value, config.gamma, config.gae_lambda)
            b_obs, b_act, b_logp, b_adv, b_ret = rollout.flat(
                rollout.obs, rollout.actions, rollout.log_probs, advantages, returns)
            if config.normalize_advantage:
                b_adv = (b_adv - b_adv.mean()) / (b_adv.std() + 1e-8)

            step = trust_region_step(agent, b_obs, b_act, b_adv, b_logp, config)
            run.check_finite(torch.tensor(step.surrogate))

            for _ in range(config.critic_epochs):
                order = torch.as_tensor(rng.permutation(batch))
                for begin in range(0, batch, config.critic_minibatch_size):
                    part = order[begin:begin + config.critic_minibatch_size]
                    value_loss = (agent.value(b_obs[part]) - b_ret[part]).square().mean()
                    run.check_finite(value_loss)
                    critic_optimizer.zero_grad(set_to_none=True)
                    value_loss.backward()
                    critic_optimizer.step()

            run.after_iteration(iteration, iteration == iterations, obs, {
                "surrogate_gain": step.improvement, "kl": step.kl,
                "line_search_shrinks": step.shrinks, "value_loss": value_loss.detach()},
                config.critic_learning_rate, bar)
    return run.finish()


def load_policy(checkpoint: dict[str, Any]) -> DeterministicPolicy:
    """The deterministic policy (normalizer + actor mean, clipped) of a TRPO checkpoint."""
    return load_actor_critic(TRPOConfig, checkpoint)
