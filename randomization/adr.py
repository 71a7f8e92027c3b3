"""Automatic Domain Randomization (ADR; OpenAI et al. 2019, "Solving Rubik's Cube with a Robot
Hand", section 5): each randomized term's range starts narrow and widens while the policy copes.

Each term has one scalar range [low, high] that applies to all of its elements. At the start of
an episode, with probability `boundary_probability`, an env copy evaluates one bound: a term and
a side (low or high), both chosen uniformly, and that term is pinned to the bound's value for the
episode; every other term draws from its current range. The episode's performance goes into that
bound's buffer. A full buffer whose mean is >= `widen_above` moves the bound outward by the term's
step (never past its limit), a mean <= `narrow_below` moves it inward (never past its start, so a
range never inverts), and the buffer is emptied either way.

Bounds sit on the grid start -/+ k * step, clipped to the limit, so many moves do not drift by
rounding. A result measured at a bound that has moved since the episode began is dropped: it says
nothing about the bound's new value.

Pure numpy (the plot of the ranges is in adr_plot.py); randomness only from the generator passed
to `begin_episode`, so the same seed gives the same assignments.

Example:
    >>> adr = AutomaticDomainRandomization(
    ...     {"mass": ADRRange(start_low=1.0, start_high=1.0, limit_low=0.5, limit_high=2.0,
    ...                       step=0.05)}, ADRConfig(), num_envs=1)
    >>> bounds = adr.begin_episode(0, np.random.default_rng(0))   # {"mass": (low, high)}
    >>> # ... run the episode with the mass scale drawn uniformly from bounds["mass"] ...
    >>> adr.end_episode(0, performance=1.0, step=200)
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from randomization.term_spec import TermSpec

SIDES = ("low", "high")


def _is_number(value: Any) -> bool:
    """A finite real number, not a bool (YAML's `yes`)."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and abs(value) <= sys.float_info.max)  # NaN and inf fail, a huge int too (exactly)
HISTORY_FIELDS = ("step", "term", "side", "low", "high", "performance", "limit_low", "limit_high")
"""The keys of a history row, in order: the header for writing `history()` as CSV."""


@dataclass(frozen=True)
class ADRRange:
    """One term's ADR range, in the term's own units (a factor for a scale term, an offset for
    an add term, the value itself for a step term such as a noise std)."""

    start_low: float
    """Where the low bound starts, and the highest it may narrow back to."""
    start_high: float
    """Where the high bound starts, and the lowest it may narrow back to."""
    limit_low: float
    """The lowest the low bound may ever widen to."""
    limit_high: float
    """The highest the high bound may ever widen to."""
    step: float
    """How far one widening or narrowing moves a bound (> 0, in the term's units)."""

    def check(self, term: str) -> None:
        where = f"ADR range of {term!r}"
        for key, value in asdict(self).items():
            if not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise ValueError(f"{where}: {key} = {value!r} must be a finite number")
        if self.start_low > self.start_high:
            raise ValueError(f"{where}: start_low {self.start_low} > start_high {self.start_high}; "
                             "swap them")
        if self.start_low < self.limit_low:
            raise ValueError(f"{where}: start_low {self.start_low} is below limit_low "
                             f"{self.limit_low}; lower limit_low or raise start_low")
        if self.start_high > self.limit_high:
            raise ValueError(f"{where}: start_high {self.start_high} is above limit_high "
                             f"{self.limit_high}; raise limit_high or lower start_high")
        if self.step <= 0:
            raise ValueError(f"{where}: step {self.step} must be > 0 (how far one move goes, in "
                             "the term's units, e.g. 0.05 for a scale factor)")


@dataclass(frozen=True)
class ADRConfig:
    """How ADR evaluates and moves bounds (shared by all terms)."""

    boundary_probability: float = 0.5
    """Chance that an episode evaluates a bound instead of drawing every term from its range."""
    buffer_size: int = 20
    """Results a bound collects before it may move; the buffer empties after each decision."""
    widen_above: float = 0.8
    """t_H: a full buffer whose mean performance is >= this moves the bound outward."""
    narrow_below: float = 0.4
    """t_L: a full buffer whose mean performance is <= this moves the bound inward."""

    def __post_init__(self) -> None:
        for key in ("boundary_probability", "widen_above", "narrow_below"):
            if not _is_number(getattr(self, key)):
                raise ValueError(f"ADR {key} {getattr(self, key)!r} must be a number in [0, 1]")
        if not 0.0 <= self.boundary_probability <= 1.0:
            raise ValueError(f"ADR boundary_probability {self.boundary_probability} must be in "
                             "[0, 1]")
        if isinstance(self.buffer_size, bool) or not isinstance(self.buffer_size, int) \
                or self.buffer_size < 1:
            raise ValueError(f"ADR buffer_size {self.buffer_size!r} must be a whole number >= 1")
        for key in ("widen_above", "narrow_below"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"ADR {key} {value} must be in [0, 1] (a mean performance, e.g. "
                                 "a success rate)")
        if self.narrow_below >= self.widen_above:
            raise ValueError(f"ADR narrow_below {self.narrow_below} must be < widen_above "
                             f"{self.widen_above}; lower narrow_below or raise widen_above")


class AutomaticDomainRandomization:
    """The ADR state of `num_envs` env copies: current ranges, one buffer per bound, and which
    bound (if any) each copy's running episode evaluates."""

    def __init__(self, ranges: Mapping[str, ADRRange], config: ADRConfig | None = None,
                 num_envs: int = 1) -> None:
        if not ranges:
            raise ValueError("ADR needs at least one term in ranges, e.g. {'mass': ADRRange(...)}")
        for term, spec in ranges.items():
            if not isinstance(term, str) or not term:
                raise ValueError(f"ADR term names must be non-empty strings, got {term!r}")
            if not isinstance(spec, ADRRange):
                raise ValueError(f"ADR range of {term!r} must be an ADRRange, got {spec!r}")
            spec.check(term)
        if isinstance(num_envs, bool) or not isinstance(num_envs, int) or num_envs < 1:
            raise ValueError(f"ADR num_envs {num_envs!r} must be a whole number >= 1")
        self.specs = dict(ranges)
        self.config = config or ADRConfig()
        self.num_envs = num_envs
        self.terms = tuple(self.specs)
        # Grid steps each bound has moved outward from its start.
        self._moves = {term: dict.fromkeys(SIDES, 0) for term in self.terms}
        self._buffers: dict[str, dict[str, list[float]]] = {
            term: {side: [] for side in SIDES} for term in self.terms}
        self._open = [False] * num_envs
        # Per copy: (term, side, moves of that bound when the episode began), or None.
        self._evaluating: list[tuple[str, str, int] | None] = [None] * num_envs
        self._history = [self._row(0, term, "start", None) for term in self.terms]

    def _bound(self, term: str, side: str, moves: int | None = None) -> float:
        spec = self.specs[term]
        n = self._moves[term][side] if moves is None else moves
        if side == "low":
            return max(spec.limit_low, spec.start_low - n * spec.step)
        return min(spec.limit_high, spec.start_high + n * spec.step)

    def _row(self, step: int, term: str, side: str, performance: float | None) -> dict[str, Any]:
        spec = self.specs[term]
        return {"step": int(step), "term": term, "side": side, "low": self._bound(term, "low"),
                "high": self._bound(term, "high"), "performance": performance,
                "limit_low": spec.limit_low, "limit_high": spec.limit_high}

    def _check_copy(self, copy: int) -> None:
        if isinstance(copy, bool) or not isinstance(copy, int | np.integer) \
                or not 0 <= copy < self.num_envs:
            raise ValueError(f"ADR copy {copy!r} is not an env copy index; use 0..{self.num_envs - 1}")

    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        """The current (low, high) of every term."""
        return {term: (self._bound(term, "low"), self._bound(term, "high")) for term in self.terms}

    def evaluating(self, copy: int) -> tuple[str, str] | None:
        """(term, side) whose bound copy `copy`'s running episode evaluates, or None."""
        self._check_copy(copy)
        entry = self._evaluating[copy]
        return None if entry is None else entry[:2]

    def begin_episode(self, copy: int, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
        """Call at every reset of copy `copy`: the (low, high) each term draws from this episode.
        An evaluated term gets (bound, bound). A copy that begins again without ending abandons
        its previous episode, and that episode's result is never counted."""
        self._check_copy(copy)
        self._open[copy] = True
        self._evaluating[copy] = None
        ranges = self.ranges
        # Always draw the coin, so the generator advances the same way whatever the outcome.
        if rng.random() < self.config.boundary_probability:
            term = self.terms[int(rng.integers(len(self.terms)))]
            side = SIDES[int(rng.integers(2))]
            self._evaluating[copy] = (term, side, self._moves[term][side])
            value = ranges[term][SIDES.index(side)]
            ranges[term] = (value, value)
        return ranges

    def end_episode(self, copy: int, performance: float, step: int) -> None:
        """Call when copy `copy`'s episode ends, with its performance (e.g. success 0/1 or a
        return normalised to [0, 1]) and the env steps taken so far (for the history)."""
        self._check_copy(copy)
        if not self._open[copy]:
            raise ValueError(f"ADR copy {copy} ended an episode it never began; call "
                             f"begin_episode({copy}, rng) at each of its resets")
        performance = float(performance)
        if not math.isfinite(performance):
            raise ValueError(f"ADR performance {performance} of copy {copy} must be a finite number")
        self._open[copy] = False
        entry, self._evaluating[copy] = self._evaluating[copy], None
        if entry is None:
            return
        term, side, moves = entry
        if moves != self._moves[term][side]:
            return  # measured at a value the bound has left
        buffer = self._buffers[term][side]
        buffer.append(performance)
        if len(buffer) < self.config.buffer_size:
            return
        mean = float(np.mean(buffer))
        buffer.clear()
        if mean >= self.config.widen_above:
            self._move(term, side, moves + 1, mean, step)
        elif mean <= self.config.narrow_below and moves > 0:
            self._move(term, side, moves - 1, mean, step)

    def _move(self, term: str, side: str, moves: int, mean: float, step: int) -> None:
        if self._bound(term, side, moves) == self._bound(term, side):
            return  # already at the limit
        self._moves[term][side] = moves
        self._history.append(self._row(step, term, side, mean))

    def history(self) -> list[dict[str, Any]]:
        """One row per term at the start (side "start", step 0, performance None), then one row
        whenever a bound moves: step, term, side, low, high (after the move), performance (the
        buffer's mean that moved it), limit_low, limit_high. Keys: HISTORY_FIELDS."""
        return [dict(row) for row in self._history]

    def log_row(self) -> dict[str, float]:
        """Current bounds flattened for a metrics CSV: {"adr/mass/low": 0.9, "adr/mass/high": 1.1}."""
        return {f"adr/{term}/{side}": value for term, bounds in self.ranges.items()
                for side, value in zip(SIDES, bounds, strict=True)}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (plain lists, dicts and numbers: JSON-friendly)."""
        return {"ranges": {term: asdict(spec) for term, spec in self.specs.items()},
                "num_envs": self.num_envs,
                "moves": {term: dict(moves) for term, moves in self._moves.items()},
                "buffers": {term: {side: list(b) for side, b in sides.items()}
                            for term, sides in self._buffers.items()},
                "open": list(self._open),
                "evaluating": [None if e is None else list(e) for e in self._evaluating],
                "history": self.history()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Resume from `state_dict()`. The ranges and num_envs must be the ones it was saved with;
        the config is this object's (so thresholds may change on resume)."""
        saved = state["ranges"]
        if list(saved) != list(self.terms):
            raise ValueError(f"ADR state has terms {list(saved)}, this ADR has {list(self.terms)}; "
                             "build the ADR with the ranges of the run being resumed")
        for term, spec in saved.items():
            if ADRRange(**spec) != self.specs[term]:
                raise ValueError(f"ADR state of {term!r} was saved with {spec}, this ADR has "
                                 f"{asdict(self.specs[term])}; build the ADR with the saved ranges")
        if state["num_envs"] != self.num_envs:
            raise ValueError(f"ADR state has num_envs {state['num_envs']}, this ADR "
                             f"{self.num_envs}; resume with the same number of env copies")
        self._moves = {term: {side: int(state["moves"][term][side]) for side in SIDES}
                       for term in self.terms}
        self._buffers = {term: {side: [float(v) for v in state["buffers"][term][side]]
                                for side in SIDES} for term in self.terms}
        self._open = [bool(v) for v in state["open"]]
        self._evaluating = [None if e is None else (str(e[0]), str(e[1]), int(e[2]))
                            for e in state["evaluating"]]
        self._history = [dict(row) for row in state["history"]]


def adr_ranges_from_terms(terms: Mapping[str, TermSpec], steps: int = 10,
                          nominal: Mapping[str, float] | None = None,
                          step: Mapping[str, float] | None = None) -> dict[str, ADRRange]:
    """ADR ranges for a randomization config's terms (`RandomizationConfig.terms`). The limit is
    what the configured distribution can reach; the start is the value that leaves the robot as
    modelled (1 for a scale term, 0 for an add term or a step term: no delay, no noise), clipped
    into the limit, unless `nominal` gives it; a step is the limit's width / `steps` unless `step`
    gives it. For a `set` term on the model, give its nominal value in `nominal`."""
    nominal, step = dict(nominal or {}), dict(step or {})
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"ADR steps {steps!r} must be a whole number >= 1")
    for key, given in (("nominal", nominal), ("step", step)):
        unknown = sorted(set(given) - set(terms))
        if unknown:
            raise ValueError(f"ADR {key} names terms that are not in the config: {unknown}; "
                             f"terms: {', '.join(terms)}")
    ranges = {}
    for term, spec in terms.items():
        low, high = (float(v) for v in spec.distribution.support)
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"ADR range of {term!r}: its {spec.distribution.kind} distribution "
                             f"is unbounded ({low}, {high}); use uniform or truncnormal limits")
        start = float(nominal.get(term, 1.0 if spec.operation == "scale" else 0.0))
        start = min(max(start, low), high)
        width = step.get(term, (high - low) / steps)
        if width <= 0:
            raise ValueError(f"ADR range of {term!r}: the distribution reaches only {low}, so "
                             "there is nothing to widen; leave the term out of ADR or give its "
                             "limits a width")
        ranges[term] = ADRRange(start, start, low, high, width)
        ranges[term].check(term)
    return ranges


ADR_KEYS = ("terms", "steps", "boundary_probability", "buffer_size", "widen_above",
            "narrow_below")


def adr_from_config(config: Any, num_envs: int) -> AutomaticDomainRandomization:
    """ADR from a randomization config's `adr` section:

        adr:
          terms: [mass, actuator_kp]      # model terms; or {mass: {step: 0.05}} per term
          steps: 10                       # the limit's width / steps is one widening
          widen_above: 0.8                # success rate at a bound that widens it
          narrow_below: 0.4
          buffer_size: 20
          boundary_probability: 0.5

    Each term's limit is its configured distribution's range; it starts at the nominal model.

    `config` is a RandomizationConfig; only its `adr`, `terms` and `model_terms` are read, so
    this module stays below config.py, which calls it to check a file's `adr` section."""
    settings = dict(config.adr)
    unknown = sorted(set(settings) - set(ADR_KEYS))
    if unknown:
        raise ValueError(f"randomization adr: unknown keys {unknown}; use {', '.join(ADR_KEYS)}")
    chosen = settings.pop("terms", None)
    if not chosen or not isinstance(chosen, list | dict) or not all(
            isinstance(name, str) for name in chosen):
        raise ValueError("randomization adr: list the terms it widens under `terms`, e.g. "
                         f"terms: [mass, actuator_kp] (or {{mass: {{step: 0.05}}}}), got {chosen!r}")
    per_term = chosen if isinstance(chosen, dict) else dict.fromkeys(chosen, None)
    for name, given in per_term.items():
        if given is not None and not (isinstance(given, dict) and set(given) <= {"step"}
                                      and _is_number(given.get("step", 1.0))):
            raise ValueError(f"randomization adr: term {name!r} takes {{step: S}} (a number, "
                             f"how far one move goes) or nothing, got {given!r}")
        if name not in config.terms:
            raise ValueError(f"randomization adr: term {name!r} is not in the config; add it "
                             "with its limits (low, high) first")
        if name in ("texture", "distractors", "shape"):
            raise ValueError(f"randomization adr: term {name!r} draws choices, not one number "
                             "per element; leave it out of ADR")
        if name not in config.model_terms:
            raise ValueError(f"randomization adr: term {name!r} is not a model term; ADR widens "
                             "model terms only")
    step = {name: float(v["step"]) for name, v in per_term.items()
            if isinstance(v, dict) and "step" in v}
    ranges = adr_ranges_from_terms({name: config.terms[name] for name in per_term},
                                   steps=settings.pop("steps", 10), step=step)
    return AutomaticDomainRandomization(ranges, ADRConfig(**settings), num_envs)
