"""MuJoCo physics of a robot described by a `RobotSpec`: the one place that turns commands into
motion. The Gymnasium env and `hardware.SimRobot` both drive the robot through this class, so
the simulated fallback moves exactly as the training simulation did."""

from __future__ import annotations

import re
from pathlib import Path

import mujoco
import numpy as np

from sim.spec import ASSETS, DCMotor, PositionServo, RobotSpec, RobotState


def load_model(path: Path) -> mujoco.MjModel:
    """Load an MJCF file. Errors name the file and the line: MuJoCo's XML errors carry the line,
    and for a missing asset we find the line that references it."""
    if not path.is_file():
        raise FileNotFoundError(f"MuJoCo model {path} does not exist")
    try:
        return mujoco.MjModel.from_xml_path(str(path))
    except ValueError as error:
        message = " ".join(str(error).split())
        missing = re.search(r"Error opening file '([^']+)'", message)
        if missing:
            name = Path(missing.group(1)).name
            for number, line in enumerate(path.read_text().splitlines(), start=1):
                if name in line:
                    message += f" (referenced at {path}:{number})"
                    break
        raise ValueError(f"cannot load MuJoCo model {path}: {message}") from None


class RobotSimulation:
    """A robot's MJCF model stepped at its physics timestep, commanded in robot units.

    The spec's actuator models are written into the MuJoCo model at load, so the spec, not the
    XML, is the source of truth for gains and limits. Readings are what the robot's encoders
    would report (whole counts).
    """

    def __init__(self, robot: RobotSpec, scene: str | None = None,
                 objects: tuple[str, ...] = ()) -> None:
        """`scene`: an MJCF under sim/assets/ holding the robot and more (default: the robot's
        own). `objects`: bodies on free joints whose positions each reading reports."""
        self.robot = robot
        self.model = load_model(ASSETS / (scene or robot.mjcf))
        self.data = mujoco.MjData(self.model)
        object_joints = [self._free_joint_of(name) for name in objects]
        self.object_qpos = np.array(self.model.jnt_qposadr[object_joints], dtype=int)
        self.object_dof = np.array(self.model.jnt_dofadr[object_joints], dtype=int)
        self.qpos_index = np.array([self._element("joint", j).qposadr[0] for j in robot.joint_names])
        self.qvel_index = np.array([self._element("joint", j).dofadr[0] for j in robot.joint_names])
        self.actuator_index = np.array([self._element("actuator", a).id
                                        for a in robot.actuator_names])
        self.actuated_qpos = self.qpos_index[robot.actuated_joint_index]
        # Slices where the indices are contiguous: reading and writing MjData is a hot path.
        self.qpos_at = as_slice(self.qpos_index)
        self.qvel_at = as_slice(self.qvel_index)
        self.ctrl_at = as_slice(self.actuator_index)
        # Views into MjData (its buffers never move) where the joints and actuators follow one
        # another in the spec's order: indexing MjData per access costs more than the physics
        # of a small robot in a batch's hot loop.
        self._make_views()
        self.substeps = round(robot.control_period / self.model.opt.timestep)
        if abs(self.substeps * self.model.opt.timestep - robot.control_period) > 1e-9:
            raise ValueError(f"{robot.name}: control period {robot.control_period} s is not a "
                             f"whole number of physics steps ({self.model.opt.timestep} s)")
        self.is_servo = robot.actuator_kind == "position"
        self.gain_phase = 0
        """Physics steps since the servos last decided whether to drive (see `step`)."""
        write_actuator_models(self.model, self.actuator_index, robot)
        if self.is_servo:
            self.resolution = np.array([a.resolution for a in robot.actuators])

    def _make_views(self) -> None:
        self.views = None
        if all(isinstance(at, slice) for at in (self.qpos_at, self.qvel_at, self.ctrl_at)):
            self.views = (self.data.ctrl[self.ctrl_at], self.data.qpos[self.qpos_at],
                          self.data.qvel[self.qvel_at])
        self.object_views = [self.data.qpos[a:a + 3] for a in self.object_qpos]

    def __getstate__(self) -> dict:
        # Views do not survive pickling (they would come back as copies): rebuilt on load, so
        # a checkpoint can hold a running simulation.
        return {k: v for k, v in self.__dict__.items() if k not in ("views", "object_views")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._make_views()

    def _free_joint_of(self, body: str) -> int:
        try:
            joint = self.model.body(body).jntadr[0]
        except KeyError:
            raise ValueError(f"the scene has no body {body!r} to track") from None
        if joint < 0 or self.model.jnt_type[joint] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(f"body {body!r} has no free joint; only free bodies are tracked")
        return int(joint)

    def _element(self, kind: str, name: str):
        """The model's joint or actuator called `name`, or an error naming the file."""
        try:
            return getattr(self.model, kind)(name)
        except KeyError:
            raise ValueError(f"{self.robot.mjcf} has no {kind} {name!r} of robot "
                             f"{self.robot.name!r}") from None

    @property
    def timestep(self) -> float:
        return float(self.model.opt.timestep)

    def reset(self, positions: np.ndarray, objects: np.ndarray | None = None) -> None:
        """Place the robot at rest at `positions` (and tracked objects, upright, at `objects`);
        servos hold there, motors get 0 V."""
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[self.qpos_index] = positions
        if objects is not None:
            self.place_objects(objects)
        hold = positions[self.robot.actuated_joint_index] if self.is_servo else 0.0
        self.data.ctrl[self.actuator_index] = hold
        mujoco.mj_forward(self.model, self.data)
        self.gain_phase = 0

    def place_objects(self, objects: np.ndarray) -> None:
        """Put the tracked objects, upright and at rest, at `objects` (one position each); the
        robot and the clock go on as they were."""
        for address, dof, position in zip(self.object_qpos, self.object_dof, objects, strict=True):
            self.data.qpos[address:address + 7] = (*position, 1.0, 0.0, 0.0, 0.0)
            self.data.qvel[dof:dof + 6] = 0.0  # a free joint: 7 position, 6 velocity coordinates
        mujoco.mj_forward(self.model, self.data)

    def held_command(self) -> np.ndarray:
        """The command the actuators hold now; after `reset`, the start pose's servo goals or
        0 V: what an episode's command history and command delay line start full of."""
        return self.data.ctrl[self.ctrl_at].copy()

    def actuator_command(self, command: np.ndarray) -> np.ndarray:
        """Commands as the actuators take them (any leading batch axes are kept): within the
        command limits, and servo goals in whole encoder counts. The one place commands are
        clamped on their way into the physics."""
        if self.is_servo:
            command = np.round(command / self.resolution) * self.resolution
        return self.robot.clamp_command(command)

    def servo_gains(self, goals: np.ndarray, measured: np.ndarray,
                    configured: np.ndarray | None = None,
                    deadband: np.ndarray | None = None) -> np.ndarray:
        """P gain of each servo for the next control period (rows of a batch alike): its
        configured gain, or 0 within its deadband (rad) of the goal (it does not drive; its D
        term still brakes); both this model's unless given. `measured` are the actuated
        joints' encoder readings. Decided once per control period: the STS3215's own loop rate
        is unpublished, and a decision per physics step would cost more than the physics."""
        if configured is None:
            configured = self.configured_gains()
        if deadband is None:
            deadband = self.deadband()
        return np.where(np.abs(goals - measured) <= deadband, 0.0, configured)

    def configured_gains(self) -> np.ndarray:
        return self.model.actuator_gainprm[self.ctrl_at, SERVO_KP_SLOT]

    def deadband(self) -> np.ndarray:
        """Each servo's deadband in rad (the model holds it in encoder counts)."""
        return self.model.actuator_gainprm[self.ctrl_at, SERVO_DEADBAND_SLOT] * self.resolution

    def active_gains(self) -> np.ndarray:
        """The P gains the servos drive with now (0 where one sits in its deadband)."""
        return self.model.actuator_gainprm[self.ctrl_at, 0]

    def write_gains(self, kp: np.ndarray) -> None:
        """Apply the servos' P gains for the next control period."""
        self.model.actuator_gainprm[self.ctrl_at, 0] = kp
        self.model.actuator_biasprm[self.ctrl_at, 1] = -kp

    def set_command(self, command: np.ndarray) -> None:
        self.data.ctrl[self.ctrl_at] = self.actuator_command(command)
        self.gain_phase = 0  # a new goal: the servos decide at once whether to drive

    def step(self, substeps: int | None = None) -> None:
        """Advance the physics; one control period unless told otherwise. Servos decide whether
        to drive (their deadband) when a goal arrives and every control period after, however
        the steps are split into calls: the device emulator steps one physics step at a time
        and must behave as the env that trained the policy."""
        remaining = self.substeps if substeps is None else substeps
        while remaining > 0:
            if self.is_servo and self.gain_phase == 0:
                measured = self.robot.quantize_positions(self.data.qpos[self.actuated_qpos])
                self.write_gains(self.servo_gains(self.data.ctrl[self.ctrl_at], measured))
            chunk = min(remaining, self.substeps - self.gain_phase)
            mujoco.mj_step(self.model, self.data, nstep=chunk)
            self.gain_phase = (self.gain_phase + chunk) % self.substeps
            remaining -= chunk

    def object_positions(self) -> np.ndarray | None:
        if not len(self.object_qpos):
            return None
        return np.array(self.object_views)

    def state(self) -> RobotState:
        return RobotState(
            positions=self.robot.quantize_positions(self.data.qpos[self.qpos_index]),
            velocities=self.data.qvel[self.qvel_index].copy(),
            time=float(self.data.time),
            objects=self.object_positions(),
        )

    def show_target(self, position: np.ndarray) -> None:
        """Move the model's `target` marker, if it has one (drawing only, no physics)."""
        body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, "target")
        if body >= 0 and self.model.body_mocapid[body] >= 0:
            self.data.mocap_pos[self.model.body_mocapid[body]] = position


# A fixed-gain MuJoCo actuator uses gainprm[0] only; our servos keep their configured P gain in
# this otherwise unused slot, because gainprm[0] drops to 0 while a servo sits in its deadband.
# Randomization of kp writes both.
SERVO_KP_SLOT = 9
# Likewise the servo's deadband in encoder counts: in the model, a randomization term can set it
# per copy like any other actuator parameter.
SERVO_DEADBAND_SLOT = 8


def as_slice(index: np.ndarray) -> slice | np.ndarray:
    """A slice when `index` is a contiguous ascending run, else the index array itself."""
    if len(index) and np.array_equal(index, np.arange(index[0], index[0] + len(index))):
        return slice(int(index[0]), int(index[0]) + len(index))
    return index


def write_actuator_models(model: mujoco.MjModel, ids: np.ndarray, robot: RobotSpec) -> None:
    """Set MuJoCo actuator parameters from the spec's actuator models.

    Position servo: force = kp * (goal - q) - kv * qdot, clipped to the torque limit.
    DC motor: torque = (kt / R) * V - (kt * ke / R) * qdot, i.e. back-EMF as velocity feedback.
    """
    for k, (i, actuator) in enumerate(zip(ids, robot.actuators, strict=True)):
        model.actuator_gaintype[i] = mujoco.mjtGain.mjGAIN_FIXED
        model.actuator_biastype[i] = mujoco.mjtBias.mjBIAS_AFFINE
        model.actuator_gainprm[i, :] = 0.0
        model.actuator_biasprm[i, :] = 0.0
        if isinstance(actuator, PositionServo):
            model.actuator_gainprm[i, 0] = actuator.kp
            model.actuator_gainprm[i, SERVO_KP_SLOT] = actuator.kp
            model.actuator_gainprm[i, SERVO_DEADBAND_SLOT] = actuator.deadband_counts
            model.actuator_biasprm[i, 1:3] = (-actuator.kp, -actuator.kv)
            model.actuator_forcerange[i] = (-actuator.torque_limit, actuator.torque_limit)
            model.actuator_forcelimited[i] = 1
        elif isinstance(actuator, DCMotor):
            gain = actuator.torque_constant / actuator.resistance
            model.actuator_gainprm[i, 0] = gain
            model.actuator_biasprm[i, 2] = -gain * actuator.back_emf_constant
            model.actuator_forcelimited[i] = 0
        model.actuator_ctrlrange[i] = (robot.command_low[k], robot.command_high[k])
        model.actuator_ctrllimited[i] = 1
