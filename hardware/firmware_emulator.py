"""The device emulator with the reference firmware inside: `sim2real emulate furuta --firmware
LIB`. The protocol side of the device is the C core a microcontroller runs (a host build,
hardware/firmware.py); Python is only its board: the clock, the encoders read from the robot's
MuJoCo physics running in real time, the UART's bytes, and the motor driver whose voltage goes
to the physics. The wire faults (hardware/faults.py) act on the bytes between the pty and the
core as they do for the Python device. So `sim2real deploy POLICY --robot serial:/dev/pts/N`
talks to the very code that would be flashed.

Imports MuJoCo (through the emulator): runs on the host, not on the robot's computer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from hardware.emulator import DeviceEmulator
from hardware.firmware import FirmwareBoard
from hardware.protocol import (
    Description,
    FaultCode,
    MessageType,
    decode_body,
    parse_fault,
)
from hardware.transports import Transport
from sim.spec import RobotSpec

# Of the description, what the firmware may say differently from the RobotSpec.
FIRMWARE_OWN = ("firmware", "watchdog_ms")


def check_firmware_robot(board: FirmwareBoard, spec: RobotSpec, library: Path) -> None:
    """Refuse a firmware built for another robot, or from an older RobotSpec."""
    expected = Description.of_spec(spec, board.watchdog_us / 1e3).__dict__
    built = board.description.__dict__
    differences = [name for name in expected if name not in FIRMWARE_OWN
                   and expected[name] != built.get(name)]
    if differences:
        raise ValueError(f"the firmware {library} was built for {built.get('robot')!r}, and its "
                         f"description differs from the RobotSpec {spec.name!r} in "
                         f"{', '.join(differences)}: rebuild it with `sim2real firmware-build "
                         f"{spec.name}`")


class FirmwareEmulator(DeviceEmulator):
    """Example:
        >>> board_library = build_host_firmware(FURUTA, Path("build/firmware"))
        >>> FirmwareEmulator(FURUTA, PtyTransport(), board_library).serve()

    The physics, the hand at the rig, the wire's faults, latency and baud rate are the
    emulator's (DeviceEmulator); sessions, every message, the clamping of commands and the
    watchdog are the firmware's. Its watchdog period is built in (the robot header)."""

    def __init__(self, spec: RobotSpec, transport: Transport, library: Path,
                 watchdog_ms: float | None = None, **options: Any) -> None:
        board = FirmwareBoard(library)
        try:
            check_firmware_robot(board, spec, library)
            built_ms = board.watchdog_us / 1e3
            if watchdog_ms is not None and watchdog_ms != built_ms:
                raise ValueError(f"the firmware's watchdog is built in ({built_ms:g} ms), not "
                                 f"{watchdog_ms:g} ms: rebuild it with `sim2real firmware-build "
                                 f"{spec.name} --watchdog-ms {watchdog_ms:g}` or drop "
                                 "--watchdog-ms")
            super().__init__(spec, transport, watchdog_ms=built_ms, **options)
            if self.faults.stale_rate:
                raise ValueError("stale_rate repeats the Python device's last reading; the "
                                 "firmware reads its encoders afresh: drop it with --firmware")
        except ValueError:
            board.close()
            raise
        self.board, self.library = board, Path(library)
        self.description = board.description
        self._incoming = bytearray()
        """Bytes from the wire up to the next delimiter: whole frames go to the core, so the
        frame-drop fault can drop whole frames."""
        self._drives, self._enabled = 0, False

    # -- the board -----------------------------------------------------------------------------
    def _micros(self) -> int:
        return round(self._now() * 1e6)

    def _power_up(self) -> None:
        self.board.begin(self._micros())
        self._drives = 0
        self._run_board()

    def _reset(self) -> None:
        """A brown-out: the core starts again (FAULT RESET), its session gone."""
        self._power_up()

    def _feed(self, data: bytes) -> None:
        self._incoming += data
        while (end := self._incoming.find(0)) >= 0:
            frame = bytes(self._incoming[:end + 1])
            del self._incoming[:end + 1]
            if self._wire().drop():
                self.counters.dropped_in += 1
                continue
            self._advance()  # the encoders read the physics as it is now
            received = self.board.frames_received()
            self._run_board(frame)
            if self.board.frames_received() > received:
                self.faults.connect(time.perf_counter())  # the core took a whole frame

    def _tick(self) -> None:
        self._run_board()  # the firmware's main loop: its watchdog and e-stop input

    def _run_board(self, received: bytes = b"") -> None:
        """The board's clock and encoders set to now, `received` into its UART, its core run;
        what it drove goes to the physics, what it wrote onto the wire."""
        sim = self.sim
        self.board.set_clock(self._micros())
        self.board.set_joints(sim.data.qpos[sim.qpos_index], sim.data.qvel[sim.qvel_index])
        if received:
            self.board.receive(received)
        else:
            self.board.poll()
        targets, enabled, drives = self.board.driven()
        if enabled != self._enabled:
            self._torque(enabled)
            self._enabled = enabled
        if drives != self._drives:
            self._drives = drives
            self._pending.append((self._now() + self.command_delay, np.asarray(targets)))
        for piece in self.board.take_sent().split(b"\x00")[:-1]:
            frame = decode_body(piece)  # the core's own frames: whole by construction
            if frame.type == MessageType.FAULT:
                name = FaultCode(parse_fault(frame.payload)[0]).name
                self.counters.faults_sent[name] = self.counters.faults_sent.get(name, 0) + 1
            self._transmit(piece + b"\x00")

    def _count(self) -> None:
        counters = self.board.counters()
        self.counters.frames_received = counters["frames_received"]
        self.counters.bad_frames = counters["bad_frames"]
        self.counters.commands = counters["commands"]
        self.counters.watchdog_trips = counters["watchdog_trips"]

    def serve(self, seconds: float | None = None, stop: Any = None) -> Any:
        try:
            return super().serve(seconds, stop)
        finally:
            self.board.close()
