"""One gradient update of SAC, TD3 and DDPG: ours (compiled in fp32, compiled with the opt-in
bf16 hidden layers, and eager) vs Stable-Baselines3's, measured in the same process in
alternating rounds, so a change of load on this shared machine hits all alike. Batch 256, two
256x256 hidden layers, HalfCheetah-v5 sizes (17 obs, 6 actions), the same torch threads for both.

Ours: the mean time of `OffPolicyRun.learn` (sampling the batch, normalizing it, drawing the
noises, the update) over a short training run's updates after the first (the first compiles).
SB3: its own `train(gradient_steps, batch_size)` (sampling and update) on a filled buffer.
TD3's and SB3's TD3 time is the mean over its policy_delay cycle (the actor moves every 2nd).

Usage: python benchmarks/offpolicy_update.py [--rounds 5] [--updates 1000] [--threads 2]
Needs the benchmark extra: pip install -c constraints.txt -e ".[bench]".
Prints its table; `--save` writes benchmarks/results/offpolicy_update.{json,md}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from published import add_save_flag, publish

from policies.algorithms import algorithm_by_name
from randomization.envs import make_env, make_vector_env

ENV = "HalfCheetah-v5"
RANDOM_STEPS = 1_000


def ours(algo: str, updates: int, compile_choice: str, precision: str = "fp32") -> float:
    """ms per update of one short training run of ours."""
    algorithm = algorithm_by_name(algo)
    config = algorithm.config(total_steps=RANDOM_STEPS + updates, learning_starts=RANDOM_STEPS,
                              eval_every=0, compile=compile_choice,
                              matmul_precision=precision,
                              torch_threads=torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        result = algorithm.train(lambda n: make_vector_env(ENV, n), config, Path(tmp),
                                 progress=False)
    return result["update_ms"]


def sb3_model(algo: str):
    import numpy as np
    import stable_baselines3 as sb3
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.noise import NormalActionNoise

    env = make_env(ENV)
    common = dict(learning_starts=RANDOM_STEPS, batch_size=256, device="cpu", verbose=0,
                  policy_kwargs={"net_arch": [256, 256]})
    if algo == "sac":
        model = sb3.SAC("MlpPolicy", env, **common)
    else:
        noise = NormalActionNoise(np.zeros(6), 0.1 * np.ones(6))
        model = {"td3": sb3.TD3, "ddpg": sb3.DDPG}[algo]("MlpPolicy", env, action_noise=noise,
                                                         **common)
    # A logger of no outputs: SB3's default makes a new directory in /tmp even when it writes nothing.
    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(RANDOM_STEPS + 10)
    return model


def sb3(model, updates: int) -> float:
    start = time.perf_counter()
    model.train(gradient_steps=updates, batch_size=256)
    return 1e3 * (time.perf_counter() - start) / updates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--updates", type=int, default=1_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--algos", nargs="+", default=["sac", "td3", "ddpg"])
    add_save_flag(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for algo in args.algos:
        model = sb3_model(algo)
        times: dict[str, list[float]] = {"ours_compiled": [], "ours_bf16": [], "ours_eager": [],
                                         "sb3": []}
        for round_ in range(args.rounds):
            times["ours_compiled"].append(ours(algo, args.updates, "always"))
            times["sb3"].append(sb3(model, args.updates))
            times["ours_bf16"].append(ours(algo, args.updates, "always", "bf16"))
            times["ours_eager"].append(ours(algo, args.updates, "never"))
            print(f"{algo} round {round_}: " + ", ".join(
                f"{k} {v[-1]:.2f} ms" for k, v in times.items()), flush=True)
        medians = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"algo": algo, "threads": args.threads, "updates": args.updates,
                     "rounds": args.rounds, "ms": times, "median_ms": medians,
                     "compiled_ratio": medians["ours_compiled"] / medians["sb3"],
                     "bf16_ratio": medians["ours_bf16"] / medians["sb3"],
                     "eager_ratio": medians["ours_eager"] / medians["sb3"]})
    write(rows, args.save)


def write(rows: list[dict], save: bool) -> None:
    lines = ["# One off-policy gradient update: ours vs Stable-Baselines3 2.9.2", "",
             f"Batch 256, 2x256 MLPs, {ENV} sizes, {rows[0]['threads']} torch threads; "
             f"{rows[0]['rounds']} alternating rounds of {rows[0]['updates']} updates, medians "
             "(sampling included for both). bf16: compiled, hidden layers multiplied in bfloat16 "
             "(`matmul_precision: bf16`, opt-in).", "",
             "| algo | ours compiled (ms) | ours compiled bf16 (ms) | ours eager (ms) | SB3 (ms) | "
             "compiled / SB3 | bf16 / SB3 | eager / SB3 |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        m = row["median_ms"]
        lines.append(f"| {row['algo']} | {m['ours_compiled']:.2f} | {m['ours_bf16']:.2f} | "
                     f"{m['ours_eager']:.2f} | {m['sb3']:.2f} | {row['compiled_ratio']:.2f}x | "
                     f"{row['bf16_ratio']:.2f}x | {row['eager_ratio']:.2f}x |")
    publish("offpolicy_update", rows, "\n".join(lines), save)


if __name__ == "__main__":
    main()
