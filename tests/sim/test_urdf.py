"""The robots' URDFs (what Foxglove's 3D panel draws from the deploy log's joint states) are
generated from the MJCF and move as MuJoCo's model does: each link's frame, composed from the
URDF's joint origins and axes, is where MuJoCo puts its body, on random joint angles."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree

import mujoco
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from sim.furuta import FURUTA
from sim.so_arm import SO_ARM
from sim.spec import ASSETS, urdf_path
from sim.urdf import urdf_of

ROBOTS = [SO_ARM, FURUTA]


@pytest.mark.parametrize("spec", ROBOTS, ids=lambda spec: spec.name)
def test_the_urdf_in_git_is_what_the_mjcf_generates(spec) -> None:
    assert urdf_path(spec).read_text() == urdf_of(spec), (
        f"{urdf_path(spec)} is stale: regenerate it with `python -m sim.urdf {spec.name}`")


def link_frames(urdf: str, angles: dict[str, float]) -> dict[str, tuple[np.ndarray, Rotation]]:
    """Each link's position and orientation in the root link's frame."""
    joints = ElementTree.fromstring(urdf).findall("joint")
    frames = {"world": (np.zeros(3), Rotation.identity())}
    while len(frames) <= len(joints):
        for joint in joints:
            parent, child = joint.find("parent").get("link"), joint.find("child").get("link")
            if parent not in frames or child in frames:
                continue
            origin = joint.find("origin")
            offset = np.array(origin.get("xyz").split(), dtype=float)
            turn = Rotation.from_euler("xyz", np.array(origin.get("rpy").split(), dtype=float))
            if joint.get("type") != "fixed":
                axis = np.array(joint.find("axis").get("xyz").split(), dtype=float)
                turn = turn * Rotation.from_rotvec(axis * angles[joint.get("name")])
            position, rotation = frames[parent]
            frames[child] = (position + rotation.apply(offset), rotation * turn)
    return frames


@pytest.mark.parametrize("spec", ROBOTS, ids=lambda spec: spec.name)
def test_the_urdfs_links_are_where_mujoco_puts_its_bodies(spec) -> None:
    model = mujoco.MjModel.from_xml_path(str(ASSETS / spec.mjcf))
    data = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    urdf = urdf_of(spec)
    for _ in range(20):
        angles = {}
        for name in spec.joint_names:
            joint = model.joint(name)
            low, high = joint.range if model.jnt_limited[joint.id] else (-np.pi, np.pi)
            angles[name] = rng.uniform(low, high)
            data.qpos[joint.qposadr[0]] = angles[name]
        mujoco.mj_kinematics(model, data)
        for link, (position, rotation) in link_frames(urdf, angles).items():
            if link == "world":
                continue
            body = model.body(link)
            np.testing.assert_allclose(position, data.xpos[body.id], atol=1e-5)
            np.testing.assert_allclose(rotation.as_matrix(), data.xmat[body.id].reshape(3, 3),
                                       atol=1e-5)
