"""The Robot interface: small on purpose. A backend connects, reads state, takes commands and
says what it is; `send_command` returns what was actually sent after clamping.

numpy only: runs on the robot's computer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from sim.spec import RobotSpec, RobotState


class RobotFault(ConnectionError):
    """The robot reports a fault that makes moving it unsafe (a servo's overload alarm, ...): the
    deploy loop stops at once and releases it, `reason` (naming the fault) its stop reason."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class Robot(ABC):
    """A robot with a read/write cycle, used as a context manager:

    >>> with SimRobot(SO_ARM) as robot:
    ...     state = robot.read_state()
    ...     sent = robot.send_command(state.positions)
    """

    spec: RobotSpec

    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def disconnect(self) -> None: ...

    @abstractmethod
    def read_state(self) -> RobotState: ...

    @abstractmethod
    def _write_command(self, command: np.ndarray) -> None:
        """Send an already clamped command to the robot."""

    def release(self) -> None:
        """Stop driving the actuators (servo torque off, motor amplifier disabled): the last step
        of a safe stop, after holding. A backend without such a mode keeps its last command."""
        return

    def send_command(self, command: np.ndarray) -> np.ndarray:
        """Clamp to the spec's command limits, send, and return what was sent."""
        command = np.asarray(command, dtype=np.float64)
        if command.shape != (self.spec.num_actuators,):
            raise ValueError(f"{self.spec.name}: command has shape {command.shape}, the robot "
                             f"takes ({self.spec.num_actuators},) in actuator order "
                             f"{list(self.spec.actuator_names)}")
        if not np.all(np.isfinite(command)):
            raise ValueError(f"{self.spec.name}: refusing a non-finite command {command.tolist()}")
        sent = self.spec.clamp_command(command)
        self._write_command(sent)
        return sent

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
