"""A camera served as an MJPEG stream over HTTP (multipart/x-mixed-replace, as network cameras and
mjpg-streamer serve it): how the emulator shows its rendered scene to the deploy's camera
backend (hardware/camera.py), which opens it like any network camera.

Example:
    >>> server = MjpegServer(lambda: lambda: np.zeros((240, 320, 3), np.uint8), fps=30)
    >>> server.url
    'http://127.0.0.1:PORT/stream.mjpg'
    >>> server.close()
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

BOUNDARY = "sim2realframe"
RenderFactory = Callable[[], Callable[[], np.ndarray]]
"""Called once in the rendering thread (a GL context belongs to the thread that made it); gives
the function that renders one RGB frame, uint8 (height, width, 3)."""


class MjpegServer:
    """Renders a frame every 1/`fps` s on its own thread and sends the newest, JPEG-encoded, to
    every client of http://127.0.0.1:`port`/stream.mjpg (port 0: any free one)."""

    def __init__(self, make_render: RenderFactory, fps: float, port: int = 0,
                 quality: int = 90) -> None:
        import cv2

        if not fps > 0:
            raise ValueError(f"a camera's rate must be above 0 frames/s, got {fps}")
        self.fps, self._quality, self._cv2 = fps, quality, cv2
        self.frames_rendered = 0
        self._jpeg: bytes | None = None
        self._new_frame = threading.Condition()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._http = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._http.daemon_threads = True
        self.port = self._http.server_address[1]
        self._threads = [threading.Thread(target=self._render_loop, args=(make_render,),
                                          name="camera-render", daemon=True),
                         threading.Thread(target=self._http.serve_forever, name="camera-http",
                                          daemon=True)]
        for thread in self._threads:
            thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stream.mjpg"

    def pause(self, paused: bool = True) -> None:
        """Stop sending frames (the connection stays open), as a camera that hangs."""
        (self._paused.set if paused else self._paused.clear)()

    def close(self) -> None:
        self._stop.set()
        with self._new_frame:
            self._new_frame.notify_all()
        self._http.shutdown()
        self._http.server_close()

    def _render_loop(self, make_render: RenderFactory) -> None:
        render = make_render()
        period, due = 1.0 / self.fps, time.monotonic()
        while not self._stop.is_set():
            frame = np.ascontiguousarray(render()[..., ::-1])  # OpenCV encodes BGR
            ok, jpeg = self._cv2.imencode(".jpg", frame,
                                          [self._cv2.IMWRITE_JPEG_QUALITY, self._quality])
            if ok and not self._paused.is_set():
                with self._new_frame:
                    self._jpeg = jpeg.tobytes()
                    self.frames_rendered += 1
                    self._new_frame.notify_all()
            due += period
            self._stop.wait(max(0.0, due - time.monotonic()))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Stream(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/stream.mjpg":
                    self.send_error(404, "the stream is /stream.mjpg")
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                sent = 0
                try:
                    while not server._stop.is_set():
                        with server._new_frame:
                            server._new_frame.wait_for(
                                lambda seen=sent: server._stop.is_set()
                                or server.frames_rendered > seen)
                            jpeg, sent = server._jpeg, server.frames_rendered
                        if jpeg is None or server._stop.is_set():
                            return
                        self.wfile.write(f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                                         f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                                         + jpeg + b"\r\n")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client went away

            def log_message(self, *args: object) -> None:  # quiet: a request per client
                pass

        return Stream
