"""Chaos on the wire: both robots deployed through the device emulator (`sim2real emulate ROBOT
--pty` with fault injection, `sim2real deploy POLICY --robot serial:PTY` in another process, in
real time) over a grid of link latency x dropped frames x corrupted bytes. For each cell: did
the deploy connect, did it hold control for the whole run at its rate, did it safe-stop (why, and
how long after the last fresh reading), did anything crash (a traceback, an exit code other than
0, 2 or 3).

The faults apply both ways: a dropped frame is lost whole, each byte is corrupted (one bit
flipped) with the given probability, and latency holds every frame the device sends, as a USB
serial adapter's latency timer does (16 ms at the Linux default of an FTDI chip).

Goal: at 16 ms latency, 10 % drops and 1 % corruption the arm is held at 50 Hz; no cell crashes.

Usage: python benchmarks/chaos.py [--seconds 8] [--only arm|pendulum] [--save]
Prints the table; `--save` writes benchmarks/results/chaos.{json,md}. The policies are the
transfer benchmark's `default` ones (trained there if missing).
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from processes import Emulator
from published import add_save_flag, publish, saved_results
from transfer import ARM, PENDULUM, WORK, train

ROOT = Path(__file__).resolve().parent.parent
LATENCY_MS = (0, 8, 16, 30)
DROPS = (0.0, 0.1, 0.3)
CORRUPTION = (0.0, 0.01, 0.05)
GOAL = (16, 0.1, 0.01)
FAULT_SEED = 5


def deploy_cell(panel, policy: Path, latency: float, drops: float, corruption: float,
                seconds: float) -> dict:
    """One deploy over a faulty wire; what happened."""
    hand = ("--pose", *panel.pose, "--catch", "0.5") if panel.pose else ()
    faults = ("--latency-ms", str(latency), "--drop-frame-rate", str(drops),
              "--corrupt-byte-rate", str(corruption), "--seed", str(FAULT_SEED))
    with Emulator(*faults, *hand, robot=panel.robot) as emulator:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "sim2real.cli", "deploy", str(policy), "--robot",
             f"serial:{emulator.port}", "--seconds", str(seconds), "--json", "--no-log"],
            cwd=ROOT, capture_output=True, text=True, timeout=seconds + 60)
        wall = time.perf_counter() - started
    crashed = "Traceback" in result.stderr or result.returncode not in (0, 2, 3)
    cell = {"latency_ms": latency, "drops": drops, "corruption": corruption,
            "exit": result.returncode, "crashed": crashed, "wall_s": round(wall, 1)}
    if result.returncode == 2 or crashed:
        lines = result.stderr.strip().splitlines()
        return cell | {"connected": False, "held": False, "error": lines[-1] if lines else ""}
    report = json.loads(result.stdout.strip().splitlines()[-1])
    link = report["link"]
    held = not report["stopped"] and report["loop_rate_hz"] >= 0.95 * report["target_rate_hz"]
    return cell | {
        "connected": True, "held": held, "stopped": report["stopped"],
        "stopped_after_s": report["stopped_after_s"], "seconds": round(report["seconds"], 2),
        "loop_rate_hz": round(report["loop_rate_hz"], 1), "cycles": report["cycles"],
        "read_failures": report["read_failures"], "episodes": report["episodes"],
        "success_rate": report["success_rate"], "reads": link.get("timing", {}).get("reads"),
        "round_trip_ms": link.get("timing", {}).get("round_trip_ms"),
        "crc_errors": link["crc_errors"], "dropped_frames": link["dropped_frames"],
        "unacknowledged_commands": link.get("unacknowledged_commands"),
        "rate_limit": report["interventions"].get("rate_limit", 0)}


def outcome(cell: dict) -> str:
    if cell["crashed"]:
        return f"CRASH (exit {cell['exit']})"
    if not cell["connected"]:
        return "refused: " + cell["error"].split(": ", 1)[-1][:60]
    if cell["held"]:
        return (f"held {cell['loop_rate_hz']:.0f} Hz, {cell['read_failures']} lost reads, "
                f"success {cell['success_rate']:.2f}")
    if cell["stopped"]:
        after = (f" {cell['stopped_after_s'] * 1e3:.0f} ms after the last reading"
                 if cell["stopped_after_s"] is not None else "")
        return f"safe stop at {cell['seconds']:.1f} s{after}: {cell['stopped'].split(':')[0]}"
    return f"ran slow: {cell['loop_rate_hz']:.0f} Hz"


def markdown(results: dict) -> str:
    lines = ["# Chaos: faults on the wire, through the emulator", "",
             "`python benchmarks/chaos.py`: each cell deploys the robot's default policy over "
             "`sim2real emulate --latency-ms L --drop-frame-rate D --corrupt-byte-rate C` for "
             f"{results['seconds']:g} s. Goal: latency {GOAL[0]} ms, drops {GOAL[1]:.0%}, "
             f"corruption {GOAL[2]:.0%} holds the arm at 50 Hz; no cell crashes.", ""]
    for robot, panel in results["robots"].items():
        lines += [f"## {robot} ({panel['policy']}, {panel['date']})", "",
                  "| latency ms | drops | corruption | outcome | reads | round trip ms |",
                  "|---:|---:|---:|---|---|---:|"]
        for cell in panel["cells"]:
            goal = (cell["latency_ms"], cell["drops"], cell["corruption"]) == GOAL
            mark = "**" if goal else ""
            lines.append(f"| {mark}{cell['latency_ms']:g}{mark} | {cell['drops']:.0%} | "
                         f"{cell['corruption']:.0%} | {mark}{outcome(cell)}{mark} | "
                         f"{cell.get('reads') or ''} | {cell.get('round_trip_ms') or ''} |")
        cells = panel["cells"]
        lines += ["", f"Held: {sum(c['held'] for c in cells)} of {len(cells)} cells; safe "
                  f"stops: {sum(bool(c.get('stopped')) for c in cells)}; refused to connect: "
                  f"{sum(not c['connected'] and not c['crashed'] for c in cells)}; crashes: "
                  f"{sum(c['crashed'] for c in cells)}.", ""]
    lines += [f"Goal cell on the arm held: **{results['goal_held']}**; crashes anywhere: "
              f"**{results['crashes']}**.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--only", choices=("arm", "pendulum"))
    add_save_flag(parser)
    args = parser.parse_args()
    panels = {"arm": ARM, "pendulum": PENDULUM}
    # A run of one robot (--only) replaces that robot's figures, keeps the other's.
    results = (saved_results("chaos") if args.only else None) or {"robots": {}}
    results["seconds"] = args.seconds
    for name, panel in panels.items():
        if args.only not in (None, name):
            continue
        (WORK / panel.robot).mkdir(parents=True, exist_ok=True)
        policy = train(panel, "default")
        cells = []
        for latency, drops, corruption in itertools.product(LATENCY_MS, DROPS, CORRUPTION):
            cell = deploy_cell(panel, policy, latency, drops, corruption, args.seconds)
            print(f"{panel.robot} {latency:>3} ms {drops:4.0%} drops {corruption:3.0%} "
                  f"corrupt: {outcome(cell)}", flush=True)
            cells.append(cell)
        results["robots"][panel.robot] = {"policy": f"{panel.env_id}, default preset",
                                          "cells": cells, "date": time.strftime("%Y-%m-%d")}
    arm_cells = results["robots"].get("so_arm", {}).get("cells", [])
    results["goal_held"] = any(c["held"] for c in arm_cells
                               if (c["latency_ms"], c["drops"], c["corruption"]) == GOAL)
    results["crashes"] = sum(c["crashed"] for panel in results["robots"].values()
                             for c in panel["cells"])
    publish("chaos", results, markdown(results), args.save)


if __name__ == "__main__":
    main()
