"""The batch env's physics on every core, measured side by side in one run (medians of rounds
taken in turns):

1. physics alone, N copies of a task's model one control period each: `mj_step` over the copies
   on one thread; the same split over 2 threads (a thread pool, as `sim/batch_env.py` does it);
   MuJoCo's `rollout` module on 2 threads (its own thread pool; the copies' states go in and
   come back out each control period, as an env that keeps its MjData needs);
2. the whole batch env step (task functions, command history, resets included) with
   `physics_threads` 1 and 2, next to bare `mj_step` of the env's own physics on one core.

Usage: python benchmarks/batch_physics.py [--seconds 1.0] [--rounds 5]
Prints its table; `--save` writes benchmarks/results/batch_physics.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import mujoco
import mujoco.rollout
import numpy as np
from published import add_save_flag, publish
from sim_throughput import interleaved, physics_of_env_steps

from sim.batch_env import BatchRobotEnv
from sim.registration import OUR_ENVS

STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS
THREADS = 2


def copies_at_work(env_id: str, count: int) -> BatchRobotEnv:
    """`count` copies in the states 50 random-action steps lead to (moving, in contact)."""
    envs = BatchRobotEnv(count, physics_threads=1, **OUR_ENVS[env_id])
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(50):
        envs.step(rng.uniform(-1, 1, envs.action_space.shape).astype(np.float32))
    return envs


def physics_alone(env_id: str, count: int) -> tuple[dict[str, Callable[[], int]], Callable]:
    """Control periods of physics per second, over `count` copies, three ways."""
    envs = copies_at_work(env_id, count)
    pairs = [(sim.model, sim.data) for sim in envs.sims]
    substeps = envs.sims[0].substeps
    halves = [pairs[: count // 2], pairs[count // 2:]]
    pool = ThreadPoolExecutor(THREADS - 1)

    def step_all(some: list) -> None:
        for model, data in some:
            mujoco.mj_step(model, data, nstep=substeps)

    def one_thread() -> int:
        step_all(pairs)
        return count

    def thread_pool() -> int:
        other = pool.submit(step_all, halves[1])
        step_all(halves[0])
        other.result()
        return count

    models = [model for model, _ in pairs]
    size = mujoco.mj_stateSize(models[0], STATE)
    states = np.empty((count, size))
    after = np.empty((count, substeps, size))
    thread_datas = [mujoco.MjData(models[0]) for _ in range(THREADS)]
    control = np.repeat(np.array([data.ctrl for _, data in pairs])[:, None, :], substeps, axis=1)

    def rollout() -> int:
        for row, (model, data) in zip(states, pairs, strict=True):
            mujoco.mj_getState(model, data, row, STATE)
        mujoco.rollout.rollout(models, thread_datas, states, control, nstep=substeps,
                               state=after, skip_checks=True, persistent_pool=True)
        for row, (model, data) in zip(after[:, -1], pairs, strict=True):
            mujoco.mj_setState(model, data, row, STATE)
        return count

    def close() -> None:
        pool.shutdown()
        envs.close()

    return {"mj_step, 1 thread": one_thread, f"mj_step, {THREADS} threads": thread_pool,
            f"rollout, {THREADS} threads": rollout}, close


def env_steps(env_id: str, count: int, threads: int) -> tuple[Callable[[], int], Callable]:
    envs = BatchRobotEnv(count, physics_threads=threads, **OUR_ENVS[env_id])
    envs.reset(seed=0)
    actions = np.random.default_rng(0).uniform(
        -1, 1, (20, *envs.action_space.shape)).astype(np.float32)

    def run() -> int:
        for action in actions:
            envs.step(action)
        return len(actions) * count

    return run, envs.close


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--copies", type=int, nargs="+", default=[16, 64])
    add_save_flag(parser)
    args = parser.parse_args()
    if len(os.sched_getaffinity(0)) < THREADS:
        raise SystemExit(f"this process may use {len(os.sched_getaffinity(0))} core(s); the "
                         f"benchmark compares 1 thread with {THREADS}")
    load = round(os.getloadavg()[0], 2)
    physics, envs = [], []
    for env_id in OUR_ENVS:
        for count in args.copies:
            runs, close = physics_alone(env_id, count)
            rates = interleaved(runs, args.seconds, args.rounds)
            close()
            physics.append({"env": env_id, "copies": count, "control_steps_per_s": rates})
            print(env_id, count, {k: f"{v:,.0f}" for k, v in rates.items()})
            one, closing_one = env_steps(env_id, count, 1)
            two, closing_two = env_steps(env_id, count, THREADS)
            rates = interleaved({"bare mj_step, 1 core": physics_of_env_steps(env_id),
                                 "batch env, 1 thread": one,
                                 f"batch env, {THREADS} threads": two}, args.seconds, args.rounds)
            closing_one()
            closing_two()
            envs.append({"env": env_id, "copies": count, "steps_per_s": rates})
            print(env_id, count, {k: f"{v:,.0f}" for k, v in rates.items()})

    results = {"machine": {"cpus": len(os.sched_getaffinity(0)),
                           "python": platform.python_version(), "mujoco": mujoco.__version__},
               "load_average": load, "settings": vars(args), "physics": physics, "envs": envs,
               "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    lines = ["# The batch env's physics on 2 cores", "",
             f"Medians of {args.rounds} rounds of {args.seconds} s, taken in turns; "
             f"{results['machine']['cpus']} cores, mujoco {mujoco.__version__}; 1-minute load "
             f"average at the start {load}. Rates in control periods (env steps) per second.",
             "", "Physics alone: the copies in the states 50 random-action steps lead to, one "
             "control period each.", "",
             "| env | copies | mj_step, 1 thread | mj_step, 2 threads | ratio | rollout, 2 threads "
             "| ratio |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in physics:
        r = row["control_steps_per_s"]
        base = r["mj_step, 1 thread"]
        lines.append(f"| {row['env']} | {row['copies']} | {base:,.0f} | "
                     f"{r['mj_step, 2 threads']:,.0f} | {r['mj_step, 2 threads'] / base:.2f}x | "
                     f"{r['rollout, 2 threads']:,.0f} | {r['rollout, 2 threads'] / base:.2f}x |")
    lines += ["", "The whole batch env step (task functions, command history, resets) against "
              "bare `mj_step` of the env's own physics (its states, commands and servo gains "
              "replayed) on one core.", "",
              "| env | copies | bare mj_step, 1 core | batch env, 1 thread | batch env, 2 "
              "threads | 2 threads / 1 | 2 threads / bare mj_step |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for row in envs:
        r = row["steps_per_s"]
        bare, one, two = (r["bare mj_step, 1 core"], r["batch env, 1 thread"],
                          r["batch env, 2 threads"])
        lines.append(f"| {row['env']} | {row['copies']} | {bare:,.0f} | {one:,.0f} | "
                     f"{two:,.0f} | {two / one:.2f}x | {two / bare:.2f}x |")
    publish("batch_physics", results, "\n".join(lines), args.save)


if __name__ == "__main__":
    main()
