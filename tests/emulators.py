"""A robot's emulator in its own process, as the tests that drive one over a pty start it."""

from __future__ import annotations

import json
import subprocess
import sys

TRACKER_CAMERA = ("--camera-size", "960x720", "--camera-fps", "15")
"""The emulated camera a tracker reads (emulate ARGS): the block's 22.5 mm marker needs about 3
pixels a cell from the camera's place (at 640x480 it was found in 24 of 40 views, at 960x720 in
39); 15 frames/s, as rendering 960x720 takes the emulator most of a core at 30."""


class Emulator:
    """`sim2real emulate ROBOT --pty ARGS...` in its own process; `port` is where to connect.
    `stdin=subprocess.PIPE` to `press_enter` (--one-at-a-time plugs in the next servo)."""

    def __init__(self, robot: str, *args: str, stdin: int | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "sim2real.cli", "emulate", robot, "--pty", *args],
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = self.process.stdout.readline()
        if not first.startswith("emulating"):
            self.process.kill()
            raise RuntimeError(f"the emulator did not start: {first}{self.process.stderr.read()}")
        self.port = first.split(" on ")[1].split()[0]
        self.counters: dict = {}
        self.camera: str | None = None
        """The camera's stream URL, with `--camera-port` (from the banner's deploy command)."""
        if "--camera-port" in args:
            words = self.line_starting("connect with:").split()
            self.camera = words[words.index("--camera") + 1]

    def __enter__(self) -> Emulator:
        return self

    def press_enter(self) -> None:
        self.process.stdin.write("\n")
        self.process.stdin.flush()

    def line_starting(self, prefix: str) -> str:
        """The next line the emulator prints that starts with `prefix` (without its newline)."""
        while line := self.process.stdout.readline():
            if line.startswith(prefix):
                return line.rstrip("\n")
        raise AssertionError(f"the emulator ended without a line {prefix!r}...: "
                             f"{self.process.stderr.read()}")

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # it prints its counters and exits
        out, _ = self.process.communicate(timeout=10)
        for line in out.splitlines():
            if line.startswith("emulator stopped: "):
                self.counters = json.loads(line.removeprefix("emulator stopped: "))
