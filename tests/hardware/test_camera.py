"""The camera path (issue "Pixel policies on the robot", first step): the emulated scene rendered
and served as an MJPEG stream over HTTP, and read back by the deploy's camera backend (OpenCV, on
its own thread) as a network camera: the same image, its age known, a hung camera seen."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hardware.camera import CameraStream
from hardware.camera_server import MjpegServer

FPS = 30.0
SIZE = (96, 128)  # height, width


@pytest.fixture
def scene():
    """The reach arm's scene and a function that renders its workspace camera."""
    import mujoco

    from randomization.envs import make_env

    env = make_env("sim2real/ArmReach-v0")
    env.reset(seed=0)
    model, data = env.unwrapped.model, env.unwrapped.data

    def make_render():
        renderer = mujoco.Renderer(model, *SIZE)

        def render() -> np.ndarray:
            renderer.update_scene(data, camera="workspace")
            return renderer.render()

        return render

    yield make_render
    env.close()


@pytest.mark.slow  # real time: a second and a half of streaming
def test_the_emulated_camera_reaches_the_backend_as_rendered_and_fresh(scene) -> None:
    server = MjpegServer(scene, fps=FPS)
    try:
        with CameraStream(server.url) as camera:
            time.sleep(0.5)
            frame, _ = camera.newest()
            assert frame.shape == (*SIZE, 3) and frame.dtype == np.uint8
            # JPEG at quality 90 keeps the rendered image to a few levels of 255.
            assert np.abs(frame.astype(int) - scene()().astype(int)).mean() < 4
            ages = []
            for _ in range(40):  # a 50 Hz loop taking the newest frame without waiting
                ages.append(camera.newest()[1])
                time.sleep(0.02)
            assert np.percentile(ages, 50) < 1.5 / FPS and max(ages) < 0.2, ages
            frames = camera.frames
            assert frames >= 0.7 * FPS * 1.3  # the stream kept its rate
            server.pause()  # the camera hangs: the connection stays, frames stop
            time.sleep(0.5)
            assert camera.newest()[1] > 0.4 and camera.frames <= frames + 2
            server.pause(False)
            time.sleep(0.3)
            assert camera.newest()[1] < 0.2
    finally:
        server.close()


def test_a_camera_that_is_not_there_is_named() -> None:
    with pytest.raises(ConnectionError, match="cannot open camera '/dev/video97'"):
        CameraStream("/dev/video97", open_seconds=1.0).open()


@pytest.mark.slow  # renders and streams for a second
def test_the_emulators_camera_gives_the_policy_the_image_training_rendered() -> None:
    """The one rule for images: the emulated robot's camera frame (320x240, MJPEG), made the
    policy's image as deploy makes it (deploy/camera_feed.py), is the image the training env
    renders at the same pose (sim/pixels.py), with no target marker in either."""
    import mujoco

    from deploy.camera_feed import fit_image
    from hardware.emulate import emulator_for
    from hardware.emulated_camera import serve_camera
    from randomization.envs import make_env

    emulator = emulator_for("so_arm", pose=[0.4, -0.3, 0.6, 0.2, 0.0, 0.1])
    server = serve_camera(emulator, port=0)
    env = make_env("sim2real/ArmReach-v0", pixels=48)
    try:
        env.reset(seed=0)
        with CameraStream(server.url) as camera:
            frame, age = camera.newest()
            assert frame.shape == (240, 320, 3) and age < 0.2
            image = fit_image(frame, 48, 48)
        model, data = env.unwrapped.model, env.unwrapped.data
        data.qpos[:] = emulator.sim.data.qpos
        mujoco.mj_forward(model, data)
        rendered = env.get_wrapper_attr("render_camera")()
        difference = np.abs(image.astype(int) - rendered.astype(int))
        assert difference.mean() < 3 and np.percentile(difference, 99) < 30, difference.mean()
        # The target marker is drawn for people, not cameras: moving it changes neither image.
        data.mocap_pos[0] = [0.2, -0.1, 0.05]
        mujoco.mj_forward(model, data)
        assert np.array_equal(env.get_wrapper_attr("render_camera")(), rendered)
        # A different pose is a different image: the comparison can fail.
        data.qpos[0] += 0.5
        mujoco.mj_forward(model, data)
        moved = env.get_wrapper_attr("render_camera")()
        assert np.abs(image.astype(int) - moved.astype(int)).mean() > 2 * difference.mean()
    finally:
        server.close()
        env.close()
        emulator.transport.close()
