"""A pixel policy's camera on the robot (deploy/camera_feed.py) and the loop's use of it: frames
made the contract's image, a camera that cannot meet the contract refused, the frame age logged
and reported, and a camera that stops delivering ending the run in a safe stop within the
contract's frame age."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from deploy.camera_feed import CameraFeed, CameraNeeds, crop_to_aspect, fit_image
from deploy.contract import METADATA_KEY, Contract, ContractError
from deploy.log_summary import summarize
from deploy.loop import run
from deploy.onnx_policy import OnnxPolicy
from deploy.telemetry import read_log
from sim.reach import ReachTask
from sim.so_arm import SO_ARM

IMAGE = (48, 48, 3)
NEEDS = CameraNeeds(48, 48, min_frame_rate=25.0, max_frame_age=0.1)


def still_policy(path: Path, task=None, env_id: str = "sim2real/ArmReach-v0",
                 camera: dict | None = None) -> Path:
    """An ONNX policy file with a real contract (of `task` on the arm, default reach) and a
    still graph: its actions are 0 x the observation's first numbers (the arm holds); with
    `camera` (a contract's camera section) a pixel policy whose image is an input it takes."""
    task = task or ReachTask(SO_ARM)
    image = camera["image"] if camera else None
    contract = Contract(robot=SO_ARM.summary(), task=task.contract(),
                        observation_size=task.observation_size, action_size=task.action_size,
                        env_id=env_id, algorithm="ppo", steps=0, image_shape=image, camera=camera)
    inputs = [helper.make_tensor_value_info("obs", TensorProto.FLOAT,
                                            ["batch", task.observation_size])]
    if camera:
        inputs.insert(0, helper.make_tensor_value_info("pixels", TensorProto.UINT8,
                                                       ["batch", *image]))
    output = helper.make_tensor_value_info("actions", TensorProto.FLOAT,
                                           ["batch", task.action_size])
    constants = [numpy_helper.from_array(np.arange(task.action_size, dtype=np.int64), "first"),
                 numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    nodes = [helper.make_node("Gather", ["obs", "first"], ["some"], axis=1),
             helper.make_node("Mul", ["some", "zero"], ["actions"])]
    model = helper.make_model(helper.make_graph(nodes, "still", inputs, [output], constants),
                              opset_imports=[helper.make_opsetid("", 17)])
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, contract.to_json()
    onnx.save(model, str(path))
    return path


def pixel_policy(path: Path, max_frame_age: float = 0.1) -> Path:
    """A still reach pixel policy (`still_policy`) taking IMAGE from the workspace camera."""
    camera = {"name": "workspace", "image": list(IMAGE), "crop": "center",
              "position": [0.5, -0.45, 0.4], "quaternion": [1.0, 0.0, 0.0, 0.0],
              "fovy_degrees": 45.0, "randomized": {}, "min_frame_rate": 25.0,
              "max_frame_age_s": max_frame_age}
    return still_policy(path, camera=camera)


class Frames:
    """A camera on its own thread as the loop sees one (FrameSource): `rate` frames/s of
    `shape`, until `stop_after` s from its start, after which its newest frame only ages."""

    def __init__(self, shape=(240, 320, 3), rate: float = 30.0,
                 stop_after: float | None = None) -> None:
        self.url, self.shape, self.rate, self.stop_after = "test://frames", shape, rate, stop_after
        self.start = time.monotonic()
        self.frame = np.zeros(shape, np.uint8)

    def _elapsed(self) -> float:
        elapsed = time.monotonic() - self.start
        return elapsed if self.stop_after is None else min(elapsed, self.stop_after)

    @property
    def frames(self) -> int:
        return int(self._elapsed() * self.rate) + 1

    def newest(self) -> tuple[np.ndarray, float]:
        arrived = self.start + (self.frames - 1) / self.rate
        return self.frame, time.monotonic() - arrived


def test_a_frame_is_cropped_at_its_centre_to_the_images_aspect_then_resized() -> None:
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[:, :40] = 255  # the sides a square image does not see
    frame[:, 280:] = 255
    frame[100:140, 140:180] = 100  # the middle sixth
    assert crop_to_aspect(frame, 48, 48).shape == (240, 240, 3)
    image = fit_image(frame, 48, 48)
    assert image.shape == (48, 48, 3) and image.dtype == np.uint8
    assert image[:, [0, -1]].max() == 0  # the cut sides are gone
    assert image[20:28, 20:28].min() == 100 and image[:, :16].max() == 0
    tall = np.zeros((320, 240, 3), np.uint8)
    assert crop_to_aspect(tall, 48, 48).shape == (240, 240, 3)
    assert crop_to_aspect(frame, 30, 80).shape == (120, 320, 3)  # wider than the frame
    exact = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
    assert np.array_equal(fit_image(exact, 48, 48), exact)
    # Area resizing: a uniform patch keeps its level exactly.
    assert np.all(fit_image(np.full((240, 240, 3), 77, np.uint8), 48, 48) == 77)


def test_the_contract_says_what_a_camera_must_give(tmp_path: Path) -> None:
    policy = OnnxPolicy(pixel_policy(tmp_path / "pixels.onnx", max_frame_age=0.08))
    assert CameraNeeds.of(policy.contract) == CameraNeeds(48, 48, 25.0, 0.08)
    no_camera = dataclasses.replace(policy.contract, camera=None)
    with pytest.raises(ContractError, match="exported before cameras were recorded.*export"):
        CameraNeeds.of(no_camera)
    state_only = dataclasses.replace(policy.contract, image_shape=None, camera=None)
    with pytest.raises(ContractError, match="takes no camera images: deploy it without --camera"):
        CameraNeeds.of(state_only)
    # Round trip: the camera travels in the contract's JSON; a state contract has no camera key.
    assert Contract.from_json(policy.contract.to_json()).camera == policy.contract.camera
    assert "camera" not in state_only.to_json()


def test_a_camera_that_cannot_meet_the_contract_is_refused_naming_what_differs() -> None:
    feed = CameraFeed(Frames(), NEEDS)
    feed.check(seconds=0.15)
    assert feed.frame_size == (320, 240) and 25 <= feed.frame_rate <= 40
    with pytest.raises(ContractError, match=r"frames are 40x30, whose centre .* \(30x30\) is "
                                            r"smaller than the 48x48 image.*larger resolution"):
        CameraFeed(Frames(shape=(30, 40, 3)), NEEDS).check(seconds=0.15)
    with pytest.raises(ContractError, match=r"test://frames.*gave 1\d\.\d frames/s over 0.3 s, "
                                            r"the policy needs at least 25"):
        CameraFeed(Frames(rate=15.0), NEEDS).check(seconds=0.3)
    with pytest.raises(ContractError, match=r"shape \(240, 320\), not colour"):
        CameraFeed(Frames(shape=(240, 320)), NEEDS).check(seconds=0.05)


def test_a_frame_is_stale_when_it_would_pass_the_contracts_age_before_the_next_read() -> None:
    feed = CameraFeed(Frames(), NEEDS)
    assert feed.stale(0.05, 0.02) is None
    assert feed.stale(0.08, 0.02) is None  # exactly at the limit at the next read: still usable
    reason = feed.stale(0.085, 0.02)
    assert reason == ("camera: its newest frame is 85 ms old and the policy takes frames up to "
                      "100 ms old (test://frames)")


def test_a_pixel_policy_is_not_moved_without_its_camera_nor_a_state_policy_with_one(
        tmp_path: Path, tiny_policy: Path) -> None:
    from hardware.sim_robot import SimRobot

    with SimRobot(SO_ARM, realtime=False) as robot:
        with pytest.raises(ContractError, match=r"sees camera images \[48, 48, 3\]: give it the "
                                                r"robot's camera .*--camera /dev/video0"):
            run(OnnxPolicy(pixel_policy(tmp_path / "p.onnx")), robot, seconds=1.0)
        with pytest.raises(ContractError, match="state only, no camera images: deploy it "
                                                "without --camera"):
            run(OnnxPolicy(tiny_policy), robot, seconds=1.0, camera=CameraFeed(Frames(), NEEDS))
        assert robot.sim.data.time == 0.0  # refused before a single step


@pytest.mark.slow  # real time
@pytest.mark.parametrize("hangs_after", [None, 0.6])
def test_the_loop_feeds_frames_logs_their_age_and_stops_when_the_camera_stops(
        tmp_path: Path, hangs_after: float | None) -> None:
    """Real time: the simulated arm, a camera of 30 frames/s that delivers throughout or hangs
    after 0.6 s; 1.2 s of deploy."""
    from hardware.sim_robot import SimRobot

    policy = OnnxPolicy(pixel_policy(tmp_path / "p.onnx"))
    camera = CameraFeed(Frames(stop_after=hangs_after), NEEDS)
    log = tmp_path / "run.mcap"
    with SimRobot(SO_ARM) as robot:
        report = run(policy, robot, seconds=1.2, log=log, camera=camera)
    telemetry = read_log(log)
    ages = telemetry.fields["frame_age_us"][:, 0] / 1e6
    summary = report.summary()["camera"]
    assert summary["frames_used"] == len(camera.ages) > 10
    p50, p99 = summarize(telemetry)["frame_age_ms_p50/p99"].split(" / ")  # `sim2real log`
    assert float(p50) <= float(p99) == pytest.approx(np.percentile(ages, 99) * 1e3, abs=0.1)
    if hangs_after is None:
        assert summary["frame_age_p99_ms"] <= 1e3 / 30 + 5  # 30 frames/s: at most a frame old
        assert report.stopped == "" and report.cycles >= 55
        assert ages.max() <= 1 / 30 + 0.005
        return
    # It stops at the last cycle before the newest frame would pass 100 ms: within the limit.
    assert report.stopped.startswith("camera: its newest frame is ")
    assert 0.1 - 0.02 - 0.005 < report.stopped_after_s <= 0.1
    assert hangs_after * 50 - 2 <= report.cycles <= (hangs_after + 0.1) * 50 + 2
    assert ages[-1] <= 0.1 and ages.max() <= 0.1 and summary["frame_age_p99_ms"] <= 100
    assert telemetry.event("safe_stop")["reason"] == report.stopped
