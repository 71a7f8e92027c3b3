"""How a run ends safely: the watchdog when the robot stops answering, the e-stops, Ctrl-C."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from deploy.loop import run
from deploy.onnx_policy import OnnxPolicy
from deploy.stop_signals import StopSignals
from deploy.supervisor import SafetyConfig
from deploy.telemetry import read_log
from hardware.robot import Robot
from sim.so_arm import SO_ARM
from sim.spec import RobotState


class FakeArm(Robot):
    """Perfect servos with a device clock; after `answer_for` seconds it falls silent: reads
    raise TimeoutError ("silent") or return the last reading again ("stale")."""

    def __init__(self, answer_for: float = 1e9, failure: str = "silent") -> None:
        self.spec = SO_ARM
        self.positions = np.full(6, 0.2)
        self.answer_for, self.failure = answer_for, failure
        self.sent: list[tuple[float, np.ndarray]] = []
        self.released_at: float | None = None
        self.last_answer = 0.0
        self._started = time.perf_counter()
        self._last = RobotState(self.positions.copy(), np.zeros(6), 0.0)

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def read_state(self) -> RobotState:
        now = time.perf_counter()
        if now - self._started > self.answer_for:
            if self.failure == "silent":
                raise TimeoutError("no answer from the arm")
            return self._last
        self.last_answer = now
        self._last = RobotState(self.positions.copy(), np.zeros(6), now - self._started)
        return self._last

    def _write_command(self, command: np.ndarray) -> None:
        self.sent.append((time.perf_counter(), command.copy()))
        self.positions = command.copy()

    def release(self) -> None:
        self.released_at = time.perf_counter()


@pytest.mark.parametrize("failure", ["silent", "stale"])
def test_watchdog_stops_within_its_period_when_the_robot_stops_answering(
        tiny_policy, tmp_path, failure) -> None:
    arm = FakeArm(answer_for=0.4, failure=failure)
    log = tmp_path / "watchdog.mcap"
    safety = SafetyConfig(watchdog_seconds=0.1)
    report = run(OnnxPolicy(tiny_policy), arm, seconds=5.0, safety=safety, log=log)
    assert report.stopped.startswith("watchdog"), report.stopped
    # Within the limit; a cycle that starts late on a loaded machine (others' trainings, the
    # rest of the suite) may add its lateness, a few ms (measured: 3.5 ms once).
    late = 0.01
    assert report.stopped_after_s <= 0.1 + late
    # The safe stop: the last command holds the last measured pose, sent within the watchdog
    # period of the last answer (a few ms of the stop's own work aside); then the arm is
    # released.
    stop_time, hold = arm.sent[-1]
    assert stop_time - arm.last_answer <= 0.1 + late + 0.005
    assert np.allclose(hold, arm._last.positions)
    assert arm.released_at is not None and arm.released_at >= stop_time
    if failure == "silent":
        assert report.read_failures >= 1
    else:
        assert report.read_failures == 0
    logged = read_log(log)
    assert not logged.truncated
    assert logged.event("safe_stop")["reason"] == report.stopped
    assert logged.event("report")["report"]["cycles"] == report.cycles == logged.cycles


def test_an_estop_file_stops_the_run_holding_then_releasing(tiny_policy, tmp_path) -> None:
    arm = FakeArm()
    estop = tmp_path / "estop"
    threading.Timer(0.3, estop.touch).start()
    safety = SafetyConfig(stop_hold_seconds=0.1)
    report = run(OnnxPolicy(tiny_policy), arm, seconds=5.0, safety=safety,
                 stops=StopSignals(estop_file=estop))
    assert report.stopped == f"e-stop (file {estop})"
    assert report.seconds < 1.0
    holds = [command for when, command in arm.sent if when >= arm.sent[-1][0] - 0.1]
    assert len(holds) >= 2 and all(np.array_equal(h, holds[-1]) for h in holds)
    assert arm.released_at >= arm.sent[-1][0]


def test_an_engaged_estop_file_refuses_to_start(tmp_path) -> None:
    estop = tmp_path / "estop"
    estop.touch()
    with pytest.raises(FileExistsError, match="e-stop is engaged"):
        StopSignals(estop_file=estop)


def test_ctrl_c_holds_then_releases(tiny_policy) -> None:
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the suite runs in the background
    arm = FakeArm()
    threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
    report = run(OnnxPolicy(tiny_policy), arm, seconds=5.0,
                 safety=SafetyConfig(stop_hold_seconds=0.2))
    assert report.stopped == "Ctrl-C"
    first_hold = next(when for when, command in arm.sent
                      if np.array_equal(command, arm.sent[-1][1]))
    assert arm.sent[-1][0] - first_hold >= 0.15  # held for stop_hold_seconds
    assert arm.released_at >= arm.sent[-1][0]
    # The handler is removed afterwards: Ctrl-C is what it was before.
    assert signal.getsignal(signal.SIGINT) == before
