"""The emulated robot's camera (`sim2real emulate ROBOT --camera-port PORT`): its scene rendered as
a pixel policy's camera sees it and served as an MJPEG stream (hardware/camera_server.py).
Imports MuJoCo: runs on the host, beside the emulator, not on the robot's computer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from hardware.camera_server import MjpegServer
from sim.pixels import CAMERA, camera_view

if TYPE_CHECKING:
    from hardware.emulator import DeviceEmulator
    from hardware.feetech.emulator import FeetechBusEmulator

CAMERA_SIZE = (320, 240)
"""The emulated camera's frames, width x height: a webcam's low setting (most give 640x480)."""
CAMERA_RATE = 30.0


def serve_camera(emulator: DeviceEmulator | FeetechBusEmulator, port: int,
                 size: tuple[int, int] = CAMERA_SIZE, fps: float = CAMERA_RATE) -> MjpegServer:
    """`sim2real emulate ROBOT --camera-port PORT`: the robot's camera, rendered from the emulated
    scene as a pixel policy's camera sees it (`SceneCamera`) under the emulator's pinned
    `--physics` (visual terms included), served as an MJPEG stream on
    127.0.0.1:PORT (0: any free port) that `deploy --camera` opens like a network camera.

    The serving loop steps the physics; the rendering thread copies the pose into a scene of
    its own each frame (a copy taken during a step may mix two physics steps, 2 ms apart)."""
    width, height = size
    if width < 1 or height < 1:
        raise ValueError(f"--camera-size must be WIDTHxHEIGHT of at least 1x1, got {width}x{height}")
    sim = emulator.sim
    model = sim.model
    if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, CAMERA) < 0:
        raise ValueError(f"{emulator.spec.name}'s scene has no {CAMERA!r} camera to render")

    def make_render() -> Callable[[], np.ndarray]:
        camera = SceneCamera(model, size)  # made on the rendering thread: its GL context
        return lambda: camera.render(sim.data)

    return MjpegServer(make_render, fps, port)


class SceneCamera:
    """The robot's camera (sim/pixels.py CAMERA) rendered from a scene's state as a pixel
    policy's camera sees it (no markers or sites, no shadows or reflections, as
    PixelObservation renders), into frames `size` (width, height). Its renderer's GL context
    is the thread's that makes it: render on that thread. `render` copies the state it is given
    into a scene of its own first (the emulator's physics runs on another thread)."""

    def __init__(self, model: mujoco.MjModel, size: tuple[int, int]) -> None:
        width, height = size
        model.vis.global_.offwidth = max(width, model.vis.global_.offwidth)
        model.vis.global_.offheight = max(height, model.vis.global_.offheight)
        self.model = model
        self.renderer = mujoco.Renderer(model, height, width)
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self.scene, self.view = mujoco.MjData(model), camera_view()

    def render(self, data: mujoco.MjData) -> np.ndarray:
        scene = self.scene
        scene.qpos[:] = data.qpos
        scene.mocap_pos[:] = data.mocap_pos
        scene.mocap_quat[:] = data.mocap_quat
        mujoco.mj_kinematics(self.model, scene)
        mujoco.mj_camlight(self.model, scene)
        self.renderer.update_scene(scene, camera=CAMERA, scene_option=self.view)
        return self.renderer.render()
