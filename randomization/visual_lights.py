"""Visual randomization of the lights and the camera (the table of every visual term and what it
writes is randomization/visual.py's): light_direction, light_diffuse, light_color,
light_ambient, light_shadows, camera_position, camera_rotation, camera_fov."""

from __future__ import annotations

import os

# Rendering chooses its OpenGL backend when mujoco is imported: EGL works without a display.
os.environ.setdefault("MUJOCO_GL", "egl")


import mujoco
import numpy as np

from randomization.term_spec import TermSpec, check_scale_changes, combine, matching, per_channel, whole_draws

_TRACK = int(mujoco.mjtCamLight.mjCAMLIGHT_TRACK)
_TRACKCOM = int(mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM)
_TARGETS = (int(mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY),
            int(mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODYCOM))


class LightTerm:
    """light_diffuse / light_ambient: one draw per light for all of R, G, B; light_color: one
    draw per channel. light_diffuse and light_color both write light_diffuse, so (as the model
    terms that share a field do) they combine with the value in the model, which `randomize` /
    `apply_terms` has just restored to nominal: scale on both gives intensity * tint, whatever
    the order."""

    def __init__(self, model: mujoco.MjModel, name: str, spec: TermSpec) -> None:
        spec.check(name)
        self.name, self.spec = name, spec
        self.ids, lights = matching(model, mujoco.mjtObj.mjOBJ_LIGHT, model.nlight, name, spec,
                                    "light")
        self.array = "light_ambient" if name == "light_ambient" else "light_diffuse"
        self.names = per_channel(lights, "rgb") if name == "light_color" else lights
        self.nominal = getattr(model, self.array)[self.ids].copy()
        check_scale_changes(name, spec, self.nominal, lights)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.spec.distribution.sample(rng, len(self.names))

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        array = getattr(model, self.array)
        per_light = values.reshape(-1, 3) if self.name == "light_color" else values[:, None]
        array[self.ids] = np.clip(combine(self.spec.operation, array[self.ids], per_light), 0.0,
                                 None)  # a light cannot be darker than off

    def restore(self, model: mujoco.MjModel) -> None:
        getattr(model, self.array)[self.ids] = self.nominal


class LightDirectionTerm:
    """Nominal direction plus a draw per x, y, z, renormalised: add normal(0, 0.3) tilts each
    light by about 17 degrees."""

    name = "light_direction"

    def __init__(self, model: mujoco.MjModel, spec: TermSpec) -> None:
        spec.check(self.name)
        if spec.operation != "add":
            raise ValueError(f"randomization light_direction: operation {spec.operation!r} is not "
                             "supported; a direction is perturbed: use add")
        self.spec = spec
        self.ids, lights = matching(model, mujoco.mjtObj.mjOBJ_LIGHT, model.nlight, self.name,
                                    spec, "light")
        modes = [int(model.light_mode[i]) for i in self.ids]
        aimed = [light for light, mode in zip(lights, modes, strict=True) if mode in _TARGETS]
        if aimed:
            raise ValueError(f"randomization light_direction: light {aimed[0]!r} points at its "
                             "target body, so its direction cannot be randomized; narrow match")
        # A tracking light's world direction is light_dir0; MuJoCo ignores light_dir for it.
        self.tracking = np.array([mode in (_TRACK, _TRACKCOM) for mode in modes])
        self.names = per_channel(lights, "xyz")
        self.nominal = np.where(self.tracking[:, None], model.light_dir0[self.ids],
                                model.light_dir[self.ids])

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.spec.distribution.sample(rng, len(self.names))

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        new = self.nominal + values.reshape(-1, 3)
        norm = np.linalg.norm(new, axis=1, keepdims=True)
        new = np.where(norm > 1e-9, new / np.maximum(norm, 1e-9), self.nominal)
        self._write(model, new)

    def _write(self, model: mujoco.MjModel, directions: np.ndarray) -> None:
        for row, (i, tracking) in enumerate(zip(self.ids, self.tracking, strict=True)):
            (model.light_dir0 if tracking else model.light_dir)[i] = directions[row]

    def restore(self, model: mujoco.MjModel) -> None:
        self._write(model, self.nominal)


class ShadowTerm:
    """Whether each light casts shadows: a choice of 0 (off) / 1 (on). Shadows only show when the
    model has a shadow map (visual/quality shadowsize > 0) and the renderer's shadow flag is on."""

    name = "light_shadows"

    def __init__(self, model: mujoco.MjModel, spec: TermSpec) -> None:
        # An on/off draw has no nominal to scale: it is the value.
        spec = TermSpec(spec.distribution, spec.match, "set")
        spec.check(self.name)
        whole_draws(self.name, spec, 0, 1, "a shadow switch (0 off, 1 on)")
        if model.vis.quality.shadowsize <= 0:
            raise ValueError("randomization light_shadows: the model has no shadow map "
                             f"(visual/quality shadowsize={model.vis.quality.shadowsize}), so no "
                             "light casts a shadow; set model.vis.quality.shadowsize (e.g. 2048) "
                             "before creating renderers")
        self.spec = spec
        self.ids, self.names = matching(model, mujoco.mjtObj.mjOBJ_LIGHT, model.nlight, self.name,
                                        spec, "light")
        self.nominal = model.light_castshadow[self.ids].copy()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.spec.distribution.sample(rng, len(self.ids))

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        model.light_castshadow[self.ids] = np.asarray(values) > 0.5

    def restore(self, model: mujoco.MjModel) -> None:
        model.light_castshadow[self.ids] = self.nominal


class CameraRotationTerm:
    """camera_rotation: the camera turned about its own x (tilt), y (pan) and z (roll) axes,
    degrees per axis (add: a mount placed by hand). A fixed camera's orientation is cam_quat in
    its body's frame; a tracking camera's, the world-frame cam_mat0. A camera aimed at a target
    body is turned towards it at every step, so no draw could turn it: refused."""

    name = "camera_rotation"

    def __init__(self, model: mujoco.MjModel, spec: TermSpec) -> None:
        spec.check(self.name)
        self.spec = spec
        self.ids, cameras = matching(model, mujoco.mjtObj.mjOBJ_CAMERA, model.ncam, self.name,
                                     spec, "camera")
        aimed = [name for name, i in zip(cameras, self.ids, strict=True)
                 if model.cam_mode[i] in (mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY,
                                          mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODYCOM)]
        if aimed:
            raise ValueError(f"randomization camera_rotation: camera {aimed[0]!r} is aimed at a "
                             "target body, which sets its orientation every step; match only "
                             "fixed or tracking cameras, or move it with camera_position")
        self.names = per_channel(cameras, "xyz")
        self.tracking = [int(model.cam_mode[i]) in (_TRACK, _TRACKCOM) for i in self.ids]
        self.nominal = np.array([model.cam_mat0[i].copy() if tracking else model.cam_quat[i].copy()
                                 for i, tracking in zip(self.ids, self.tracking, strict=True)],
                                dtype=object)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.spec.distribution.sample(rng, len(self.names))

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        for row, degrees in enumerate(np.asarray(values).reshape(-1, 3)):
            turn = np.zeros(4)
            mujoco.mju_euler2Quat(turn, np.radians(degrees), "XYZ")  # about the camera's axes
            self._write(model, row, turn)

    def _write(self, model: mujoco.MjModel, row: int, turn: np.ndarray) -> None:
        i, nominal = self.ids[row], self.nominal[row]
        if self.tracking[row]:
            turned = np.zeros(9)
            mujoco.mju_quat2Mat(turned, turn)
            model.cam_mat0[i] = (nominal.reshape(3, 3) @ turned.reshape(3, 3)).ravel()
        else:
            mujoco.mju_mulQuat(model.cam_quat[i], nominal, turn)

    def restore(self, model: mujoco.MjModel) -> None:
        for row in range(len(self.ids)):
            self._write(model, row, np.array([1.0, 0.0, 0.0, 0.0]))


class CameraTerm:
    """camera_position: x, y, z per camera, m; camera_fov: vertical field of view, degrees.

    A fixed camera (or one aimed at a target body) is placed by cam_pos, in its body's frame. A
    tracking camera (mode track / trackcom) ignores cam_pos at runtime: its position is its body's
    position (or subtree centre of mass) plus the world-frame offset cam_pos0 (cam_poscom0), so
    that offset is what this term writes."""

    def __init__(self, model: mujoco.MjModel, name: str, spec: TermSpec) -> None:
        spec.check(name)
        self.name, self.spec = name, spec
        self.ids, cameras = matching(model, mujoco.mjtObj.mjOBJ_CAMERA, model.ncam, name, spec,
                                     "camera")
        if name == "camera_fov":
            self.names, self.arrays = cameras, ["cam_fovy"] * len(self.ids)
            self.nominal = model.cam_fovy[self.ids].copy()
        else:
            self.names = per_channel(cameras, "xyz")
            self.arrays = [{_TRACK: "cam_pos0", _TRACKCOM: "cam_poscom0"}.get(
                int(model.cam_mode[i]), "cam_pos") for i in self.ids]
            self.nominal = np.array([getattr(model, a)[i] for a, i in zip(self.arrays, self.ids,
                                                                        strict=True)])
        check_scale_changes(name, spec, self.nominal, cameras)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.spec.distribution.sample(rng, len(self.names))

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        new = combine(self.spec.operation, self.nominal, values.reshape(self.nominal.shape))
        if self.name == "camera_fov":
            new = np.clip(new, 1.0, 179.0)  # beyond these a perspective projection degenerates
        self._write(model, new)

    def _write(self, model: mujoco.MjModel, new: np.ndarray) -> None:
        for row, (array, i) in enumerate(zip(self.arrays, self.ids, strict=True)):
            getattr(model, array)[i] = new[row]

    def restore(self, model: mujoco.MjModel) -> None:
        self._write(model, self.nominal)


# MuJoCo draws an element with its material's colour only while the element's own rgba is this
# default; any other rgba overrides the material's.
