"""A camera for the deploy loop: a V4L2 device (/dev/video0), an MJPEG stream over HTTP or an RTSP
stream, read by OpenCV's VideoCapture on its own thread, so a control cycle takes the newest frame
without waiting for one; each frame is kept with the time it arrived, so the loop knows its age.

Example:
    >>> with CameraStream("http://127.0.0.1:8081/stream.mjpg") as camera:
    ...     frame, age = camera.newest()   # RGB uint8 (height, width, 3); seconds since it came
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

OPEN_SECONDS = 10.0
"""How long opening a camera (and its first frame) may take before it is refused."""


class CameraStream:
    def __init__(self, url: str, open_seconds: float = OPEN_SECONDS) -> None:
        self.url, self.open_seconds = url, open_seconds
        self.frames = 0
        self._frame: np.ndarray | None = None
        self._arrived = 0.0
        self._lock = threading.Lock()
        self._first = threading.Event()
        self._stop = threading.Event()
        self._capture: Any = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> CameraStream:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Open the camera and wait for its first frame; ConnectionError naming the URL if none
        comes within open_seconds."""
        import cv2

        source: Any = self.url
        if self.url.startswith("/dev/video") and self.url[len("/dev/video"):].isdigit():
            source = int(self.url[len("/dev/video"):])
        self._capture = cv2.VideoCapture(source)
        if not self._capture.isOpened():
            raise ConnectionError(f"cannot open camera {self.url!r}: check the device or the "
                                  "stream's address (e.g. /dev/video0, http://HOST:PORT/stream.mjpg)")
        self._thread = threading.Thread(target=self._read_loop, name="camera", daemon=True)
        self._thread.start()
        if not self._first.wait(self.open_seconds):
            self.close()
            raise ConnectionError(f"camera {self.url!r} opened but sent no frame in "
                                  f"{self.open_seconds:g} s")

    def newest(self) -> tuple[np.ndarray, float]:
        """The newest frame (RGB, uint8) and its age in seconds, without waiting."""
        with self._lock:
            if self._frame is None:
                raise ConnectionError(f"camera {self.url!r} has sent no frame yet")
            return self._frame, time.monotonic() - self._arrived

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        if self._capture is not None:
            self._capture.release()

    def _read_loop(self) -> None:
        while not self._stop.is_set():
            ok, bgr = self._capture.read()  # blocks until the next frame comes
            if not ok:
                self._stop.wait(0.005)  # the stream ended or hangs: the frame only ages
                continue
            rgb = np.ascontiguousarray(bgr[..., ::-1])
            with self._lock:
                self._frame, self._arrived = rgb, time.monotonic()
                self.frames += 1
            self._first.set()
