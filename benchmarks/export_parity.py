"""Export parity for every algorithm and for a pixel policy: a short run of each on the reach arm,
exported by `sim2real export`'s own code, with both of its checks:

- onnxruntime against torch on 1,000 observations (target <= 1e-5, max abs action difference);
- the whole pipeline: recorded episodes driven by the torch policy in the training env against
  the deploy runtime's commands for the same readings (target <= 1e-4, max abs command
  difference, rad).

The runs are short (parity is about the graph, not about skill): PPO, A2C, TRPO and REINFORCE
512 steps, SAC/TD3/DDPG 400 steps with updates from step 100, pixel PPO 256 steps on 32x32
images; DQN 2,000 steps on the Furuta pendulum with 5 discrete voltages (its graph picks a
choice and outputs that voltage).

Usage: python benchmarks/export_parity.py
Prints its table; `--save` writes benchmarks/results/export_parity.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from published import add_save_flag, publish

ENV = "sim2real/ArmReach-v0"
FURUTA = "sim2real/FurutaBalance-v0"
# (algorithm, env, steps, settings, camera pixels, discrete choices per action)
CASES = [
    ("ppo", ENV, 512, {"num_envs": 4, "rollout_steps": 64, "epochs": 1}, None, None),
    ("a2c", ENV, 512, {"num_envs": 4, "rollout_steps": 8}, None, None),
    ("trpo", ENV, 512, {"num_envs": 4, "rollout_steps": 64}, None, None),
    ("reinforce", ENV, 512, {"num_envs": 4, "batch_steps": 100, "max_episode_steps": 100},
     None, None),
    ("sac", ENV, 400, {"learning_starts": 100, "batch_size": 64, "eval_every": 0}, None, None),
    ("td3", ENV, 400, {"learning_starts": 100, "batch_size": 64, "eval_every": 0}, None, None),
    ("ddpg", ENV, 400, {"learning_starts": 100, "batch_size": 64, "eval_every": 0}, None, None),
    ("dqn", FURUTA, 2_000, {"learning_starts": 500, "eval_every": 0}, None, 5),
    ("ppo", ENV, 256, {"num_envs": 2, "rollout_steps": 64, "epochs": 1}, 32, None),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_save_flag(parser)
    args = parser.parse_args()
    from deploy.export import PIPELINE_TOLERANCE, TOLERANCE, export
    from sim2real.runs import train_run

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for algo, env_id, steps, overrides, pixels, choices in CASES:
            name = f"{algo} (pixels {pixels}x{pixels})" if pixels else algo
            name += f" ({choices} choices a joint)" if choices else ""
            out = Path(tmp) / name.replace(" ", "_")
            train_run(env_id, algo, steps, 0, out, None, progress=False, overrides=overrides,
                      pixels=pixels, discrete_actions=choices)
            start = time.perf_counter()
            result = export(out)
            rows.append({"policy": name, "env": env_id, "onnx_error": result.onnx_error,
                         "pipeline_error": result.pipeline_error,
                         "pipeline_steps": result.pipeline_steps,
                         "export_seconds": round(time.perf_counter() - start, 2)})
            print(json.dumps(rows[-1]), flush=True)
    lines = ["# Export parity", "",
             f"Short runs on {ENV} (DQN: {FURUTA}, 5 voltages), exported with `sim2real "
             "export`'s checks. onnxruntime vs "
             f"torch: max |action difference| on 1,000 observations (target <= {TOLERANCE:g}). "
             f"Pipeline: max |command difference| (rad, or V for the Furuta motor) between the "
             f"training env and the deploy "
             f"runtime over 3 recorded episodes (target <= {PIPELINE_TOLERANCE:g}).", "",
             "| policy | env | onnxruntime vs torch | pipeline | steps compared | export s |",
             "|---|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['policy']} | {row['env']} | {row['onnx_error']:.2e} | "
                     f"{row['pipeline_error']:.2e} "
                     f"| {row['pipeline_steps']} | {row['export_seconds']} |")
    publish("export_parity", rows, "\n".join(lines), args.save)


if __name__ == "__main__":
    main()
