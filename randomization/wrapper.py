"""Domain randomization as a Gymnasium wrapper over any env whose unwrapped env exposes MuJoCo
`model` and `data` (ours, gymnasium's MuJoCo envs, gymnasium-robotics)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import yaml

from randomization.step_terms import STEP_TERM_NAMES, StepTerm
from randomization.terms import TERM_NAMES, Distribution, TermSpec, apply_terms, make_term

PRESETS = Path(__file__).parent / "presets"


SPEC_KEYS = ("distribution", "low", "high", "mean", "std", "choices", "match", "operation")


@dataclass(frozen=True)
class RandomizationConfig:
    """Which terms to randomize, each with its distribution; an empty config randomizes nothing.

    As YAML, one mapping per term (`distribution` defaults to uniform, `operation` to scale,
    `match` to every named element):

        mass: {low: 0.8, high: 1.2, match: ".*"}
        joint_damping: {distribution: loguniform, low: 0.5, high: 2.0}
        gravity: {match: "[xy]", operation: add, distribution: normal, mean: 0.0, std: 0.05}
    """

    terms: dict[str, TermSpec] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> RandomizationConfig:
        if not isinstance(raw, dict):
            raise ValueError(f"{source}: expected a mapping of term -> settings, got "
                             f"{type(raw).__name__}")
        terms = {}
        for term, spec in raw.items():
            if term not in TERM_NAMES + STEP_TERM_NAMES:
                raise ValueError(f"{source}: unknown randomization term {term!r}; "
                                 f"known terms: {', '.join(TERM_NAMES + STEP_TERM_NAMES)}")
            if not isinstance(spec, dict):
                raise ValueError(f"{source}: term {term!r} needs a mapping such as "
                                 f"{{low: 0.8, high: 1.2}}, got {spec!r}")
            unknown = set(spec) - set(SPEC_KEYS)
            if unknown:
                raise ValueError(f"{source}: term {term!r} has unknown keys {sorted(unknown)}; "
                                 f"use {', '.join(SPEC_KEYS)}")
            try:
                numbers = {key: float(spec[key]) for key in ("low", "high", "mean", "std")
                           if key in spec}
                choices = tuple(float(c) for c in spec.get("choices", ()))
            except (TypeError, ValueError):
                raise ValueError(f"{source}: term {term!r} has a value that is not a number: "
                                 f"{spec!r}") from None
            distribution = Distribution(kind=str(spec.get("distribution", "uniform")),
                                        choices=choices, **numbers)
            terms[term] = TermSpec(distribution=distribution, match=str(spec.get("match", ".*")),
                                   operation=str(spec.get("operation", "scale")))
            if term in STEP_TERM_NAMES:
                # A step term sets its own operation; keep the spec as it will be used.
                terms[term] = StepTerm(term, terms[term], 1, 1).spec
            else:
                terms[term].check(term)
        return cls(terms)

    @property
    def model_terms(self) -> dict[str, TermSpec]:
        return {k: v for k, v in self.terms.items() if k not in STEP_TERM_NAMES}

    @property
    def step_terms(self) -> dict[str, TermSpec]:
        return {k: v for k, v in self.terms.items() if k in STEP_TERM_NAMES}

    def to_dict(self) -> dict[str, dict[str, Any]]:
        out = {}
        for term, spec in self.terms.items():
            d = spec.distribution
            entry = {"distribution": d.kind, "match": spec.match, "operation": spec.operation}
            entry.update({k: getattr(d, k) for k in ("low", "high", "mean", "std")
                          if getattr(d, k) is not None})
            if d.choices:
                entry["choices"] = list(d.choices)
            out[term] = entry
        return out


class StepTerms:
    """The step terms of a config for a batch of `num_envs` copies: actions pass through delay
    then noise, observations through bias, noise, then dropout."""

    def __init__(self, config: RandomizationConfig, num_envs: int, action_space: gym.Space,
                 observation_space: gym.Space) -> None:
        self.terms = {}
        for name, spec in config.step_terms.items():
            space = action_space if name.startswith("action") else observation_space
            if not isinstance(space, gym.spaces.Box):
                raise ValueError(f"randomization {name} needs a Box space, this env has {space}")
            self.terms[name] = StepTerm(name, spec, num_envs, int(np.prod(space.shape)))

    def reset(self, i: int, rng: np.random.Generator) -> dict[str, dict[str, float]]:
        return {name: dict(zip(term.names, term.reset(i, rng).tolist(), strict=True))
                for name, term in self.terms.items()}

    def _through(self, names: tuple[str, ...], values: np.ndarray, rng: np.random.Generator,
                 rows: np.ndarray | None) -> np.ndarray:
        for name in names:
            if name in self.terms:
                values = self.terms[name](values, rng, rows)
        return values

    def act(self, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self._through(("action_delay", "action_noise"), actions, rng, None)

    def observe(self, observations: np.ndarray, rng: np.random.Generator,
                rows: np.ndarray | None = None) -> np.ndarray:
        """Observations of all copies, or of the copies `rows` (the ones just reset)."""
        return self._through(("observation_bias", "observation_noise", "observation_dropout"),
                             observations, rng, rows)


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
            known = ", ".join(sorted(p.stem for p in PRESETS.glob("*.yaml")))
            raise ValueError(f"unknown randomization preset {str(source)!r}; presets: {known}; "
                             "or give the path of a YAML file")
    if not path.is_file():
        raise FileNotFoundError(f"randomization config {path} does not exist")
    return RandomizationConfig.from_dict(yaml.safe_load(path.read_text()) or {}, str(path))


class DomainRandomization(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Draw new physics on every reset from the env's seeded generator; the sampled values are
    in `info["randomization"]` as {term: {element name: value}}.

    Example:
        >>> env = DomainRandomization(gym.make("InvertedPendulum-v5"),
        ...     RandomizationConfig.from_dict({"mass": {"low": 0.8, "high": 1.2}}))
        >>> obs, info = env.reset(seed=0)
        >>> info["randomization"]["mass"]
    """

    def __init__(self, env: gym.Env, config: RandomizationConfig) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, config=config)
        gym.Wrapper.__init__(self, env)
        model = getattr(env.unwrapped, "model", None)
        if not isinstance(model, mujoco.MjModel):
            raise ValueError(f"{env.unwrapped!r} exposes no MuJoCo `model`; domain randomization "
                            "needs a MuJoCo env")
        self.config = config
        self.terms = [make_term(model, name, spec) for name, spec in config.model_terms.items()]
        self.step_terms = StepTerms(config, 1, env.action_space, env.observation_space)
        self.last_sample: dict[str, dict[str, float]] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        # Seeding first makes the draws below repeat for the same seed.
        obs, info = self.env.reset(seed=seed, options=options)
        model, data = self.env.unwrapped.model, self.env.unwrapped.data
        rng = self.env.unwrapped.np_random
        sample = apply_terms(model, self.terms, rng)
        sample.update(self.step_terms.reset(0, rng))
        mujoco.mj_forward(model, data)
        self.last_sample = sample
        obs = self.step_terms.observe(np.asarray(obs)[None], rng)[0]
        return obs, {**info, "randomization": sample}

    def step(self, action):
        rng = self.env.unwrapped.np_random
        action = self.step_terms.act(np.asarray(action)[None], rng)[0]
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self.step_terms.observe(np.asarray(obs)[None], rng)[0], reward, terminated, \
            truncated, info

    def close(self) -> None:
        model = self.env.unwrapped.model
        for term in self.terms:
            term.restore(model)
        super().close()
