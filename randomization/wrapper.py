"""Domain randomization as a Gymnasium wrapper over any env whose unwrapped env exposes MuJoCo
`model` and `data` (ours, gymnasium's MuJoCo envs, gymnasium-robotics)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from randomization.config import RandomizationConfig
from randomization.randomizer import Randomizer, Sample
from randomization.timing import TIMING_NAMES


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
        unwrapped = env.unwrapped
        model = getattr(unwrapped, "model", None)
        if not isinstance(model, mujoco.MjModel):
            raise ValueError(f"{unwrapped!r} exposes no MuJoCo `model`; domain randomization "
                            "needs a MuJoCo env")
        self.config = config
        # How many physics steps one env step takes: gymnasium's MuJoCo envs and ours call it
        # frame_skip, gymnasium-robotics n_substeps. Timing terms change it for one step.
        self._frames = next((name for name in ("frame_skip", "n_substeps")
                             if isinstance(getattr(unwrapped, name, None), int)), None)
        if config.of_kind(TIMING_NAMES) and self._frames is None:
            raise ValueError(f"timing randomization needs an env that steps its physics "
                             f"`frame_skip` or `n_substeps` times per step; {unwrapped!r} has "
                             "neither")
        # Our envs make each action a command from the reading the policy saw and offer the
        # command's way to the robot (`command_line`, sim/env.py): action_delay delays that
        # command, as a real link does. Other envs' actions are their commands.
        takes_commands = hasattr(unwrapped, "command_line")
        self.randomizer = Randomizer(config, [model], env.action_space, env.observation_space,
                                     getattr(unwrapped, self._frames) if self._frames else 1,
                                     float(model.opt.timestep),
                                     command_size=(unwrapped.robot.num_actuators
                                                   if takes_commands else None),
                                     object_size=(3 * len(unwrapped.task.objects)
                                                  if hasattr(unwrapped, "object_line") else 0))
        if self.randomizer.command_line is not None:
            unwrapped.command_line = self.randomizer.command_line
        if self.randomizer.object_line is not None:
            unwrapped.object_line = self.randomizer.object_line
        # Terms a renderer must know of (textures to upload, distractors to draw): found by
        # sim.pixels.PixelObservation through the wrapper chain.
        self.visual_terms = [term for term in self.randomizer.model_terms[0]
                             if hasattr(term, "attach_renderer") or hasattr(term, "add_to_scene")]
        self.last_sample: Sample = {}
        self._steps = 0

    def _fresh_observation(self, observation: Any) -> Any:
        """The observation of the state as randomized (sizes move frames, objects move): asked
        of the env again, through the observation wrappers between it and this one."""
        unwrapped = self.env.unwrapped
        observe = getattr(unwrapped, "observe", None) or getattr(unwrapped, "_get_obs", None)
        if observe is None:
            return observation
        fresh = observe()
        wrappers, env = [], self.env
        while isinstance(env, gym.Wrapper):
            wrappers.append(env)
            env = env.env
        for wrapper in reversed(wrappers):
            if isinstance(wrapper, gym.ObservationWrapper):
                fresh = wrapper.observation(fresh)
        return fresh

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        # Seeding first makes the draws below repeat for the same seed.
        obs, info = self.env.reset(seed=seed, options=options)
        unwrapped = self.env.unwrapped
        model, data, rng = unwrapped.model, unwrapped.data, unwrapped.np_random
        sample = self.randomizer.reset(0, model, rng)
        sample.update(self.randomizer.after_reset(0, data, rng))
        mujoco.mj_forward(model, data)
        obs = self._fresh_observation(obs)
        self.last_sample = sample
        self._steps = 0
        if self.randomizer.signals is not None:
            obs = self.randomizer.signals.observe(np.asarray(obs)[None], rng)[0]
        return obs, {**info, "randomization": sample}

    def step(self, action):
        unwrapped = self.env.unwrapped
        model, data, rng = unwrapped.model, unwrapped.data, unwrapped.np_random
        signals, randomizer = self.randomizer.signals, self.randomizer
        if signals is not None:
            action = signals.act(np.asarray(action)[None], rng)[0]
        sample = randomizer.before_physics(0, data, rng)
        frames = getattr(unwrapped, self._frames) if self._frames else None
        if randomizer.timing is not None:
            delay, total = (int(x[0]) for x in randomizer.timing.plan(rng, 1))
            if delay:
                mujoco.mj_step(model, data, nstep=delay)  # the previous command still acts
            setattr(unwrapped, self._frames, total - delay)
        try:
            obs, reward, terminated, truncated, info = self.env.step(action)
        finally:
            if randomizer.timing is not None:
                setattr(unwrapped, self._frames, frames)
        sample.update(randomizer.after_physics(0, model, data, rng))
        self._steps += 1
        if sample:
            info = {**info, "randomization": sample}
        if (terminated or truncated) and randomizer.adr is not None:
            randomizer.end_episode(0, float(info.get("is_success", 0.0)), self._steps)
        if signals is not None:
            obs = signals.observe(np.asarray(obs)[None], rng)[0]
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.randomizer.restore([self.env.unwrapped.model])
        if self.randomizer.command_line is not None:
            self.env.unwrapped.command_line = None
        if self.randomizer.object_line is not None:
            self.env.unwrapped.object_line = None
        super().close()
