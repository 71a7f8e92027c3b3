"""Pixel observations: RGB from the robot's camera, optionally beside the task's state vector.

Shadows and reflections are off by default: on a CPU renderer they cost about 10x the frame
rate (about 34 vs 436 frames/s at 84x84 here) and a policy rarely needs them.
"""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np


class PixelObservation(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Replace (or join) the observation with a camera image of shape (height, width, 3), uint8.

    Example:
        >>> env = PixelObservation(make_env("sim2real/ArmReach-v0"), width=84, height=84)
        >>> obs, _ = env.reset(seed=0)
        >>> obs["pixels"].shape, obs["state"].shape
        ((84, 84, 3), (21,))
    """

    def __init__(self, env: gym.Env, width: int = 84, height: int = 84, camera: str = "workspace",
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
        return {key: value for key, value in self.__dict__.items() if key != "renderer"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.renderer = self._make_renderer()

    def render_camera(self) -> np.ndarray:
        # Visual randomization below this wrapper (randomization/visual.py), found by duck
        # typing so that sim/ does not import randomization/: textures re-uploaded to this
        # renderer, distractors added to the scene.
        terms = self._visual_terms()
        for term in terms:
            if hasattr(term, "attach_renderer"):
                term.attach_renderer(self.renderer)
        self.renderer.update_scene(self.env.unwrapped.data, camera=self.camera)
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
