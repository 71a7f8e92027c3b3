"""Deploy equals evaluation (issue "Transfer that holds", item 1): for each of our tasks, the
success rate of `sim2real deploy --robot sim` equals that of `sim2real eval` within seed noise.

One policy a task, trained and exported by a session fixture (tests/conftest.py; push's and
swing-up's trained once and kept in tests/data). Its evaluation
(`evaluate_policy` on the ONNX file, as `sim2real eval` runs it) and its deploy (`sim2real
deploy --robot sim --json` in a subprocess, in real time as a user runs it) play EPISODES and
DEPLOY_EPISODES seeded episodes. The four deploys run at once, so the test takes about as long
as the longest (push: 6 s a miss, the arm walking home after every episode and waiting for its
block when it lies off the task's area), plus training; on 2 cores each loop must still keep its
rate. The pendulum's deploys run their episodes in that time because the simulated robot's hand
(hardware/emulation.py `Hand`) puts the pendulum back at a new start after each fall, as a
person at the rig would; the arm's table hand (`TableHand`) puts the block back when the push
deploy waits for it. The two pendulum tasks are also deployed from rest over our own wire, each
to `sim2real emulate furuta --pose ... --catch 0.5` in its own process (the hardware-in-the-loop
path: the emulated rig's hand holds the pendulum until the first voltage and puts it back after
a fall), one after the other after the four (WIRED_EPISODES each), and must agree with
evaluation too. The device behind
those wires is the reference firmware (its C core, built here: `--firmware`), as on the rig a
person builds; tests/hardware/test_hil.py drives the Python device the same way.

A pixel reach policy deploys in a last round, as a robot computer deploys one: from a venv with
the `deploy` extra alone, over the wire to `sim2real emulate so_arm --camera-port 0` and through
the emulator's camera (its scene rendered, served as MJPEG, read back by OpenCV), and must agree
with its evaluation as well. Beside it, the push policy from the same venv over the wire to
`emulate so_arm --scene push`, its block located by the marker tracker in that emulator's camera
(calibrated by `calibrate-camera` from the venv), as on a bench with a webcam.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from emulators import TRACKER_CAMERA, Emulator

ROOT = Path(__file__).resolve().parents[1]
EPISODES = 30
"""Episodes a task, in evaluation and in the deploy alike. Few for a test of rates: it tells 1.0
from about 0.7 and 0.5 from about 0.15 or 0.85 (`tolerance`), no finer; but each deployed
pendulum episode takes 5 s of real time."""
EVAL_SEED = 0
DEPLOY_SEED = 1_000
"""Evaluation plays episode i from seed EVAL_SEED + i (gymnasium's reset(seed): one generator
seeded with it); the deploy draws its goals from default_rng(DEPLOY_SEED), which is the same
generator, and its starts from a second stream of that seed (hardware.backends.episode_starts).
A deploy seed among evaluation's would replay that episode's draws: outside them, the two draw
independently, each reproducibly."""
BETWEEN_SECONDS = 3.0
"""Real time a deploy may need between two episodes, on top of the episode: a servo arm settles
(at most 1 s) and walks home after a miss; the pendulum waits 0.5 s for the hand. Only the
deploy's time limit is made of it: a deploy must end by its episode count, not its time."""
RIG_POSES = {"balance": ("0", "0.05"), "swingup": ("0", "3.14159")}
"""Where the emulated rig's hand holds the pendulum (arm, pendulum rad): held up near upright to
balance, hanging at rest to swing up; deployed over the wire from rest, as item 2 of the issue
asks, next to the simulated robot's deploy."""
RIG_CATCH_SECONDS = 0.5
DEPLOY_EPISODES = 20
"""Episodes of each deploy, on the simulated robot and over the wire: real time is the test's
cost (the push deploy's 30 took about 180 s of the suite's 25 minutes), so fewer than
evaluation's. Against evaluation's 30/30 a deploy of 15/20 still agrees, 14/20 does not."""
WIRED_EPISODES = 10
"""Episodes of each pendulum deploy over the firmware: one after the other, in the time the two
took at once with 20 each. Against evaluation's 30/30, 7/10 still agrees and 6/10 does not."""
TRACKED_PUSH_EPISODES = 10
"""The push deploy through the camera's tracker: half the others' (each push takes up to 6 s of
real time, and this round would take 2 minutes for 20). Against evaluation's 26/30, 4/10 still
agrees and 3/10 does not: it tells a tracker that leaves the policy working from one that breaks
it, no finer."""
MIN_RATE = 0.95
"""Of the target control rate: four real-time loops (and whatever else runs) on 2 cores."""


@dataclass(frozen=True)
class Case:
    env_id: str
    policy: str
    """The session fixture that trains and exports the policy."""
    min_success: float | None
    """Evaluation's success rate the trained policy must reach: agreement between two policies
    that never succeed shows nothing. None: agreement only."""


CASES = {
    "reach": Case("sim2real/ArmReach-v0", "reach_policy", 0.9),
    # Push's policy is the whole tuned budget for a camera's block (kept in tests/data; 0.88
    # over 100 episodes): the suite's tenth of it (0.3-0.45) pushed in bursts at the rate limit,
    # and the supervisor stopped one deploy of it as bang-bang.
    "push": Case("sim2real/ArmPush-v0", "tracked_push_policy", 0.75),
    "balance": Case("sim2real/FurutaBalance-v0", "balance_policy", 0.9),
    "swingup": Case("sim2real/FurutaSwingup-v0", "swingup_policy", 0.8),
    "pixels": Case("sim2real/ArmReach-v0", "pixel_reach_policy", 0.8),
}
CAMERA_CASES = ("pixels",)
"""Deployed over the wire with the emulator's camera only (the simulated robot has none)."""


@dataclass(frozen=True)
class Job:
    policy: Path
    robot: str
    options: tuple[str, ...] = ()
    python: str = sys.executable
    """The deploy's interpreter: a robot computer's venv for some."""
    episodes: int = DEPLOY_EPISODES


def tolerance(successes: tuple[int, int], episodes: tuple[int, int]) -> float:
    """How far apart two success rates of the same policy may be by seed noise alone: three
    standard errors of their difference, from the two samples pooled (binomial; a false alarm
    about 1 in 370 a task). The pooled rate counts one success and one failure more (as Agresti
    and Caffo's interval does): at 30/30 against 30/30 the plain estimate's spread vanishes, yet
    one odd episode in 30 would still be noise, not a difference. With 30 episodes each, 30/30
    agrees with 22/30 and more, 15/30 with 5/30 to 25/30."""
    n1, n2 = episodes
    p = (sum(successes) + 1) / (n1 + n2 + 2)
    return 3.0 * math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))


def test_the_tolerance_is_seed_noise() -> None:
    def agree(a: int, b: int) -> bool:
        return abs(a - b) / 30 <= tolerance((a, b), (30, 30))

    assert agree(30, 29) and agree(30, 22) and not agree(30, 21)
    assert agree(15, 5) and agree(15, 25) and not agree(15, 4)
    assert agree(0, 1) and agree(0, 8) and not agree(0, 9)
    # A deploy's DEPLOY_EPISODES against evaluation's 30.
    assert abs(1 - 15 / 20) <= tolerance((30, 15), (30, 20)) < abs(1 - 14 / 20)
    # A pendulum's WIRED_EPISODES over the firmware against evaluation's 30.
    assert abs(1 - 7 / 10) <= tolerance((30, 7), (30, 10)) < abs(1 - 6 / 10)
    # The push through the tracker's TRACKED_PUSH_EPISODES against evaluation's 26/30.
    assert abs(26 / 30 - 4 / 10) <= tolerance((26, 4), (30, 10)) < abs(26 / 30 - 3 / 10)


def deploy_seconds(env_id: str, episodes: int) -> float:
    """The deploy's time limit: every episode at full length, with what comes between."""
    from sim.catalog import make_task, robot_by_name
    from sim.registration import OUR_ENVS

    entry = OUR_ENVS[env_id]
    robot = robot_by_name(entry["robot"])
    task = make_task(entry["task"], robot, entry.get("task_config"))
    return episodes * (task.max_steps * robot.control_period + BETWEEN_SECONDS) + 10.0


def cpu_busy() -> tuple[float, float]:
    """All CPUs' busy and total time so far (s, /proc/stat): what the machine did, this test's
    processes and everyone else's."""
    fields = [float(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / tick, sum(fields) / tick


@dataclass
class Deployed:
    report: dict
    wall_seconds: float
    cpu_seconds: float
    """User + system time of the deploy process."""


def deploy_all(jobs: dict[str, Job], out: Path) -> dict[str, Deployed]:
    """`sim2real deploy POLICY --robot ROBOT --json --episodes EPISODES` for each job, all at
    once, each in its own process, as a user runs it (its telemetry log included)."""
    started, running, deployed = time.perf_counter(), {}, {}
    for name, job in jobs.items():
        case = CASES[name.split(" ")[0]]
        command = [job.python, "-m", "sim2real.cli", "deploy", str(job.policy), "--robot",
                   job.robot, *job.options, "--seconds",
                   str(deploy_seconds(case.env_id, job.episodes)), "--episodes", str(job.episodes),
                   "--seed", str(DEPLOY_SEED), "--log", str(out / f"{name}.mcap"), "--json"]
        with (out / f"{name}.out").open("w") as stdout, (out / f"{name}.err").open("w") as stderr:
            running[name] = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=ROOT)
    try:
        while running:
            time.sleep(0.2)
            for name, process in list(running.items()):
                # wait4 rather than wait: the child's own CPU time comes with its exit status.
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid == 0:
                    continue
                del running[name]
                process.returncode = os.waitstatus_to_exitcode(status)
                stdout = (out / f"{name}.out").read_text()
                assert process.returncode == 0, (f"{name}: deploy exited {process.returncode}:\n"
                                                 f"{stdout}{(out / f'{name}.err').read_text()}")
                last_json = [line for line in stdout.splitlines() if line.startswith("{")][-1]
                deployed[name] = Deployed(json.loads(last_json), time.perf_counter() - started,
                                          usage.ru_utime + usage.ru_stime)
    finally:
        for process in running.values():  # a deploy failed: the others end with the test
            process.kill()
            process.wait()
    return deployed


@pytest.mark.slow
def test_deploy_on_the_simulated_robot_succeeds_as_often_as_evaluation(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from evaluation.episodes import evaluate_policy
    from hardware.backends import SIM_CATCH_SECONDS, SIM_TIDY_SECONDS

    policies = {name: request.getfixturevalue(case.policy) for name, case in CASES.items()}
    firmware = request.getfixturevalue("furuta_firmware")
    # Evaluation first: in this process, it would take CPU from the real-time loops.
    evaluated = {name: evaluate_policy(policy, None, EPISODES, EVAL_SEED)
                 for name, policy in policies.items()}
    jobs = {name: Job(policy, "sim") for name, policy in policies.items()
            if name not in CAMERA_CASES}
    before = cpu_busy()
    deployed = deploy_all(jobs, tmp_path)
    # The pendulum from rest over our own wire: the emulated rig's hand holds it at the pose
    # until the first voltage and puts it back there after each fall. Rounds of their own, one
    # deploy each: with the four above, eight real-time processes shared the 2 cores (a read took
    # 18 ms; the watchdog stopped a deploy); the two at once, with their two emulators, still
    # saturated them on a busy day (a swing-up's watchdog stopped it in a CI run).
    wired = {}
    for name, pose in RIG_POSES.items():
        with Emulator("furuta", "--firmware", str(firmware), "--pose", *pose, "--catch",
                      str(RIG_CATCH_SECONDS)) as rig:
            wired[f"{name} over the firmware"] = Job(policies[name], f"serial:{rig.port}",
                                                     episodes=WIRED_EPISODES)
            deployed.update(deploy_all({f"{name} over the firmware":
                                        wired[f"{name} over the firmware"]}, tmp_path))
    # The pixel policy from a robot computer's venv, over the wire and the camera, a round of
    # its own (about 10 s): beside the pendulum's 250 Hz loops, the camera's rendering and the
    # CNN saturated the 2 cores and a pendulum deploy's watchdog stopped it.
    # Push from the same venv, over the wire, its block tracked by its marker in the emulator's
    # camera (calibrated from the robot computer by `calibrate-camera`, tests/conftest.py).
    robot_computer = request.getfixturevalue("robot_computer_venv") / "bin" / "python"
    calibration = request.getfixturevalue("camera_calibration")
    with (Emulator("so_arm", "--camera-port", "0") as arm,
          Emulator("so_arm", "--scene", "push", "--camera-port", "0", *TRACKER_CAMERA) as table):
        seen = {"pixels over the camera": Job(policies["pixels"], f"serial:{arm.port}",
                                              ("--camera", arm.camera), str(robot_computer)),
                "push tracked by the camera": Job(
                    policies["push"], f"serial:{table.port}",
                    ("--camera", table.camera, "--camera-calibration", str(calibration)),
                    str(robot_computer), TRACKED_PUSH_EPISODES)}
        deployed.update(deploy_all(seen, tmp_path))
    rounds = (list(jobs), *([name] for name in wired), list(seen))
    jobs.update(wired)
    jobs.update(seen)
    busy, total = (after - then for after, then in zip(cpu_busy(), before, strict=True))
    wall = sum(max(deployed[name].wall_seconds for name in round_) for round_ in rounds)

    lines = [f"deploys in four rounds: {wall:.0f} s wall, "
             f"{sum(d.cpu_seconds for d in deployed.values()):.0f} s CPU; the machine's "
             f"{os.cpu_count()} CPUs {busy / total:.0%} busy (all processes)"]
    problems = []
    for name in jobs:
        case, evaluation, result = CASES[name.split(" ")[0]], evaluated[name.split(" ")[0]], deployed[name]
        report = result.report
        p_eval, p_deploy = evaluation["success_rate"], report["success_rate"]
        n_eval, n_deploy = evaluation["episodes"], report["episodes"]
        allowed = tolerance((round(p_eval * n_eval), report["successes"]), (n_eval, n_deploy))
        lines.append(
            f"{name}: eval {p_eval:.2f} of {n_eval}, deploy {p_deploy:.2f} of {n_deploy} "
            f"(|diff| {abs(p_deploy - p_eval):.2f}, allowed {allowed:.2f}); deploy "
            f"{result.wall_seconds:.0f} s, loop {report['loop_rate_hz']:.1f} of "
            f"{report['target_rate_hz']:.0f} Hz, {report['deadline_misses']} misses, jitter p99 "
            f"{report['jitter_p99_us']:.0f} us, CPU {result.cpu_seconds / result.wall_seconds:.0%}"
            f" of a core, {report['engage_waits']} engage waits ({report['engage_seconds']:.1f} s),"
            f" {report['homings']} homings")
        if n_deploy != jobs[name].episodes or report["stopped"]:
            problems.append(f"{name}: the deploy ran {n_deploy} of {jobs[name].episodes} episodes in "
                            f"{report['seconds']:.0f} s (stopped: {report['stopped'] or 'no'})")
        if report["loop_rate_hz"] < MIN_RATE * report["target_rate_hz"]:
            problems.append(f"{name}: the loop ran at {report['loop_rate_hz']:.1f} Hz, below "
                            f"{MIN_RATE:.0%} of {report['target_rate_hz']:.0f} Hz")
        # A hand makes each wait end: the pendulum's after `catch` s at 0 V, the table's after
        # SIM_TIDY_SECONDS of holding still (the push's block off its area; the emulated
        # table's hand waits as long).
        catch = (RIG_CATCH_SECONDS if " over the " in name else
                 SIM_TIDY_SECONDS if name.startswith("push") else SIM_CATCH_SECONDS)
        if report["engage_waits"] and report["engage_seconds"] > report["engage_waits"] * (
                catch + 0.25):
            problems.append(f"{name}: {report['engage_waits']} waits for the task to be ready "
                            f"took {report['engage_seconds']:.1f} s: the hand did not make it so")
        if abs(p_deploy - p_eval) > allowed:
            problems.append(f"{name}: deploy success {p_deploy:.2f} differs from evaluation's "
                            f"{p_eval:.2f} by more than seed noise ({allowed:.2f})")
        if case.min_success is not None and p_eval < case.min_success:
            problems.append(f"{name}: the trained policy succeeds in {p_eval:.2f} of evaluation's "
                            f"episodes, below {case.min_success}")
    print("\n".join(lines))
    assert not problems, "\n".join(problems + lines + [f"logs: {tmp_path}"])
