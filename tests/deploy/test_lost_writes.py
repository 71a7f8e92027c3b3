"""The rate limit holds at the robot (issue 30): when writes are lost on the way, the next
command the robot receives must still be within the rate limit of the one it holds. The
supervisor keeps each command within the limit of every command the robot may hold
(Robot.command_window); before, its reference moved on to commands that never arrived."""

from __future__ import annotations

import random
import threading

import numpy as np
import pytest
from bad_policies import bad_policy

from deploy.loop import run
from deploy.onnx_policy import OnnxPolicy
from deploy.supervisor import SafetyConfig, Supervisor
from hardware.emulator import DeviceEmulator
from hardware.faults import WireFaults
from hardware.serial_robot import SerialRobot
from hardware.sim_robot import SimRobot
from hardware.transports import PtyTransport
from sim.so_arm import SO_ARM
from sim.spec import RobotState

MAX_STEP = Supervisor(SO_ARM, SafetyConfig(), RobotState(np.zeros(6), np.zeros(6))).max_change
# Escalations off: a saturating policy drives the joints into their limits, which is the point.
SAFETY = SafetyConfig(oscillation_seconds=0, soft_start_seconds=0.2)


class LossyArm(SimRobot):
    """A simulated arm whose link loses `loss` of the commands written to it, silently. It
    acknowledges what it receives at once: the window is the last command received and every
    one sent after it (lost, but the host cannot know that they will not arrive)."""

    def __init__(self, loss: float, seed: int) -> None:
        super().__init__(SO_ARM, realtime=False)
        self.loss, self.rng, self.received = loss, random.Random(seed), []
        self.sent: list[np.ndarray] = []
        self.since_received: list[np.ndarray] = []

    def _write_command(self, command: np.ndarray) -> None:
        self.sent.append(command.copy())
        if self.rng.random() < self.loss:
            self.since_received.append(command.copy())
            if self.sim is not None:
                self.sim.step(self.sim.substeps)  # time passes; the goal stays
            return
        super()._write_command(command)
        self.received.append(command.copy())
        self.since_received = []

    def command_window(self) -> list[np.ndarray]:
        return self.received[-1:] + self.since_received


def largest_step(received: list[np.ndarray]) -> float:
    return float(np.max(np.abs(np.diff(np.asarray(received), axis=0)) / MAX_STEP))


@pytest.mark.slow  # two 1.5 s real-time runs over a lossy wire: the fast subset has no room
@pytest.mark.parametrize("with_window", [True, False], ids=["window", "last sent only"])
def test_lost_writes_never_make_a_step_above_the_rate_limit(tiny_policy, tmp_path,
                                                            with_window) -> None:
    policy = OnnxPolicy(bad_policy("saturating", tiny_policy, tmp_path / "saturating.onnx",
                                   size=1.0))
    arm = LossyArm(loss=0.3, seed=4)
    if not with_window:  # the old reference: the last command sent, arrived or not
        arm.command_window = lambda: arm.sent[-1:]
    with arm:
        run(policy, arm, seconds=1.5, safety=SAFETY)
    # The arm moved: the joints were driven most of the way into their limits.
    assert np.ptp(np.asarray(arm.received), axis=0).max() > 1.0
    if with_window:
        assert largest_step(arm.received) <= 1 + 1e-9
    else:
        assert largest_step(arm.received) > 1.2  # what the test would have caught


@pytest.mark.slow
def test_a_device_that_loses_30_percent_of_frames_never_receives_a_step_above_the_limit(
        tiny_policy, tmp_path) -> None:
    """Through the emulator: the device acknowledges the commands it applies (STATE's
    command_seq); 30% of the frames each way are lost."""
    applied: list[np.ndarray] = []

    class Recording(DeviceEmulator):
        def _command(self, payload: bytes, seq: int) -> None:
            before = self.counters.commands
            super()._command(payload, seq)
            if self.counters.commands > before:
                applied.append(self._pending[-1][1].copy())

    policy = OnnxPolicy(bad_policy("saturating", tiny_policy, tmp_path / "saturating.onnx",
                                   size=1.0))
    wire = PtyTransport()
    faults = WireFaults(drop_frame_rate=0.3, rates_from=0.3, seed=6)
    device = Recording(SO_ARM, wire, faults=faults, watchdog_ms=300)
    stop = threading.Event()
    thread = threading.Thread(target=device.serve, kwargs={"stop": stop}, daemon=True)
    thread.start()
    try:
        with SerialRobot(wire.name, SO_ARM) as arm:
            report = run(policy, arm, seconds=3.0,
                         safety=SafetyConfig(oscillation_seconds=0, watchdog_seconds=0.3))
    finally:
        stop.set()
        thread.join(5)
    assert report.stopped == "", report.stopped
    assert device.counters.dropped_in > 20 and len(applied) > 50
    assert report.link["unacknowledged_commands"] > 0
    # float32 on the wire: a step of exactly the limit may round a hair above it.
    assert largest_step(applied) <= 1 + 1e-5
