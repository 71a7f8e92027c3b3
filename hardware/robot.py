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
    round_trip: float = 0.0
    """Seconds from asking for a reading to having it, as measured at connect (0: no link)."""
    _unsent: list[np.ndarray] | None = None
    _last_sent: np.ndarray | None = None

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

    def request_ahead(self, tick: float) -> None:
        """Called by the control loop between a cycle's write and the next `tick` (a
        `time.perf_counter()` time); returns by then. A backend whose link is slow asks for
        readings here, so the read at the tick finds one waiting."""
        return

    def command_window(self) -> list[np.ndarray]:
        """The commands the robot may be acting on now: the last it is known to have and every
        one sent since that may have reached it (a failed write may have, in part). The safety
        supervisor keeps each new command within its rate limit of all of them. Empty: none sent
        yet. A backend whose device acknowledges commands narrows this (SerialRobot)."""
        known = [] if self._last_sent is None else [self._last_sent]
        return known + (self._unsent or [])

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
        try:
            self._write_command(sent)
        except BaseException:
            self._unsent = [*(self._unsent or [])[-63:], sent]
            raise
        self._last_sent, self._unsent = sent, None
        return sent

    def __enter__(self) -> Robot:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
