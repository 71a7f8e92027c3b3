import time

import numpy as np
import pytest

from hardware.emulation import Hand, TableHand
from hardware.sim_robot import SimRobot
from sim.so_arm import SO_ARM
from sim.spec import RobotState


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


def test_a_pendulum_hand_holds_until_driven_and_puts_it_back_at_new_ready_starts() -> None:
    from hardware.backends import episode_starts
    from sim.catalog import make_task
    from sim.furuta import FURUTA

    balance = {"mode": "balance"}
    task = make_task("pendulum", FURUTA, balance)
    starts = episode_starts("pendulum", balance, FURUTA, seed=3)
    hand = Hand(starts().pose, catch_seconds=0.5, next_pose=lambda: starts().pose)
    poses = [hand.pose]
    volts = [np.zeros(1), np.ones(1)]

    def run(seconds: float, command: np.ndarray) -> RobotState:
        for _ in range(round(seconds / FURUTA.control_period)):
            robot.send_command(command)
            state = robot.read_state()
        return state

    with SimRobot(FURUTA, realtime=False, hand=hand) as robot:
        held = run(1.0, volts[0])  # the engage phase's 0 V does not let go
        assert held.time == pytest.approx(1.0)
        assert held.positions == pytest.approx(poses[0], abs=0.004)
        assert np.all(held.velocities == 0) and task.ready(held)
        for _ in range(2):
            run(0.1, volts[1])  # the episode's first voltage lets go
            fallen = run(0.45, volts[0])  # the policy stopped: it falls, not yet caught
            assert not hand.holding and abs(fallen.positions[1] - hand.pose[1]) > 0.05
            caught = run(0.1, volts[0])  # 0.5 s at 0 V: put back at a new start
            assert hand.holding and not np.allclose(hand.pose, poses[-1])
            assert caught.positions == pytest.approx(hand.pose, abs=0.004)
            assert np.all(caught.velocities == 0) and task.ready(caught)
            poses.append(hand.pose)
    # Seeded: the same starts again.
    again = episode_starts("pendulum", balance, FURUTA, seed=3)
    assert all(np.array_equal(again().pose, pose) for pose in poses)


def test_the_simulated_backend_gives_a_motor_robot_a_hand_and_servos_none() -> None:
    from hardware.backends import Episode, RobotURL, open_robot
    from sim.furuta import FURUTA

    pendulum = open_robot(RobotURL.parse("sim"), FURUTA, lambda: Episode(pose=np.array([0, 0.01])))
    arm = open_robot(RobotURL.parse("sim"), SO_ARM, lambda: Episode(pose=np.zeros(6)))
    assert pendulum.hand is not None and pendulum.hand.catch_seconds == 0.5 and arm.hand is None
    with pytest.raises(ValueError, match="so_arm's servos hold their own pose: a hand is for"):
        SimRobot(SO_ARM, hand=Hand(np.zeros(6)))

    assert arm.table is None  # nothing on the table to put back


def test_a_table_hand_puts_the_block_back_only_when_the_arm_has_held_still() -> None:
    """The simulated arm's table (deploy of push): a block off the task's area is put back at a
    new start once the deploy has waited, holding, longer than an arm settles; the arm itself
    is left where it is."""
    from hardware.backends import SIM_TIDY_SECONDS, RobotURL, episode_starts, open_robot
    from sim.push import PushTask

    task = PushTask(SO_ARM)
    starts = episode_starts("push", None, SO_ARM, seed=0)
    robot = open_robot(RobotURL.parse("sim"), SO_ARM, starts)
    assert robot.table.wait_seconds == SIM_TIDY_SECONDS > 1.0  # deploy.episodes.SETTLE_SECONDS
    robot.realtime = False
    with robot:
        off = np.array([[0.4, 0.0, 0.015]])
        robot.sim.place_objects(off)
        hold = robot.read_state().positions.copy()
        for _ in range(round(1.0 / SO_ARM.control_period)):  # a second's settle: left alone
            robot.send_command(hold)
            state = robot.read_state()
        assert np.allclose(state.objects, off, atol=1e-3) and robot.table.placed == 0
        for _ in range(round(SIM_TIDY_SECONDS / SO_ARM.control_period)):
            robot.send_command(hold)
            state = robot.read_state()
        assert robot.table.placed == 1 and task._on_table(state.objects[0])
        assert np.allclose(state.positions, hold, atol=0.02)
        # An arm whose command changes every cycle (an episode running) is never tidied after.
        robot.sim.place_objects(off)
        for k in range(round(2 * SIM_TIDY_SECONDS / SO_ARM.control_period)):
            robot.send_command(hold + 0.002 * (k % 2))
            robot.read_state()
        assert robot.table.placed == 1
    with pytest.raises(ValueError, match="a table hand puts objects back: give the scene's"):
        SimRobot(SO_ARM, table=TableHand(lambda: off, 1.0))
