"""The serial path, measured through the device emulator in its own process over a pty:

1. round trip of a state and command exchange (SerialRobot.read_state, which waits for the
   STATE answering its request, then send_command), p50/p99 over many exchanges, with no wire
   time and with the wire time of a 1 Mbit/s bus emulated;
2. the highest control rate the whole deploy loop sustains through the emulator with at most
   0.1% deadline misses: the pendulum robot (its model steps at 1 ms) retimed to 250, 500 and
   1,000 Hz, each rate run for `--seconds`: with normal scheduling, with the loop and the
   emulator pinned to a CPU each at SCHED_FIFO priority (deploy --rt-priority --cpu), and with
   the wire time of a 1 Mbit/s bus.

Usage: python benchmarks/serial_link.py [--exchanges 3000] [--seconds 10]
Prints its table; `--save` writes benchmarks/results/serial_link.{json,md}.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from deploy_loop import RetimedPolicy, exported_policy
from published import add_save_flag, publish

RATES = (250, 500, 1000)
MISS_TARGET_PERCENT = 0.1
EMULATOR = """
import dataclasses, sys
from hardware.emulator import DeviceEmulator
from hardware.transports import PtyTransport
from sim.catalog import robot_by_name
spec = dataclasses.replace(robot_by_name(sys.argv[1]), control_period=float(sys.argv[2]))
baud = int(sys.argv[3]) or None
if sys.argv[5] == "rt":  # the device on the second CPU at real-time priority, where allowed
    import os
    try:
        os.sched_setaffinity(0, {1})
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(50))
    except OSError:
        pass
transport = PtyTransport()
print(transport.name, flush=True)
DeviceEmulator(spec, transport, watchdog_ms=200.0, baudrate=baud).serve(seconds=float(sys.argv[4]))
"""


class Emulator:
    """The emulator of `robot` at `period` in a child process; `port` is its pty."""

    def __init__(self, robot: str, period: float, baud: int, seconds: float,
                 realtime: bool = False) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", EMULATOR, robot, repr(period), str(baud), repr(seconds),
             "rt" if realtime else "normal"],
            stdout=subprocess.PIPE, text=True)
        self.port = self.process.stdout.readline().strip()

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(10)


def round_trips(exchanges: int, baud: int) -> dict:
    """State + command exchanges with the arm's emulator, paced at 500 Hz."""
    from hardware.serial_robot import SerialRobot
    from sim.so_arm import SO_ARM

    read_us, exchange_us = [], []
    with Emulator("so_arm", SO_ARM.control_period, baud, exchanges / 400 + 30) as device, \
            SerialRobot(device.port, SO_ARM, reply_timeout=0.01) as arm:
        next_start = time.perf_counter()
        for _ in range(exchanges):
            start = time.perf_counter()
            state = arm.read_state()
            read = time.perf_counter()
            arm.send_command(state.positions)  # hold where it is
            done = time.perf_counter()
            read_us.append((read - start) * 1e6)
            exchange_us.append((done - start) * 1e6)
            next_start += 0.002
            while time.perf_counter() < next_start:
                pass
        stats = arm.stats.summary()
    return {"baud": baud or None, "exchanges": exchanges,
            "read_p50_us": round(float(np.percentile(read_us, 50)), 1),
            "read_p99_us": round(float(np.percentile(read_us, 99)), 1),
            "exchange_p50_us": round(float(np.percentile(exchange_us, 50)), 1),
            "exchange_p99_us": round(float(np.percentile(exchange_us, 99)), 1),
            "timeouts": stats["timeouts"], "retries": stats["retries"]}


def control_rate(onnx_path: Path, rate: int, seconds: float, baud: int,
                 realtime: bool = False) -> dict:
    """`realtime`: the loop on CPU 0 and the emulator on CPU 1, both SCHED_FIFO (deploy's
    --rt-priority and --cpu), where the OS allows it."""
    import dataclasses

    from deploy.loop import run
    from deploy.onnx_policy import OnnxPolicy
    from hardware.serial_robot import SerialRobot
    from sim.furuta import FURUTA

    period = 1.0 / rate
    spec = dataclasses.replace(FURUTA, control_period=period)
    policy = RetimedPolicy(OnnxPolicy(onnx_path), period)
    # A reading may take most of a period: at 1 kHz over 1 Mbit/s, the wire alone takes
    # ~0.65 ms of the 1 ms (request, then a 55-byte STATE).
    with Emulator("furuta", period, baud, seconds + 30, realtime) as device, \
            SerialRobot(device.port, spec, reply_timeout=0.8 * period) as robot:
        report = run(policy, robot, seconds=seconds,
                     realtime_priority=50 if realtime else None, cpu=0 if realtime else None)
    return {"rate_hz": rate, "baud": baud or None, "scheduling": report.realtime,
            "cycles": report.cycles,
            "deadline_misses": report.deadline_misses,
            "miss_rate_percent": round(100 * report.deadline_misses / max(report.cycles, 1), 3),
            "jitter_p99_us": round(report.jitter_p99_us, 1),
            "read_p99_us": report.stage_p99_us.get("read"),
            "timeouts": report.link.get("timeouts"), "stopped": report.stopped}


def write(results: dict, save: bool) -> None:
    lines = ["# Serial link through the device emulator", "",
             "The emulator runs in its own process behind a pty; the host is SerialRobot "
             "(pyserial). Wire time: none (a pty has none), or emulated for a 1 Mbit/s bus "
             "(10 bits a byte).", "",
             "| wire | read p50 us | read p99 us | state+command p50 us | p99 us | timeouts |",
             "|---|---:|---:|---:|---:|---:|"]
    for row in results["round_trips"]:
        wire = f"{row['baud']:,} baud" if row["baud"] else "pty (none)"
        lines.append(f"| {wire} | {row['read_p50_us']} | {row['read_p99_us']} | "
                     f"{row['exchange_p50_us']} | {row['exchange_p99_us']} | {row['timeouts']} |")
    lines += ["", f"Deploy loop through the emulator (pendulum robot retimed), {results['seconds']} "
              f"s per rate; target: >= 1,000 Hz with <= {MISS_TARGET_PERCENT}% misses.", "",
              "| rate Hz | wire | scheduling | cycles | misses | miss rate | jitter p99 us | "
              "read p99 us | timeouts | meets target |",
              "|---:|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in results["rates"]:
        wire = f"{row['baud']:,} baud" if row["baud"] else "pty (none)"
        ok = row["miss_rate_percent"] <= MISS_TARGET_PERCENT and not row["stopped"]
        lines.append(f"| {row['rate_hz']} | {wire} | {row['scheduling']} | {row['cycles']} | "
                     f"{row['deadline_misses']} "
                     f"| {row['miss_rate_percent']} % | {row['jitter_p99_us']} | "
                     f"{row['read_p99_us']} | {row['timeouts']} | {'yes' if ok else 'no'} |")
    for baud, realtime in ((0, False), (0, True), (1_000_000, False)):
        ok = [r["rate_hz"] for r in results["rates"] if (r["baud"] or 0) == baud
              and ("SCHED_FIFO" in r["scheduling"]) == realtime
              and r["miss_rate_percent"] <= MISS_TARGET_PERCENT and not r["stopped"]]
        wire = f"{baud:,} baud" if baud else "pty"
        how = "real-time priority, pinned" if realtime else "normal scheduling"
        lines.append(f"\nHighest rate sustained ({wire}, {how}): {max(ok) if ok else 'none'} Hz")
    publish("serial_link", results, "\n".join(lines), save)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=10.0)
    add_save_flag(parser)
    args = parser.parse_args()
    results = {"seconds": args.seconds, "round_trips": [], "rates": [],
               "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for baud in (0, 1_000_000):
        results["round_trips"].append(round_trips(args.exchanges, baud))
        print(results["round_trips"][-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        policy = exported_policy("sim2real/FurutaSwingup-v0", Path(tmp) / "pendulum")
        for baud, realtime in ((0, False), (0, True), (1_000_000, False)):
            for rate in RATES:
                results["rates"].append(control_rate(policy, rate, args.seconds, baud,
                                                     realtime))
                print(results["rates"][-1], flush=True)
    write(results, args.save)


if __name__ == "__main__":
    main()
