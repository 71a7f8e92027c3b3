"""What a user gets from each library with its own defaults: one training of ours, of
Stable-Baselines3 or of SBX (SB3's algorithms in JAX, compiled by XLA), in this process, with the
library's default settings (ours: its defaults plus its tuned entry for the env, what
`sim2real train` uses; SB3 and SBX: `ALGO("MlpPolicy", env)` and nothing else), evaluated every
`eval_every` steps until it first reaches the case's threshold.

Time to solved: the seconds from process start to the end of the training step whose
evaluation first reaches the threshold, evaluations excluded (each library is evaluated by the
same function, `evaluate`, on the same env seeds, and the time that takes is not the library's).
Used by benchmarks/rl_vs_sb3.py, which starts one process per training.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LIBRARIES = ("ours", "sb3", "sbx")


@dataclass(frozen=True)
class DefaultsCase:
    steps: int
    eval_every: int
    threshold: float
    """Solved: the mean evaluation return (the success rate for a goal task) at least this."""
    on_success: bool = False


# InvertedPendulum: gymnasium's reward_threshold for it (950). HalfCheetah and Hopper have
# thresholds (4800, 3800) far past these budgets: 1000 is a gait that runs or hops. Reach: 90 %
# of the goals reached.
DEFAULT_CASES: dict[tuple[str, str], DefaultsCase] = {
    ("ppo", "InvertedPendulum-v5"): DefaultsCase(50_000, 5_000, 950.0),
    ("ppo", "HalfCheetah-v5"): DefaultsCase(100_000, 10_000, 1000.0),
    ("ppo", "Hopper-v5"): DefaultsCase(100_000, 10_000, 1000.0),
    ("ppo", "sim2real/ArmReach-v0"): DefaultsCase(250_000, 25_000, 0.9, on_success=True),
    **{(algo, "InvertedPendulum-v5"): DefaultsCase(10_000, 1_000, 950.0)
       for algo in ("sac", "td3", "ddpg")},
}


def evaluate(act: Callable[[np.ndarray], Any], env_id: str,
             episodes: int) -> tuple[float, float, float | None]:
    """(mean return, its std, success rate or None) of `act` over `episodes` deterministic
    episodes from env seeds 10,000 on."""
    from randomization.envs import make_env

    env = make_env(env_id)
    returns, successes = [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=10_000 + episode)
        total, info = 0.0, {}
        while True:
            obs, reward, terminated, truncated, info = env.step(act(np.asarray(obs)))
            total += float(reward)
            if terminated or truncated:
                break
        returns.append(total)
        if "is_success" in info:
            successes.append(float(info["is_success"]))
    env.close()
    return (float(np.mean(returns)), float(np.std(returns)),
            float(np.mean(successes)) if successes else None)


class SolvedClock:
    """Evaluations during training, timed apart: `check(steps, act)` evaluates and records
    until the case is first solved, then does nothing."""

    def __init__(self, case: DefaultsCase, env_id: str, started: float, episodes: int) -> None:
        self.case, self.env_id, self.started, self.episodes = case, env_id, started, episodes
        self.evaluation_seconds = 0.0
        self.evaluations: list[dict[str, Any]] = []
        self.solved: dict[str, Any] | None = None

    def check(self, steps: int, act: Callable[[np.ndarray], Any]) -> None:
        if self.solved is not None:
            return
        seconds = time.time() - self.started - self.evaluation_seconds
        start = time.perf_counter()
        mean, _, success = evaluate(act, self.env_id, self.episodes)
        self.evaluation_seconds += time.perf_counter() - start
        score = success if self.case.on_success else mean
        record = {"steps": steps, "seconds": seconds, "return": mean, "success": success}
        self.evaluations.append(record)
        if score is not None and score >= self.case.threshold:
            self.solved = record


def train_ours(algo: str, env_id: str, seed: int, case: DefaultsCase, clock: SolvedClock,
               out: Path) -> Callable[[np.ndarray], Any]:
    """Our defaults and tuned entry; our own evaluation schedule drives the clock."""
    import torch

    from policies.algorithms import algorithm_by_name
    from policies.run import TrainingRun
    from policies.tuned import tuned_settings
    from randomization.envs import make_vector_env

    algorithm = algorithm_by_name(algo)
    config = algorithm.config(**{**tuned_settings(algo, env_id), "total_steps": case.steps,
                                 "seed": seed})
    if hasattr(config, "rollout_steps"):  # on-policy: evaluations are every so many rollouts
        config = dataclasses.replace(config, eval_every=max(
            1, case.eval_every // (config.num_envs * config.rollout_steps)))
    else:
        config = dataclasses.replace(config, eval_every=case.eval_every)

    def timed_evaluation(run: TrainingRun, policy: torch.nn.Module) -> dict:
        """In place of the run's own evaluation (and its best.pt), which the clock replaces."""
        clock.check(run.steps, policy_action(policy.eval()))
        last = clock.evaluations[-1]
        return {"eval_return": last["return"], "eval_return_std": 0.0,
                "eval_success_rate": last["success"] or 0.0}

    TrainingRun.evaluate = timed_evaluation
    algorithm.train(lambda n: make_vector_env(env_id, n), config, out,
                    metadata={"env_id": env_id}, progress=False)
    return policy_action(algorithm.load_policy(torch.load(out / "checkpoint.pt",
                                                          weights_only=False)))


def policy_action(policy: Any) -> Callable[[np.ndarray], Any]:
    import torch

    def act(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()

    return act


def train_stable_baselines(library: str, algo: str, env_id: str, seed: int, case: DefaultsCase,
                           clock: SolvedClock) -> Callable[[np.ndarray], Any]:
    """SB3's or SBX's `ALGO("MlpPolicy", env, seed=seed)`: the library's defaults."""
    from stable_baselines3.common.callbacks import BaseCallback

    from randomization.envs import make_env

    if library == "sbx":
        import sbx as package
    else:
        import stable_baselines3 as package
    model = getattr(package, algo.upper())("MlpPolicy", make_env(env_id), seed=seed, verbose=0,
                                           **({"device": "cpu"} if library == "sb3" else {}))

    def act(obs: np.ndarray) -> np.ndarray:
        return model.predict(obs, deterministic=True)[0]

    class Clock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_evaluation = case.eval_every

        def _on_step(self) -> bool:
            if self.num_timesteps >= self.next_evaluation:
                clock.check(self.num_timesteps, act)
                self.next_evaluation += case.eval_every
            return True

    model.learn(total_timesteps=case.steps, callback=Clock())
    return act
