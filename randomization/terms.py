"""Randomization terms: one per kind of physical parameter. Each term is a pure function of the
nominal model values and a sample, so nothing compounds across resets.

A term matches model elements by a regular expression on their names, checks its range at
construction, draws one value per matched element from the env's generator, and writes
nominal * value into the model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import mujoco
import numpy as np


@dataclass(frozen=True)
class ScaleRange:
    """A uniform multiplicative range: value ~ U(low, high), applied as nominal * value."""

    low: float
    high: float
    match: str = ".*"
    """Regular expression on element names (full match); unnamed elements never match."""

    def check(self, term: str) -> None:
        if self.low > self.high:
            raise ValueError(f"randomization {term}: low {self.low} > high {self.high}; "
                             "swap them")
        if self.low <= 0:
            raise ValueError(f"randomization {term}: low {self.low} must be > 0 (a scale factor "
                             "on a physical quantity)")


def _matching_ids(model: mujoco.MjModel, kind: mujoco.mjtObj, count: int, pattern: str,
                  term: str, skip_world: bool = False) -> np.ndarray:
    regex = re.compile(pattern)
    names = [mujoco.mj_id2name(model, kind, i) for i in range(count)]
    ids = [i for i, name in enumerate(names)
           if name and regex.fullmatch(name) and not (skip_world and i == 0)]
    if not ids:
        known = ", ".join(n for n in names if n) or "(none are named)"
        raise ValueError(f"randomization {term}: match {pattern!r} names nothing in the model; "
                         f"names there: {known}")
    return np.array(ids)


class BodyMassScale:
    """Body mass and rotational inertia ~ nominal * U(low, high), one factor per body (scaling
    both keeps the body's inertia consistent with its new mass)."""

    name = "mass_scale"

    def __init__(self, model: mujoco.MjModel, spec: ScaleRange) -> None:
        spec.check(self.name)
        self.spec = spec
        self.ids = _matching_ids(model, mujoco.mjtObj.mjOBJ_BODY, model.nbody, spec.match,
                                 self.name, skip_world=True)
        self.names = [model.body(i).name for i in self.ids]
        self.nominal_mass = model.body_mass[self.ids].copy()
        self.nominal_inertia = model.body_inertia[self.ids].copy()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.spec.low, self.spec.high, len(self.ids))

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        model.body_mass[self.ids] = self.nominal_mass * values
        model.body_inertia[self.ids] = self.nominal_inertia * values[:, None]

    def restore(self, model: mujoco.MjModel) -> None:
        self.apply(model, np.ones(len(self.ids)))


class GeomFrictionScale:
    """Sliding friction of geoms ~ nominal * U(low, high), one factor per geom (torsional and
    rolling friction scale with it)."""

    name = "friction_scale"

    def __init__(self, model: mujoco.MjModel, spec: ScaleRange) -> None:
        spec.check(self.name)
        self.spec = spec
        self.ids = _matching_ids(model, mujoco.mjtObj.mjOBJ_GEOM, model.ngeom, spec.match,
                                 self.name)
        self.names = [model.geom(i).name for i in self.ids]
        self.nominal = model.geom_friction[self.ids].copy()

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(self.spec.low, self.spec.high, len(self.ids))

    def apply(self, model: mujoco.MjModel, values: np.ndarray) -> None:
        model.geom_friction[self.ids] = self.nominal * values[:, None]

    def restore(self, model: mujoco.MjModel) -> None:
        self.apply(model, np.ones(len(self.ids)))


# The config key of each term -> its class: a plain dict, so the schema is readable at a glance.
TERMS = {BodyMassScale.name: BodyMassScale, GeomFrictionScale.name: GeomFrictionScale}
