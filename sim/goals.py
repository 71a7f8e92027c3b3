"""Goal-conditioned tasks: what a replay buffer needs to swap an episode's goal for one the robot
achieved (hindsight experience replay, policies/hindsight.py). numpy only.

Everything is read from and written into the observation vector the policy sees, so the buffer
stores what it stores today and the exported policy takes the same vector. The reward of a
relabelled transition comes from the task's own `outcome`, the function its `evaluate` (the env,
the batch env, the deploy runtime) calls for every reading: one definition of the reward.

Our reach and push tasks are goal-conditioned; gymnasium-robotics' Fetch tasks through
`FetchGoals`, whose reward is the env's own `compute_reward`. `sim.registration.goals_of` gives
an env id's.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from sim.task import TaskStep, observation_slots


@runtime_checkable
class GoalConditioned(Protocol):
    """Achieved and desired goal of an observation vector (or of a batch of them, rows first)."""

    def achieved_goal(self, observation: np.ndarray) -> np.ndarray:
        """What the robot achieved (reach: the tip; push: the block): a goal of the same kind."""
        ...

    def desired_goal(self, observation: np.ndarray) -> np.ndarray: ...

    def with_goal(self, observation: np.ndarray, goal: np.ndarray) -> np.ndarray:
        """A copy of `observation` asked for `goal` instead: the goal and every entry made of it
        (e.g. target minus tip) rewritten."""
        ...

    def outcome(self, observation: np.ndarray) -> TaskStep:
        """Reward, success, termination and distance of an observation, for its goal."""
        ...


class FetchGoals:
    """A gymnasium-robotics goal env (Fetch) seen through the flat vector `sim.registration`
    makes of its dict observation (gymnasium's FlattenObservation: the dict's keys in order,
    achieved_goal, desired_goal, observation). Reward and success are the env's own
    `compute_reward` and `_is_success`; the Fetch tasks never terminate (`compute_terminated`)."""

    def __init__(self, env_id: str) -> None:
        import gymnasium as gym  # not on the robot's computer, which needs none of this class

        env = gym.make(env_id)  # registered by sim.registration.register_envs
        space = env.observation_space
        if not isinstance(space, gym.spaces.Dict) or not {"achieved_goal", "desired_goal"} <= set(
                space.spaces):
            env.close()
            raise ValueError(f"{env_id!r} is not a goal env: its observations have no "
                             "achieved_goal and desired_goal")
        self.env = env.unwrapped
        """Kept for its reward functions (it is never stepped)."""
        self.slots = observation_slots([(key, int(np.prod(box.shape)))
                                        for key, box in space.spaces.items()])

    def achieved_goal(self, observation: np.ndarray) -> np.ndarray:
        return observation[..., self.slots["achieved_goal"]]

    def desired_goal(self, observation: np.ndarray) -> np.ndarray:
        return observation[..., self.slots["desired_goal"]]

    def with_goal(self, observation: np.ndarray, goal: np.ndarray) -> np.ndarray:
        relabelled = observation.copy()
        relabelled[..., self.slots["desired_goal"]] = goal
        return relabelled

    def outcome(self, observation: np.ndarray) -> TaskStep:
        achieved, desired = self.achieved_goal(observation), self.desired_goal(observation)
        reward = np.asarray(self.env.compute_reward(achieved, desired, None))
        success = np.asarray(self.env._is_success(achieved, desired)) > 0.5
        terminated = np.broadcast_to(
            np.asarray(self.env.compute_terminated(achieved, desired, None), bool), success.shape)
        return TaskStep(observation=observation, reward=reward, success=success,
                        terminated=terminated,
                        distance=np.linalg.norm(achieved - desired, axis=-1))
