"""Deep Deterministic Policy Gradient (Lillicrap et al. 2016), for continuous actions, in one file.

Reads top to bottom: config, networks (a deterministic tanh actor, one Q critic), the update
step, the training loop (act with exploration noise, store, update). Every step updates the
critic, the actor and both targets. Defaults are Stable-Baselines3's / RL Zoo's (and those of
the "OurDDPG" baseline of the TD3 paper): one learning rate of 1e-3, batch 256, tau 0.005,
Gaussian exploration noise of std 0.1; the original paper's Ornstein-Uhlenbeck noise is an
option. Observations are stored raw in the replay buffer and normalized at sampling time by a
running normalizer that is exported inside the ONNX graph.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from policies.compiled import Adam, gradients, parameters_of
from policies.core import (
    DeterministicPolicy,
    RunningNormalizer,
    VectorEnvFactory,
)
from policies.exploration_noise import ACTION_NOISE, make_action_noise
from policies.hindsight import make_replay_buffer
from policies.offpolicy import OffPolicyRun, flushing_subnormals
from policies.offpolicy_networks import Critics, relu_mlp, soft_update, use_matmul_precision
from policies.records import TrainingProgress, config_of_checkpoint
from policies.run import EvaluationHook
from policies.settings import check_settings


@dataclass
class DDPGConfig:
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
    learning_starts: int = 1_000
    """Env steps of uniformly random actions before the first update. The TD3 paper's 1,000
    for small tasks (10,000 for HalfCheetah and Ant); with Stable-Baselines3's 100 the actor
    can saturate at +-1 on a critic fitted to too few transitions and never recover (measured
    on InvertedPendulum-v5: return 2 for 15k steps)."""
    train_freq: int = 1
    """Vector-env steps between rounds of updates."""
    gradient_steps: int = 1
    """Updates per round; with num_envs > 1 set it to num_envs to keep one update per transition."""
    actor_learning_rate: float = 1e-3
    critic_learning_rate: float = 1e-3
    anneal_lr: bool = False
    """Decay the learning rates linearly to zero over total_steps (the schedule RL Zoo writes
    `lin_<rate>`); off by default: a constant rate, Stable-Baselines3's default."""
    gamma: float = 0.99
    tau: float = 0.005
    """Polyak coefficient of the targets: target <- (1 - tau) target + tau online."""
    exploration_noise: str = "gaussian"
    """Noise added to the actor's action when collecting: "gaussian" or "ornstein_uhlenbeck"."""
    exploration_noise_std: float = 0.1
    """Std of the Gaussian noise, or sigma of the Ornstein-Uhlenbeck process (theta 0.15,
    dt 0.01, as Stable-Baselines3's)."""
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
        check_settings(self, exploration_noise=tuple(ACTION_NOISE))


class DDPGAgent(nn.Module):
    def __init__(self, obs_size: int, action_size: int, config: DDPGConfig) -> None:
        super().__init__()
        hidden = tuple(config.hidden_sizes)
        self.normalizer = RunningNormalizer(obs_size)
        # The actor outputs the action before tanh: DeterministicPolicy applies the tanh.
        self.actor = relu_mlp([obs_size, *hidden, action_size])
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic = Critics(obs_size, action_size, hidden, count=1)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)

    def act(self, norm_obs: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.actor(norm_obs))

    def deterministic_policy(self) -> DeterministicPolicy:
        return DeterministicPolicy(self.normalizer, self.actor, squash="tanh")


@flushing_subnormals
def train(make_envs: VectorEnvFactory, config: DDPGConfig, run_dir: Path,
          metadata: dict[str, Any] | None = None, progress: bool = True,
          resume: dict[str, Any] | None = None,
          on_evaluation: EvaluationHook | None = None) -> dict[str, Any]:
    """Train DDPG; write checkpoint.pt, best.pt, metrics.csv, episodes.jsonl and run.json into
    `run_dir`. `resume`: a checkpoint of this run to continue exactly where it was written."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    run = OffPolicyRun("ddpg", config, make_envs, run_dir, metadata,
                       ["critic_loss", "actor_loss"], resume, on_evaluation=on_evaluation)
    envs, obs_size, action_size = run.envs, run.obs_size, run.action_size
    agent = DDPGAgent(obs_size, action_size, config)
    use_matmul_precision(agent, config.matmul_precision)
    actor_params, critic_params = parameters_of(agent.actor), parameters_of(agent.critic)
    actor_optimizer = Adam(actor_params, lr=config.actor_learning_rate)
    critic_optimizer = Adam(critic_params, lr=config.critic_learning_rate)
    buffer = make_replay_buffer(config, envs, obs_size, action_size)
    noise = make_action_noise(config.exploration_noise, (config.num_envs, action_size),
                              config.exploration_noise_std, rng)

    # -- the update step -----------------------------------------------------------------------
    @torch.no_grad()  # gradients come from compiled.gradients, only for the parameters being trained
    def update(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One step of the critic, the actor and both targets on a batch whose observations are
        normalized. Returns the losses as tensors (no .item() inside: it compiles as one graph)."""
        obs, action, next_obs = batch["obs"], batch["action"], batch["next_obs"]

        # Critic: one-step target from the target actor and critic, no bootstrap past termination.
        next_q = agent.critic_target(next_obs, torch.tanh(agent.actor_target(next_obs)))[0]
        target = batch["reward"] + config.gamma * (1.0 - batch["terminated"]) * next_q

        def critic_loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
            return (functional_call(agent.critic, params, (obs, action))[0] - target).square().mean()

        grads, critic_loss_value = gradients(critic_loss, critic_params)
        critic_optimizer.step(grads)

        # Actor: the deterministic policy gradient; the critic is a constant of this loss, so
        # the gradient reaches the actions and not its weights.
        def actor_loss(params: dict[str, torch.Tensor]) -> torch.Tensor:
            new_action = torch.tanh(functional_call(agent.actor, params, (obs,)))
            return -agent.critic(obs, new_action)[0].mean()

        grads, actor_loss_value = gradients(actor_loss, actor_params)
        actor_optimizer.step(grads)

        soft_update(agent.critic_target, agent.critic, config.tau)
        soft_update(agent.actor_target, agent.actor, config.tau)
        return {"critic_loss": critic_loss_value, "actor_loss": actor_loss_value}

    def sample() -> dict[str, torch.Tensor]:
        batch = buffer.sample(config.batch_size, rng)
        with torch.no_grad():
            batch["obs"] = agent.normalizer(batch["obs"])
            batch["next_obs"] = agent.normalizer(batch["next_obs"])
        return batch

    # What a checkpoint holds, to resume exactly.
    run.keep(agent, {"actor": actor_optimizer, "critic": critic_optimizer}, buffer, rng, noise)

    # -- the training loop ---------------------------------------------------------------------
    learn = run.compiled(update)
    obs = run.begin(config.seed)
    with TrainingProgress(run.vector_steps * config.num_envs, "DDPG",
                          enabled=progress) as bar:
        for iteration in range(run.first_iteration, run.vector_steps + 1):
            # Act: uniformly random until learning starts, then the actor plus exploration noise.
            obs = np.asarray(obs, dtype=np.float32)
            if config.normalize_obs:
                agent.normalizer.update(obs)
            if run.steps < config.learning_starts:
                action = envs.action_space.sample().astype(np.float32)
            else:
                with torch.no_grad():
                    action = agent.act(agent.normalizer(torch.from_numpy(obs))).numpy()
                action = np.clip(action + noise(), -1.0, 1.0)
            next_obs, reward, terminated, truncated, info = envs.step(action)
            buffer.add(obs, action, reward, next_obs, terminated, truncated, info)
            noise.reset(terminated | truncated)
            obs = next_obs
            run.record(info)

            # Learn.
            if run.steps >= config.learning_starts and iteration % config.train_freq == 0:
                for _ in range(config.gradient_steps):
                    run.learn(lambda: learn(sample()))

            run.after_iteration(iteration, obs, agent.deterministic_policy, bar)
    return run.finish()


def load_policy(checkpoint: dict[str, Any]) -> DeterministicPolicy:
    """The deterministic policy (normalizer + tanh of the actor) of a DDPG checkpoint."""
    config = config_of_checkpoint(DDPGConfig, checkpoint)
    agent = DDPGAgent(checkpoint["obs_size"], checkpoint["action_size"], config)
    agent.load_state_dict(checkpoint["agent"])
    return agent.deterministic_policy().eval()
