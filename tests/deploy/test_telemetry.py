"""The telemetry log, MCAP: what goes in comes out, every stream is a channel with a valid
schema, a crash (kill -9 of a deploy) loses at most about the last second, logs of the earlier
format still read with the same figures, and `sim2real log show` summarizes and plots a real
run's log."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from telemetry_formats import legacy_copy

import deploy.loop
from deploy.log_summary import show_log
from deploy.loop import run
from deploy.onnx_policy import OnnxPolicy
from deploy.telemetry import FORMAT, Stream, TelemetryWriter, read_log
from hardware.sim_robot import SimRobot
from sim.so_arm import SO_ARM

STREAMS = [Stream("/t", ("time", "positions"), "test.Row")]


def test_cycles_and_events_read_back_as_written(tmp_path) -> None:
    path = tmp_path / "t.mcap"
    rows = np.random.default_rng(0).normal(size=(50, 4))
    with TelemetryWriter(path, {"robot": "test", "joint_names": ["a", "b", "c"]},
                         [("time", 1), ("positions", 3)], STREAMS) as log:
        for i, row in enumerate(rows):
            log.cycle(i * 0.01, {"time": row[0], "positions": row[1:]})
            if i == 20:
                log.event(i * 0.01, "estop", reason="test")
        log.cycle(0.6, {"time": 1.0})  # missing fields are NaN
    back = read_log(path)
    assert back.header["robot"] == "test" and not back.truncated
    assert np.array_equal(back.fields["time"][:50, 0], rows[:, 0])  # float64, exactly
    assert np.array_equal(back.fields["positions"][:50], rows[:, 1:])
    assert np.isnan(back.fields["positions"][50]).all()
    assert back.events == [{"cycle": 21, "seconds": 0.2, "event": "estop", "reason": "test"}]


def real_run(tiny_policy, log, monkeypatch, episodes: int = 2):
    monkeypatch.setattr(deploy.loop, "sleep_until", lambda deadline: None)  # lockstep, fast
    with SimRobot(SO_ARM, realtime=False) as robot:
        return run(OnnxPolicy(tiny_policy), robot, seconds=1e9, max_episodes=episodes, log=log)


def test_a_deploys_mcap_opens_with_the_mcap_reader_every_stream_and_schema(
        tiny_policy, tmp_path, monkeypatch) -> None:
    from jsonschema import Draft202012Validator
    from mcap.reader import make_reader

    log = tmp_path / "run.mcap"
    report = real_run(tiny_policy, log, monkeypatch)
    with log.open("rb") as file:
        reader = make_reader(file)
        summary = reader.get_summary()
        counts = summary.statistics.channel_message_counts
        by_topic = {channel.topic: (channel, summary.schemas[channel.schema_id])
                    for channel in summary.channels.values()}
        metadata = {record.name: record.metadata for record in reader.iter_metadata()}
        messages = list(reader.iter_messages())
    per_cycle = ["/loop", "/state", "/observation", "/action", "/command", "/interventions",
                 "/timings", "/joint_states"]
    assert set(per_cycle) <= set(by_topic) and "/events" in by_topic
    for topic in per_cycle:
        channel, _ = by_topic[topic]
        assert counts[channel.id] == report.cycles, topic
    # Every message is JSON that its channel's JSON Schema validates; log times increase.
    validators = {topic: Draft202012Validator(json.loads(schema.data))
                  for topic, (_, schema) in by_topic.items()}
    for _, schema in by_topic.values():
        Draft202012Validator.check_schema(json.loads(schema.data))
        assert schema.encoding == "jsonschema"
    times: dict[str, list[int]] = {}
    for _, channel, message in messages:
        validators[channel.topic].validate(json.loads(message.data))
        times.setdefault(channel.topic, []).append(message.log_time)
    for topic in per_cycle:
        assert np.all(np.diff(times[topic]) > 0), topic
    # Foxglove's joint states: names and positions per message.
    assert by_topic["/joint_states"][1].name == "foxglove.JointStates"
    first = json.loads(next(m for s, c, m in messages if c.topic == "/joint_states").data)
    assert [joint["name"] for joint in first["joints"]] == list(SO_ARM.joint_names)
    # The contract, the robot and its model are metadata.
    contract = json.loads(metadata["contract"]["json"])
    assert contract["robot"]["name"] == "so_arm"
    assert metadata["model"]["path"].endswith("so_arm.xml")
    assert metadata["sim2real"]["format"] == FORMAT


@pytest.mark.slow
def test_kill_9_of_a_deploy_loses_at_most_about_the_last_second(tiny_policy, tmp_path) -> None:
    log = tmp_path / "killed.mcap"
    process = subprocess.Popen([sys.executable, "-m", "sim2real.cli", "deploy", str(tiny_policy),
                                "--robot", "sim", "--seconds", "60", "--log", str(log)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not (log.exists() and log.stat().st_size > 20_000) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3.0)
    process.send_signal(signal.SIGKILL)
    killed_at = time.time_ns()
    process.wait()
    back = read_log(log)
    assert back.truncated and back.cycles > 100 and back.event("report") is None
    ran = (killed_at - back.epoch_ns) / 1e9
    lost = ran - back.fields["time"][-1, 0]
    print(f"killed after {ran:.2f} s of loop time: the log ends {lost:.2f} s before")
    assert lost <= 1.5  # a second of cycles in memory, plus the writer's turn
    assert np.all(np.diff(back.fields["time"][:, 0]) > 0)


def test_log_convert_rewrites_an_earlier_format_log_as_the_same_mcap(
        tiny_policy, tmp_path, monkeypatch) -> None:
    from mcap.reader import make_reader

    log = tmp_path / "run.mcap"
    real_run(tiny_policy, log, monkeypatch)
    original = read_log(log)
    legacy = tmp_path / "old.s2rlog"
    legacy_copy(original, legacy)
    out = subprocess.run([sys.executable, "-m", "sim2real.cli", "log", "convert", str(legacy)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    converted = tmp_path / "old.mcap"
    assert f"{original.cycles} cycles" in out.stdout
    back = read_log(converted)
    assert back.cycles == original.cycles and not back.truncated
    for name, column in original.fields.items():
        assert np.array_equal(back.fields[name], column, equal_nan=True), name
    assert back.events == original.events
    assert {k: v for k, v in back.header.items() if k != "format"} == original.header
    with converted.open("rb") as file:  # the channels a deploy writes, each message counted
        counts = make_reader(file).get_summary().statistics.channel_message_counts
    with log.open("rb") as file:
        expected = make_reader(file).get_summary().statistics.channel_message_counts
    assert sorted(counts.values()) == sorted(expected.values())
    again = subprocess.run([sys.executable, "-m", "sim2real.cli", "log", "convert", str(converted)],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "is the log itself" in again.stderr


def test_a_file_cut_short_keeps_its_whole_chunks(tmp_path) -> None:
    path = tmp_path / "cut.mcap"
    with TelemetryWriter(path, {}, [("time", 1), ("x", 2)],
                         [Stream("/t", ("time", "x"), "t")]) as log:
        for i in range(400):
            log.cycle(i * 0.01, {"time": i, "x": [i, i]})
    whole = read_log(path)
    assert whole.cycles == 400 and not whole.truncated
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    back = read_log(path)
    assert back.truncated and 0 < back.cycles < 400
    assert back.fields["time"][:, 0].tolist() == list(range(back.cycles))


def test_other_files_are_refused_with_a_clear_error(tmp_path) -> None:
    other = tmp_path / "policy.onnx"
    other.write_bytes(b"\x08\x07not a log")
    with pytest.raises(ValueError, match="not a sim2real telemetry log"):
        read_log(other)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_log(tmp_path / "missing.mcap")


@pytest.mark.slow  # an end-to-end run: the fast subset keeps under 60 s
def test_log_show_gives_the_same_figures_from_mcap_and_the_earlier_format(
        tiny_policy, tmp_path, monkeypatch) -> None:
    log = tmp_path / "run.mcap"
    report = real_run(tiny_policy, log, monkeypatch)
    legacy = tmp_path / "run.s2rlog"
    legacy_copy(read_log(log), legacy)
    now, before = show_log(log, tmp_path / "a.png"), show_log(legacy, tmp_path / "b.png")
    assert {k: v for k, v in now.items() if k != "plot"} == {
        k: v for k, v in before.items() if k != "plot"}
    assert now["cycles"] == report.cycles and now["episodes"] == report.episodes == 2
    assert now["interventions"] == report.interventions and now["complete"] is True
    from PIL import Image

    with Image.open(now["plot"]) as image:
        assert image.size[0] >= 800 and image.size[1] >= 600
        assert len(set(image.convert("L").getdata())) > 50  # lines drawn, not a blank page
