"""`sim2real calibrate-camera`: where a camera is and how it sees, measured with printed targets
(sim/markers.py), written to a file the marker tracker reads (deploy/marker_tracker.py).

Two steps, as on a bench. The lens: a person moves the checkerboard before the camera; views in
which the board is found, each far enough from the last, give OpenCV's camera matrix and
distortion (`cv2.calibrateCamera`). The pose: the marker sheet lies flat on the table at a
known place in the arm's base frame; its markers' corners, seen with the lens known, give the
camera's rotation and position in that frame (`cv2.solvePnP`).

Runs on the robot's computer: numpy and OpenCV (the `deploy` extra).

Example:
    >>> with CameraStream("/dev/video0") as camera:
    ...     calibration = calibrate(camera, say=print)
    >>> calibration.save(Path("camera.json"))
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from deploy.camera_feed import FrameSource
from sim.markers import (
    CHECKERBOARD,
    DICTIONARY,
    MARKER_SHEET,
    SHEET_CENTRE,
    Checkerboard,
    MarkerSheet,
)

VIEWS = 15
"""Board views the lens is measured from: OpenCV's tutorials take 10-20."""
MIN_MOVE = 0.05
"""A view counts when the board's corners moved this far (a fraction of the frame's width, on
average) from the last view taken: the same view twice adds nothing."""
SHEET_FRAMES = 10
"""Frames of the marker sheet the camera's pose is taken from (the median of their poses)."""
MIN_SHEET_MARKERS = 9
"""Of the sheet's 12 markers, a frame counts when this many are seen: a sheet partly hidden
(the checkerboard still held up, a hand) gives a pose from a corner of it, and a marker cut by
the edge of what hides it gives corners off by pixels (4.3 mm and 0.3 degrees off, measured)."""
MAX_MARKER_MISS_PX = 1.0
"""A marker whose corners miss the fitted pose by more (pixels, the worst corner) is left out
and the pose fitted again without it: a crease, a shadow's edge, a corner half hidden."""
MAX_REPROJECTION_PX = 1.0
"""A lens fit whose corners miss by more (root mean square, pixels) is refused: blurred views,
a board bent or printed at the wrong scale."""


class CalibrationError(ValueError):
    """The camera could not be calibrated; the message says what to change."""


@dataclass(frozen=True)
class CameraCalibration:
    """A camera's lens and its pose in the arm's base frame.

    OpenCV's conventions: pixel (0, 0) is the centre of the top-left pixel; the camera's axes
    are x right, y down, z along its view. `rotation` turns camera axes into base axes (a
    direction d seen by the camera is rotation @ d in the base frame); `position` is the lens's
    centre in the base frame (m)."""

    image_size: tuple[int, int]
    """Width, height of the frames it was measured on: the camera must give frames this size."""
    camera_matrix: np.ndarray
    distortion: np.ndarray
    rotation: np.ndarray
    position: np.ndarray
    reprojection_px: float
    """The lens fit's corners, root mean square miss (pixels)."""
    sheet_px: float
    """The sheet's marker corners, root mean square miss after the pose fit (pixels)."""

    def to_json(self) -> dict:
        return {"image_size": list(self.image_size),
                "camera_matrix": self.camera_matrix.tolist(),
                "distortion": self.distortion.ravel().tolist(),
                "rotation": self.rotation.tolist(), "position_m": self.position.tolist(),
                "reprojection_px": round(self.reprojection_px, 4),
                "sheet_px": round(self.sheet_px, 4)}

    @classmethod
    def from_json(cls, data: dict) -> CameraCalibration:
        return cls(tuple(int(v) for v in data["image_size"]),
                   np.asarray(data["camera_matrix"], float), np.asarray(data["distortion"], float),
                   np.asarray(data["rotation"], float), np.asarray(data["position_m"], float),
                   float(data["reprojection_px"]), float(data["sheet_px"]))

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half of one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> CameraCalibration:
        if not path.is_file():
            raise FileNotFoundError(f"camera calibration {path} does not exist: make it with "
                                    "`sim2real calibrate-camera --camera URL --out FILE`")
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(f"{path} is not a camera calibration sim2real wrote ({error}): "
                             "make it again with `sim2real calibrate-camera`") from None

    def normalized(self, pixels: np.ndarray) -> np.ndarray:
        """`pixels` (n, 2) undistorted onto the plane one unit before the lens (n, 2)."""
        import cv2

        return cv2.undistortPoints(np.asarray(pixels, np.float64).reshape(-1, 1, 2),
                                   self.camera_matrix, self.distortion).reshape(-1, 2)

    def rays(self, normalized: np.ndarray) -> np.ndarray:
        """The base-frame directions (unit vectors) of the camera's rays through `normalized`
        points (n, 2)."""
        directions = np.hstack([normalized, np.ones((len(normalized), 1))]) @ self.rotation.T
        return directions / np.linalg.norm(directions, axis=1, keepdims=True)

    def meet_plane(self, rays: np.ndarray, height: float) -> np.ndarray:
        """Where `rays` (n, 3) from the lens meet the horizontal plane `height` (m) above the
        base frame's origin: (n, 3) points, NaN for a ray that never does."""
        with np.errstate(divide="ignore", invalid="ignore"):
            reach = (height - self.position[2]) / rays[:, 2]
        reach = np.where(reach > 0, reach, np.nan)
        return self.position + reach[:, None] * rays

    def on_plane(self, pixels: np.ndarray, height: float) -> np.ndarray:
        """Where the camera sees `pixels` (n, 2) on the horizontal plane `height` (m) up."""
        return self.meet_plane(self.rays(self.normalized(pixels)), height)


def aruco_detector():
    """The detector of sim/markers.py's dictionary, corners refined to a tenth of a pixel."""
    import cv2

    parameters = cv2.aruco.DetectorParameters()
    parameters.cornerRefinementMethod = cv2.aruco.CORNER_REFINE_SUBPIX
    dictionary = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, DICTIONARY))
    return cv2.aruco.ArucoDetector(dictionary, parameters)


def grey(frame: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) if frame.ndim == 3 else frame


def find_board(frame: np.ndarray, board: Checkerboard = CHECKERBOARD) -> np.ndarray | None:
    """The board's inner corners in `frame` (n, 2), refined to a tenth of a pixel, or None."""
    import cv2

    image = grey(frame)
    found, corners = cv2.findChessboardCorners(
        image, board.inner_corners,
        flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_FAST_CHECK)
    if not found:
        return None
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 0.01)
    return cv2.cornerSubPix(image, corners, (5, 5), (-1, -1), criteria).reshape(-1, 2)


def fit_lens(views: list[np.ndarray], image_size: tuple[int, int],
             board: Checkerboard = CHECKERBOARD) -> tuple[np.ndarray, np.ndarray, float]:
    """The camera matrix, distortion and fit's root mean square miss (pixels) from board views
    (each the corners `find_board` gave)."""
    import cv2

    points = board.corner_points()
    # k3 fixed at 0, as OpenCV advises for a lens that is not a fisheye: the views leave it
    # loose (fitted at -0.5..0.5 on the emulated camera, which has no distortion), and it bends
    # the rays of the frame's edges, where a tracked block may be.
    error, matrix, distortion, _, _ = cv2.calibrateCamera(
        [points] * len(views), [view.astype(np.float32) for view in views], image_size, None, None,
        flags=cv2.CALIB_FIX_K3)
    return matrix, distortion.ravel(), float(error)


def sheet_corners(frame: np.ndarray, sheet: MarkerSheet, centre: tuple[float, float],
                  yaw: float) -> tuple[np.ndarray, np.ndarray]:
    """The sheet's marker corners found in `frame`: their image points (n, 2) and where they lie
    on the table (n, 3, base frame)."""
    corners, ids, _ = aruco_detector().detectMarkers(grey(frame))
    on_table = sheet.corners_on_table(centre, yaw)
    pixels, places = [], []
    for found, marker_id in zip(corners, [] if ids is None else ids.ravel(), strict=True):
        if int(marker_id) in on_table:
            pixels.append(found.reshape(4, 2))
            places.append(on_table[int(marker_id)])
    if not pixels:
        return np.zeros((0, 2)), np.zeros((0, 3))
    return np.vstack(pixels), np.vstack(places)


def fit_pose(pixels: np.ndarray, places: np.ndarray, matrix: np.ndarray,
             distortion: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """The camera's rotation (camera to base) and position (m, base frame) from image points of
    known base-frame places, and the root mean square miss of the places reprojected (px)."""
    rotation, position, misses = _fit_pose(pixels, places, matrix, distortion)
    return rotation, position, float(np.sqrt(np.mean(misses ** 2)))


def _fit_pose(pixels: np.ndarray, places: np.ndarray, matrix: np.ndarray,
              distortion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`fit_pose` with each place's miss (px) rather than their root mean square."""
    import cv2

    ok, rvec, tvec = cv2.solvePnP(places.astype(np.float64), pixels.astype(np.float64), matrix,
                                  distortion, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        raise CalibrationError("the camera's pose could not be solved from the marker sheet")
    to_camera, _ = cv2.Rodrigues(rvec)
    projected, _ = cv2.projectPoints(places.astype(np.float64), rvec, tvec, matrix, distortion)
    misses = np.linalg.norm(projected.reshape(-1, 2) - pixels, axis=1)
    return to_camera.T, (-to_camera.T @ tvec).ravel(), misses


def fit_sheet_pose(pixels: np.ndarray, places: np.ndarray, matrix: np.ndarray,
                   distortion: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """`fit_pose` on the sheet's marker corners (four a marker, in order), fitted again without
    the markers whose corners miss by more than MAX_MARKER_MISS_PX, if enough are left."""
    rotation, position, misses = _fit_pose(pixels, places, matrix, distortion)
    kept = np.repeat(misses.reshape(-1, 4).max(axis=1) <= MAX_MARKER_MISS_PX, 4)
    if kept.all() or kept.sum() // 4 < MIN_SHEET_MARKERS:
        return rotation, position, float(np.sqrt(np.mean(misses ** 2)))
    return fit_pose(pixels[kept], places[kept], matrix, distortion)


def _newer(source: FrameSource, seen: int, until: float) -> tuple[np.ndarray, int]:
    """The newest frame once one newer than frame number `seen` came, and its number."""
    while source.frames <= seen:
        if time.monotonic() > until:
            raise CalibrationError(f"camera {source.url!r} stopped giving frames")
        time.sleep(0.005)
    frames = source.frames
    return source.newest()[0], frames


def _collect(source: FrameSource, count: int, timeout: float,
             look: Callable[[np.ndarray, list], Any], gave_up: Callable[[int, int], str]) -> list:
    """What `look` finds in `count` of the camera's new frames (it gets each frame and what was
    found so far; None: nothing), or CalibrationError with `gave_up(found, tried)` after
    `timeout` seconds."""
    deadline, seen, tried = time.monotonic() + timeout, source.frames, 0
    found: list = []
    while len(found) < count:
        if time.monotonic() > deadline:
            raise CalibrationError(gave_up(len(found), tried))
        frame, seen = _newer(source, seen, deadline)
        tried += 1
        if (item := look(frame, found)) is not None:
            found.append(item)
    return found


def calibrate(source: FrameSource, board: Checkerboard = CHECKERBOARD,
              sheet: MarkerSheet = MARKER_SHEET, centre: tuple[float, float] = SHEET_CENTRE,
              yaw: float = 0.0, views: int = VIEWS, timeout: float = 180.0,
              say: Callable[[str], object] = print) -> CameraCalibration:
    """Measure the camera `source` reads: the lens from `views` views of `board`, then its pose
    from `sheet` lying on the table centred at `centre` (m, base frame), turned `yaw` (rad)
    from its rows along +y, its top edge away from the base. Each step gives up after
    `timeout` seconds, saying what it saw."""
    frame, _ = _newer(source, -1, time.monotonic() + timeout)
    height, width = frame.shape[:2]
    columns, rows = board.inner_corners
    say(f"1/2 the lens: hold the {columns + 1}x{rows + 1} checkerboard ({board.square * 1e3:g} mm "
        f"squares) before the camera and move it: near and far, tilted, in every part of the "
        f"view ({views} views)")

    def new_view(frame: np.ndarray, taken: list[np.ndarray]) -> np.ndarray | None:
        corners = find_board(frame, board)
        if corners is None or (taken and np.mean(np.linalg.norm(corners - taken[-1], axis=1))
                               < MIN_MOVE * width):
            return None
        say(f"  view {len(taken) + 1}/{views}")
        return corners

    taken = _collect(source, views, timeout, new_view, lambda found, tried: (
        f"found the checkerboard in {found} of the {views} views needed within {timeout:g} s "
        f"({tried} frames looked at): is the whole board in view, flat, and lit?"))
    matrix, distortion, reprojection = fit_lens(taken, (width, height), board)
    if reprojection > MAX_REPROJECTION_PX:
        raise CalibrationError(f"the lens fit misses the board's corners by {reprojection:.2f} "
                               f"px (at most {MAX_REPROJECTION_PX} px): check the board is "
                               f"flat and its squares measure {board.square * 1e3:g} mm, then "
                               "calibrate again")
    say(f"  lens: focal length {matrix[0, 0]:.1f} x {matrix[1, 1]:.1f} px, centre "
        f"({matrix[0, 2]:.1f}, {matrix[1, 2]:.1f}), miss {reprojection:.3f} px")

    say(f"2/2 the pose: put the checkerboard away and lay the marker sheet flat on the table, "
        f"its centre at x {centre[0]:g} m, y {centre[1]:g} m from the arm's base, its top edge "
        "away from the base")
    most = 0

    def sheet_pose(frame: np.ndarray, taken: list) -> tuple | None:
        nonlocal most
        pixels, places = sheet_corners(frame, sheet, centre, yaw)
        most = max(most, len(pixels) // 4)
        if len(pixels) // 4 < MIN_SHEET_MARKERS:
            return None
        return fit_sheet_pose(pixels, places, matrix, distortion)

    poses = _collect(source, SHEET_FRAMES, timeout, sheet_pose, lambda found, tried: (
        f"saw at most {most} of the sheet's {len(sheet.ids)} markers (at least "
        f"{MIN_SHEET_MARKERS} needed) within {timeout:g} s: is the whole sheet in view, flat, "
        "lit, and nothing held over it?"))
    # The median pose, component by component, then the rotation made orthonormal again.
    rotation = np.median([pose[0] for pose in poses], axis=0)
    u, _, vt = np.linalg.svd(rotation)
    position = np.median([pose[1] for pose in poses], axis=0)
    sheet_px = float(np.median([pose[2] for pose in poses]))
    say(f"  camera at ({position[0]:.3f}, {position[1]:.3f}, {position[2]:.3f}) m, "
        f"{most} markers seen, miss {sheet_px:.3f} px")
    return CameraCalibration((width, height), matrix, distortion, u @ vt, position,
                             reprojection, sheet_px)
