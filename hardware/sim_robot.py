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
    """`realtime=False` steps one control period per command instead (fast tests). The robot
    starts at rest at `initial_pose` (default: the spec's default pose), as a person would set
    the real one up before a run; `scene`, `objects` and `initial_objects` add a task's props
    (a block to push) as `RobotSimulation` takes them."""

    def __init__(self, spec: RobotSpec, realtime: bool = True,
                 initial_pose: np.ndarray | None = None, scene: str | None = None,
                 objects: tuple[str, ...] = (), initial_objects: np.ndarray | None = None) -> None:
        self.spec = spec
        self.scene, self.objects, self.initial_objects = scene, objects, initial_objects
        self.realtime = realtime
        self.initial_pose = np.asarray(spec.default_pose if initial_pose is None else initial_pose,
                                       dtype=np.float64)
        if self.initial_pose.shape != (spec.num_joints,):
            raise ValueError(f"initial_pose needs {spec.num_joints} joint positions, got "
                             f"{self.initial_pose.shape}")
        self.sim: RobotSimulation | None = None
        self._start = 0.0
        self._command_time = float("nan")

    def connect(self) -> None:
        self.sim = RobotSimulation(self.spec, self.scene, self.objects)
        self.sim.reset(self.initial_pose, self.initial_objects)
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
        state = sim.state()
        state.command_time = self._command_time
        return state

    def _write_command(self, command: np.ndarray) -> None:
        sim = self._require()
        sim.set_command(command)
        self._command_time = float(sim.data.time)
        if not self.realtime:
            sim.step()
