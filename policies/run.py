"""One training run, whatever learns in it: the envs (made, or restored mid-episode), run.json,
metrics.csv (mirrored to TensorBoard), episodes.jsonl, the evaluation schedule keeping best.pt,
checkpoints that resume exactly, and the stop on a NaN loss naming the last good checkpoint.

OnPolicyRun (policies/onpolicy.py) and OffPolicyRun (policies/offpolicy.py) each hold one and
add only how their algorithms collect experience and update. The pieces it writes with (atomic
checkpoints, the logs, the evaluator) are in policies/records.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from policies.core import VectorEnvFactory, record_episodes
from policies.records import (
    EpisodeLog,
    EpisodeStats,
    Evaluator,
    MetricsLog,
    TrainingProgress,
    env_log_row,
    package_versions,
    restore_envs,
    save_checkpoint,
    snapshot_envs,
    truncate_logs,
    write_json,
)

EvaluationHook = Callable[[dict[str, Any]], None]
"""Called after each evaluation, once its checkpoint is written, with the row of metrics.csv
it wrote (steps, seconds, eval_return, eval_success_rate, ...): how a sweep reports a trial's
progress to its scheduler, which may stop the run by raising from it."""

EnvLayout = Callable[[gym.vector.VectorEnv, str], dict[str, Any]]
"""Checks the envs' spaces for the algorithm (named for errors, e.g. "SAC") and returns the
sizes its networks are built for, e.g. {"obs_size": 17, "action_size": 6}; raises ValueError
naming what would work."""


class TrainingRun:
    """What every training run writes and keeps besides its learner.

    Use: build it (it makes or restores the envs, checks them with `layout`, writes run.json and
    opens the logs), `keep` what a checkpoint holds, then `begin()` gives the first observation
    (reset, or restored). After each env step `record(info)`; after each iteration
    `after_iteration(...)`, which evaluates, logs and checkpoints as due; at the end `finish`.

    The config needs num_envs, eval_every (0: no evaluation) and eval_episodes; the schedule
    itself is given in iterations: `eval_every`, `checkpoint_every` (the last iteration always
    does both); and a checkpoint is due too once `checkpoint_seconds` have passed since the last
    (0: never by time), so a killed run loses at most about that much. metrics.csv's columns:
    iteration, steps, seconds, steps_per_second, `timing_columns`, mean_return, success_rate, the
    evaluation's, `columns`, then what the env reports (its log_row()).
    """

    def __init__(self, algo: str, config: Any, make_envs: VectorEnvFactory, run_dir: Path,
                 metadata: dict[str, Any] | None, resume: dict[str, Any] | None,
                 layout: EnvLayout, columns: list[str], *, eval_every: int,
                 checkpoint_every: int, rows_at_checkpoints: bool,
                 timing_columns: tuple[str, ...] = (), checkpoint_seconds: float = 60.0,
                 on_evaluation: EvaluationHook | None = None) -> None:
        """rows_at_checkpoints: a checkpoint's iteration writes a row of metrics too, even
        when `after_iteration` is told no row is due."""
        self.algo, self.config, self.run_dir, self.resume = algo, config, run_dir, resume
        self.metadata = metadata or {}
        self.eval_every, self.checkpoint_every = eval_every, checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.rows_at_checkpoints = rows_at_checkpoints
        self.on_evaluation = on_evaluation
        run_dir.mkdir(parents=True, exist_ok=True)
        self.envs = (record_episodes(make_envs(config.num_envs)) if resume is None
                     else restore_envs(resume["resume"]["envs"]))
        try:
            self.sizes = layout(self.envs, algo.upper())
        except ValueError:
            self.envs.close()
            raise
        self.info = {"algo": algo, "config": asdict(config), **self.sizes,
                     "versions": package_versions(), **self.metadata, "status": "running",
                     "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        write_json(run_dir / "run.json", self.info)
        if resume is not None:
            truncate_logs(run_dir, resume["steps"])
        self.log = MetricsLog(run_dir / "metrics.csv", [
            "iteration", "steps", "seconds", "steps_per_second", *timing_columns, "mean_return",
            "success_rate", "eval_return", "eval_return_std", "eval_success_rate", *columns,
            *env_log_row(self.envs)])
        self.episodes = EpisodeLog(run_dir / "episodes.jsonl", config.num_envs)
        self.stats = EpisodeStats()
        self.evaluator = Evaluator(make_envs, config.eval_episodes) if config.eval_every else None
        self.start, self.earlier_seconds = time.perf_counter(), 0.0
        self.last_checkpoint = self.start
        self.steps, self.first_iteration = 0, 1
        self.obs: Any = None
        """The observation the next action is for (kept by after_iteration for checkpoints)."""

    def keep(self, agent: nn.Module, optimizers: dict[str, Any], rng: np.random.Generator,
             state: Callable[[], dict[str, Any]] = dict,
             restore: Callable[[dict[str, Any]], None] = lambda state: None) -> None:
        """What a checkpoint holds and a resume restores, besides the envs and the logs: the
        agent, its optimizers (anything with state_dict), the run's generator, and what `state`
        returns (a replay buffer, a reward scaler ...), stored beside the rest under the
        checkpoint's "resume" and given back to `restore` on resuming."""
        self.agent, self.optimizers, self.rng = agent, optimizers, rng
        self.more_state, self.restore_more = state, restore

    def fresh_episodes(self, seed: int) -> Any:
        """New episodes in every copy, from `seed`; their first observation."""
        obs, info = self.envs.reset(seed=seed)
        self.episodes.begin(info)
        return obs

    def begin(self, seed: int) -> Any:
        """The first observation: the envs reset from `seed`, or, resuming, everything as it was
        when the checkpoint was written."""
        if self.resume is None:
            self.envs.action_space.seed(seed)
            return self.fresh_episodes(seed)
        checkpoint, state = self.resume, self.resume["resume"]
        self.agent.load_state_dict(checkpoint["agent"])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(checkpoint["optimizers"][name])
        self.restore_more(state)
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.stats.returns, self.stats.successes = (list(x) for x in state["stats"])
        self.episodes.domains = list(state["episode_domains"])
        if self.evaluator is not None and state["best_eval"] is not None:
            self.evaluator.best = state["best_eval"]
        self.earlier_seconds = state["seconds"]
        self.steps, self.first_iteration = checkpoint["steps"], state["iteration"] + 1
        return state["obs"]

    def record(self, info: dict[str, Any]) -> None:
        """After an env step of every copy: count it, keep its finished episodes."""
        self.steps += self.config.num_envs
        self.stats.record(info)
        self.episodes.record(info, self.steps)

    def elapsed(self) -> float:
        """Seconds of training, the runs before a resume included."""
        return self.earlier_seconds + time.perf_counter() - self.start

    def stop(self, what: str) -> NoReturn:
        """Close the run and stop with an error saying `what` (the bad losses) became NaN/inf,
        naming the last good checkpoint and what to change."""
        self.close()
        path = self.run_dir / "checkpoint.pt"
        last_good = (f"the last good checkpoint is {path}" if path.exists()
                     else "no checkpoint was written before it")
        raise FloatingPointError(f"{self.algo.upper()} {what} at step {self.steps}; {last_good}. "
                                 "Lower the learning rate(s) or check the env's rewards and "
                                 "observations for NaN/inf")

    # -- after each iteration ------------------------------------------------------------------

    def after_iteration(self, iteration: int, last: bool, obs: Any,
                        policy: Callable[[], nn.Module], row: Callable[[], dict[str, Any]],
                        bar: TrainingProgress, row_due: bool) -> None:
        """Evaluate, log and checkpoint as due after `iteration` (the `last` one does all);
        `obs` is what the next action will be for. `policy` makes the deterministic policy to
        evaluate; `row` gives the algorithm's columns of a row of metrics, called only when
        one is written: when `row_due`, at an evaluation, and (rows_at_checkpoints) at a
        checkpoint."""
        self.obs = obs
        evaluate = self.evaluator is not None and (last or iteration % self.eval_every == 0)
        checkpoint = (last or iteration % self.checkpoint_every == 0
                      or 0 < self.checkpoint_seconds <= time.perf_counter() - self.last_checkpoint)
        written: dict[str, Any] = {}
        if row_due or evaluate or (checkpoint and self.rows_at_checkpoints):
            evaluation = self.evaluate(policy()) if evaluate else {}
            elapsed = self.elapsed()
            written = {"iteration": iteration, "steps": self.steps, "seconds": round(elapsed, 3),
                       "steps_per_second": round(self.steps / elapsed, 1),
                       "mean_return": self.stats.mean_return,
                       "success_rate": self.stats.success_rate, **evaluation, **row(),
                       **env_log_row(self.envs)}
            self.log.write(written)
            bar.update(self.steps, self.stats)
        if checkpoint:
            save_checkpoint(self.run_dir / "checkpoint.pt",
                            {**self.payload(), "resume": self.resume_state(iteration)})
            self.last_checkpoint = time.perf_counter()
        if evaluate and self.on_evaluation is not None:
            try:
                self.on_evaluation(written)
            except BaseException:  # a scheduler stopping the run: its logs and envs closed first
                self.close()
                raise

    def evaluate(self, policy: nn.Module) -> dict[str, float]:
        """Evaluate `policy`; keep the run as best.pt if it is the best so far."""
        evaluation = self.evaluator.evaluate(policy.eval())
        if self.evaluator.improved(evaluation):
            save_checkpoint(self.run_dir / "best.pt", {**self.payload(), "evaluation": evaluation})
        return evaluation

    def payload(self) -> dict[str, Any]:
        """What checkpoint.pt and best.pt hold to load the policy (and train on)."""
        return {"algo": self.algo, "config": asdict(self.config), **self.sizes,
                "steps": self.steps, "agent": self.agent.state_dict(),
                "optimizers": {name: o.state_dict() for name, o in self.optimizers.items()},
                "metadata": {**self.metadata, "env_at_checkpoint": env_log_row(self.envs)}}

    def resume_state(self, iteration: int) -> dict[str, Any]:
        """Everything a resume needs to go on as if never stopped."""
        return {"iteration": iteration, "envs": snapshot_envs(self.envs), "obs": self.obs,
                **self.more_state(),
                "rng": self.rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "stats": (self.stats.returns, self.stats.successes),
                "episode_domains": self.episodes.domains, "seconds": self.elapsed(),
                "best_eval": self.evaluator.best if self.evaluator else None}

    # -- the end -------------------------------------------------------------------------------

    def close(self) -> None:
        self.log.close()
        self.episodes.close()
        self.envs.close()

    def finish(self, result: dict[str, Any]) -> dict[str, Any]:
        """After the last iteration (which wrote the last checkpoint): close, mark run.json
        finished with the run's totals, `result` and the best evaluation; returns them."""
        self.close()
        result = {"steps": self.steps, "seconds": round(self.elapsed(), 2),
                  "mean_return": self.stats.mean_return, "success_rate": self.stats.success_rate,
                  **result}
        if self.evaluator is not None:
            result["best_eval_return"] = self.evaluator.best
        write_json(self.run_dir / "run.json", {**self.info, "status": "finished",
                                               "result": result})
        return result
