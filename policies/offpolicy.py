"""What SAC, TD3 and DDPG share besides their networks (policies/offpolicy_networks.py), their
replay buffer (policies/replay_buffer.py) and TD3's and DDPG's exploration noises
(policies/exploration_noise.py): their timed updates in a run whose bookkeeping (logs,
evaluation keeping best.pt, checkpoints that resume exactly) is every algorithm's TrainingRun
(policies/run.py).
Their updates are built from policies/compiled.py (functional gradients, foreach Adam, one graph).

Each algorithm's own file reads top to bottom; only what is truly common lives here.
"""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from policies.compiled import compile_update, fast_matmuls, onednn_keeps_fp32, should_compile
from policies.core import VectorEnvFactory, check_continuous_actions, check_discrete_actions
from policies.cores import OTHERS_BUSY_CORES, CoreWatch, torch_threads_for
from policies.records import TrainingProgress
from policies.replay_buffer import ReplayBuffer
from policies.run import EvaluationHook, TrainingRun

T = TypeVar("T")


FAST_MATMUL_MIN_SIZE = 256
"""Batch rows and layer widths from which an update's products go to oneDNN (measured: a
256-row product of 64-wide layers is slower there, of 256-wide ones 1.6-2x faster)."""


def flushing_subnormals(train: Callable[..., T]) -> Callable[..., T]:
    """`train` with subnormal floats flushed to zero while it runs (the default again after):
    tiny gradients and optimizer moments, as a run goes on, take the CPU's slow path otherwise.
    SAC on FetchReach, 20k steps: 3.42 ms an update instead of 4.05. Threads inherit the
    setting when created: torch's pool, made in the first training of a process, keeps it."""

    @functools.wraps(train)
    def flushed(*args: Any, **kwargs: Any) -> T:
        torch.set_flush_denormal(True)
        try:
            return train(*args, **kwargs)
        finally:
            torch.set_flush_denormal(False)

    return flushed


class CompiledUpdate:
    """An update compiled into one graph (or not: `enabled`), compiled `again` for a new
    number of torch threads (the compiled kernels keep the one they were built for);
    `after_compile` is called after each call that compiled."""

    def __init__(self, update: Callable[..., Any], enabled: bool,
                 after_compile: Callable[[], None]) -> None:
        self.update, self.enabled, self.after_compile = update, enabled, after_compile
        self.again()

    def again(self) -> None:
        self._call, self._fresh = compile_update(self.update, self.enabled), self.enabled

    def __call__(self, *args: Any) -> Any:
        if not self._fresh:
            return self._call(*args)
        self._fresh = False
        result = self._call(*args)
        self.after_compile()
        return result


class OffPolicyRun:
    """An off-policy run: a vector step per iteration, timed gradient updates (their learning
    rates annealed if asked), on a TrainingRun (policies/run.py) that keeps the envs, the logs,
    the evaluation keeping best.pt and the checkpoints that resume exactly (here with the replay
    buffer, the exploration noise's state and the count of updates).

    Use: build it (it makes or restores the envs), build the agent for its sizes, `keep` what a
    checkpoint holds, then `begin()` gives the first observation (reset, or restored). The
    config's log_every, checkpoint_every and eval_every are in env steps, counted in vector
    steps (the run's iterations, each num_envs env steps); checkpoint_seconds in seconds.

    `discrete`: the algorithm picks among choices (DQN), the envs' actions must be Discrete, and
    `action_table` says what its exported policy outputs for each choice: the row of continuous
    actions a discretized env sends (its metadata["action_table"], sim/discrete_actions.py), or
    for an env with native discrete actions the index itself, one column."""

    def __init__(self, algo: str, config: Any, make_envs: VectorEnvFactory, run_dir: Path,
                 metadata: dict[str, Any] | None, loss_names: list[str],
                 resume: dict[str, Any] | None = None, discrete: bool = False,
                 on_evaluation: EvaluationHook | None = None) -> None:
        self.config, self.discrete = config, discrete
        self.vector_steps = max(1, -(-config.total_steps // config.num_envs))
        self.every = {name: max(1, -(-getattr(config, name) // config.num_envs))
                      for name in ("log_every", "checkpoint_every", "eval_every")}
        self.action_table: np.ndarray | None = None
        self.run = TrainingRun(algo, config, make_envs, run_dir, metadata, resume, self._layout,
                               [*loss_names, "updates"], eval_every=self.every["eval_every"],
                               checkpoint_every=self.every["checkpoint_every"],
                               rows_at_checkpoints=False, timing_columns=("update_ms",),
                               checkpoint_seconds=config.checkpoint_seconds,
                               on_evaluation=on_evaluation)
        self.envs, self.stats = self.run.envs, self.run.stats
        self.obs_size, self.action_size = self.run.sizes["obs_size"], self.run.sizes["action_size"]
        self.updates, self.first_iteration = 0, 1
        self.losses: dict[str, torch.Tensor] = {}
        self.first_update_seconds = 0.0
        """The first update's time and those of the updates that compiled (TD3's actor step
        compiles at its first call, the 2nd update), kept apart from the others'."""
        self._compiled_now = False
        self.update_seconds, self.timed_updates = 0.0, 0
        """Time in updates after the first, and their count, since the last row of metrics."""
        self.total_update_seconds, self.total_timed_updates = 0.0, 0
        # Updates of 256-row batches through 256-wide layers take their fp32 products on
        # oneDNN where it keeps them fp32 (policies/compiled.py): SAC's 4.5 -> 3.2 ms here.
        self.fast_matmuls = (config.batch_size >= FAST_MATMUL_MIN_SIZE
                             and min(config.hidden_sizes) >= FAST_MATMUL_MIN_SIZE
                             and onednn_keeps_fp32())
        self.threads = torch_threads_for(config.torch_threads)
        torch.set_num_threads(self.threads)
        self.cores = CoreWatch() if config.torch_threads == 0 and self.threads > 1 else None
        """torch_threads 0: watched, for other processes that would make the threads wait."""
        self.updates_compiled: list[CompiledUpdate] = []

    def _layout(self, envs: gym.vector.VectorEnv, algo: str) -> dict[str, Any]:
        """The sizes, the action space checked; sets `action_table` of a discrete run."""
        space = envs.single_action_space
        (check_discrete_actions if self.discrete else check_continuous_actions)(space, algo)
        if self.discrete:
            table = envs.metadata.get("action_table")
            self.action_table = (np.arange(space.n, dtype=np.float32)[:, None] if table is None
                                 else np.asarray(table, dtype=np.float32))
            if len(self.action_table) != space.n:
                raise ValueError(f"the env's action_table has {len(self.action_table)} rows for "
                                 f"{space.n} choices")
        return {"obs_size": envs.single_observation_space.shape[0],
                "action_size": (space.shape[0] if self.action_table is None
                                else self.action_table.shape[1])}

    @property
    def steps(self) -> int:
        """Env steps taken, the runs before a resume included."""
        return self.run.steps

    def compiled(self, update: Callable[..., Any]) -> Callable[..., Any]:
        """`update` compiled into one graph if config.compile asks for it for this run's number
        of updates (policies/compiled.py), else as it is."""
        updates = ((self.vector_steps - self.config.learning_starts // self.config.num_envs)
                   // self.config.train_freq * self.config.gradient_steps)
        compiled = CompiledUpdate(update, should_compile(self.config.compile, updates),
                                  self._compiled)
        self.updates_compiled.append(compiled)
        return compiled

    def _compiled(self) -> None:
        """The compiler's worker processes are the run's own: the watch starts after them."""
        self._compiled_now = True
        if self.cores is not None:
            self.cores.restart()

    def _watch_cores(self) -> None:
        """torch_threads 0: on to one thread when other processes keep half a core busy (a
        product's threads would wait on each other); the updates compile again for it."""
        others = self.cores.others_busy()
        if others is None or others < OTHERS_BUSY_CORES:
            return
        print(f"other processes keep {others:.1f} cores busy: the updates go on with 1 torch "
              f"thread of {self.threads} (at {self.steps:,} steps; torch_threads 1 sets it "
              "from the start)", file=sys.stderr, flush=True)
        self.threads, self.cores = 1, None
        torch.set_num_threads(1)
        for compiled in self.updates_compiled:
            compiled.again()

    def keep(self, agent: nn.Module, optimizers: dict[str, Any], buffer: ReplayBuffer,
             rng: np.random.Generator, noise: Any = None) -> None:
        """What a checkpoint holds and a resume restores, besides the envs and the logs."""
        self.optimizers, self.buffer, self.noise = optimizers, buffer, noise
        # The configured rates, which config.anneal_lr scales down as steps go by.
        self.base_rates = {name: float(optimizer.lr) for name, optimizer in optimizers.items()}
        self.run.keep(agent, optimizers, rng, self._resume_state, self._restore)

    def _resume_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of this run besides what every run keeps."""
        return {"buffer": self.buffer.state_dict(),
                "noise": None if self.noise is None else self.noise.state_dict(),
                "updates": self.updates}

    def _restore(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        if self.noise is not None:
            self.noise.load_state_dict(state["noise"])
        self.updates = state["updates"]

    def begin(self, seed: int) -> np.ndarray:
        """The first observation: the envs reset from `seed`, or, resuming, everything as it was
        when the checkpoint was written; then `first_iteration` is the vector step to run next."""
        obs = self.run.begin(seed)
        self.first_iteration = self.run.first_iteration
        return obs

    def record(self, info: dict[str, Any]) -> None:
        """After an env step of every copy."""
        self.run.record(info)

    def learn(self, update: Callable[[], dict[str, torch.Tensor]]) -> None:
        """Run one gradient update (sample and step) and time it; keep its losses; stop on
        NaN/inf naming the last good checkpoint. The first update's time, and that of any
        update that compiled, is kept apart from the others'."""
        start = time.perf_counter()
        if self.config.anneal_lr:
            remaining = max(0.0, 1.0 - self.steps / self.config.total_steps)
            for name, optimizer in self.optimizers.items():
                optimizer.set_learning_rate(self.base_rates[name] * remaining)
        with fast_matmuls(self.fast_matmuls):
            losses = update()
        seconds = time.perf_counter() - start
        if not self.first_update_seconds or self._compiled_now:
            self.first_update_seconds += seconds
            self._compiled_now = False
        else:
            self.update_seconds += seconds
            self.timed_updates += 1
        if self.cores is not None:
            self._watch_cores()
        self.updates += 1
        self.losses.update(losses)
        if torch.stack(list(self.losses.values())).isfinite().all():
            return
        bad = {k: v.item() for k, v in self.losses.items()}
        self.run.stop(f"losses became {bad}")

    def after_iteration(self, iteration: int, obs: np.ndarray, policy: Callable[[], nn.Module],
                        bar: TrainingProgress) -> None:
        """Evaluate, log, checkpoint, as due at this vector step; `obs` is what the next
        action will be for; `policy` makes the policy to evaluate."""
        last = iteration == self.vector_steps
        self.run.after_iteration(iteration, last, obs, policy, self._row, bar,
                                 row_due=iteration % self.every["log_every"] == 0 or last)

    def _row(self) -> dict[str, Any]:
        """The update columns of a row of metrics; the time per update restarts."""
        update_ms = (round(1e3 * self.update_seconds / self.timed_updates, 3)
                     if self.timed_updates else "")
        self.total_update_seconds += self.update_seconds
        self.total_timed_updates += self.timed_updates
        self.update_seconds, self.timed_updates = 0.0, 0
        return {"update_ms": update_ms, **{k: v.item() for k, v in self.losses.items()},
                "updates": self.updates}

    def close(self) -> None:
        self.run.close()

    def finish(self) -> dict[str, Any]:
        """After the last iteration (which wrote the last checkpoint)."""
        return self.run.finish({
            "updates": self.updates, "torch_threads": self.threads,
            "first_update_seconds": round(self.first_update_seconds, 3),
            "update_ms": (round(1e3 * self.total_update_seconds / self.total_timed_updates, 3)
                          if self.total_timed_updates else None)})
