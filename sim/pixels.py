"""Pixel observations: RGB from the robot's camera, optionally beside the task's state vector.

Shadows and reflections are off by default: on a CPU renderer they cost about 10x the frame
rate (about 34 vs 436 frames/s at 84x84 here) and a policy rarely needs them.

The policy's camera sees what a camera on the bench would: the bodies, not the marks drawn for
people (sites, and the geoms of MARKER_GROUP such as the reach target, which exists only as
numbers on a real robot). The emulator's camera renders with the same view (`camera_view`).
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np

CAMERA = "workspace"
"""The camera our robots' pixel policies look through (the scene's fixed workspace camera)."""
MIN_FRAME_RATE = 25.0
"""Frames/s a deployed camera must deliver at least: most USB webcams give 30."""
MAX_FRAME_AGE = 0.1
"""Seconds old a frame the policy acts on may be at most. Training renders the present; a
camera's frame is 30-70 ms old when read (exposure, encoding, transport, up to a frame's wait),
a lag as large as the command lag of a few control steps the physics terms train with
(action_delay). Older than this the policy sees a scene the state it is given has left."""
MARKER_GROUP = 2
"""Geom group of the marks drawn for people only (the target): hidden from a policy's camera."""


def camera_view() -> mujoco.MjvOption:
    """What a robot's camera renders: every body, no sites, no markers."""
    option = mujoco.MjvOption()
    option.sitegroup[:] = 0
    option.geomgroup[MARKER_GROUP] = 0
    return option


def camera_contract(model: mujoco.MjModel, camera: str, image_shape: tuple[int, ...],
                    visual_randomization: dict) -> dict:
    """What a deployed camera must give a pixel policy, for its contract: the image it takes
    (a camera frame is cropped at its centre to the image's aspect, then resized), the pose and
    field of view it was trained with (the scene's camera, world frame: m, quaternion w x y z,
    vertical degrees), the visual terms it trained under (`visual_randomization`), and the rate
    and frame age it tolerates."""
    index = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    if index < 0:
        raise ValueError(f"the model has no camera {camera!r}")
    return {"name": camera, "image": [int(n) for n in image_shape], "crop": "center",
            "position": [round(float(x), 6) for x in model.cam_pos[index]],
            "quaternion": [round(float(x), 6) for x in model.cam_quat[index]],
            "fovy_degrees": float(model.cam_fovy[index]),
            "randomized": visual_randomization,
            "min_frame_rate": MIN_FRAME_RATE, "max_frame_age_s": MAX_FRAME_AGE}


class PixelObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace (or join) the observation with a camera image of shape (height, width, 3), uint8.

    Example:
        >>> env = PixelObservation(make_env("sim2real/ArmReach-v0"), width=84, height=84)
        >>> obs, _ = env.reset(seed=0)
        >>> obs["pixels"].shape, obs["state"].shape
        ((84, 84, 3), (21,))
    """

    def __init__(self, env: gym.Env, width: int = 84, height: int = 84, camera: str = CAMERA,
                 with_state: bool = True, shadows: bool = False, reflections: bool = False) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, width=width, height=height, camera=camera,
                                                 with_state=with_state, shadows=shadows,
                                                 reflections=reflections)
        gym.ObservationWrapper.__init__(self, env)
        model = getattr(env.unwrapped, "model", None)
        if not isinstance(model, mujoco.MjModel):
            raise ValueError(f"{env.unwrapped!r} exposes no MuJoCo `model` to render")
        if width < 8 or height < 8:
            raise ValueError(f"image size {width}x{height} is too small; use at least 8x8")
        if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
            cameras = [model.camera(i).name for i in range(model.ncam)]
            raise ValueError(f"the model has no camera {camera!r}; its cameras: {cameras}")
        if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
            model.vis.global_.offwidth = max(width, model.vis.global_.offwidth)
            model.vis.global_.offheight = max(height, model.vis.global_.offheight)
        self.camera = camera
        self.with_state = with_state
        self.renderer = self._make_renderer()
        self.view = camera_view()
        pixels = gym.spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.observation_space = (gym.spaces.Dict({"pixels": pixels,
                                                   "state": env.observation_space})
                                  if with_state else pixels)

    def _make_renderer(self) -> mujoco.Renderer:
        args = self._saved_kwargs
        renderer = mujoco.Renderer(self.env.unwrapped.model, args["height"], args["width"])
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = args["shadows"]
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = args["reflections"]
        return renderer

    def __getstate__(self) -> dict:
        # A GL context cannot be pickled, and a training checkpoint pickles the running envs:
        # leave the renderer out and make a new one on unpickling.
        return {key: value for key, value in self.__dict__.items()
                if key not in ("renderer", "view")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.renderer = self._make_renderer()
        self.view = camera_view()

    def render_camera(self) -> np.ndarray:
        # Visual randomization below this wrapper (randomization/visual.py), found by duck
        # typing so that sim/ does not import randomization/: textures re-uploaded to this
        # renderer, distractors added to the scene.
        terms = self._visual_terms()
        for term in terms:
            if hasattr(term, "attach_renderer"):
                term.attach_renderer(self.renderer)
        self.renderer.update_scene(self.env.unwrapped.data, camera=self.camera,
                                   scene_option=self.view)
        for term in terms:
            if hasattr(term, "add_to_scene"):
                term.add_to_scene(self.renderer.scene)
        return self.renderer.render()

    def _visual_terms(self) -> list:
        try:
            return list(self.env.get_wrapper_attr("visual_terms"))
        except AttributeError:
            return []

    def observation(self, observation):
        pixels = self.render_camera()
        return {"pixels": pixels, "state": observation} if self.with_state else pixels

    def close(self) -> None:
        self.renderer.close()
        super().close()
