"""A supervisor that holds (issue 30): faults it cannot hold for long end the run in a safe stop
(a policy that gives only NaN, one that bang-bangs the servos at the rate limit); the soft limits
leave a saturating policy's joints room to stop inside the hard limits; and a policy that does
nothing succeeds nowhere."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from bad_policies import bad_policy

import deploy.loop
from deploy.contract import Contract
from deploy.loop import DeployReport, run
from deploy.on_robot import after_report
from deploy.onnx_policy import OnnxPolicy
from deploy.supervisor import SafetyConfig, Supervisor
from deploy.telemetry import read_log
from hardware.sim_robot import SimRobot
from sim.reach import ReachConfig, ReachTask
from sim.so_arm import SO_ARM
from sim.spec import RobotState

PERIOD = SO_ARM.control_period
STILL = RobotState(np.zeros(6), np.zeros(6))


class FakeClock:
    """time.perf_counter and time.sleep for the process, and the loop's sleep_until: time moves
    only when the loop waits, so every cycle of a lockstep SimRobot lasts exactly one period and
    the supervisor's windows see the times a real-time run sees, on any machine."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.now = 1000.0
        monkeypatch.setattr(time, "perf_counter", lambda: self.now)
        monkeypatch.setattr(time, "sleep", self.sleep)
        monkeypatch.setattr(deploy.loop, "sleep_until", self.sleep_until)

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def sleep_until(self, deadline: float) -> None:
        self.now = max(self.now, deadline)


class Flipper:
    """A reach policy whose action flips between +1e3 and -1e3 every call, with the contract of
    a policy that steps from the measured position (the demo's): its goals swing 2 x max_step
    (0.3 rad) each cycle, more than the servos' rate limit (0.218 rad)."""

    path = Path("flipper.onnx")
    task = ReachTask(SO_ARM, ReachConfig(command_history=0, action_base="measured"))
    contract = Contract(robot=SO_ARM.summary(), task=task.contract(),
                        observation_size=task.observation_size, action_size=task.action_size,
                        env_id="sim2real/ArmReach-v0", algorithm="test", steps=0)

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.full(self.task.action_size, 1e3 if self.calls % 2 else -1e3, np.float32)


# -- the supervisor alone ----------------------------------------------------------------------

def test_nan_guard_held_for_longer_than_nan_stop_seconds_escalates() -> None:
    supervisor = Supervisor(SO_ARM, SafetyConfig(soft_start_seconds=0), STILL)
    nan = np.full(6, np.nan)
    for k in range(25):  # 0.48 s of NaN, then one finite command: the streak starts again
        supervisor.filter(nan, STILL, 1.0 + k * PERIOD)
    supervisor.filter(np.zeros(6), STILL, 1.5)
    for k in range(26):  # 0.50 s: not more than the limit
        supervisor.filter(nan, STILL, 1.52 + k * PERIOD)
    assert supervisor.escalation is None
    held, _ = supervisor.filter(nan, STILL, 1.52 + 26 * PERIOD)
    assert np.array_equal(held, np.zeros(6))  # the cycle that escalates is still held
    assert supervisor.escalation.startswith("supervisor nan_guard: ")
    assert "0.52 s (nan_stop_seconds 0.5)" in supervisor.escalation
    never = Supervisor(SO_ARM, SafetyConfig(nan_stop_seconds=0), STILL)
    for k in range(500):
        never.filter(nan, STILL, k * PERIOD)
    assert never.escalation is None and never.counts["nan_guard"] == 500


def test_bang_bang_at_the_rate_limit_escalates_and_steps_below_it_never_do() -> None:
    config = SafetyConfig(soft_start_seconds=0)
    supervisor = Supervisor(SO_ARM, config, STILL)
    limit = supervisor.max_change[0]
    sent = []
    for k in range(40):
        command, _ = supervisor.filter(np.full(6, 0.3 if k % 2 else -0.3), STILL, 1.0 + k * PERIOD)
        sent.append(command[0])
        if supervisor.escalation:
            break
    # 13 reversals at the rate limit (oscillation_share 0.5 of 25 periods) in 0.5 s: the 14th
    # cut (the first only sets a direction) escalates.
    assert k == 13 and supervisor.escalation.startswith("supervisor oscillation: ")
    assert np.allclose(np.abs(np.diff(sent)), limit)
    # Reversals just below the rate limit (a healthy policy's steps reach 0.82 of it) and a
    # saturating policy pushing one way at the rate limit are no oscillation.
    below = Supervisor(SO_ARM, config, STILL)
    one_way = Supervisor(SO_ARM, config, STILL)
    for k in range(500):
        below.filter(np.full(6, 0.49 * limit if k % 2 else -0.49 * limit), STILL,
                     1.0 + k * PERIOD)
        one_way.filter(np.full(6, 3.0), STILL, 1.0 + k * PERIOD)
    assert below.escalation is None and below.counts["rate_limit"] == 0
    assert one_way.escalation is None and one_way.counts["rate_limit"] > 5


def test_a_motor_is_never_stopped_for_its_bang_bang() -> None:
    from sim.furuta import FURUTA

    rest = RobotState(np.array([0.0, np.pi]), np.zeros(2))
    supervisor = Supervisor(FURUTA, SafetyConfig(max_command_change=6.0), rest)
    for k in range(500):
        supervisor.filter(np.array([6.0 if k % 2 else -6.0]), rest, k * FURUTA.control_period)
    assert supervisor.counts["rate_limit"] == 250 and supervisor.escalation is None


def test_the_soft_limits_come_in_with_the_speed_towards_them() -> None:
    supervisor = Supervisor(SO_ARM, SafetyConfig(), STILL)
    high = np.array(SO_ARM.position_high)
    at_rest = supervisor.soft_limits(np.zeros(6))[1]
    assert np.allclose(at_rest, high - 0.05)
    # At 1.5 rad/s the room to stop (0.03 + 0.014 rad) is less than the rest margin.
    assert np.allclose(supervisor.soft_limits(np.full(6, 1.5))[1], at_rest)
    # At the velocity limit: 5.45 * 0.02 + 5.45^2 / 160 = 0.295 rad.
    low, fast = supervisor.soft_limits(np.full(6, 5.45))
    assert np.allclose(high - fast, 0.295, atol=1e-3) and np.allclose(low, supervisor.soft_low)
    # A slower link: the room grows with the delay (5.45 * 0.1 + 0.186), up to a quarter of
    # the range (the gripper's 0.48 rad).
    slow_link = Supervisor(SO_ARM, SafetyConfig(), STILL, delay=0.1)
    room = high - slow_link.soft_limits(np.full(6, 5.45))[1]
    assert np.allclose(room, [0.731] * 5 + [0.48], atol=1e-3)
    # A NaN speed counts as the velocity limit; 0 turns the room off.
    assert np.allclose(supervisor.soft_limits(np.full(6, np.nan))[1], fast)
    fixed = Supervisor(SO_ARM, SafetyConfig(braking_deceleration=0), STILL)
    assert np.allclose(fixed.soft_limits(np.full(6, 5.45))[1], at_rest)


def test_a_speed_reading_that_dips_does_not_let_the_soft_limit_leap_out() -> None:
    """A joint brakes at most at braking_deceleration: a reading of 1 rad/s one period after
    one of 5 rad/s is taken as 5 - 80 * 0.02 = 3.4 rad/s."""
    config = SafetyConfig(soft_start_seconds=0, max_command_change=0)
    supervisor = Supervisor(SO_ARM, config, STILL)
    fast = RobotState(np.zeros(6), np.full(6, 5.0))
    dipped = RobotState(np.zeros(6), np.full(6, 1.0))
    supervisor.filter(np.full(6, 0.1), fast, 1.0)
    # Inside the limits at rest (1.87 for the pan) and at 1 rad/s; not at 3.4 rad/s (1.78).
    command, _ = supervisor.filter(np.full(6, 1.85), dipped, 1.02)
    expected = Supervisor(SO_ARM, config, STILL).soft_limits(np.full(6, 3.4))[1]
    assert np.allclose(command[:5], np.minimum(1.85, expected[:5]))
    assert command[0] == pytest.approx(1.92 - (3.4 * 0.02 + 3.4**2 / 160))


# -- in the loop, on the simulated arm --------------------------------------------------------

@pytest.mark.slow  # an end-to-end run: the fast subset keeps under 60 s
def test_a_nan_policy_on_robot_sim_stops_with_exit_code_3_and_succeeds_nowhere(
        tiny_policy, tmp_path, capsys) -> None:
    """`sim2real deploy NAN.onnx --robot sim`, in real time: before the fix it held the NaN
    every cycle for the whole run, exited 0, and its first goal could be the start tip."""
    from sim2real.cli import main

    nan = bad_policy("nan", tiny_policy, tmp_path / "nan.onnx")
    log = tmp_path / "nan.mcap"
    with pytest.raises(SystemExit) as exited:
        main(["deploy", str(nan), "--robot", "sim", "--seconds", "10", "--log", str(log), "--json"])
    assert exited.value.code == 3
    err = capsys.readouterr().err
    assert "stopped: supervisor nan_guard: the policy gave NaN or inf" in err
    logged = read_log(log)
    stops = [e for e in logged.events if e["event"] == "safe_stop"]
    assert len(stops) == 1 and stops[0]["reason"].startswith("supervisor nan_guard")
    report = next(e for e in logged.events if e["event"] == "report")["report"]
    assert report["successes"] == 0 and report["success_rate"] == 0.0
    # Stopped after 0.5 s of NaN (plus a cycle or two of this machine's lateness), not 10 s.
    assert 0.5 < stops[0]["seconds"] < 1.0 and report["cycles"] < 50
    assert report["interventions"]["nan_guard"] == report["cycles"]


def test_a_policy_flipping_its_action_each_cycle_is_stopped(monkeypatch, tmp_path) -> None:
    FakeClock(monkeypatch)
    log = tmp_path / "flip.mcap"
    with SimRobot(SO_ARM, realtime=False) as robot:
        report = run(Flipper(), robot, seconds=10.0, log=log)
    assert report.stopped.startswith("supervisor oscillation: ")
    assert after_report(report)[1] == 3
    logged = read_log(log)
    stop = next(e for e in logged.events if e["event"] == "safe_stop")
    assert stop["reason"] == report.stopped
    # Late in the 1 s soft start the ramped flips reach the rate limit: 13 reversals in 0.5 s
    # later (0.26 s of the 25 Hz bang-bang the issue saw), it stops.
    assert 0.9 < stop["seconds"] < 1.6
    steps = np.diff(logged.fields["command"][-10:, :3], axis=0)
    assert np.allclose(np.abs(steps[:, 0]), 2 * 5.45 * PERIOD)  # the pan, at the rate limit
    assert np.all(steps[1:] * steps[:-1] < 0)


def test_a_healthy_run_is_not_stopped_and_other_stops_keep_exit_code_0() -> None:
    assert after_report(DeployReport(stopped="e-stop (key)"))[1] == 0
    assert after_report(DeployReport(stopped="Ctrl-C"))[1] == 0
    assert after_report(DeployReport(stopped="watchdog: no fresh state"))[1] == 3
    assert after_report(DeployReport())[1] == 0


def joint_excursion(policy: OnnxPolicy, safety: SafetyConfig, monkeypatch) -> np.ndarray:
    """How far (rad) past its hard limits each joint was measured, at most (negative: inside),
    over two episodes of `policy` on the lockstep SimRobot arm."""
    FakeClock(monkeypatch)
    readings = []
    with SimRobot(SO_ARM, realtime=False) as robot:
        read = robot.read_state

        def recorded() -> RobotState:
            state = read()
            readings.append(state.positions.copy())
            return state

        robot.read_state = recorded
        run(policy, robot, seconds=1e9, max_episodes=2, safety=safety, home_after_miss=False)
    positions = np.array(readings)
    low, high = np.array(SO_ARM.position_low), np.array(SO_ARM.position_high)
    return np.max(np.maximum(positions - high, low - positions), axis=0)


def test_a_saturating_policy_keeps_the_joints_inside_the_hard_limits(tiny_policy, tmp_path,
                                                                    monkeypatch) -> None:
    """Full action into the limits (pan +, lift +, elbow -) for two episodes. With soft limits
    at a fixed 0.05 rad the joints ran up to 0.024 rad past the hard limits (the finding);
    with the room to stop they stay inside."""
    saturating = OnnxPolicy(bad_policy("saturating", tiny_policy, tmp_path / "sat.onnx"))
    fixed = joint_excursion(saturating, SafetyConfig(braking_deceleration=0), monkeypatch)
    assert fixed[:3].max() > 0.01, fixed  # the finding, reproduced
    braking = joint_excursion(saturating, SafetyConfig(), monkeypatch)
    assert braking[:3].max() < -0.005, braking
    assert np.all(braking[:3] > -0.1)  # they did reach their limits


def test_a_nan_policy_on_the_simulated_arm_never_succeeds(tiny_policy, tmp_path,
                                                          monkeypatch) -> None:
    """Honest success: with the escalation off, a policy that never moves the arm misses every
    episode, and no episode starts with its target already reached (on `--robot sim` the first
    target was once the start pose's own tip, a free success)."""
    from deploy.on_robot import deploy_on_robot

    class Lockstep(SimRobot):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, realtime=False, **kwargs)

    FakeClock(monkeypatch)
    monkeypatch.setattr("hardware.sim_robot.SimRobot", Lockstep)  # opened as `--robot sim` is
    nan = bad_policy("nan", tiny_policy, tmp_path / "nan.onnx")
    safety = tmp_path / "safety.json"
    safety.write_text('{"nan_stop_seconds": 0}')
    log = tmp_path / "nan.mcap"
    report = deploy_on_robot(nan, "sim", seconds=1e9, max_episodes=6, seed=5, safety=safety,
                             log=log, say=None)
    assert report.episodes == 6 and report.successes == 0 and not report.stopped
    logged = read_log(log)
    layout = [name for name, size in logged.header["contract"]["task"]["observation_layout"]
              for _ in range(size)]
    to_target = [i for i, name in enumerate(layout) if name == "target_minus_tip"]
    episode, observations = logged.fields["episode"][:, 0], logged.fields["observation"]
    ran = ~np.isnan(observations[:, 0])
    firsts = [np.flatnonzero(ran & (episode == k))[0] for k in range(6)]
    distances = np.linalg.norm(observations[firsts][:, to_target], axis=1)
    success_distance = logged.header["contract"]["task"]["config"]["success_distance"]
    assert np.all(distances >= success_distance), distances
