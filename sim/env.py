"""A Gymnasium env for any (robot, task) pair of ours, on MuJoCo physics.

The env adds nothing to the task's functions: observation, action scaling, reward and success
all come from the task, which the deploy runtime calls too. Like the deploy runtime, it keeps the
task's command history (sim/commands.py).
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from sim.catalog import make_task, robot_by_name
from sim.commands import CommandHistory, CommandLine
from sim.physics import RobotSimulation, mujoco
from sim.spec import RobotState
from sim.task import ObjectLine, TaskStep, policy_view, sample_episode


class RobotTaskEnv(gym.Env):
    """Example:
        >>> env = RobotTaskEnv(robot="so_arm", task="reach")
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, robot: str = "so_arm", task: str = "reach", task_config: dict | None = None,
                 render_mode: str | None = None, width: int = 320, height: int = 240) -> None:
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode {render_mode!r} is not supported; use 'rgb_array' or None")
        self.robot = robot_by_name(robot)
        self.task = make_task(task, self.robot, task_config)
        self.sim = RobotSimulation(self.robot, self.task.scene, self.task.objects)
        self.render_mode = render_mode
        self._size = (height, width)
        self._renderer: mujoco.Renderer | None = None
        self.metadata = {**self.metadata, "render_fps": round(1 / self.robot.control_period)}
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (self.task.observation_size,),
                                                np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (self.task.action_size,), np.float32)
        self.goal = np.zeros(3)
        self.frame_skip = self.sim.substeps
        """Physics steps per env step (timing randomization varies it), as gymnasium's envs."""
        self.history = CommandHistory.for_task(self.task)
        """The last commands computed, oldest first, as the task observes them."""
        self.command_line: CommandLine | None = None
        """What each command passes on its way to the robot: domain randomization's action_delay
        sets a delay line here (randomization/wrapper.py). None: commands act at once."""
        self.object_line: ObjectLine | None = None
        """What the task's objects' positions pass before the policy observes them: domain
        randomization's object_hold and object_latency (a camera tracker's). None: at once."""
        self.reading: RobotState | None = None
        """The reading the last observation was made of: the step's command starts from it, as
        on the robot (time passed since, e.g. a randomized latency, does not move it)."""

    @property
    def model(self) -> mujoco.MjModel:
        return self.sim.model

    @property
    def data(self) -> mujoco.MjData:
        return self.sim.data

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        pose, self.goal, objects = sample_episode(self.task, self.np_random)
        self.sim.reset(pose, objects)
        held = self.sim.held_command()
        self.history.reset(held)
        if self.command_line is not None:
            self.command_line.hold(held[None])
        if self.goal.shape == (3,):
            self.sim.show_target(self.goal)
        self.reading = self.sim.state()
        result = self.task.evaluate(self.reading, self.goal, self.history.commands)
        return self._observation(result), {"is_success": bool(result.success),
                                           "distance": float(result.distance)}

    def observe(self) -> np.ndarray:
        """The observation of the robot as it is now (after a randomizer moved things at a
        reset: the episode's first)."""
        self.reading = self.sim.state()
        return self._observation(self.task.evaluate(self.reading, self.goal,
                                                    self.history.commands))

    def _observation(self, result: TaskStep) -> np.ndarray:
        return policy_view(self.task, self.reading, self.goal, self.history.commands, result,
                           self.object_line, self.np_random)

    def step(self, action: np.ndarray):
        action = np.asarray(action)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}; this env takes "
                             f"{self.action_space.shape}")
        if self.reading is None:
            raise RuntimeError("call reset() before step()")
        command = self.task.action_to_command(action, self.reading, self.history.commands)
        self.history.push(command)  # what the policy asked for, before any delay
        if self.command_line is not None:
            command = self.command_line.send(command[None])[0]
        self.sim.set_command(command)
        self.sim.step(self.frame_skip)
        self.reading = self.sim.state()
        result = self.task.evaluate(self.reading, self.goal, self.history.commands)
        info = {"is_success": bool(result.success), "distance": float(result.distance)}
        return self._observation(result), float(result.reward), bool(result.terminated), False, info

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.model, *self._size)
        self._renderer.update_scene(self.data, camera="workspace")
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
