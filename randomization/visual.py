"""Visual randomization terms: what the camera sees changes, the physics never does. Each term
has the interface of the model terms in randomization.terms (`names`, `nominal`, `sample`,
`apply`, `restore`), so `apply_terms` drives both; values are computed from the nominal (the two
terms on light_diffuse from the model's value just restored to nominal), so nothing compounds.
The lights' and the camera's terms are in visual_lights.py, the surfaces' in visual_surfaces.py;
the distractors are here, with `make_visual_term(s)`, which builds any of them.

Terms and what they write (one line each; RGB values are on 0-1):
  light_direction  light direction, a unit vector: nominal + draw per x, y, z, renormalised
                   (lights; add only; light_dir, or light_dir0 for tracking lights)
  light_diffuse    diffuse intensity, one draw per light on all of R, G, B (lights; >= 0)
  light_color      per-channel tint of the diffuse colour light_diffuse left (lights; >= 0)
  light_ambient    ambient intensity, one draw per light on all of R, G, B (lights; >= 0)
  light_shadows    whether a light casts shadows, a choice of 0 / 1 (lights; set)
  camera_position  camera position, m, per x, y, z (cameras; cam_pos, or for tracking cameras
                   the world-frame offset cam_pos0 / cam_poscom0 that MuJoCo uses instead)
  camera_rotation  the camera turned about its own x, y, z axes, degrees per axis (cameras;
                   add only; cam_quat, or cam_mat0 for tracking cameras)
  camera_fov       vertical field of view, degrees (cameras; clipped to 1-179)
  material_color   material colour per R, G, B, alpha kept (materials some element shows;
                   clipped to 0-1)
  geom_color       geom colour per R, G, B, alpha kept (geoms that show their own rgba, not a
                   material's; clipped to 0-1)
  texture          texture pixels: a procedural pattern (draw: 0 checker, 1 noise, 2 gradient)
                   in two random colours (textures; set; re-uploaded to attached renderers)
  distractors      this many visual-only primitives of random shape, size, colour and pose in a
                   box (draw: a whole number; set), added to a render scene, never to physics

Example:
    >>> term = make_visual_term(model, "light_diffuse", TermSpec(Distribution("uniform", 0.5, 1.5)))
    >>> term.apply(model, term.sample(rng))
"""

from __future__ import annotations

import os

# Rendering chooses its OpenGL backend when mujoco is imported: EGL works without a display.
os.environ.setdefault("MUJOCO_GL", "egl")

from typing import Any

import mujoco
import numpy as np

from randomization.term_spec import TermSpec, whole_draws
from randomization.visual_lights import (
    CameraRotationTerm,
    CameraTerm,
    LightDirectionTerm,
    LightTerm,
    ShadowTerm,
)
from randomization.visual_surfaces import ColorTerm, TextureTerm

VISUAL_TERM_NAMES = ("light_direction", "light_diffuse", "light_color", "light_ambient",
                     "light_shadows", "camera_position", "camera_rotation", "camera_fov",
                     "material_color",
                     "geom_color", "texture", "distractors")
DISTRACTOR_TYPES = (mujoco.mjtGeom.mjGEOM_SPHERE, mujoco.mjtGeom.mjGEOM_CAPSULE,
                    mujoco.mjtGeom.mjGEOM_ELLIPSOID, mujoco.mjtGeom.mjGEOM_CYLINDER,
                    mujoco.mjtGeom.mjGEOM_BOX)
MAX_DISTRACTORS = 32
# The arm's workspace in front of its base, m: where distractors go unless told otherwise.
WORKSPACE_BOX = ((0.05, 0.35), (-0.2, 0.2), (0.0, 0.1))
# Constructor keywords beyond the TermSpec, per term.
OPTIONS = {"texture": ("cells",), "distractors": ("box", "size")}
# The operation these terms always use, whatever a config says: their draw is the value itself
# (a switch, a pattern number, a count) or a perturbation.
FIXED_OPERATIONS = {"light_direction": "add", "camera_rotation": "add", "light_shadows": "set",
                    "texture": "set", "distractors": "set"}

class DistractorTerm:
    """A drawn number of visual-only primitives (sphere, capsule, ellipsoid, cylinder or box)
    of random half-sizes in `size` (m), colour, yaw and centre in `box` ((x lo, hi), (y lo, hi),
    (z lo, hi), m, world frame). They live only in a render scene: `add_to_scene(scene)` after
    `update_scene`, before `render`. Every slot up to the largest count is drawn on every reset,
    so the generator advances the same way whatever the count."""

    name = "distractors"
    KEYS = ("type", "size_x", "size_y", "size_z", "r", "g", "b", "x", "y", "z", "yaw")

    def __init__(self, model: mujoco.MjModel, spec: TermSpec,
                 box: tuple[tuple[float, float], ...] = WORKSPACE_BOX,
                 size: tuple[float, float] = (0.01, 0.03)) -> None:
        del model  # nothing in the model changes; kept for the common signature
        spec = TermSpec(spec.distribution, spec.match, "set")  # a count is the value
        spec.check(self.name)
        self.max_count = whole_draws(self.name, spec, 0, MAX_DISTRACTORS, "a number of distractors")
        box_array = np.asarray(box, dtype=float)
        if box_array.shape != (3, 2) or np.any(box_array[:, 0] > box_array[:, 1]):
            raise ValueError(f"randomization distractors: box {box!r} must be ((x low, high), "
                             "(y low, high), (z low, high)) with low <= high")
        if not (len(size) == 2 and 0 < size[0] <= size[1]):
            raise ValueError(f"randomization distractors: size {size!r} must be (low, high) "
                             "half-sizes in m with 0 < low <= high")
        self.spec, self.box, self.size = spec, box_array, (float(size[0]), float(size[1]))
        self.names = ["count", *(f"{k}.{key}" for k in range(self.max_count) for key in self.KEYS)]
        self.nominal = np.zeros(len(self.names))  # no distractors
        self.current = self.nominal.copy()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        n = self.max_count
        count = np.round(self.spec.distribution.sample(rng, 1))
        slots = np.column_stack([
            rng.integers(0, len(DISTRACTOR_TYPES), n), rng.uniform(*self.size, (n, 3)),
            rng.uniform(0.0, 1.0, (n, 3)), rng.uniform(self.box[:, 0], self.box[:, 1], (n, 3)),
            rng.uniform(-np.pi, np.pi, n)])
        return np.concatenate([count, slots.ravel()])

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        if len(values) != len(self.names):
            raise ValueError(f"randomization distractors: expected {len(self.names)} values, got "
                             f"{len(values)}")
        self.current = np.asarray(values, dtype=float).copy()

    def restore(self, model: mujoco.MjModel) -> None:
        self.current = self.nominal.copy()

    def add_to_scene(self, scene: mujoco.MjvScene) -> int:
        """Append the current distractors to `scene` (as far as maxgeom allows); return how many."""
        count = min(int(self.current[0]), self.max_count)
        slots = self.current[1:].reshape(self.max_count, len(self.KEYS))[:count]
        added = 0
        for slot in slots:
            if scene.ngeom >= scene.maxgeom:
                break
            c, s = np.cos(slot[10]), np.sin(slot[10])
            rotation = np.array([c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0])
            rgba = np.array([*slot[4:7], 1.0], dtype=np.float32)
            mujoco.mjv_initGeom(scene.geoms[scene.ngeom], int(DISTRACTOR_TYPES[int(slot[0])]),
                                slot[1:4].copy(), slot[7:10].copy(), rotation, rgba)
            scene.ngeom += 1
            added += 1
        return added


VisualTerm = (LightTerm | LightDirectionTerm | ShadowTerm | CameraTerm | ColorTerm | TextureTerm
              | DistractorTerm)


def make_visual_term(model: mujoco.MjModel, name: str, spec: TermSpec,
                     **options: Any) -> VisualTerm:
    """The visual term called `name` on this model (a plain lookup, no registry of classes).
    `options` are the extra keywords of texture (cells) and distractors (box, size)."""
    if name not in VISUAL_TERM_NAMES:
        raise ValueError(f"unknown visual randomization term {name!r}; known terms: "
                         f"{', '.join(VISUAL_TERM_NAMES)}")
    unknown = sorted(set(options) - set(OPTIONS.get(name, ())))
    if unknown:
        allowed = ", ".join(OPTIONS.get(name, ())) or "none"
        raise ValueError(f"randomization {name}: unknown option {unknown[0]!r}; its options: "
                         f"{allowed}")
    if name in ("light_diffuse", "light_color", "light_ambient"):
        return LightTerm(model, name, spec)
    if name == "light_direction":
        return LightDirectionTerm(model, spec)
    if name == "light_shadows":
        return ShadowTerm(model, spec)
    if name in ("camera_position", "camera_fov"):
        return CameraTerm(model, name, spec)
    if name == "camera_rotation":
        return CameraRotationTerm(model, spec)
    if name in ("material_color", "geom_color"):
        return ColorTerm(model, name, spec)
    if name == "texture":
        return TextureTerm(model, spec, **options)
    return DistractorTerm(model, spec, **options)


def make_visual_terms(model: mujoco.MjModel, specs: dict[str, TermSpec],
                      options: dict[str, dict[str, Any]] | None = None) -> list[VisualTerm]:
    """Every term of `specs`, in VISUAL_TERM_NAMES order (light_color tints what light_diffuse
    wrote, so it must come after it)."""
    options = options or {}
    stray = sorted(set(options) - set(specs))
    if stray:
        raise ValueError(f"randomization: options given for {stray[0]!r}, which is not among the "
                         f"terms ({', '.join(specs) or 'none'})")
    unknown = sorted(set(specs) - set(VISUAL_TERM_NAMES))
    if unknown:
        raise ValueError(f"unknown visual randomization term {unknown[0]!r}; known terms: "
                         f"{', '.join(VISUAL_TERM_NAMES)}")
    return [make_visual_term(model, name, specs[name], **options.get(name, {}))
            for name in VISUAL_TERM_NAMES if name in specs]
