"""Export parity for every algorithm and for a pixel policy: a short run of each on the reach arm,
exported by `sim2real export`'s own code, with both of its checks:

- onnxruntime against torch on 1,000 observations (target <= 1e-5, max abs action difference);
- the whole pipeline: recorded episodes driven by the torch policy in the training env against
  the deploy runtime's commands for the same readings (target <= 1e-4, max abs command
  difference, rad).

The runs are short (parity is about the graph, not about skill): PPO 512 steps, SAC/TD3/DDPG
400 steps with updates from step 100, pixel PPO 256 steps on 32x32 images.

Usage: python benchmarks/export_parity.py
Writes benchmarks/results/export_parity.{json,md}.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ENV = "sim2real/ArmReach-v0"
CASES = [
    ("ppo", 512, {"num_envs": 4, "rollout_steps": 64, "epochs": 1}, None),
    ("sac", 400, {"learning_starts": 100, "batch_size": 64, "eval_every": 0}, None),
    ("td3", 400, {"learning_starts": 100, "batch_size": 64, "eval_every": 0}, None),
    ("ddpg", 400, {"learning_starts": 100, "batch_size": 64, "eval_every": 0}, None),
    ("ppo", 256, {"num_envs": 2, "rollout_steps": 64, "epochs": 1}, 32),
]


def main() -> None:
    from deploy.export import PIPELINE_TOLERANCE, TOLERANCE, export
    from sim2real.cli import train_run

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for algo, steps, overrides, pixels in CASES:
            name = f"{algo} (pixels {pixels}x{pixels})" if pixels else algo
            out = Path(tmp) / name.replace(" ", "_")
            train_run(ENV, algo, steps, 0, out, None, progress=False, overrides=overrides,
                      pixels=pixels)
            start = time.perf_counter()
            result = export(out)
            rows.append({"policy": name, "env": ENV, "onnx_error": result.onnx_error,
                         "pipeline_error": result.pipeline_error,
                         "pipeline_steps": result.pipeline_steps,
                         "export_seconds": round(time.perf_counter() - start, 2)})
            print(json.dumps(rows[-1]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "export_parity.json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = ["# Export parity", "",
             f"Short runs on {ENV}, exported with `sim2real export`'s checks. onnxruntime vs "
             f"torch: max |action difference| on 1,000 observations (target <= {TOLERANCE:g}). "
             f"Pipeline: max |command difference| (rad) between the training env and the deploy "
             f"runtime over 3 recorded episodes (target <= {PIPELINE_TOLERANCE:g}).", "",
             "| policy | onnxruntime vs torch | pipeline | steps compared | export s |",
             "|---|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['policy']} | {row['onnx_error']:.2e} | {row['pipeline_error']:.2e} "
                     f"| {row['pipeline_steps']} | {row['export_seconds']} |")
    (RESULTS / "export_parity.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
