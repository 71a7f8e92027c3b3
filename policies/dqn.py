"""Deep Q-Network (Mnih et al. 2015, "Human-level control through deep reinforcement learning"),
for discrete actions, in one file; Double DQN (van Hasselt et al. 2016) and the Huber or squared
loss as options.

Reads top to bottom: config, the epsilon schedule and the TD target, networks (a Q-network with
one output per choice, its target copy, the greedy policies), the update step, the training loop
(act epsilon-greedily, store, update, refresh the target). Defaults are Stable-Baselines3's.

Our robots take continuous commands: `make_env(..., discrete_actions=N)` turns them into choices
(sim/discrete_actions.py) and the exported policy looks its choice up in that action table, so
it outputs the continuous action in [-1, 1] every policy outputs and deploys unchanged. On an env
with native discrete actions (CartPole) it outputs the chosen index, as a float in one column.

The replay buffer is the shared one: the chosen index is stored in its one-wide float action
column (exact for any table size allowed). Observations are stored raw and normalized at
sampling time by a running normalizer that is exported inside the ONNX graph.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from policies.compiled import Adam, clip_grad_norm, gradients, parameters_of
from policies.core import RunningNormalizer, VectorEnvFactory
from policies.offpolicy import OffPolicyRun
from policies.offpolicy_networks import relu_mlp, soft_update
from policies.records import TrainingProgress, config_of_checkpoint
from policies.replay_buffer import ReplayBuffer
from policies.run import EvaluationHook
from policies.settings import check_settings

LOSSES = {"huber": F.smooth_l1_loss, "mse": F.mse_loss}
"""The TD error's loss. Huber (quadratic within +-1, linear beyond) is the Nature paper's
clipping of the error to [-1, 1], as Stable-Baselines3's; squared error grows with large errors."""


@dataclass
class DQNConfig:
    total_steps: int = 100_000
    """Environment steps to train for (summed over the vector envs)."""
    num_envs: int = 1
    """Envs stepped together; each vector step adds num_envs transitions to the buffer."""
    buffer_size: int = 1_000_000
    """Transitions the replay buffer holds; the oldest are overwritten."""
    batch_size: int = 32
    learning_starts: int = 100
    """Env steps of uniformly random choices before the first update."""
    train_freq: int = 4
    """Vector-env steps between rounds of updates."""
    gradient_steps: int = 1
    """Updates per round."""
    learning_rate: float = 1e-4
    anneal_lr: bool = False
    """Decay the learning rates linearly to zero over total_steps (the schedule RL Zoo writes
    `lin_<rate>`); off by default: a constant rate, Stable-Baselines3's default."""
    gamma: float = 0.99
    target_update_interval: int = 10_000
    """Env steps between target-network updates, counted as Stable-Baselines3 and CleanRL do
    (the Nature paper counts 10,000 updates, one per 4 env steps)."""
    tau: float = 1.0
    """1: each target update is a hard copy of the Q-network (the Nature paper's); below 1:
    Polyak averaging, target <- (1 - tau) target + tau online."""
    exploration_fraction: float = 0.1
    """Share of total_steps over which epsilon falls linearly from initial_epsilon to
    final_epsilon; it stays there after."""
    initial_epsilon: float = 1.0
    final_epsilon: float = 0.05
    """Probability of a uniformly random choice (per env copy and step) once the schedule ends."""
    double_dqn: bool = False
    """Double DQN: the Q-network picks the next choice, the target network values it, which
    removes max's overestimation (van Hasselt et al. 2016). Off: the target network's own max."""
    loss: str = "huber"
    """"huber" or "mse" (LOSSES)."""
    max_grad_norm: float | None = 10.0
    """The gradient is scaled down to this global norm when above it (None: never)."""
    hidden_sizes: tuple[int, ...] = (64, 64)
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
    """Env steps between evaluations of the greedy policy (0: none); the best is kept as
    best.pt."""
    eval_episodes: int = 10
    compile: str = "auto"
    """Compile the update into one graph: "auto" (runs of 8,000+ updates), "always", "never".
    Measured here (batch 64, 128x128, one thread): 1.07 ms an update eager, 0.36 ms compiled,
    after a one-off compile of ~7 s with a warm cache (policies/compiled.py)."""
    torch_threads: int = 1
    """Threads for the updates. One is the default: when another process keeps the second
    core busy, two threads wait on each other (policies/sac.py's note)."""

    def __post_init__(self) -> None:
        check_settings(self, loss=tuple(LOSSES))


def epsilon(steps: int, config: DQNConfig) -> float:
    """The probability of a random choice after `steps` env steps: linear from initial_epsilon
    to final_epsilon over the first exploration_fraction of total_steps, then final_epsilon."""
    progress = min(1.0, steps / (config.exploration_fraction * config.total_steps))
    return config.initial_epsilon + progress * (config.final_epsilon - config.initial_epsilon)


def td_targets(reward: torch.Tensor, terminated: torch.Tensor, gamma: float,
               next_q_target: torch.Tensor, next_q_online: torch.Tensor | None = None
               ) -> torch.Tensor:
    """r + gamma (1 - terminated) Q_target(s', a'), with a' the target network's own best
    choice (DQN), or the online network's (Double DQN, `next_q_online` given). A copy that hit
    its time limit was stored with terminated 0: it bootstraps from its last state."""
    if next_q_online is None:
        next_q = next_q_target.max(-1).values
    else:
        next_q = next_q_target.gather(-1, next_q_online.argmax(-1, keepdim=True)).squeeze(-1)
    return reward + gamma * (1.0 - terminated) * next_q


@torch.no_grad()
def update_target(target: nn.Module, online: nn.Module, tau: float) -> None:
    """tau 1: a hard copy; below: Polyak averaging."""
    if tau == 1.0:
        torch._foreach_copy_(list(target.parameters()), list(online.parameters()))
    else:
        soft_update(target, online, tau)


class GreedyChoice(nn.Module):
    """Raw observation -> the best choice's index, (batch,) int64: what the training envs take
    (periodic evaluation)."""

    def __init__(self, normalizer: RunningNormalizer, q_network: nn.Module) -> None:
        super().__init__()
        self.normalizer, self.q_network = normalizer, q_network

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.q_network(self.normalizer(obs)).argmax(-1)


class GreedyPolicy(nn.Module):
    """What gets exported: raw observation -> normalizer -> Q-network -> the best choice's row
    of the action table, (batch, action_size) float32.

    Computed in float64 (the weights are float32 values, cast exactly) so that onnxruntime and
    torch, which sum in different orders, pick the same choice: at 250 Hz neighbouring voltages'
    Q-values can differ by 1e-4 at Q ~ 60, and in float32 they disagreed on 1 of 20,000
    observations of a Furuta Q-network (enough to fail export's parity check now and then); in
    float64 on none. It costs 14 instead of 9 us an inference (128x128, onnxruntime, 1 thread)."""

    def __init__(self, normalizer: RunningNormalizer, q_network: nn.Module,
                 action_table: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("shift", normalizer.shift.double())
        self.register_buffer("scale", normalizer.scale.double())
        self.clip = normalizer.clip
        self.q_network = copy.deepcopy(q_network).double()
        self.register_buffer("action_table", action_table.clone())

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        norm_obs = torch.clamp((obs.double() - self.shift) * self.scale, -self.clip, self.clip)
        return self.action_table[self.q_network(norm_obs).argmax(-1)]


class DQNAgent(nn.Module):
    def __init__(self, obs_size: int, action_table: np.ndarray | torch.Tensor,
                 config: DQNConfig) -> None:
        super().__init__()
        self.normalizer = RunningNormalizer(obs_size)
        # What the exported policy outputs for each choice (OffPolicyRun.action_table).
        self.register_buffer("action_table", torch.tensor(np.array(action_table),
                                                          dtype=torch.float32))
        self.q_network = relu_mlp([obs_size, *config.hidden_sizes, len(action_table)])
        self.q_target = copy.deepcopy(self.q_network).requires_grad_(False)

    def greedy_choice(self) -> GreedyChoice:
        return GreedyChoice(self.normalizer, self.q_network)

    def greedy_policy(self) -> GreedyPolicy:
        return GreedyPolicy(self.normalizer, self.q_network, self.action_table)


def train(make_envs: VectorEnvFactory, config: DQNConfig, run_dir: Path,
          metadata: dict[str, Any] | None = None, progress: bool = True,
          resume: dict[str, Any] | None = None,
          on_evaluation: EvaluationHook | None = None) -> dict[str, Any]:
    """Train DQN; write checkpoint.pt, best.pt, metrics.csv, episodes.jsonl and run.json into
    `run_dir`. `resume`: a checkpoint of this run to continue exactly where it was written."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    run = OffPolicyRun("dqn", config, make_envs, run_dir, metadata, ["loss", "q_mean", "epsilon"],
                       resume, discrete=True, on_evaluation=on_evaluation)
    envs, num_envs = run.envs, config.num_envs
    agent = DQNAgent(run.obs_size, run.action_table, config)
    num_actions = len(run.action_table)
    params = parameters_of(agent.q_network)
    optimizer = Adam(params, lr=config.learning_rate)
    buffer = ReplayBuffer(config.buffer_size, run.obs_size, action_size=1)

    # -- the update step -----------------------------------------------------------------------
    @torch.no_grad()  # gradients come from compiled.gradients, only for the Q-network's parameters
    def update(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One gradient step on a batch whose observations are normalized; returns the losses
        as tensors (no .item() inside: the step can compile as one graph)."""
        obs, next_obs, action = batch["obs"], batch["next_obs"], batch["action"]
        next_q_online = agent.q_network(next_obs) if config.double_dqn else None
        target = td_targets(batch["reward"], batch["terminated"], config.gamma,
                            agent.q_target(next_obs), next_q_online)

        def td_loss(params: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
            q_taken = functional_call(agent.q_network, params, (obs,)).gather(
                -1, action[:, None]).squeeze(-1)
            return LOSSES[config.loss](q_taken, target), q_taken

        grads, (loss_value, q_taken) = gradients(td_loss, params, has_aux=True)
        optimizer.step(clip_grad_norm(grads, config.max_grad_norm))
        return {"loss": loss_value, "q_mean": q_taken.mean()}

    def sample() -> dict[str, torch.Tensor]:
        batch = buffer.sample(config.batch_size, rng)
        with torch.no_grad():
            batch["obs"] = agent.normalizer(batch["obs"])
            batch["next_obs"] = agent.normalizer(batch["next_obs"])
        batch["action"] = batch["action"][:, 0].long()  # the index, stored as a float
        return batch

    # What a checkpoint holds, to resume exactly (the target network is part of the agent).
    run.keep(agent, {"q_network": optimizer}, buffer, rng)

    # -- the training loop ---------------------------------------------------------------------
    learn = run.compiled(update)

    def learn_step() -> dict[str, torch.Tensor]:
        losses = learn(sample())
        losses["epsilon"] = torch.tensor(epsilon(run.steps, config), dtype=torch.float32)
        return losses

    # As Stable-Baselines3: the interval in env steps, checked every vector step.
    target_every = max(1, config.target_update_interval // num_envs)
    obs = run.begin(config.seed)
    with TrainingProgress(run.vector_steps * num_envs, "DQN", enabled=progress) as bar:
        for iteration in range(run.first_iteration, run.vector_steps + 1):
            # Act: uniformly random choices until learning starts, then epsilon-greedy, each
            # copy drawing on its own.
            obs = np.asarray(obs, dtype=np.float32)
            if config.normalize_obs:
                agent.normalizer.update(obs)
            exploring = 1.0 if run.steps < config.learning_starts else epsilon(run.steps, config)
            explore = rng.random(num_envs) < exploring
            action = rng.integers(0, num_actions, num_envs)
            if not explore.all():
                with torch.no_grad():
                    greedy = agent.q_network(agent.normalizer(torch.from_numpy(obs))).argmax(-1)
                action = np.where(explore, action, greedy.numpy())
            next_obs, reward, terminated, truncated, info = envs.step(action)
            buffer.add(obs, action[:, None], reward, next_obs, terminated, truncated, info)
            obs = next_obs
            run.record(info)

            # Refresh the target, then learn (Stable-Baselines3's order).
            if iteration % target_every == 0:
                update_target(agent.q_target, agent.q_network, config.tau)
            if run.steps >= config.learning_starts and iteration % config.train_freq == 0:
                for _ in range(config.gradient_steps):
                    run.learn(learn_step)

            run.after_iteration(iteration, obs, agent.greedy_choice, bar)
    return run.finish()


def load_policy(checkpoint: dict[str, Any]) -> GreedyPolicy:
    """The greedy policy (normalizer, Q-network, argmax, action table) of a DQN checkpoint."""
    config = config_of_checkpoint(DQNConfig, checkpoint)
    agent = DQNAgent(checkpoint["obs_size"], checkpoint["agent"]["action_table"], config)
    agent.load_state_dict(checkpoint["agent"])
    return agent.greedy_policy().eval()
