"""What the simulated robots share: the device emulator of our own protocol
(hardware/emulator.py), the Feetech servo bus emulator (hardware/feetech/emulator.py) and
SimRobot (hardware/sim_robot.py). The physics a randomization config pins (`sim2real emulate
--physics`), the clean wire before faults begin, sleeping to the wire time of a baud rate, the
hand of the person at a motor-driven rig (`Hand`) and at a servo arm's table (`TableHand`, and
`BoardHand` calibrating its camera), and what lies on an emulated table (`TableScene`).
Runs on the host: applying physics
imports MuJoCo.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from hardware.faults import WireFaults
from sim.spec import RobotSpec

if TYPE_CHECKING:
    from sim.physics import RobotSimulation

DELAY_TERMS = ("action_delay", "action_latency")
"""Timing terms the emulators honour: whole control steps and seconds of command delay."""
CLEAN_WIRE = WireFaults()
"""The faults in force before `WireFaults.rates_from`: none."""


def pinned_physics(config: Any, spec: RobotSpec) -> tuple[list[tuple[str, Any, np.ndarray]], float]:
    """The model terms of a randomization config whose every value is pinned (low == high, or a
    normal with std 0), as (name, spec, value) to apply, and the command delay in seconds its
    `action_delay` (control steps) and `action_latency` (s) add up to."""
    from randomization.config import MODEL_TERM_NAMES

    terms, delay = [], 0.0
    for name, term in config.terms.items():
        low, high = term.distribution.support
        if low != high:
            raise ValueError(f"emulator physics {name}: the emulated robot is one robot, so each "
                             f"value must be pinned (low == high), got {low}..{high}")
        if name in MODEL_TERM_NAMES:
            terms.append((name, term, low))
        elif name == "action_delay":
            delay += round(low) * spec.control_period
        elif name == "action_latency":
            delay += low
        else:
            raise ValueError(f"emulator physics: {name!r} is not a physical parameter the "
                             f"emulator applies; it takes model terms and {', '.join(DELAY_TERMS)}")
    return terms, delay


def apply_pinned_physics(model: Any, config: Any, spec: RobotSpec,
                         seed: int = 0) -> tuple[dict[str, float], float]:
    """Write a pinned config's model terms into `model` (a MuJoCo MjModel); returns the values
    applied by term name and the command delay (s)."""
    from randomization.terms import make_term

    terms, delay = pinned_physics(config, spec)
    rng, applied = np.random.default_rng(seed), {}
    for name, term_spec, value in terms:
        term = make_term(model, name, term_spec)
        term.apply(model, term.sample(rng))
        applied[name] = value
    return applied, delay


def sleep_precisely(seconds: float) -> None:
    """Sleep precisely: the OS sleeps in coarse steps, the last half millisecond is spun."""
    end = time.perf_counter() + seconds
    if seconds > 0.001:
        time.sleep(seconds - 0.0005)
    while time.perf_counter() < end:
        pass


@dataclass
class Hand:
    """A person at a motor-driven rig, for the simulated ones (`sim2real emulate furuta --pose A
    P [--catch S]`, `deploy --robot sim` of the pendulum): holds the joints still at `pose`
    until a nonzero command takes effect (a deploy's engage phase sends 0 V, which does not let
    go: the episode's first voltage does). With `catch_seconds`, once the motor has been at 0 V
    that long (the host saw the pendulum fall and waits), the hand puts the joints back, at rest,
    and holds again: at the pose `next_pose` gives (a new episode's start), or at `pose` again.
    Times are the simulated device's, in seconds.

    Example, in a simulated device's body:
        >>> hand.step(sim, steps)               # instead of sim.step(steps)
        >>> sim.set_command(command); hand.drive(command, now)
        >>> hand.catch(sim, now)                # after stepping: put back after a fall
    """

    pose: np.ndarray
    catch_seconds: float | None = None
    next_pose: Callable[[], np.ndarray] | None = None
    """Where each catch puts the joints (None: `pose`); the pose caught at becomes `pose`."""
    holding: bool = True
    zero_since: float | None = 0.0
    """Since when the motor has been at 0 V; None while it is driven."""

    def __post_init__(self) -> None:
        if self.catch_seconds is not None and not self.catch_seconds > 0:
            raise ValueError(f"--catch must be > 0 seconds, got {self.catch_seconds}")
        self.pose = np.asarray(self.pose, dtype=np.float64)

    def drive(self, command: np.ndarray, when: float) -> bool:
        """The motor gets `command` at `when`; True when that lets go of the joints."""
        if np.count_nonzero(command) == 0:
            if self.zero_since is None:
                self.zero_since = when
            return False
        self.zero_since = None
        released, self.holding = self.holding, False
        return released

    def step(self, sim: RobotSimulation, steps: int) -> None:
        """`steps` physics steps of `sim`: while held, time passes and nothing moves."""
        if steps <= 0:
            return
        if self.holding:
            sim.data.time += steps * sim.timestep
        else:
            sim.step(steps)

    def catch(self, sim: RobotSimulation, now: float) -> bool:
        """Take hold again if the motor has been at 0 V for `catch_seconds` at `now`: the joints
        at rest at the next pose, 0 V, `sim`'s clock running on. True when it did."""
        if (self.holding or self.catch_seconds is None or self.zero_since is None
                or now - self.zero_since < self.catch_seconds):
            return False
        self.holding = True
        if self.next_pose is not None:
            self.pose = np.asarray(self.next_pose(), dtype=np.float64)
        clock = sim.data.time
        sim.reset(self.pose)
        sim.data.time = clock
        return True


@dataclass
class TableHand:
    """A person at a servo arm's table, for the simulated one (`deploy --robot sim` of push):
    once the arm's command has not changed for `wait_seconds` (the deploy waits at home because
    its task is not ready: the block lies off the area the task works in), puts the objects
    back, at rest, where `next_objects` says (a new episode's start), and waits again. A running
    episode's commands change every cycle; a settling arm holds still for at most
    deploy.episodes.SETTLE_SECONDS, so the wait is longer. Times are the simulation's, in s.

    Example, in a simulated robot's body:
        >>> table.drive(command, now)           # each command written
        >>> table.tidy(sim, now)                # each reading: put the block back if waiting
    """

    next_objects: Callable[[], np.ndarray]
    wait_seconds: float
    last_command: np.ndarray | None = None
    still_since: float = 0.0
    placed: int = 0
    """Times the objects were put back."""

    def __post_init__(self) -> None:
        if not self.wait_seconds > 0:
            raise ValueError(f"TableHand wait_seconds must be > 0, got {self.wait_seconds}")

    def drive(self, command: np.ndarray, when: float) -> None:
        if self.last_command is None or not np.array_equal(command, self.last_command):
            self.last_command, self.still_since = command.copy(), when

    def tidy(self, sim: RobotSimulation, now: float) -> bool:
        """Put the objects back if the command has held still `wait_seconds` at `now`; True
        when it did."""
        if self.last_command is None or now - self.still_since < self.wait_seconds:
            return False
        sim.place_objects(self.next_objects())
        self.still_since, self.placed = now, self.placed + 1
        return True


@dataclass
class TableScene:
    """What lies on an emulated arm's table (`sim2real emulate so_arm --scene NAME`), and the
    person who tends it: puts the push task's block back, holds a calibration board up."""

    scene: str
    """The MJCF under sim/assets/: the robot and what lies on its table."""
    objects: tuple[str, ...] = ()
    """Free bodies on it (their positions are the task's objects)."""
    initial_objects: np.ndarray | None = None
    person: TableHand | BoardHand | None = None


@dataclass
class BoardHand:
    """A person calibrating a camera, for the emulated one (`sim2real emulate so_arm --scene
    calibration`): holds the checkerboard (the scene's mocap body `body`) still at one of
    `poses` for `hold_seconds`, then at the next, and after the last puts it away for
    `away_seconds` (the marker sheet on the table then in full view, as calibrate-camera's
    second step asks), round and round, as a person moves a board before a camera for
    `sim2real calibrate-camera`. It never touches the arm. Times are the simulation's, in
    seconds.

    Example, in a simulated device's body (as `TableHand`):
        >>> board.drive(command, now)           # each command written: ignored
        >>> board.tidy(sim, now)                # each reading: the board where it is held now
    """

    poses: list[tuple[np.ndarray, np.ndarray]]
    """Positions (m) and orientations (quaternion w, x, y, z) in the world."""
    hold_seconds: float = 0.4
    """Six frames of a 15 frames/s camera: a board held still for a view."""
    away_seconds: float = 4.0
    """Put down after each round of poses: enough frames of the sheet alone for its pose."""
    body: str = "checkerboard"
    held: int = -1
    """The pose held now (its index; len(poses): put away), -1 before the first."""

    AWAY = (np.array([0.0, 0.0, 5.0]), np.array([1.0, 0.0, 0.0, 0.0]))
    """Where a board put away is: high above the table, out of the camera's view."""

    def __post_init__(self) -> None:
        if not self.poses or not self.hold_seconds > 0 or self.away_seconds < 0:
            raise ValueError("BoardHand needs poses, hold_seconds > 0 and away_seconds >= 0")

    def drive(self, command: np.ndarray, when: float) -> None:
        """The arm's commands do not move the board."""

    def tidy(self, sim: RobotSimulation, now: float) -> bool:
        """Move the board to the pose of `now`; True when it moved."""
        shown = len(self.poses) * self.hold_seconds
        into_round = now % (shown + self.away_seconds)
        index = int(into_round // self.hold_seconds) if into_round < shown else len(self.poses)
        if index == self.held:
            return False
        import mujoco

        mocap = sim.model.body_mocapid[mujoco.mj_name2id(sim.model, mujoco.mjtObj.mjOBJ_BODY,
                                                         self.body)]
        pose = self.poses[index] if index < len(self.poses) else self.AWAY
        sim.data.mocap_pos[mocap], sim.data.mocap_quat[mocap] = pose
        self.held = index
        return True


def board_poses(model: Any, camera: str, board_size: tuple[float, float], count: int,
                seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` poses of a board `board_size` (m, width and height) held in `camera`'s view, as a
    person holds a calibration board: 0.35-0.5 m from the lens, off centre within the view,
    turned towards the camera and tilted up to 35 degrees about its two axes (the tilts are
    what lets a calibration tell the focal length from the distance). World positions and
    quaternions (w, x, y, z)."""
    import mujoco

    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    mujoco.mj_camlight(model, data)
    index = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    origin, turn = data.cam_xpos[index], data.cam_xmat[index].reshape(3, 3)
    half_view = np.tan(np.radians(model.cam_fovy[index]) / 2)
    rng = np.random.default_rng(seed)
    poses = []
    for _ in range(count):
        distance = rng.uniform(0.35, 0.5)
        room = max(distance * half_view - max(board_size) / 2, 0.0)
        # The camera looks along its -z, y up; the board's textured face (+z) towards it.
        where = np.array([rng.uniform(-room, room), rng.uniform(-room, room) * 0.5, -distance])
        tilt_x, tilt_y = rng.uniform(-0.6, 0.6, size=2)
        tilted = _rotation_x(tilt_x) @ _rotation_y(tilt_y)
        quaternion = np.zeros(4)
        mujoco.mju_mat2Quat(quaternion, (turn @ tilted).ravel())
        poses.append((origin + turn @ where, quaternion))
    return poses


def _rotation_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rotation_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
