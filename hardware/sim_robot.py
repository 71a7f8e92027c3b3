"""SimRobot: the simulated fallback behind the Robot interface.

The same `sim.physics.RobotSimulation` that trained the policy; in real time, physics catches up
with the wall clock whenever the robot is read, so the robot keeps moving between control cycles
exactly as hardware would. A motor-driven robot (the pendulum) may have the hand of a person at
the rig (hardware/emulation.py `Hand`), as the device emulator has. Imports MuJoCo (the robot's
computer does not need this module).
"""

from __future__ import annotations

import time

import numpy as np

from hardware.emulation import Hand, TableHand
from hardware.robot import Robot
from sim.physics import RobotSimulation
from sim.spec import RobotSpec, RobotState


class SimRobot(Robot):
    """`realtime=False` steps one control period per command instead (fast tests). The robot
    starts at rest at `initial_pose` (default: the spec's default pose), as a person would set
    the real one up before a run; `scene`, `objects` and `initial_objects` add a task's props
    (a block to push) as `RobotSimulation` takes them. A motor-driven robot's `hand` holds the
    joints at its pose (the start: give no `initial_pose`) until the first nonzero command, and
    puts them back after a fall (`Hand`): a pendulum cannot be held by its motor. A servo
    arm's `table` hand puts its objects back while the deploy waits for them (`TableHand`)."""

    def __init__(self, spec: RobotSpec, realtime: bool = True,
                 initial_pose: np.ndarray | None = None, scene: str | None = None,
                 objects: tuple[str, ...] = (), initial_objects: np.ndarray | None = None,
                 hand: Hand | None = None, table: TableHand | None = None) -> None:
        self.spec = spec
        self.scene, self.objects, self.initial_objects = scene, objects, initial_objects
        self.realtime = realtime
        if hand is not None and spec.actuator_kind == "position":
            raise ValueError(f"{spec.name}'s servos hold their own pose: a hand is for "
                             "motor-driven robots such as furuta")
        if hand is not None and initial_pose is not None:
            raise ValueError("a SimRobot with a hand starts at the hand's pose: give the start "
                             "once, as Hand(pose), not also as initial_pose")
        if table is not None and not objects:
            raise ValueError("a table hand puts objects back: give the scene's objects too")
        self.hand, self.table = hand, table
        if hand is not None:
            initial_pose = hand.pose
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
            self._step(sim, behind)
        if self.hand is not None:
            self.hand.catch(sim, sim.data.time)
        if self.table is not None:
            self.table.tidy(sim, sim.data.time)
        state = sim.state()
        state.command_time = self._command_time
        return state

    def _write_command(self, command: np.ndarray) -> None:
        sim = self._require()
        sim.set_command(command)
        self._command_time = float(sim.data.time)
        if self.hand is not None:
            self.hand.drive(command, self._command_time)
        if self.table is not None:
            self.table.drive(command, self._command_time)
        if not self.realtime:
            self._step(sim, sim.substeps)

    def _step(self, sim: RobotSimulation, steps: int) -> None:
        if self.hand is not None:
            self.hand.step(sim, steps)
        elif steps > 0:
            sim.step(steps)
