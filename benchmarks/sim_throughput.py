"""Simulation throughput, measured side by side in one run (medians of repeats):

- each own task: raw `mj_step` of the same model with the same substeps (one control period) vs
  a single env (`make_env`, wrappers included) vs our in-process batch vector env;
- vector envs: batch vs gymnasium's sync vs subprocess (async) vector envs;
- the batch env with each robot's `default` randomization preset vs without;
- offscreen rendering at 84x84 from the robot's camera, shadows and reflections off (our models
  define no shadow map or reflective material, so turning the flags on changes nothing).

Usage: python benchmarks/sim_throughput.py [--seconds 1.5] [--repeats 3]
Writes benchmarks/results/sim_throughput.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np

from sim.catalog import robot_by_name
from sim.physics import RobotSimulation
from sim.pixels import PixelObservation
from sim.registration import OUR_ENVS, make_env, make_vector_env

RESULTS = Path(__file__).parent / "results"


def rate(run_once: Callable[[], int], seconds: float, repeats: int) -> float:
    """Median over `repeats` of items per second; `run_once` returns how many items it did."""
    rates = []
    for _ in range(repeats):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            done += run_once()
        rates.append(done / (time.perf_counter() - start))
    return statistics.median(rates)


def raw_physics(robot: str) -> Callable[[], int]:
    """Bare `mj_step` for one control period at a time, with random commands so the robot
    moves (and touches things) as much as under the env's random actions."""
    sim = RobotSimulation(robot_by_name(robot))
    model, data, substeps = sim.model, sim.data, sim.substeps
    low, high = model.actuator_ctrlrange[:, 0], model.actuator_ctrlrange[:, 1]
    commands = np.random.default_rng(0).uniform(low, high, (100, model.nu))

    def run() -> int:
        for command in commands:
            data.ctrl[:] = command
            mujoco.mj_step(model, data, nstep=substeps)
        return len(commands)

    return run


def single_env(env_id: str) -> Callable[[], int]:
    env = make_env(env_id)
    env.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (100, *env.action_space.shape)).astype(np.float32)

    def run() -> int:
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        return len(actions)

    return run


def vector_env(env_id: str, num_envs: int, mode: str, randomization: str | None = None
               ) -> tuple[Callable[[], int], Callable[[], None]]:
    envs = make_vector_env(env_id, num_envs, randomization, mode=mode)
    envs.reset(seed=0)
    actions = np.random.default_rng(0).uniform(-1, 1, (20, *envs.action_space.shape)).astype(np.float32)

    def run() -> int:
        for action in actions:
            envs.step(action)
        return len(actions) * num_envs

    return run, envs.close


def render(env_id: str) -> Callable[[], int]:
    env = PixelObservation(make_env(env_id), 84, 84, with_state=False)
    env.reset(seed=0)

    def run() -> int:
        for _ in range(10):
            env.render_camera()
        return 10

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--num-envs", type=int, default=16)
    args = parser.parse_args()
    s, r, n = args.seconds, args.repeats, args.num_envs

    tasks = []
    for env_id, spec in OUR_ENVS.items():
        physics = rate(raw_physics(spec["robot"]), s, r)
        single = rate(single_env(env_id), s, r)
        run, close = vector_env(env_id, n, "batch")
        batch = rate(run, s, r)
        close()
        run, close = vector_env(env_id, n, "batch", randomization="default")
        randomized = rate(run, s, r)
        close()
        tasks.append({"env": env_id, "raw_mj_step_control_steps_per_s": physics,
                      "single_env_steps_per_s": single, f"batch{n}_env_steps_per_s": batch,
                      "single_cost_vs_raw": physics / single, "batch_cost_vs_raw": physics / batch,
                      f"batch{n}_default_randomization_steps_per_s": randomized,
                      "randomization_slowdown": 1.0 - randomized / batch})
        print(f"{env_id}: raw {physics:,.0f}/s, single env {single:,.0f}/s "
              f"({physics / single:.2f}x raw), batch of {n} {batch:,.0f}/s ({physics / batch:.2f}x raw), "
              f"with the default randomization {randomized:,.0f}/s "
              f"({100 * (1 - randomized / batch):+.0f} % slower)")

    vectors = []
    for env_id in ("sim2real/ArmReach-v0",):
        for mode, count in (("batch", n), ("sync", n), ("async", 2), ("async", n)):
            run, close = vector_env(env_id, count, mode)
            value = rate(run, s, r)
            close()
            vectors.append({"env": env_id, "mode": mode, "num_envs": count, "steps_per_s": value})
            print(f"{env_id} {mode} x{count}: {value:,.0f} steps/s")

    renders = []
    for env_id in OUR_ENVS:
        if "Balance" in env_id:
            continue
        fps = rate(render(env_id), s, r)
        renders.append({"env": env_id, "fps_84x84": fps})
        print(f"{env_id} render 84x84: {fps:,.0f} fps (target >= 300)")

    results = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                           "mujoco": mujoco.__version__},
               "settings": vars(args), "tasks": tasks, "vector_envs": vectors, "render": renders}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sim_throughput.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Simulation throughput",
        "",
        f"Medians of {r} runs of {s} s, {os.cpu_count()} CPUs, mujoco {mujoco.__version__}. "
        "Cost vs raw: how many times the raw `mj_step` time (same model, same substeps) one env "
        "step takes; the target is at most 1.5x.",
        "",
        f"| env | raw mj_step (control steps/s) | single env (steps/s) | cost vs raw | batch of {n} "
        "(steps/s) | cost vs raw |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in tasks:
        lines.append(f"| {t['env']} | {t['raw_mj_step_control_steps_per_s']:,.0f} | "
                     f"{t['single_env_steps_per_s']:,.0f} | {t['single_cost_vs_raw']:.2f}x | "
                     f"{t[f'batch{n}_env_steps_per_s']:,.0f} | {t['batch_cost_vs_raw']:.2f}x |")
    lines += ["", f"| env | batch of {n}, no randomization (steps/s) | with the `default` preset "
              "(steps/s) | slower by (target < 10 %) |", "|---|---:|---:|---:|"]
    lines += [f"| {t['env']} | {t[f'batch{n}_env_steps_per_s']:,.0f} | "
              f"{t[f'batch{n}_default_randomization_steps_per_s']:,.0f} | "
              f"{100 * t['randomization_slowdown']:.0f} % |" for t in tasks]
    lines += ["", "| vector env | copies | steps/s |", "|---|---:|---:|"]
    lines += [f"| {v['mode']} ({v['env']}) | {v['num_envs']} | {v['steps_per_s']:,.0f} |"
              for v in vectors]
    lines += ["", "| render 84x84 (target >= 300) | frames/s |", "|---|---:|"]
    lines += [f"| {x['env']} | {x['fps_84x84']:,.0f} |" for x in renders]
    (RESULTS / "sim_throughput.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {RESULTS / 'sim_throughput.json'} and .md")


if __name__ == "__main__":
    main()
