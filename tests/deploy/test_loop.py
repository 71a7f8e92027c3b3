import dataclasses

import numpy as np
import pytest

from deploy.contract import ContractError
from deploy.loop import run
from deploy.onnx_policy import OnnxPolicy
from hardware.sim_robot import SimRobot
from sim.so_arm import SO_ARM


def test_loop_holds_its_rate_and_reports(tiny_policy) -> None:
    policy = OnnxPolicy(tiny_policy)
    with SimRobot(SO_ARM) as robot:
        report = run(policy, robot, seconds=1.0)
    assert report.target_rate_hz == pytest.approx(50.0)
    assert 45.0 <= report.loop_rate_hz <= 51.0
    assert report.cycles >= 45
    assert report.deadline_misses <= 2
    assert 0 < report.compute_p50_us < 5000


def test_episodes_are_counted_with_the_task_episode_length(tiny_policy) -> None:
    with SimRobot(SO_ARM, realtime=False) as robot:
        # An untrained policy rarely reaches: episodes end at 100 cycles (2 s) each.
        report = run(OnnxPolicy(tiny_policy), robot, seconds=10.0, max_episodes=2)
    assert report.episodes == 2
    assert all(s <= 2.5 for s in report.episode_seconds)
    assert 0.0 <= report.success_rate <= 1.0


def test_mismatched_robot_never_moves(tiny_policy) -> None:
    other = dataclasses.replace(SO_ARM, joint_names=SO_ARM.joint_names[::-1])
    robot = SimRobot(other)
    robot.connect()
    before = robot.read_state().positions.copy()
    with pytest.raises(ContractError, match="joint order"):
        run(OnnxPolicy(tiny_policy), robot, seconds=1.0)
    assert robot.sim.data.ctrl.tolist() == list(SO_ARM.default_pose)
    assert np.allclose(robot.read_state().positions, before, atol=1e-3)
