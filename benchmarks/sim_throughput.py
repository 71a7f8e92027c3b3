"""Simulation throughput, measured side by side in one run (medians of repeats):

- each own task: raw `mj_step` of the same model with the same substeps (one control period) on
  the env's own states vs a single env (`make_env`, wrappers included) vs our in-process batch
  vector env of 16 and of 64 copies;
- vector envs: batch vs gymnasium's sync vs subprocess (async) vector envs;
- the batch env with each robot's `default` randomization preset vs without, and with the
  preset's reset-time terms alone;
- offscreen rendering at 84x84 from the robot's camera, shadows and reflections off (our models
  define no shadow map or reflective material, so turning the flags on changes nothing).

Usage: python benchmarks/sim_throughput.py [--seconds 1.5] [--repeats 3]
Writes benchmarks/results/sim_throughput.json and .md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import time
from collections.abc import Callable

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np
from published import add_save_flag, publish

from randomization.config import RandomizationConfig, load_config
from randomization.envs import make_env, make_vector_env
from sim.pixels import PixelObservation
from sim.registration import OUR_ENVS, robot_of


def rate(run_once: Callable[[], int], seconds: float, repeats: int) -> float:
    """Median over `repeats` of items per second; `run_once` returns how many items it did."""
    return interleaved({"x": run_once}, seconds, repeats)["x"]


def interleaved(runs: dict[str, Callable[[], int | tuple[int, float]]], seconds: float,
                repeats: int) -> dict[str, float]:
    """Median items per second of each run, measured in turns (a, b, c, a, b, c, ...) so that a
    change in the machine's load hits all alike. A run returns how many items it did, or
    (items, seconds) when it times itself."""
    rates: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run_once in runs.items():
            done, timed, start = 0, 0.0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                result = run_once()
                if isinstance(result, tuple):
                    done, timed = done + result[0], timed + result[1]
                else:
                    done += result
            rates[name].append(done / (timed or time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


STATE = mujoco.mjtState.mjSTATE_INTEGRATION


def physics_of_env_steps(env_id: str, steps: int = 400) -> Callable[[], tuple[int, float]]:
    """Bare `mj_step` doing exactly the env's physics: the states, commands and servo gains one
    copy of the batch env went through under random actions are replayed, and only the
    `mj_step` calls are timed (one control period each). The physics cost depends on the states
    (contacts, joint limits, solver iterations), so this is the baseline the env's cost is
    measured against; random commands over the whole range make a cheaper baseline."""
    envs = make_vector_env(env_id, 1, mode="batch")
    envs.reset(seed=0)
    sim = envs.sims[0]
    model, data = sim.model, sim.data
    size = mujoco.mj_stateSize(model, STATE)
    # Per step: the state after it, the commands and actuator gains (servo deadband) it used,
    # whether the copy was reset after it.
    records = []
    actions = np.random.default_rng(0).uniform(-1, 1, (steps, *envs.action_space.shape))
    for action in actions:
        envs.step(action.astype(np.float32))
        state = np.empty(size)
        mujoco.mj_getState(model, data, state, STATE)
        records.append((state, data.ctrl.copy(), model.actuator_gainprm[:, 0].copy(),
                        model.actuator_biasprm[:, 1].copy(), envs.steps[0] == 0))

    def run() -> tuple[int, float]:
        elapsed, count = 0.0, 0
        for previous, (_, ctrl, gain, bias, _) in itertools.pairwise(records):
            before, reset = previous[0], previous[-1]
            if reset:  # that step started from a fresh episode, not from `before`
                continue
            mujoco.mj_setState(model, data, before, STATE)
            data.ctrl[:] = ctrl
            model.actuator_gainprm[:, 0] = gain
            model.actuator_biasprm[:, 1] = bias
            start = time.perf_counter()
            mujoco.mj_step(model, data, nstep=sim.substeps)
            elapsed += time.perf_counter() - start
            count += 1
        return count, elapsed

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


def vector_env(env_id: str, num_envs: int, mode: str,
               randomization: RandomizationConfig | None = None
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
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--num-envs", type=int, default=16)
    add_save_flag(parser)
    args = parser.parse_args()
    s, r, n = args.seconds, args.repeats, args.num_envs

    tasks = []
    for env_id in OUR_ENVS:
        preset = load_config("default", robot_of(env_id))
        envs = {f"batch{n}": vector_env(env_id, n, "batch"),
                f"batch{4 * n}": vector_env(env_id, 4 * n, "batch"),
                "default": vector_env(env_id, n, "batch", randomization=preset),
                # The preset's reset-time terms alone (model terms; the rest act every step).
                "reset_terms": vector_env(env_id, n, "batch",
                                          randomization=RandomizationConfig(preset.model_terms))}
        measured = interleaved({"raw": physics_of_env_steps(env_id), "single": single_env(env_id),
                                **{name: run for name, (run, _) in envs.items()}}, s, r)
        for _, close in envs.values():
            close()
        physics, single, plain = measured["raw"], measured["single"], measured[f"batch{n}"]
        row = {"env": env_id, "raw_mj_step_control_steps_per_s": physics,
               "single_env_steps_per_s": single, "single_cost_vs_raw": physics / single}
        for count in (n, 4 * n):
            row[f"batch{count}_env_steps_per_s"] = measured[f"batch{count}"]
            row[f"batch{count}_cost_vs_raw"] = physics / measured[f"batch{count}"]
        randomized, reset_only = measured["default"], measured["reset_terms"]
        row[f"batch{n}_default_randomization_steps_per_s"] = randomized
        row["randomization_slowdown"] = 1.0 - randomized / plain
        row[f"batch{n}_reset_terms_steps_per_s"] = reset_only
        row["reset_terms_slowdown"] = 1.0 - reset_only / plain
        tasks.append(row)
        print(f"{env_id}: raw mj_step {physics:,.0f}/s, single env {single:,.0f}/s "
              f"({physics / single:.2f}x raw), batch of {n} {row[f'batch{n}_env_steps_per_s']:,.0f}/s "
              f"({row[f'batch{n}_cost_vs_raw']:.2f}x raw), batch of {4 * n} "
              f"({row[f'batch{4 * n}_cost_vs_raw']:.2f}x raw), with the default randomization "
              f"{randomized:,.0f}/s ({100 * row['randomization_slowdown']:+.0f} % slower; its "
              f"reset-time terms alone {100 * row['reset_terms_slowdown']:+.0f} %)")

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
    lines = [
        "# Simulation throughput",
        "",
        f"Medians of {r} runs of {s} s, taken in turns, {os.cpu_count()} CPUs, mujoco {mujoco.__version__}. "
        "Raw mj_step: bare `mj_step` calls, one control period each, replaying the states, "
        "commands and servo gains the env went through under random actions (physics costs "
        "depend on contacts and joint limits, so the baseline does the env's own physics). "
        "Cost vs raw: how many times that time one env step takes; the target is at most 1.5x.",
        "",
        f"| env | raw mj_step (control steps/s) | single env (steps/s) | cost vs raw | batch of {n} "
        f"(steps/s) | cost vs raw | batch of {4 * n} (steps/s) | cost vs raw |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in tasks:
        lines.append(f"| {t['env']} | {t['raw_mj_step_control_steps_per_s']:,.0f} | "
                     f"{t['single_env_steps_per_s']:,.0f} | {t['single_cost_vs_raw']:.2f}x | "
                     f"{t[f'batch{n}_env_steps_per_s']:,.0f} | {t[f'batch{n}_cost_vs_raw']:.2f}x | "
                     f"{t[f'batch{4 * n}_env_steps_per_s']:,.0f} | "
                     f"{t[f'batch{4 * n}_cost_vs_raw']:.2f}x |")
    lines += ["", f"| env | batch of {n}, no randomization (steps/s) | `default` preset's "
              "reset-time terms (steps/s) | slower by (target < 10 %) | whole `default` preset "
              "(steps/s) | slower by |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {t['env']} | {t[f'batch{n}_env_steps_per_s']:,.0f} | "
              f"{t[f'batch{n}_reset_terms_steps_per_s']:,.0f} | "
              f"{100 * t['reset_terms_slowdown']:.0f} % | "
              f"{t[f'batch{n}_default_randomization_steps_per_s']:,.0f} | "
              f"{100 * t['randomization_slowdown']:.0f} % |" for t in tasks]
    lines += ["", "| vector env | copies | steps/s |", "|---|---:|---:|"]
    lines += [f"| {v['mode']} ({v['env']}) | {v['num_envs']} | {v['steps_per_s']:,.0f} |"
              for v in vectors]
    lines += ["", "| render 84x84 (target >= 300) | frames/s |", "|---|---:|"]
    lines += [f"| {x['env']} | {x['fps_84x84']:,.0f} |" for x in renders]
    publish("sim_throughput", results, "\n".join(lines), args.save)


if __name__ == "__main__":
    main()
