"""The SO-101's Feetech servo bus, measured through the bus emulator (FeetechBusEmulator) in its
own process over a pty (`sim2real emulate so_arm --bus feetech --pty --baud 1000000`), which
simulates the wire time of a 1 Mbit/s line both ways and each servo's return delay:

1. the bus cycle of the six servos, back to back: one SYNC READ of 56..66 (Present_Position ..
   Moving) + one SYNC WRITE of the six Goal_Position, median and p99 over `--cycles` cycles,
   with Return_Delay_Time 0 (as FeetechRobot sets it) and with the factory 250 (500 us a servo),
   beside the wire-time ceiling worked out from the byte counts (10 us a byte);
2. the highest control rate the deploy path sustains with at most 0.1% deadline misses:
   FeetechRobot.read_state + send_command in a fixed-rate loop (deploy/schedule.py's Schedule
   and sleep_until) at 50..500 Hz, each for `--seconds`; alone, and with a training run beside it
   (`sim2real train` runs in the background, one per CPU, killed after) unless --no-load.

Usage: python benchmarks/feetech_bus.py [--cycles 2000] [--seconds 3] [--no-load]
Prints its table; `--save` writes benchmarks/results/feetech_bus.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from processes import BAUD, Emulator, Trainer, hardware_like
from published import add_save_flag, publish

RATES = (50, 100, 200, 300, 500)
MISS_TARGET_PERCENT = 0.1
READ_ADDRESS, READ_LENGTH = 56, 11
FACTORY_RETURN_DELAY = 250  # x 2 us = 500 us a servo

def nominal_calibration():
    """The emulated arm's calibration: 2048 counts at 0, Homing_Offset 0, the spec's range (as
    tests/hardware/conftest.py's nominal_calibration)."""
    from hardware.feetech.calibration import Calibration, JointCalibration, default_ids
    from hardware.feetech.protocol import CENTER_COUNTS, COUNTS_PER_TURN
    from sim.so_arm import SO_ARM

    count = 2 * np.pi / COUNTS_PER_TURN
    low = np.rint(CENTER_COUNTS + np.asarray(SO_ARM.position_low) / count).astype(int)
    high = np.rint(CENTER_COUNTS + np.asarray(SO_ARM.position_high) / count).astype(int)
    return Calibration("so_arm", tuple(
        JointCalibration(name, i, 1, 0, int(lo), int(hi))
        for (name, i), lo, hi in zip(default_ids(SO_ARM).items(), low, high, strict=True)))


def wire_ceiling(return_delay_units: int) -> dict:
    """Bytes on the wire in one cycle and their time at 10 us a byte, plus the return delays."""
    from hardware.feetech.emulator import RETURN_DELAY_UNIT
    from hardware.feetech.protocol import status_packet, sync_read_packet, sync_write_packet

    ids = list(range(1, 7))
    read = len(sync_read_packet(READ_ADDRESS, READ_LENGTH, ids))
    reply = len(status_packet(1, 0, bytes(READ_LENGTH)))
    write = len(sync_write_packet(42, {i: bytes(2) for i in ids}))
    total = read + 6 * reply + write
    delay_us = 6 * return_delay_units * RETURN_DELAY_UNIT * 1e6
    us = total * 10 + delay_us
    return {"sync_read_bytes": read, "status_reply_bytes": reply, "sync_write_bytes": write,
            "total_bytes": total, "return_delays_us": round(delay_us, 1), "ceiling_us": us,
            "arithmetic": f"({read} + 6 x {reply} + {write}) B = {total} B x 10 us = "
                          f"{total * 10} us" + (f" + 6 x {delay_us / 6:.0f} us return delay = "
                                                f"{us:.0f} us" if delay_us else "")}


def bus_cycles(port: str, cycles: int, return_delay_units: int) -> dict:
    """Back-to-back SYNC READ + SYNC WRITE cycles; the cycle time is read start to read start
    (the write's wire time delays the next read on the half-duplex line)."""
    from hardware.feetech.bus import FeetechBus
    from hardware.feetech.protocol import CONTROL_TABLE

    ids = list(range(1, 7))
    reg = CONTROL_TABLE["Goal_Position"]
    with FeetechBus(port, BAUD) as bus:
        for i in ids:
            bus.write(i, "Lock", 0)
            bus.write(i, "Return_Delay_Time", return_delay_units)
            bus.write(i, "Lock", 1)
        starts, reads, missing = [], [], 0
        for _ in range(cycles + 1):
            start = time.perf_counter()
            replies = bus.sync_read(READ_ADDRESS, READ_LENGTH, ids, timeout=0.05)
            reads.append((time.perf_counter() - start) * 1e6)
            missing += len(ids) - len(replies)
            goals = {i: reg.encode(int.from_bytes(replies[i].params[:2], "little") & 0x7FFF)
                     if i in replies else reg.encode(2048) for i in ids}
            bus.sync_write(reg.address, goals)
            starts.append(start)
        stats = bus.stats
    cycle_us = np.diff(starts) * 1e6
    ceiling = wire_ceiling(return_delay_units)
    p50 = float(np.percentile(cycle_us, 50))
    return {"return_delay_units": return_delay_units, "cycles": cycles,
            "cycle_p50_us": round(p50, 1), "cycle_p99_us": round(float(np.percentile(cycle_us, 99)), 1),
            "read_p50_us": round(float(np.percentile(reads, 50)), 1),
            "ceiling_us": round(ceiling["ceiling_us"], 1),
            "measured_over_ceiling": round(p50 / ceiling["ceiling_us"], 3),
            "max_rate_hz_p50": round(1e6 / p50, 1), "missing_replies": missing,
            "timeouts": stats.timeouts, "retries": stats.retries, "wire": ceiling}


def control_rates(port: str, seconds: float, load: str) -> list[dict]:
    """FeetechRobot read_state + send_command at each rate, on a fixed schedule."""
    from deploy.schedule import Schedule, sleep_until
    from hardware.feetech.robot import FeetechRobot
    from sim.so_arm import SO_ARM

    rows = []
    for rate in RATES:
        period = 1.0 / rate
        # As hardware/backends.py makes it: the default timeouts (half SO_ARM's 20 ms period,
        # a third of that before asking again).
        with FeetechRobot(port, SO_ARM, calibration=nominal_calibration()) as arm:
            schedule = Schedule(period, time.perf_counter() + 0.01)
            work, errors = [], 0
            end = schedule.start + seconds
            while schedule.deadline < end:
                sleep_until(schedule.deadline)
                now = time.perf_counter()
                schedule.begin(now)
                try:
                    state = arm.read_state()
                    arm.send_command(state.positions)  # hold where it is
                except TimeoutError:
                    errors += 1
                done = time.perf_counter()
                work.append((done - now) * 1e6)
                schedule.advance(done)
            cycles = len(schedule.starts)
            link = arm.stats.summary()
        rows.append({"rate_hz": rate, "load": load, "cycles": cycles,
                     "deadline_misses": schedule.misses,
                     "miss_rate_percent": round(100 * schedule.misses / max(cycles, 1), 3),
                     "work_p50_us": round(float(np.percentile(work, 50)), 1),
                     "work_p99_us": round(float(np.percentile(work, 99)), 1),
                     "jitter_p99_us": round(schedule.jitter_p99_us(), 1),
                     "read_timeouts": errors, "link_timeouts": link.get("timeouts"),
                     "retries": link.get("retries")})
        print(rows[-1], flush=True)
    return rows


def passes(row: dict) -> bool:
    return row["miss_rate_percent"] <= MISS_TARGET_PERCENT and not row["read_timeouts"]


def write(results: dict, save: bool) -> None:
    lines = ["# SO-101 Feetech bus through the bus emulator", "",
             "FeetechBusEmulator in its own process (`sim2real emulate so_arm --bus feetech --pty "
             "--baud 1000000`) behind a pty, simulating 1 Mbit/s wire time (10 us a byte) both "
             "ways and each servo's return delay; the host is FeetechBus / FeetechRobot "
             f"(pyserial). Load average at start: {results['load_average_start']}; "
             f"{os.cpu_count()} CPUs.", "",
             "Wire-time ceiling of one cycle (SYNC READ 56..66 of 6 servos, 6 status replies, "
             "SYNC WRITE of 6 Goal_Position):", ""]
    for row in results["bus_cycles"]:
        lines.append(f"- Return_Delay_Time {row['return_delay_units']}: "
                     f"{row['wire']['arithmetic']}")
    lines += ["", f"Back-to-back bus cycles ({results['bus_cycles'][0]['cycles']} each):", "",
              "| Return_Delay_Time | cycle p50 us | cycle p99 us | wire ceiling us | "
              "p50 / ceiling | rate at p50 Hz | missing replies |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for row in results["bus_cycles"]:
        what = "0 (FeetechRobot)" if row["return_delay_units"] == 0 else \
            f"{row['return_delay_units']} (factory, 500 us a servo)"
        lines.append(f"| {what} | {row['cycle_p50_us']} | {row['cycle_p99_us']} | "
                     f"{row['ceiling_us']} | {row['measured_over_ceiling']} | "
                     f"{row['max_rate_hz_p50']} | {row['missing_replies']} |")
    if len(results["bus_cycles"]) == 2:
        a, b = results["bus_cycles"]
        lines.append(f"\nFactory return delay / 0: {b['cycle_p50_us'] / a['cycle_p50_us']:.2f}x "
                     "the cycle time (median).")
    loads = sorted({r["load"] for r in results["rates"]})
    by = {(r["rate_hz"], r["load"]): r for r in results["rates"]}
    lines += ["", "The emulator's own overhead (its 0.5 ms poll of the pty, decoding, the "
              "physics it steps) and the pty add to the wire time: the ceiling is what a real "
              "1 Mbit/s line would allow with no adapter latency.", "",
              f"Deploy path (FeetechRobot.read_state + send_command on a Schedule, "
              f"Return_Delay_Time 0, FeetechRobot's default timeouts as `--robot feetech:` makes "
              f"it; the emulator, the stand-in for the servos, at SCHED_FIFO priority 60 on CPU "
              f"0, as hardware the computer's load does not slow), {results['seconds']} s per "
              f"rate; pass: <= "
              f"{MISS_TARGET_PERCENT}% deadline misses and no read timeouts. Work = the read + "
              f"write of one cycle.", "",
              "| rate Hz | " + " | ".join(f"{load}: misses / cycles | work p50/p99 us | pass"
                                          for load in loads) + " |",
              "|---:|" + "---:|---:|---|" * len(loads)]
    for rate in RATES:
        cells = []
        for load in loads:
            r = by.get((rate, load))
            cells.append("n/a | n/a | n/a" if r is None else
                         f"{r['deadline_misses']} / {r['cycles']} ({r['miss_rate_percent']} %) | "
                         f"{r['work_p50_us']} / {r['work_p99_us']} | "
                         f"{'yes' if passes(r) else 'no'}")
        lines.append(f"| {rate} | " + " | ".join(cells) + " |")
    for load in loads:
        ok = [r["rate_hz"] for r in results["rates"] if r["load"] == load and passes(r)]
        lines.append(f"\nHighest rate sustained ({load}): {max(ok) if ok else 'none'} Hz")
    if "training_cores" in results:
        lines.append(f"\nTraining beside: one `sim2real train` run per CPU, "
                     f"{results['training_cores']} cores busy over the measurement.")
    if results.get("skipped"):
        lines.append(f"\nSkipped: {results['skipped']}")
    publish("feetech_bus", results, "\n".join(lines), save)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--no-load", action="store_true", help="skip the run beside training")
    add_save_flag(parser)
    args = parser.parse_args()
    results = {"seconds": args.seconds, "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
               "load_average_start": [round(x, 2) for x in os.getloadavg()],
               "emulator": "own process (sim2real emulate --bus feetech --pty)",
               "bus_cycles": [], "rates": [], "skipped": ""}
    with Emulator() as device:
        for delay in (0, FACTORY_RETURN_DELAY):
            results["bus_cycles"].append(bus_cycles(device.port, args.cycles, delay))
            print({k: v for k, v in results["bus_cycles"][-1].items() if k != "wire"}, flush=True)
    with Emulator() as device:
        hardware_like(device)
        from hardware.feetech.bus import FeetechBus
        with FeetechBus(device.port, BAUD) as bus:
            nominal_calibration().write_registers(bus)
        results["rates"] += control_rates(device.port, args.seconds, "idle")
        if args.no_load:
            results["skipped"] = "the run beside a training run (--no-load)"
        else:
            trainer = Trainer()
            try:
                results["rates"] += control_rates(device.port, args.seconds, "training beside")
                results["training_cores"] = trainer.cores_used()
            finally:
                trainer.stop()
    write(results, args.save)


if __name__ == "__main__":
    main()
