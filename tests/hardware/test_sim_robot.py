import time

import numpy as np
import pytest

from hardware.sim_robot import SimRobot
from sim.so_arm import SO_ARM


def test_send_command_clamps_and_returns_what_was_sent() -> None:
    with SimRobot(SO_ARM, realtime=False) as robot:
        sent = robot.send_command(np.full(6, 10.0))
        assert np.allclose(sent, SO_ARM.command_high)
        # Goals go to the servos in whole encoder counts.
        assert np.allclose(robot.sim.data.ctrl, SO_ARM.command_high, atol=2 * np.pi / 4096)


def test_bad_commands_are_refused() -> None:
    with SimRobot(SO_ARM, realtime=False) as robot:
        with pytest.raises(ValueError, match="shape"):
            robot.send_command(np.zeros(4))
        with pytest.raises(ValueError, match="non-finite"):
            robot.send_command(np.array([np.nan, 0, 0, 0, 0, 0]))


def test_realtime_physics_follows_the_wall_clock() -> None:
    with SimRobot(SO_ARM) as robot:
        robot.send_command(np.array([0.5, 0, 0, 0, 0, 0]))
        time.sleep(0.3)
        state = robot.read_state()
    assert state.time == pytest.approx(0.3, abs=0.05)
    assert state.positions[0] > 0.4


def test_use_before_connect_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not connected"):
        SimRobot(SO_ARM).read_state()
