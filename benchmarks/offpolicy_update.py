"""One gradient update of SAC, TD3 and DDPG: ours (compiled in fp32, compiled with the opt-in
bf16 hidden layers, and eager) vs Stable-Baselines3's, and against its matmul floor, measured in
the same process in alternating rounds, so a change of load on this shared machine hits all
alike. Batch 256, two 256x256 hidden layers, HalfCheetah-v5 sizes (17 obs, 6 actions), the same
torch threads for both.

The matmul floor: the matrix products of our compiled fp32 update (recorded by torch.profiler
inside the compiled region: shapes, strides of the operands aside, and counts), replayed alone
on the library the update sends them to (oneDNN or MKL, policies/compiled.py): what the update
would take if everything else in it cost nothing.

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
import ast
import collections
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from published import add_save_flag, publish

from policies.algorithms import algorithm_by_name
from policies.compiled import fast_matmuls, onednn_keeps_fp32
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


MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm")


def products_of_update(algo: str, updates: int) -> tuple[list, int]:
    """The matrix products our compiled fp32 update runs, as (op, input shapes) in the order met,
    over a short run's updates after the first (TD3's actor step every 2nd), and their count."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        ours(algo, updates, "always")
    events = profiler.events()
    products, regions_seen, first_calls = [], set(), set()
    for event in events:  # the first call of each compiled graph also compiles it: left out
        if event.name.startswith("Torch-Compiled Region") and event.name not in regions_seen:
            regions_seen.add(event.name)
            first_calls.add(event.id)
    for event in events:
        if event.name not in MATMULS or (event.cpu_parent and event.cpu_parent.name in MATMULS):
            continue  # not a product, or one inside another (oneDNN's addmm runs an mm)
        region = event.cpu_parent
        while region is not None and not region.name.startswith("Torch-Compiled Region"):
            region = region.cpu_parent
        if region is not None and region.id not in first_calls:  # not acting, not compiling
            products.append((event.name.split("::")[1], event.input_shapes))
    updates -= 1
    return products, updates


def floor_of(products: list, updates: int):
    """A function timing, in ms an update, the products of two updates replayed alone (TD3's
    actor step is every 2nd), each kind on operands of its own, reused as an update reuses its
    weights."""
    kinds = collections.Counter((name, repr(shapes)) for name, shapes in products)
    replay = []
    for (name, shapes_text), count in kinds.items():
        shapes = ast.literal_eval(shapes_text)
        operands = [torch.randn(shape) for shape in shapes[:2 if name in ("mm", "bmm") else 3]]
        # The profiler lists an out= argument's shape last when there is one.
        out = torch.empty(shapes[-1]) if len(shapes) in (3, 6) and shapes[-1] else None
        replay += [(getattr(torch, name), operands, out)] * round(2 * count / updates)
    fast = onednn_keeps_fp32()

    def floor_ms() -> float:
        with fast_matmuls(fast):
            start = time.perf_counter()
            for function, operands, out in replay:
                function(*operands, out=out) if out is not None else function(*operands)
            return 1e3 * (time.perf_counter() - start) / 2

    return floor_ms


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
        floor_ms = floor_of(*products_of_update(algo, 100))
        times: dict[str, list[float]] = {"ours_compiled": [], "ours_bf16": [], "ours_eager": [],
                                         "sb3": [], "matmul_floor": []}
        for round_ in range(args.rounds):
            times["ours_compiled"].append(ours(algo, args.updates, "always"))
            times["matmul_floor"].append(min(floor_ms() for _ in range(5)))
            times["sb3"].append(sb3(model, args.updates))
            times["ours_bf16"].append(ours(algo, args.updates, "always", "bf16"))
            times["ours_eager"].append(ours(algo, args.updates, "never"))
            print(f"{algo} round {round_}: " + ", ".join(
                f"{k} {v[-1]:.2f} ms" for k, v in times.items()), flush=True)
        medians = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"algo": algo, "threads": args.threads, "updates": args.updates,
                     "rounds": args.rounds, "ms": times, "median_ms": medians,
                     "compiled_ratio": medians["ours_compiled"] / medians["sb3"],
                     "floor_ratio": medians["ours_compiled"] / medians["matmul_floor"],
                     "bf16_ratio": medians["ours_bf16"] / medians["sb3"],
                     "eager_ratio": medians["ours_eager"] / medians["sb3"]})
    write(rows, args.save)


def write(rows: list[dict], save: bool) -> None:
    lines = ["# One off-policy gradient update: ours vs Stable-Baselines3 2.9.2", "",
             f"Batch 256, 2x256 MLPs, {ENV} sizes, {rows[0]['threads']} torch threads; "
             f"{rows[0]['rounds']} alternating rounds of {rows[0]['updates']} updates, medians "
             "(sampling included for both). bf16: compiled, hidden layers multiplied in bfloat16 "
             "(`matmul_precision: bf16`, opt-in). Matmul floor: the compiled fp32 update's "
             "products replayed alone on the library it sends them to (best of 5 a round).", "",
             "| algo | ours compiled (ms) | ours compiled bf16 (ms) | ours eager (ms) | SB3 (ms) | "
             "matmul floor (ms) | compiled / floor | compiled / SB3 | bf16 / SB3 | eager / SB3 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        m = row["median_ms"]
        lines.append(f"| {row['algo']} | {m['ours_compiled']:.2f} | {m['ours_bf16']:.2f} | "
                     f"{m['ours_eager']:.2f} | {m['sb3']:.2f} | {m['matmul_floor']:.2f} | "
                     f"{row['floor_ratio']:.2f}x | {row['compiled_ratio']:.2f}x | "
                     f"{row['bf16_ratio']:.2f}x | {row['eager_ratio']:.2f}x |")
    publish("offpolicy_update", rows, "\n".join(lines), save)


if __name__ == "__main__":
    main()
