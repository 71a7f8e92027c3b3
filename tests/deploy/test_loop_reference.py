"""The loop's behaviour pinned down: a seeded SimRobot deploy on a fake clock, its report and
telemetry (times stripped) compared with tests/deploy/data/loop_reference.json, which the loop
before its refactor into named pieces wrote. Regenerate only for an intended change:

    S2R_WRITE_LOOP_REFERENCE=1 .venv/bin/python -m pytest tests/deploy/test_loop_reference.py
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import deploy.loop
from deploy.loop import run
from deploy.onnx_policy import OnnxPolicy
from deploy.stop_signals import StopSignals
from deploy.supervisor import SafetyConfig
from deploy.telemetry import read_log
from hardware.sim_robot import SimRobot
from sim.so_arm import SO_ARM

REFERENCE = Path(__file__).parent / "data" / "loop_reference.json"
# Wall-clock dependent: dropped from the comparison.
REPORT_TIMES = {"seconds", "loop_rate_hz", "compute_p50_us", "compute_p99_us", "jitter_p99_us",
                "stage_p50_us", "stage_p99_us", "episode_seconds", "stopped_after_s", "log"}
FIELD_TIMES = {"time", "lateness_us", "read_us", "observe_us", "infer_us", "supervise_us",
               "write_us"}
INTEGER_FIELDS = ("missed", "phase", "episode", "interventions")
# The header's time, paths and file format (the reference predates the MCAP log): not the loop's.
HEADER_OF_THE_FILE = {"started", "policy", "contract", "format", "model", "urdf"}
SAMPLE_EVERY = 40  # float fields: column sums over all cycles, full rows of every 40th cycle


class FakeClock:
    """time.perf_counter and time.sleep for the whole process, and the loop's sleep_until: time
    moves only when the loop waits, so every cycle lasts exactly one period (plus a constant
    1 us of wake-up lateness) whatever the machine's load, and the run is the same every time."""

    def __init__(self) -> None:
        self.now = 1000.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def sleep_until(self, deadline: float) -> None:
        if self.now < deadline:
            self.now = deadline + 1e-6


def fixed_policy(tiny_policy: Path, out: Path) -> Path:
    """The tiny exported policy's contract on a graph of seeded weights (tanh(obs W + b)): an
    exported policy that does not change when training does."""
    source = onnx.load(str(tiny_policy))
    contract = json.loads(OnnxPolicy(tiny_policy).contract.to_json())
    n, a = contract["observation_size"], contract["action_size"]
    rng = np.random.default_rng(7)
    weights = numpy_helper.from_array(rng.normal(0, 0.5, (n, a)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.normal(0, 0.2, a).astype(np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["obs", "W"], ["z"]), helper.make_node("Add", ["z", "b"], ["y"]),
         helper.make_node("Tanh", ["y"], ["actions"])], "fixed",
        [helper.make_tensor_value_info("obs", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor_value_info("actions", TensorProto.FLOAT, ["batch", a])],
        [weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = source.ir_version
    for entry in source.metadata_props:
        model.metadata_props.add(key=entry.key, value=entry.value)
    onnx.checker.check_model(model)
    path = out / "fixed.onnx"
    onnx.save(model, str(path))
    return path


class StoppingSimRobot(SimRobot):
    """A lockstep SimRobot that counts what it is sent and pulls `stops` at command `stop_at`."""

    def __init__(self, stops: StopSignals | None = None, stop_at: int = 0) -> None:
        super().__init__(SO_ARM, realtime=False)
        self.stops, self.stop_at, self.sent = stops, stop_at, 0
        self.last_sent: list[float] = []

    def _write_command(self, command: np.ndarray) -> None:
        super()._write_command(command)
        self.sent += 1
        self.last_sent = command.tolist()
        if self.stops is not None and self.sent == self.stop_at:
            self.stops.trigger("reference stop")


def _nan_to_none(values: np.ndarray) -> list:
    return [None if np.isnan(v) else float(v) for v in values]


def record(report: deploy.loop.DeployReport, log: Path, robot: StoppingSimRobot) -> dict:
    """What a run did, without its times."""
    logged = read_log(log)
    header = {k: v for k, v in logged.header.items() if k not in HEADER_OF_THE_FILE}
    fields = {name: column for name, column in logged.fields.items() if name not in FIELD_TIMES}
    floats = {name: column for name, column in fields.items() if name not in INTEGER_FIELDS}
    return {
        "report": {k: v for k, v in dataclasses.asdict(report).items() if k not in REPORT_TIMES},
        "header": header,
        "cycles": logged.cycles,
        "integer_fields": {name: fields[name][:, 0].astype(int).tolist() for name in INTEGER_FIELDS},
        "float_sums": {name: _nan_to_none(np.sum(column, axis=0)) for name, column in floats.items()},
        "float_samples": {name: [_nan_to_none(row) for row in column[::SAMPLE_EVERY]]
                          for name, column in floats.items()},
        "events": [{k: v for k, v in event.items() if k != "seconds"}
                   | ({"report": {k: v for k, v in event["report"].items() if k not in REPORT_TIMES}}
                      if "report" in event else {})
                   for event in logged.events],
        "robot": {"sent": robot.sent, "last_sent": robot.last_sent},
    }


def reference_runs(policy: OnnxPolicy, tmp_path: Path) -> dict:
    # Three missed episodes (settle, walk home, settle) to the end; then a stop mid-episode
    # (the safe stop's hold, then release).
    runs = {}
    with StoppingSimRobot() as robot:
        report = run(policy, robot, seconds=1e9, max_episodes=3, seed=3,
                     log=tmp_path / "episodes.mcap")
        runs["episodes"] = record(report, tmp_path / "episodes.mcap", robot)
    stops = StopSignals()
    with StoppingSimRobot(stops, stop_at=130) as robot:
        report = run(policy, robot, seconds=1e9, max_episodes=5, seed=4, stops=stops,
                     safety=SafetyConfig(stop_hold_seconds=0.11), log=tmp_path / "stop.mcap")
        runs["stop"] = record(report, tmp_path / "stop.mcap", robot)
    return runs


def assert_same(fresh: object, reference: object, where: str = "") -> None:
    if isinstance(reference, dict):
        assert isinstance(fresh, dict) and fresh.keys() == reference.keys(), where
        for key in reference:
            assert_same(fresh[key], reference[key], f"{where}.{key}")
    elif isinstance(reference, list):
        assert isinstance(fresh, list) and len(fresh) == len(reference), where
        for i, (a, b) in enumerate(zip(fresh, reference, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(reference, float) and not isinstance(fresh, bool):
        assert fresh == pytest.approx(reference, rel=1e-6, abs=1e-9), where
    else:
        assert fresh == reference, where


def test_a_seeded_sim_deploy_matches_the_reference(tiny_policy, tmp_path, monkeypatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(time, "perf_counter", clock.perf_counter)
    monkeypatch.setattr(time, "sleep", clock.sleep)
    monkeypatch.setattr(deploy.loop, "sleep_until", clock.sleep_until)
    policy = OnnxPolicy(fixed_policy(tiny_policy, tmp_path))
    fresh = json.loads(json.dumps(reference_runs(policy, tmp_path)))
    monkeypatch.undo()
    if os.environ.get("S2R_WRITE_LOOP_REFERENCE"):
        REFERENCE.parent.mkdir(exist_ok=True)
        REFERENCE.write_text(json.dumps(fresh, indent=1) + "\n")
    # The runs cover what the loop does: episodes, settling, homing, a safe stop.
    episodes, stop = fresh["episodes"], fresh["stop"]
    assert episodes["report"]["episodes"] == 3 and episodes["report"]["homings"] >= 1
    assert {0, 1, 2} <= set(episodes["integer_fields"]["phase"])
    assert stop["report"]["stopped"] == "reference stop"
    assert stop["robot"]["sent"] > stop["cycles"]  # the hold commands after the last cycle
    assert_same(fresh, json.loads(REFERENCE.read_text()))
