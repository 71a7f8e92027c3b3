"""Shared fixtures: a tiny PPO run and its exported policy, and a trained policy for each of our
tasks, made once per test session."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "egl")
warnings.filterwarnings("ignore", category=DeprecationWarning)

REACH = "sim2real/ArmReach-v0"
PUSH = "sim2real/ArmPush-v0"
BALANCE = "sim2real/FurutaBalance-v0"
# Steps of the trained policies below, with the settings of policies/hyperparams/*.yaml (which
# say what chose them): PPO, and for push SAC with hindsight replay, a tenth of its tuned budget
# (its learning test, tests/policies/test_learning.py, and the deploy test share it).
PUSH_STEPS = 120_000
BALANCE_STEPS = 200_000
ROBOT_COMPUTER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mujoco', 'torch', 'gymnasium', 'gymnasium_robotics', 'onnx',
                                  'matplotlib', 'yaml'):
            raise ImportError('blocked on the robot computer: ' + name)
sys.meta_path.insert(0, Block())
"""
"""Python code that makes this process a robot computer: what it lacks fails to import."""


@pytest.fixture(scope="session")
def robot_computer() -> str:
    """Code to run first in a `python -c` that must run as on the robot's computer."""
    return ROBOT_COMPUTER


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two PPO iterations on the randomized reach env: enough to export, not to succeed."""
    from sim2real.runs import train_run

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train_run(REACH, "ppo", 512, 0, out, "default", progress=False,
              overrides={"num_envs": 4, "rollout_steps": 64, "epochs": 1, "hidden_sizes": (32, 32)})
    return out


@pytest.fixture(scope="session")
def tiny_policy(tiny_run: Path) -> Path:
    from deploy.export import export

    return export(tiny_run, check_count=200).path


@pytest.fixture(scope="session")
def robot_computer_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment as the robot's computer has it: this project installed without its
    dependencies, then only the `deploy` extra's numpy, onnxruntime, pyserial, foxglove-sdk and
    OpenCV (pinned)."""
    import subprocess
    import sys

    root = Path(__file__).parents[1]
    venv = tmp_path_factory.mktemp("robot_computer") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "--no-deps", str(root)], check=True, cwd=root, timeout=600)
    subprocess.run([*pip, "-c", str(root / "constraints.txt"), "numpy", "onnxruntime", "pyserial",
                    "foxglove-sdk", "opencv-python-headless"],
                   check=True, timeout=600)
    return venv


def trained_policy(tmp_path_factory: pytest.TempPathFactory, env_id: str, steps: int,
                   best: bool = False, algo: str = "ppo", overrides: dict | None = None) -> Path:
    """`algo` on `env_id` for `steps` steps (tuned settings, then `overrides`, `default`
    randomization, seed 0), exported to ONNX (`best`: its best evaluated checkpoint, as
    `export --best`)."""
    from deploy.export import export
    from sim2real.runs import train_run

    out = tmp_path_factory.mktemp("runs") / env_id.split("/")[-1]
    train_run(env_id, algo, steps, 0, out, "default", progress=False, overrides=overrides)
    return export(out, which="best" if best else "checkpoint").path


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[bool, Path]:
    """The demo's whole path, once per session (`run_demo`: PPO on reach, 250k steps, `default`
    randomization, seed 3, exported, deployed 50 episodes on the simulated arm): whether it met
    its target and its output folder. tests/test_demo.py measures it; the tests that need a
    trained reach policy take its policy (`reach_policy`) rather than train a second one."""
    from sim2real.demo import run_demo

    out = tmp_path_factory.mktemp("demo") / "demo"
    return run_demo(out, episodes=50, seed=3), out


@pytest.fixture(scope="session")
def reach_policy(demo_run: tuple[bool, Path]) -> Path:
    """The demo's reach policy (above)."""
    return demo_run[1] / "policy.onnx"


@pytest.fixture(scope="session")
def push_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SAC with hindsight replay, tuned settings, PUSH_STEPS steps (about 150 s on 2 cores), no
    evaluations on the way."""
    return trained_policy(tmp_path_factory, PUSH, PUSH_STEPS, algo="sac",
                          overrides={"eval_every": 0})


@pytest.fixture(scope="session")
def tracked_push_policy() -> Path:
    """A push policy for a camera's block (SAC, tuned settings, 1,100,000 steps, the `tracked`
    randomization: `default` and the tracker's frame period and delay, seed 0; `sim2real eval`
    0.88 over 100 episodes), trained once (33 min) as `sim2real train --env
    sim2real/ArmPush-v0 --algo sac --steps 1100000` and exported, and kept in tests/data: the
    deploy tests need a policy that pushes as a user's does, the suite can train a tenth of it
    (`push_policy`, the learning test's)."""
    return Path(__file__).parent / "data" / "push.onnx"


@pytest.fixture(scope="session")
def balance_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return trained_policy(tmp_path_factory, BALANCE, BALANCE_STEPS)


@pytest.fixture(scope="session")
def swingup_policy() -> Path:
    """A swing-up policy (PPO, tuned settings, 1,000,000 steps, `default` randomization, seed
    0, its best evaluated checkpoint: evaluation success 1.0 over 30 episodes), trained and
    exported once as `sim2real train --env sim2real/FurutaSwingup-v0 --steps 1000000` then
    `sim2real export RUN_DIR --best`, and kept in tests/data: its training took 110-165 s of the
    suite's 25 minutes, for tests of deploying and of system identification, not of learning
    (the balance and the other tasks' policies are trained in the suite)."""
    return Path(__file__).parent / "data" / "swingup.onnx"


@pytest.fixture(scope="session")
def pixel_reach_policy() -> Path:
    """A pixel reach policy (PPO, the arm's 48x48 camera image beside its state, the `camera`
    preset, tuned settings, 150k steps, seed 0: evaluation success 1.0 over 30 episodes),
    trained and exported once with `sim2real train --env sim2real/ArmReach-v0 --pixels 48
    --randomization camera --steps 150000` and kept in tests/data: its 6 minutes of training
    do not fit in the suite's budget."""
    return Path(__file__).parent / "data" / "reach_pixels48.onnx"


@pytest.fixture(scope="session")
def camera_calibration(robot_computer_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sim2real calibrate-camera` run from the robot computer's venv against the emulator's
    calibration table (`emulate so_arm --scene calibration`, its camera as TRACKER_CAMERA), as a
    person calibrates a bench's camera: the file a tracker deploys with."""
    import json
    import subprocess

    from emulators import TRACKER_CAMERA, Emulator

    out = tmp_path_factory.mktemp("camera") / "camera.json"
    with Emulator("so_arm", "--scene", "calibration", "--camera-port", "0",
                  *TRACKER_CAMERA) as table:
        done = subprocess.run(
            [str(robot_computer_venv / "bin" / "python"), "-m", "sim2real.cli", "calibrate-camera",
             "--camera", table.camera, "--out", str(out), "--json", "--timeout", "120"],
            capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stdout + done.stderr
    written = json.loads(done.stdout.strip().splitlines()[-1])
    assert written == json.loads(out.read_text())
    return out


@pytest.fixture(scope="session")
def furuta_firmware(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The reference firmware built for the Furuta pendulum on this computer (cc): the shared
    library `sim2real emulate furuta --firmware` loads."""
    from hardware.firmware import build_host_firmware
    from sim.furuta import FURUTA

    return build_host_firmware(FURUTA, tmp_path_factory.mktemp("firmware"))
