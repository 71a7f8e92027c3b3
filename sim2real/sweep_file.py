"""A sweep file: what `sim2real sweep` trains, read and checked before anything starts, and the
trials it makes (each setting once per seed). sim2real/sweep.py runs them.

Example (balance.yaml):

    env: sim2real/FurutaBalance-v0
    algo: ppo
    steps: 30000
    randomization: default          # what each trial starts from: a preset or a YAML file
    seeds: [0, 1, 2]                # or a count: 3 is seeds 0, 1, 2
    search: grid                    # every combination; `random` draws `samples` settings
    set:                            # training settings, as `sim2real train --set`
      learning_rate: [0.0003, 0.001]
    ranges:                         # randomization terms' [low, high]
      mass: [[0.9, 1.1], [0.7, 1.4]]
    early_stop: {metric: eval_return, grace_steps: 10000}   # ASHA; leave out to train all

A grid takes lists (a single value is a list of one). A random search draws each setting from a
list (one of its values), {uniform: [LOW, HIGH]} or {loguniform: [LOW, HIGH]} (settings only),
with the generator seeded by `search_seed`, so the same file gives the same trials.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

KEYS = ("env", "algo", "steps", "randomization", "seeds", "search", "samples", "search_seed", "set",
        "ranges", "early_stop", "cpus_per_trial", "max_failures")
EARLY_STOP_METRICS = ("eval_return", "eval_success_rate")
EARLY_STOP_KEYS = ("metric", "grace_steps", "reduction_factor")


@dataclass(frozen=True)
class EarlyStop:
    """ASHA (asynchronous successive halving): at `grace_steps`, and at each `reduction_factor`
    times that, a trial goes on only if its `metric` is in the top 1/`reduction_factor` of the
    trials that reached that point."""

    metric: str
    grace_steps: int
    reduction_factor: int = 3


@dataclass(frozen=True)
class Setting:
    """One point of the search: training settings and randomization ranges."""

    index: int
    settings: dict[str, Any] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    varied: tuple[str, ...] = ()
    """The names whose value differs between the sweep's settings: what its label shows."""

    @property
    def label(self) -> str:
        """e.g. "learning_rate=0.001, mass=0.7..1.4" ("the only setting" when nothing varies)."""
        parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                 for k, v in self.settings.items() if k in self.varied]
        parts += [f"{term}={low:g}..{high:g}" for term, (low, high) in self.ranges.items()
                  if term in self.varied]
        return ", ".join(parts) or "the only setting"


@dataclass(frozen=True)
class Trial:
    """One training run of a sweep: a setting at one seed, into sweep_dir/trials/NAME."""

    name: str
    setting: Setting
    seed: int


@dataclass(frozen=True)
class SweepPlan:
    env_id: str
    algo: str
    steps: int
    randomization: str
    seeds: tuple[int, ...]
    settings: tuple[Setting, ...]
    early_stop: EarlyStop | None = None
    cpus_per_trial: int = 1
    max_failures: int = 2
    """How often a trial whose worker died is started again (from its checkpoint)."""
    source: str = "sweep"

    @property
    def trials(self) -> list[Trial]:
        return [Trial(f"s{setting.index:02d}-seed{seed}", setting, seed)
                for setting in self.settings for seed in self.seeds]

    def randomization_for(self, setting: Setting) -> dict[str, Any]:
        """The randomization config `setting` trains under (as YAML holds it): the plan's, with
        each of the setting's terms spanning its range (a term the base lacks is uniform)."""
        from randomization.config import load_config
        from sim.registration import robot_of

        base = load_config(self.randomization, robot_of(self.env_id)).to_dict()
        for term, (low, high) in setting.ranges.items():
            entry = {k: v for k, v in base.get(term, {}).items()
                     if k not in ("distribution", "mean", "std", "choices")}
            base[term] = {**entry, "distribution": "uniform", "low": low, "high": high}
        return base


def load_sweep(path: Path, cpus_per_trial: int | None = None) -> SweepPlan:
    """The sweep file at `path`, checked: every setting makes a valid training config and
    randomization config, so a mistake stops the sweep before any trial starts."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep file {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
    return plan_from_dict(raw, str(path), cpus_per_trial)


def plan_from_dict(raw: Any, source: str = "sweep",
                   cpus_per_trial: int | None = None) -> SweepPlan:
    from randomization.config import RandomizationConfig
    from sim.registration import check_env_id
    from sim2real.runs import default_randomization, training_config

    if not isinstance(raw, dict):
        raise ValueError(f"{source}: a sweep file is a mapping (env:, algo:, steps:, set:, ...), "
                         f"got {type(raw).__name__}")
    if unknown := sorted(map(str, set(raw) - set(KEYS))):
        raise ValueError(f"{source}: unknown key(s) {unknown}; a sweep file has {', '.join(KEYS)}")
    if missing := [key for key in ("env", "steps") if key not in raw]:
        raise ValueError(f"{source}: give {' and '.join(missing)} (e.g. env: "
                         "sim2real/FurutaBalance-v0, steps: 30000)")
    env_id, algo = str(raw["env"]), str(raw.get("algo", "ppo"))
    check_env_id(env_id)
    steps = _whole(raw["steps"], "steps", source, 1)
    seeds = raw.get("seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = list(range(_whole(seeds, "seeds", source, 1)))
    if not isinstance(seeds, list) or not seeds:
        raise ValueError(f"{source}: seeds must be a count (3: seeds 0, 1, 2) or a list of seeds, "
                         f"got {seeds!r}")
    seeds = [_whole(s, "a seed", source, 0) for s in seeds]
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"{source}: seeds {seeds} repeat one; each trial of a setting needs its own")
    search = raw.get("search", "grid")
    set_space, range_space = (_mapping(raw.get(key), key, source) for key in ("set", "ranges"))
    if search == "grid":
        if "samples" in raw:
            raise ValueError(f"{source}: samples is for search: random; a grid tries every "
                             "combination (drop samples or set search: random)")
        points = _grid(set_space, range_space, source)
    elif search == "random":
        points = _random(set_space, range_space, _whole(raw.get("samples", 0), "samples", source, 1),
                         np.random.default_rng(_whole(raw.get("search_seed", 0), "search_seed",
                                                      source, 0)), source)
    else:
        raise ValueError(f"{source}: search must be grid or random, got {search!r}")
    varied = tuple(name for name in [*set_space, *range_space]
                   if len({repr({**s, **r}[name]) for s, r in points}) > 1)
    settings = tuple(Setting(i, s, r, varied) for i, (s, r) in enumerate(points))
    early = raw.get("early_stop")
    plan = SweepPlan(
        env_id, algo, steps, str(raw.get("randomization") or default_randomization(env_id)),
        tuple(seeds), settings, _early_stop(early, steps, source) if early is not None else None,
        _whole(cpus_per_trial if cpus_per_trial is not None else raw.get("cpus_per_trial", 1),
               "cpus_per_trial", source, 1),
        _whole(raw.get("max_failures", 2), "max_failures", source, 0), source)
    for setting in settings:  # each setting must train: named errors now, not in a worker
        where = f"{source}: setting {setting.index} ({setting.label})"
        try:
            config = training_config(algo, env_id, steps, seeds[0], setting.settings)
            RandomizationConfig.from_dict(plan.randomization_for(setting), where)
        except ValueError as error:
            raise ValueError(f"{where}: {error}" if where not in str(error) else str(error)) from None
        if plan.early_stop and not getattr(config, "eval_every", 0):
            raise ValueError(f"{where}: early_stop compares evaluations, but eval_every is 0; "
                             "set eval_every above 0 or drop early_stop")
    return plan


def _whole(value: Any, what: str, source: str, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{source}: {what} must be a whole number >= {least}, got {value!r}")
    return value


def _mapping(value: Any, key: str, source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{source}: {key} must map names to values, e.g. {key}: "
                         + ("{learning_rate: [0.0003, 0.001]}" if key == "set"
                            else "{mass: [[0.9, 1.1], [0.7, 1.4]]}") + f"; got {value!r}")
    return value


def _range(value: Any, term: str, source: str) -> tuple[float, float]:
    ok = (isinstance(value, list | tuple) and len(value) == 2
          and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                  for v in value) and value[0] <= value[1])
    if not ok:
        raise ValueError(f"{source}: ranges: {term} takes [low, high] pairs with low <= high, e.g. "
                         f"{term}: [[0.9, 1.1], [0.7, 1.4]]; got {value!r}")
    return float(value[0]), float(value[1])


def _ranges_of(term: str, values: Any, source: str) -> list[tuple[float, float]]:
    if not isinstance(values, list) or not values:
        raise ValueError(f"{source}: ranges: {term} takes a list of [low, high] pairs, e.g. "
                         f"{term}: [[0.9, 1.1], [0.7, 1.4]]; got {values!r}")
    if len(values) == 2 and all(isinstance(v, int | float) for v in values):
        values = [values]  # one pair written bare
    return [_range(v, term, source) for v in values]


def _grid(set_space: dict, range_space: dict, source: str) -> list[tuple[dict, dict]]:
    names = [*set_space, *range_space]
    choices = [v if isinstance(v, list) else [v] for v in set_space.values()]
    for name, value in set_space.items():
        if isinstance(value, dict):
            raise ValueError(f"{source}: set: {name}: {value!r} draws values, which only a random "
                             "search does; give a list of values or set search: random")
        if isinstance(value, list) and not value:
            raise ValueError(f"{source}: set: {name} has an empty list: nothing to try")
    choices += [_ranges_of(term, v, source) for term, v in range_space.items()]
    points = []
    for combination in itertools.product(*choices):
        values = dict(zip(names, combination, strict=True))
        points.append(({k: values[k] for k in set_space}, {k: values[k] for k in range_space}))
    return points


def _draw(name: str, spec: Any, rng: np.random.Generator, source: str) -> Any:
    if isinstance(spec, list):
        if not spec:
            raise ValueError(f"{source}: set: {name} has an empty list: nothing to draw")
        return spec[int(rng.integers(len(spec)))]
    if isinstance(spec, dict) and len(spec) == 1:
        (kind, bounds), = spec.items()
        if (kind in ("uniform", "loguniform") and isinstance(bounds, list) and len(bounds) == 2
                and all(isinstance(b, int | float) for b in bounds) and bounds[0] < bounds[1]
                and (kind == "uniform" or bounds[0] > 0)):
            low, high = (float(b) for b in bounds)
            return float(rng.uniform(low, high) if kind == "uniform"
                         else math.exp(rng.uniform(math.log(low), math.log(high))))
    if not isinstance(spec, dict):
        return spec  # a fixed value
    raise ValueError(f"{source}: set: {name}: {spec!r} is not a draw; write a list of values, "
                     "{uniform: [LOW, HIGH]} or {loguniform: [LOW, HIGH]} (LOW < HIGH, > 0 for "
                     "loguniform)")


def _random(set_space: dict, range_space: dict, samples: int, rng: np.random.Generator,
            source: str) -> list[tuple[dict, dict]]:
    ranges = {term: _ranges_of(term, v, source) for term, v in range_space.items()}
    return [({name: _draw(name, spec, rng, source) for name, spec in set_space.items()},
             {term: pairs[int(rng.integers(len(pairs)))] for term, pairs in ranges.items()})
            for _ in range(samples)]


def _early_stop(raw: Any, steps: int, source: str) -> EarlyStop:
    if not isinstance(raw, dict) or set(raw) - set(EARLY_STOP_KEYS):
        raise ValueError(f"{source}: early_stop takes {', '.join(EARLY_STOP_KEYS)}, e.g. "
                         f"early_stop: {{metric: eval_return, grace_steps: {steps // 4}}}; got {raw!r}")
    metric = raw.get("metric", "eval_return")
    if metric not in EARLY_STOP_METRICS:
        raise ValueError(f"{source}: early_stop's metric must be {' or '.join(EARLY_STOP_METRICS)}, "
                         f"got {metric!r}")
    grace = _whole(raw.get("grace_steps", max(1, steps // 4)), "early_stop's grace_steps", source, 1)
    if grace >= steps:
        raise ValueError(f"{source}: early_stop's grace_steps {grace} is not below steps {steps}: "
                         "no trial could stop early; lower it")
    return EarlyStop(metric, grace, _whole(raw.get("reduction_factor", 3),
                                           "early_stop's reduction_factor", source, 2))
