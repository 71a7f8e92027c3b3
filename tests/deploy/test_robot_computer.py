"""deploy/ and the Robot interface must run with numpy, onnxruntime and pyserial alone: the
robot's computer has no torch, no MuJoCo and no gymnasium."""

import subprocess
import sys

CODE = """
import sys
import numpy as np
from deploy.loop import run
from deploy.onnx_policy import OnnxPolicy
from hardware.robot import Robot
from sim.catalog import robot_by_name
from sim.spec import RobotState

class FakeArm(Robot):
    def __init__(self):
        self.spec = robot_by_name('so_arm')
        self.positions = np.zeros(6)
        self.writes = 0
        self.time = 0.0
    def connect(self): pass
    def disconnect(self): pass
    def read_state(self):
        self.time += 0.001  # the device's clock: each reading is a fresh one
        return RobotState(self.positions.copy(), np.zeros(6), self.time)
    def _write_command(self, command):
        self.positions = command.copy()  # a perfect servo
        self.writes += 1

from deploy.log_summary import summarize
from deploy.telemetry import read_log

policy = OnnxPolicy(sys.argv[1])
with FakeArm() as arm:
    report = run(policy, arm, seconds=0.3, log=sys.argv[2])
assert summarize(read_log(sys.argv[2]))["cycles"] == report.cycles
assert sum(report.interventions.values()) > 0  # the supervisor ran: the soft start at least
print(report.cycles, arm.writes)
"""


def test_deploy_runs_without_torch_mujoco_or_gymnasium(tiny_policy, tmp_path,
                                                       robot_computer) -> None:
    out = subprocess.run([sys.executable, "-c", robot_computer + CODE, str(tiny_policy),
                          str(tmp_path / "run.mcap")], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    cycles, writes = map(int, out.stdout.split())
    assert cycles >= 10 and writes == cycles
