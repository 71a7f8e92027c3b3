"""What every algorithm's config checks in its `__post_init__` (`check_settings`): each field's
type from its annotation, its range from its name (RANGES: one rule a name, whichever algorithm
has the field) and, for a text field, its choices. A bad value is a ValueError naming the setting,
the value and what it may be, so `sim2real train --set` and a resumed checkpoint answer in one line.

Example:
    >>> @dataclass
    ... class MyConfig:
    ...     num_envs: int = 8
    ...     def __post_init__(self) -> None:
    ...         check_settings(self)
    >>> MyConfig(num_envs=2.5)
    ValueError: my setting num_envs is 2.5; it must be a whole number >= 1, e.g. 8 (its default)
"""

from __future__ import annotations

import json
import math
import numbers
import reprlib
import types
import typing
from dataclasses import MISSING, dataclass, fields
from typing import Any

from policies.compiled import COMPILE_CHOICES
from policies.offpolicy_networks import MATMUL_PRECISIONS


@dataclass(frozen=True)
class Range:
    """The numbers a setting may take: from `low` to `high`, each end included unless `open`."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def __str__(self) -> str:
        low, high = (int(x) if float(x).is_integer() else x for x in (self.low, self.high))
        if self.high == math.inf:
            return "" if self.low == -math.inf else f" {'>' if self.low_open else '>='} {low}"
        return f" in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


ANY = Range()
AT_LEAST_ONE = Range(1)
NOT_NEGATIVE = Range(0)
POSITIVE = Range(0, low_open=True)
PROBABILITY = Range(0, 1)
UNIT = Range(0, 1, low_open=True)
"""(0, 1]: a discount, a Polyak coefficient, a share of the run."""

RANGES: dict[str, Range] = {
    **dict.fromkeys((
        "total_steps", "num_envs", "rollout_steps", "epochs", "minibatch_size", "batch_size",
        "buffer_size", "train_freq", "gradient_steps", "checkpoint_every", "eval_episodes",
        "log_every", "image_features", "policy_delay", "target_update_interval",
        "batch_steps", "max_episode_steps", "baseline_epochs", "baseline_minibatch_size",
        "cg_iterations", "line_search_steps", "critic_epochs", "critic_minibatch_size",
        "hidden_sizes"), AT_LEAST_ONE),
    **dict.fromkeys((
        "learning_rate", "actor_learning_rate", "critic_learning_rate", "alpha_learning_rate",
        "baseline_learning_rate", "clip_coef", "max_grad_norm", "alpha", "initial_alpha",
        "target_kl"), POSITIVE),
    **dict.fromkeys((
        "learning_starts", "eval_every", "checkpoint_seconds", "entropy_coef", "value_coef",
        "torch_threads",
        "hindsight_goals",
        "exploration_noise_std", "target_policy_noise", "target_noise_clip", "cg_damping"),
        NOT_NEGATIVE),
    **dict.fromkeys(("gamma", "tau", "exploration_fraction"), UNIT),
    **dict.fromkeys(("gae_lambda", "initial_epsilon", "final_epsilon"), PROBABILITY),
    "line_search_shrink": Range(0, 1, low_open=True, high_open=True),
    "seed": Range(0, 2**32 - 1),
    **dict.fromkeys(("initial_log_std", "target_entropy"), ANY),
}
"""The range of each numeric setting, by name (hidden_sizes: of each layer's width)."""

CHOICES: dict[str, tuple[str, ...]] = {"compile": COMPILE_CHOICES,
                                       "matmul_precision": MATMUL_PRECISIONS}
"""The choices of the text settings several algorithms have; an algorithm passes its own."""


def check_settings(config: Any, **choices: tuple[str, ...]) -> None:
    """Check every field of the dataclass `config` (see the module's docstring); `choices`: the
    choices of text settings only this algorithm has, e.g. loss=("huber", "mse"). Whole numbers
    given for a float setting become floats, a list for hidden_sizes a tuple."""
    algo = type(config).__name__.removesuffix("Config").lower()
    hints = typing.get_type_hints(type(config))
    for field in fields(config):
        name, value = field.name, getattr(config, field.name)
        kind, optional = _kind(hints[name])
        if value is None and optional:
            continue
        allowed = {**CHOICES, **choices}.get(name, ())
        converted = _converted(value, kind, RANGES.get(name, ANY), allowed)
        if converted is None:
            what = {int: "a whole number", float: "a finite number", bool: "true or false",
                    str: f"one of {', '.join(allowed)}",
                    tuple: "a non-empty list of whole numbers"}[kind]
            what += "" if kind in (bool, str) else str(RANGES.get(name, ANY))
            default = None if field.default is MISSING else field.default
            raise ValueError(f"{algo} setting {name} is {reprlib.repr(value)}; it must be {what}"
                             f"{' or null' if optional else ''}, e.g. {json.dumps(default)} (its "
                             "default)")
        object.__setattr__(config, name, converted)


def _kind(hint: Any) -> tuple[type, bool]:
    """(int, float, bool, str or tuple; whether None is allowed) of a field's annotation."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return next(arg for arg in args if arg is not type(None)), type(None) in args
    return (typing.get_origin(hint) or hint), False


def _converted(value: Any, kind: type, allowed: Range, choices: tuple[str, ...]) -> Any:
    """`value` as a `kind` setting, or None when it is not one."""
    if kind is bool or isinstance(value, bool):
        return value if kind is bool and isinstance(value, bool) else None
    if kind is str:
        return value if isinstance(value, str) and value in choices else None
    if kind is tuple:
        if not isinstance(value, list | tuple) or not value:
            return None
        widths = [_converted(v, int, allowed, ()) for v in value]
        return None if None in widths else tuple(widths)
    if not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral) and kind is int:
        value = int(value) if abs(value) < 2**63 else None  # numpy's too; what torch can hold
    elif kind is int:
        value = int(value) if math.isfinite(value) and float(value).is_integer() else None  # 1e6
    else:
        try:
            value = float(value)
        except OverflowError:
            return None
        value = value if math.isfinite(value) else None
    return value if value is not None and value in allowed else None
