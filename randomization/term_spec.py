"""What one randomization term says, and what every term does with it: the spec (which
elements, which distribution, which operation, when), the elements its `match` names, and a draw
combined with the nominal value by its `operation`.

The model terms (terms.py), the geometry and visual terms (geometry.py, visual.py) and the state,
step and timing terms all build on this module, which imports none of them.

Example:
    >>> spec = TermSpec(Distribution("uniform", 0.8, 1.2), match="link.*")
    >>> spec.check("mass")
    >>> ids, names = matching(model, mujoco.mjtObj.mjOBJ_BODY, model.nbody, "mass", spec, "body")
    >>> combine(spec.operation, nominal, spec.distribution.sample(rng, len(ids)))
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import mujoco
import numpy as np

from sim.words import plural

DISTRIBUTIONS = ("uniform", "loguniform", "normal", "truncnormal", "choice")
OPERATIONS = ("scale", "add", "set")


@dataclass(frozen=True)
class Distribution:
    """uniform(low, high), loguniform(low, high), normal(mean, std),
    truncnormal(mean, std, low, high) or choice(choices)."""

    kind: str = "uniform"
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    std: float | None = None
    choices: tuple[float, ...] = ()

    def check(self, term: str) -> None:
        where = f"randomization {term}"
        if self.kind not in DISTRIBUTIONS:
            raise ValueError(f"{where}: distribution {self.kind!r} is unknown; use one of "
                             f"{', '.join(DISTRIBUTIONS)}")
        needs = {"uniform": ("low", "high"), "loguniform": ("low", "high"),
                 "normal": ("mean", "std"), "truncnormal": ("mean", "std", "low", "high"),
                 "choice": ("choices",)}[self.kind]
        missing = [key for key in needs if getattr(self, key) in (None, ())]
        if missing:
            raise ValueError(f"{where}: a {self.kind} distribution needs {', '.join(needs)}; "
                             f"missing {', '.join(missing)}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"{where}: low {self.low} > high {self.high}; swap them")
        if self.kind == "loguniform" and self.low <= 0:
            raise ValueError(f"{where}: loguniform needs low > 0, got {self.low}")
        if self.std is not None and self.std < 0:
            raise ValueError(f"{where}: std {self.std} must be >= 0")

    @property
    def support(self) -> tuple[float, float]:
        """The smallest and largest value a draw can take (inf where unbounded)."""
        if self.kind == "choice":
            return min(self.choices), max(self.choices)
        if self.kind == "normal":
            return (-np.inf, np.inf) if self.std else (self.mean, self.mean)
        return self.low, self.high

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high, size)
        if self.kind == "loguniform":
            return np.exp(rng.uniform(np.log(self.low), np.log(self.high), size))
        if self.kind == "normal":
            return rng.normal(self.mean, self.std, size)
        if self.kind == "truncnormal":
            # Redraw what falls outside: exact, and cheap for the usual +-2 sigma bounds.
            values = rng.normal(self.mean, self.std, size)
            for _ in range(100):
                outside = (values < self.low) | (values > self.high)
                if not outside.any():
                    return values
                values[outside] = rng.normal(self.mean, self.std, outside.sum())
            return np.clip(values, self.low, self.high)
        return rng.choice(np.asarray(self.choices, dtype=float), size)


@dataclass(frozen=True)
class TermSpec:
    """What one term of a randomization config says: which elements, which distribution, how
    the draw combines with the nominal value."""

    distribution: Distribution = field(default_factory=lambda: Distribution("uniform", 1.0, 1.0))
    match: str = ".*"
    """Regular expression on element names (full match); unnamed elements never match."""
    operation: str = "scale"
    when: str | int = "reset"
    """"start" (drawn once, kept for every episode), "reset" (drawn at every reset) or N (drawn
    again every N control steps, and at every reset)."""

    def check(self, term: str) -> None:
        if self.when not in ("start", "reset") and not (
                isinstance(self.when, int) and not isinstance(self.when, bool) and self.when >= 1):
            raise ValueError(f"randomization {term}: when {self.when!r} is unknown; use start, "
                             "reset or a whole number N >= 1 (every N control steps)")
        self.distribution.check(term)
        if self.operation not in OPERATIONS:
            raise ValueError(f"randomization {term}: operation {self.operation!r} is unknown; use "
                             f"one of {', '.join(OPERATIONS)}")
        try:
            re.compile(self.match)
        except re.error as error:
            raise ValueError(f"randomization {term}: match {self.match!r} is not a regular "
                             f"expression ({error})") from None
        low, _ = self.distribution.support
        if self.operation == "scale" and term != "gravity" and not low > 0:
            raise ValueError(f"randomization {term}: a scale factor on a physical quantity must "
                             f"stay > 0, but the distribution reaches {low}; raise low (or use "
                             "truncnormal with low > 0)")


def matching(model: mujoco.MjModel, kind: mujoco.mjtObj, count: int, term: str, spec: TermSpec,
             what: str) -> tuple[list[int], list[str]]:
    """Ids and names of the elements whose name fully matches spec.match."""
    regex = re.compile(spec.match)
    names = [mujoco.mj_id2name(model, kind, i) for i in range(count)]
    ids = [i for i, n in enumerate(names) if n and regex.fullmatch(n)]
    if not ids:
        known = ", ".join(n for n in names if n) or ("(none are named)" if count else "(none)")
        raise ValueError(f"randomization {term}: match {spec.match!r} names no {what} in the "
                         f"model; {plural(what)} there: {known}")
    return ids, [names[i] for i in ids]


def combine(operation: str, nominal: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A draw with the nominal value by the spec's operation: scale (nominal * values), add
    (nominal + values) or set (values, a fresh array of the nominal's shape)."""
    if operation == "scale":
        return nominal * values
    if operation == "add":
        return nominal + values
    return np.broadcast_to(values, nominal.shape).copy()


def per_channel(names: list[str], keys: str | tuple[str, ...]) -> list[str]:
    """One value name per element and channel: light0.r, light0.g, ..."""
    return [f"{name}.{key}" for name in names for key in keys]


def check_scale_changes(term: str, spec: TermSpec, nominal: np.ndarray,
                        names: list[str]) -> None:
    """Refuse operation scale on values that are all 0: it would change nothing."""
    if spec.operation == "scale" and not np.any(nominal):
        raise ValueError(f"randomization {term}: the nominal values of {', '.join(names)} are all 0, "
                         "so operation 'scale' changes nothing; use add or set")


def whole_draws(term: str, spec: TermSpec, low: int, high: int, what: str) -> int:
    """Check that a draw of `what` is a whole number in [low, high]; return the largest."""
    support = spec.distribution.support
    if not all(math.isfinite(v) and float(v).is_integer() for v in support):
        raise ValueError(f"randomization {term}: {what} is a whole number, but the distribution "
                         f"reaches {support}; use e.g. choice with whole numbers")
    if support[0] < low or support[1] > high:
        raise ValueError(f"randomization {term}: {what} must stay in {low}..{high}, the "
                         f"distribution reaches {support}")
    return int(support[1])
