"""Objects on the table located by their ArUco markers in a calibrated camera's frames: what a
state policy whose task tracks objects (push's block) reads as `RobotState.objects` on a robot.

A marker's corners are found in the newest frame (OpenCV's ArUco detector), undistorted, and the
camera's rays through them meet the plane the marker's face lies in when its object rests on the
table; the four points' mean is the marker's centre (exact on the plane), less the marker's
height above the object's centre. The camera's pose comes from `sim2real calibrate-camera`
(deploy/camera_calibration.py); which marker each object carries, from the policy's contract
(the task's `markers`, sim/markers.py).

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
from deploy.camera_feed import RATE_SECONDS, FrameSource, stale_frame
from deploy.contract import Contract, ContractError
from sim.markers import FiducialMarker

MIN_FRAME_RATE = 10.0
"""Frames a second a tracker's camera must give: a push moves its block at most about 10 cm/s,
a centimetre between frames at this rate."""
MAX_FRAME_AGE = 0.15
"""The oldest frame (s) the objects may come from: a stale camera stops the loop."""


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
    return {name: FiducialMarker.from_json(markers[name]) for name in objects}


class MarkerTracker:
    """Locates marked objects in one frame of a calibrated camera."""

    def __init__(self, calibration: CameraCalibration, markers: dict[str, FiducialMarker]) -> None:
        self.calibration, self.markers = calibration, markers
        self.detector = aruco_detector()

    def locate(self, frame: np.ndarray) -> dict[str, np.ndarray]:
        """The objects whose markers `frame` shows, and their centres (m, base frame)."""
        corners, ids, _ = self.detector.detectMarkers(grey(frame))
        found = {int(marker_id): points.reshape(4, 2)
                 for points, marker_id in zip(corners, [] if ids is None else ids.ravel(),
                                              strict=True)}
        located = {}
        for name, marker in self.markers.items():
            if marker.marker_id not in found:
                continue
            face = self.calibration.on_plane(found[marker.marker_id], marker.face_height)
            if np.isnan(face).any():
                continue
            centre = face.mean(axis=0)
            centre[2] -= marker.above_centre
            located[name] = centre
        return located


class ObjectTracker:
    """The task's objects from the newest frame of `source`, each held where it was last seen."""

    def __init__(self, source: FrameSource, tracker: MarkerTracker) -> None:
        self.source, self.tracker = source, tracker
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
        frame, _ = self.source.newest()
        rows, columns = frame.shape[:2]
        self.frame_size = (columns, rows)
        counted, start = self.source.frames, time.monotonic()
        time.sleep(seconds)
        self.frame_rate = (self.source.frames - counted) / (time.monotonic() - start)
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
        width, height = self.frame_size or (0, 0)
        frame_p50, frame_p99 = (np.percentile(self.frame_ages, [50, 99]) * 1e3
                                if self.frame_ages else (0.0, 0.0))
        seen = [age for age in self.sighting_ages if np.isfinite(age)]
        seen_p50, seen_p99 = np.percentile(seen, [50, 99]) * 1e3 if seen else (0.0, 0.0)
        return {"url": self.source.url, "frame_size": f"{width}x{height}",
                "frame_rate_hz": round(self.frame_rate, 1), "frames_used": self.frames_looked_at,
                "frame_age_p50_ms": round(float(frame_p50), 1),
                "frame_age_p99_ms": round(float(frame_p99), 1),
                "objects_seen": {name: int(count) for name, count in
                                 zip(self.names, self.sightings, strict=True)},
                "sighting_age_p50_ms": round(float(seen_p50), 1),
                "sighting_age_p99_ms": round(float(seen_p99), 1),
                "locate_p50_ms": round(float(np.median(self.locate_seconds)) * 1e3, 2)
                if self.locate_seconds else 0.0}
