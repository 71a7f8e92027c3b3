"""Deploying an exported policy on a robot: check its contract, open the robot backend the
`--robot` URL names, run the control loop. What `sim2real deploy` and the demo call."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from deploy.camera_calibration import CameraCalibration
from deploy.camera_feed import CameraFeed, CameraNeeds
from deploy.loop import DeployReport, run
from deploy.marker_tracker import MarkerTracker, ObjectTracker, markers_of, trained_position_age
from deploy.onnx_policy import OnnxPolicy
from deploy.stop_signals import StopSignals
from deploy.supervisor import SafetyConfig
from hardware.backends import RobotURL, episode_starts, open_robot
from hardware.settings import read_settings
from sim.catalog import robot_by_name
from sim.words import counted


def tell_stderr(line: str) -> None:
    """A line for the person at the robot, on stderr: stdout carries the report."""
    print(f"sim2real deploy: {line}", file=sys.stderr, flush=True)


def deploy_on_robot(policy_path: Path, robot_url: str, seconds: float,
                    max_episodes: int | None = None, seed: int = 0, safety: Path | None = None,
                    log: Path | None = None, estop_file: Path | None = None,
                    estop_key: bool = False, realtime_priority: int | None = None,
                    cpu: int | None = None, calibration: Path | None = None,
                    say: Callable[[str], object] | None = tell_stderr,
                    camera_url: str | None = None,
                    camera_calibration: Path | None = None) -> DeployReport:
    """Run the ONNX policy at `policy_path` on the robot `robot_url` names for `seconds` (or
    `max_episodes`); refuses before anything moves when the robot is not the one the policy's
    contract names. `calibration`: a servo bus's calibration file (feetech:). `say`: where the
    loop tells the person at the robot what it waits for, e.g. a pendulum to hold up (default:
    a line on stderr; None: nowhere). `camera_url`: a pixel policy's camera (a V4L2 device such
    as /dev/video0, or a stream's URL), opened and measured against the contract first; with
    `camera_calibration` (`sim2real calibrate-camera`'s file), the camera a tracker locates the
    task's objects in (push's block) for a state policy instead."""
    if not 0 < seconds < math.inf:  # NaN too: it would never end
        raise ValueError(f"--seconds must be a finite number of seconds > 0, got {seconds}; "
                         "e.g. --seconds 30 (--episodes N stops sooner)")
    if max_episodes is not None and max_episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {max_episodes}; leave it out to run "
                         "for --seconds")
    policy = OnnxPolicy(policy_path)
    safety_config = SafetyConfig.from_dict(read_settings(safety)) if safety else SafetyConfig()
    url = replace(RobotURL.parse(robot_url), calibration=calibration)
    contract = policy.contract
    name = url.robot_name
    if name is None:
        if contract.robot is None:
            raise ValueError(f"{policy_path} was trained on {contract.env_id!r}, which is not a "
                             "robot of ours; there is nothing to deploy it to")
        name = contract.robot["name"]
    spec = robot_by_name(name)
    contract.check(spec)  # refuse before connecting: no motion on a mismatch
    if camera_calibration is not None and camera_url is None:
        raise ValueError("--camera-calibration is for the camera a tracker reads: give it with "
                         "--camera URL")
    objects = contract.task.get("objects") or []
    if camera_url is not None and camera_calibration is None and contract.image_shape is None \
            and objects:
        raise ValueError(f"{policy_path} takes no camera images; its task tracks the "
                         f"{', '.join(objects)} through a camera: give that camera's calibration "
                         "too (--camera-calibration FILE, from sim2real calibrate-camera)")
    tracked = (MarkerTracker(CameraCalibration.load(camera_calibration), markers_of(contract))
               if camera_calibration is not None else None)
    needs = CameraNeeds.of(contract) if camera_url is not None and tracked is None else None
    stops = StopSignals(estop_file, estop_key)  # an engaged e-stop refuses before connecting
    with ExitStack() as opened:
        camera = tracker = None
        if camera_url is not None:
            from hardware.camera import CameraStream

            stream = opened.enter_context(CameraStream(camera_url))
            if tracked is not None:
                tracker = ObjectTracker(stream, tracked, trained_position_age(contract))
            else:
                camera = CameraFeed(stream, needs)
            # A camera that cannot do its job: refused before the robot connects.
            (tracker or camera).check()
        robot = open_robot(url, spec, episode_starts(contract.task["name"],
                                                     contract.task["config"], spec, seed))
        with robot, stops:
            return run(policy, robot, seconds=seconds, max_episodes=max_episodes, seed=seed,
                       safety=safety_config, log=log, stops=stops,
                       realtime_priority=realtime_priority, cpu=cpu, say=say, camera=camera,
                       tracker=tracker)


def default_log_path(policy_path: Path) -> Path:
    """Where a deploy's telemetry goes unless told: beside the policy, named by the local time."""
    return policy_path.parent / f"deploy-{time.strftime('%Y%m%d-%H%M%S')}.mcap"


def report_line(report: DeployReport) -> str:
    """The deploy's report in one line, as `sim2real deploy` prints it."""
    summary = report.summary()
    interventions = ", ".join(f"{kind} {count}" for kind, count in
                              summary["interventions"].items() if count) or "none"
    return (f"deploy: {counted(summary['episodes'], 'episode')}, success rate "
            f"{summary['success_rate']:.2f}, loop {summary['loop_rate_hz']:.1f} Hz (target "
            f"{summary['target_rate_hz']:.0f}), {counted(summary['deadline_misses'], 'deadline miss')}"
            f" in {counted(summary['cycles'], 'cycle')}, "
            f"jitter p99 {summary['jitter_p99_us']:.0f} us, compute p50 "
            f"{summary['compute_p50_us']:.0f} us / p99 {summary['compute_p99_us']:.0f} us, "
            f"supervisor interventions: {interventions}, {counted(summary['homings'], 'homing')}"
            + (f", {counted(summary['engage_waits'], 'engage wait')} "
               f"({summary['engage_seconds']:.1f} s)"
               if summary["engage_waits"] else "")
            + f"; {summary['realtime']}"
            + (f"; log {summary['log']}" if summary["log"] else "")
            + (f"; link: {_link_line(summary['link'])}" if summary["link"] else "")
            + (f"; camera: {_camera_line(summary['camera'])}" if "camera" in summary else "")
            + (f"; stopped early: {summary['stopped']}" if summary["stopped"] else ""))


def timing_advice(report: DeployReport) -> str:
    """What to do when the loop ran late with normal scheduling (a busy computer: a training
    run beside it, a browser): one line, empty when the loop kept time or ran real-time."""
    if "SCHED_FIFO" in report.realtime or report.cycles == 0:
        return ""
    period_us = 1e6 / report.target_rate_hz
    late = [f"{report.deadline_misses} deadline misses"] if report.deadline_misses else []
    if report.jitter_p99_us > 0.1 * period_us:
        late.append(f"jitter p99 {report.jitter_p99_us / 1e3:.1f} ms of a "
                    f"{period_us / 1e3:.0f} ms period")
    link = report.link
    lossy = link and (link["crc_errors"] or link["dropped_frames"])
    if report.read_failures and not report.stopped.startswith("watchdog") and not lossy:
        # (Before a watchdog stop the reads failed because the robot stopped answering; on a
        # link that loses frames, because their answers were lost.)
        late.append(f"{report.read_failures} reads timed out")
    if not late:
        return ""
    return (f"the loop ran late ({', '.join(late)}) under normal scheduling: on a busy computer "
            "run deploy with --rt-priority 50 --cpu 1 (SCHED_FIFO: as root, or give python "
            "CAP_SYS_NICE with `sudo setcap cap_sys_nice+ep $(readlink -f $(which python3))`)")


def after_report(report: DeployReport) -> tuple[list[str], int]:
    """What `sim2real deploy` says on stderr after its report line (timing advice, why it
    stopped), and its exit code: 3 when the run ended in a safe stop nobody asked for (the
    robot stopped answering or faulted; the supervisor escalated a policy's fault: nothing
    but NaN, or bang-bang at the rate limit; a camera stopped delivering), else 0 (an e-stop
    and Ctrl-C are asked for)."""
    advice = timing_advice(report)
    lines = ([f"advice: {advice}"] if advice else []) + (
        [f"stopped: {report.stopped}"] if report.stopped else [])
    faults = ("watchdog", "servo fault", "supervisor", "camera")
    return lines, 3 if report.stopped.startswith(faults) else 0


def _camera_line(camera: dict) -> str:
    line = (f"{camera['url']}, {camera['frame_size']} at {camera['frame_rate_hz']} frames/s, "
            f"{camera['frames_used']} frames used, frame age p50 {camera['frame_age_p50_ms']} ms "
            f"/ p99 {camera['frame_age_p99_ms']} ms")
    if "objects_seen" in camera:  # a tracker's
        seen = ", ".join(f"{name} in {count}" for name, count in camera["objects_seen"].items())
        trained = camera.get("trained_age_ms")
        line += (f"; seen: {seen} frames, position age p50 {camera['sighting_age_p50_ms']} ms / "
                 f"p99 {camera['sighting_age_p99_ms']} ms (trained with "
                 + (f"up to {trained:g} ms)" if trained else "fresh positions only)"))
    return line


def _link_line(link: dict) -> str:
    faults = ", ".join(f"{k} {v}" for k, v in link["faults"].items()) or "none"
    return (f"{link['frames_sent']} frames sent, {link['frames_received']} received, "
            f"{link['crc_errors']} CRC errors, {link['timeouts']} timeouts, "
            f"{link['dropped_frames']} dropped, {link['late_frames']} late, faults: {faults}, "
            f"{link['reconnects']} reconnects"
            + (f", round trip {timing['round_trip_ms']} ms at connect, reads {timing['reads']}"
               f" (at the tick it would allow {timing['max_rate_hz_reading_at_the_tick']} Hz)"
               if (timing := link.get("timing")) else "")
            + (f", reads at the tick p50 {link['round_trip_p50_us']} us / p99 "
               f"{link['round_trip_p99_us']} us" if link["round_trip_p50_us"] else ""))
