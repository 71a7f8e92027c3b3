"""Objects on the table located by their ArUco markers in a calibrated camera's frames: what a
state policy whose task tracks objects (push's block) reads as `RobotState.objects` on a robot.

A marker's corners are found in the newest frame (OpenCV's ArUco detector) and undistorted; the
camera's rays through them meet the heights a resting object's face has them at (its top, or a
side), and the object's centre lies a face's depth behind that face (`MarkerTracker.face_says`).
The camera's pose comes from `sim2real calibrate-camera` (deploy/camera_calibration.py); which
marker each object carries, from the policy's contract (the task's `markers`, sim/markers.py).

An object hidden in a frame (the arm passes over it) stays where it was last seen, and how old
that sighting is is kept; one never seen is NaN, which no task takes for ready. A camera that
stops delivering frames is a stale reading, as for a pixel policy: the loop stops.

Runs on the robot's computer: numpy and OpenCV (the `deploy` extra).

Example:
    >>> tracker = ObjectTracker(stream, MarkerTracker(calibration, markers_of(contract)))
    >>> tracker.check()                         # frame size and rate, or ContractError
    >>> state.objects = tracker.objects()       # (objects, 3), m, the arm's base frame
"""

from __future__ import annotations

import time

import numpy as np

from deploy.camera_calibration import CameraCalibration, aruco_detector, grey
from deploy.camera_feed import (
    RATE_SECONDS,
    FrameSource,
    camera_summary,
    measure_camera,
    percentiles_ms,
    stale_frame,
)
from deploy.contract import Contract, ContractError
from sim.markers import FiducialMarker

MIN_FRAME_RATE = 10.0
"""Frames a second a tracker's camera must give: a push moves its block at most about 10 cm/s,
a centimetre between frames at this rate."""
MAX_FRAME_AGE = 0.3
"""The oldest frame (s) the objects may come from: older, the camera has stopped, and the loop
stops. A hidden object's sighting may be older (the arm passes over it); a frame may not. At
0.15 s a 15 frames/s camera that skipped two frames stopped a run."""


def markers_of(contract: Contract) -> dict[str, FiducialMarker]:
    """The marker each of the task's objects carries, in the task's order of objects."""
    objects = contract.task.get("objects") or []
    if not objects:
        raise ContractError(f"the policy ({contract.algorithm} on {contract.env_id}) tracks no "
                            "objects: deploy it without --camera-calibration")
    markers = contract.task.get("markers")
    if markers is None:
        raise ContractError("the policy's contract does not say which markers its objects carry "
                            "(it was exported before trackers): export it again with "
                            "`sim2real export RUN_DIR`")
    try:
        return {name: FiducialMarker.from_json(markers[name]) for name in objects}
    except (KeyError, ValueError) as error:
        raise ContractError(f"the policy's contract names its objects' markers in a form this "
                            f"version does not read ({error}): export it again with "
                            "`sim2real export RUN_DIR`") from None


class MarkerTracker:
    """Locates marked objects in one frame of a calibrated camera."""

    def __init__(self, calibration: CameraCalibration, markers: dict[str, FiducialMarker]) -> None:
        self.calibration, self.markers = calibration, markers
        self.detector = aruco_detector()

    def locate(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        """The objects whose markers `frame` shows, and their centres (m, base frame): the mean
        of what the top faces seen say, or without one the sides (`face_says`)."""
        corners, ids, _ = self.detector.detectMarkers(grey(frame))
        ids = [] if ids is None else [int(marker_id) for marker_id in ids.ravel()]
        located = {}
        for name, marker in self.markers.items():
            says = [self.face_says(points.reshape(4, 2), marker)
                    for points, marker_id in zip(corners, ids, strict=True)
                    if marker_id == marker.marker_id]
            says = [(centre, top) for centre, top in says if not np.isnan(centre).any()]
            # A top face's is the surer: a side's step inwards takes its edge's direction,
            # which a face seen edge-on gives poorly.
            best = [centre for centre, top in says if top] or [centre for centre, _ in says]
            if best:
                located[name] = np.mean(best, axis=0)
        return located

    def face_says(self, corners: np.ndarray, marker: FiducialMarker) -> tuple[np.ndarray, bool]:
        """The object's centre from one face's marker `corners` (4, 2 pixels, in OpenCV's order
        round the square), and whether that face is its top. The object rests on the table on
        a face, so a face is either its top, its corners at one height (the centre's height and
        a face's depth), or a side, upright, two corners a marker's half side above the centre's
        height and two below: each corner's camera ray meets its height under either reading,
        and the reading whose four points make the marker's square is the face's. From the
        face's centre, the object's lies a face's depth inwards (down for the top; for a side,
        square to its top edge, away from the camera). No marker pose is solved for: at 20
        pixels a marker's pose is ambiguous (a side was read as facing up), its corners' rays
        are not."""
        calibration = self.calibration
        rays = calibration.rays(calibration.normalized(corners))
        half = marker.side / 2
        top = calibration.meet_plane(rays, marker.centre_height + marker.centre_depth)
        higher = np.argsort(corners[:, 1])[:2]  # image rows count down: the face's upper edge
        heights = np.full(4, marker.centre_height - half)
        heights[higher] = marker.centre_height + half
        with np.errstate(divide="ignore", invalid="ignore"):
            reach = (heights - calibration.position[2]) / rays[:, 2]
        side = calibration.position + np.where(reach > 0, reach, np.nan)[:, None] * rays
        if _square_miss(top, marker.side) <= _square_miss(side, marker.side):
            return top.mean(axis=0) - np.array([0.0, 0.0, marker.centre_depth]), True
        edge = side[higher[1]] - side[higher[0]]
        inwards = np.array([edge[1], -edge[0], 0.0]) / np.hypot(edge[0], edge[1])
        face = side.mean(axis=0)
        if np.dot(inwards, calibration.position - face) > 0:
            inwards = -inwards  # the face looks at the camera: its object lies beyond it
        return face + marker.centre_depth * inwards, False


def _square_miss(points: np.ndarray, side: float) -> float:
    """How far four points (in order round it) are from a square of `side` (m): the root mean
    square of its sides' and diagonals' errors; inf when a point is missing."""
    if np.isnan(points).any():
        return np.inf
    sides = np.linalg.norm(points - np.roll(points, -1, axis=0), axis=1) - side
    diagonals = np.linalg.norm(points[:2] - points[2:], axis=1) - side * np.sqrt(2)
    return float(np.sqrt(np.mean(np.concatenate([sides, diagonals]) ** 2)))


def trained_position_age(contract: Contract) -> float | None:
    """The oldest object position (s) the policy trained with: randomization's longest frame
    period (object_hold) and longest delay (object_latency), in control periods; None when it
    trained on positions always fresh."""
    def longest(term: str) -> float:
        spec = contract.randomization.get(term)
        if not spec:
            return 0.0
        if spec.get("choices"):
            return float(max(spec["choices"]))
        if "high" in spec:
            return float(spec["high"])
        return float(spec.get("mean", 0.0)) + 3.0 * float(spec.get("std", 0.0))

    steps = max(longest("object_hold"), 1.0) - 1.0 + longest("object_latency")
    return steps * contract.control_period if steps > 0 else None


class ObjectTracker:
    """The task's objects from the newest frame of `source`, each held where it was last seen.
    `trained_age`: the oldest position the policy trained with (s; `trained_position_age`), for
    the report."""

    def __init__(self, source: FrameSource, tracker: MarkerTracker,
                 trained_age: float | None = None) -> None:
        self.source, self.tracker, self.trained_age = source, tracker, trained_age
        self.names = tuple(tracker.markers)
        self.positions = np.full((len(self.names), 3), np.nan)
        self.seen_at = np.full(len(self.names), np.nan)
        """When each object was last seen: the monotonic time its frame was taken."""
        self.frame_number = -1
        self.frames_looked_at = 0
        self.sightings = np.zeros(len(self.names), int)
        self.frame_ages: list[float] = []
        self.sighting_ages: list[float] = []
        """Per call of `objects`: the age of the newest frame, and of the oldest sighting."""
        self.locate_seconds: list[float] = []
        self.frame_size: tuple[int, int] | None = None
        self.frame_rate = 0.0

    def check(self, seconds: float = RATE_SECONDS) -> None:
        """Measure the camera and refuse one the calibration does not describe (another frame
        size: its lens was measured at the calibrated one) or too slow to track with."""
        frame, self.frame_rate = measure_camera(self.source, seconds)
        rows, columns = frame.shape[:2]
        self.frame_size = (columns, rows)
        problems = []
        if self.frame_size != self.tracker.calibration.image_size:
            width, height = self.tracker.calibration.image_size
            problems.append(f"its frames are {columns}x{rows}, the calibration was measured on "
                            f"{width}x{height}: set the camera to {width}x{height}, or calibrate "
                            "it again at this size")
        if self.frame_rate < MIN_FRAME_RATE:
            problems.append(f"it gave {self.frame_rate:.1f} frames/s over {seconds:g} s, "
                            f"tracking needs at least {MIN_FRAME_RATE:g}")
        if problems:
            raise ContractError(f"camera {self.source.url!r} cannot track the objects, refusing "
                                "to move: " + "; ".join(problems))

    def objects(self) -> np.ndarray:
        """The objects' positions (objects, 3; NaN for one never seen), from the newest frame
        if it is new."""
        frames = self.source.frames
        frame, age = self.source.newest()
        now = time.monotonic()
        if frames != self.frame_number:
            self.frame_number = frames
            started = time.perf_counter()
            located = self.tracker.locate(frame)
            self.locate_seconds.append(time.perf_counter() - started)
            self.frames_looked_at += 1
            for index, name in enumerate(self.names):
                if name in located:
                    self.positions[index] = located[name]
                    self.seen_at[index] = now - age
                    self.sightings[index] += 1
        self.frame_ages.append(age)
        self.sighting_ages.append(float(np.max(now - self.seen_at)))
        return self.positions.copy()

    def age(self) -> float:
        """The newest frame's age now (s)."""
        return self.source.newest()[1]

    def stale(self, now_age: float, until_next_read: float) -> str | None:
        """Why the loop must stop now, if it must (deploy/camera_feed.py `stale_frame`)."""
        return stale_frame(self.source.url, now_age, until_next_read, MAX_FRAME_AGE, "tracker")

    def summary(self) -> dict:
        """For the deploy report: the camera as measured, the frames' ages, how often each
        object was seen and how old its position was when used."""
        seen = [age for age in self.sighting_ages if np.isfinite(age)]
        return {**camera_summary(self.source, self.frame_size, self.frame_rate,
                                 self.frames_looked_at, self.frame_ages),
                "objects_seen": {name: int(count) for name, count in
                                 zip(self.names, self.sightings, strict=True)},
                **percentiles_ms("sighting_age", seen),
                "trained_age_ms": round(self.trained_age * 1e3, 1) if self.trained_age else 0.0,
                "locate_p50_ms": round(float(np.median(self.locate_seconds)) * 1e3, 2)
                if self.locate_seconds else 0.0}
