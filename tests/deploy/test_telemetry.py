"""The telemetry log: what goes in comes out, a crash loses at most the last second, and
`sim2real log show` summarizes and plots a real run's log."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import deploy.loop
from deploy.log_summary import show_log
from deploy.loop import run
from deploy.onnx_policy import OnnxPolicy
from deploy.telemetry import TelemetryWriter, read_log
from hardware.sim_robot import SimRobot
from sim.so_arm import SO_ARM


def test_cycles_and_events_read_back_as_written(tmp_path) -> None:
    path = tmp_path / "t.s2rlog"
    rows = np.random.default_rng(0).normal(size=(50, 4))
    with TelemetryWriter(path, {"robot": "test"}, [("time", 1), ("positions", 3)]) as log:
        for i, row in enumerate(rows):
            log.cycle(i * 0.01, {"time": row[0], "positions": row[1:]})
            if i == 20:
                log.event(i * 0.01, "estop", reason="test")
        log.cycle(0.6, {"time": 1.0})  # missing fields are NaN
    back = read_log(path)
    assert back.header["robot"] == "test" and not back.truncated
    assert np.array_equal(back.fields["time"][:50, 0], rows[:, 0])
    assert np.array_equal(back.fields["positions"][:50], rows[:, 1:])
    assert np.isnan(back.fields["positions"][50]).all()
    assert back.events == [{"cycle": 21, "seconds": 0.2, "event": "estop", "reason": "test"}]


CRASH = """
import os, sys
import numpy as np
from deploy.telemetry import TelemetryWriter
log = TelemetryWriter(sys.argv[1], {}, [("time", 1)])
for i in range(350):  # 3.49 s of a 100 Hz loop, then the process dies without closing
    log.cycle(i * 0.01, {"time": i * 0.01})
import time; time.sleep(0.5)  # the writer thread has had its chance to write what it was given
os._exit(1)
"""


def test_a_crash_loses_at_most_the_last_second(tmp_path) -> None:
    path = tmp_path / "crash.s2rlog"
    done = subprocess.run([sys.executable, "-c", CRASH, str(path)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    back = read_log(path)
    assert back.cycles > 0
    assert back.fields["time"][-1, 0] >= 3.49 - 1.0
    assert np.array_equal(back.fields["time"][:, 0], np.arange(back.cycles) * 0.01)


def test_a_file_cut_mid_cycle_keeps_every_whole_cycle(tmp_path) -> None:
    path = tmp_path / "cut.s2rlog"
    with TelemetryWriter(path, {}, [("time", 1), ("x", 2)]) as log:
        for i in range(10):
            log.cycle(i * 0.01, {"time": i, "x": [i, i]})
    path.write_bytes(path.read_bytes()[:-7])
    back = read_log(path)
    assert back.truncated and back.cycles == 9
    assert back.fields["time"][:, 0].tolist() == list(range(9))


def test_other_files_are_refused_with_a_clear_error(tmp_path) -> None:
    other = tmp_path / "policy.onnx"
    other.write_bytes(b"\x08\x07not a log")
    with pytest.raises(ValueError, match="not a sim2real telemetry log"):
        read_log(other)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_log(tmp_path / "missing.s2rlog")


def test_log_show_summarizes_and_plots_a_real_run(tiny_policy, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(deploy.loop, "sleep_until", lambda deadline: None)  # lockstep, fast
    log = tmp_path / "run.s2rlog"
    with SimRobot(SO_ARM, realtime=False) as robot:
        report = run(OnnxPolicy(tiny_policy), robot, seconds=1e9, max_episodes=2, log=log)
    plot = tmp_path / "joints.png"
    summary = show_log(log, plot)
    assert summary["plot"] == str(plot)
    assert summary["cycles"] == report.cycles
    assert summary["episodes"] == report.episodes == 2
    assert summary["interventions"] == report.interventions
    assert summary["complete"] is True
    from PIL import Image

    with Image.open(plot) as image:
        assert image.size[0] >= 800 and image.size[1] >= 600
        assert len(set(image.convert("L").getdata())) > 50  # lines drawn, not a blank page
