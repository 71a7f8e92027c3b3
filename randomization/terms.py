"""Randomization terms: one per kind of physical parameter. Each term is a pure function of the
nominal model values and a sample, so nothing compounds across resets. What a term's spec says
(TermSpec, Distribution) and how it matches and combines is in term_spec.py.

A term matches model elements by a regular expression on their names, checks its range at
construction, draws one value per matched element from the env's generator, and writes
`operation(nominal, value)` into the model: scale (nominal * value), add (nominal + value) or
set (value).

Terms and what they write (one line each):
  mass                body mass, and rotational inertia in the same ratio (bodies)
  friction            sliding friction coefficient (geoms)
  torsional_friction  torsional friction coefficient (geoms)
  rolling_friction    rolling friction coefficient (geoms)
  joint_damping       viscous damping, N*m*s/rad (joints)
  armature            rotor inertia reflected to the joint, kg*m^2 (joints)
  frictionloss        dry friction, N*m (joints)
  gravity             gravitational acceleration, m/s^2 (match x, y or z)
  actuator_kp         position servo P gain, N*m/rad (actuators)
  actuator_kv         position servo D gain, N*m*s/rad (actuators)
  torque_limit        actuator force/torque limit, N*m (actuators)
  deadband            servo deadband, whole encoder counts (our serial-bus servos)
  gear                actuator gear: motor strength of gymnasium-style motors (actuators)
  motor_resistance    DC motor armature resistance: torque per volt and back-EMF braking both
                      scale by 1/value (actuators; scale only)
  back_emf_constant   DC motor back-EMF braking (actuators; scale only)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import mujoco
import numpy as np

from randomization.geometry import JointRangeTerm, ShapeTerm, SizeTerm
from randomization.term_spec import DISTRIBUTIONS as DISTRIBUTIONS
from randomization.term_spec import OPERATIONS as OPERATIONS
from randomization.term_spec import Distribution as Distribution
from randomization.term_spec import TermSpec, combine
from randomization.term_spec import matching as matching
from randomization.visual import VISUAL_TERM_NAMES, make_visual_term
from sim.physics import SERVO_DEADBAND_SLOT, SERVO_KP_SLOT, as_slice

# The spec and its helpers (imported above with `as`) live in term_spec.py, which geometry.py and
# visual.py build on too; callers keep importing them from here, where they always were.


@dataclass(frozen=True)
class _Field:
    kind: mujoco.mjtObj
    array: str
    column: int | None = None


# The model array each field term writes, indexed per element (joints through their dof).
FIELDS: dict[str, _Field] = {
    "mass": _Field(mujoco.mjtObj.mjOBJ_BODY, "body_mass"),
    "friction": _Field(mujoco.mjtObj.mjOBJ_GEOM, "geom_friction", 0),
    "torsional_friction": _Field(mujoco.mjtObj.mjOBJ_GEOM, "geom_friction", 1),
    "rolling_friction": _Field(mujoco.mjtObj.mjOBJ_GEOM, "geom_friction", 2),
    "joint_damping": _Field(mujoco.mjtObj.mjOBJ_JOINT, "dof_damping"),
    "armature": _Field(mujoco.mjtObj.mjOBJ_JOINT, "dof_armature"),
    "frictionloss": _Field(mujoco.mjtObj.mjOBJ_JOINT, "dof_frictionloss"),
    "gear": _Field(mujoco.mjtObj.mjOBJ_ACTUATOR, "actuator_gear", 0),
}
ACTUATOR_TERMS = ("actuator_kp", "actuator_kv", "torque_limit", "deadband", "motor_resistance",
                  "back_emf_constant")
TERM_NAMES = (*FIELDS, "gravity", *ACTUATOR_TERMS)
GEOMETRY_TERM_NAMES = ("size", "shape", "joint_range")
_COUNTS = {mujoco.mjtObj.mjOBJ_BODY: "nbody", mujoco.mjtObj.mjOBJ_GEOM: "ngeom",
           mujoco.mjtObj.mjOBJ_JOINT: "njnt", mujoco.mjtObj.mjOBJ_ACTUATOR: "nu"}


class FieldTerm:
    """One value per matched element, written into one model array."""

    def __init__(self, model: mujoco.MjModel, name: str, spec: TermSpec) -> None:
        spec.check(name)
        self.name, self.spec, self.target = name, spec, FIELDS[name]
        kind = self.target.kind
        regex = re.compile(spec.match)
        names = [mujoco.mj_id2name(model, kind, i) for i in range(getattr(model, _COUNTS[kind]))]
        # The world body (id 0) is never randomized.
        ids = [i for i, n in enumerate(names)
               if n and regex.fullmatch(n) and not (kind == mujoco.mjtObj.mjOBJ_BODY and i == 0)]
        if kind == mujoco.mjtObj.mjOBJ_JOINT:
            ids = [i for i in ids if model.jnt_type[i] in (mujoco.mjtJoint.mjJNT_HINGE,
                                                           mujoco.mjtJoint.mjJNT_SLIDE)]
        if not ids:
            known = ", ".join(n for n in names if n) or "(none are named)"
            raise ValueError(f"randomization {name}: match {spec.match!r} names nothing in the "
                             f"model; names there: {known}")
        self.names = [names[i] for i in ids]
        # A slice where the elements are contiguous: resets are frequent, fancy indexing slow.
        self.index = as_slice(np.array([model.jnt_dofadr[i] for i in ids])
                              if kind == mujoco.mjtObj.mjOBJ_JOINT else np.array(ids))
        self.count = len(ids)
        self.nominal = self._read(model).copy()
        self.nominal_inertia = model.body_inertia[self.index].copy() if name == "mass" else None

    def _read(self, model: mujoco.MjModel) -> np.ndarray:
        array = getattr(model, self.target.array)
        return array[self.index] if self.target.column is None else array[self.index,
                                                                          self.target.column]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.spec.distribution.sample(rng, self.count)

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        # Scale and add act on the value in the model, which apply_terms has just restored to
        # nominal: another term on the same field (size on mass) then composes with this one.
        current = self._read(model).copy()
        new = combine(self.spec.operation, current, values)
        if (new < 0).any():
            bad = self.names[int(np.argmax(new < 0))]
            raise ValueError(f"randomization {self.name}: {bad} would get a negative value "
                             f"{new.min():.4g}; narrow the distribution")
        self._write(model, new)
        if self.nominal_inertia is not None:
            # Inertia follows mass in proportion: the body keeps its shape. (A massless body
            # has no inertia to scale.)
            ratio = new / np.where(current > 0, current, 1.0)
            model.body_inertia[self.index] *= ratio[:, None]

    def _write(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        array = getattr(model, self.target.array)
        if self.target.column is None:
            array[self.index] = values
        else:
            array[self.index, self.target.column] = values

    def restore(self, model: mujoco.MjModel) -> None:
        self._write(model, self.nominal)
        if self.nominal_inertia is not None:
            model.body_inertia[self.index] = self.nominal_inertia


class GravityTerm:
    """Gravity components x, y, z (match picks which), e.g. add normal(0, 0.05) to tilt the
    table or scale z for a different planet."""

    name = "gravity"

    def __init__(self, model: mujoco.MjModel, spec: TermSpec) -> None:
        spec.check(self.name)
        self.spec = spec
        regex = re.compile(spec.match)
        self.names = [axis for axis in "xyz" if regex.fullmatch(axis)]
        if not self.names:
            raise ValueError(f"randomization gravity: match {spec.match!r} names no axis; use "
                             "x, y, z or a pattern such as '[xy]'")
        self.index = np.array(["xyz".index(axis) for axis in self.names])
        self.nominal = model.opt.gravity[self.index].copy()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.spec.distribution.sample(rng, len(self.index))

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        model.opt.gravity[self.index] = combine(self.spec.operation, self.nominal, values)

    def restore(self, model: mujoco.MjModel) -> None:
        model.opt.gravity[self.index] = self.nominal


class ActuatorTerm:
    """A parameter of MuJoCo actuators, read from how they are built: a position servo has
    gain kp and bias (0, -kp, -kv); our DC motor has gain kt/R and bias (0, 0, -kt*ke/R)."""

    def __init__(self, model: mujoco.MjModel, name: str, spec: TermSpec) -> None:
        spec.check(name)
        if name in ("motor_resistance", "back_emf_constant") and spec.operation != "scale":
            raise ValueError(f"randomization {name}: only operation 'scale' is supported (the "
                             "model holds kt/R and kt*ke/R, not R or ke)")
        self.name, self.spec = name, spec
        regex = re.compile(spec.match)
        names = [model.actuator(i).name for i in range(model.nu)]
        ids = [i for i, n in enumerate(names) if n and regex.fullmatch(n)]
        if not ids:
            raise ValueError(f"randomization {name}: match {spec.match!r} names no actuator; "
                             f"actuators: {', '.join(n for n in names if n) or '(none named)'}")
        # Our servos keep their configured kp in gainprm[SERVO_KP_SLOT] (gainprm[0] drops to 0
        # inside the deadband); other actuators leave that slot 0.
        self.configured_slot = model.actuator_gainprm[ids, SERVO_KP_SLOT] > 0
        gain = np.where(self.configured_slot, model.actuator_gainprm[ids, SERVO_KP_SLOT],
                        model.actuator_gainprm[ids, 0])
        bias = model.actuator_biasprm[ids, :3].copy()
        bias[self.configured_slot, 1] = -gain[self.configured_slot]
        servo = (np.abs(bias[:, 1] + gain) < 1e-9 * np.maximum(1, np.abs(gain))) & (gain != 0)
        motor = (bias[:, 1] == 0) & (bias[:, 2] < 0) & (gain > 0)
        needed = {"actuator_kp": servo, "actuator_kv": servo & (bias[:, 2] < 0),
                  "torque_limit": model.actuator_forcelimited[ids].astype(bool),
                  "deadband": self.configured_slot,
                  "motor_resistance": motor, "back_emf_constant": motor}[name]
        if not needed.all():
            bad = names[ids[int(np.argmin(needed))]]
            what = {"actuator_kp": "a position servo", "actuator_kv": "a position servo with kv",
                    "torque_limit": "force-limited", "deadband": "one of our serial-bus servos",
                    "motor_resistance": "a DC motor", "back_emf_constant": "a DC motor"}[name]
            raise ValueError(f"randomization {name}: actuator {bad!r} is not {what}; narrow match")
        self.ids, self.names = as_slice(np.array(ids)), [names[i] for i in ids]
        self.servos = as_slice(np.array(ids)[self.configured_slot])
        self.gain, self.bias = gain.copy(), bias.copy()
        self.force = model.actuator_forcerange[ids].copy()
        self.deadband = model.actuator_gainprm[ids, SERVO_DEADBAND_SLOT].copy()
        self.nominal = {"actuator_kp": gain, "actuator_kv": -bias[:, 2],
                        "torque_limit": self.force[:, 1], "deadband": self.deadband,
                        "motor_resistance": np.ones(len(ids)),
                        "back_emf_constant": np.ones(len(ids))}[name].copy()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.spec.distribution.sample(rng, len(self.names))

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        new = combine(self.spec.operation, self.nominal, values)
        if (new < 0).any():
            raise ValueError(f"randomization {self.name}: a negative value {new.min():.4g}; "
                             "narrow the distribution")
        ids = self.ids
        if self.name == "actuator_kp":
            model.actuator_gainprm[ids, 0] = new
            model.actuator_biasprm[ids, 1] = -new
            model.actuator_gainprm[self.servos, SERVO_KP_SLOT] = new[self.configured_slot]
        elif self.name == "actuator_kv":
            model.actuator_biasprm[ids, 2] = -new
        elif self.name == "torque_limit":
            model.actuator_forcerange[ids] = self.force * (new / self.nominal)[:, None]
        elif self.name == "deadband":  # whole encoder counts, as the servo's firmware keeps it
            model.actuator_gainprm[ids, SERVO_DEADBAND_SLOT] = np.round(new)
        # Both motor terms touch the back-EMF bias: each scales what is there, and every reset
        # restores all terms to nominal before applying any (see apply_terms).
        elif self.name == "motor_resistance":  # new = R' / R
            model.actuator_gainprm[ids, 0] /= new
            model.actuator_biasprm[ids, 2] /= new
        else:  # back_emf_constant, new = ke' / ke
            model.actuator_biasprm[ids, 2] *= new

    def restore(self, model: mujoco.MjModel) -> None:
        """Back to nominal, only what this term writes (a reset restores every term)."""
        ids = self.ids
        if self.name in ("actuator_kp", "motor_resistance"):
            model.actuator_gainprm[ids, 0] = self.gain
        if self.name == "actuator_kp":
            model.actuator_biasprm[ids, 1] = self.bias[:, 1]
            model.actuator_gainprm[self.servos, SERVO_KP_SLOT] = self.gain[self.configured_slot]
        if self.name in ("actuator_kv", "motor_resistance", "back_emf_constant"):
            model.actuator_biasprm[ids, 2] = self.bias[:, 2]
        if self.name == "torque_limit":
            model.actuator_forcerange[ids] = self.force
        if self.name == "deadband":
            model.actuator_gainprm[ids, SERVO_DEADBAND_SLOT] = self.deadband


def make_term(model: mujoco.MjModel, name: str, spec: TermSpec):
    """The model term called `name` on this model (a plain lookup, no registry of classes): the
    terms of this file, of geometry.py and of visual.py."""
    if name == "gravity":
        return GravityTerm(model, spec)
    if name in ACTUATOR_TERMS:
        return ActuatorTerm(model, name, spec)
    if name in FIELDS:
        return FieldTerm(model, name, spec)
    if name == "size":
        return SizeTerm(model, spec)
    if name == "shape":
        return ShapeTerm(model, spec, tuple(spec.distribution.choices))
    if name == "joint_range":
        return JointRangeTerm(model, spec)
    if name in VISUAL_TERM_NAMES:
        return make_visual_term(model, name, spec)
    known = (*TERM_NAMES, *GEOMETRY_TERM_NAMES, *VISUAL_TERM_NAMES)
    raise ValueError(f"unknown model randomization term {name!r}; known: {', '.join(known)}")


def apply_terms(model: mujoco.MjModel, terms: list, values: dict[str, np.ndarray]) -> None:
    """Every term back to nominal, then each applies its values: terms that write the same
    field (size and mass, the two motor terms) compose, and nothing compounds across draws."""
    for term in terms:
        term.restore(model)
    for term in terms:
        term.apply(model, values[term.name])
