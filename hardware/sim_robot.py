"""SimRobot: the simulated fallback behind the Robot interface.

The same `sim.physics.RobotSimulation` that trained the policy; in real time, physics catches up
with the wall clock whenever the robot is read, so the robot keeps moving between control cycles
exactly as hardware would. Imports MuJoCo (the robot's computer does not need this module).
"""

from __future__ import annotations

import time

import numpy as np

from hardware.robot import Robot
from sim.physics import RobotSimulation
from sim.spec import RobotSpec, RobotState


class SimRobot(Robot):
    """`realtime=False` steps one control period per command instead (fast tests)."""

    def __init__(self, spec: RobotSpec, realtime: bool = True) -> None:
        self.spec = spec
        self.realtime = realtime
        self.sim: RobotSimulation | None = None
        self._start = 0.0

    def connect(self) -> None:
        self.sim = RobotSimulation(self.spec)
        self.sim.reset(np.asarray(self.spec.default_pose))
        self._start = time.monotonic()

    def disconnect(self) -> None:
        self.sim = None

    def _require(self) -> RobotSimulation:
        if self.sim is None:
            raise RuntimeError("SimRobot is not connected; call connect() or use `with SimRobot(...)`")
        return self.sim

    def read_state(self) -> RobotState:
        sim = self._require()
        if self.realtime:
            behind = int((time.monotonic() - self._start - sim.data.time) / sim.timestep)
            if behind > 0:
                sim.step(behind)
        return sim.state()

    def _write_command(self, command: np.ndarray) -> None:
        sim = self._require()
        sim.set_command(command)
        if not self.realtime:
            sim.step()
