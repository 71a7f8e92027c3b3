"""Objects from the camera (issue "Pixel policies on the robot", item 4): the camera calibrated
from the emulated scene's printed targets recovers the MuJoCo camera's lens and pose, and the
tracker locates the push task's block through it, over push episodes, within 5 mm while it rests
on a face (evaluation/tracking.py measures; tests/test_deploy_equals_eval.py runs the whole path:
the emulator's stream, calibrate-camera and a deploy from the robot computer's venv)."""

from __future__ import annotations

import numpy as np
import pytest

from deploy.camera_calibration import CalibrationError, CameraCalibration, calibrate
from deploy.contract import ContractError
from deploy.marker_tracker import markers_of
from sim.push import BLOCK_MARKER


@pytest.fixture(scope="module")
def scene_calibration():
    """`calibrate` on the emulator's calibration table, its board moved a pose a frame: the
    calibration, the truth, and what it said."""
    from evaluation.tracking import calibrate_in_scene

    said: list[str] = []
    found, true = calibrate_in_scene(say=said.append)
    return found, true, said


@pytest.mark.slow
def test_the_calibration_recovers_the_cameras_lens_and_pose(scene_calibration) -> None:
    """Measured (seeds 0-3): focal length within 0.03 %, centre within 0.45 px, the camera
    0.7-1.0 mm from where it is, its axes within 0.09 degrees; the board's corners fitted to
    0.05 px, the sheet's to 0.22 px. (With the sheet's frames taken while the board still hid
    most of it: 4.3 mm and 0.34 degrees, 0.50 px.)"""
    from evaluation.tracking import calibration_errors

    found, true, said = scene_calibration
    errors = calibration_errors(found, true)
    assert found.image_size == true.image_size
    assert errors["focal_error"] < 0.005 and errors["centre_error_px"] < 1.5, errors
    assert errors["position_error_mm"] < 2.5 and errors["rotation_error_deg"] < 0.2, errors
    assert found.reprojection_px < 0.5 and found.sheet_px < 0.4
    assert said[0].startswith("1/2 the lens") and any(line.startswith("2/2") for line in said)


@pytest.mark.slow
def test_the_block_is_located_within_5_mm_over_push_episodes(scene_calibration,
                                                             tracked_push_policy) -> None:
    """The trained push policy plays push episodes; each step the tracker locates the block in
    the camera's frame of that step. Resting on a face, as the tracker assumes, the block is
    found within 5 mm (measured over 30 episodes: p50 0.75 mm, p99 2.3 mm, max 2.9 mm,
    benchmarks/results/marker_tracking.md); hidden by the arm, it is held where last seen. A
    tipping block (16 % of the seen frames there) is found to 3 mm at the median and 30 mm at
    p99: its faces are neither level nor upright. Of all the seen frames, 94 % within 5 mm."""
    from evaluation.tracking import track_push_episodes

    found, _, _ = scene_calibration
    tracked = track_push_episodes(tracked_push_policy, found, episodes=6)
    summary = tracked.summary()
    print(summary)
    # How often the arm hides the block, and how often the block tips, depend on how the
    # policy pushes (one policy: 96 % of 1,772 frames seen, 5 % tipping; another 80 % and
    # 16 %): floors, not figures.
    assert summary["seen_fraction"] >= 0.5, summary
    assert summary["resting"]["frames"] >= 40, summary
    assert summary["resting"]["max_mm"] < 5.0 and summary["resting"]["p50_mm"] < 2.0, summary
    assert summary["seen_within_5mm"] >= 0.85, summary


def test_a_calibration_survives_its_file_and_a_bad_file_is_named(tmp_path) -> None:
    calibration = CameraCalibration((640, 480), np.eye(3) * 500, np.zeros(5), np.eye(3),
                                    np.array([0.5, -0.4, 0.4]), 0.1, 0.3)
    path = tmp_path / "camera.json"
    calibration.save(path)
    again = CameraCalibration.load(path)
    assert again.image_size == (640, 480) and np.array_equal(again.position, calibration.position)
    assert not path.with_name("camera.json.partial").exists()
    with pytest.raises(FileNotFoundError, match="sim2real calibrate-camera"):
        CameraCalibration.load(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text('{"image_size": [640, 480]}')
    with pytest.raises(ValueError, match="not a camera calibration"):
        CameraCalibration.load(tmp_path / "other.json")


def test_a_ray_meets_the_plane_where_geometry_says() -> None:
    """A camera 1 m up looking straight down (its y axis along the base's -x): the centre pixel
    is the point below it, a pixel 100 px right is 0.2 m off at a focal length of 500 px."""
    down = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    calibration = CameraCalibration((640, 480), np.array([[500, 0, 320], [0, 500, 240], [0, 0, 1.0]]),
                                    np.zeros(5), down, np.array([0.3, 0.1, 1.0]), 0.0, 0.0)
    points = calibration.on_plane(np.array([[320.0, 240.0], [420.0, 240.0]]), 0.0)
    assert points[0] == pytest.approx([0.3, 0.1, 0.0])
    assert points[1] == pytest.approx([0.3, -0.1, 0.0])
    assert np.isnan(calibration.on_plane(np.array([[320.0, 240.0]]), 2.0)).all()  # behind it


def test_a_policy_without_objects_or_markers_is_refused_for_tracking(tiny_policy) -> None:
    from deploy.onnx_policy import OnnxPolicy

    with pytest.raises(ContractError, match="tracks no objects"):
        markers_of(OnnxPolicy(tiny_policy).contract)


def test_the_push_contract_names_the_blocks_marker() -> None:
    from sim.catalog import robot_by_name
    from sim.push import PushTask

    contract = PushTask(robot_by_name("so_arm")).contract()
    assert contract["markers"] == {"block": BLOCK_MARKER.to_json()}


def test_the_report_names_the_oldest_position_the_policy_trained_with() -> None:
    """The tracked preset: a frame every 1-4 control steps, 0-2 steps late: at worst 3 + 2
    periods of 20 ms. Trained without the object terms: fresh positions only."""
    import dataclasses

    from deploy.contract import Contract
    from deploy.marker_tracker import trained_position_age
    from randomization.config import load_config
    from sim.catalog import robot_by_name
    from sim.push import PushTask

    task = PushTask(robot_by_name("so_arm"))
    plain = Contract(robot=task.robot.summary(), task=task.contract(),
                     observation_size=task.observation_size, action_size=task.action_size,
                     env_id="sim2real/ArmPush-v0", algorithm="sac", steps=1,
                     randomization=load_config("default", "so_arm").to_dict())
    assert trained_position_age(plain) is None
    tracked = dataclasses.replace(plain, randomization=load_config("tracked", "so_arm").to_dict())
    assert trained_position_age(tracked) == pytest.approx(0.1)


def test_a_marker_off_the_sheets_fit_is_left_out() -> None:
    """The sheet's corners as the MuJoCo camera sees them, one marker's corner moved 4 px (cut by
    the edge of what hides it): the pose fitted again without that marker is the camera's."""
    import cv2

    from deploy.camera_calibration import fit_pose, fit_sheet_pose
    from evaluation.tracking import true_camera
    from sim.markers import MARKER_SHEET, SHEET_CENTRE
    from sim.physics import load_model
    from sim.spec import ASSETS

    true = true_camera(load_model(ASSETS / "so_arm_calibration.xml"))
    places = np.vstack(list(MARKER_SHEET.corners_on_table(SHEET_CENTRE, 0.0).values()))
    to_camera = true.rotation.T
    pixels, _ = cv2.projectPoints(places, cv2.Rodrigues(to_camera)[0], -to_camera @ true.position,
                                  true.camera_matrix, true.distortion)
    pixels = pixels.reshape(-1, 2)
    pixels[5] += [4.0, 0.0]  # the second marker's second corner
    plain = fit_pose(pixels, places, true.camera_matrix, true.distortion)
    rotation, position, miss = fit_sheet_pose(pixels, places, true.camera_matrix, true.distortion)
    assert np.linalg.norm(plain[1] - true.position) > 3e-4 and plain[2] > 0.5  # what it fixes
    assert np.linalg.norm(position - true.position) < 1e-5 and miss < 1e-3
    assert np.allclose(rotation, true.rotation, atol=1e-5)


def test_the_emulated_person_puts_the_board_away_after_each_round() -> None:
    """So that calibrate-camera's second step sees the whole sheet (hardware/emulation.py)."""
    from hardware.emulation import BoardHand
    from sim.catalog import robot_by_name
    from sim.physics import RobotSimulation

    sim = RobotSimulation(robot_by_name("so_arm"), "so_arm_calibration.xml")
    poses = [(np.array([0.3, 0.0, 0.3 + 0.01 * k]), np.array([1.0, 0, 0, 0])) for k in range(3)]
    hand = BoardHand(poses, hold_seconds=0.5, away_seconds=2.0)
    board = sim.model.body("checkerboard").mocapid[0]
    where = []
    for now in (0.1, 0.6, 1.2, 1.6, 3.4, 3.6):  # three poses, away, away, the first again
        hand.tidy(sim, now)
        where.append(sim.data.mocap_pos[board, 2])
    assert np.allclose(where, [0.3, 0.31, 0.32, 5.0, 5.0, 0.3])


def test_calibration_gives_up_naming_what_it_saw() -> None:
    with pytest.raises(CalibrationError, match="found the checkerboard in 0 of the 15 views"):
        calibrate(Frames(), timeout=0.2, say=lambda line: None)


class Sees:
    """A MarkerTracker stand-in: the block where `block` says, or nowhere (None)."""

    def __init__(self, block: np.ndarray | None) -> None:
        self.block, self.markers = block, {"block": BLOCK_MARKER}

    def locate(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        return {} if self.block is None else {"block": self.block.copy()}


class Frames:
    """A camera whose every look brings a new (blank) frame, 10 ms old."""

    url, count = "test://frames", 0

    @property
    def frames(self) -> int:
        self.count += 1
        return self.count

    def newest(self) -> tuple[np.ndarray, float]:
        return np.zeros((72, 96, 3), np.uint8), 0.01


def push_robot():
    from hardware.sim_robot import SimRobot
    from sim.so_arm import SO_ARM

    return SimRobot(SO_ARM, realtime=False, scene="so_arm_push.xml", objects=("block",),
                    initial_objects=np.array([[0.19, 0.0, 0.015]]))


def test_a_push_policy_is_not_moved_without_a_tracker_nor_a_reach_policy_with_one(
        tmp_path) -> None:
    from test_camera_feed import still_policy

    from deploy.loop import run
    from deploy.marker_tracker import ObjectTracker
    from deploy.onnx_policy import OnnxPolicy
    from hardware.sim_robot import SimRobot
    from sim.push import PushTask
    from sim.so_arm import SO_ARM

    push = OnnxPolicy(still_policy(tmp_path / "push.onnx", PushTask(SO_ARM), "sim2real/ArmPush-v0"))
    with SimRobot(SO_ARM, realtime=False) as robot:  # no block on its table: reports none
        with pytest.raises(ContractError, match=r"tracks the block on the table, which this robot "
                                                r"does not report: .*--camera-calibration FILE"):
            run(push, robot, seconds=1.0)
        tracker = ObjectTracker(Frames(), Sees(None))
        with pytest.raises(ContractError, match=r"\(reach\) tracks no objects"):
            run(OnnxPolicy(still_policy(tmp_path / "reach.onnx")), robot, seconds=1.0,
                tracker=tracker)
        assert robot.sim.data.time == 0.0  # refused before a single step


def test_a_tracked_task_given_a_camera_asks_for_its_calibration(tmp_path) -> None:
    from test_camera_feed import still_policy

    from deploy.on_robot import deploy_on_robot
    from sim.push import PushTask
    from sim.so_arm import SO_ARM

    policy = still_policy(tmp_path / "push.onnx", PushTask(SO_ARM), "sim2real/ArmPush-v0")
    with pytest.raises(ValueError, match=r"tracks the block through a camera: give that "
                                         r"camera's calibration too \(--camera-calibration"):
        deploy_on_robot(policy, "sim", 1.0, camera_url="/dev/video9")


@pytest.mark.parametrize("seen", [True, False])
def test_the_loop_acts_on_the_block_where_the_tracker_sees_it(tmp_path, monkeypatch,
                                                              seen: bool) -> None:
    """The simulated block lies at 19 cm; the tracker says 20 cm, 3 cm to the side: the policy's
    observation carries the tracker's. A block never seen is never ready: no episode starts."""
    from test_camera_feed import still_policy

    import deploy.loop
    from deploy.loop import run
    from deploy.marker_tracker import ObjectTracker
    from deploy.onnx_policy import OnnxPolicy
    from deploy.telemetry import read_log
    from sim.push import PushTask
    from sim.so_arm import SO_ARM

    monkeypatch.setattr(deploy.loop, "sleep_until", lambda deadline: None)  # lockstep
    task = PushTask(SO_ARM)
    policy = OnnxPolicy(still_policy(tmp_path / "push.onnx", task, "sim2real/ArmPush-v0"))
    where = np.array([0.2, 0.03, 0.015])
    tracker = ObjectTracker(Frames(), Sees(where if seen else None))
    with push_robot() as robot:
        report = run(policy, robot, seconds=0.5, log=tmp_path / "run.mcap", tracker=tracker)
    observations = read_log(tmp_path / "run.mcap").fields["observation"]
    summary = report.summary()["camera"]
    if seen:
        assert report.cycles > 10 and report.engage_waits == 0
        block = observations[:, task.slots["block_position"]]
        assert np.allclose(block[~np.isnan(block[:, 0])], where, atol=1e-6)
        assert summary["objects_seen"] == {"block": report.cycles + 1}  # and the first reading
    else:
        assert report.episodes == 0 and report.engage_waits == 1
        assert summary["objects_seen"] == {"block": 0}
    assert summary["frame_age_p50_ms"] == pytest.approx(10.0)
    assert summary["trained_age_ms"] == 0.0  # no trained age given: fresh positions only
