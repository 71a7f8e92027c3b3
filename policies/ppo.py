"""Proximal Policy Optimization (Schulman et al. 2017) for continuous actions, in one file.

Reads top to bottom: config, networks, GAE, the training loop (collect a rollout on vector envs,
then several epochs of clipped-surrogate minibatch updates). Observations are normalized by a
running normalizer that is saved with the policy and exported inside the ONNX graph. Pixel
observations (a Dict of "pixels" and "state", sim.pixels.PixelObservation) go through a CNN
encoder (policies/encoders.py) shared by actor and critic; the rollout keeps their images uint8.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from policies.core import (
    DeterministicPolicy,
    RunningNormalizer,
    VectorEnvFactory,
    check_continuous_actions,
    mlp,
    record_episodes,
)
from policies.encoders import (
    PixelPolicy,
    PixelStateEncoder,
    observation_layout,
    stack_observations,
)
from policies.records import (
    EpisodeLog,
    EpisodeStats,
    Evaluator,
    MetricsLog,
    TrainingProgress,
    config_of_checkpoint,
    env_log_row,
    package_versions,
    restore_envs,
    save_checkpoint,
    snapshot_envs,
    truncate_logs,
    write_json,
)


@dataclass
class PPOConfig:
    total_steps: int = 200_000
    """Environment steps to train for (summed over the vector envs)."""
    num_envs: int = 16
    """Envs stepped together in one process."""
    rollout_steps: int = 64
    """Steps per env between updates; a rollout holds num_envs * rollout_steps transitions."""
    epochs: int = 5
    """Passes over each rollout."""
    minibatch_size: int = 256
    learning_rate: float = 3e-4
    anneal_lr: bool = True
    """Decay the learning rate linearly to zero over training."""
    gamma: float = 0.98
    gae_lambda: float = 0.95
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
    eval_every: int = 10
    """Iterations between evaluations of the deterministic policy (0: none); the best is kept
    as best.pt."""
    eval_episodes: int = 10
    torch_threads: int = 1
    """Small MLPs run fastest on one thread; the other core is left to the envs."""


HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class ActorCritic(nn.Module):
    """Actor and critic MLPs on the normalized observation or, given `image_shape`, on the
    features of one PixelStateEncoder (`obs_size` is then the size of the state beside the image).

    One encoder, shared: the critic's value loss is the dense, low-variance signal that shapes
    the conv features (the policy gradient alone is noisy), as in the pixel PPO of the Atari and
    Procgen baselines; and the CNN, the costly part on a CPU, runs once per step, not twice.
    """

    def __init__(self, obs_size: int, action_size: int, config: PPOConfig,
                 image_shape: tuple[int, int, int] | None = None) -> None:
        super().__init__()
        hidden = list(config.hidden_sizes)
        self.encoder: PixelStateEncoder | None = None
        if image_shape is None:
            self.normalizer = RunningNormalizer(obs_size)
            feature_size = obs_size
        else:
            self.encoder = PixelStateEncoder(tuple(image_shape), obs_size, config.image_features)
            self.normalizer = None
            feature_size = self.encoder.output_size
        self.actor = mlp([feature_size, *hidden, action_size], output_gain=0.01)
        self.critic = mlp([feature_size, *hidden, 1], output_gain=1.0)
        self.log_std = nn.Parameter(torch.full((action_size,), config.initial_log_std))

    @property
    def state_normalizer(self) -> RunningNormalizer:
        """The normalizer of the flat observation, or of the state beside the image."""
        return self.normalizer if self.encoder is None else self.encoder.normalizer

    def features(self, norm_obs: torch.Tensor, pixels: torch.Tensor | None) -> torch.Tensor:
        """What actor and critic see: the normalized observation, or the encoder's features."""
        return norm_obs if self.encoder is None else self.encoder.join(pixels, norm_obs)

    def log_prob(self, action: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """Log-density of `action` under the diagonal Gaussian policy of mean `mean`, summed
        over action dimensions. Written out rather than through torch.distributions.Normal,
        whose construction and argument checks cost more than the maths on small batches."""
        z = (action - mean) * torch.exp(-self.log_std)
        return -0.5 * z.square().sum(-1) - (self.log_std.sum() + HALF_LOG_2PI * z.shape[-1])

    def entropy(self) -> torch.Tensor:
        """Entropy of the Gaussian policy (the same for every state: the std is state-free)."""
        return (self.log_std + 0.5 + HALF_LOG_2PI).sum()

    def value(self, features: torch.Tensor) -> torch.Tensor:
        return self.critic(features).squeeze(-1)

    def deterministic_policy(self) -> DeterministicPolicy | PixelPolicy:
        if self.encoder is not None:
            return PixelPolicy(self.encoder, self.actor)
        return DeterministicPolicy(self.normalizer, self.actor, squash="clip")


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


def train(make_envs: VectorEnvFactory, config: PPOConfig, run_dir: Path,
          metadata: dict[str, Any] | None = None, progress: bool = True,
          resume: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train PPO; write checkpoint.pt, best.pt, metrics.csv, episodes.jsonl and run.json into
    `run_dir`. `resume`: a checkpoint of this run to continue exactly where it was written."""
    torch.set_num_threads(config.torch_threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    run_dir.mkdir(parents=True, exist_ok=True)

    envs = record_episodes(make_envs(config.num_envs)) if resume is None else \
        restore_envs(resume["resume"]["envs"])
    envs.action_space.seed(config.seed)
    check_continuous_actions(envs.single_action_space, "PPO")
    try:
        # obs_size: of the flat observation, or of the state beside the image.
        obs_size, image_shape = observation_layout(envs.single_observation_space, "PPO")
    except ValueError:
        envs.close()
        raise
    action_size = envs.single_action_space.shape[0]
    agent = ActorCritic(obs_size, action_size, config, image_shape)
    normalizer = agent.state_normalizer
    parameters = list(agent.parameters())
    optimizer = torch.optim.Adam(parameters, lr=config.learning_rate, eps=1e-5,
                                 foreach=True)  # one kernel per step for all tensors

    batch = config.num_envs * config.rollout_steps
    iterations = max(1, -(-config.total_steps // batch))  # at least total_steps
    shape = (config.rollout_steps, config.num_envs)
    obs_buf = np.zeros((*shape, obs_size), np.float32)  # normalized as the policy saw them
    # uint8 as rendered: a quarter of the memory of float32 (scaled inside the encoder).
    pixel_buf = np.zeros((*shape, *image_shape), np.uint8) if image_shape else None
    act_buf = np.zeros((*shape, action_size), np.float32)
    logp_buf, rew_buf, end_buf, val_buf = (np.zeros(shape, np.float32) for _ in range(4))

    run_info = {"algo": "ppo", "config": asdict(config), "obs_size": obs_size,
                "image_shape": image_shape, "action_size": action_size,
                "versions": package_versions(), **(metadata or {}), "status": "running",
                "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write_json(run_dir / "run.json", run_info)
    if resume is not None:
        truncate_logs(run_dir, resume["steps"])
    log = MetricsLog(run_dir / "metrics.csv",
                     ["iteration", "steps", "seconds", "steps_per_second", "mean_return",
                      "success_rate", "eval_return", "eval_return_std", "eval_success_rate",
                      "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction",
                      "learning_rate", "action_std", *env_log_row(envs)])
    episodes = EpisodeLog(run_dir / "episodes.jsonl", config.num_envs)
    stats = EpisodeStats()
    evaluator = Evaluator(make_envs, config.eval_episodes) if config.eval_every else None
    start = time.perf_counter()
    steps, first_iteration, earlier_seconds = 0, 1, 0.0

    def payload() -> dict[str, Any]:
        return {"algo": "ppo", "config": asdict(config), "obs_size": obs_size,
                "image_shape": image_shape, "action_size": action_size, "steps": steps,
                "agent": agent.state_dict(), "optimizer": optimizer.state_dict(),
                "metadata": {**(metadata or {}), "env_at_checkpoint": env_log_row(envs)}}

    def checkpoint() -> None:
        # Everything a resume needs to go on as if never stopped: the envs mid-episode, the
        # generators, the recent episode statistics.
        save_checkpoint(run_dir / "checkpoint.pt", {**payload(), "resume": {
            "iteration": iteration, "envs": snapshot_envs(envs), "obs": obs,
            "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "stats": (stats.returns, stats.successes), "episode_domains": episodes.domains,
            "seconds": earlier_seconds + time.perf_counter() - start,
            "best_eval": evaluator.best if evaluator else None}})

    def value_of(observations: Any) -> np.ndarray:
        """The critic's value of raw observations (flat or Dict), under the current normalizer."""
        pixels, state = split_observation(observations, obs_size)
        features = agent.features(normalizer(torch.as_tensor(state)),
                                  None if pixels is None else torch.as_tensor(pixels))
        return agent.value(features).numpy()

    if resume is None:
        obs, info = envs.reset(seed=config.seed)
        episodes.begin(info)
    else:
        state = resume["resume"]
        agent.load_state_dict(resume["agent"])
        optimizer.load_state_dict(resume["optimizer"])
        steps, first_iteration = resume["steps"], state["iteration"] + 1
        obs, earlier_seconds = state["obs"], state["seconds"]
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        stats.returns, stats.successes = (list(x) for x in state["stats"])
        episodes.domains = list(state["episode_domains"])
        if evaluator is not None and state["best_eval"] is not None:
            evaluator.best = state["best_eval"]
    iteration = first_iteration - 1
    with TrainingProgress(iterations * batch, "PPO", enabled=progress) as bar:
        bar.update(steps, stats)
        for iteration in range(first_iteration, iterations + 1):
            if config.anneal_lr:
                optimizer.param_groups[0]["lr"] = config.learning_rate * (
                    1.0 - (iteration - 1) / iterations)

            # -- collect a rollout ------------------------------------------------------------
            for t in range(config.rollout_steps):
                pixels, state = split_observation(obs, obs_size)
                if obs_size:
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
                obs, reward, terminated, truncated, info = envs.step(
                    np.clip(act_buf[t], -1.0, 1.0))
                # A time-limit end is not a real end: bootstrap the value of its last state.
                cut = truncated & ~terminated
                if cut.any():
                    with torch.no_grad():
                        reward = reward.copy()
                        reward[cut] += config.gamma * value_of(
                            stack_observations(list(info["final_obs"][cut])))
                rew_buf[t] = reward
                end_buf[t] = terminated | truncated
                stats.record(info)
                episodes.record(info, steps + (t + 1) * config.num_envs)
            steps += batch

            with torch.no_grad():
                next_value = value_of(obs)
            advantages, returns = compute_gae(rew_buf, val_buf, end_buf, next_value,
                                              config.gamma, config.gae_lambda)

            # -- update ----------------------------------------------------------------------
            b_obs = torch.as_tensor(obs_buf.reshape(batch, obs_size))
            b_pixels = (None if pixel_buf is None
                        else torch.as_tensor(pixel_buf.reshape(batch, *image_shape)))
            b_act = torch.as_tensor(act_buf.reshape(batch, action_size))
            b_logp = torch.as_tensor(logp_buf.reshape(batch))
            b_adv = torch.as_tensor(advantages.reshape(batch))
            b_ret = torch.as_tensor(returns.reshape(batch))
            kls, clip_fracs = [], []
            for _ in range(config.epochs):
                # Shuffle the whole rollout once per epoch; each minibatch is then a slice, a
                # view, not a gather.
                order = torch.as_tensor(rng.permutation(batch))
                e_obs, e_act, e_logp, e_adv, e_ret = (
                    x[order] for x in (b_obs, b_act, b_logp, b_adv, b_ret))
                e_pixels = None if b_pixels is None else b_pixels[order]
                for begin in range(0, batch, config.minibatch_size):
                    part = slice(begin, begin + config.minibatch_size)
                    features = agent.features(e_obs[part],
                                              None if e_pixels is None else e_pixels[part])
                    log_ratio = agent.log_prob(e_act[part], agent.actor(features)) - e_logp[part]
                    ratio = log_ratio.exp()
                    adv = e_adv[part]
                    adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                    policy_loss = torch.max(
                        -adv * ratio,
                        -adv * torch.clamp(ratio, 1 - config.clip_coef, 1 + config.clip_coef),
                    ).mean()
                    value_loss = 0.5 * (agent.value(features) - e_ret[part]).square().mean()
                    entropy = agent.entropy()
                    loss = (policy_loss + config.value_coef * value_loss
                            - config.entropy_coef * entropy)
                    if not torch.isfinite(loss):
                        log.close()
                        episodes.close()
                        envs.close()
                        raise FloatingPointError(
                            f"PPO loss became {loss.item()} at step {steps}; the last good "
                            f"checkpoint is {run_dir / 'checkpoint.pt'}. Lower the learning rate "
                            "or check the env's rewards and observations for NaN/inf")
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    nn.utils.clip_grad_norm_(parameters, config.max_grad_norm, foreach=True)
                    optimizer.step()
                    with torch.no_grad():  # read out once per iteration, not per minibatch
                        kls.append(((ratio - 1) - log_ratio).mean())
                        clip_fracs.append(((ratio - 1).abs() > config.clip_coef).float().mean())

            evaluation = {}
            if evaluator is not None and (iteration % config.eval_every == 0
                                          or iteration == iterations):
                evaluation = evaluator.evaluate(agent.deterministic_policy().eval())
                if evaluator.improved(evaluation):
                    save_checkpoint(run_dir / "best.pt", {**payload(), "evaluation": evaluation})
            elapsed = earlier_seconds + time.perf_counter() - start
            log.write({
                "iteration": iteration, "steps": steps, "seconds": round(elapsed, 3),
                "steps_per_second": round(steps / elapsed, 1), "mean_return": stats.mean_return,
                "success_rate": stats.success_rate, **evaluation,
                "policy_loss": policy_loss.item(),
                "value_loss": value_loss.item(), "entropy": entropy.item(),
                "approx_kl": torch.stack(kls).mean().item(),
                "clip_fraction": torch.stack(clip_fracs).mean().item(),
                "learning_rate": optimizer.param_groups[0]["lr"],
                "action_std": agent.log_std.exp().mean().item(), **env_log_row(envs),
            })
            bar.update(steps, stats)
            if iteration % config.checkpoint_every == 0:
                checkpoint()

    checkpoint()
    log.close()
    episodes.close()
    envs.close()
    elapsed = earlier_seconds + time.perf_counter() - start
    result = {"steps": steps, "seconds": round(elapsed, 2), "mean_return": stats.mean_return,
              "success_rate": stats.success_rate}
    write_json(run_dir / "run.json", {**run_info, "status": "finished", "result": result})
    return result


def load_policy(checkpoint: dict[str, Any]) -> DeterministicPolicy | PixelPolicy:
    """The deterministic policy (normalizer + actor mean, clipped; with the image encoder for
    pixel observations) of a PPO checkpoint."""
    config = config_of_checkpoint(PPOConfig, checkpoint)
    agent = ActorCritic(checkpoint["obs_size"], checkpoint["action_size"], config,
                        checkpoint.get("image_shape"))
    agent.load_state_dict(checkpoint["agent"])
    return agent.deterministic_policy().eval()
