"""A robot's URDF, written from its MuJoCo model: what Foxglove's 3D panel (and ROS tools) draw a
robot from, moved by the deploy log's joint states. The MJCF stays the one definition: the URDF
in sim/assets/ is generated from it (`python -m sim.urdf ROBOT`) and a test fails when it is
stale.

Links are the robot's bodies (its joints' bodies, their ancestors and the bodies fixed to them),
joints its hinges at zero where the MJCF's qpos is zero, visuals its geoms as URDF primitives (a
capsule as a cylinder with a sphere at each end). Inertia is left out: the URDF is for drawing.
Imports MuJoCo: runs on the host.
"""

from __future__ import annotations

import sys
import warnings
from xml.sax.saxutils import quoteattr

import mujoco
import numpy as np
from scipy.spatial.transform import Rotation

from sim.spec import RobotSpec, model_path, urdf_path


def urdf_of(spec: RobotSpec) -> str:
    """The URDF of `spec`'s MuJoCo model, as text."""
    model = mujoco.MjModel.from_xml_path(str(model_path(spec)))
    joint_bodies = [model.jnt_bodyid[model.joint(name).id] for name in spec.joint_names]
    root = _root_of(model, joint_bodies[0])
    bodies = [b for b in range(1, model.nbody) if _root_of(model, b) == root]
    lines = [f"<robot name={quoteattr(spec.name)}>",
             f"  <!-- Generated from sim/assets/{spec.mjcf} by sim/urdf.py: do not edit. -->"]
    # The world link: what stands still (a housing built into the world body); the robot's
    # first body hangs from it, by its joint if it has one.
    for body in (0, *bodies):
        lines += _link(model, body)
    for body in bodies:
        lines += _joint(model, body)
    lines.append("</robot>")
    return "\n".join(lines) + "\n"


def _root_of(model: mujoco.MjModel, body: int) -> int:
    while model.body_parentid[body] != 0:
        body = model.body_parentid[body]
    return body


def _name(model: mujoco.MjModel, body: int) -> str:
    return "world" if body == 0 else model.body(body).name or f"body{body}"


def _origin(pos: np.ndarray, quat: np.ndarray) -> str:
    w, x, y, z = quat
    with warnings.catch_warnings():  # at +-90 degrees of pitch, any split of roll and yaw does
        warnings.simplefilter("ignore", UserWarning)
        rpy = Rotation.from_quat([x, y, z, w]).as_euler("xyz")  # URDF: fixed axes x, y, z
    return (f'<origin xyz="{_numbers(pos)}" rpy="{_numbers(rpy)}"/>')


def _numbers(values: np.ndarray) -> str:
    return " ".join(f"{float(v):.6g}" if abs(v) > 1e-12 else "0" for v in values)


def _link(model: mujoco.MjModel, body: int) -> list[str]:
    lines = [f"  <link name={quoteattr(_name(model, body))}>"]
    for geom in np.flatnonzero(model.geom_bodyid == body):
        lines += _visuals(model, int(geom))
    lines.append("  </link>")
    return lines


def _visuals(model: mujoco.MjModel, geom: int) -> list[str]:
    kind, size = model.geom_type[geom], model.geom_size[geom]
    pos, quat = model.geom_pos[geom], model.geom_quat[geom]
    color = f'<material name="geom{geom}"><color rgba="{_numbers(model.geom_rgba[geom])}"/></material>'
    shapes: list[tuple[str, np.ndarray]] = []
    if kind == mujoco.mjtGeom.mjGEOM_BOX:
        shapes.append((f'<box size="{_numbers(2 * size)}"/>', pos))
    elif kind == mujoco.mjtGeom.mjGEOM_SPHERE:
        shapes.append((f'<sphere radius="{size[0]:.6g}"/>', pos))
    elif kind in (mujoco.mjtGeom.mjGEOM_CYLINDER, mujoco.mjtGeom.mjGEOM_CAPSULE):
        shapes.append((f'<cylinder radius="{size[0]:.6g}" length="{2 * size[1]:.6g}"/>', pos))
        if kind == mujoco.mjtGeom.mjGEOM_CAPSULE:  # the ends, along the geom's own z
            axis = Rotation.from_quat([*quat[1:], quat[0]]).apply([0.0, 0.0, size[1]])
            for end in (pos + axis, pos - axis):
                shapes.append((f'<sphere radius="{size[0]:.6g}"/>', end))
    else:
        return []  # planes (the floor) and meshes: nothing a robot's links use here
    return [f"    <visual>{_origin(at, quat)}<geometry>{shape}</geometry>{color}</visual>"
            for shape, at in shapes]


def _joint(model: mujoco.MjModel, body: int) -> list[str]:
    parent = _name(model, model.body_parentid[body])
    child = _name(model, body)
    joints = [j for j in range(model.njnt) if model.jnt_bodyid[j] == body]
    origin = _origin(model.body_pos[body], model.body_quat[body])
    if not joints:
        return [f'  <joint name={quoteattr(f"{parent}_to_{child}")} type="fixed">{origin}'
                f"<parent link={quoteattr(parent)}/><child link={quoteattr(child)}/></joint>"]
    if len(joints) > 1 or model.jnt_type[joints[0]] != mujoco.mjtJoint.mjJNT_HINGE:
        raise ValueError(f"body {child!r} moves by other than one hinge: a URDF joint is one "
                         "hinge (or fixed)")
    joint = joints[0]
    if np.any(model.jnt_pos[joint] != 0):
        raise ValueError(f"joint {model.joint(joint).name!r} is not at its body's origin; this "
                         "writer places each hinge at its body's frame")
    low, high = model.jnt_range[joint]
    limited = bool(model.jnt_limited[joint])
    kind = "revolute" if limited else "continuous"
    limit = (f'<limit lower="{low:.6g}" upper="{high:.6g}" effort="0" velocity="0"/>'
             if limited else "")
    return [f'  <joint name={quoteattr(model.joint(joint).name)} type="{kind}">{origin}'
            f"<parent link={quoteattr(parent)}/><child link={quoteattr(child)}/>"
            f'<axis xyz="{_numbers(model.jnt_axis[joint])}"/>{limit}</joint>']


if __name__ == "__main__":
    from sim.catalog import robot_by_name

    for name in sys.argv[1:] or ["so_arm", "furuta"]:
        spec = robot_by_name(name)
        urdf_path(spec).write_text(urdf_of(spec))
        print(f"wrote {urdf_path(spec)}")
