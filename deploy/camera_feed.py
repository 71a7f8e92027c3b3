"""A pixel policy's camera on the robot: the newest frame of a camera stream (hardware/camera.py)
made the image the policy's contract names (cropped at its centre to the image's aspect, then
resized by area), with the frame's age, which the control loop checks each cycle as it checks
the joint state's (a frame older than the contract allows is a stale reading: a safe stop).
Before anything moves, `CameraFeed.check` refuses a camera that cannot meet the contract.

Runs on the robot's computer: numpy and OpenCV (the `deploy` extra).

Example:
    >>> with CameraStream("/dev/video0") as stream:
    ...     feed = CameraFeed(stream, CameraNeeds.of(policy.contract))
    ...     feed.check()                       # resolution and rate, or ContractError
    ...     pixels, age = feed.image()         # uint8 (height, width, 3), seconds
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from deploy.contract import Contract, ContractError

RATE_SECONDS = 1.0
"""How long `CameraFeed.check` counts frames to measure the camera's rate."""


class FrameSource(Protocol):
    """A camera read on its own thread (hardware/camera.py CameraStream)."""

    url: str
    frames: int
    """Frames received so far."""

    def newest(self) -> tuple[np.ndarray, float]:
        """The newest RGB frame and its age in seconds, without waiting."""
        ...


@dataclass(frozen=True)
class CameraNeeds:
    """What a pixel policy's contract asks of a camera."""

    height: int
    width: int
    min_frame_rate: float
    max_frame_age: float
    """Seconds."""

    @classmethod
    def of(cls, contract: Contract) -> CameraNeeds:
        if contract.image_shape is None:
            raise ContractError(f"the policy ({contract.algorithm} on {contract.env_id}) takes no "
                                "camera images: deploy it without --camera")
        camera = contract.camera
        if camera is None:
            raise ContractError("the policy takes camera images but its contract does not say "
                                "which camera (it was exported before cameras were recorded): "
                                "export it again with `sim2real export RUN_DIR`")
        height, width, _ = camera["image"]
        return cls(int(height), int(width), float(camera["min_frame_rate"]),
                   float(camera["max_frame_age_s"]))


def measure_camera(source: FrameSource, seconds: float) -> tuple[np.ndarray, float]:
    """A frame of `source`'s, and the frames a second it gives, counted over `seconds`."""
    frame, _ = source.newest()
    counted, start = source.frames, time.monotonic()
    time.sleep(seconds)
    return frame, (source.frames - counted) / (time.monotonic() - start)


def stale_frame(url: str, now_age: float, until_next_read: float, limit: float,
                reader: str) -> str | None:
    """Why a loop whose camera's newest frame is `now_age` s old must stop now, if it must: no
    newer one can be read for `until_next_read` s, by when it would be older than `limit` (as
    the joint-state watchdog stops within its limit, not after). `reader`: who takes the
    frames, for the message."""
    if now_age + until_next_read <= limit:
        return None
    return (f"camera: its newest frame is {now_age * 1e3:.0f} ms old and {reader} takes frames "
            f"up to {limit * 1e3:.0f} ms old ({url})")


def camera_summary(source: FrameSource, frame_size: tuple[int, int] | None, frame_rate: float,
                   frames_used: int, frame_ages: list[float]) -> dict:
    """A deploy report's camera part: the camera as measured and the ages (s) of the frames
    the loop used, as p50 and p99 in ms."""
    width, height = frame_size or (0, 0)
    return {"url": source.url, "frame_size": f"{width}x{height}",
            "frame_rate_hz": round(frame_rate, 1), "frames_used": frames_used,
            **percentiles_ms("frame_age", frame_ages)}


def percentiles_ms(name: str, seconds: list[float]) -> dict[str, float]:
    """{name_p50_ms, name_p99_ms} of durations in s (0 for none)."""
    p50, p99 = np.percentile(seconds, [50, 99]) * 1e3 if seconds else (0.0, 0.0)
    return {f"{name}_p50_ms": round(float(p50), 1), f"{name}_p99_ms": round(float(p99), 1)}


def crop_to_aspect(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """The centre of `frame` with the aspect of a height x width image (a view)."""
    rows, columns = frame.shape[:2]
    if columns * height > rows * width:  # wider than the image: cut the sides
        keep = round(rows * width / height)
        start = (columns - keep) // 2
        return frame[:, start:start + keep]
    keep = round(columns * height / width)
    start = (rows - keep) // 2
    return frame[start:start + keep]


def fit_image(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """A camera frame as the policy's image: its centre at the image's aspect (the crop a camera
    of the trained vertical field of view sees at any aspect), resized by pixel area."""
    import cv2

    crop = crop_to_aspect(frame, height, width)
    if crop.shape[:2] == (height, width):
        return np.ascontiguousarray(crop)
    return cv2.resize(crop, (width, height), interpolation=cv2.INTER_AREA)


class CameraFeed:
    """The policy's images from `source`, and the ages of the frames they came from."""

    def __init__(self, source: FrameSource, needs: CameraNeeds) -> None:
        self.source, self.needs = source, needs
        self.ages: list[float] = []
        """The age of each frame the policy was given (seconds)."""
        self.frame_size: tuple[int, int] | None = None
        self.frame_rate = 0.0

    def check(self, seconds: float = RATE_SECONDS) -> None:
        """Measure the camera (its frame size, its rate over `seconds`) and refuse one that
        cannot meet the contract, naming what differs and what to do."""
        frame, self.frame_rate = measure_camera(self.source, seconds)
        rows, columns = frame.shape[:2]
        self.frame_size = (columns, rows)
        needs, problems = self.needs, []
        crop = crop_to_aspect(frame, needs.height, needs.width)
        if crop.shape[0] < needs.height or crop.shape[1] < needs.width:
            problems.append(f"its frames are {columns}x{rows}, whose centre at the image's "
                            f"aspect ({crop.shape[1]}x{crop.shape[0]}) is smaller than the "
                            f"{needs.width}x{needs.height} image the policy takes: set the "
                            "camera to a larger resolution")
        if frame.ndim != 3 or frame.shape[2] != 3:
            problems.append(f"its frames have shape {frame.shape}, not colour (rows, columns, 3)")
        if self.frame_rate < needs.min_frame_rate:
            problems.append(f"it gave {self.frame_rate:.1f} frames/s over {seconds:g} s, the "
                            f"policy needs at least {needs.min_frame_rate:g}: set the camera's "
                            "rate, or a lower resolution or MJPEG if its link is the limit")
        if problems:
            raise ContractError(f"camera {self.source.url!r} cannot feed the policy, refusing to "
                                "move: " + "; ".join(problems))

    def image(self) -> tuple[np.ndarray, float]:
        """The policy's image from the newest frame, and that frame's age (s)."""
        frame, age = self.source.newest()
        self.ages.append(age)
        return fit_image(frame, self.needs.height, self.needs.width), age

    def age(self) -> float:
        """The newest frame's age now (s)."""
        return self.source.newest()[1]

    def stale(self, now_age: float, until_next_read: float) -> str | None:
        """Why the loop must stop now, if it must (`stale_frame`)."""
        return stale_frame(self.source.url, now_age, until_next_read, self.needs.max_frame_age,
                           "the policy")

    def summary(self) -> dict:
        """For the deploy report: the camera as measured, and the ages of the frames used."""
        return camera_summary(self.source, self.frame_size, self.frame_rate, len(self.ages),
                              self.ages)
