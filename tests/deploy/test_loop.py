import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest

from deploy.contract import Contract, ContractError
from deploy.loop import run
from deploy.onnx_policy import OnnxPolicy
from deploy.schedule import sleep_until
from deploy.telemetry import read_log
from hardware.robot import Robot
from hardware.sim_robot import SimRobot
from sim.furuta import FURUTA
from sim.pendulum import PendulumTask
from sim.so_arm import SO_ARM
from sim.spec import RobotState


def sleep_lateness(period: float, samples: int = 25) -> np.ndarray:
    """How late (s) sleep_until wakes in this process, on this machine's load, right now."""
    late = []
    for _ in range(samples):
        deadline = time.perf_counter() + period
        sleep_until(deadline)
        late.append(time.perf_counter() - deadline)
    return np.array(late)


@pytest.mark.slow  # an end-to-end run: the fast subset keeps under 60 s
def test_loop_holds_its_rate_and_reports(tiny_policy, tmp_path) -> None:
    policy = OnnxPolicy(tiny_policy)
    period = SO_ARM.control_period
    log = tmp_path / "rate.mcap"
    before = sleep_lateness(period)
    with SimRobot(SO_ARM) as robot:
        report = run(policy, robot, seconds=1.0, log=log)
    # Measured around the run, not during it: the load the loop saw, give or take.
    granularity = max(before.max(), sleep_lateness(period).max())
    assert report.target_rate_hz == pytest.approx(1 / period)
    logged = read_log(log)
    starts, missed = logged.fields["time"][:, 0], logged.fields["missed"][:, 0] == 1
    late = logged.fields["lateness_us"][:, 0] * 1e-6
    # Every cycle started at a deadline of the loop's own clock, start + k * period, plus how late
    # it woke: the clock never drifts.
    ticks = (starts - late) / period
    assert np.allclose(ticks, np.round(ticks), atol=1e-6) and round(ticks[0]) == 0
    gaps = np.diff(np.round(ticks).astype(int))
    # One tick per cycle; a tick skipped only after a missed deadline, each miss counted.
    assert np.all(gaps >= 1) and np.all((gaps == 1) | missed[:-1])
    assert report.deadline_misses == missed.sum() and report.cycles == len(starts)
    # The run took its second of ticks: no cycle at or after 1 s, none of the ticks before missing.
    assert starts[-1] < 1.0 and (round(ticks[-1]) + 1) * period <= report.seconds
    assert report.loop_rate_hz == pytest.approx(report.cycles / report.seconds)
    # The period error, on intervals whose both cycles woke from a sleep (not from an overrun),
    # is that of sleep_until here and now.
    woke = ~missed[:-1] & np.r_[True, ~missed[:-2]]
    error = np.abs(np.diff(starts) - period)[woke & (gaps == 1)]
    assert np.median(error) <= granularity, (np.median(error), granularity)
    assert 0 < report.compute_p50_us < 5000


def test_episodes_are_counted_with_the_task_episode_length(tiny_policy, monkeypatch,
                                                           tmp_path) -> None:
    import deploy.loop

    monkeypatch.setattr(deploy.loop, "sleep_until", lambda deadline: None)  # lockstep, fast
    log = tmp_path / "episodes.mcap"
    with SimRobot(SO_ARM, realtime=False) as robot:
        # An untrained policy rarely reaches: episodes end at 100 cycles (2 s) each.
        report = run(OnnxPolicy(tiny_policy), robot, seconds=1e9, max_episodes=2,
                     home_after_miss=False, log=log)
    assert report.episodes == 2
    # At most 100 cycles (2 s) each, plus at most 1 s (50 cycles) of settling between them.
    assert report.cycles <= 2 * 100 + 50
    ends = [event for event in read_log(log).events if event["event"] == "episode_end"]
    assert len(ends) == 2 and all(1 <= end["steps"] <= 100 for end in ends)
    successes = sum(end["success"] for end in ends)
    assert report.successes == successes and report.success_rate == successes / 2


def test_the_success_rate_is_that_of_the_episodes_that_succeeded(tiny_policy,
                                                                 monkeypatch) -> None:
    import deploy.loop

    monkeypatch.setattr(deploy.loop, "sleep_until", lambda deadline: None)  # lockstep, fast
    build_task = deploy.loop.task_from_contract
    winners = {1, 3, 4}  # of 4 episodes: these reach after 10 steps, the others never

    def scripted_task(*args):
        task = build_task(*args)
        evaluate, sample_goal = task.evaluate, task.sample_goal
        episode, steps = [0], [0]

        def new_goal(rng, start=None):
            episode[0], steps[0] = episode[0] + 1, 0
            return sample_goal(rng, start)

        def scripted(state, goal, history):
            steps[0] += 1
            reached = episode[0] in winners and steps[0] > 10
            return dataclasses.replace(evaluate(state, goal, history), success=reached,
                                       terminated=reached)

        task.sample_goal, task.evaluate = new_goal, scripted
        return task

    monkeypatch.setattr(deploy.loop, "task_from_contract", scripted_task)
    with SimRobot(SO_ARM, realtime=False) as robot:
        report = run(OnnxPolicy(tiny_policy), robot, seconds=1e9, max_episodes=4)
    assert (report.episodes, report.successes, report.success_rate) == (4, 3, 0.75)
    assert report.homings == 1  # after the one miss, episode 2


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


class PendulumRig(Robot):
    """A Furuta pendulum that reads as scripted: a person lets it fall and holds it up again."""

    spec = FURUTA

    def __init__(self, alphas: list[float]) -> None:
        self.alphas, self.reads, self.sent = alphas, 0, []

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def read_state(self) -> RobotState:
        alpha = self.alphas[min(self.reads, len(self.alphas) - 1)]
        self.reads += 1
        return RobotState(np.array([0.0, alpha]), np.zeros(2), time=self.reads * 0.004)

    def _write_command(self, command: np.ndarray) -> None:
        self.sent.append(float(command[0]))


class HalfVoltPolicy:
    """A balance policy that always asks for action 0.5 (3 V)."""

    path = Path("half_volt.onnx")
    task = PendulumTask(FURUTA)
    contract = Contract(robot=FURUTA.summary(), task=task.contract(),
                        observation_size=6, action_size=1, env_id="sim2real/FurutaBalance-v0",
                        algorithm="test", steps=0)

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        return np.array([0.5], dtype=np.float32)


def test_a_pendulum_deploy_engages_before_each_episode(monkeypatch, tmp_path) -> None:
    import deploy.loop

    monkeypatch.setattr(deploy.loop, "sleep_until", lambda deadline: None)  # lockstep, fast
    fallen, up = 1.0, 0.0
    # Fallen at the loop's start and for three cycles; held up, the episode runs until it falls
    # (two cycles fallen: the episode's end and a wait); held up for one more episode.
    rig = PendulumRig([fallen] * 4 + [up] * 3 + [fallen] * 2 + [up] + [fallen])
    said, log = [], tmp_path / "engage.mcap"
    report = run(HalfVoltPolicy(), rig, seconds=1e9, max_episodes=2, log=log, say=said.append)
    assert (report.episodes, report.engage_waits) == (2, 2) and report.engage_seconds > 0
    # 0 V while waiting; the policy's 3 V from the cycle the pendulum is held up.
    assert rig.sent == [0.0] * 3 + [3.0] * 3 + [0.0] * 2 + [3.0]
    assert said == ["waiting to start an episode: hold the pendulum upright within 0.2 rad and "
                    "still, the arm within 1 rad of its centre (the motor gets 0 V until then)"]
    logged = read_log(log)
    phases = [logged.header["phases"][int(p)] for p in logged.fields["phase"][:, 0]]
    assert phases == ["engage"] * 3 + ["policy"] * 3 + ["engage"] * 2 + ["policy"]
    events = [event["event"] for event in logged.events]
    assert events == ["engage_wait", "engaged", "episode_end", "engage_wait", "engaged",
                      "episode_end", "report"]
    assert logged.events[0]["waits_for"] == HalfVoltPolicy.task.ready_hint()
