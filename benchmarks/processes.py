"""The processes a benchmark runs beside the one it measures: a robot's emulator (the stand-in
for the hardware) and training runs that keep every core busy."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIM2REAL = str(ROOT / ".venv/bin/sim2real")
BAUD = 1_000_000


class Emulator:
    """`sim2real emulate so_arm --bus feetech --pty --baud 1000000` in its own process (or with
    `args` in place of the bus and baud, of `robot`); `port` is its pty."""

    def __init__(self, *args: str, robot: str = "so_arm") -> None:
        args = args or ("--bus", "feetech", "--baud", str(BAUD))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sim2real.cli", "emulate", robot, "--pty", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        first = self.process.stdout.readline()
        if not first.startswith("emulating"):
            self.process.kill()
            raise RuntimeError(f"the emulator did not start: {first}{self.process.stderr.read()}")
        self.port = first.split(" on ")[1].split()[0]
        self.camera: str | None = None
        """The camera's stream URL, with `--camera-port` (from the banner's deploy command)."""
        while "--camera-port" in args and (line := self.process.stdout.readline()):
            if line.startswith("connect with:"):
                words = line.split()
                self.camera = words[words.index("--camera") + 1]
                break

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        self.process.communicate(timeout=10)


class Trainer:
    """Training in the background, as many `sim2real train` runs (PPO on the reach task) as there
    are CPUs: one run keeps about one core busy (rollouts and updates take turns), so this loads
    every core for the whole deploy. Their CPU use is measured."""

    def __init__(self) -> None:
        self.processes = [subprocess.Popen(
            [SIM2REAL, "train", "--env", "sim2real/ArmReach-v0", "--steps", "100000000", "--seed",
             str(k), "--out", f"/tmp/s2r_bench_load{k}", "--overwrite", "--quiet"], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            for k in range(os.cpu_count() or 1)]
        time.sleep(10.0)  # imports done, every core busy
        self._since = self._cpu_seconds(), time.perf_counter()

    def _cpu_seconds(self) -> float:
        """User + system CPU seconds of the trainers (their threads included)."""
        total = 0
        for process in self.processes:
            fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def cores_used(self) -> float:
        """Cores the trainer kept busy since the last call."""
        cpu, wall = self._cpu_seconds(), time.perf_counter()
        used = (cpu - self._since[0]) / (wall - self._since[1])
        self._since = cpu, wall
        return round(used, 2)

    def stop(self) -> None:
        for process in self.processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)


def hardware_like(device: Emulator) -> Emulator:
    """The emulator stands in for the robot's own electronics, which the computer's load does not
    slow: it runs at SCHED_FIFO priority 60 on CPU 0 where allowed (as root here)."""
    try:
        os.sched_setaffinity(device.process.pid, {0})
        os.sched_setscheduler(device.process.pid, os.SCHED_FIFO, os.sched_param(60))
    except (AttributeError, OSError):
        pass  # no privilege: the emulator shares the load, a harder test than real hardware
    return device
