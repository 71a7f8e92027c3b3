"""The robot backend a `--robot` URL names, chosen by its scheme from a plain table.

`sim`, `sim:ROBOT` (the simulated robot, MuJoCo), `serial:URL` (our own wire protocol over a
port, a pty or socket://HOST:PORT), `feetech:URL` (a Feetech STS servo bus, the SO-101's) and
`auto[:URL]` (the serial device if one answers, else the
simulated robot, with a warning). Each entry imports only what it needs: a serial deploy on the
robot's computer never imports MuJoCo.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hardware.robot import Robot
from sim.spec import RobotSpec

AUTO_PORTS = ("/dev/ttyUSB0", "/dev/ttyACM0")
SIM_TIDY_SECONDS = 1.5
"""The simulated arm's table hand (`TableHand`) puts the objects at a new episode's start after
the arm's command has held still this long: longer than an arm settles after an episode
(deploy.episodes.SETTLE_SECONDS, 1 s), so only a deploy waiting for them sees them put back."""
SIM_CATCH_SECONDS = 0.5
"""The simulated motor robot's hand (`Hand`) puts the joints at a new episode's start after the
motor has been at 0 V this long. The deploy sends 0 V between episodes only (engage), so this is
the pause before each; inside an episode a healthy policy's voltage is never exactly 0 for long
(the supervisor zeroes it only while a joint is at a soft limit or over speed, for a few cycles).
Short next to an episode (5 s), so 30 pendulum episodes take little more than 30 episodes' time,
and about what a person takes to put a fallen pendulum back."""


@dataclass(frozen=True)
class RobotURL:
    """A parsed `--robot` value: its scheme and what follows the colon (a robot or a port)."""

    scheme: str
    where: str
    calibration: Path | None = None
    """The servo bus's calibration file (feetech:; default: the robot's in ~/.config/sim2real)."""

    @classmethod
    def parse(cls, text: str) -> RobotURL:
        scheme, _, where = text.partition(":")
        if scheme not in BACKENDS:
            raise ValueError(f"unknown robot {text!r}; use sim, sim:ROBOT (e.g. sim:so_arm), "
                             "serial:URL (serial:///dev/ttyUSB0, serial:socket://127.0.0.1:5000), "
                             "feetech:URL (a Feetech servo bus: feetech:/dev/ttyUSB0) or auto[:URL]")
        return cls(scheme, where[2:] if where.startswith("//") else where)  # serial:///dev/x

    @property
    def robot_name(self) -> str | None:
        """The robot a `sim:ROBOT` URL names; None: the one the policy's contract names."""
        return (self.where or None) if self.scheme == "sim" else None


@dataclass(frozen=True)
class Episode:
    """Where a simulated robot starts: the task's first pose and its props (a block to push)."""

    pose: np.ndarray | None = None
    scene: str | None = None
    objects: tuple[str, ...] = ()
    initial_objects: np.ndarray | None = None


def episode_starts(task_name: str, task_config: dict | None, spec: RobotSpec,
                   seed: int) -> Callable[[], Episode]:
    """The starts of the task's episodes, one a call, drawn as its simulated episodes draw them
    (`sim.task.sample_episode`: a pendulum to balance starts upright) from one generator seeded
    by `seed`, so a seeded deploy's starts repeat. The generator is the seed's second stream:
    the deploy loop draws its goals from `default_rng(seed)`, and the same draws would make the
    first goal of reach the start pose's own tip. The task is built at the first call: only the
    simulated robot calls it."""
    rng = np.random.default_rng([seed, 1])
    task = None

    def start() -> Episode:
        nonlocal task
        if task is None:
            from sim.catalog import task_from_contract

            task = task_from_contract(task_name, spec, task_config)
        from sim.task import sample_episode

        pose, _, objects = sample_episode(task, rng)
        return Episode(pose, task.scene, task.objects, objects)

    return start


def open_robot(url: RobotURL, spec: RobotSpec, start: Callable[[], Episode]) -> Robot:
    """The backend `url` names for `spec`; a serial device is already connected (the handshake
    checks it is the robot `spec` describes), the simulated robot not yet. `start` gives the
    simulated robot's first episode, called only if it is the one opened, and a motor-driven
    one's later starts too (the hand's, `SIM_CATCH_SECONDS`)."""
    return BACKENDS[url.scheme](url, spec, start)


def _simulated(url: RobotURL, spec: RobotSpec, start: Callable[[], Episode]) -> Robot:
    from hardware.emulation import Hand, TableHand
    from hardware.sim_robot import SimRobot

    episode = start()
    if spec.actuator_kind == "position" or episode.pose is None:
        # Objects on the table (push): a person puts them back when the deploy waits for them.
        table = (TableHand(lambda: start().initial_objects, SIM_TIDY_SECONDS)
                 if episode.objects else None)
        return SimRobot(spec, initial_pose=episode.pose, scene=episode.scene,
                        objects=episode.objects, initial_objects=episode.initial_objects,
                        table=table)
    # A motor cannot hold a pose: between episodes the deploy waits at 0 V for its task to be
    # ready (a pendulum held up), as a person at the rig gets it ready; here a hand does.
    hand = Hand(episode.pose, SIM_CATCH_SECONDS, next_pose=lambda: start().pose)
    return SimRobot(spec, scene=episode.scene, objects=episode.objects,
                    initial_objects=episode.initial_objects, hand=hand)


def _serial(url: RobotURL, spec: RobotSpec, start: Callable[[], Episode]) -> Robot:
    from hardware.serial_robot import SerialRobot

    if not url.where:
        raise ValueError("--robot serial: needs a port, e.g. serial:///dev/ttyUSB0")
    robot = SerialRobot(url.where, spec)
    robot.connect()  # the handshake: the device must be the robot the contract names
    return robot


def _feetech(url: RobotURL, spec: RobotSpec, start: Callable[[], Episode]) -> Robot:
    from hardware.feetech.robot import FeetechRobot

    if not url.where:
        raise ValueError("--robot feetech: needs a port, e.g. feetech:/dev/ttyUSB0")
    robot = FeetechRobot(url.where, spec, url.calibration)
    robot.connect()  # the calibration and every servo checked, torque on holding still
    return robot


def _serial_or_simulated(url: RobotURL, spec: RobotSpec, start: Callable[[], Episode]) -> Robot:
    from hardware.serial_robot import DeviceError

    ports = [url.where] if url.where else [p for p in AUTO_PORTS if Path(p).exists()]
    problems = []
    for port in ports:
        try:
            return _serial(RobotURL("serial", port), spec, start)
        except DeviceError as error:
            problems.append(str(error))
    print(f"sim2real deploy: WARNING: no sim2real device answered "
          f"({'; '.join(problems) or 'no serial port found: ' + ', '.join(AUTO_PORTS)}); "
          f"falling back to the SIMULATED {spec.name}", file=sys.stderr)
    return _simulated(url, spec, start)


BACKENDS: dict[str, Callable[[RobotURL, RobotSpec, Callable[[], Episode]], Robot]] = {
    "sim": _simulated,
    "serial": _serial,
    "feetech": _feetech,
    "auto": _serial_or_simulated,
}


def bus_port(text: str) -> str:
    """The port of a `feetech:PORT` servo bus argument (calibrate, setup-motors)."""
    url = RobotURL.parse(text) if text.startswith("feetech:") else None
    if url is None or not url.where:
        raise ValueError(f"{text!r}: give the servo bus as feetech:PORT, e.g. feetech:/dev/ttyUSB0")
    return url.where
