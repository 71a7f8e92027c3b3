"""Visual randomization terms: what the camera sees changes, the physics never does. Each term
has the interface of the model terms in randomization.terms (`names`, `nominal`, `sample`,
`apply`, `restore`), so `apply_terms` drives both; values are computed from the nominal (the two
terms on light_diffuse from the model's value just restored to nominal), so nothing compounds.

Terms and what they write (one line each; RGB values are on 0-1):
  light_direction  light direction, a unit vector: nominal + draw per x, y, z, renormalised
                   (lights; add only; light_dir, or light_dir0 for tracking lights)
  light_diffuse    diffuse intensity, one draw per light on all of R, G, B (lights; >= 0)
  light_color      per-channel tint of the diffuse colour light_diffuse left (lights; >= 0)
  light_ambient    ambient intensity, one draw per light on all of R, G, B (lights; >= 0)
  light_shadows    whether a light casts shadows, a choice of 0 / 1 (lights; set)
  camera_position  camera position, m, per x, y, z (cameras; cam_pos, or for tracking cameras
                   the world-frame offset cam_pos0 / cam_poscom0 that MuJoCo uses instead)
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

import math
import weakref
from typing import Any

import mujoco
import numpy as np

from randomization.term_spec import TermSpec, combine, matching

VISUAL_TERM_NAMES = ("light_direction", "light_diffuse", "light_color", "light_ambient",
                     "light_shadows", "camera_position", "camera_fov", "material_color",
                     "geom_color", "texture", "distractors")
TEXTURE_PATTERNS = ("checker", "noise", "gradient")
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
FIXED_OPERATIONS = {"light_direction": "add", "light_shadows": "set", "texture": "set",
                    "distractors": "set"}

_TRACK = int(mujoco.mjtCamLight.mjCAMLIGHT_TRACK)
_TRACKCOM = int(mujoco.mjtCamLight.mjCAMLIGHT_TRACKCOM)
_TARGETS = (int(mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODY),
            int(mujoco.mjtCamLight.mjCAMLIGHT_TARGETBODYCOM))


def _per_channel(names: list[str], keys: str | tuple[str, ...]) -> list[str]:
    return [f"{name}.{key}" for name in names for key in keys]


def _check_scale_changes(term: str, spec: TermSpec, nominal: np.ndarray, names: list[str]) -> None:
    if spec.operation == "scale" and not np.any(nominal):
        raise ValueError(f"randomization {term}: the nominal values of {', '.join(names)} are all 0, "
                         "so operation 'scale' changes nothing; use add or set")


def _whole_draws(term: str, spec: TermSpec, low: int, high: int, what: str) -> int:
    """Check that a draw of `what` is a whole number in [low, high]; return the largest."""
    support = spec.distribution.support
    if not all(math.isfinite(v) and float(v).is_integer() for v in support):
        raise ValueError(f"randomization {term}: {what} is a whole number, but the distribution "
                         f"reaches {support}; use e.g. choice with whole numbers")
    if support[0] < low or support[1] > high:
        raise ValueError(f"randomization {term}: {what} must stay in {low}..{high}, the "
                         f"distribution reaches {support}")
    return int(support[1])


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
        self.names = _per_channel(lights, "rgb") if name == "light_color" else lights
        self.nominal = getattr(model, self.array)[self.ids].copy()
        _check_scale_changes(name, spec, self.nominal, lights)

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
        self.names = _per_channel(lights, "xyz")
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
        _whole_draws(self.name, spec, 0, 1, "a shadow switch (0 off, 1 on)")
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
            self.names = _per_channel(cameras, "xyz")
            self.arrays = [{_TRACK: "cam_pos0", _TRACKCOM: "cam_poscom0"}.get(
                int(model.cam_mode[i]), "cam_pos") for i in self.ids]
            self.nominal = np.array([getattr(model, a)[i] for a, i in zip(self.arrays, self.ids,
                                                                        strict=True)])
        _check_scale_changes(name, spec, self.nominal, cameras)

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
_DEFAULT_RGBA = np.array([0.5, 0.5, 0.5, 1.0], dtype=np.float32)


def _shows_own_rgba(rgba: np.ndarray, matid: np.ndarray) -> np.ndarray:
    return (matid < 0) | np.any(rgba != _DEFAULT_RGBA, axis=-1)


class ColorTerm:
    """material_color (mat_rgba) or geom_color (geom_rgba): one draw per R, G, B, alpha kept,
    clipped to [0, 1]. Each writes only colours that are seen: MuJoCo shows a geom's own rgba
    when it has no material or when its rgba differs from the default (0.5, 0.5, 0.5, 1), and
    its material's rgba otherwise; geom_color skips the geoms that show their material, and
    material_color the materials that no element shows."""

    def __init__(self, model: mujoco.MjModel, name: str, spec: TermSpec) -> None:
        spec.check(name)
        self.name, self.spec = name, spec
        if name == "material_color":
            self.array = "mat_rgba"
            ids, elements = matching(model, mujoco.mjtObj.mjOBJ_MATERIAL, model.nmat, name, spec,
                                     "material")
            shown = set()
            for kind in ("geom", "site", "tendon"):
                matid = getattr(model, f"{kind}_matid")
                shown.update(matid[~_shows_own_rgba(getattr(model, f"{kind}_rgba"), matid)].tolist())
            shown.update(model.skin_matid.tolist() + model.flex_matid.tolist())
            keep = [k for k, i in enumerate(ids) if i in shown]
            if not keep:
                users = [model.geom(g).name or f"#{g}" for g in range(model.ngeom)
                         if model.geom_matid[g] in ids]
                raise ValueError(f"randomization material_color: no element shows material(s) "
                                 f"{', '.join(elements)} (match {spec.match!r}): the geoms using "
                                 f"them ({', '.join(users) or 'none'}) set their own rgba, which "
                                 "overrides the material's; randomize geom_color instead")
        else:
            self.array = "geom_rgba"
            ids, elements = matching(model, mujoco.mjtObj.mjOBJ_GEOM, model.ngeom, name, spec,
                                     "geom")
            own = _shows_own_rgba(model.geom_rgba[ids], model.geom_matid[ids])
            keep = [k for k in range(len(ids)) if own[k]]
            if not keep:
                raise ValueError(f"randomization geom_color: every geom match {spec.match!r} names "
                                 f"({', '.join(elements)}) shows its material's colour; randomize "
                                 "material_color instead")
        self.ids, elements = [ids[k] for k in keep], [elements[k] for k in keep]
        self.names = _per_channel(elements, "rgb")
        self.nominal = getattr(model, self.array)[self.ids, :3].copy()
        _check_scale_changes(name, spec, self.nominal, elements)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.spec.distribution.sample(rng, len(self.names))

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        new = combine(self.spec.operation, self.nominal, values.reshape(-1, 3))
        getattr(model, self.array)[self.ids, :3] = np.clip(new, 0.0, 1.0)

    def restore(self, model: mujoco.MjModel) -> None:
        getattr(model, self.array)[self.ids, :3] = self.nominal


def _pattern(kind: int, color1: np.ndarray, color2: np.ndarray, cells: int, seed: int,
             height: int, width: int) -> np.ndarray:
    """An RGB image (height, width, 3) on 0-1. Cells are square in pixels, so a cube texture
    (six width x width faces stacked) gets the same pattern scale on every face."""
    rng = np.random.default_rng(seed)
    cell = max(width / cells, 1.0)
    v, u = np.mgrid[0:height, 0:width] / cell
    if TEXTURE_PATTERNS[kind] == "checker":
        mix = (np.floor(u) + np.floor(v)) % 2
    elif TEXTURE_PATTERNS[kind] == "noise":
        coarse = rng.random((int(np.ceil(height / cell)) + 1, int(np.ceil(width / cell)) + 1))
        mix = 0.7 * coarse[v.astype(int), u.astype(int)] + 0.3 * rng.random((height, width))
    else:
        angle = rng.uniform(0.0, 2.0 * np.pi)
        ramp = u * np.cos(angle) + v * np.sin(angle)
        mix = (ramp - ramp.min()) / max(np.ptp(ramp), 1e-9)
    return color1 + mix[..., None] * (color2 - color1)


def upload_texture(renderer: mujoco.Renderer, model: mujoco.MjModel, texid: int) -> None:
    """Send texture `texid` of `model` to the GPU copy a renderer keeps (skipped once closed).
    mujoco 3.11's Renderer has no public way: this uses its private GL and render contexts."""
    context = getattr(renderer, "_mjr_context", None)
    if context is None:
        return
    gl_context = getattr(renderer, "_gl_context", None)
    if gl_context is not None:
        gl_context.make_current()  # the upload goes to whichever GL context is current
    mujoco.mjr_uploadTexture(model, context, texid)


class TextureTerm:
    """New pixels for each matched texture: a procedural pattern (the draw picks it: 0 checker,
    1 noise, 2 gradient) between two random colours, with a random number of cells across the
    width (`cells`, the range of whole numbers). A renderer keeps its own copy of every texture on
    the GPU, so apply and restore re-upload to every renderer given to `attach_renderer`; a
    renderer made later reads the model as it is then."""

    name = "texture"
    KEYS = ("pattern", "r1", "g1", "b1", "r2", "g2", "b2", "cells", "seed")

    def __init__(self, model: mujoco.MjModel, spec: TermSpec,
                 cells: tuple[int, int] = (2, 12)) -> None:
        spec = TermSpec(spec.distribution, spec.match, "set")  # a pattern number is the value
        spec.check(self.name)
        _whole_draws(self.name, spec, 0, len(TEXTURE_PATTERNS) - 1,
                     "a pattern (" + ", ".join(f"{k} {p}" for k, p in enumerate(TEXTURE_PATTERNS))
                     + ")")
        if not (len(cells) == 2 and 1 <= cells[0] <= cells[1]):
            raise ValueError(f"randomization texture: cells {cells!r} must be (low, high) with "
                             "1 <= low <= high")
        self.spec, self.cells = spec, (int(cells[0]), int(cells[1]))
        self.ids, textures = matching(model, mujoco.mjtObj.mjOBJ_TEXTURE, model.ntex, self.name,
                                      spec, "texture")
        for i, texture in zip(self.ids, textures, strict=True):
            if model.tex_nchannel[i] not in (3, 4):
                raise ValueError(f"randomization texture: texture {texture!r} has "
                                 f"{model.tex_nchannel[i]} channels; only RGB(A) textures can be "
                                 "rewritten; narrow match")
        self.names = _per_channel(textures, self.KEYS)
        self.slices = [slice(int(model.tex_adr[i]), int(model.tex_adr[i] + model.tex_height[i]
                                                        * model.tex_width[i] * model.tex_nchannel[i]))
                       for i in self.ids]
        self.nominal = np.concatenate([model.tex_data[s] for s in self.slices])
        self.renderers: weakref.WeakSet[mujoco.Renderer] = weakref.WeakSet()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        n = len(self.ids)
        pattern = np.round(self.spec.distribution.sample(rng, n))
        colors = rng.uniform(0.0, 1.0, (n, 6))
        cells = rng.integers(self.cells[0], self.cells[1] + 1, n)
        seed = rng.integers(0, 2**31, n)
        return np.column_stack([pattern, colors, cells, seed]).ravel()

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        rows = np.asarray(values, dtype=float).reshape(len(self.ids), len(self.KEYS))
        for i, s, row in zip(self.ids, self.slices, rows, strict=True):
            height, width, channels = (int(model.tex_height[i]), int(model.tex_width[i]),
                                       int(model.tex_nchannel[i]))
            rgb = _pattern(int(row[0]), row[1:4], row[4:7], int(row[7]), int(row[8]), height, width)
            pixels = model.tex_data[s].reshape(height, width, channels)
            pixels[..., :3] = np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8)
        self._upload(model)

    def restore(self, model: mujoco.MjModel) -> None:
        offset = 0
        for s in self.slices:
            size = s.stop - s.start
            model.tex_data[s] = self.nominal[offset:offset + size]
            offset += size
        self._upload(model)

    def attach_renderer(self, renderer: mujoco.Renderer) -> None:
        """Keep `renderer`'s GPU textures in step with the model from now on."""
        if renderer not in self.renderers:
            self.renderers.add(renderer)
            for i in self.ids:  # it may have been made before the last apply
                upload_texture(renderer, renderer.model, i)

    def _upload(self, model: mujoco.MjModel) -> None:
        for renderer in list(self.renderers):
            for i in self.ids:
                upload_texture(renderer, model, i)


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
        self.max_count = _whole_draws(self.name, spec, 0, MAX_DISTRACTORS, "a number of distractors")
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
