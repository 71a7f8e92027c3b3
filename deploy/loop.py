"""The fixed-rate control loop: read the robot, build the observation with the task's functions,
run the ONNX policy, pass the command through the safety supervisor, write; by absolute deadlines
so the rate never drifts. Each stage is timed, every cycle can go to a telemetry log, and a
watchdog, the e-stops and Ctrl-C end a run in a safe stop: hold, then release.

Runs on the robot's computer: numpy and onnxruntime only (the robot backend is passed in).
"""

from __future__ import annotations

import json
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from deploy.contract import Contract, ContractError
from deploy.realtime import request_realtime
from deploy.stop_signals import StopSignals
from deploy.supervisor import INTERVENTIONS, SafetyConfig, Supervisor
from deploy.telemetry import TelemetryWriter
from hardware.robot import Robot
from sim.catalog import make_task
from sim.spec import RobotState

# Sleep until this close to a deadline, then spin: OS sleeps overshoot by ~0.1 ms.
SPIN_SECONDS = 0.0005
# Homing ends when every actuated joint is this close (rad) to its default pose.
HOME_TOLERANCE = 0.05
# Between episodes a servo robot holds still until every joint is slower than this (rad/s), or
# for at most SETTLE_SECONDS.
SETTLE_SPEED = 0.25
SETTLE_SECONDS = 1.0
STAGES = ("read", "observe", "infer", "supervise", "write")
"""Timed per cycle: read the robot; observe (the task's observation, episode bookkeeping);
infer (the policy, its action made a command); supervise (the safety filter); write."""
PHASES = ("policy", "settle", "home")
"""What a cycle did: ran the policy, or held still / walked home between episodes."""


class Policy(Protocol):
    """What the loop runs: a callable from observation to action with a contract (OnnxPolicy)."""

    contract: Contract
    path: Path

    def __call__(self, observation: np.ndarray) -> np.ndarray: ...


@dataclass
class DeployReport:
    cycles: int = 0
    seconds: float = 0.0
    loop_rate_hz: float = 0.0
    target_rate_hz: float = 0.0
    deadline_misses: int = 0
    """Cycles that overran the next deadline (the cycles they cost are skipped, not bunched)."""
    compute_p50_us: float = 0.0
    """observe + infer + supervise, the loop's own work, on cycles that ran the policy."""
    compute_p99_us: float = 0.0
    jitter_p99_us: float = 0.0
    """99th percentile of |interval between cycle starts - control period|."""
    stage_p50_us: dict[str, float] = field(default_factory=dict)
    stage_p99_us: dict[str, float] = field(default_factory=dict)
    episodes: int = 0
    successes: int = 0
    success_rate: float = 0.0
    interventions: dict[str, int] = field(default_factory=dict)
    """How often each supervisor check changed a command (deploy/supervisor.py)."""
    clamped_commands: int = 0
    """Cycles in which the supervisor changed the command at all."""
    read_failures: int = 0
    """Reads that raised (a timeout on a serial link) instead of returning a state."""
    write_failures: int = 0
    """Commands the link failed to take (a link that is gone)."""
    homings: int = 0
    """Times the robot walked home after a missed episode."""
    stopped: str = ""
    """Why the run ended before its time, if it did (watchdog, e-stop, Ctrl-C, ...)."""
    stopped_after_s: float | None = None
    """For a watchdog stop: seconds from the last fresh state to the safe-stop command."""
    realtime: str = ""
    """What the OS granted of the real-time priority and CPU pinning asked for."""
    log: str = ""
    link: dict[str, Any] = field(default_factory=dict)
    """Counters of the link to a robot that has one (SerialRobot.stats: CRC errors, timeouts,
    dropped and late frames, faults, round-trip times)."""
    episode_seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        report = asdict(self)
        report.pop("episode_seconds")
        return report


def sleep_until(deadline: float) -> None:
    remaining = deadline - time.perf_counter()
    if remaining > SPIN_SECONDS:
        time.sleep(remaining - SPIN_SECONDS)
    while time.perf_counter() < deadline:
        pass


def run(policy: Policy, robot: Robot, seconds: float, max_episodes: int | None = None,
        seed: int = 0, home_after_miss: bool = True, safety: SafetyConfig | None = None,
        log: Path | None = None, stops: StopSignals | None = None,
        realtime_priority: int | None = None, cpu: int | None = None) -> DeployReport:
    """Drive `robot` (already connected) with `policy` for `seconds` or `max_episodes` episodes.

    Episodes follow the task: a new goal after success or after the task's episode length; the
    robot is never teleported, the next episode starts where the last one ended. Between
    episodes a position-servo robot holds still until it is at rest (training episodes start at
    rest), and after a miss walks back to its default pose at half its speed limit
    (`home_after_miss`), as one resets a real robot between trials: a miss can leave an arm
    folded against its limits, a start no episode should be judged from.

    Every command passes the supervisor (`safety`, default SafetyConfig()). `log`: a telemetry
    file of every cycle. `stops`: the e-stops and Ctrl-C to honour (default: Ctrl-C and
    SIGUSR1). The robot is released at the end of every run, however it ends.
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
    safety = safety or SafetyConfig()
    spec = robot.spec
    telemetry = None
    if log is not None:
        header = {"robot": spec.name, "joint_names": list(spec.joint_names),
                  "actuator_names": list(spec.actuator_names),
                  "position_low": list(spec.position_low), "position_high": list(spec.position_high),
                  "command_low": list(spec.command_low), "command_high": list(spec.command_high),
                  "control_period": spec.control_period, "policy": str(policy.path),
                  "contract": json.loads(contract.to_json()), "safety": asdict(safety),
                  "interventions": list(INTERVENTIONS), "phases": list(PHASES),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        n, a = spec.num_joints, spec.num_actuators
        telemetry = TelemetryWriter(log, header, [
            ("time", 1), ("state_time", 1), ("command_time", 1), ("lateness_us", 1),
            ("missed", 1), ("phase", 1), ("episode", 1), ("positions", n), ("velocities", n),
            ("observation", contract.observation_size), ("action", contract.action_size),
            ("policy_command", a), ("command", a), ("interventions", 1),
            *((f"{stage}_us", 1) for stage in STAGES)])
    owned_stops = stops is None
    stops = stops or StopSignals()
    granted, restore = request_realtime(realtime_priority, cpu)
    try:
        with stops if owned_stops else nullcontext():
            report = _control(policy, robot, task, seconds, max_episodes, seed, home_after_miss,
                              safety, telemetry, stops)
    finally:
        restore()
        if telemetry is not None:
            telemetry.close()
    report.realtime = granted
    report.log = str(log) if log is not None else ""
    return report




def _control(policy: Policy, robot: Robot, task: Any, seconds: float, max_episodes: int | None,
             seed: int, home_after_miss: bool, safety: SafetyConfig,
             telemetry: TelemetryWriter | None, stops: StopSignals) -> DeployReport:
    spec = robot.spec
    period = spec.control_period
    watchdog = safety.watchdog_period(period)
    rng = np.random.default_rng(seed)
    report = DeployReport(target_rate_hz=1.0 / period)
    stage_times = {stage: [] for stage in STAGES}
    compute_times: list[float] = []
    starts: list[float] = []

    first = robot.read_state()
    supervisor = Supervisor(spec, safety, first)
    goal = task.sample_goal(rng)
    steps_in_episode = 0
    servo = spec.actuator_kind == "position"
    home = np.asarray(spec.default_pose)[spec.actuated_joint_index]
    home_step = 0.5 * np.asarray(spec.velocity_limit)[spec.actuated_joint_index] * period
    # Between episodes a servo robot first comes to rest (training episodes start at rest),
    # then, after a miss, walks home. None: an episode is running.
    between: str | None = None
    hold = last_sent = supervisor.start_command
    missed = False
    pause_start = 0.0
    state, last_state_time = first, first.time
    start = time.perf_counter()
    last_fresh = start
    deadline = start
    episode_start = start
    try:
        while True:
            cycle_start = time.perf_counter()
            elapsed = cycle_start - start
            late = cycle_start - deadline
            starts.append(cycle_start)
            if elapsed >= seconds:
                break
            if reason := stops.requested():
                report.stopped = reason
                _safe_stop(robot, supervisor, state, safety.stop_hold_seconds, period, telemetry,
                           elapsed, reason)
                break
            # -- read ---------------------------------------------------------------------
            try:
                fresh = robot.read_state()
            except (TimeoutError, OSError) as error:
                report.read_failures += 1
                fresh = None
                if telemetry:
                    telemetry.event(elapsed, "read_failure", error=str(error))
            t_read = time.perf_counter()
            if fresh is not None and fresh.time > last_state_time:
                state, last_state_time, last_fresh = fresh, fresh.time, t_read
            if t_read - last_fresh > watchdog:
                waited = t_read - last_fresh
                report.stopped = (f"watchdog: no fresh state from the robot for "
                                  f"{waited * 1e3:.0f} ms (limit {watchdog * 1e3:.0f} ms)")
                report.stopped_after_s = waited
                _safe_stop(robot, supervisor, state, 0.0, period, telemetry, elapsed,
                           report.stopped)
                break
            # -- between episodes: hold still, walk home ----------------------------------
            phase = between
            if between == "settle":
                resting = np.max(np.abs(state.velocities)) < SETTLE_SPEED
                if resting or cycle_start - pause_start > SETTLE_SECONDS:
                    between = "home" if missed and home_after_miss else None
                    report.homings += between == "home"
                    phase = between
            if between == "home":
                current = state.positions[spec.actuated_joint_index]
                if np.max(np.abs(home - current)) < HOME_TOLERANCE:
                    between = phase = None
                hold = current + np.clip(home - current, -home_step, home_step)
            observation = action = wanted = None
            t_observe = t_infer = t_read
            if between is None:
                # -- observe --------------------------------------------------------------
                if steps_in_episode == 0:
                    episode_start = cycle_start
                result = task.evaluate(state, goal)
                if steps_in_episode > 0 and (result.terminated
                                             or steps_in_episode >= task.max_steps):
                    report.episodes += 1
                    report.successes += int(result.success)
                    report.episode_seconds.append(cycle_start - episode_start)
                    if telemetry:
                        telemetry.event(elapsed, "episode_end", success=bool(result.success),
                                        steps=steps_in_episode)
                    if max_episodes is not None and report.episodes >= max_episodes:
                        break
                    goal = task.sample_goal(rng)
                    steps_in_episode = 0
                    if servo:
                        # Hold the last goals: the servos stop where they were told to be.
                        between, missed, pause_start = "settle", not result.success, cycle_start
                        hold, phase = last_sent, "settle"
                    else:
                        result = task.evaluate(state, goal)
                        if result.terminated:
                            # E.g. a fallen pendulum: nothing the policy does is an episode.
                            report.stopped = "the next episode would start in a terminal state"
                            _safe_stop(robot, supervisor, state, 0.0, period, telemetry,
                                       elapsed, report.stopped)
                            break
                t_observe = time.perf_counter()
                if between is None:
                    observation = result.observation
                    # -- infer --------------------------------------------------------------
                    action = policy(observation)
                    wanted = task.action_to_command(action, state)
                    t_infer = time.perf_counter()
                    steps_in_episode += 1
                else:
                    t_infer = t_observe
            # -- supervise ----------------------------------------------------------------
            command, mask = supervisor.filter(hold if wanted is None else wanted, state, elapsed)
            t_supervise = time.perf_counter()
            # -- write --------------------------------------------------------------------
            try:
                last_sent = robot.send_command(command)
            except (TimeoutError, OSError) as error:
                # A link that fails on the way out fails on the way in too: the watchdog stops.
                report.write_failures += 1
                if telemetry:
                    telemetry.event(elapsed, "write_failure", error=str(error))
            t_write = time.perf_counter()
            report.clamped_commands += mask != 0
            report.cycles += 1
            timings = (t_read - cycle_start, t_observe - t_read, t_infer - t_observe,
                       t_supervise - t_infer, t_write - t_supervise)
            for stage, spent in zip(STAGES, timings, strict=True):
                stage_times[stage].append(spent)
            if wanted is not None:
                compute_times.append(t_supervise - t_read)
            deadline += period
            now = time.perf_counter()
            missed_deadline = now > deadline
            if missed_deadline:
                report.deadline_misses += 1
                deadline += period * int((now - deadline) / period)  # skip, do not bunch
            if telemetry:
                telemetry.cycle(elapsed, {
                    "time": elapsed, "state_time": state.time,
                    "command_time": state.command_time, "lateness_us": late * 1e6,
                    "missed": float(missed_deadline),
                    "phase": PHASES.index(phase or "policy"), "episode": report.episodes,
                    "positions": state.positions, "velocities": state.velocities,
                    **({"observation": observation, "action": action, "policy_command": wanted}
                       if wanted is not None else {}),
                    "command": last_sent, "interventions": mask,
                    **{f"{stage}_us": spent * 1e6 for stage, spent in zip(STAGES, timings,
                                                                          strict=True)}})
            sleep_until(deadline)
    finally:
        try:
            robot.release()
        except (TimeoutError, OSError):
            pass  # a dead link: the device's own watchdog stops it

    report.seconds = time.perf_counter() - start
    report.loop_rate_hz = report.cycles / report.seconds if report.seconds > 0 else 0.0
    report.success_rate = report.successes / report.episodes if report.episodes else 0.0
    report.interventions = dict(supervisor.counts)
    if compute_times:
        report.compute_p50_us = float(np.percentile(compute_times, 50) * 1e6)
        report.compute_p99_us = float(np.percentile(compute_times, 99) * 1e6)
    if len(starts) > 1:
        # Period jitter: how far each start-to-start interval is from the period; a missed
        # deadline (an interval of two periods or more) counts in full.
        report.jitter_p99_us = float(np.percentile(np.abs(np.diff(starts) - period), 99) * 1e6)
    report.stage_p50_us = {s: round(float(np.percentile(t, 50) * 1e6), 1)
                           for s, t in stage_times.items() if t}
    report.stage_p99_us = {s: round(float(np.percentile(t, 99) * 1e6), 1)
                           for s, t in stage_times.items() if t}
    stats = getattr(robot, "stats", None)
    if stats is not None:
        report.link = stats.summary()
    if telemetry:
        telemetry.event(report.seconds, "report", report=report.summary())
    return report


def _safe_stop(robot: Robot, supervisor: Supervisor, state: RobotState, hold_seconds: float,
               period: float, telemetry: TelemetryWriter | None, elapsed: float,
               reason: str) -> None:
    """Hold the robot where it is (servos at their measured pose, motors at 0 V) for
    `hold_seconds`; the caller then releases it. Holding through a dead link is attempted once."""
    hold = supervisor.hold_command(state)
    if telemetry:
        telemetry.event(elapsed, "safe_stop", reason=reason, hold=hold)
    end = time.perf_counter() + hold_seconds
    while True:
        try:
            robot.send_command(hold)
        except (TimeoutError, OSError):
            return
        if time.perf_counter() >= end:
            return
        time.sleep(period)
