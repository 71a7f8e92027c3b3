"""Randomization of geometry: how big bodies are, what shape objects have, how far joints go.
Like every model term, each starts from the nominal model at every reset.

  size         uniform scale of a body: its geoms' sizes and offsets, its centre of mass, its
               children's offsets (a longer link moves the joint at its end), mass x s^3 and
               inertia x s^5 (the same density); scale only (bodies)
  shape        the geom's primitive, chosen among `choices` (box, sphere, cylinder, capsule,
               ellipsoid), fitted in the nominal bounding box with its base where it was, inertia
               of the new solid at the same mass (geoms)
  joint_range  both limits of a limited joint: values for the low and the high limit (joints)
"""

from __future__ import annotations

import mujoco
import numpy as np

from randomization.term_spec import TermSpec, combine, matching

SHAPES = {"box": mujoco.mjtGeom.mjGEOM_BOX, "sphere": mujoco.mjtGeom.mjGEOM_SPHERE,
          "cylinder": mujoco.mjtGeom.mjGEOM_CYLINDER, "capsule": mujoco.mjtGeom.mjGEOM_CAPSULE,
          "ellipsoid": mujoco.mjtGeom.mjGEOM_ELLIPSOID}


class SizeTerm:
    """One scale factor per matched body (not the world)."""

    name = "size"

    def __init__(self, model: mujoco.MjModel, spec: TermSpec) -> None:
        spec.check(self.name)
        if spec.operation != "scale":
            raise ValueError(f"randomization size: operation {spec.operation!r} is not "
                             "supported; size is a scale factor (operation: scale)")
        self.spec = spec
        ids = [i for i in matching(model, mujoco.mjtObj.mjOBJ_BODY, model.nbody, self.name, spec,
                                   "body")[0] if i > 0]
        self.names = [model.body(i).name for i in ids]
        self.bodies = np.array(ids)
        self.geoms = [np.flatnonzero(model.geom_bodyid == b) for b in ids]
        self.children = [np.flatnonzero((model.body_parentid == b) & (np.arange(model.nbody) != b))
                         for b in ids]
        self.sites = [np.flatnonzero(model.site_bodyid == b) for b in ids]
        for body, geoms in zip(self.names, self.geoms, strict=True):
            meshes = [g for g in geoms if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH]
            if meshes:
                raise ValueError(f"randomization size: body {body!r} has mesh geoms, whose shape "
                                 "lives in the mesh and cannot be scaled here; narrow match to "
                                 "bodies of primitive geoms")
        self.nominal = {field: getattr(model, field).copy() for field in self._FIELDS}

    _FIELDS = ("geom_size", "geom_pos", "geom_rbound", "geom_aabb", "body_mass", "body_inertia",
               "body_ipos", "body_pos", "site_pos")

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.spec.distribution.sample(rng, len(self.bodies))

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        for body, geoms, children, sites, s in zip(self.bodies, self.geoms, self.children,
                                                   self.sites, values, strict=True):
            model.geom_size[geoms] *= s
            model.geom_pos[geoms] *= s
            model.geom_rbound[geoms] *= s
            model.geom_aabb[geoms] *= s
            model.body_ipos[body] *= s
            model.body_pos[children] *= s
            model.site_pos[sites] *= s
            # Mass and inertia act on the current values, so a mass term composes with this.
            model.body_mass[body] *= s ** 3
            model.body_inertia[body] *= s ** 5

    def restore(self, model: mujoco.MjModel) -> None:
        for field, nominal in self.nominal.items():
            getattr(model, field)[:] = nominal


class ShapeTerm:
    """One choice of primitive per matched geom; `choices` are shape names."""

    name = "shape"

    def __init__(self, model: mujoco.MjModel, spec: TermSpec, choices: tuple[str, ...]) -> None:
        unknown = [c for c in choices if c not in SHAPES]
        if not choices or unknown:
            raise ValueError(f"randomization shape: choices {list(choices)} must be shape names "
                             f"among {', '.join(SHAPES)}")
        self.spec, self.choices = spec, tuple(choices)
        ids, _ = matching(model, mujoco.mjtObj.mjOBJ_GEOM, model.ngeom, self.name, spec, "geom")
        self.names = [model.geom(i).name for i in ids]
        self.geoms = np.array(ids)
        self.bodies = model.geom_bodyid[self.geoms]
        # A body's inertia follows the new shape only where this geom is the body's only one.
        self.sole = np.array([np.sum(model.geom_bodyid == b) == 1 for b in self.bodies])
        self.half_extents = model.geom_aabb[self.geoms, 3:].copy()
        self.nominal = {field: getattr(model, field)[self.geoms].copy()
                        for field in ("geom_type", "geom_size", "geom_rbound", "geom_aabb")}
        self.nominal_inertia = model.body_inertia[self.bodies].copy()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Indices into `choices`, as floats like every other draw."""
        return rng.integers(len(self.choices), size=len(self.geoms)).astype(float)

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        for k, (geom, choice) in enumerate(zip(self.geoms, values, strict=True)):
            shape = self.choices[int(choice)]
            hx, hy, hz = self.half_extents[k]
            radius = min(hx, hy)
            size, extent = {
                "box": ((hx, hy, hz), (hx, hy, hz)),
                "ellipsoid": ((hx, hy, hz), (hx, hy, hz)),
                # Same height as the nominal geom: an object still rests on its base.
                "sphere": ((hz, 0.0, 0.0), (hz, hz, hz)),
                "cylinder": ((radius, hz, 0.0), (radius, radius, hz)),
                "capsule": ((radius, max(hz - radius, 1e-4), 0.0), (radius, radius, hz)),
            }[shape]
            model.geom_type[geom] = SHAPES[shape]
            model.geom_size[geom] = size
            model.geom_aabb[geom] = (0.0, 0.0, 0.0, *extent)
            model.geom_rbound[geom] = float(np.linalg.norm(extent))
            if self.sole[k]:
                model.body_inertia[self.bodies[k]] = _solid_inertia(
                    shape, model.body_mass[self.bodies[k]], np.array(extent))

    def restore(self, model: mujoco.MjModel) -> None:
        for field, nominal in self.nominal.items():
            getattr(model, field)[self.geoms] = nominal
        model.body_inertia[self.bodies] = self.nominal_inertia


def _solid_inertia(shape: str, mass: float, extent: np.ndarray) -> np.ndarray:
    """Principal moments of a homogeneous solid with half extents `extent` (x, y, z)."""
    x, y, z = extent ** 2
    if shape == "box":
        return mass / 3.0 * np.array([y + z, x + z, x + y])
    if shape in ("ellipsoid", "sphere"):
        return mass / 5.0 * np.array([y + z, x + z, x + y])
    # Cylinder, and a capsule as the cylinder of its full height.
    radius_squared = x
    height_squared = (2.0 * extent[2]) ** 2
    side = mass * (3.0 * radius_squared + height_squared) / 12.0
    return np.array([side, side, mass * radius_squared / 2.0])


class JointRangeTerm:
    """Two values per matched limited joint: for its low and its high limit."""

    name = "joint_range"

    def __init__(self, model: mujoco.MjModel, spec: TermSpec) -> None:
        spec.check(self.name)
        self.spec = spec
        ids = [i for i in matching(model, mujoco.mjtObj.mjOBJ_JOINT, model.njnt, self.name,
                                   spec, "joint")[0]
               if model.jnt_limited[i] and model.jnt_type[i] in (mujoco.mjtJoint.mjJNT_HINGE,
                                                                 mujoco.mjtJoint.mjJNT_SLIDE)]
        if not ids:
            raise ValueError(f"randomization joint_range: match {spec.match!r} names no limited "
                             "hinge or slide joint")
        self.joints = np.array(ids)
        self.names = [f"{model.joint(i).name}.{side}" for i in ids for side in ("low", "high")]
        self.nominal = model.jnt_range[self.joints].copy()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.spec.distribution.sample(rng, 2 * len(self.joints))

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        new = combine(self.spec.operation, model.jnt_range[self.joints].ravel(), values)
        new = new.reshape(-1, 2)
        if np.any(new[:, 0] >= new[:, 1]):
            bad = self.names[2 * int(np.argmax(new[:, 0] >= new[:, 1]))].rsplit(".", 1)[0]
            raise ValueError(f"randomization joint_range: joint {bad!r} would get limits "
                             f"{new[np.argmax(new[:, 0] >= new[:, 1])].tolist()} (low >= high); "
                             "narrow the distribution")
        model.jnt_range[self.joints] = new

    def restore(self, model: mujoco.MjModel) -> None:
        model.jnt_range[self.joints] = self.nominal
