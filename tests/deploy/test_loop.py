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


def test_episodes_are_counted_with_the_task_episode_length(tiny_policy, monkeypatch) -> None:
    import deploy.loop

    monkeypatch.setattr(deploy.loop, "sleep_until", lambda deadline: None)  # lockstep, fast
    with SimRobot(SO_ARM, realtime=False) as robot:
        # An untrained policy rarely reaches: episodes end at 100 cycles (2 s) each.
        report = run(OnnxPolicy(tiny_policy), robot, seconds=1e9, max_episodes=2,
                     home_after_miss=False)
    assert report.episodes == 2
    # At most 100 cycles (2 s) each, plus at most 1 s (50 cycles) of settling between them.
    assert report.cycles <= 2 * 100 + 50
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


def test_a_missed_episode_walks_the_arm_home_before_the_next(tiny_policy, monkeypatch) -> None:
    import deploy.loop

    monkeypatch.setattr(deploy.loop, "sleep_until", lambda deadline: None)  # lockstep, fast
    readings = []
    with SimRobot(SO_ARM, realtime=False) as robot:
        read = robot.read_state

        def recording_read():
            state = read()
            readings.append(state.positions.copy())
            return state

        robot.read_state = recording_read
        report = run(OnnxPolicy(tiny_policy), robot, seconds=1e9, max_episodes=3)
    misses = report.episodes - report.successes
    # Every miss but a last one (the run ends there) is followed by homing.
    assert report.homings >= 1 and report.homings in (misses - 1, misses)
    home = np.asarray(SO_ARM.default_pose)
    first_miss_end = 100  # an untrained policy uses the whole episode
    assert any(np.abs(p - home).max() < deploy.loop.HOME_TOLERANCE
               for p in readings[first_miss_end:])


def test_realtime_requests_are_granted_or_refused_quietly_and_undone() -> None:
    import os

    from deploy.realtime import request_realtime

    affinity, scheduler = os.sched_getaffinity(0), os.sched_getscheduler(0)
    granted, restore = request_realtime(priority=10, cpu=min(affinity))
    try:
        assert ("pinned to CPU" in granted or "pinning not allowed" in granted)
        assert ("SCHED_FIFO priority 10" in granted or "real-time priority not allowed" in granted)
    finally:
        restore()
    assert os.sched_getaffinity(0) == affinity and os.sched_getscheduler(0) == scheduler
    assert request_realtime(None, None)[0] == "normal scheduling"
    granted, restore = request_realtime(priority=None, cpu=10_000)  # no such CPU
    restore()
    assert "pinning not allowed" in granted and os.sched_getaffinity(0) == affinity
