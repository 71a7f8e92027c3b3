"""The fixed-rate control loop: read the robot, build the observation with the task's functions,
run the ONNX policy, clamp, write; by absolute deadlines so the rate never drifts.

Runs on the robot's computer: numpy and onnxruntime only (the robot backend is passed in).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from deploy.contract import ContractError
from deploy.onnx_policy import OnnxPolicy
from hardware.robot import Robot
from sim.catalog import make_task

# Sleep until this close to a deadline, then spin: OS sleeps overshoot by ~0.1 ms.
SPIN_SECONDS = 0.0005
# Homing ends when every actuated joint is this close (rad) to its default pose.
HOME_TOLERANCE = 0.05
# Between episodes a servo robot holds still until every joint is slower than this (rad/s), or
# for at most SETTLE_SECONDS.
SETTLE_SPEED = 0.25
SETTLE_SECONDS = 1.0


@dataclass
class DeployReport:
    cycles: int = 0
    seconds: float = 0.0
    loop_rate_hz: float = 0.0
    target_rate_hz: float = 0.0
    deadline_misses: int = 0
    compute_p50_us: float = 0.0
    compute_p99_us: float = 0.0
    episodes: int = 0
    successes: int = 0
    success_rate: float = 0.0
    clamped_commands: int = 0
    homings: int = 0
    """Times the robot walked home after a missed episode."""
    stopped: str = ""
    """Why the run ended before its time, if it did."""
    episode_seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        report = asdict(self)
        report.pop("episode_seconds")
        return report


def _next_deadline(deadline: float, period: float, report: DeployReport) -> float:
    """Count a miss if this cycle overran the next deadline, then wait for it. Cycles already
    lost are skipped rather than run in a burst to catch up."""
    deadline += period
    now = time.perf_counter()
    if now > deadline:
        report.deadline_misses += 1
        deadline += period * int((now - deadline) / period)
    sleep_until(deadline)
    return deadline


def sleep_until(deadline: float) -> None:
    remaining = deadline - time.perf_counter()
    if remaining > SPIN_SECONDS:
        time.sleep(remaining - SPIN_SECONDS)
    while time.perf_counter() < deadline:
        pass


def run(policy: OnnxPolicy, robot: Robot, seconds: float, max_episodes: int | None = None,
        seed: int = 0, home_after_miss: bool = True) -> DeployReport:
    """Drive `robot` (already connected) with `policy` for `seconds` or `max_episodes` episodes.

    Episodes follow the task: a new goal after success or after the task's episode length; the
    robot is never teleported, the next episode starts where the last one ended. Between
    episodes a position-servo robot holds still until it is at rest (training episodes start at
    rest), and after a miss walks back to its default pose at half its speed limit
    (`home_after_miss`), as one resets a real robot between trials: a miss can leave an arm
    folded against its limits, a start no episode should be judged from.
    """
    contract = policy.contract
    if contract.image_shape is not None:
        raise ContractError(f"{policy.path} sees camera images {contract.image_shape}; this loop "
                            "feeds the robot's state only (no camera yet), refusing to move")
    contract.check(robot.spec)
    task = make_task(contract.task["name"], robot.spec, contract.task["config"])
    if task.observation_size != contract.observation_size or task.action_size != contract.action_size:
        raise ValueError(f"task {task.name!r} builds {task.observation_size} observations and "
                         f"{task.action_size} actions, the policy takes {contract.observation_size} "
                         f"and gives {contract.action_size}: the task changed since export")
    period = contract.control_period
    rng = np.random.default_rng(seed)
    report = DeployReport(target_rate_hz=1.0 / period)
    compute_times: list[float] = []

    goal = task.sample_goal(rng)
    steps_in_episode = 0
    spec = robot.spec
    servo = spec.actuator_kind == "position"
    home = np.asarray(spec.default_pose)[spec.actuated_joint_index]
    home_step = 0.5 * np.asarray(spec.velocity_limit)[spec.actuated_joint_index] * period
    # Between episodes a servo robot first comes to rest (training episodes start at rest),
    # then, after a miss, walks home. None: an episode is running.
    between: str | None = None
    hold = last_sent = home
    missed = False
    pause_start = 0.0
    start = time.perf_counter()
    deadline = start
    episode_start = start
    while True:
        cycle_start = time.perf_counter()
        if cycle_start - start >= seconds:
            break
        state = robot.read_state()
        if between == "settle":
            resting = np.max(np.abs(state.velocities)) < SETTLE_SPEED
            if resting or cycle_start - pause_start > SETTLE_SECONDS:
                between = "home" if missed and home_after_miss else None
                report.homings += between == "home"
        if between == "home":
            current = state.positions[spec.actuated_joint_index]
            if np.max(np.abs(home - current)) < HOME_TOLERANCE:
                between = None
            hold = current + np.clip(home - current, -home_step, home_step)
        if between is not None:
            robot.send_command(hold)
            report.cycles += 1
            deadline = _next_deadline(deadline, period, report)
            continue
        if steps_in_episode == 0:
            episode_start = cycle_start
        result = task.evaluate(state, goal)
        if steps_in_episode > 0 and (result.terminated or steps_in_episode >= task.max_steps):
            report.episodes += 1
            report.successes += int(result.success)
            report.episode_seconds.append(cycle_start - episode_start)
            if max_episodes is not None and report.episodes >= max_episodes:
                break
            goal = task.sample_goal(rng)
            steps_in_episode = 0
            if servo:
                # Hold the last goals: the servos stop where they were told to be.
                between, missed, pause_start = "settle", not result.success, cycle_start
                hold = last_sent
                robot.send_command(hold)
                report.cycles += 1
                deadline = _next_deadline(deadline, period, report)
                continue
            result = task.evaluate(state, goal)
            if result.terminated:
                # E.g. a fallen pendulum: nothing the policy does from here is an episode.
                report.stopped = "the next episode would start in a terminal state"
                break
        action = policy(result.observation)
        command = task.action_to_command(action, state)
        sent = last_sent = robot.send_command(command)
        report.clamped_commands += int(not np.array_equal(sent, command))
        steps_in_episode += 1
        report.cycles += 1
        compute_times.append(time.perf_counter() - cycle_start)
        deadline = _next_deadline(deadline, period, report)

    report.seconds = time.perf_counter() - start
    report.loop_rate_hz = report.cycles / report.seconds if report.seconds > 0 else 0.0
    report.success_rate = report.successes / report.episodes if report.episodes else 0.0
    if compute_times:
        report.compute_p50_us = float(np.percentile(compute_times, 50) * 1e6)
        report.compute_p99_us = float(np.percentile(compute_times, 99) * 1e6)
    return report
