"""Visual randomization terms: draws stay in their support, the model field (or the scene) really
changes, restore gives the nominal back exactly, the same seed repeats, and rendered images
change measurably.

Image thresholds, mean absolute difference per pixel and channel on 0-255 at 64x64 from the
arm's `workspace` camera: IMAGE_CHANGE (2.0) for the terms that change the whole frame (lights,
camera, colours, textures); LOCAL_CHANGE (0.5) for the two whose effect is local by nature:
light_shadows (the arm's thin shadow on the floor, about 1 here) and distractors (two or three
objects a few cm across, about 1.5-1.8 here).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from randomization.envs import make_env
from randomization.montage import ARM_VISUAL_SPECS, randomize, render_with_terms, save_montage
from randomization.terms import Distribution, TermSpec
from randomization.visual import DistractorTerm, TextureTerm, make_visual_term, make_visual_terms
from sim.pixels import PixelObservation

ARM_XML = Path(__file__).parents[2] / "sim" / "assets" / "so_arm.xml"
SIZE = 64
IMAGE_CHANGE = 2.0
LOCAL_CHANGE = 0.5

# A spec per term that changes the arm's picture; light_shadows is "always off" (the nominal
# light casts shadows), distractors always add some.
ARM_CASES = {
    "light_direction": (TermSpec(Distribution("uniform", -0.6, 0.6), operation="add"), {}),
    "light_diffuse": (TermSpec(Distribution("uniform", 0.2, 0.5)), {}),
    "light_color": (TermSpec(Distribution("uniform", 0.2, 1.0)), {}),
    "light_ambient": (TermSpec(Distribution("uniform", 0.2, 0.5), operation="add"), {}),
    "light_shadows": (TermSpec(Distribution("choice", choices=(0.0,))), {}),
    "camera_position": (TermSpec(Distribution("uniform", -0.1, 0.1), operation="add"), {}),
    "camera_rotation": (TermSpec(Distribution("uniform", -8.0, 8.0), operation="add"), {}),
    "camera_fov": (TermSpec(Distribution("uniform", 0.6, 0.8)), {}),
    "geom_color": (TermSpec(Distribution("uniform", 0.0, 1.0), operation="set"), {}),
    "texture": (TermSpec(Distribution("choice", choices=(0.0, 1.0, 2.0))), {}),
    "distractors": (TermSpec(Distribution("choice", choices=(2.0, 3.0))),
                    {"size": (0.02, 0.04)}),
}
# The model arrays each term writes (distractors write none).
FIELDS = {"light_direction": ("light_dir", "light_dir0"), "light_diffuse": ("light_diffuse",),
          "light_color": ("light_diffuse",), "light_ambient": ("light_ambient",),
          "light_shadows": ("light_castshadow",),
          "camera_position": ("cam_pos", "cam_pos0", "cam_poscom0"), "camera_fov": ("cam_fovy",),
          "camera_rotation": ("cam_quat", "cam_mat0"),
          "geom_color": ("geom_rgba",), "material_color": ("mat_rgba",), "texture": ("tex_data",),
          "distractors": ()}


def image_difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def snapshot(model: mujoco.MjModel, name: str) -> dict[str, np.ndarray]:
    return {field: getattr(model, field).copy() for field in FIELDS[name]}


def distribution_draws(term, values: np.ndarray) -> np.ndarray:
    """The values that come from the term's distribution (the rest are the term's own draws)."""
    if isinstance(term, TextureTerm):
        return values.reshape(-1, len(TextureTerm.KEYS))[:, 0]
    if isinstance(term, DistractorTerm):
        return values[:1]
    return values


class Scene:
    """A model with its data and one 64x64 renderer, shadows on."""

    def __init__(self, model: mujoco.MjModel, camera: str | int) -> None:
        model.vis.quality.shadowsize = 1024
        self.model, self.data, self.camera = model, mujoco.MjData(model), camera
        mujoco.mj_forward(model, self.data)
        self.renderer = mujoco.Renderer(model, SIZE, SIZE)
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = True

    def render(self, terms: list = ()) -> np.ndarray:
        mujoco.mj_forward(self.model, self.data)
        return render_with_terms(self.renderer, self.data, self.camera, list(terms))


@pytest.fixture(scope="module")
def arm():
    scene = Scene(mujoco.MjModel.from_xml_path(str(ARM_XML)), "workspace")
    yield scene
    scene.renderer.close()


def check_term(scene: Scene, name: str, spec: TermSpec, options: dict, threshold: float) -> float:
    """Support, change, exact restore and seeding of one term; returns the image difference."""
    model = scene.model
    term = make_visual_term(model, name, spec, **options)
    nominal_fields, nominal_image = snapshot(model, name), scene.render([term])

    rng = np.random.default_rng(0)
    low, high = spec.distribution.support
    for _ in range(100):
        values = term.sample(rng)
        assert values.shape == (len(term.names),)
        drawn = distribution_draws(term, values)
        assert np.all((drawn >= low) & (drawn <= high)), (name, drawn)
    np.testing.assert_array_equal(term.sample(np.random.default_rng(7)),
                                  term.sample(np.random.default_rng(7)))

    term.apply(model, term.sample(np.random.default_rng(1)))
    changed = scene.render([term])
    if FIELDS[name]:
        assert any(not np.array_equal(getattr(model, f), v) for f, v in nominal_fields.items())
    difference = image_difference(nominal_image, changed)
    assert difference > threshold, f"{name}: the image changed by only {difference:.2f}"

    term.restore(model)
    for field, value in nominal_fields.items():
        assert np.array_equal(getattr(model, field), value), (name, field)
    assert np.array_equal(scene.render([term]), nominal_image), name
    print(f"{name} ({spec.match}, camera {scene.camera}): image difference {difference:.2f}")
    return difference


@pytest.mark.parametrize("name", list(ARM_CASES))
def test_term_on_the_arm(arm: Scene, name: str) -> None:
    spec, options = ARM_CASES[name]
    threshold = LOCAL_CHANGE if name in ("light_shadows", "distractors") else IMAGE_CHANGE
    check_term(arm, name, spec, options, threshold)


def test_shadow_draws_colour_clipping_and_light_composition() -> None:
    model = mujoco.MjModel.from_xml_path(str(ARM_XML))
    model.vis.quality.shadowsize = 1024
    shadows = make_visual_term(model, "light_shadows",
                               TermSpec(Distribution("choice", choices=(0.0, 1.0))))
    rng = np.random.default_rng(0)
    assert set(np.concatenate([shadows.sample(rng) for _ in range(20)])) == {0.0, 1.0}
    color = make_visual_term(model, "geom_color", TermSpec(Distribution("uniform", 0.5, 3.0)))
    alpha = model.geom_rgba[color.ids, 3].copy()
    color.apply(model, np.full(len(color.names), 3.0))
    assert np.all(model.geom_rgba[color.ids, :3] <= 1.0)
    assert np.array_equal(model.geom_rgba[color.ids, 3], alpha)  # alpha untouched
    # light_diffuse and light_color share light_diffuse: intensity * tint, in either order.
    diffuse = make_visual_term(model, "light_diffuse", TermSpec(Distribution("uniform", 0.5, 0.5)))
    tint = make_visual_term(model, "light_color", TermSpec(Distribution("uniform", 0.5, 1.0)))
    draws = {diffuse: np.array([0.5]), tint: np.array([0.5, 0.8, 1.0])}
    nominal = model.light_diffuse[0].copy()
    for order in ((diffuse, tint), (tint, diffuse)):
        for term in order:
            term.restore(model)
        for term in order:
            term.apply(model, draws[term])
        np.testing.assert_allclose(model.light_diffuse[0], nominal * 0.5 * draws[tint])


# One camera of each kind, a body to track, a floor with a textured material that it shows.
TRACKING_XML = """
<mujoco>
  <visual><global offwidth="64" offheight="64"/></visual>
  <asset>
    <texture name="tiles" type="2d" builtin="checker" rgb1="0.8 0.8 0.8" rgb2="0.3 0.3 0.3"
             width="64" height="64"/>
    <material name="ground" texture="tiles" texrepeat="4 4"/>
    <material name="paint" rgba="0.2 0.4 0.9 1"/>
  </asset>
  <worldbody>
    <light name="sun" pos="0 0 3" dir="0 0 -1" directional="true"/>
    <geom name="floor" type="plane" size="3 3 0.1" material="ground"/>
    <camera name="fixed" pos="0 -1.5 1.2" xyaxes="1 0 0 0 0.6 0.8"/>
    <body name="ball" pos="0 0 0.3">
      <joint name="slide" type="slide" axis="1 0 0"/>
      <geom name="ball" type="sphere" size="0.25" material="paint"/>
      <geom name="marker" type="box" size="0.05 0.05 0.4" pos="0.4 0 0.1" rgba="0.9 0.2 0.2 1"/>
      <camera name="track" mode="track" pos="0 -1.5 1.2" xyaxes="1 0 0 0 0.6 0.8"/>
      <camera name="trackcom" mode="trackcom" pos="0 -1.5 1.2" xyaxes="1 0 0 0 0.6 0.8"/>
    </body>
  </worldbody>
</mujoco>"""


@pytest.mark.parametrize("camera,field", [("fixed", "cam_pos"), ("track", "cam_pos0"),
                                          ("trackcom", "cam_poscom0")])
def test_camera_terms_move_fixed_and_tracking_cameras(camera: str, field: str) -> None:
    scene = Scene(mujoco.MjModel.from_xml_string(TRACKING_XML), camera)
    model, data = scene.model, scene.data
    try:
        position = make_visual_term(model, "camera_position", TermSpec(
            Distribution("uniform", 0.2, 0.3), match=camera, operation="add"))
        assert position.arrays == [field]
        nominal_pose = data.cam_xpos[position.ids[0]].copy()
        check_term(scene, "camera_position", position.spec, {}, IMAGE_CHANGE)
        # The camera really moves by the drawn offset (MuJoCo ignores cam_pos when tracking).
        values = position.sample(np.random.default_rng(2))
        position.apply(model, values)
        mujoco.mj_forward(model, data)
        np.testing.assert_allclose(data.cam_xpos[position.ids[0]], nominal_pose + values)
        position.restore(model)
        check_term(scene, "camera_fov", TermSpec(Distribution("uniform", 1.3, 1.6), match=camera),
                   {}, IMAGE_CHANGE)
    finally:
        scene.renderer.close()


@pytest.mark.parametrize("camera", ["fixed", "track"])
def test_camera_rotation_turns_the_camera_about_its_own_axes(camera: str) -> None:
    """A roll of 90 degrees about the camera's z (its viewing axis) turns its x axis into its
    y axis; 3 degrees about its x tilts the view by 3 degrees; restore undoes it."""
    model = mujoco.MjModel.from_xml_string(TRACKING_XML)
    data = mujoco.MjData(model)
    term = make_visual_term(model, "camera_rotation", TermSpec(
        Distribution("uniform", 0.0, 1.0), match=camera, operation="add"))
    index = term.ids[0]

    def axes(values: list[float]) -> np.ndarray:
        term.apply(model, np.array(values))
        mujoco.mj_forward(model, data)
        return data.cam_xmat[index].reshape(3, 3).copy()  # columns: the camera's x, y, z

    nominal = axes([0.0, 0.0, 0.0])
    rolled = axes([0.0, 0.0, 90.0])
    np.testing.assert_allclose(rolled[:, 0], nominal[:, 1], atol=1e-9)
    np.testing.assert_allclose(rolled[:, 2], nominal[:, 2], atol=1e-9)
    tilted = axes([3.0, 0.0, 0.0])
    assert np.degrees(np.arccos(nominal[:, 2] @ tilted[:, 2])) == pytest.approx(3.0)
    term.restore(model)
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(data.cam_xmat[index].reshape(3, 3), nominal, atol=1e-12)


def test_a_camera_aimed_at_a_body_cannot_be_turned() -> None:
    model = mujoco.MjModel.from_xml_string(TRACKING_XML.replace(
        '<camera name="fixed" pos="0 -1.5 1.2" xyaxes="1 0 0 0 0.6 0.8"/>',
        '<camera name="fixed" pos="0 -1.5 1.2" mode="targetbody" target="ball"/>'))
    with pytest.raises(ValueError, match="aimed at a target body"):
        make_visual_term(model, "camera_rotation", TermSpec(
            Distribution("uniform", 0.0, 1.0), match="fixed", operation="add"))


def test_texture_and_material_color_on_an_inline_model() -> None:
    scene = Scene(mujoco.MjModel.from_xml_string(TRACKING_XML), "fixed")
    try:
        check_term(scene, "texture", TermSpec(Distribution("choice", choices=(0.0, 1.0, 2.0)),
                                              match="tiles"), {"cells": (3, 6)}, IMAGE_CHANGE)
        check_term(scene, "material_color", TermSpec(Distribution("uniform", 0.1, 0.5)), {},
                   IMAGE_CHANGE)
        # geom_color skips the ball, which shows its material, and keeps the marker.
        color = make_visual_term(scene.model, "geom_color", TermSpec())
        assert color.names == ["marker.r", "marker.g", "marker.b"]
    finally:
        scene.renderer.close()


def test_gymnasium_models() -> None:
    cheetah = gym.make("HalfCheetah-v5").unwrapped.model
    # Its tracking camera is trackcom: the term writes the world-frame offset.
    assert make_visual_term(cheetah, "camera_position", TermSpec(
        Distribution("uniform", -0.1, 0.1), match="track", operation="add")).arrays == ["cam_poscom0"]
    scene = Scene(cheetah, "track")
    try:
        check_term(scene, "texture", TermSpec(Distribution("choice", choices=(0.0, 1.0)),
                                              match="texplane"), {}, IMAGE_CHANGE)
        check_term(scene, "geom_color", TermSpec(Distribution("uniform", 0.1, 0.3), match="floor"),
                   {}, IMAGE_CHANGE)
    finally:
        scene.renderer.close()
    with pytest.raises(ValueError, match="material_color.*set their own rgba.*geom_color"):
        make_visual_term(cheetah, "material_color", TermSpec())
    with pytest.raises(ValueError, match="light_diffuse: match .* lights there: \\(none are named\\)"):
        make_visual_term(cheetah, "light_diffuse", TermSpec())  # unnamed elements never match
    pendulum = gym.make("InvertedPendulum-v5").unwrapped.model
    with pytest.raises(ValueError, match=r"light_diffuse: match '\.\*' names no light.*\(none\)"):
        make_visual_term(pendulum, "light_diffuse", TermSpec())
    color = make_visual_term(pendulum, "geom_color", TermSpec(Distribution("uniform", 0.5, 0.9)))
    assert color.names and all(name.endswith((".r", ".g", ".b")) for name in color.names)


def test_bad_input_names_the_term_and_the_value() -> None:
    model = mujoco.MjModel.from_xml_path(str(ARM_XML))
    uniform = TermSpec(Distribution("uniform", 0.5, 1.5))
    with pytest.raises(ValueError, match="light_diffuse: match 'sun' names no light.*lights "
                                         "there: top"):
        make_visual_term(model, "light_diffuse", TermSpec(uniform.distribution, match="sun"))
    with pytest.raises(ValueError, match="camera_fov: match 'wrist' names no camera.*workspace"):
        make_visual_term(model, "camera_fov", TermSpec(uniform.distribution, match="wrist"))
    with pytest.raises(ValueError, match="unknown visual randomization term 'fog'"):
        make_visual_term(model, "fog", uniform)
    with pytest.raises(ValueError, match="texture: unknown option 'box'"):
        make_visual_term(model, "texture", uniform, box=((0, 1),) * 3)
    with pytest.raises(ValueError, match="light_direction: operation 'scale'.*use add"):
        make_visual_term(model, "light_direction", uniform)
    with pytest.raises(ValueError, match="light_ambient: the nominal values of top are all 0"):
        make_visual_term(model, "light_ambient", uniform)
    with pytest.raises(ValueError, match="light_shadows: the model has no shadow map"):
        make_visual_term(model, "light_shadows", TermSpec(Distribution("choice", choices=(0, 1))))
    with pytest.raises(ValueError, match=r"texture: a pattern .* reaches \(0, 5\)"):
        make_visual_term(model, "texture", TermSpec(Distribution("choice", choices=(0, 5))))
    with pytest.raises(ValueError, match=r"distractors: a number of distractors is a whole number"):
        make_visual_term(model, "distractors", TermSpec(Distribution("uniform", 0.0, 2.5)))
    with pytest.raises(ValueError, match="distractors: box"):
        make_visual_term(model, "distractors", TermSpec(Distribution("choice", choices=(1,))),
                         box=((0.3, 0.1), (0, 1), (0, 1)))
    with pytest.raises(ValueError, match="material_color: no element shows material.*floor.*"
                                         "geom_color"):
        make_visual_term(model, "material_color", uniform)


def test_pixel_observation_uploads_textures_and_adds_distractors() -> None:
    class WithVisualTerms(gym.Wrapper):
        """What a randomization wrapper offers PixelObservation: its visual terms."""

        def __init__(self, env: gym.Env, specs: dict[str, TermSpec]) -> None:
            super().__init__(env)
            self.visual_terms = make_visual_terms(env.unwrapped.model, specs)

    specs = {"texture": TermSpec(Distribution("choice", choices=(0.0,))),
             "distractors": TermSpec(Distribution("choice", choices=(3.0,)))}
    inner = WithVisualTerms(make_env("sim2real/ArmReach-v0"), specs)
    env = PixelObservation(inner, width=SIZE, height=SIZE, with_state=False)
    try:
        nominal, _ = env.reset(seed=0)
        model = env.unwrapped.model
        randomize(model, inner.visual_terms, np.random.default_rng(0))
        # The renderer exists since the wrapper was built: the new texture must reach it.
        texture_only = env.render_camera()
        count = int(inner.visual_terms[1].current[0])
        assert count == 3 and env.renderer.scene.ngeom > 3
        assert image_difference(nominal, texture_only) > IMAGE_CHANGE
        for term in inner.visual_terms:
            term.restore(model)
        assert np.array_equal(env.render_camera(), nominal)
        # Distractors alone: no model field changes, the picture does.
        fields = model.tex_data.copy(), model.geom_rgba.copy()
        inner.visual_terms[1].apply(model, inner.visual_terms[1].sample(np.random.default_rng(4)))
        assert image_difference(nominal, env.render_camera()) > LOCAL_CHANGE
        assert np.array_equal(model.tex_data, fields[0]) and np.array_equal(model.geom_rgba,
                                                                            fields[1])
    finally:
        env.close()


def test_montage(tmp_path: Path) -> None:
    model = mujoco.MjModel.from_xml_path(str(ARM_XML))
    model.vis.quality.shadowsize = 1024
    data = mujoco.MjData(model)
    terms = make_visual_terms(model, ARM_VISUAL_SPECS)
    nominal = model.tex_data.copy(), model.light_diffuse.copy(), model.cam_pos.copy()
    path = save_montage(model, data, terms, np.random.default_rng(0), tmp_path / "m.png",
                        count=3, size=48)
    assert path.is_file() and path.stat().st_size > 5000
    assert np.array_equal(model.tex_data, nominal[0])  # the model is nominal again
    assert np.array_equal(model.light_diffuse, nominal[1])
    assert np.array_equal(model.cam_pos, nominal[2])
