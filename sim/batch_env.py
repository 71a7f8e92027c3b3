"""Many copies of one of our (robot, task) envs in one process, as a Gymnasium vector env.

Physics steps the copies on every core the process may use (`mj_step` releases the GIL: each
thread steps its own slice of the copies, so each copy sees exactly the calls it would in one
thread), while the task functions (forward kinematics, observation, reward), the command history
and a command delay run once on the whole batch, in numpy: that is where a single env spends
most of its Python time.
Finished copies reset in the same step (`AutoresetMode.SAME_STEP`); their last observation is in
info["final_obs"].
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.vector.utils import batch_space

from sim.catalog import make_task, robot_by_name
from sim.commands import CommandHistory, CommandLine
from sim.cores import usable_cores
from sim.physics import RobotSimulation
from sim.spec import RobotState
from sim.task import ObjectLine, TaskStep, policy_view, sample_episode

# Builds the batch's randomizer from the copies' models, the single action and observation
# spaces, the physics steps per env step, the physics timestep and (keywords) the size of a
# command, whose delay it then owns, and of the tracked objects' positions (randomization.envs gives
# `functools.partial(Randomizer, config)`); sim knows only the methods it calls on the result.
RandomizerFactory = Callable[..., Any]


class BatchRobotEnv(gym.vector.VectorEnv):
    """`make_randomizer`, when given, builds the object that randomizes each copy at reset and
    step (randomization.envs.make_vector_env passes one for a config with terms).
    `physics_threads`: how many threads step the copies' physics (default: the cores this
    process may use, sim/cores.py); the results are the same for any number. Randomization that acts inside
    the physics step (pushes, sub-step latency, a jittered period) steps in one thread.

    Example:
        >>> envs = BatchRobotEnv(16, robot="so_arm", task="reach")
        >>> obs, info = envs.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}

    def __init__(self, num_envs: int, robot: str = "so_arm", task: str = "reach",
                 task_config: dict | None = None,
                 make_randomizer: RandomizerFactory | None = None,
                 physics_threads: int | None = None) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if physics_threads is not None and (not isinstance(physics_threads, int)
                                            or physics_threads < 1):
            raise ValueError(f"physics_threads must be a whole number >= 1, got "
                             f"{physics_threads!r}; leave it unset for one per core")
        self.num_envs = num_envs
        self.robot = robot_by_name(robot)
        self.task = make_task(task, self.robot, task_config)
        self.sims = [RobotSimulation(self.robot, self.task.scene, self.task.objects)
                     for _ in range(num_envs)]
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf,
                                                       (self.task.observation_size,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (self.task.action_size,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.randomizer = None
        if make_randomizer is not None:
            self.randomizer = make_randomizer([sim.model for sim in self.sims],
                                              self.single_action_space,
                                              self.single_observation_space,
                                              self.sims[0].substeps, self.sims[0].timestep,
                                              command_size=self.robot.num_actuators,
                                              object_size=3 * len(self.task.objects))
        # Commands are delayed after the history records them: it holds what was asked for.
        self.command_line: CommandLine | None = (self.randomizer.command_line
                                                 if self.randomizer is not None else None)
        # Objects' positions are held and delayed for the policy's observation only.
        self.object_line: ObjectLine | None = (self.randomizer.object_line
                                               if self.randomizer is not None else None)
        self.history = CommandHistory.for_task(self.task, num_envs)
        self._noise_rng = np.random.default_rng(0)
        # What each copy's current episode was given: {term: {element: value}}.
        self.randomization: list[dict[str, dict[str, float]]] = [{} for _ in range(num_envs)]
        self.env_steps = 0
        self._rngs = [np.random.default_rng(i) for i in range(num_envs)]
        self.goals = np.zeros((num_envs, len(self.task.sample_goal(self._rngs[0]))))
        self.steps = np.zeros(num_envs, dtype=np.int64)
        first = self.sims[0]
        # Servo P gains per copy: configured (randomization may change them at reset) and in
        # force now (0 inside the deadband); MuJoCo's model is written only where they change.
        self._configured_gains = np.stack([sim.configured_gains() for sim in self.sims])
        self._deadbands = np.stack([sim.deadband() if sim.is_servo else np.zeros(0)
                                    for sim in self.sims])
        self._active_gains = np.stack([sim.active_gains() for sim in self.sims])
        self._views = [sim.views for sim in self.sims] if first.views is not None else None
        self._substeps = first.substeps
        self._every_copy = np.ones(num_envs, dtype=bool)
        self._every_copy.flags.writeable = False
        self._readings = self.states()
        self.physics_threads = min(num_envs, physics_threads or usable_cores())
        self._start_physics_threads()

    def _start_physics_threads(self) -> None:
        """Contiguous slices of the copies, one a thread; the calling thread steps the first."""
        self._slices = [copies.tolist() for copies in
                        np.array_split(np.arange(self.num_envs), self.physics_threads)]
        self._pool = (ThreadPoolExecutor(self.physics_threads - 1, "physics")
                      if self.physics_threads > 1 else None)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_views", "_slices", "_pool")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._views = [sim.views for sim in self.sims] if self.sims[0].views is not None else None
        self._start_physics_threads()

    def close_extras(self, **kwargs: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _reset_one(self, i: int) -> None:
        rng, sim = self._rngs[i], self.sims[i]
        if self.randomizer is not None:
            self.randomization[i] = self.randomizer.reset(i, sim.model, rng)
        pose, self.goals[i], objects = sample_episode(self.task, rng)
        sim.reset(pose, objects)
        held = sim.held_command()
        self.history.reset(held, i)
        if self.command_line is not None:
            self.command_line.hold(held[None], np.array([i]))
        if self.randomizer is not None:
            placed = self.randomizer.after_reset(i, sim.data, rng)
            if placed:
                self.randomization[i].update(placed)
                mujoco.mj_forward(sim.model, sim.data)
        self._refresh_actuators(i)
        self.steps[i] = 0

    def _refresh_actuators(self, i: int) -> None:
        """Copy `i`'s servo parameters as randomization left them in its model."""
        sim = self.sims[i]
        if sim.is_servo:
            self._configured_gains[i] = sim.configured_gains()
            self._deadbands[i] = sim.deadband()
            self._active_gains[i] = sim.active_gains()

    def states(self, indices: np.ndarray | None = None) -> RobotState:
        """Readings of the batch (or of `indices`): positions, velocities of shape (n, joints)."""
        sims = self.sims if indices is None else [self.sims[i] for i in indices]
        if self._views is None:
            positions = np.stack([sim.data.qpos[sim.qpos_at] for sim in sims])
            velocities = np.stack([sim.data.qvel[sim.qvel_at] for sim in sims])
        else:
            views = self._views if indices is None else [self._views[i] for i in indices]
            positions = np.array([view[1] for view in views])  # np.array: 4x np.stack's speed
            velocities = np.array([view[2] for view in views])
        objects = np.array([sim.object_views for sim in sims]) if self.task.objects else None
        return RobotState(self.robot.quantize_positions(positions), velocities, objects=objects)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        if seed is not None:
            seeds = seed if isinstance(seed, list) else [seed + i for i in range(self.num_envs)]
            self._rngs = [np.random.default_rng(s) for s in seeds]
            self._noise_rng = np.random.default_rng([*seeds, 1])
        for i in range(self.num_envs):
            self._reset_one(i)
        self._readings = self.states()
        observation = self._observe(self._policy_view(
            self._readings, self.goals, self.history.commands,
            self.task.evaluate(self._readings, self.goals, self.history.commands)))
        if self.randomizer is None:
            return observation, {}
        draws = np.empty(self.num_envs, dtype=object)
        draws[:] = self.randomization
        return observation, {"randomization": draws, "_randomization": self._every_copy}

    def log_row(self) -> dict[str, float]:
        """For the training log: automatic domain randomization's current ranges, if on."""
        if self.randomizer is None or self.randomizer.adr is None:
            return {}
        return self.randomizer.adr.log_row()

    def _policy_view(self, states: RobotState, goals: np.ndarray, history: np.ndarray,
                     judged: TaskStep, rows: np.ndarray | None = None) -> np.ndarray:
        return policy_view(self.task, states, goals, history, judged, self.object_line,
                           self._noise_rng, rows)

    def _observe(self, observation: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        if self.randomizer is None or self.randomizer.signals is None:
            return observation
        return self.randomizer.signals.observe(observation, self._noise_rng, rows)

    def _step_randomized(self, i: int, goal: np.ndarray, gains: np.ndarray | None, delay: int,
                         total: int) -> dict:
        """One control step of copy `i` with pushes, sub-step latency, a jittered period and
        scheduled redraws: the slow path, taken only when the config has such terms."""
        sim, rng, randomizer = self.sims[i], self._rngs[i], self.randomizer
        sample = randomizer.before_physics(i, sim.data, rng)
        if delay:
            mujoco.mj_step(sim.model, sim.data, nstep=delay)  # the previous command still acts
        sim.data.ctrl[sim.ctrl_at] = goal
        if gains is not None:
            sim.write_gains(gains)
        mujoco.mj_step(sim.model, sim.data, nstep=total - delay)
        redrawn = randomizer.after_physics(i, sim.model, sim.data, rng)
        if redrawn:
            self._refresh_actuators(i)
        return {**sample, **redrawn}

    def _step_physics(self, goals: np.ndarray, gains: np.ndarray | None, changed: list[bool],
                      substeps: int) -> None:
        """Every copy its goal (and its new servo gains where `changed`), then `substeps` physics
        steps; each slice of the copies a thread, the calling thread the first."""
        others = ([self._pool.submit(self._step_slice, copies, goals, gains, changed, substeps)
                   for copies in self._slices[1:]] if self._pool is not None else [])
        self._step_slice(self._slices[0], goals, gains, changed, substeps)
        for other in others:
            other.result()

    def _step_slice(self, copies: list[int], goals: np.ndarray, gains: np.ndarray | None,
                    changed: list[bool], substeps: int) -> None:
        """One thread's copies: a copy's Python work here runs while another thread's `mj_step`
        (which releases the GIL) does."""
        step = mujoco.mj_step
        for i in copies:
            sim = self.sims[i]
            if self._views is None:
                sim.data.ctrl[sim.ctrl_at] = goals[i]
            else:
                self._views[i][0][:] = goals[i]
            if changed[i]:
                sim.write_gains(gains[i])
            step(sim.model, sim.data, nstep=substeps)

    def step(self, actions: np.ndarray):
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape != self.action_space.shape:
            raise ValueError(f"actions have shape {actions.shape}; this batch takes "
                             f"{self.action_space.shape}")
        randomizer = self.randomizer
        if randomizer is not None and randomizer.signals is not None:
            actions = randomizer.signals.act(actions, self._noise_rng)
        # The readings after the last step are this step's inputs: no second gather.
        states = self._readings
        first = self.sims[0]
        # Actuator models run vectorized over the batch; each copy then only steps.
        commands = self.task.action_to_command(actions, states, self.history.commands)
        self.history.push(commands)
        if self.command_line is not None:
            commands = self.command_line.send(commands)
        goals = first.actuator_command(commands)
        changed, gains = np.zeros(self.num_envs, dtype=bool), None
        if first.is_servo:
            gains = first.servo_gains(goals, states.positions[:, self.robot.actuated_joint_index],
                                      self._configured_gains, self._deadbands)
            changed = (gains != self._active_gains).any(axis=1)
            self._active_gains[changed] = gains[changed]
        substeps = self._substeps
        events = np.empty(self.num_envs, dtype=object)
        if randomizer is not None and randomizer.acts_in_physics:
            delays, totals = (randomizer.timing.plan(self._noise_rng, self.num_envs)
                              if randomizer.timing is not None else
                              (np.zeros(self.num_envs, int), np.full(self.num_envs, substeps)))
            for i in range(self.num_envs):
                events[i] = self._step_randomized(i, goals[i], gains[i] if changed[i] else None,
                                                  delays[i], totals[i]) or None
        else:
            self._step_physics(goals, gains, changed.tolist(), substeps)
        self.steps += 1
        self.env_steps += self.num_envs
        self._readings = self.states()
        result = self.task.evaluate(self._readings, self.goals, self.history.commands)
        terminated = np.asarray(result.terminated, dtype=bool)
        truncated = (self.steps >= self.task.max_steps) & ~terminated
        success = np.asarray(result.success, dtype=bool)
        distance = np.asarray(result.distance, dtype=np.float64)
        observation = self._observe(self._policy_view(self._readings, self.goals,
                                                       self.history.commands, result))
        infos: dict[str, Any] = {"is_success": success, "_is_success": self._every_copy,
                                 "distance": distance, "_distance": self._every_copy}
        done = terminated | truncated
        if done.any():
            final_obs = np.empty(self.num_envs, dtype=object)
            finished = np.flatnonzero(done)
            for i in finished:
                final_obs[i] = observation[i]
                if randomizer is not None:
                    randomizer.end_episode(i, float(success[i]), self.env_steps)
                self._reset_one(i)
                events[i] = self.randomization[i]
            infos["final_obs"], infos["_final_obs"] = final_obs, done
            infos["final_info"] = {"is_success": success, "_is_success": done,
                                   "distance": distance, "_distance": done}
            fresh_readings = self.states(finished)
            self._readings.positions[finished] = fresh_readings.positions
            self._readings.velocities[finished] = fresh_readings.velocities
            if fresh_readings.objects is not None:
                self._readings.objects[finished] = fresh_readings.objects
            goals, history = self.goals[finished], self.history.commands[finished]
            fresh = self._policy_view(fresh_readings, goals, history,
                                      self.task.evaluate(fresh_readings, goals, history), finished)
            observation = observation.copy()
            observation[finished] = self._observe(fresh, finished)
        if randomizer is not None:
            # A finished copy's new draws, a push or a redraw: {term: {element: value}}.
            infos["randomization"] = events
            infos["_randomization"] = events != None  # noqa: E711 (elementwise on objects)
        return (observation, np.asarray(result.reward, dtype=np.float64), terminated, truncated,
                infos)

