"""MuJoCo physics of a robot described by a `RobotSpec`: the one place that turns commands into
motion. The Gymnasium env and `hardware.SimRobot` both drive the robot through this class, so
the simulated fallback moves exactly as the training simulation did."""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from sim.spec import RobotSpec, RobotState

ASSETS = Path(__file__).parent / "assets"


def load_model(path: Path) -> mujoco.MjModel:
    """Load an MJCF file; a parse error names the file (MuJoCo's message names the line)."""
    if not path.is_file():
        raise FileNotFoundError(f"MuJoCo model {path} does not exist")
    try:
        return mujoco.MjModel.from_xml_path(str(path))
    except ValueError as error:
        raise ValueError(f"cannot load MuJoCo model {path}: {error}") from None


class RobotSimulation:
    """A robot's MJCF model stepped at its physics timestep, commanded in robot units."""

    def __init__(self, robot: RobotSpec) -> None:
        self.robot = robot
        self.model = load_model(ASSETS / robot.mjcf)
        self.data = mujoco.MjData(self.model)
        self.qpos_index = np.array([self.model.joint(j).qposadr[0] for j in robot.joint_names])
        self.qvel_index = np.array([self.model.joint(j).dofadr[0] for j in robot.joint_names])
        self.actuator_index = np.array([self.model.actuator(j).id for j in robot.joint_names])
        self.substeps = round(robot.control_period / self.model.opt.timestep)
        if abs(self.substeps * self.model.opt.timestep - robot.control_period) > 1e-9:
            raise ValueError(f"{robot.name}: control period {robot.control_period} s is not a "
                             f"whole number of physics steps ({self.model.opt.timestep} s)")

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    def reset(self, positions: np.ndarray) -> None:
        """Place the robot at rest at `positions`, commanding it to stay there."""
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self.qpos_index] = positions
        self.data.ctrl[self.actuator_index] = positions
        mujoco.mj_forward(self.model, self.data)

    def set_command(self, command: np.ndarray) -> None:
        self.data.ctrl[self.actuator_index] = command

    def step(self, substeps: int | None = None) -> None:
        """Advance the physics; one control period unless told otherwise."""
        mujoco.mj_step(self.model, self.data, nstep=self.substeps if substeps is None else substeps)

    def state(self) -> RobotState:
        return RobotState(
            positions=self.data.qpos[self.qpos_index].copy(),
            velocities=self.data.qvel[self.qvel_index].copy(),
            time=float(self.data.time),
        )

    def show_target(self, position: np.ndarray) -> None:
        """Move the model's `target` marker, if it has one (drawing only, no physics)."""
        body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "target")
        if body >= 0 and self.model.body_mocapid[body] >= 0:
            self.data.mocap_pos[self.model.body_mocapid[body]] = position
