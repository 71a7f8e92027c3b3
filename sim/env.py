"""A Gymnasium env for any (robot, task) pair of ours, on MuJoCo physics.

The env adds nothing to the task's functions: observation, action scaling, reward and success
all come from the task, which the deploy runtime calls too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from sim.catalog import make_task, robot_by_name
from sim.physics import RobotSimulation, mujoco
from sim.task import sample_episode


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
        if self.goal.shape == (3,):
            self.sim.show_target(self.goal)
        result = self.task.evaluate(self.sim.state(), self.goal)
        return result.observation, {"is_success": bool(result.success),
                                    "distance": float(result.distance)}

    def observe(self) -> np.ndarray:
        """The observation of the robot as it is now (after a randomizer moved things)."""
        return self.task.evaluate(self.sim.state(), self.goal).observation

    def step(self, action: np.ndarray):
        action = np.asarray(action)
        if action.shape != self.action_space.shape:
            raise ValueError(f"action has shape {action.shape}; this env takes "
                             f"{self.action_space.shape}")
        self.sim.set_command(self.task.action_to_command(action, self.sim.state()))
        self.sim.step(self.frame_skip)
        result = self.task.evaluate(self.sim.state(), self.goal)
        info = {"is_success": bool(result.success), "distance": float(result.distance)}
        return result.observation, float(result.reward), bool(result.terminated), False, info

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
