"""Visual randomization of surfaces (the table of every visual term and what it writes is
randomization/visual.py's): material_color, geom_color, texture."""

from __future__ import annotations

import os

# Rendering chooses its OpenGL backend when mujoco is imported: EGL works without a display.
os.environ.setdefault("MUJOCO_GL", "egl")

import weakref

import mujoco
import numpy as np

from randomization.term_spec import TermSpec, check_scale_changes, combine, matching, per_channel, whole_draws

TEXTURE_PATTERNS = ("checker", "noise", "gradient")
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
        self.names = per_channel(elements, "rgb")
        self.nominal = getattr(model, self.array)[self.ids, :3].copy()
        check_scale_changes(name, spec, self.nominal, elements)

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
        whole_draws(self.name, spec, 0, len(TEXTURE_PATTERNS) - 1,
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
        self.names = per_channel(textures, self.KEYS)
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

    def __getstate__(self) -> dict:
        # Renderers hold GL contexts, which cannot be pickled (a checkpoint pickles the envs):
        # the renderer made on unpickling attaches itself again at its first render.
        return {key: value for key, value in self.__dict__.items() if key != "renderers"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.renderers = weakref.WeakSet()

    def _upload(self, model: mujoco.MjModel) -> None:
        for renderer in list(self.renderers):
            for i in self.ids:
                upload_texture(renderer, model, i)
