"""One gradient update of SAC, TD3 and DDPG: ours (compiled in fp32, compiled with the opt-in
bf16 hidden layers, and eager) vs Stable-Baselines3's, and against its matmul floor, measured in
the same process in alternating rounds, so a change of load on this shared machine hits all
alike. Batch 256, two 256x256 hidden layers, HalfCheetah-v5 sizes (17 obs, 6 actions), the same
torch threads for both.

The matmul floor: the matrix products of our compiled fp32 gradient step (recorded as they run,
op, shapes and strides), replayed alone on operands of the same layout, on the library the step
sends them to (oneDNN or MKL, policies/compiled.py): what the step would take if everything else
in it cost nothing. It is compared with the same step timed the same way, back to back on the
batch a run last gave it (the gradient step alone), the two in turns of 10 cycles; step / floor
is the median over the rounds of each round's ratio.

Ours in a run: the mean time of `OffPolicyRun.learn` (sampling the batch, normalizing it,
drawing the noises, the gradient step) over a short training run's updates after the first (the
first compiles), an env step between each: what training sees.
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
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from published import add_save_flag, publish

from policies import offpolicy
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


MATMULS = {torch.ops.aten.mm.default, torch.ops.aten.mm.out, torch.ops.aten.addmm.default,
           torch.ops.aten.addmm.out, torch.ops.aten.bmm.default, torch.ops.aten.bmm.out,
           torch.ops.aten.baddbmm.default, torch.ops.aten.baddbmm.out}


Calls = list[tuple[Callable[..., Any], list, dict]]
"""Functions with their arguments and keyword arguments, called in order."""


class Recorded(NamedTuple):
    """Our compiled fp32 gradient steps as a short training run made them: `calls`, the last
    update cycle's calls (compiled step, its arguments), in order, and `updates`, the updates in
    that cycle (TD3: two critic steps and one actor step make 2 updates)."""

    calls: Calls
    updates: int
    fast: bool
    """Whether the run took its fp32 products on oneDNN (policies/compiled.py)."""


def recorded_steps(algo: str, updates: int) -> Recorded:
    """The compiled gradient steps of a short run of ours and the arguments of their last calls,
    kept by wrapping `compile_update` where OffPolicyRun calls it."""
    calls: Calls = []
    original = offpolicy.compile_update

    def keeping(update: Callable[..., Any], enabled: bool) -> Callable[..., Any]:
        compiled = original(update, enabled)

        def call(*args: Any) -> Any:
            calls.append((compiled, list(args), {}))
            return compiled(*args)
        return call

    offpolicy.compile_update = keeping
    try:
        ours(algo, updates, "always")
    finally:
        offpolicy.compile_update = original
    # TD3's critics step at every update, its actor at every policy_delay-th: a cycle of
    # policy_delay updates makes policy_delay + 1 calls.
    delay = getattr(algorithm_by_name(algo).config(), "policy_delay", 1)
    cycle_calls = delay + 1 if delay > 1 else 1
    return Recorded(calls[-cycle_calls:], delay, onednn_keeps_fp32())


def timer(calls: Calls, recorded: Recorded) -> Callable[[int], float]:
    """A function timing `calls` back to back, `cycles` times, in ms an update of `recorded`'s
    cycle, on the library its products go to."""
    def ms(cycles: int) -> float:
        with fast_matmuls(recorded.fast):
            start = time.perf_counter()
            for _ in range(cycles):
                for function, args, kwargs in calls:
                    function(*args, **kwargs)
            return 1e3 * (time.perf_counter() - start) / (cycles * recorded.updates)
    return ms


class ProductRecorder(TorchDispatchMode):
    """Each matrix product that runs under it: the op, and its tensors' shapes and strides."""

    def __init__(self) -> None:
        super().__init__()
        self.products: list[tuple[Any, list, dict]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in MATMULS:
            def layout(value: Any) -> Any:
                return (tuple(value.shape), value.stride()) if isinstance(value, torch.Tensor) \
                    else value
            self.products.append((func, [layout(a) for a in args],
                                  {k: layout(v) for k, v in kwargs.items()}))
        return func(*args, **kwargs)


def _operand(layout: Any) -> Any:
    """A fresh tensor of a recorded (shape, stride), or the recorded value itself."""
    if not (isinstance(layout, tuple) and len(layout) == 2 and isinstance(layout[1], tuple)):
        return layout
    shape, stride = layout
    storage = 1 + sum((size - 1) * step for size, step in zip(shape, stride, strict=True))
    return torch.randn(storage).as_strided(shape, stride)


def products_of(recorded: Recorded) -> Calls:
    """The products of one update cycle, to replay alone on operands of their own with the
    update's shapes and strides (a transposed weight is a different kernel)."""
    recorder = ProductRecorder()
    with recorder:
        timer(recorded.calls, recorded)(1)
    return [(func, [_operand(a) for a in args], {k: _operand(v) for k, v in kwargs.items()})
            for func, args, kwargs in recorder.products]


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
        recorded = recorded_steps(algo, 100)
        # The gradient step alone (no sampling, no env step between) and its matmul floor.
        step_ms, floor_ms = timer(recorded.calls, recorded), timer(products_of(recorded), recorded)
        step_ms(10), floor_ms(10)  # warm
        ratios = []
        times: dict[str, list[float]] = {"ours_compiled": [], "ours_bf16": [], "ours_eager": [],
                                         "sb3": [], "gradient_step": [], "matmul_floor": []}
        for round_ in range(args.rounds):
            times["ours_compiled"].append(ours(algo, args.updates, "always"))
            # In turns of 10 cycles each, so a change of load hits both alike.
            steps, floors = zip(*[(step_ms(10), floor_ms(10)) for _ in range(10)], strict=True)
            times["gradient_step"].append(statistics.mean(steps))
            times["matmul_floor"].append(statistics.mean(floors))
            ratios.append(times["gradient_step"][-1] / times["matmul_floor"][-1])
            times["sb3"].append(sb3(model, args.updates))
            times["ours_bf16"].append(ours(algo, args.updates, "always", "bf16"))
            times["ours_eager"].append(ours(algo, args.updates, "never"))
            print(f"{algo} round {round_}: " + ", ".join(
                f"{k} {v[-1]:.2f} ms" for k, v in times.items()), flush=True)
        medians = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"algo": algo, "threads": args.threads, "updates": args.updates,
                     "rounds": args.rounds, "ms": times, "median_ms": medians,
                     "compiled_ratio": medians["ours_compiled"] / medians["sb3"],
                     "floor_ratio": statistics.median(ratios), "floor_ratios": ratios,
                     "in_run_floor_ratio": medians["ours_compiled"] / medians["matmul_floor"],
                     "bf16_ratio": medians["ours_bf16"] / medians["sb3"],
                     "eager_ratio": medians["ours_eager"] / medians["sb3"]})
    write(rows, args.save)


def write(rows: list[dict], save: bool) -> None:
    lines = ["# One off-policy gradient update: ours vs Stable-Baselines3 2.9.2", "",
             f"Batch 256, 2x256 MLPs, {ENV} sizes, {rows[0]['threads']} torch threads; "
             f"{rows[0]['rounds']} alternating rounds of {rows[0]['updates']} updates, medians. "
             "In a run: the mean time of an update in a short training run, sampling included "
             "(SB3's likewise). bf16: compiled, hidden layers multiplied in bfloat16 "
             "(`matmul_precision: bf16`, opt-in). Gradient step alone: the compiled fp32 step "
             "timed back to back, no sampling; matmul floor: its products, replayed alone with "
             "their operands' layouts, timed the same way, in turns with the step; step / "
             "floor: the median of the rounds' ratios.", "",
             "| algo | ours in a run (ms) | ours bf16 in a run (ms) | ours eager in a run (ms) | "
             "SB3 (ms) | gradient step alone (ms) | matmul floor (ms) | step / floor | "
             "in a run / floor | in a run / SB3 | bf16 / SB3 | eager / SB3 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        m = row["median_ms"]
        lines.append(f"| {row['algo']} | {m['ours_compiled']:.2f} | {m['ours_bf16']:.2f} | "
                     f"{m['ours_eager']:.2f} | {m['sb3']:.2f} | {m['gradient_step']:.2f} | "
                     f"{m['matmul_floor']:.2f} | {row['floor_ratio']:.2f}x | "
                     f"{row['in_run_floor_ratio']:.2f}x | {row['compiled_ratio']:.2f}x | "
                     f"{row['bf16_ratio']:.2f}x | {row['eager_ratio']:.2f}x |")
    publish("offpolicy_update", rows, "\n".join(lines), save)


if __name__ == "__main__":
    main()
