"""Hardware in the loop: the deploy loop driving the device emulator (a separate process, as a
robot's microcontroller would be) over a pty through the real serial driver, with faults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from emulators import Emulator
from mcap.reader import make_reader

from deploy.contract import Contract
from deploy.loop import run
from deploy.onnx_policy import OnnxPolicy
from deploy.supervisor import INTERVENTIONS, SafetyConfig, Supervisor
from deploy.telemetry import read_log
from hardware.serial_robot import SerialRobot
from sim.furuta import FURUTA
from sim.pendulum import PendulumTask
from sim.so_arm import SO_ARM
from sim.spec import RobotState

# Each test starts an emulator process and deploys for a second or more in real time.
pytestmark = pytest.mark.slow


def test_the_loop_keeps_running_through_corruption_and_drops(tiny_policy, tmp_path) -> None:
    log = tmp_path / "faults.mcap"
    # Faults from 0.5 s after the emulator started serving: after the handshake. About 40% of
    # the COMMAND frames are lost on this line (10% dropped, a third of the rest garbled), so
    # both watchdogs get 15 periods, not 5: the chance of that many losses in a row is 1e-6.
    with Emulator("so_arm", "--corrupt-byte-rate", "0.01", "--drop-frame-rate", "0.1",
                  "--faults", str(_rates_from(tmp_path, 0.5)), "--seed", "3",
                  "--watchdog-ms", "300") as device:
        with SerialRobot(device.port, SO_ARM) as arm:
            safety = SafetyConfig(watchdog_seconds=0.3)
            report = run(OnnxPolicy(tiny_policy), arm, seconds=4.0, safety=safety, log=log)
    assert report.stopped == "", report.stopped
    assert report.cycles >= 0.9 * 4.0 * 50
    link = report.link
    assert link["crc_errors"] > 0 and link["retries"] > 0 and link["timeouts"] > 0
    assert report.read_failures == link["timeouts"]
    # Every frame of the device's that was dropped or garbled is a gap the host counted. Not
    # to the frame: a garbled delimiter takes the intact frame after it down too, and the
    # device's last frames may go unheard after the host stops listening.
    lost = device.counters["lost_out"]
    assert abs(link["dropped_frames"] - lost) <= max(5, 0.02 * lost), (link, device.counters)
    assert device.counters["injected"]["corrupted_bytes"] > 0
    logged = read_log(log)
    commands = logged.fields["command"]
    supervisor = Supervisor(SO_ARM, safety, RobotState(np.zeros(6), np.zeros(6)))
    assert np.all(np.isfinite(commands))
    assert np.all(commands >= supervisor.soft_low - 1e-9)
    assert np.all(commands <= supervisor.soft_high + 1e-9)
    masks = logged.fields["interventions"][:, 0].astype(int)
    assert {k: int(np.sum(masks >> i & 1)) for i, k in enumerate(INTERVENTIONS)} == \
        report.interventions
    failures = [e for e in logged.events if e["event"] == "read_failure"]
    assert len(failures) == report.read_failures
    # The link's counters in the log: about once a second, never going back, the last as the
    # report's (a tool opening the file sees the line degrade as it happened).
    with log.open("rb") as file:
        link_log = [json.loads(message.data) for _, _, message
                    in make_reader(file).iter_messages(topics=["/link"])]
    assert len(link_log) >= 3
    for key in ("crc_errors", "timeouts", "dropped_frames"):
        counts = [counters[key] for counters in link_log]
        assert counts == sorted(counts) and 0 < counts[-1] <= link[key], (key, counts)


@pytest.mark.parametrize("faults", [
    ("--latency-ms", "12"),
    ("--latency-ms", "16", "--corrupt-byte-rate", "0.01", "--drop-frame-rate", "0.1")],
    ids=["12 ms", "USB adapter's 16 ms on a noisy line"])
def test_a_slow_link_holds_the_arm_at_its_rate(tiny_policy, faults) -> None:
    """The latency of a USB-serial adapter's timer at its Linux default (16 ms) used to stop the
    arm (8 ms: a watchdog stop; 12 ms: a TimeoutError out of the first read). Pipelined reads
    keep it at 50 Hz, with the default safety settings, faults from the first byte on."""
    with Emulator("so_arm", *faults, "--seed", "2") as device:
        with SerialRobot(device.port, SO_ARM) as arm:
            report = run(OnnxPolicy(tiny_policy), arm, seconds=4.0)
    assert report.stopped == "", report.stopped
    assert report.cycles >= 0.95 * 4.0 * 50 and report.deadline_misses <= 2
    assert report.link["timing"]["reads"].startswith("pipelined")
    assert report.read_failures <= 0.25 * report.cycles


class ThreeVolts:
    """A pendulum balance "policy" that always asks for 3 V: it lets the pendulum fall."""

    path = Path("three_volts.onnx")
    contract = Contract(robot=FURUTA.summary(), task=PendulumTask(FURUTA).contract(),
                        observation_size=6, action_size=1, env_id="sim2real/FurutaBalance-v0",
                        algorithm="test", steps=0)

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        return np.array([0.5], dtype=np.float32)


def test_a_pendulum_rig_engages_between_episodes() -> None:
    """`emulate furuta --pose 0 0.05 --catch 0.3`: the hand holds the pendulum up; the loop
    starts each episode once it is held, and waits at 0 V after each fall until it is again."""
    with Emulator("furuta", "--pose", "0", "0.05", "--catch", "0.3") as device:
        with SerialRobot(device.port, FURUTA) as rig:
            report = run(ThreeVolts(), rig, seconds=3.0)
    assert report.stopped == "", report.stopped
    episodes, hand = report.episodes, device.counters
    # Each fallen pendulum waits about 0.3 s to be caught: several episodes in 3 s.
    assert episodes >= 3 and report.engage_waits == episodes
    assert report.engage_seconds >= 0.3 * (episodes - 1)
    # Each episode began when the first 3 V let go; each fall ended in a catch (and the
    # pendulum let go at the end of the run may be caught before the emulator stops).
    assert hand["hand_releases"] - episodes in (0, 1)
    assert hand["hand_releases"] - hand["hand_catches"] in (0, 1)


def _rates_from(tmp_path: Path, seconds: float) -> Path:
    path = tmp_path / "faults.yaml"
    path.write_text(f"rates_from: {seconds}\n")
    return path


def test_a_disconnect_reaches_safe_stop_within_the_watchdog_period(tiny_policy, tmp_path) -> None:
    log = tmp_path / "disconnect.mcap"
    with Emulator("so_arm", "--disconnect-at", "3.0") as device:
        out = subprocess.run(
            [sys.executable, "-m", "sim2real.cli", "deploy", str(tiny_policy), "--robot",
             f"serial:{device.port}", "--seconds", "20", "--log", str(log), "--json"],
            capture_output=True, text=True, timeout=60)
    assert out.returncode == 3, out.stderr
    assert "stopped: watchdog: no fresh state from the robot" in out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    watchdog = 0.1  # SafetyConfig's default for a 50 Hz robot: max(5 periods, 50 ms)
    # Within the limit, give or take a cycle that starts late on a loaded machine (a few ms).
    assert report["stopped_after_s"] <= watchdog + 0.01
    assert report["read_failures"] >= 1
    # The log is complete up to the fault: every cycle, the safe stop and the final report.
    logged = read_log(log)
    assert not logged.truncated and logged.event("report")["report"]["cycles"] == logged.cycles
    stop = logged.event("safe_stop")
    assert stop["reason"].startswith("watchdog") and stop["cycle"] == logged.cycles
    fresh = np.flatnonzero(np.diff(logged.fields["state_time"][:, 0]) > 0)
    last_fresh = logged.fields["time"][fresh[-1] + 1, 0]
    assert stop["seconds"] - last_fresh <= watchdog + 2 * SO_ARM.control_period


def test_deploy_auto_falls_back_to_the_simulated_robot_with_a_warning(tiny_policy) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sim2real.cli", "deploy", str(tiny_policy), "--robot",
         "auto:/dev/ttyNOPE0", "--seconds", "0.5", "--no-log"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "WARNING: no sim2real device answered" in out.stderr
    assert "falling back to the SIMULATED so_arm" in out.stderr
    assert "cycles" in out.stdout


def test_deploy_auto_uses_the_device_that_answers(tiny_policy) -> None:
    with Emulator("so_arm") as device:
        out = subprocess.run(
            [sys.executable, "-m", "sim2real.cli", "deploy", str(tiny_policy), "--robot",
             f"auto:{device.port}", "--seconds", "1", "--no-log", "--json"],
            capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "WARNING" not in out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["link"]["frames_received"] >= 40 and device.counters["commands"] >= 40


def test_a_device_that_is_another_robot_refuses_through_the_cli(tiny_policy) -> None:
    with Emulator("furuta") as device:
        out = subprocess.run(
            [sys.executable, "-m", "sim2real.cli", "deploy", str(tiny_policy), "--robot",
             f"serial:{device.port}", "--seconds", "1", "--no-log"],
            capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "is not the robot 'so_arm', refusing to move" in out.stderr
    assert device.counters["commands"] == 0


@pytest.mark.parametrize("port", ["/dev/ttyNOPE0", "socket://127.0.0.1:1"])
def test_a_port_that_does_not_answer_is_a_clear_error(tiny_policy, port) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sim2real.cli", "deploy", str(tiny_policy), "--robot",
         f"serial:{port}", "--seconds", "1", "--no-log"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "cannot open serial port" in out.stderr


CLI = """
import runpy
sys.argv = ['sim2real', *sys.argv[1:]]
runpy.run_module('sim2real.cli', run_name='__main__')
"""


def test_a_serial_deploy_needs_neither_mujoco_torch_nor_yaml(tiny_policy, tmp_path,
                                                              robot_computer) -> None:
    """The robot's computer: `deploy --robot serial:` with a JSON safety file, with every
    training-side module blocked from importing."""
    safety = tmp_path / "safety.json"
    safety.write_text(json.dumps({"soft_limit_margin": 0.1}))
    with Emulator("so_arm") as device:
        out = subprocess.run(
            [sys.executable, "-c", robot_computer + CLI, "deploy", str(tiny_policy), "--robot",
             f"serial:{device.port}", "--seconds", "1", "--safety", str(safety), "--json",
             "--log", str(tmp_path / "run.mcap")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["cycles"] >= 40 and device.counters["commands"] >= 40
    yaml_safety = tmp_path / "safety.yaml"
    yaml_safety.write_text("soft_limit_margin: 0.1\n")
    out = subprocess.run([sys.executable, "-c", robot_computer + CLI, "deploy", str(tiny_policy),
                          "--safety", str(yaml_safety), "--no-log"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "pyyaml is not installed here" in out.stderr and "safety.json" in out.stderr


def test_the_robot_computers_install_deploys_over_the_serial_wire(tiny_policy, tmp_path,
                                                                   robot_computer_venv) -> None:
    """The documented robot-computer install (no torch, MuJoCo, gymnasium or pyyaml) deploys
    over the wire to an emulator started from the full install."""
    venv_python = robot_computer_venv / "bin" / "python"
    missing = subprocess.run([venv_python, "-c", "import importlib.util as u; print([m for m in "
                              "('torch', 'mujoco', 'gymnasium', 'yaml') if u.find_spec(m)])"],
                             capture_output=True, text=True, check=True)
    assert missing.stdout.strip() == "[]"
    safety = tmp_path / "safety.json"
    safety.write_text(json.dumps({"soft_limit_margin": 0.1}))
    with Emulator("so_arm") as device:
        out = subprocess.run(
            [robot_computer_venv / "bin" / "sim2real", "deploy", str(tiny_policy), "--robot",
             f"serial:{device.port}", "--seconds", "2", "--safety", str(safety), "--json",
             "--log", str(tmp_path / "run.mcap")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["cycles"] >= 90 and device.counters["commands"] >= 90
    assert report["link"]["crc_errors"] == 0 and not report["stopped"]
