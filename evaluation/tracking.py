"""How well the marker tracker (deploy/marker_tracker.py) sees what the simulation knows: the
camera a calibration found against the MuJoCo camera it measured, and the block a tracker
locates against where it is, step by step over push episodes played by a policy.

The frames are the emulator's camera's (hardware/emulated_camera.py SceneCamera: the same
renderer and scene files), JPEG-coded as its MJPEG stream codes them, read without the stream:
what is measured is the tracker, not the network. tests/deploy/test_marker_tracker.py asserts on
these figures; benchmarks/marker_tracking.py writes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy.camera_calibration import CameraCalibration

TRACKER_SIZE = (960, 720)
"""The emulated camera a tracker reads (tests/emulators.py TRACKER_CAMERA): the block's marker
needs about 3 pixels a cell from the camera's place."""
RESTING_DEGREES = 3.0
"""A block counts as resting on a face when one of its axes is this close to upright and its
centre at its resting height (within a millimetre)."""


def jpeg(frame: np.ndarray) -> np.ndarray:
    """An RGB frame as the MJPEG stream delivers it (coded at OpenCV's default quality)."""
    import cv2

    _, data = cv2.imencode(".jpg", frame[..., ::-1])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]


class RenderedFrames:
    """A camera (deploy/camera_feed.py FrameSource) that renders `data` as it is when asked, as
    the emulator's camera would, the frame's age 0. Each look at `frames` counts a frame and
    first calls `advance(count)` (a scene moved on, a person's board moved): a caller waiting
    for a new frame gets one."""

    url = "rendered://workspace"

    def __init__(self, model: Any, data: Any, size: tuple[int, int] = TRACKER_SIZE,
                 advance: Callable[[int], object] | None = None) -> None:
        from hardware.emulated_camera import SceneCamera

        self.data, self.camera, self.advance = data, SceneCamera(model, size), advance
        self.count = 0

    @property
    def frames(self) -> int:
        self.count += 1
        if self.advance is not None:
            self.advance(self.count)
        return self.count

    def newest(self) -> tuple[np.ndarray, float]:
        return jpeg(self.camera.render(self.data)), 0.0


def true_camera(model: Any, size: tuple[int, int] = TRACKER_SIZE) -> CameraCalibration:
    """The scene's camera (sim/pixels.py CAMERA) as a perfect calibration would give it, in
    OpenCV's conventions (axes x right, y down, z forward; pixel centres at whole numbers)."""
    import mujoco

    from sim.pixels import CAMERA

    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    mujoco.mj_camlight(model, data)
    index = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA)
    width, height = size
    focal = (height / 2) / np.tan(np.radians(model.cam_fovy[index]) / 2)
    matrix = np.array([[focal, 0, width / 2 - 0.5], [0, focal, height / 2 - 0.5], [0, 0, 1]])
    rotation = data.cam_xmat[index].reshape(3, 3) @ np.diag([1.0, -1.0, -1.0])
    return CameraCalibration(size, matrix, np.zeros(5), rotation, data.cam_xpos[index].copy(),
                             0.0, 0.0)


def calibration_errors(found: CameraCalibration, true: CameraCalibration) -> dict[str, float]:
    """How far a calibration is from the truth: focal lengths (relative), the image centre
    (px), the camera's position (mm) and its axes (degrees)."""
    turn = np.clip((np.trace(found.rotation.T @ true.rotation) - 1) / 2, -1.0, 1.0)
    return {"focal_error": float(np.max(np.abs(np.diag(found.camera_matrix)[:2]
                                               / np.diag(true.camera_matrix)[:2] - 1))),
            "centre_error_px": float(np.max(np.abs(found.camera_matrix[:2, 2]
                                                   - true.camera_matrix[:2, 2]))),
            "position_error_mm": float(np.linalg.norm(found.position - true.position) * 1e3),
            "rotation_error_deg": float(np.degrees(np.arccos(turn)))}


def calibrate_in_scene(seed: int = 0, size: tuple[int, int] = TRACKER_SIZE,
                       say: Callable[[str], object] = lambda line: None) -> tuple[
                           CameraCalibration, CameraCalibration]:
    """`calibrate` on the emulator's calibration table (`emulate so_arm --scene calibration`),
    its board moved a pose a frame: the calibration and the truth."""
    from deploy.camera_calibration import calibrate
    from hardware.emulate import table_scene
    from sim.catalog import robot_by_name
    from sim.physics import RobotSimulation

    table = table_scene("calibration", "so_arm", seed)
    sim = RobotSimulation(robot_by_name("so_arm"), table.scene)
    board = table.person
    frames = RenderedFrames(sim.model, sim.data, size,
                            advance=lambda count: board.tidy(sim, count * board.hold_seconds))
    return calibrate(frames, timeout=120, say=say), true_camera(sim.model, size)


@dataclass
class TrackedEpisodes:
    """A tracker's errors (mm) over push episodes, frame by frame."""

    resting: list[float] = field(default_factory=list)
    """Frames where the block was seen resting on a face (what the tracker assumes)."""
    tipping: list[float] = field(default_factory=list)
    """Frames where it was seen tipping or lifted."""
    held: list[float] = field(default_factory=list)
    """Frames where it was hidden: the last sighting's error."""
    successes: int = 0
    episodes: int = 0

    def summary(self) -> dict[str, Any]:
        def spread(errors: list[float]) -> dict[str, float | int]:
            if not errors:
                return {"frames": 0}
            values = np.asarray(errors)
            return {"frames": len(values), "p50_mm": round(float(np.median(values)), 2),
                    "p99_mm": round(float(np.percentile(values, 99)), 2),
                    "max_mm": round(float(values.max()), 2)}

        frames = len(self.resting) + len(self.tipping) + len(self.held)
        seen = len(self.resting) + len(self.tipping)
        return {"episodes": self.episodes, "successes": self.successes, "frames": frames,
                "seen_fraction": round((frames - len(self.held)) / frames, 3) if frames else 0.0,
                "resting": spread(self.resting), "tipping": spread(self.tipping),
                "hidden_held": spread(self.held),
                "seen_within_5mm": round(float(np.mean(np.asarray(self.resting + self.tipping)
                                                       < 5.0)), 3) if seen else 0.0}


def track_push_episodes(policy_path: Path, calibration: CameraCalibration, episodes: int,
                        seed: int = 0) -> TrackedEpisodes:
    """The ONNX push policy plays `episodes` push episodes (seeds seed, seed + 1, ...; the
    plain env, no randomization); at each step the tracker locates the block in the camera's
    frame of that step, and its error against the block's true centre is filed by what the
    block was doing."""
    import gymnasium as gym
    import mujoco

    import sim.registration  # noqa: F401 (registers our envs)
    from deploy.marker_tracker import MarkerTracker, ObjectTracker, markers_of
    from deploy.onnx_policy import OnnxPolicy

    policy = OnnxPolicy(policy_path)
    env = gym.make(policy.contract.env_id)
    base = env.unwrapped
    frames = RenderedFrames(base.sim.model, base.sim.data, calibration.image_size)
    tracker = ObjectTracker(frames, MarkerTracker(calibration, markers_of(policy.contract)))
    marker = next(iter(tracker.tracker.markers.values()))
    turn = np.zeros(9)
    tracked = TrackedEpisodes()
    try:
        for episode in range(episodes):
            observation, _ = env.reset(seed=seed + episode)
            done = terminated = False
            while not done:
                before = tracker.sightings[0]
                located = tracker.objects()[0]
                true = base.sim.object_positions()[0]
                error = float(np.linalg.norm(located - true) * 1e3)
                address = base.sim.object_qpos[0]  # the block's free joint: position, quaternion
                mujoco.mju_quat2Mat(turn, base.sim.data.qpos[address + 3:address + 7])
                upright = np.degrees(np.arccos(min(1.0, np.abs(turn.reshape(3, 3)[2]).max())))
                if tracker.sightings[0] == before:
                    tracked.held.append(error)
                elif upright < RESTING_DEGREES and abs(true[2] - marker.centre_height) < 1e-3:
                    tracked.resting.append(error)
                else:
                    tracked.tipping.append(error)
                observation, _, terminated, truncated, _ = env.step(policy(observation))
                done = terminated or truncated
            tracked.episodes += 1
            tracked.successes += int(terminated)
    finally:
        env.close()
    return tracked
