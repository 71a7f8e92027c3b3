"""The fixed-rate control loop. One cycle, in the order `_Loop.cycle` runs it: wait for the tick
(absolute deadlines, so the rate never drifts), read the robot, check the state (the watchdog,
a camera's, the episode's end), run the ONNX policy on the task's observation (and a pixel
policy's camera frame, deploy/camera_feed.py; objects a tracker locates in a camera's frames
enter the state, deploy/marker_tracker.py), pass the command through the
safety supervisor, write it, log the cycle. Each stage is timed and every cycle can go to a
telemetry log; a fault the robot reports (a servo's overload alarm) ends a run at once in a
safe stop (release); a watchdog, the e-stops and Ctrl-C end it holding, then releasing.

The named pieces: the clock in deploy/schedule.py, the episode bookkeeping in deploy/episodes.py,
the watchdog and the safe stop in deploy/safe_stop.py.
Runs on the robot's computer: numpy and onnxruntime only (the robot backend is passed in; a
camera's frames are resized with OpenCV).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from deploy.camera_feed import CameraFeed
from deploy.contract import Contract, ContractError
from deploy.episodes import HOME_TOLERANCE as HOME_TOLERANCE  # re-exported: tests read it here
from deploy.episodes import PHASES, Episodes, EpisodeStep
from deploy.marker_tracker import ObjectTracker
from deploy.safe_stop import Watchdog, hold_still, release
from deploy.schedule import Schedule, StageTimes, realtime, sleep_until
from deploy.stop_signals import StopSignals
from deploy.supervisor import INTERVENTIONS, SafetyConfig, Supervisor
from deploy.telemetry import Stream, TelemetryWriter
from hardware.robot import Robot, RobotFault
from sim.catalog import task_from_contract
from sim.spec import RobotState, model_path, urdf_path
from sim.task import Task

STAGES = ("read", "observe", "infer", "supervise", "write")
"""Timed per cycle: read the robot; observe (the task's observation, episode bookkeeping);
infer (the policy, its action made a command); supervise (the safety filter); write."""


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
    engage_waits: int = 0
    """Times a motor robot waited, held at 0 V, for the task to be ready (a pendulum held up)."""
    engage_seconds: float = 0.0
    """Time spent in those waits, the one running at the end included."""
    stopped: str = ""
    """Why the run ended before its time, if it did (watchdog, a servo fault, a camera's stale
    frame, e-stop, Ctrl-C, a supervisor escalation: "supervisor nan_guard: ...", "supervisor
    oscillation: ...")."""
    stopped_after_s: float | None = None
    """For a watchdog stop: seconds from the last fresh state to the safe-stop command; for a
    camera's stop: the newest frame's age then."""
    realtime: str = ""
    """What the OS granted of the real-time priority and CPU pinning asked for."""
    log: str = ""
    link: dict[str, Any] = field(default_factory=dict)
    """Counters of the link to a robot that has one (SerialRobot.stats: CRC errors, timeouts,
    dropped and late frames, faults, round-trip times)."""
    camera: dict[str, Any] = field(default_factory=dict)
    """A pixel policy's camera (CameraFeed.summary): its frame size and rate as measured, and
    the p50/p99 age of the frames the policy acted on; or a tracker's (ObjectTracker.summary):
    the same, how often each object was seen, and the age of the positions used."""
    episode_seconds: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        report = asdict(self)
        report.pop("episode_seconds")
        if not self.camera:
            report.pop("camera")  # a state policy's report reads as before cameras
        return report


def run(policy: Policy, robot: Robot, seconds: float, max_episodes: int | None = None,
        seed: int = 0, home_after_miss: bool = True, safety: SafetyConfig | None = None,
        log: Path | None = None, stops: StopSignals | None = None,
        realtime_priority: int | None = None, cpu: int | None = None,
        say: Callable[[str], object] | None = None,
        camera: CameraFeed | None = None, tracker: ObjectTracker | None = None) -> DeployReport:
    """Drive `robot` (already connected) with `policy` for `seconds` or `max_episodes` episodes.

    Episodes follow the task: a new goal after success or after the task's episode length; the
    robot is never teleported, the next episode starts where the last one ended. Between
    episodes a position-servo robot holds still until it is at rest (training episodes start at
    rest), and after a miss walks back to its default pose at half its speed limit
    (`home_after_miss`), as one resets a real robot between trials: a miss can leave an arm
    folded against its limits, a start no episode should be judged from. A motor robot (the
    pendulum) is held at 0 V before each episode until its task is ready (engage: a person
    holds the pendulum upright); `say` gets one line of what to do the first time it waits.

    Every command passes the supervisor (`safety`, default SafetyConfig()). `log`: a telemetry
    file of every cycle. `stops`: the e-stops and Ctrl-C to honour (default: Ctrl-C and
    SIGUSR1). The robot is released at the end of every run, however it ends.

    `camera`: a pixel policy's images (already checked against its contract); each cycle the
    policy gets the newest frame, and a frame older than the contract allows stops the run.
    `tracker`: the task's objects located in a camera's frames (already checked), each cycle
    written into the state the task reads; a camera that stops delivering stops the run too.
    """
    task = _task_for(policy, robot, camera, tracker)
    safety = safety or SafetyConfig()
    telemetry = (_open_telemetry(log, policy, robot, safety, camera or tracker)
                 if log is not None else None)
    owned_stops = stops is None
    stops = stops or StopSignals()
    try:
        with realtime(realtime_priority, cpu) as granted, stops if owned_stops else nullcontext():
            loop = _Loop(policy, robot, task, safety, telemetry, stops, seed, home_after_miss,
                         max_episodes, say, camera, tracker)
            try:
                while loop.cycle(seconds):
                    pass
            finally:
                release(robot)
            report = loop.finish()
    finally:
        if telemetry is not None:
            telemetry.close()
    report.realtime = granted
    report.log = str(log) if log is not None else ""
    return report


def _task_for(policy: Policy, robot: Robot, camera: CameraFeed | None,
              tracker: ObjectTracker | None) -> Task:
    """The policy's task on this robot, once the robot is known to be the one it was made for
    (and, for a pixel policy, a camera given; for a task that tracks objects, a tracker or a
    robot that knows where they are: the simulated one)."""
    contract = policy.contract
    if contract.image_shape is not None and camera is None:
        raise ContractError(f"{policy.path} sees camera images {contract.image_shape}: give it "
                            "the robot's camera (`sim2real deploy ... --camera /dev/video0` or "
                            "a stream's URL); refusing to move")
    if contract.image_shape is None and camera is not None:
        raise ContractError(f"{policy.path} takes the robot's state only, no camera images: "
                            "deploy it without --camera")
    contract.check(robot.spec)
    task = task_from_contract(contract.task["name"], robot.spec, contract.task["config"])
    if task.objects and tracker is None and not getattr(robot, "objects", ()):
        raise ContractError(f"{policy.path} tracks the {', '.join(task.objects)} on the table, "
                            "which this robot does not report: give the camera that sees them "
                            "and its calibration (`sim2real deploy ... --camera URL "
                            "--camera-calibration FILE`); refusing to move")
    if tracker is not None and not task.objects:
        raise ContractError(f"{policy.path}'s task ({task.name}) tracks no objects: deploy it "
                            "without --camera-calibration")
    if task.observation_size != contract.observation_size or task.action_size != contract.action_size:
        raise ValueError(f"task {task.name!r} builds {task.observation_size} observations and "
                         f"{task.action_size} actions, the policy takes {contract.observation_size} "
                         f"and gives {contract.action_size}: the task changed since export")
    return task


STAGE_FIELDS = tuple(f"{stage}_us" for stage in STAGES)
TELEMETRY_STREAMS = [
    Stream("/loop", ("time", "state_time", "command_time", "phase", "episode"),
           "sim2real.LoopCycle"),
    Stream("/state", ("positions", "velocities"), "sim2real.JointReading"),
    Stream("/observation", ("observation",), "sim2real.Observation"),
    Stream("/action", ("action",), "sim2real.Action"),
    Stream("/command", ("policy_command", "command"), "sim2real.Command"),
    Stream("/interventions", ("interventions",), "sim2real.Interventions"),
    Stream("/timings", ("lateness_us", "missed", *STAGE_FIELDS), "sim2real.StageTimes")]
"""The log's channels: which of a cycle's fields each carries (docs/telemetry.md)."""


CAMERA_STREAM = Stream("/camera", ("frame_age_us",), "sim2real.CameraFrame")
"""A log with a camera (a pixel policy's, a tracker's) also carries the age of its newest frame,
each cycle."""


def _open_telemetry(log: Path, policy: Policy, robot: Robot, safety: SafetyConfig,
                    camera: CameraFeed | ObjectTracker | None) -> TelemetryWriter:
    spec, contract = robot.spec, policy.contract
    header = {"robot": spec.name, "joint_names": list(spec.joint_names),
              "actuator_names": list(spec.actuator_names),
              "position_low": list(spec.position_low), "position_high": list(spec.position_high),
              "command_low": list(spec.command_low), "command_high": list(spec.command_high),
              "control_period": spec.control_period, "policy": str(policy.path),
              "contract": json.loads(contract.to_json()), "safety": asdict(safety),
              "interventions": list(INTERVENTIONS), "phases": list(PHASES),
              "model": str(model_path(spec)), "urdf": str(urdf_path(spec)),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    n, a = spec.num_joints, spec.num_actuators
    stats = getattr(robot, "stats", None)
    return TelemetryWriter(log, header, [
        ("time", 1), ("state_time", 1), ("command_time", 1), ("lateness_us", 1),
        ("missed", 1), ("phase", 1), ("episode", 1), ("positions", n), ("velocities", n),
        ("observation", contract.observation_size), ("action", contract.action_size),
        ("policy_command", a), ("command", a), ("interventions", 1),
        *((name, 1) for name in STAGE_FIELDS),
        *((("frame_age_us", 1),) if camera is not None else ())],
        TELEMETRY_STREAMS + ([CAMERA_STREAM] if camera is not None else []),
        joint_state=("positions", "velocities"),
        link=None if stats is None else stats.summary)


class _Loop:
    """One run's moving parts; `cycle` is one control cycle, top to bottom."""

    def __init__(self, policy: Policy, robot: Robot, task: Task, safety: SafetyConfig,
                 telemetry: TelemetryWriter | None, stops: StopSignals, seed: int,
                 home_after_miss: bool, max_episodes: int | None,
                 say: Callable[[str], object] | None, pixels: CameraFeed | None,
                 tracker: ObjectTracker | None) -> None:
        self.policy, self.robot, self.task, self.safety = policy, robot, task, safety
        self.telemetry, self.stops, self.say = telemetry, stops, say
        self.pixels, self.tracker = pixels, tracker
        self.camera = pixels or tracker
        """The camera the run depends on, either way: its frames' age is checked and logged."""
        self.frame_age = 0.0
        spec = robot.spec
        period = spec.control_period
        self.report = DeployReport(target_rate_hz=1.0 / period)
        watchdog_limit = safety.watchdog_period(period, robot.round_trip)
        first = self._first_reading(watchdog_limit)
        # A command acts a period after its reading, and the reading is a round trip old.
        self.supervisor = Supervisor(spec, safety, first, delay=period + robot.round_trip)
        self.last_sent = self.supervisor.start_command
        if tracker is not None:
            first.objects = tracker.objects()
        self.episodes = Episodes(task, spec, np.random.default_rng(seed), home_after_miss,
                                 max_episodes, hold=self.last_sent, ready=task.ready(first))
        self.times = StageTimes(STAGES)
        start = time.perf_counter()
        self.schedule = Schedule(period, start)
        self.watchdog = Watchdog(watchdog_limit, first, start)
        self.fault: RobotFault | None = None

    def _first_reading(self, limit: float) -> RobotState:
        """The robot's state before anything moves, read as every later one is: a read that
        fails is tried again, for the watchdog's limit, before the run gives up."""
        end = time.perf_counter() + limit
        while True:
            try:
                self.robot.request_ahead(time.perf_counter() + self.robot.spec.control_period)
                return self.robot.read_state()
            except RobotFault:
                raise
            except (TimeoutError, OSError) as error:
                self.report.read_failures += 1
                if time.perf_counter() >= end:
                    raise ConnectionError(
                        f"no reading from the robot within the watchdog's {limit * 1e3:.0f} ms "
                        f"of starting ({self.report.read_failures} reads failed, the last: "
                        f"{error}); nothing was moved. Check the link (cable, latency, noise: "
                        "`sim2real deploy --json` reports its counters)") from None

    def cycle(self, seconds: float) -> bool:
        """One control cycle; False when the run ends (its time is up, or it stopped)."""
        # -- wait for the tick (a slow link asks for the reading ahead) -------------------------
        self.robot.request_ahead(self.schedule.deadline)
        sleep_until(self.schedule.deadline)
        cycle_start = time.perf_counter()
        elapsed, late = self.schedule.begin(cycle_start)
        if elapsed >= seconds:
            return False
        if reason := self.stops.requested():
            self._stop(reason, elapsed, self.safety.stop_hold_seconds)
            return False
        # -- read the state ---------------------------------------------------------------------
        fresh = self._read(elapsed)
        t_read = time.perf_counter()
        state = self.watchdog.see(fresh, t_read)
        if self.tracker is not None:
            state.objects = self.tracker.objects()
        # -- check it: a fault, a robot that stopped answering; the episode (its end, between) --
        if self._halts(t_read, elapsed):
            return False
        waiting = self.episodes.wait_start is not None
        self.episodes.pause(state, cycle_start)
        step, t_observe = None, t_read
        if self.episodes.running:
            step = self.episodes.observe(state, cycle_start, self.last_sent)
            if not self._goes_on(step, elapsed):
                return False
            t_observe = time.perf_counter()
        if waiting != (self.episodes.wait_start is not None):
            self._engage_event(waiting, elapsed)
        # -- run the policy ---------------------------------------------------------------------
        observation = action = wanted = None
        t_infer = t_observe
        if step is not None and step.observation is not None:
            observation = step.observation
            if self.pixels is None:
                action = self.policy(observation)
            else:
                pixels, self.frame_age = self.pixels.image()
                action = self.policy({"pixels": pixels, "state": observation})
            wanted = self.task.action_to_command(action, state, self.episodes.history.commands)
            t_infer = time.perf_counter()
        # -- supervise --------------------------------------------------------------------------
        command, mask = self.supervisor.filter(self.episodes.hold if wanted is None else wanted,
                                               state, elapsed, self.robot.command_window())
        t_supervise = time.perf_counter()
        # -- command ----------------------------------------------------------------------------
        self._write(command, elapsed)
        t_write = time.perf_counter()
        # -- log: counts, stage times, the next deadline, telemetry ------------------------------
        self.report.clamped_commands += mask != 0
        self.report.cycles += 1
        timings = (t_read - cycle_start, t_observe - t_read, t_infer - t_observe,
                   t_supervise - t_infer, t_write - t_supervise)
        self.times.add(timings, t_supervise - t_read if wanted is not None else None)
        missed = self.schedule.advance(time.perf_counter())
        if self.telemetry:
            self._log(elapsed, late, missed, state, (observation, action, wanted), mask, timings)
        return True

    def _read(self, elapsed: float) -> RobotState | None:
        try:
            return self.robot.read_state()
        except RobotFault as fault:
            self.fault = fault
            if self.telemetry:
                self.telemetry.event(elapsed, "robot_fault", fault=fault.reason, error=str(fault))
            return None
        except (TimeoutError, OSError) as error:
            self.report.read_failures += 1
            if self.telemetry:
                self.telemetry.event(elapsed, "read_failure", error=str(error))
            return None

    def _halts(self, now: float, elapsed: float) -> bool:
        """A safe stop for a fault the robot reported (at once, with no hold time: a faulted
        servo is released), when no fresh state came for the watchdog's limit, or when the
        supervisor escalated a fault of the policy's (`Supervisor.escalation`)."""
        if self.fault is not None:
            self._stop(self.fault.reason, elapsed)
            return True
        # The next chance of a fresh state: the next cycle's read, about one cycle-to-cycle
        # interval from this one's (a period in real time, less when the clock is not waited on).
        starts = self.schedule.starts
        next_read = now + (starts[-1] - starts[-2] if len(starts) > 1 else self.schedule.period)
        if (waited := self.watchdog.waited(now, next_read)) is not None:
            self._stop(self.watchdog.reason(waited), elapsed, 0.0, waited)
            return True
        # A camera that stopped delivering: the policy would act on a scene that has moved on.
        if self.camera is not None:
            self.frame_age = self.camera.age()
            if (reason := self.camera.stale(self.frame_age, next_read - now)) is not None:
                self._stop(reason, elapsed, self.safety.stop_hold_seconds, self.frame_age)
                return True
        # A fault of the policy's that the supervisor escalated at the last cycle (whose
        # command it had made safe): hold, then release, as for an e-stop.
        if (reason := self.supervisor.escalation) is not None:
            self._stop(reason, elapsed, self.safety.stop_hold_seconds)
            return True
        return False

    def _goes_on(self, step: EpisodeStep, elapsed: float) -> bool:
        """Log an episode's end; False if the run ends with it."""
        if step.ended is not None and self.telemetry:
            success, steps = step.ended
            self.telemetry.event(elapsed, "episode_end", success=success, steps=steps)
        return not step.done

    def _engage_event(self, was_waiting: bool, elapsed: float) -> None:
        """A wait for the task to be ready ended, or began (the first one is also said)."""
        if was_waiting:
            if self.telemetry:
                self.telemetry.event(elapsed, "engaged", waited=round(self.episodes.last_wait, 3))
            return
        hint = self.task.ready_hint()
        if self.telemetry:
            self.telemetry.event(elapsed, "engage_wait", waits_for=hint)
        if self.say is not None and self.episodes.waits == 1:
            holding = "the servos hold still" if self.episodes.servo else "the motor gets 0 V"
            self.say(f"waiting to start an episode: {hint} ({holding} until then)")

    def _write(self, command: np.ndarray, elapsed: float) -> None:
        try:
            self.last_sent = self.robot.send_command(command)
        except (TimeoutError, OSError) as error:
            # A link that fails on the way out fails on the way in too: the watchdog stops.
            self.report.write_failures += 1
            if self.telemetry:
                self.telemetry.event(elapsed, "write_failure", error=str(error))

    def _log(self, elapsed: float, late: float, missed: bool, state: RobotState,
             policy_io: tuple[Any, Any, Any], mask: int, timings: tuple[float, ...]) -> None:
        observation, action, wanted = policy_io
        self.telemetry.cycle(elapsed, {
            "time": elapsed, "state_time": state.time,
            "command_time": state.command_time, "lateness_us": late * 1e6,
            "missed": float(missed), "phase": PHASES.index(self.episodes.phase or "policy"),
            "episode": self.episodes.count,
            "positions": state.positions, "velocities": state.velocities,
            **({"observation": observation, "action": action, "policy_command": wanted}
               if wanted is not None else {}),
            "command": self.last_sent, "interventions": mask,
            **{f"{stage}_us": spent * 1e6 for stage, spent in zip(STAGES, timings, strict=True)},
            **({"frame_age_us": self.frame_age * 1e6} if self.camera is not None else {})})

    def _stop(self, reason: str, elapsed: float, hold_seconds: float = 0.0,
              waited: float | None = None) -> None:
        """A safe stop: why, in the report and the log; then hold the robot where it is (servos
        at their measured pose, motors at 0 V) for `hold_seconds`. The caller releases it."""
        self.report.stopped = reason
        if waited is not None:
            self.report.stopped_after_s = waited
        hold = self.supervisor.hold_command(self.watchdog.state)
        if self.telemetry:
            self.telemetry.event(elapsed, "safe_stop", reason=reason, hold=hold)
        hold_still(self.robot, hold, hold_seconds, self.robot.spec.control_period)

    def finish(self) -> DeployReport:
        """The report of the whole run: counts, rates, percentiles; the last telemetry event."""
        report, episodes = self.report, self.episodes
        report.seconds = time.perf_counter() - self.schedule.start
        report.loop_rate_hz = report.cycles / report.seconds if report.seconds > 0 else 0.0
        report.deadline_misses = self.schedule.misses
        report.episodes, report.successes = episodes.count, episodes.successes
        report.homings, report.episode_seconds = episodes.homings, episodes.seconds
        report.engage_waits = episodes.waits
        report.engage_seconds = episodes.engage_seconds(time.perf_counter())
        report.success_rate = report.successes / report.episodes if report.episodes else 0.0
        report.interventions = dict(self.supervisor.counts)
        report.compute_p50_us, report.compute_p99_us = self.times.compute_us()
        report.jitter_p99_us = self.schedule.jitter_p99_us()
        report.stage_p50_us, report.stage_p99_us = self.times.stage_us(50), self.times.stage_us(99)
        stats = getattr(self.robot, "stats", None)
        if stats is not None:
            report.link = stats.summary()
        if self.camera is not None:
            report.camera = self.camera.summary()
        if self.telemetry:
            self.telemetry.event(report.seconds, "report", report=report.summary())
        return report
