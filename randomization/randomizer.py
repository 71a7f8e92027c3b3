"""Everything a randomization config does to a batch of copies of one env (one copy for the
Gymnasium wrapper): model terms per copy (each copy owns its MjModel), object starts, pushes,
sub-step timing, and the step terms between the policy and the robot. The batch env and the
wrapper both drive physics through this one object, so a config means the same in both."""

from __future__ import annotations

import gymnasium as gym
import mujoco
import numpy as np

from randomization.adr import adr_from_config
from randomization.config import RandomizationConfig
from randomization.perturbations import ObjectStartTerm, Pushes
from randomization.step_terms import OBJECT_TERM_NAMES, StepTerm
from randomization.terms import Distribution, apply_terms, make_term
from randomization.timing import TIMING_NAMES, Timing

Sample = dict[str, dict[str, float]]
"""Draws as {term: {element: value}}, as they appear in info["randomization"]."""


class StepTerms:
    """The step terms of a config for a batch of `num_envs` copies: actions pass through delay
    then noise; observations through gain noise, bias, noise, quantization (at the sensor),
    latency (on the way), then dropout (lost on arrival).

    With `command_size` (an env of ours, which makes each action a command in robot units) the
    delay acts on the commands instead (`send`, after the action's noise made its command), and
    the env fills the delay line with the held command at each reset (`hold`): the env's
    `CommandLine` (sim/commands.py).

    With `object_size` (an env of ours whose task tracks objects) the object terms act on the
    objects' positions before the task makes its observation of them (`see`): the env's
    `ObjectLine` (sim/task.py)."""

    ACTION_ORDER = ("action_delay", "action_noise")
    OBSERVATION_ORDER = ("observation_scale_noise", "observation_bias", "observation_noise",
                         "observation_quantization", "observation_latency", "observation_dropout")
    # A camera samples the scene each frame (the hold); the frame then arrives late.
    OBJECT_ORDER = OBJECT_TERM_NAMES

    def __init__(self, config: RandomizationConfig, num_envs: int, action_space: gym.Space,
                 observation_space: gym.Space, command_size: int | None = None,
                 object_size: int = 0) -> None:
        self.terms = {}
        self.delays_commands = command_size is not None and "action_delay" in config.step_terms
        self.sees_objects = any(name in config.step_terms for name in OBJECT_TERM_NAMES)
        for name, spec in config.step_terms.items():
            if name in OBJECT_TERM_NAMES:
                if not object_size:
                    raise ValueError(
                        f"randomization {name} acts on the positions of the objects a task "
                        "tracks (a camera's), and this env's task tracks none: use it with a "
                        "task that has objects (sim2real/ArmPush-v0), or remove the term")
                self.terms[name] = StepTerm(name, spec, num_envs, object_size)
                continue
            space = action_space if name.startswith("action") else observation_space
            if not isinstance(space, gym.spaces.Box):
                raise ValueError(f"randomization {name} needs a Box space, this env has {space}")
            on_commands = self.delays_commands and name == "action_delay"
            size = command_size if on_commands else int(np.prod(space.shape))
            self.terms[name] = StepTerm(name, spec, num_envs, size, commands=on_commands)
        self._action_order = tuple(name for name in self.ACTION_ORDER
                                   if not (self.delays_commands and name == "action_delay"))

    def reset(self, i: int, rng: np.random.Generator) -> Sample:
        return {name: dict(zip(term.names, term.reset(i, rng).tolist(), strict=True))
                for name, term in self.terms.items()}

    def _through(self, names: tuple[str, ...], values: np.ndarray, rng: np.random.Generator,
                 rows: np.ndarray | None) -> np.ndarray:
        for name in names:
            if name in self.terms:
                values = self.terms[name](values, rng, rows)
        return values

    def act(self, actions: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Actions of all copies, on their way into the env (noise; the delay unless the env's
        commands take it)."""
        return self._through(self._action_order, actions, rng, None)

    def hold(self, commands: np.ndarray, rows: np.ndarray | None = None) -> None:
        """At a reset of the copies `rows` (default all): the commands in flight are the one
        each robot holds, (n, command_size)."""
        self.terms["action_delay"].fill(commands, rows)

    def send(self, commands: np.ndarray) -> np.ndarray:
        """The commands (n, command_size) of all copies this step in, those that reach the
        robots now out."""
        return self.terms["action_delay"](commands, None)

    def see(self, objects: np.ndarray, rng: np.random.Generator,
            rows: np.ndarray | None = None) -> np.ndarray:
        """The objects' positions (n, objects, 3) of all copies, or of the copies `rows`, as the
        policy gets them this step (held, late)."""
        flat = objects.reshape(len(objects), -1)
        return self._through(self.OBJECT_ORDER, flat, rng, rows).reshape(objects.shape)

    def observe(self, observations: np.ndarray, rng: np.random.Generator,
                rows: np.ndarray | None = None) -> np.ndarray:
        """Observations of all copies, or of the copies `rows` (the ones just reset)."""
        return self._through(self.OBSERVATION_ORDER, observations, rng, rows)


class Randomizer:
    """Example (what the batch env does for copy i):
        >>> randomizer = Randomizer(config, models, action_space, observation_space, 4, 0.005)
        >>> sample = randomizer.reset(i, models[i], rng)          # before the episode's start
        >>> sample.update(randomizer.after_reset(i, datas[i], rng))   # then mj_forward
    """

    def __init__(self, config: RandomizationConfig, models: list[mujoco.MjModel],
                 action_space: gym.Space, observation_space: gym.Space, substeps: int,
                 timestep: float, command_size: int | None = None, object_size: int = 0) -> None:
        """`command_size`: the size of a command of an env that makes commands of actions (ours);
        action_delay then delays its commands (`command_line`), else its actions.
        `object_size`: the values of the positions of the objects its task tracks (3 each), on
        which the object terms act (`object_line`)."""
        num_envs = len(models)
        self.config = config
        self.model_terms = [[make_term(model, name, spec)
                             for name, spec in config.model_terms.items()] for model in models]
        self.object_start = ([ObjectStartTerm(model, config.terms["object_start"])
                              for model in models] if "object_start" in config.terms else None)
        pushes = config.of_kind(("push_force", "push_velocity"))
        self.pushes = (Pushes(models[0], pushes, {k: v.when for k, v in pushes.items()
                                                  if isinstance(v.when, int)}, num_envs)
                       if pushes else None)
        timing = config.of_kind(TIMING_NAMES)
        self.timing = Timing(timing, num_envs, substeps, timestep) if timing else None
        self.signals = (StepTerms(config, num_envs, action_space, observation_space,
                                  command_size, object_size) if config.step_terms else None)
        self.every = {name: spec.when for name, spec in config.model_terms.items()
                      if isinstance(spec.when, int)}
        self._all_terms = set(config.model_terms)
        self._terms_each_reset = {name for name, spec in config.model_terms.items()
                                  if spec.when != "start"}
        self.values: list[dict[str, np.ndarray]] = [{} for _ in range(num_envs)]
        self.steps = np.zeros(num_envs, dtype=np.int64)
        self.adr = None
        if config.adr:
            self.adr = adr_from_config(config, num_envs)

    @property
    def command_line(self) -> StepTerms | None:
        """The delay line the env sends its commands through, or None (no action_delay, or
        an env whose actions are its commands: `act` delays those)."""
        return self.signals if self.signals is not None and self.signals.delays_commands else None

    @property
    def object_line(self) -> StepTerms | None:
        """What the objects' positions pass before the policy observes them, or None."""
        return self.signals if self.signals is not None and self.signals.sees_objects else None

    @property
    def acts_in_physics(self) -> bool:
        """Whether anything happens inside a control step (pushes, timing, scheduled redraws)."""
        return bool(self.pushes or self.timing or self.every)

    def _draw(self, i: int, names: set[str], rng: np.random.Generator,
              ranges: dict[str, tuple[float, float]]) -> Sample:
        sample = {}
        for term in self.model_terms[i]:
            if term.name in names:
                if term.name in ranges:  # automatic domain randomization sets the range
                    distribution = Distribution("uniform", *ranges[term.name])
                    values = distribution.sample(rng, len(term.names))
                else:
                    values = term.sample(rng)
                self.values[i][term.name] = values
            sample[term.name] = dict(zip(term.names, self.values[i][term.name].tolist(),
                                         strict=True))
        return sample

    def reset(self, i: int, model: mujoco.MjModel, rng: np.random.Generator) -> Sample:
        """Copy `i`'s model and step draws for a new episode (before the env places the robot)."""
        names = self._all_terms if not self.values[i] else self._terms_each_reset
        ranges = self.adr.begin_episode(i, rng) if self.adr is not None else {}
        sample = self._draw(i, names, rng, ranges)
        apply_terms(model, self.model_terms[i], self.values[i])
        if self.timing is not None:
            sample.update(self.timing.reset(i, rng))
        if self.signals is not None:
            sample.update(self.signals.reset(i, rng))
        self.steps[i] = 0
        return sample

    def after_reset(self, i: int, data: mujoco.MjData, rng: np.random.Generator) -> Sample:
        """State draws once the env has placed the robot and objects; call mj_forward after."""
        if self.object_start is None:
            return {}
        term = self.object_start[i]
        values = term.sample(rng)
        term.apply_state(data, values)
        return {term.name: dict(zip(term.names, values.tolist(), strict=True))}

    def before_physics(self, i: int, data: mujoco.MjData, rng: np.random.Generator) -> Sample:
        """Pushes due on copy `i` this control step."""
        self.steps[i] += 1
        if self.pushes is None:
            return {}
        return {name: {"size": size}
                for name, size in self.pushes.before_step(i, int(self.steps[i]), data, rng).items()}

    def after_physics(self, i: int, model: mujoco.MjModel, data: mujoco.MjData,
                      rng: np.random.Generator) -> Sample:
        """End a push; redraw the terms scheduled every N steps."""
        if self.pushes is not None:
            self.pushes.after_step(i, data)
        due = {name for name, every in self.every.items() if self.steps[i] % every == 0}
        if not due:
            return {}
        sample = self._draw(i, due, rng, {})
        apply_terms(model, self.model_terms[i], self.values[i])
        return {name: sample[name] for name in due}

    def end_episode(self, i: int, performance: float, total_steps: int) -> None:
        """Tell automatic domain randomization how copy `i`'s episode went."""
        if self.adr is not None:
            self.adr.end_episode(i, performance, total_steps)

    def restore(self, models: list[mujoco.MjModel]) -> None:
        for model, terms in zip(models, self.model_terms, strict=True):
            for term in terms:
                term.restore(model)
