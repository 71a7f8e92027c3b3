"""A picture of visual domain randomization: the nominal scene and randomized domains from one
camera in a grid PNG. `python -m randomization.montage` writes docs/images/visual_randomization.png
(our arm under every visual term it supports)."""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco
import numpy as np

from randomization.term_spec import Distribution, TermSpec
from randomization.terms import apply_terms
from randomization.visual import make_visual_terms


def randomize(model: mujoco.MjModel, terms: list, rng: np.random.Generator
              ) -> dict[str, dict[str, float]]:
    """One draw of every term, applied from the nominal model (apply_terms). Returns
    {term: {name: value}}."""
    values = {term.name: term.sample(rng) for term in terms}
    apply_terms(model, terms, values)
    return {term.name: dict(zip(term.names, values[term.name].tolist(), strict=True))
            for term in terms}


def render_with_terms(renderer: mujoco.Renderer, data: mujoco.MjData, camera: str | int,
                      terms: list) -> np.ndarray:
    """One frame with the visual terms in effect: textures uploaded, distractors added."""
    for term in terms:
        if hasattr(term, "attach_renderer"):
            term.attach_renderer(renderer)
    renderer.update_scene(data, camera=camera)
    for term in terms:
        if hasattr(term, "add_to_scene"):
            term.add_to_scene(renderer.scene)
    return renderer.render()


def save_montage(model: mujoco.MjModel, data: mujoco.MjData, terms: list,
                 rng: np.random.Generator, path: str | Path, camera: str = "workspace",
                 count: int = 8, size: int = 160) -> Path:
    """Render the nominal scene and `count` randomized domains from `camera` into one grid PNG
    with a title; the model is back to nominal afterwards."""
    from matplotlib.figure import Figure

    if count < 1 or size < 8:
        raise ValueError(f"montage: count {count} must be >= 1 and size {size} >= 8")
    if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
        raise ValueError(f"montage: the model has no camera {camera!r}; its cameras: "
                         f"{[model.camera(i).name for i in range(model.ncam)]}")
    model.vis.global_.offwidth = max(size, model.vis.global_.offwidth)
    model.vis.global_.offheight = max(size, model.vis.global_.offheight)
    images, labels = [], []
    with mujoco.Renderer(model, size, size) as renderer:
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = model.vis.quality.shadowsize > 0
        for term in terms:
            term.restore(model)
        mujoco.mj_forward(model, data)
        images.append(render_with_terms(renderer, data, camera, terms))
        labels.append("nominal")
        for k in range(count):
            randomize(model, terms, rng)
            mujoco.mj_forward(model, data)
            images.append(render_with_terms(renderer, data, camera, terms))
            labels.append(f"domain {k + 1}")
        for term in terms:
            term.restore(model)
        mujoco.mj_forward(model, data)
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    figure = Figure(figsize=(2.2 * columns, 2.3 * rows + 0.7), dpi=100, layout="constrained")
    for k, (image, label) in enumerate(zip(images, labels, strict=True)):
        axes = figure.add_subplot(rows, columns, k + 1)
        axes.imshow(image)
        axes.set_title(label, fontsize=9)
        axes.axis("off")
    names = textwrap.fill(", ".join(term.name for term in terms) or "no terms", 22 * columns)
    figure.suptitle(f"Visual domain randomization, camera {camera!r}\n{names}", fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


# Every visual term that our arm's scene supports (the montage in docs/images shows them). Not
# material_color: the arm's one material (the floor's) is overridden by the floor geom's own
# rgba, so geom_color covers the floor.
ARM_VISUAL_SPECS = {
    "light_direction": TermSpec(Distribution("normal", mean=0.0, std=0.2), operation="add"),
    "light_diffuse": TermSpec(Distribution("uniform", 0.4, 1.4)),
    "light_color": TermSpec(Distribution("uniform", 0.6, 1.0)),
    "light_ambient": TermSpec(Distribution("uniform", 0.0, 0.3), operation="add"),
    "light_shadows": TermSpec(Distribution("choice", choices=(0.0, 1.0))),
    "camera_position": TermSpec(Distribution("uniform", -0.05, 0.05), operation="add"),
    "camera_fov": TermSpec(Distribution("uniform", 0.85, 1.15)),
    "geom_color": TermSpec(Distribution("uniform", 0.05, 0.95), operation="set"),
    "texture": TermSpec(Distribution("choice", choices=(0.0, 1.0, 2.0))),
    "distractors": TermSpec(Distribution("choice", choices=(0.0, 1.0, 2.0, 3.0))),
}


def main() -> None:
    """Write docs/images/visual_randomization.png: our arm under every visual term."""
    root = Path(__file__).resolve().parents[1]
    model = mujoco.MjModel.from_xml_path(str(root / "sim" / "assets" / "so_arm.xml"))
    model.vis.quality.shadowsize = 2048  # the arm ships without a shadow map; light_shadows needs one
    data = mujoco.MjData(model)
    terms = make_visual_terms(model, ARM_VISUAL_SPECS)
    path = save_montage(model, data, terms, np.random.default_rng(0),
                        root / "docs" / "images" / "visual_randomization.png")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
