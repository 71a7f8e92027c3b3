"""The loop's stop handling (deploy/safe_stop.py) on hand-fed times: the watchdog's fresh-state
tracking, the safe stop's hold, the release that survives a dead link."""

from __future__ import annotations

import types

import numpy as np
import pytest

import deploy.safe_stop
from deploy.safe_stop import Watchdog, hold_still, release
from hardware.robot import Robot
from sim.so_arm import SO_ARM
from sim.spec import RobotState


def reading(device_time: float) -> RobotState:
    return RobotState(np.zeros(6), np.zeros(6), device_time)


def test_the_watchdog_trips_only_after_its_limit_without_a_newer_device_time() -> None:
    first = reading(0.0)
    watchdog = Watchdog(0.25, first, now=10.0)
    fresh = reading(0.5)
    assert watchdog.see(fresh, now=10.125) is fresh and watchdog.last_fresh == 10.125
    # A failed read and a repeated reading (same device time) are not fresh.
    assert watchdog.see(None, now=10.25) is fresh
    assert watchdog.see(reading(0.5), now=10.375) is fresh
    assert watchdog.waited(10.375) is None  # 0.25 s: at the limit, not over it
    assert watchdog.waited(10.5) == 0.375
    # Stop at the last cycle before the limit: when the next read would come after it.
    assert watchdog.waited(10.3, next_read=10.375) is None
    assert watchdog.waited(10.3, next_read=10.38) == pytest.approx(0.175)
    assert watchdog.reason(0.375) == ("watchdog: no fresh state from the robot for 375 ms, "
                                      "and none can come within its limit of 250 ms")
    # An older device time (a reordered frame) is not fresh either.
    assert watchdog.see(reading(0.25), now=10.5) is fresh and watchdog.last_fresh == 10.125
    with pytest.raises(ValueError, match="watchdog limit 0.0 s must be positive"):
        Watchdog(0.0, first, now=0.0)


class Arm(Robot):
    """Records (time, command) on a fake clock; its link dies after `works_for` sends."""

    def __init__(self, clock: types.SimpleNamespace, works_for: int = 1000) -> None:
        self.spec, self.clock, self.works_for = SO_ARM, clock, works_for
        self.sent: list[tuple[float, list[float]]] = []
        self.released = 0

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def read_state(self) -> RobotState:
        return reading(0.0)

    def _write_command(self, command: np.ndarray) -> None:
        if len(self.sent) >= self.works_for:
            raise TimeoutError("the link is gone")
        self.sent.append((self.clock.now, command.tolist()))

    def release(self) -> None:
        self.released += 1
        if self.works_for == 0:
            raise OSError("the port is gone")


@pytest.fixture
def clock(monkeypatch) -> types.SimpleNamespace:
    """time for deploy.safe_stop: stands still except when it sleeps."""
    clock = types.SimpleNamespace(now=0.0)

    def sleep(seconds: float) -> None:
        clock.now += seconds

    monkeypatch.setattr(deploy.safe_stop, "time",
                        types.SimpleNamespace(perf_counter=lambda: clock.now, sleep=sleep))
    return clock


def test_the_safe_stop_holds_every_period_until_its_time_is_up(clock) -> None:
    arm = Arm(clock)
    hold = np.full(6, 0.2)
    # Sends at 0, 0.25, 0.5, 0.75: the first one at or after 0.6 s ends the hold.
    assert hold_still(arm, hold, hold_seconds=0.6, period=0.25) == 4
    assert [when for when, _ in arm.sent] == [0.0, 0.25, 0.5, 0.75]
    assert all(command == hold.tolist() for _, command in arm.sent)
    # No hold time (the watchdog's stop): one command.
    assert hold_still(Arm(clock), hold, hold_seconds=0.0, period=0.25) == 1


def test_holding_through_a_dead_link_is_attempted_once_and_release_never_raises(clock) -> None:
    arm = Arm(clock, works_for=2)
    assert hold_still(arm, np.zeros(6), hold_seconds=5.0, period=0.25) == 2
    assert clock.now == 0.5  # gave up at the failed send, did not hold on for 5 s
    dead = Arm(clock, works_for=0)
    assert hold_still(dead, np.zeros(6), hold_seconds=5.0, period=0.25) == 0
    release(dead)  # the port is gone: the device's own watchdog stops it
    assert dead.released == 1
