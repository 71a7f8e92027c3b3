"""The randomization config: one YAML file that maps each term to its targets, distribution,
operation and schedule, plus the per-robot presets `none`, `default` and `wide`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from randomization.adr import adr_from_config
from randomization.geometry import SHAPES
from randomization.perturbations import PERTURBATION_NAMES
from randomization.step_terms import STEP_TERM_NAMES, StepTerm
from randomization.term_spec import Distribution, TermSpec
from randomization.terms import GEOMETRY_TERM_NAMES, TERM_NAMES
from randomization.timing import TIMING_NAMES
from randomization.visual import FIXED_OPERATIONS as VISUAL_OPERATIONS
from randomization.visual import VISUAL_TERM_NAMES

PRESETS = Path(__file__).parent / "presets"
MODEL_TERM_NAMES = (*TERM_NAMES, *GEOMETRY_TERM_NAMES, *VISUAL_TERM_NAMES)
ALL_TERM_NAMES = (*MODEL_TERM_NAMES, *PERTURBATION_NAMES, *TIMING_NAMES, *STEP_TERM_NAMES)
FIXED_OPERATIONS = {"shape": "set", "object_start": "add", "push_force": "set",
                    "push_velocity": "set", **dict.fromkeys(TIMING_NAMES, "set"),
                    **VISUAL_OPERATIONS}
SPEC_KEYS = ("distribution", "low", "high", "mean", "std", "choices", "match", "operation", "when")


@dataclass(frozen=True)
class RandomizationConfig:
    """Which terms to randomize, each with its distribution; an empty config randomizes nothing.

    As YAML, one mapping per term (`distribution` defaults to uniform, `operation` to scale,
    `match` to every named element, `when` to reset):

        mass: {low: 0.8, high: 1.2, match: ".*"}
        joint_damping: {distribution: loguniform, low: 0.5, high: 2.0}
        gravity: {match: "[xy]", operation: add, distribution: normal, mean: 0.0, std: 0.05}
        shape: {choices: [box, cylinder, sphere], match: block}
        push_force: {low: 0.0, high: 2.0, match: lower_arm, when: 50}
        adr: {terms: {mass: {start: [1.0, 1.0], step: 0.05}}, widen_above: 0.8}
    """

    terms: dict[str, TermSpec] = field(default_factory=dict)
    adr: dict[str, Any] = field(default_factory=dict)
    """Automatic domain randomization settings (randomization/adr.py); empty: off."""

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> RandomizationConfig:
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: expected a mapping of term -> settings, got "
                             f"{type(raw).__name__}")
        raw = dict(raw)
        adr = raw.pop("adr", None)
        adr = {} if adr is None else adr
        if not isinstance(adr, dict):
            raise ValueError(f"{source}: adr needs a mapping such as {{terms: [mass], steps: "
                             f"10}}, got {adr!r}")
        terms = {term: _term_spec(term, spec, source) for term, spec in raw.items()}
        config = cls(terms, adr)
        if adr:
            try:
                adr_from_config(config, 1)  # checks the section now, with the file's name
            except ValueError as error:
                raise ValueError(f"{source}: {error}") from None
        return config

    def of_kind(self, names: tuple[str, ...]) -> dict[str, TermSpec]:
        return {k: v for k, v in self.terms.items() if k in names}

    @property
    def model_terms(self) -> dict[str, TermSpec]:
        return self.of_kind(MODEL_TERM_NAMES)

    @property
    def step_terms(self) -> dict[str, TermSpec]:
        return self.of_kind(STEP_TERM_NAMES)

    def describe(self) -> str:
        """The terms and their ranges in one line: "mass x0.8..1.25, action_delay 0|1|2"."""
        if not self.terms:
            return "none (the nominal model every episode)"
        parts = []
        for term, spec in self.terms.items():
            d = spec.distribution
            if d.kind == "choice":
                values = "|".join(f"{c:g}" if isinstance(c, float) else str(c) for c in d.choices)
            elif d.kind == "normal":
                values = f"N({d.mean:g}, {d.std:g})"
            else:
                values = f"{d.low:g}..{d.high:g}"
            parts.append(f"{term} {dict(scale='x', add='+').get(spec.operation, '')}{values}")
        return ", ".join(parts) + (" (ADR widens some)" if self.adr else "")

    def to_dict(self) -> dict[str, Any]:
        """The config as YAML would hold it (as recorded in a run dir and in the contract)."""
        out: dict[str, Any] = {}
        for term, spec in self.terms.items():
            d = spec.distribution
            entry = {"distribution": d.kind, "match": spec.match, "operation": spec.operation,
                     "when": spec.when}
            entry.update({k: getattr(d, k) for k in ("low", "high", "mean", "std")
                          if getattr(d, k) is not None})
            if d.choices:
                entry["choices"] = list(d.choices)
            out[term] = entry
        if self.adr:
            out["adr"] = self.adr
        return out


def _finite(value: Any) -> float:
    """A number of a term's spec; True, NaN and infinity are not (ValueError)."""
    number = float(value)
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _term_spec(term: str, spec: Any, source: str) -> TermSpec:
    if term not in ALL_TERM_NAMES:
        raise ValueError(f"{source}: unknown randomization term {term!r}; known terms: "
                         f"{', '.join(ALL_TERM_NAMES)}")
    if not isinstance(spec, dict):
        raise ValueError(f"{source}: term {term!r} needs a mapping such as "
                         f"{{low: 0.8, high: 1.2}}, got {spec!r}")
    unknown = set(spec) - set(SPEC_KEYS)
    if unknown:
        raise ValueError(f"{source}: term {term!r} has unknown keys {sorted(unknown)}; use "
                         f"{', '.join(SPEC_KEYS)}")
    if not isinstance(spec.get("choices", []), list):
        raise ValueError(f"{source}: term {term!r} needs its choices as a list such as "
                         f"[0, 1, 2], got {spec['choices']!r}")
    try:
        numbers = {key: _finite(spec[key]) for key in ("low", "high", "mean", "std") if key in spec}
        # Shapes are chosen by name; every other choice is a number.
        choices = tuple(str(c) if term == "shape" else _finite(c) for c in spec.get("choices", ()))
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{source}: term {term!r} has a value that is not a number (or not "
                         f"finite): {spec!r}") from None
    if term == "shape":
        unknown_shapes = [c for c in choices if c not in SHAPES]
        if not choices or unknown_shapes:
            raise ValueError(f"{source}: term 'shape' needs choices among {', '.join(SHAPES)}; "
                             f"got {list(choices)}")
        distribution = Distribution("choice", choices=choices)
    else:
        distribution = Distribution(kind=str(spec.get("distribution", "uniform")),
                                    choices=choices, **numbers)
    # Terms whose draw is the value itself (a latency, a push) or an offset fix their operation.
    operation = FIXED_OPERATIONS.get(term, str(spec.get("operation", "scale")))
    result = TermSpec(distribution=distribution, match=str(spec.get("match", ".*")),
                      operation=operation, when=spec.get("when", "reset"))
    try:
        if term in STEP_TERM_NAMES:
            # A step term sets its own operation; keep the spec as it will be used.
            return StepTerm(term, result, 1, 1).spec
        if term != "shape":
            result.check(term)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None
    return result


def load_config(source: str | Path | RandomizationConfig,
                robot: str | None = None) -> RandomizationConfig:
    """A config from a preset name (`none`, `default`, `wide`), a YAML path, or a config. A
    preset of `robot` (presets/ROBOT/NAME.yaml) wins over the generic one."""
    if isinstance(source, RandomizationConfig):
        return source
    path = Path(source)
    if not path.suffix:
        own = PRESETS / str(robot) / f"{source}.yaml"
        path = own if robot and own.is_file() else PRESETS / f"{source}.yaml"
        if not path.is_file():
            known = ", ".join(sorted({p.stem for p in PRESETS.glob("*.yaml")}
                                     | {p.stem for p in (PRESETS / str(robot)).glob("*.yaml")}))
            raise ValueError(f"unknown randomization preset {str(source)!r}; presets: {known}; "
                             "or give the path of a YAML file")
    if not path.is_file():
        raise FileNotFoundError(f"randomization config {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_bytes())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0]
        raise ValueError(f"{path} is not valid YAML{where}: {problem}; write one mapping of "
                         "term -> settings, e.g. mass: {low: 0.8, high: 1.2}") from None
    return RandomizationConfig.from_dict({} if raw is None else raw, str(path))
