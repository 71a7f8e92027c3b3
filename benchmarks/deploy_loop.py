"""Deploy loop timing, in one run:

1. per-cycle compute (observe + infer + supervise) of a policy with two 256-unit hidden layers on
   the reach arm, onnxruntime on one thread (what `sim2real deploy` runs) beside torch eager on
   one thread, over the same recorded robot readings, in alternating rounds;
2. a real-time run at 500 Hz against SimRobot stepping physics in real time: the whole loop
   (read, observe, infer, supervise, write), its deadline misses and jitter (how late each
   cycle starts after its deadline), without the telemetry log and then writing it as MCAP.
   The pendulum robot's model steps at 1 ms, so it runs at 2 ms here (its spec says 4 ms):
   the same robot and policy, retimed.

Usage: python benchmarks/deploy_loop.py [--seconds 30] [--cycles 3000] [--rounds 3]
Prints its table; `--save` writes benchmarks/results/deploy_loop.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from published import add_save_flag, publish

from deploy.realtime import request_realtime
from sim.commands import CommandHistory

HIDDEN = (256, 256)
TARGETS = {"compute_p99_us": 100.0, "miss_rate_percent": 0.1, "jitter_p99_us": 500.0}


def exported_policy(env_id: str, out: Path) -> Path:
    """A short PPO run with 256x256 networks, exported: a real policy file, untrained."""
    from deploy.export import export
    from sim2real.runs import train_run

    train_run(env_id, "ppo", 512, 0, out, None, progress=False,
              overrides={"num_envs": 4, "rollout_steps": 64, "epochs": 1, "hidden_sizes": HIDDEN})
    return export(out, check_count=100).path


def compute_latency(run_dir: Path, onnx_path: Path, cycles: int, rounds: int) -> dict:
    import torch

    from deploy.export import load_run
    from deploy.onnx_policy import OnnxPolicy
    from deploy.supervisor import SafetyConfig, Supervisor
    from hardware.sim_robot import SimRobot
    from policies.algorithms import algorithm_by_name
    from sim.catalog import make_task
    from sim.so_arm import SO_ARM

    torch.set_num_threads(1)
    onnx_policy = OnnxPolicy(onnx_path)
    checkpoint, _ = load_run(run_dir)
    torch_policy = algorithm_by_name(checkpoint["algo"]).load_policy(checkpoint)

    def torch_act(observation: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch_policy(torch.as_tensor(observation)[None])[0].numpy()

    contract = onnx_policy.contract
    task = make_task(contract.task["name"], SO_ARM, contract.task["config"])
    past = CommandHistory.for_task(task).commands  # empty: this policy observes no history
    rng = np.random.default_rng(0)
    # Readings the policy really meets: the arm driven by it, a new goal every 50 cycles.
    states, goals = [], []
    with SimRobot(SO_ARM, realtime=False) as robot:
        goal = task.sample_goal(rng)
        for i in range(cycles):
            if i % 50 == 0:
                goal = task.sample_goal(rng)
            state = robot.read_state()
            states.append(state)
            goals.append(goal)
            action = onnx_policy(task.evaluate(state, goal, past).observation)
            robot.send_command(task.action_to_command(action, state, past))

    samples: dict[str, dict[str, list[float]]] = {
        name: {"observe": [], "infer": [], "supervise": [], "compute": []}
        for name in ("onnxruntime", "torch eager")}
    for _ in range(rounds):
        for name, act in (("onnxruntime", onnx_policy), ("torch eager", torch_act)):
            supervisor = Supervisor(SO_ARM, SafetyConfig(), states[0])
            record = samples[name]
            for state, goal in zip(states, goals, strict=True):
                t0 = time.perf_counter()
                observation = task.evaluate(state, goal, past).observation
                t1 = time.perf_counter()
                command = task.action_to_command(act(observation), state, past)
                t2 = time.perf_counter()
                supervisor.filter(command, state, 10.0)
                t3 = time.perf_counter()
                record["observe"].append(t1 - t0)
                record["infer"].append(t2 - t1)
                record["supervise"].append(t3 - t2)
                record["compute"].append(t3 - t0)
    return {name: {f"{stage}_{q}_us": round(float(np.percentile(values, int(q[1:])) * 1e6), 1)
                   for stage, values in record.items() for q in ("p50", "p99")}
            for name, record in samples.items()}


class RetimedPolicy:
    """The same exported graph, its contract's control period set to `period`."""

    def __init__(self, policy, period: float) -> None:
        self.path = policy.path
        self.contract = dataclasses.replace(
            policy.contract, robot={**policy.contract.robot, "control_period": period})
        self._policy = policy

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        return self._policy(observation)


def realtime_run(onnx_path: Path, seconds: float, period: float,
                 log: Path | None) -> dict:
    from deploy.loop import run
    from deploy.onnx_policy import OnnxPolicy
    from hardware.sim_robot import SimRobot
    from sim.furuta import FURUTA

    spec = dataclasses.replace(FURUTA, control_period=period)
    policy = RetimedPolicy(OnnxPolicy(onnx_path), period)
    with SimRobot(spec) as robot:  # hanging at rest, as a swing-up starts
        report = run(policy, robot, seconds=seconds, log=log)
    return {"rate_hz": round(1 / period), "seconds": round(report.seconds, 2),
            "cycles": report.cycles, "deadline_misses": report.deadline_misses,
            "miss_rate_percent": round(100.0 * report.deadline_misses / max(report.cycles, 1), 4),
            "jitter_p99_us": round(report.jitter_p99_us, 1),
            "compute_p50_us": round(report.compute_p50_us, 1),
            "compute_p99_us": round(report.compute_p99_us, 1),
            "loop_rate_hz": round(report.loop_rate_hz, 1),
            "stage_p99_us": report.stage_p99_us, "stopped": report.stopped,
            "interventions": report.interventions}


def write(results: dict, save: bool) -> None:
    latency, loop = results["compute"], results["realtime"]
    ours, reference = latency["onnxruntime"], latency["torch eager"]
    lines = ["# Deploy loop timing", "",
             f"Policy MLP with hidden layers {HIDDEN}, one thread. Compute = observe + infer + "
             f"supervise per cycle, {results['cycles']} recorded reach-arm readings x "
             f"{results['rounds']} alternating rounds. 1-minute load average at the start: "
             f"{results['load_average']}.", "",
             "| per cycle | onnxruntime p50 us | p99 us | torch eager p50 us | p99 us | p99 ratio |"
             " target p99 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for stage in ("observe", "infer", "supervise", "compute"):
        target = f"<= {TARGETS['compute_p99_us']:.0f} us" if stage == "compute" else ""
        lines.append(f"| {stage} | {ours[f'{stage}_p50_us']} | {ours[f'{stage}_p99_us']} | "
                     f"{reference[f'{stage}_p50_us']} | {reference[f'{stage}_p99_us']} | "
                     f"{ours[f'{stage}_p99_us'] / reference[f'{stage}_p99_us']:.2f}x | {target} |")
    rt = results["compute_realtime"]
    lines += ["", f"The same with {rt['scheduling']}:", "",
              "| per cycle | onnxruntime p50 us | p99 us | torch eager p50 us | p99 us | "
              "target p99 |", "|---|---:|---:|---:|---:|---:|"]
    for stage in ("observe", "infer", "supervise", "compute"):
        target = f"<= {TARGETS['compute_p99_us']:.0f} us" if stage == "compute" else ""
        ours_rt, reference_rt = rt["onnxruntime"], rt["torch eager"]
        lines.append(f"| {stage} | {ours_rt[f'{stage}_p50_us']} | {ours_rt[f'{stage}_p99_us']} "
                     f"| {reference_rt[f'{stage}_p50_us']} | {reference_rt[f'{stage}_p99_us']} "
                     f"| {target} |")
    first = next(iter(loop.values()))
    lines += ["", f"Real-time runs, one after the other: the pendulum robot at {first['rate_hz']} "
              f"Hz against SimRobot in real time for {first['seconds']} s each, default safety; "
              "without the telemetry log, then writing it as MCAP.", "",
              "| telemetry | cycles | loop Hz | deadline misses | miss rate | target | jitter p99 "
              "| target | compute p50 / p99 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, run in loop.items():
        lines.append(f"| {name} | {run['cycles']} | {run['loop_rate_hz']} | "
                     f"{run['deadline_misses']} | {run['miss_rate_percent']} % | "
                     f"<= {TARGETS['miss_rate_percent']} % | {run['jitter_p99_us']} us | "
                     f"<= {TARGETS['jitter_p99_us']:.0f} us | {run['compute_p50_us']} / "
                     f"{run['compute_p99_us']} us |")
    publish("deploy_loop", results, "\n".join(lines), save)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cycles", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=500.0, help="real-time run rate, Hz")
    add_save_flag(parser)
    args = parser.parse_args()
    # The shared machine's load when the run began: p99 rises with the neighbours' work.
    load = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        arm = exported_policy("sim2real/ArmReach-v0", tmp / "arm")
        pendulum = exported_policy("sim2real/FurutaSwingup-v0", tmp / "pendulum")
        compute = compute_latency(tmp / "arm", arm, args.cycles, args.rounds)
        # The same, as `sim2real deploy --rt-priority 50 --cpu 0` runs it where it may.
        granted, restore = request_realtime(50, 0)
        try:
            compute_rt = compute_latency(tmp / "arm", arm, args.cycles, args.rounds)
        finally:
            restore()
        # The same loop without and with its MCAP telemetry log: what the log's writer costs.
        realtime = {"without log": realtime_run(pendulum, args.seconds, 1.0 / args.rate, None),
                    "MCAP log": realtime_run(pendulum, args.seconds, 1.0 / args.rate,
                                             tmp / "run.mcap")}
    results = {"cycles": args.cycles, "rounds": args.rounds, "load_average": load,
               "compute": compute,
               "compute_realtime": {"scheduling": granted, **compute_rt},
               "realtime": realtime, "targets": TARGETS,
               "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    write(results, args.save)


if __name__ == "__main__":
    main()
