"""Our arm is the published SO-101: forward kinematics of the MuJoCo model and of the numpy chain
against the published model's (tests/sim/data/so101_fk.csv, a copy of shared/reference/
so101_fk.csv: MuJoCo Menagerie's robotstudio_so101 evaluated at 40 configurations), its joint
anchors and axes at q = 0, its link masses and its jaw.

The CSV's frame: origin where the pan axis meets the base plate, x forward, z up; our world
frame. Angles in the published convention (LeRobot's calibration: 0 in the middle of each
joint's range)."""

from pathlib import Path

import mujoco
import numpy as np
import pytest

from sim.physics import ASSETS
from sim.so_arm import ARM_CHAIN, SO_ARM

REFERENCE = Path(__file__).parent / "data" / "so101_fk.csv"
TOLERANCE = 1e-3  # m


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    table = np.loadtxt(REFERENCE, delimiter=",", skiprows=1)
    assert table.shape == (40, 11)
    return table


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_path(str(ASSETS / SO_ARM.mjcf))


def test_mujoco_model_matches_the_published_kinematics(reference, model) -> None:
    data = mujoco.MjData(model)
    qpos = [model.joint(name).qposadr[0] for name in ARM_CHAIN.joint_names]
    wrist_flex = model.joint("wrist_flex").id
    errors = []
    for row in reference:
        data.qpos[qpos] = row[:5]
        mujoco.mj_kinematics(model, data)
        errors.append([np.linalg.norm(data.xanchor[wrist_flex] - row[5:8]),
                       np.linalg.norm(data.site("tip").xpos - row[8:11])])
    errors = np.array(errors)
    # Measured: max 0.03 mm (the published tip point's rounding), mean 0.02 mm.
    assert errors.max() < TOLERANCE, (f"max error {errors.max() * 1e3:.3f} mm, mean "
                                      f"{errors.mean() * 1e3:.3f} mm (wrist_flex anchor, tip)")


def test_numpy_chain_matches_the_published_kinematics(reference) -> None:
    frames = ARM_CHAIN.frame_positions(reference[:, :5])
    wrist_flex = ARM_CHAIN.joint_names.index("wrist_flex")
    anchor_error = np.linalg.norm(frames[:, wrist_flex] - reference[:, 5:8], axis=1)
    tip_error = np.linalg.norm(frames[:, -1] - reference[:, 8:11], axis=1)
    assert anchor_error.max() < TOLERANCE and tip_error.max() < TOLERANCE
    one_by_one = np.array([ARM_CHAIN.tip_position(row[:5]) for row in reference])
    assert np.abs(one_by_one - reference[:, 8:11]).max() < TOLERANCE


# The published chain at q = 0 (shared/reference/README.md): anchor (m) and axis per joint.
PUBLISHED_CHAIN = {
    "shoulder_pan": ((0.0, 0.0, 0.0624), (0, 0, -1)),
    "shoulder_lift": ((0.0304, -0.0183, 0.1166), (0, 1, 0)),
    "elbow_flex": ((0.0584, -0.0183, 0.2292), (0, 1, 0)),
    "wrist_flex": ((0.1933, -0.0183, 0.2344), (0, 1, 0)),
    "wrist_roll": ((0.2544, -0.0002, 0.2344), (-1, 0, 0)),
}


@pytest.mark.parametrize("joint", list(PUBLISHED_CHAIN))
def test_anchor_and_direction_of_each_joint_at_zero(joint: str, model) -> None:
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    anchor, axis = PUBLISHED_CHAIN[joint]
    j = model.joint(joint).id
    assert np.allclose(data.xanchor[j], anchor, atol=1e-4)  # the figures' 4 decimals
    assert np.allclose(data.xaxis[j], axis, atol=1e-9)
    k = ARM_CHAIN.joint_names.index(joint)
    assert np.allclose(ARM_CHAIN.frame_positions(np.zeros(5))[k], anchor, atol=1e-4)
    assert np.allclose(ARM_CHAIN.axes[k], axis)


def test_positive_angles_turn_the_arm_as_the_published_one() -> None:
    """Read off the published axes: +pan swings the reach towards -y (clockwise seen from
    above), +lift and +elbow bring the tip forward and down."""
    zero = ARM_CHAIN.tip_position(np.zeros(5))
    assert ARM_CHAIN.tip_position(np.array([0.3, 0, 0, 0, 0]))[1] < zero[1] - 0.05
    lifted = ARM_CHAIN.tip_position(np.array([0, 0.3, 0, 0, 0]))
    assert lifted[0] > zero[0] - 0.01 and lifted[2] < zero[2] - 0.05


def test_tip_is_the_fixed_jaws_tip_below_the_roll_axis(model) -> None:
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    below_roll_axis = data.xanchor[model.joint("wrist_roll").id] - data.site("tip").xpos
    assert below_roll_axis[2] == pytest.approx(0.0079, abs=1e-4)
    # Rolling the wrist swings the tip about the roll axis on that 7.9 mm radius: a quarter turn
    # about the backward (-x) axis takes it from below the axis to its right (-y).
    data.qpos[model.joint("wrist_roll").qposadr[0]] = np.pi / 2
    mujoco.mj_kinematics(model, data)
    roll = data.xanchor[model.joint("wrist_roll").id]
    assert np.allclose(data.site("tip").xpos[1:] - roll[1:], [-0.0079, 0.0], atol=3e-4)


def test_link_masses_are_the_published_ones(model) -> None:
    published = {"base": 0.147, "shoulder": 0.100, "upper_arm": 0.103, "lower_arm": 0.104,
                 "wrist": 0.079, "gripper": 0.087 + 0.012, "jaw": 0.012}  # gripper + camera mount
    for body, mass in published.items():
        assert model.body(body).mass[0] == pytest.approx(mass), body
        inertia = model.body(body).inertia
        assert np.all(inertia > 0) and 2 * inertia.max() <= inertia.sum() + 1e-12, body


def test_jaw_opens_upwards_in_the_vertical_plane_of_the_roll_axis(model) -> None:
    """The fixed jaw is below the roll axis, the moving jaw above it: opening (positive) lifts
    the moving jaw's far end, which stays in the plane through the roll axis (2.8 degrees off
    vertical in the published model)."""
    data = mujoco.MjData(model)
    mujoco.mj_kinematics(model, data)
    gripper = model.joint("gripper").id
    assert np.allclose(data.xaxis[gripper], [0.0, -0.998815, -0.04866], atol=1e-5)
    jaw = model.geom("jaw").id
    closed = data.geom_xpos[jaw].copy()
    data.qpos[model.joint("gripper").qposadr[0]] = 1.0
    mujoco.mj_kinematics(model, data)
    opened = data.geom_xpos[jaw]
    assert opened[2] > closed[2] + 0.02
    assert abs(opened[1] - closed[1]) < 0.003
    assert closed[2] > data.site("tip").xpos[2]
