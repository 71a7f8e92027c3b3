"""Does randomization buy robustness? Evaluate trained runs, in one go, on nominal physics and
on physics none of them saw exactly: heavier links, weaker servos, a 2-step action delay.

Usage: python benchmarks/randomization_robustness.py RUN_DIR [RUN_DIR ...] [--episodes 200]
Prints its table; `--save` writes benchmarks/results/randomization_robustness.{json,md}.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from published import add_save_flag, publish

from deploy.export import load_run
from policies.algorithms import algorithm_by_name
from randomization.config import RandomizationConfig
from randomization.envs import make_env
from randomization.wrapper import DomainRandomization

CONDITIONS = {
    "nominal": {},
    "heavier links x1.3": {"mass": {"distribution": "choice", "choices": [1.3]}},
    "servo kp x0.5": {"actuator_kp": {"distribution": "choice", "choices": [0.5]}},
    "2-step delay": {"action_delay": {"distribution": "choice", "choices": [2]}},
    "all three": {"mass": {"distribution": "choice", "choices": [1.3]},
                  "actuator_kp": {"distribution": "choice", "choices": [0.5]},
                  "action_delay": {"distribution": "choice", "choices": [2]}},
    "harsher: x1.6 mass, x0.3 kp, x0.5 torque, 3-step delay": {
        "mass": {"distribution": "choice", "choices": [1.6]},
        "actuator_kp": {"distribution": "choice", "choices": [0.3]},
        "torque_limit": {"distribution": "choice", "choices": [0.5]},
        "action_delay": {"distribution": "choice", "choices": [3]}},
}


def success_rate(run_dir: Path, condition: dict, episodes: int) -> float:
    checkpoint, info = load_run(run_dir)
    policy = algorithm_by_name(checkpoint["algo"]).load_policy(checkpoint)
    env_id = checkpoint["metadata"]["env_id"]
    env = make_env(env_id)
    if condition:
        env = DomainRandomization(env, RandomizationConfig.from_dict(condition))
    successes = 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=10_000 + episode)
        while True:
            with torch.no_grad():
                action = policy(torch.as_tensor(obs, dtype=torch.float32)[None])[0].numpy()
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                successes += int(info["is_success"])
                break
    return successes / episodes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--episodes", type=int, default=200)
    add_save_flag(parser)
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        info = json.loads((run / "run.json").read_text())
        trained = info.get("randomization") or {}
        names = [name for name in trained if name != "adr"]
        adr = " (ADR over " + ", ".join(trained["adr"]["terms"]) + ")" if "adr" in trained else ""
        row = {"run": str(run), "trained_with": (", ".join(names) or "none") + adr,
               "steps": int(info["config"]["total_steps"])}
        for name, condition in CONDITIONS.items():
            row[name] = success_rate(run, condition, args.episodes)
        rows.append(row)
        print(row)
    lines = ["# Success rate under physics the policy did not train on", "",
             f"{args.episodes} deterministic episodes per cell, same seeds for every run.", "",
             "| run | trained with | steps | " + " | ".join(CONDITIONS) + " |",
             "|---|---|---:|" + "---:|" * len(CONDITIONS)]
    for row in rows:
        lines.append(f"| {row['run']} | {row['trained_with']} | {row['steps']:,} | "
                     + " | ".join(f"{row[c]:.2f}" for c in CONDITIONS) + " |")
    publish("randomization_robustness", rows, "\n".join(lines), args.save)


if __name__ == "__main__":
    main()
