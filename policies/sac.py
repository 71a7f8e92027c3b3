"""Soft Actor-Critic (Haarnoja et al. 2018, with the automatic temperature of the follow-up
paper "Soft Actor-Critic Algorithms and Applications"), for continuous actions, in one file.

Reads top to bottom: config, networks (a tanh-squashed Gaussian actor, twin Q critics), the
update step, the training loop (act, store, update). Defaults are Stable-Baselines3's / RL Zoo's.
Observations are stored raw in the replay buffer and normalized at sampling time by a running
normalizer that is saved with the policy and exported inside the ONNX graph.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from policies.compiled import Adam, gradients, parameters_of
from policies.core import (
    DeterministicPolicy,
    RunningNormalizer,
    VectorEnvFactory,
)
from policies.hindsight import make_replay_buffer
from policies.offpolicy import OffPolicyRun, flushing_subnormals
from policies.offpolicy_networks import Critics, relu_mlp, soft_update, use_matmul_precision
from policies.records import TrainingProgress, config_of_checkpoint
from policies.run import EvaluationHook
from policies.settings import check_settings


@dataclass
class SACConfig:
    total_steps: int = 100_000
    """Environment steps to train for (summed over the vector envs)."""
    num_envs: int = 1
    """Envs stepped together; each vector step adds num_envs transitions to the buffer."""
    buffer_size: int = 1_000_000
    """Transitions the replay buffer holds; the oldest are overwritten."""
    hindsight_goals: int = 0
    """k of hindsight experience replay (policies/hindsight.py): k relabelled transitions for
    each real one, their goals achieved later in the same episode ("future"); 4 in the HER paper.
    Needs a goal-conditioned env (our reach and push, the Fetch tasks). 0: off."""
    batch_size: int = 256
    learning_starts: int = 100
    """Env steps of uniformly random actions before the first update."""
    train_freq: int = 1
    """Vector-env steps between rounds of updates."""
    gradient_steps: int = 1
    """Updates per round; with num_envs > 1 set it to num_envs to keep one update per transition."""
    actor_learning_rate: float = 3e-4
    critic_learning_rate: float = 3e-4
    alpha_learning_rate: float = 3e-4
    anneal_lr: bool = False
    """Decay the learning rates linearly to zero over total_steps (the schedule RL Zoo writes
    `lin_<rate>`); off by default: a constant rate, Stable-Baselines3's default."""
    gamma: float = 0.99
    tau: float = 0.005
    """Polyak coefficient of the target critics: target <- (1 - tau) target + tau critic."""
    alpha: float | None = None
    """Fixed entropy temperature; None tunes it automatically towards target_entropy."""
    initial_alpha: float = 1.0
    """Starting temperature when it is tuned automatically."""
    target_entropy: float | None = None
    """Entropy the tuned temperature aims for; None means -action_size."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    normalize_obs: bool = True
    """Keep updating the running observation normalizer (otherwise it stays the identity)."""
    seed: int = 0
    log_every: int = 1_000
    """Env steps between rows of metrics.csv."""
    checkpoint_every: int = 10_000
    """Env steps between checkpoints (one is always written at the end)."""
    checkpoint_seconds: float = 60.0
    """Seconds of training after which a checkpoint is written too (0: none by time): a
    killed run loses at most about this much."""
    eval_every: int = 10_000
    """Env steps between evaluations of the deterministic policy (0: none); the best is kept
    as best.pt."""
    eval_episodes: int = 10
    compile: str = "auto"
    """Compile the update into one graph: "auto" (runs of 8,000+ updates), "always", "never".
    About 2x faster an update after a one-off 5-30 s compile (policies/compiled.py)."""
    matmul_precision: str = "fp32"
    """"bf16" multiplies the hidden layers in bfloat16 during training (opt-in: it changes the
    numbers; a compiled update 10-25 % shorter here, on a CPU with AVX512_BF16; slower on one
    without). The exported policy computes in fp32 either way (policies/offpolicy_networks.py)."""
    torch_threads: int = 0
    """Threads for the updates, which bound off-policy speed. 0: every core the process may
    use, dropping to one for the rest of the run when other processes keep half a core busy
    (policies/cores.py: two threads wait on each other then). Two take an SAC update from 4.2
    to 3.0 ms on an idle 2-core machine."""

    def __post_init__(self) -> None:
        check_settings(self)


LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class Actor(nn.Module):
    """A Gaussian over pre-tanh actions; the action is its sample squashed by tanh."""

    def __init__(self, obs_size: int, action_size: int, hidden_sizes: tuple[int, ...]) -> None:
        super().__init__()
        self.trunk = nn.Sequential(relu_mlp([obs_size, *hidden_sizes]), nn.ReLU())
        self.mean = nn.Linear(hidden_sizes[-1], action_size)
        self.log_std = nn.Linear(hidden_sizes[-1], action_size)

    def forward(self, norm_obs: torch.Tensor, noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(action, log-probability) for standard-normal `noise` drawn by the caller, so the
        update step holds no random number generation (DESIGN.md: cheaper when compiled)."""
        hidden = self.trunk(norm_obs)
        mean = self.mean(hidden)
        log_std = self.log_std(hidden).clamp(LOG_STD_MIN, LOG_STD_MAX)
        pre_tanh = mean + log_std.exp() * noise
        log_prob = -0.5 * noise.square() - log_std - 0.5 * math.log(2 * math.pi)
        # Change of variables through tanh: log(1 - tanh(u)^2), written to stay finite for large |u|.
        log_prob = log_prob - 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
        return torch.tanh(pre_tanh), log_prob.sum(-1)

    def deterministic(self) -> nn.Module:
        """The mean before tanh (DeterministicPolicy applies the tanh); shares the weights."""
        return nn.Sequential(self.trunk, self.mean)


class SACAgent(nn.Module):
    def __init__(self, obs_size: int, action_size: int, config: SACConfig) -> None:
        super().__init__()
        hidden = tuple(config.hidden_sizes)
        self.normalizer = RunningNormalizer(obs_size)
        self.actor = Actor(obs_size, action_size, hidden)
        self.critics = Critics(obs_size, action_size, hidden, count=2)
        self.critics_target = copy.deepcopy(self.critics).requires_grad_(False)
        alpha = config.initial_alpha if config.alpha is None else config.alpha
        self.log_alpha = nn.Parameter(torch.tensor(math.log(alpha)),
                                      requires_grad=config.alpha is None)

    def deterministic_policy(self) -> DeterministicPolicy:
        return DeterministicPolicy(self.normalizer, self.actor.deterministic(), squash="tanh")


@flushing_subnormals
def train(make_envs: VectorEnvFactory, config: SACConfig, run_dir: Path,
          metadata: dict[str, Any] | None = None, progress: bool = True,
          resume: dict[str, Any] | None = None,
          on_evaluation: EvaluationHook | None = None) -> dict[str, Any]:
    """Train SAC; write checkpoint.pt, best.pt, metrics.csv, episodes.jsonl and run.json into
    `run_dir`. `resume`: a checkpoint of this run to continue exactly where it was written."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    run = OffPolicyRun("sac", config, make_envs, run_dir, metadata,
                       ["critic_loss", "actor_loss", "alpha_loss", "alpha", "entropy", "q_mean"],
                       resume, on_evaluation=on_evaluation)
    envs, obs_size, action_size = run.envs, run.obs_size, run.action_size
    agent = SACAgent(obs_size, action_size, config)
    use_matmul_precision(agent, config.matmul_precision)
    actor_params, critic_params = parameters_of(agent.actor), parameters_of(agent.critics)
    actor_optimizer = Adam(actor_params, lr=config.actor_learning_rate)
    critic_optimizer = Adam(critic_params, lr=config.critic_learning_rate)
    alpha_optimizer = Adam({"log_alpha": agent.log_alpha}, lr=config.alpha_learning_rate)
    target_entropy = (-float(action_size) if config.target_entropy is None
                      else config.target_entropy)
    buffer = make_replay_buffer(config, envs, obs_size, action_size)

    # -- the update step -----------------------------------------------------------------------
    @torch.no_grad()  # gradients come from compiled.gradients, only for the parameters being trained
    def update(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One gradient step of the critics, the actor and the temperature on a batch whose
        observations are normalized and whose noises are drawn. Returns the losses as tensors
        (no .item() inside: the step compiles as one graph)."""
        obs, action, next_obs = batch["obs"], batch["action"], batch["next_obs"]
        alpha = agent.log_alpha.exp()

        # Critics: soft Bellman target from the target critics, no bootstrap past termination.
        next_action, next_log_prob = agent.actor(next_obs, batch["next_noise"])
        next_q = agent.critics_target(next_obs, next_action).min(0).values
        target = batch["reward"] + config.gamma * (1.0 - batch["terminated"]) * (
            next_q - alpha * next_log_prob)

        def critic_loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
            q = functional_call(agent.critics, params, (obs, action))
            return 0.5 * (q - target).square().mean(-1).sum()

        grads, critic_loss_value = gradients(critic_loss, critic_params)
        critic_optimizer.step(grads)

        # Actor: maximise Q - alpha * log pi through the reparameterised sample. The critics are
        # constants of this loss: the gradient reaches the actions, not the critics' weights.
        def actor_loss(params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, tuple]:
            new_action, log_prob = functional_call(agent.actor, params, (obs, batch["noise"]))
            q_new = agent.critics(obs, new_action).min(0).values
            return (alpha * log_prob - q_new).mean(), (log_prob, q_new)

        grads, (actor_loss_value, (log_prob, q_new)) = gradients(actor_loss, actor_params, has_aux=True)
        actor_optimizer.step(grads)

        # Temperature: raise alpha when the policy's entropy is below the target, lower it
        # above. The loss is -log_alpha * (log_prob + target_entropy), its gradient written out.
        entropy_gap = log_prob.mean() + target_entropy
        alpha_loss = -agent.log_alpha * entropy_gap
        if config.alpha is None:
            alpha_optimizer.step({"log_alpha": -entropy_gap})

        soft_update(agent.critics_target, agent.critics, config.tau)
        return {"critic_loss": critic_loss_value, "actor_loss": actor_loss_value,
                "alpha_loss": alpha_loss, "alpha": alpha,
                "entropy": -log_prob.mean(), "q_mean": q_new.mean()}

    def sample() -> dict[str, torch.Tensor]:
        batch = buffer.sample(config.batch_size, rng)
        with torch.no_grad():
            batch["obs"] = agent.normalizer(batch["obs"])
            batch["next_obs"] = agent.normalizer(batch["next_obs"])
        batch["noise"] = torch.randn(config.batch_size, action_size)
        batch["next_noise"] = torch.randn(config.batch_size, action_size)
        return batch

    # What a checkpoint holds, to resume exactly.
    run.keep(agent, {"actor": actor_optimizer, "critic": critic_optimizer,
                     "alpha": alpha_optimizer}, buffer, rng)

    # -- the training loop ---------------------------------------------------------------------
    learn = run.compiled(update)
    obs = run.begin(config.seed)
    with TrainingProgress(run.vector_steps * config.num_envs, "SAC",
                          enabled=progress) as bar:
        for iteration in range(run.first_iteration, run.vector_steps + 1):
            # Act: uniformly random until learning starts, then a sample of the policy.
            obs = np.asarray(obs, dtype=np.float32)
            if config.normalize_obs:
                agent.normalizer.update(obs)
            if run.steps < config.learning_starts:
                action = envs.action_space.sample().astype(np.float32)
            else:
                with torch.no_grad():
                    norm_obs = agent.normalizer(torch.from_numpy(obs))
                    action = agent.actor(norm_obs, torch.randn(config.num_envs, action_size))[0]
                action = action.numpy()
            next_obs, reward, terminated, truncated, info = envs.step(action)
            buffer.add(obs, action, reward, next_obs, terminated, truncated, info)
            obs = next_obs
            run.record(info)

            # Learn.
            if run.steps >= config.learning_starts and iteration % config.train_freq == 0:
                for _ in range(config.gradient_steps):
                    run.learn(lambda: learn(sample()))

            run.after_iteration(iteration, obs, agent.deterministic_policy, bar)
    return run.finish()


def load_policy(checkpoint: dict[str, Any]) -> DeterministicPolicy:
    """The deterministic policy (normalizer + tanh of the actor's mean) of a SAC checkpoint."""
    config = config_of_checkpoint(SACConfig, checkpoint)
    agent = SACAgent(checkpoint["obs_size"], checkpoint["action_size"], config)
    agent.load_state_dict(checkpoint["agent"])
    return agent.deterministic_policy().eval()
