"""The safety supervisor against policies that output garbage, and each check on its own."""

from __future__ import annotations

import numpy as np
import pytest

import deploy.loop
from deploy.loop import run
from deploy.onnx_policy import OnnxPolicy
from deploy.supervisor import INTERVENTIONS, SafetyConfig, Supervisor, mask_names
from deploy.telemetry import read_log
from hardware.sim_robot import SimRobot
from sim.furuta import FURUTA
from sim.push import PushTask
from sim.so_arm import SO_ARM
from sim.spec import RobotState


class GarbagePolicy:
    """The contract of a real exported policy, the outputs of a broken one."""

    def __init__(self, real: OnnxPolicy, outputs) -> None:
        self.contract, self.path = real.contract, real.path
        self.outputs = outputs
        self.calls = 0
        self.nan_calls = 0

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        action = np.asarray(self.outputs(self.calls, self.contract.action_size), dtype=np.float32)
        self.calls += 1
        self.nan_calls += int(not np.all(np.isfinite(action)))
        return action


def nan_then_huge(i: int, size: int) -> np.ndarray:
    return np.full(size, np.nan if i % 3 == 0 else (1e9 if i % 3 == 1 else -np.inf))


def full_scale_oscillation(i: int, size: int) -> np.ndarray:
    return np.full(size, 1.0 if i % 2 else -1.0)


def huge(i: int, size: int) -> np.ndarray:
    return np.full(size, 1e6 * (-1) ** i)  # radians


@pytest.mark.parametrize("outputs", [nan_then_huge, full_scale_oscillation, huge])
def test_no_command_leaves_the_limits_and_every_intervention_is_counted(
        tiny_policy, tmp_path, monkeypatch, outputs) -> None:
    monkeypatch.setattr(deploy.loop, "sleep_until", lambda deadline: None)  # lockstep, fast
    policy = GarbagePolicy(OnnxPolicy(tiny_policy), outputs)
    # The task would clip actions to [-1, 1]; make the garbage reach the supervisor raw (as
    # radians), as a task with a bug would pass it on.
    build_task = deploy.loop.task_from_contract

    def raw_task(*args):
        task = build_task(*args)
        task.action_to_command = lambda action, state, history: np.resize(np.asarray(action, float), 6)
        return task

    monkeypatch.setattr(deploy.loop, "task_from_contract", raw_task)
    # The loop runs lockstep, as fast as it can: a whole episode may take less wall time than a
    # soft start of 0.1 s (it did on a fast CI machine), and with the ramp never over no command
    # would be rate-limited. A ramp of 1 ms is over within the first few cycles on any machine.
    # No escalation: the whole episode's garbage goes through the checks (the stops have their
    # own tests below).
    safety = SafetyConfig(soft_start_seconds=1e-3, nan_stop_seconds=0, oscillation_seconds=0)
    log = tmp_path / "garbage.mcap"
    sent: list[np.ndarray] = []
    with SimRobot(SO_ARM, realtime=False) as robot:
        write = robot._write_command
        robot._write_command = lambda command: (sent.append(command.copy()), write(command))
        report = run(policy, robot, seconds=1e9, max_episodes=1, safety=safety, log=log)
    assert report.cycles > 20 and len(sent) >= report.cycles
    assert report.seconds > safety.soft_start_seconds
    commands = np.array(sent)
    supervisor = Supervisor(SO_ARM, safety, RobotState(np.zeros(6), np.zeros(6)))
    assert np.all(np.isfinite(commands))
    assert np.all(commands >= supervisor.soft_low - 1e-12)
    assert np.all(commands <= supervisor.soft_high + 1e-12)
    steps = np.abs(np.diff(commands, axis=0))
    assert np.all(steps <= supervisor.max_change + 1e-12)

    logged = read_log(log)
    masks = logged.fields["interventions"][:, 0].astype(int)
    from_log = {kind: int(np.sum(masks >> i & 1)) for i, kind in enumerate(INTERVENTIONS)}
    assert from_log == report.interventions
    assert report.interventions["nan_guard"] == policy.nan_calls
    assert report.clamped_commands == int(np.count_nonzero(masks))
    if outputs is full_scale_oscillation:
        assert report.interventions["rate_limit"] > 0
    assert np.array_equal(logged.fields["command"], commands[:logged.cycles])


def test_soft_start_ramps_from_the_pose_the_robot_was_found_in() -> None:
    found = RobotState(np.full(6, 0.3), np.zeros(6))
    supervisor = Supervisor(SO_ARM, SafetyConfig(soft_start_seconds=1.0,
                                                 max_command_change=0), found)
    target = np.full(6, -0.1)
    half, mask = supervisor.filter(target, found, 0.5)
    assert np.allclose(half, 0.3 + 0.5 * (-0.4))
    assert mask_names(mask) == ["soft_start"]
    after, mask = supervisor.filter(target, found, 1.0)
    assert np.allclose(after, target) and mask == 0


def test_rate_limit_and_nan_guard_hold_the_last_safe_command() -> None:
    still = RobotState(np.zeros(6), np.zeros(6))
    supervisor = Supervisor(SO_ARM, SafetyConfig(soft_start_seconds=0,
                                                 max_command_change=0.1), still)
    first, mask = supervisor.filter(np.full(6, 1.0), still, 2.0)
    assert np.allclose(first, 0.1) and mask_names(mask) == ["rate_limit"]
    held, mask = supervisor.filter(np.full(6, np.nan), still, 2.02)
    assert np.array_equal(held, first) and mask_names(mask) == ["nan_guard"]
    assert supervisor.counts["rate_limit"] == 1 and supervisor.counts["nan_guard"] == 1


def test_a_joint_over_its_velocity_limit_is_not_driven_further() -> None:
    fast = RobotState(np.zeros(6), np.array([10.0, -10.0, 0, 0, 0, 0]))
    supervisor = Supervisor(SO_ARM, SafetyConfig(soft_start_seconds=0,
                                                 max_command_change=0), fast)
    command, mask = supervisor.filter(np.array([0.5, -0.5, 0.5, 0, 0, 0]), fast, 2.0)
    assert command.tolist() == [0.0, 0.0, 0.5, 0.0, 0.0, 0.0]
    assert mask_names(mask) == ["velocity_limit"]
    # Braking (a goal against the motion) passes.
    command, mask = supervisor.filter(np.array([-0.5, 0.5, 0, 0, 0, 0]), fast, 2.0)
    assert mask == 0


def test_a_motor_is_not_driven_past_its_soft_limit() -> None:
    at_limit = RobotState(np.array([1.99, 0.0]), np.zeros(2))
    supervisor = Supervisor(FURUTA, SafetyConfig(soft_start_seconds=0), at_limit)
    assert supervisor.hold_command(at_limit).tolist() == [0.0]
    command, mask = supervisor.filter(np.array([5.0]), at_limit, 2.0)
    assert command.tolist() == [0.0] and mask_names(mask) == ["position_limit"]
    command, mask = supervisor.filter(np.array([-4.0]), at_limit, 2.0)  # back inside: allowed
    assert command.tolist() == [-4.0] and mask == 0
    command, mask = supervisor.filter(np.array([40.0]), RobotState(np.zeros(2), np.zeros(2)), 2.0)
    assert command.tolist() == [10.0] and mask_names(mask) == ["command_limit"]
    limited = Supervisor(FURUTA, SafetyConfig(max_command_change=6.0), at_limit)
    limited.filter(np.array([-4.0]), at_limit, 2.0)
    command, mask = limited.filter(np.array([40.0]), RobotState(np.zeros(2), np.zeros(2)), 2.0)
    assert command.tolist() == [2.0] and mask_names(mask) == ["rate_limit"]  # 6 V from -4 V


def test_the_defaults_leave_a_motors_bang_bang_alone_from_the_first_cycle() -> None:
    """A swing-up policy's full-scale voltage reversals are its learned actions: no soft start
    ramps them and no rate limit cuts them (only a servo's goals are ramped)."""
    rest = RobotState(np.array([0.0, np.pi]), np.zeros(2))
    supervisor = Supervisor(FURUTA, SafetyConfig(), rest)
    for k in range(50):  # 0.2 s at 250 Hz, inside the 1 s soft start
        volts = 6.0 if k % 2 else -6.0
        command, mask = supervisor.filter(np.array([volts]), rest, k * FURUTA.control_period)
        assert command.tolist() == [volts] and mask == 0
    assert not any(supervisor.counts.values())


def test_bad_safety_settings_are_named() -> None:
    with pytest.raises(ValueError, match="soft_limit_margin"):
        SafetyConfig(soft_limit_margin=-1)
    with pytest.raises(ValueError, match="watchdog_seconds cannot be 0"):
        SafetyConfig(watchdog_seconds=0)
    with pytest.raises(ValueError, match="unknown safety setting.*'rate'"):
        SafetyConfig.from_dict({"rate": 1})


@pytest.mark.parametrize("config", [SafetyConfig(), SafetyConfig(max_command_change=0),
                                    SafetyConfig(velocity_limit_scale=0, soft_limit_margin=0)])
def test_the_fast_path_gives_what_every_check_gives(config) -> None:
    """`filter` skips the checks when none would change the command; over random commands and
    readings (in range, at and past the limits, NaN, fast joints, NaN speeds) it must give the same commands,
    masks and counts as a supervisor that runs every check every cycle."""
    rng = np.random.default_rng(0)
    start = RobotState(np.zeros(6), np.zeros(6))
    fast, every_check = Supervisor(SO_ARM, config, start), Supervisor(SO_ARM, config, start)
    every_check._untouched = lambda *args: False
    low, high = np.array(SO_ARM.position_low), np.array(SO_ARM.position_high)
    skipped = 0
    for cycle in range(3000):
        positions = np.clip(every_check.last_safe + rng.normal(0, 0.02, 6), low, high)
        velocities = rng.normal(0, 2.0 if cycle % 7 == 0 else 0.5, 6)
        if cycle % 13 == 0:
            velocities[rng.integers(6)] = np.nan
        state = RobotState(positions, velocities)
        kind = cycle % 4
        if kind == 0:  # a small step, inside the soft limits at any speed: usually untouched
            command = np.clip(every_check.last_safe, fast.braking_low + 0.1,
                              fast.braking_high - 0.1) + rng.uniform(-0.1, 0.1, 6)
        elif kind == 1:  # anywhere in and somewhat past the range
            command = rng.uniform(1.2 * low, 1.2 * high)
        elif kind == 2:  # exactly on a limit: at rest, or at the velocity limit
            on_low, on_high = ((fast.soft_low, fast.soft_high) if cycle % 8 == 2
                               else (fast.braking_low, fast.braking_high))
            command = np.where(rng.random(6) < 0.5, on_low, on_high)
        else:
            command = every_check.last_safe + rng.uniform(-0.1, 0.1, 6)
            command[rng.integers(6)] = [np.nan, np.inf, 0.0][cycle % 3]
        seconds = 0.02 * cycle
        _, speeds, _, held = fast._motion(state)
        skipped += fast._untouched(np.asarray(command, float), speeds, held, seconds)
        ours, ours_mask = fast.filter(command, state, seconds)
        reference, reference_mask = every_check.filter(command, state, seconds)
        assert np.array_equal(ours, reference) and ours_mask == reference_mask, cycle
    assert fast.counts == every_check.counts
    assert 300 < skipped < 2700  # both paths really ran


def test_turning_the_velocity_check_off_keeps_the_default_rate_limit() -> None:
    still = RobotState(np.zeros(6), np.zeros(6))
    on = Supervisor(SO_ARM, SafetyConfig(), still)
    off = Supervisor(SO_ARM, SafetyConfig(velocity_limit_scale=0), still)
    assert np.array_equal(off.max_change, on.max_change) and np.all(off.max_change > 0)


def test_push_goals_stay_where_the_supervisor_never_cuts_them() -> None:
    """A push folds the arm to the table and its policy drives joints to the limits: its goals
    stop inside the supervisor's soft limits at any speed (with the default settings and the
    sim robot's delay), so `deploy --robot sim` runs the policy `eval` measured."""
    arm = PushTask(SO_ARM).arm
    rest = RobotState(np.zeros(6), np.zeros(6))
    supervisor = Supervisor(SO_ARM, SafetyConfig(), rest)
    joints = arm.actuated
    assert np.all(arm.low[joints] >= supervisor.braking_low[joints])
    assert np.all(arm.high[joints] <= supervisor.braking_high[joints])
    # and the margin is no wider than it must be (0.29 rad of 0.3)
    assert np.all(arm.low[joints] - supervisor.braking_low[joints] < 0.02)
