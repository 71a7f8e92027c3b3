"""An 8-trial sweep on Ray against the same trainings one after another: wall time of the whole
command, side by side in the same run.

The sweep: PPO on the Furuta pendulum's balance, 4 learning rates x 2 seeds, STEPS steps each,
the `default` randomization. `sim2real sweep FILE` (Ray started on this machine's cores, one CPU a
trial) and `sim2real sweep FILE --serial` (every trial in one process, no Ray) run in turn as
whole processes, PAIRS times; the ratio is taken pair by pair and its median reported. Both
write the same table (trial by trial the same returns: tests/test_sweep.py), so the figure
is the cost of the same work.

What bounds the speed-up, measured in the same run: the cores (2 here, so at most 2x); the
cores each command keeps busy (from /proc/stat); the trials' own training seconds, on Ray and
alone; and Ray's fixed costs: starting Ray, and each worker importing torch, MuJoCo and gymnasium
before its first trial (later trials reuse the worker).

Usage: python benchmarks/sweep_on_ray.py [--pairs 3]
Prints its table; `--save` writes benchmarks/results/sweep_on_ray.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from published import add_save_flag, publish

ROOT = Path(__file__).resolve().parent.parent
STEPS = 81_920
SWEEP = {"env": "sim2real/FurutaBalance-v0", "algo": "ppo", "steps": STEPS, "seeds": [0, 1],
         "set": {"learning_rate": [1e-4, 3e-4, 1e-3, 3e-3]}}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU seconds every process of the machine has been busy so far."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS


def timed(command: list[str]) -> dict[str, float]:
    """Wall seconds of `command` as a whole process, and the machine's busy cores meanwhile."""
    busy, start = busy_seconds(), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return {"wall": wall, "busy_cores": (busy_seconds() - busy) / wall}


def trial_seconds(table: Path) -> float:
    """The training seconds of a sweep's trials, summed (its sweep.csv)."""
    with table.open() as handle:
        return sum(float(row["seconds"]) for row in csv.DictReader(handle))


def ray_start_seconds() -> float:
    """Starting Ray here and stopping it, in a process that imports only what that needs."""
    code = ("import time; t = time.perf_counter(); from sim2real.cluster import start_ray; "
            "ray = start_ray(); print(time.perf_counter() - t); ray.shutdown()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    return float(done.stdout.strip().splitlines()[-1])


def worker_import_seconds() -> float:
    """What a fresh trial worker imports before it trains."""
    code = ("import time; t = time.perf_counter(); import sim2real.sweep, sim2real.runs, "
            "policies.ppo, randomization.envs, torch, mujoco; print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="Ray and serial runs, in turn")
    add_save_flag(parser)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="sweep_bench_"))
    sweep = folder / "balance.yaml"
    sweep.write_text(yaml.safe_dump(SWEEP))
    cli = [sys.executable, "-m", "sim2real.cli", "sweep", str(sweep), "--overwrite", "--quiet"]
    pairs = []
    for pair in range(args.pairs):
        on_ray = timed([*cli, "--out", str(folder / "on_ray")])
        serial = timed([*cli, "--out", str(folder / "serial"), "--serial"])
        pairs.append({"on_ray": on_ray, "serial": serial, "ratio": on_ray["wall"] / serial["wall"]})
        print(f"pair {pair + 1}: Ray {on_ray['wall']:.1f} s ({on_ray['busy_cores']:.2f} busy "
              f"cores), serial {serial['wall']:.1f} s ({serial['busy_cores']:.2f}), ratio "
              f"{pairs[-1]['ratio']:.2f}", flush=True)
    training = {name: trial_seconds(folder / name / "sweep.csv") for name in ("on_ray", "serial")}
    results = {
        "sweep": SWEEP, "trials": 8, "cores": len(os.sched_getaffinity(0)), "pairs": pairs,
        "on_ray_seconds": statistics.median(p["on_ray"]["wall"] for p in pairs),
        "serial_seconds": statistics.median(p["serial"]["wall"] for p in pairs),
        "ratio": statistics.median(p["ratio"] for p in pairs),
        "on_ray_busy_cores": statistics.median(p["on_ray"]["busy_cores"] for p in pairs),
        "serial_busy_cores": statistics.median(p["serial"]["busy_cores"] for p in pairs),
        "on_ray_training_seconds": training["on_ray"], "serial_training_seconds": training["serial"],
        "ray_start_seconds": ray_start_seconds(), "worker_import_seconds": worker_import_seconds()}
    results["speedup"] = 1 / results["ratio"]
    publish("sweep_on_ray", results, markdown(results), args.save)


def markdown(results: dict) -> str:
    training = {name: results[f"{name}_training_seconds"] for name in ("on_ray", "serial")}
    lines = [
        "# An 8-trial sweep on Ray against the same trainings one after another", "",
        f"PPO on FurutaBalance-v0, 4 learning rates x 2 seeds, {STEPS:,} steps a trial; "
        f"{results['cores']} cores, {len(results['pairs'])} pairs of whole `sim2real sweep` commands in turn "
        "(medians; the ratio pair by pair).", "",
        "| | wall (s) | busy cores |", "|---|---:|---:|",
        f"| `sim2real sweep` (Ray, 1 CPU a trial) | {results['on_ray_seconds']:.1f} | "
        f"{results['on_ray_busy_cores']:.2f} |",
        f"| `sim2real sweep --serial` (one process) | {results['serial_seconds']:.1f} | "
        f"{results['serial_busy_cores']:.2f} |", "",
        f"Ray / serial: **{results['ratio']:.2f}x** the wall time, a speed-up of "
        f"**{results['speedup']:.2f}x** on {results['cores']} cores.", "",
        "What bounds it (the last pair's trials):",
        f"- the cores: {results['cores']}, so at most {results['cores']}x. A trial keeps one core "
        f"busy (the serial run: {results['serial_busy_cores']:.2f} busy cores), and two side by "
        f"side train at {training['serial'] / training['on_ray']:.2f}x the speed of one alone: "
        f"the 8 trials' training took {training['on_ray']:.1f} s on Ray, {training['serial']:.1f}"
        " s one after another;",
        f"- what is not training, the same in both: starting Python and the imports, the "
        f"summary, the best run's export ({results['serial_seconds'] - training['serial']:.1f} s "
        "of the serial run);",
        f"- and on Ray besides: starting Ray ({results['ray_start_seconds']:.1f} s), each of the 2 "
        f"workers importing torch, MuJoCo and the stack before its first trial "
        f"({results['worker_import_seconds']:.1f} s; its next trials reuse it), Tune's own "
        f"bookkeeping between trials, and the last trial's tail on one core: "
        f"{results['on_ray_seconds'] - training['on_ray'] / 2:.1f} s of the Ray run's "
        f"{results['on_ray_seconds']:.1f} s are not its 2 cores' training. Longer trials bring the "
        "speed-up nearer 2x."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
