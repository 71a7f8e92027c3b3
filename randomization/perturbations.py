"""Randomization of the physical state rather than the model: where objects start, and kicks
from outside while the robot moves. Each keeps one state per copy of the env (n copies in a
batch, 1 for a single env).

  object_start   added to the start position of bodies on free joints, x and y in m (drawn at
                 reset, after the task has placed them)
  push_force     a force of this size in N, in a random direction, on the matched bodies for one
                 control step, every `when` steps
  push_velocity  a kick of this size added to the matched joints' velocity (m/s along a random
                 horizontal direction for a free joint, rad/s or m/s with a random sign for a
                 hinge or slide), every `when` steps
"""

from __future__ import annotations

import re

import mujoco
import numpy as np

from randomization.term_spec import TermSpec

PERTURBATION_NAMES = ("object_start", "push_force", "push_velocity")


def _names(model: mujoco.MjModel, kind: mujoco.mjtObj, count: int) -> list[str | None]:
    return [mujoco.mj_id2name(model, kind, i) for i in range(count)]


class ObjectStartTerm:
    """An offset (dx, dy) per matched free body, added to where the task put it."""

    name = "object_start"

    def __init__(self, model: mujoco.MjModel, spec: TermSpec) -> None:
        spec = TermSpec(spec.distribution, spec.match, "add")
        spec.check(self.name)
        self.spec = spec
        regex = re.compile(spec.match)
        names = _names(model, mujoco.mjtObj.mjOBJ_BODY, model.nbody)
        ids = [i for i, n in enumerate(names) if n and regex.fullmatch(n)
               and model.body_jntnum[i] == 1
               and model.jnt_type[model.body_jntadr[i]] == mujoco.mjtJoint.mjJNT_FREE]
        if not ids:
            free = [n for i, n in enumerate(names) if n and model.body_jntnum[i] == 1
                    and model.jnt_type[model.body_jntadr[i]] == mujoco.mjtJoint.mjJNT_FREE]
            raise ValueError(f"randomization object_start: match {spec.match!r} names no body on "
                             f"a free joint; free bodies: {', '.join(free) or '(none)'}")
        self.qpos = np.array([model.jnt_qposadr[model.body_jntadr[i]] for i in ids])
        self.names = [f"{names[i]}.{axis}" for i in ids for axis in "xy"]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return self.spec.distribution.sample(rng, 2 * len(self.qpos))

    def apply_state(self, data: mujoco.MjData, values: np.ndarray) -> None:
        for address, offset in zip(self.qpos, values.reshape(-1, 2), strict=True):
            data.qpos[address:address + 2] += offset


class Pushes:
    """push_force and push_velocity for a batch of copies: each copy is kicked every `every`
    of its own control steps (counted from its reset)."""

    def __init__(self, model: mujoco.MjModel, specs: dict[str, TermSpec], every: dict[str, int],
                 num_envs: int) -> None:
        self.specs, self.every = {}, {}
        self.bodies = np.zeros(0, dtype=int)
        self.dofs: list[tuple[int, bool]] = []  # (first dof, is a free joint)
        for name, spec in specs.items():
            spec = TermSpec(spec.distribution, spec.match, "set")
            spec.check(name)
            if spec.distribution.support[0] < 0:
                raise ValueError(f"randomization {name}: a push's size must be >= 0; the "
                                 f"distribution reaches {spec.distribution.support[0]}")
            if every.get(name, 0) < 1:
                raise ValueError(f"randomization {name}: say how often with `when: N` (a kick "
                                 "every N control steps)")
            self.specs[name], self.every[name] = spec, every[name]
            regex = re.compile(spec.match)
            if name == "push_force":
                names = _names(model, mujoco.mjtObj.mjOBJ_BODY, model.nbody)
                self.bodies = np.array([i for i, n in enumerate(names)
                                        if i > 0 and n and regex.fullmatch(n)], dtype=int)
                if not len(self.bodies):
                    raise ValueError(f"randomization push_force: match {spec.match!r} names no "
                                     f"body; bodies: {', '.join(n for n in names if n)}")
            else:
                names = _names(model, mujoco.mjtObj.mjOBJ_JOINT, model.njnt)
                joints = [i for i, n in enumerate(names) if n and regex.fullmatch(n)
                          and model.jnt_type[i] != mujoco.mjtJoint.mjJNT_BALL]
                if not joints:
                    raise ValueError(f"randomization push_velocity: match {spec.match!r} names no "
                                     f"free, hinge or slide joint; joints: "
                                     f"{', '.join(n for n in names if n)}")
                self.dofs = [(int(model.jnt_dofadr[j]),
                              model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE) for j in joints]
        self.pushed = np.zeros(num_envs, dtype=bool)

    def before_step(self, i: int, step: int, data: mujoco.MjData,
                    rng: np.random.Generator) -> dict[str, float]:
        """Kick copy `i` if one of its pushes is due at its `step` (counted from 1 after a
        reset); returns the sizes applied."""
        applied = {}
        for name, spec in self.specs.items():
            if step % self.every[name]:
                continue
            size = float(spec.distribution.sample(rng, 1)[0])
            applied[name] = size
            if name == "push_force":
                direction = rng.normal(size=(len(self.bodies), 3))
                direction /= np.linalg.norm(direction, axis=1, keepdims=True)
                data.xfrc_applied[self.bodies, :3] = size * direction
                self.pushed[i] = True
            else:
                for dof, free in self.dofs:
                    if free:
                        heading = rng.uniform(-np.pi, np.pi)
                        data.qvel[dof:dof + 2] += size * np.array([np.cos(heading),
                                                                   np.sin(heading)])
                    else:
                        data.qvel[dof] += size * rng.choice((-1.0, 1.0))
        return applied

    def after_step(self, i: int, data: mujoco.MjData) -> None:
        """A push force lasts one control step."""
        if self.pushed[i]:
            data.xfrc_applied[self.bodies] = 0.0
            self.pushed[i] = False
