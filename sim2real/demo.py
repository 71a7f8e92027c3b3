"""`sim2real demo`: the whole path on the default arm in a few minutes.

Train PPO on the randomized reach task, export to ONNX with its contract, deploy the ONNX file
on the simulated robot in real time, and print what each stage measured.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ENV_ID = "sim2real/ArmReach-v0"
RANDOMIZATION = "default"
DEFAULT_STEPS = 250_000
SUCCESS_TARGET = 0.9


def run_demo(out: Path, steps: int | None = None, episodes: int = 100, seed: int = 0) -> bool:
    """Returns whether the deployed policy met the success target."""
    from deploy.on_robot import deploy_on_robot
    from sim2real.runs import train_run

    console = Console()
    steps = steps or DEFAULT_STEPS
    begin = time.perf_counter()

    console.rule(f"1/3 train PPO on {ENV_ID} ({RANDOMIZATION} randomization, {steps:,} steps)")
    result = train_run(ENV_ID, "ppo", steps, seed, out, RANDOMIZATION, overwrite=True)
    train_seconds = time.perf_counter() - begin

    console.rule("2/3 export to ONNX")
    from deploy.export import export

    exported = export(out)
    policy_path = exported.path
    console.print(f"{policy_path}: onnxruntime matches torch to {exported.onnx_error:.1e} on 1000 "
                  f"observations; deployed commands match the env's to "
                  f"{exported.pipeline_error:.1e} over {exported.pipeline_steps} steps")
    export_seconds = time.perf_counter() - begin - train_seconds

    console.rule(f"3/3 deploy {policy_path.name} on the simulated arm in real time "
                 f"({episodes} reach episodes)")
    report = deploy_on_robot(policy_path, "sim", seconds=episodes * 2.5 + 5, max_episodes=episodes,
                             seed=seed + 1)
    deploy_seconds = time.perf_counter() - begin - train_seconds - export_seconds

    table = Table(title="sim2real demo")
    table.add_column("stage")
    table.add_column("result")
    table.add_column("time", justify="right")
    table.add_row("train", f"{result['steps']:,} steps, return {result['mean_return']:.2f}, "
                  f"success (stochastic) {result['success_rate']:.0%}", f"{train_seconds:.0f} s")
    table.add_row("export", f"max |onnxruntime - torch| = {exported.onnx_error:.1e}, "
                  f"max |runtime - env| command = {exported.pipeline_error:.1e}",
                  f"{export_seconds:.1f} s")
    table.add_row("deploy", f"{report.successes}/{report.episodes} reached within 2 cm "
                  f"(success rate {report.success_rate:.2f})", f"{deploy_seconds:.0f} s")
    table.add_row("loop", f"{report.loop_rate_hz:.1f} Hz of {report.target_rate_hz:.0f} Hz, "
                  f"{report.deadline_misses} deadline misses, compute p99 "
                  f"{report.compute_p99_us:.0f} us, {report.clamped_commands} clamped, "
                  f"{report.homings} homings", "")
    console.print(table)
    ok = report.success_rate >= SUCCESS_TARGET
    verdict = "PASS" if ok else "FAIL"
    console.print(f"deploy success rate {report.success_rate:.2f} (target {SUCCESS_TARGET}) "
                  f"{verdict}; total {time.perf_counter() - begin:.0f} s; run dir {out}")
    return ok
