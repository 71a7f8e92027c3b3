"""How a run ends before its time: the watchdog that notices a robot that stopped answering, and
the safe stop (hold still, then release) that every early end goes through. numpy only.
"""

from __future__ import annotations

import time

import numpy as np

from hardware.robot import Robot
from sim.spec import RobotState


class Watchdog:
    """The freshest state the robot gave and when it came. Fresh means a newer device time: a
    link that repeats its last reading is as dead as one that times out.

    The loop asks it once a cycle, so it stops at the last cycle before the limit would pass
    (`next_read`: when the next chance of a fresh state comes, the next cycle): the safe stop
    comes within the limit, not up to a cycle after it.

    Example:
        >>> watchdog = Watchdog(0.1, first_state, now=0.0)
        >>> state = watchdog.see(robot_state_or_none, now=0.02)
        >>> if (waited := watchdog.waited(now=0.02, next_read=0.04)) is not None: ...  # stop
    """

    def __init__(self, limit: float, first: RobotState, now: float) -> None:
        if limit <= 0:
            raise ValueError(f"watchdog limit {limit} s must be positive")
        self.limit = limit
        self.state = first
        # Kept apart from `state`: a backend may reuse the state object it returns.
        self._device_time = first.time
        self.last_fresh = now

    def see(self, fresh: RobotState | None, now: float) -> RobotState:
        """A read at `now` (None: it failed); returns the freshest state so far."""
        if fresh is not None and fresh.time > self._device_time:
            self.state, self._device_time, self.last_fresh = fresh, fresh.time, now
        return self.state

    def waited(self, now: float, next_read: float | None = None) -> float | None:
        """Seconds since the last fresh state if the robot must stop now, else None: now is past
        the limit, or the next read (at `next_read`) would be."""
        waited = now - self.last_fresh
        last_chance = now if next_read is None else max(now, next_read)
        return waited if last_chance - self.last_fresh > self.limit else None

    def reason(self, waited: float) -> str:
        return (f"watchdog: no fresh state from the robot for {waited * 1e3:.0f} ms, and none "
                f"can come within its limit of {self.limit * 1e3:.0f} ms")


def hold_still(robot: Robot, hold: np.ndarray, hold_seconds: float, period: float) -> int:
    """Send `hold` every `period` until `hold_seconds` have passed (at least once); a send that
    fails ends it, since holding through a dead link is attempted once. Returns the sends made."""
    end = time.perf_counter() + hold_seconds
    sends = 0
    while True:
        try:
            robot.send_command(hold)
        except (TimeoutError, OSError):
            return sends
        sends += 1
        if time.perf_counter() >= end:
            return sends
        time.sleep(period)


def release(robot: Robot) -> None:
    """Let the robot go, however the run ended."""
    try:
        robot.release()
    except (TimeoutError, OSError):
        pass  # a dead link: the device's own watchdog stops it
