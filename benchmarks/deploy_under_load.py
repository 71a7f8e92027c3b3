"""`sim2real deploy` over both wires with the robot's computer busy: does a healthy robot keep
running, and does a robot that really stops answering still safe-stop within the watchdog period?

For each wire, `serial:` (our protocol, `sim2real emulate so_arm --pty --baud 1000000`) and
`feetech:` (the SO-101's servo bus, `sim2real emulate so_arm --bus feetech --pty --baud 1000000`),
each emulator in its own process simulating 1 Mbit/s wire time:

1. the demo's reach policy deployed for `--seconds` as a user runs it (`sim2real deploy
   POLICY --robot WIRE:PTY --json`, its own process, default settings, no real-time priority),
   with the computer idle and then with training runs (`sim2real train`, PPO on the reach task,
   one per CPU) loading both cores for the whole deploy: success, deadline misses, late frames, timeouts and
   retries, watchdog trips;
2. under the same load, the emulator frozen (SIGSTOP) a few seconds into a deploy, so fresh state
   really stops: the stop reason, the exit code and the time from the last fresh state to the
   safe-stop command, against the watchdog period.

Usage: python benchmarks/deploy_under_load.py [--seconds 120] [--policy reach.onnx]
Prints its table; `--save` writes benchmarks/results/deploy_under_load.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from feetech_bus import nominal_calibration
from processes import BAUD, SIM2REAL, Emulator, Trainer, hardware_like
from published import add_save_flag, publish

ROOT = Path(__file__).resolve().parent.parent
WORK = Path("/tmp/s2r_deploy_under_load")
WIRES = {"serial": ("--baud", str(BAUD)), "feetech": ("--bus", "feetech", "--baud", str(BAUD))}
FREEZE_AFTER_S = 5.0
RT_DEPLOY = ("--rt-priority", "50", "--cpu", "1")
"""What the deploy's advice line asks for on a busy computer."""


def reach_policy(path: Path | None) -> Path:
    """The demo's policy (PPO, 250k steps, default randomization), trained here unless given."""
    if path is not None:
        return path
    out = WORK / "reach"
    if not (out / "policy.onnx").is_file():
        subprocess.run([SIM2REAL, "train", "--env", "sim2real/ArmReach-v0", "--steps", "250000",
                        "--randomization", "default", "--out", str(out), "--overwrite",
                        "--quiet"], check=True, cwd=ROOT)
        subprocess.run([SIM2REAL, "export", str(out)], check=True, cwd=ROOT)
    return out / "policy.onnx"


def wire_args(wire: str, port: str) -> list[str]:
    """The deploy's --robot (and, for the servo bus, the calibration written to it)."""
    if wire == "serial":
        return ["--robot", f"serial:{port}"]
    from hardware.feetech.bus import FeetechBus

    calibration = nominal_calibration()
    with FeetechBus(port, BAUD) as bus:
        calibration.write_registers(bus)
    path = calibration.save(WORK / "so_arm_calibration.json")
    return ["--robot", f"feetech:{port}", "--calibration", str(path)]


def deploy(policy: Path, wire: str, load: str, seconds: float, trainer: Trainer | None,
           *extra: str) -> dict:
    """One deploy of `seconds` (reach episodes one after another) through a fresh emulator."""
    with Emulator(*WIRES[wire]) as device:
        hardware_like(device)
        started = time.perf_counter()
        out = subprocess.run([SIM2REAL, "deploy", str(policy), *wire_args(wire, device.port),
                              *extra, "--seconds", str(seconds),
                              "--seed", "3", "--json", "--log", str(WORK / f"{wire}.mcap")],
                             capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - started
    return row(wire, load, out, wall, trainer)


def frozen(policy: Path, wire: str, trainer: Trainer | None) -> dict:
    """A deploy whose emulator is frozen after FREEZE_AFTER_S: fresh state really stops."""
    with Emulator(*WIRES[wire]) as device:
        hardware_like(device)
        command = [SIM2REAL, "deploy", str(policy), *wire_args(wire, device.port), "--seconds",
                   "60", "--json", "--log", str(WORK / f"{wire}-frozen.mcap")]
        started = time.perf_counter()
        run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=ROOT)
        time.sleep(FREEZE_AFTER_S)
        device.process.send_signal(signal.SIGSTOP)
        try:
            stdout, stderr = run.communicate(timeout=30)
        finally:
            device.process.send_signal(signal.SIGCONT)
        out = subprocess.CompletedProcess(command, run.returncode, stdout, stderr)
        wall = time.perf_counter() - started
    result = row(wire, "training beside, emulator frozen", out, wall, trainer)
    result["watchdog_ms"] = watchdog_limit_ms(result["stopped"])
    return result


def watchdog_limit_ms(stopped: str) -> float | None:
    """The limit a watchdog stop names: "... within its limit of 100 ms" -> 100."""
    if "limit of " not in stopped:
        return None
    return float(stopped.split("limit of ")[1].split(" ms")[0])


def row(wire: str, load: str, out: subprocess.CompletedProcess, wall: float,
        trainer: Trainer | None) -> dict:
    lines = out.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        raise RuntimeError(f"deploy over {wire} printed no report (exit {out.returncode}): "
                           f"{out.stderr[-2000:]}")
    report = json.loads(lines[-1])
    link = report["link"]
    result = {"wire": wire, "load": load, "exit_code": out.returncode, "wall_s": round(wall, 1),
              "episodes": report["episodes"], "success_rate": report["success_rate"],
              "cycles": report["cycles"], "loop_rate_hz": round(report["loop_rate_hz"], 2),
              "deadline_misses": report["deadline_misses"],
              "miss_rate_percent": round(100 * report["deadline_misses"] / max(report["cycles"], 1), 3),
              "jitter_p99_us": round(report["jitter_p99_us"]),
              "compute_p99_us": round(report["compute_p99_us"]),
              "read_failures": report["read_failures"], "timeouts": link.get("timeouts", 0),
              "retries": link.get("retries", 0), "late_frames": link.get("late_frames", 0),
              "crc_errors": link.get("crc_errors", 0),
              "round_trip_p99_us": link.get("round_trip_p99_us"),
              "watchdog_trips": int(report["stopped"].startswith("watchdog")),
              "stopped": report["stopped"], "stopped_after_ms":
                  None if report["stopped_after_s"] is None else round(report["stopped_after_s"] * 1e3, 1),
              "realtime": report["realtime"], "advice": [line for line in out.stderr.splitlines()
                                                         if "--rt-priority" in line],
              "trainer_cores": trainer.cores_used() if trainer else 0.0}
    print(json.dumps(result), flush=True)
    return result


def write(results: dict, save: bool) -> None:
    lines = ["# Deploy under load", "",
             f"`sim2real deploy` of the demo's reach policy ({results['seconds']:.0f} s each, seed 3, "
             "default settings, normal scheduling) through each wire's emulator in its own process "
             f"at {BAUD:,} baud wire time; load: one `sim2real train` (PPO, reach) per CPU beside "
             f"it, their CPU use measured over the deploy. Each emulator, the stand-in for the robot's "
             "own electronics (which the computer's load does not slow), runs at SCHED_FIFO "
             f"priority 60 on CPU 0. {os.cpu_count()} CPUs; measured "
             f"{results['measured']}.", "",
             "| wire | load | training cores | success (episodes) | loop Hz | misses / cycles | "
             "jitter p99 us | timeouts | retries | late frames | CRC errors | watchdog trips | exit |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["runs"]:
        lines.append(f"| {r['wire']} | {r['load']} | {r['trainer_cores']} | "
                     f"{r['success_rate']:.2f} ({r['episodes']}) | {r['loop_rate_hz']} | "
                     f"{r['deadline_misses']} / {r['cycles']} ({r['miss_rate_percent']} %) | "
                     f"{r['jitter_p99_us']} | {r['timeouts']} | {r['retries']} | "
                     f"{r['late_frames']} | {r['crc_errors']} | {r['watchdog_trips']} | "
                     f"{r['exit_code']} |")
    lines += ["", f"Fresh state really stopped (emulator frozen with SIGSTOP {FREEZE_AFTER_S:.0f} s "
              "into a deploy, training beside):", "",
              "| wire | stop reason | last fresh state -> safe stop ms | watchdog limit ms | "
              "exit |", "|---|---|---:|---:|---:|"]
    for r in results["frozen"]:
        lines.append(f"| {r['wire']} | {r['stopped'] or 'none'} | {r['stopped_after_ms']} | "
                     f"{r['watchdog_ms']} | {r['exit_code']} |")
    advice = sorted({line for r in results["runs"] + results["frozen"] for line in r["advice"]})
    if advice:
        lines += ["", "What the deploy advised:", "", *[f"- {line}" for line in advice]]
    publish("deploy_under_load", results, "\n".join(lines), save)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="each deploy's length")
    parser.add_argument("--policy", type=Path, help="an exported reach policy (default: train one)")
    add_save_flag(parser)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    policy = reach_policy(args.policy)
    results = {"seconds": args.seconds, "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "policy": str(policy), "runs": [], "frozen": []}
    for wire in WIRES:
        results["runs"].append(deploy(policy, wire, "idle", args.seconds, None))
    trainer = Trainer()
    try:
        for wire in WIRES:
            results["runs"].append(deploy(policy, wire, "training beside", args.seconds, trainer))
            results["runs"].append(deploy(policy, wire, "training beside, " + " ".join(RT_DEPLOY),
                                          args.seconds, trainer, *RT_DEPLOY))
            results["frozen"].append(frozen(policy, wire, trainer))
    finally:
        trainer.stop()
    write(results, args.save)


if __name__ == "__main__":
    main()
