"""Hindsight experience replay (Andrychowicz et al. 2017) for SAC, TD3 and DDPG: a replay buffer
that hands out some transitions with their episode's goal swapped for one the robot achieved
later in the same episode (the "future" strategy), so an episode that missed its goal still
teaches how to reach where it went.

A relabelled transition's observations are rewritten by the task (`with_goal`), and its reward
and termination come from the task's `outcome`, the function the env and the deploy runtime
call for every reading (sim/goals.py): one definition of the reward. A copy cut off by its time
limit keeps what the plain buffer stores, its true last observation and terminated=False, so
the target bootstraps from it; a relabelled one terminates only where the task says its new goal
was met.

The ring holds the vector env's steps in order, each copy at a fixed offset, so the transition
`s` steps later in copy c's episode is `s * num_envs` rows on. When an episode ends, each of its
rows learns how many steps of the episode follow it (`steps_left`); rows of an episode still
running have -1 and are not relabelled. The ring overwrites the oldest rows first, so a row
still held has every later row of its episode held too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from policies.replay_buffer import ReplayBuffer
from sim.goals import GoalConditioned


class HindsightReplayBuffer(ReplayBuffer):
    """A ReplayBuffer whose `sample` relabels a share k / (k + 1) of the transitions of finished
    episodes with a goal achieved at that step or later in the episode (`future`), k being
    `goals_per_transition` (the HER paper's 4: four relabelled goals for each real one)."""

    def __init__(self, capacity: int, obs_size: int, action_size: int, goals: GoalConditioned,
                 num_envs: int, goals_per_transition: int) -> None:
        super().__init__(capacity, obs_size, action_size)
        if goals_per_transition < 1:
            raise ValueError(f"hindsight_goals must be >= 1 to relabel, got {goals_per_transition}")
        if capacity % num_envs:
            raise ValueError(f"buffer_size {capacity} must be a multiple of num_envs {num_envs} "
                             "for hindsight replay: each env copy keeps its own column of the ring")
        self.goals, self.num_envs = goals, num_envs
        self.relabel_share = goals_per_transition / (goals_per_transition + 1)
        self.steps_left = np.full(capacity, -1, np.int64)
        """Steps of the row's episode after it, known once the episode has ended; -1 before."""
        self.episode_steps = np.zeros(num_envs, np.int64)
        """Steps of each copy's current episode held in the ring (its rows end at the newest)."""

    def add(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, truncated: np.ndarray, info: dict[str, Any]) -> None:
        if len(obs) != self.num_envs:
            raise ValueError(f"this hindsight buffer was built for {self.num_envs} env copies; "
                             f"a step of {len(obs)} came")
        rows = (self.position + np.arange(self.num_envs)) % self.capacity
        super().add(obs, action, reward, next_obs, terminated, truncated, info)
        self.steps_left[rows] = -1
        # An episode longer than the ring has lost its first rows: count the ones still held.
        self.episode_steps = np.minimum(self.episode_steps + 1, self.capacity // self.num_envs)
        for copy in np.flatnonzero(np.asarray(terminated) | np.asarray(truncated)):
            steps = self.episode_steps[copy]
            left = np.arange(steps - 1, -1, -1)
            self.steps_left[(rows[copy] - self.num_envs * left) % self.capacity] = left
            self.episode_steps[copy] = 0

    def relabelled(self, rows: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """The transitions at `rows`, a share of those of finished episodes with a future goal:
        numpy arrays obs, action, reward, next_obs, terminated, and `relabelled` (bool)."""
        obs, next_obs = self.obs[rows], self.next_obs[rows]
        reward, terminated = self.rewards[rows], self.terminated[rows]
        steps_left = self.steps_left[rows]
        relabel = (steps_left >= 0) & (rng.random(len(rows)) < self.relabel_share)
        chosen = np.flatnonzero(relabel)
        if len(chosen):
            # A step from this one to the episode's last, and what the robot achieved after it.
            ahead = (rng.random(len(chosen)) * (steps_left[chosen] + 1)).astype(np.int64)
            future = (rows[chosen] + ahead * self.num_envs) % self.capacity
            goal = self.goals.achieved_goal(self.next_obs[future])
            obs[chosen] = self.goals.with_goal(obs[chosen], goal)
            next_obs[chosen] = self.goals.with_goal(next_obs[chosen], goal)
            outcome = self.goals.outcome(next_obs[chosen])
            reward[chosen] = outcome.reward
            terminated[chosen] = outcome.terminated
        return {"obs": obs, "action": self.actions[rows], "reward": reward,
                "next_obs": next_obs, "terminated": terminated, "relabelled": relabel}

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        if self.size == 0:
            raise ValueError("the replay buffer is empty; collect transitions before sampling")
        batch = self.relabelled(rng.integers(0, self.size, batch_size), rng)
        del batch["relabelled"]
        return {name: torch.from_numpy(np.ascontiguousarray(value, np.float32))
                for name, value in batch.items()}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "steps_left": self.steps_left[:self.size].copy(),
                "episode_steps": self.episode_steps.copy()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "steps_left" not in state:
            raise ValueError("the checkpoint's replay buffer has no hindsight bookkeeping: it was "
                             "trained without hindsight_goals; resume it with the same setting")
        super().load_state_dict(state)
        self.steps_left[:state["size"]] = state["steps_left"]
        self.episode_steps[...] = state["episode_steps"]


def make_replay_buffer(config: Any, envs: Any, obs_size: int,
                       action_size: int) -> ReplayBuffer:
    """The replay buffer `config` asks for: with `hindsight_goals` k > 0 a hindsight one that
    relabels with the goal functions of `envs`' task (metadata["goals"] makes them,
    sim/registration.py)."""
    if not config.hindsight_goals:
        return ReplayBuffer(config.buffer_size, obs_size, action_size)
    make_goals = envs.metadata.get("goals")
    goals = make_goals() if make_goals is not None else None
    if goals is None:
        raise ValueError(f"hindsight_goals {config.hindsight_goals} relabels goals, and this env "
                         "has none in its observations; use a goal-conditioned env "
                         "(sim2real/ArmReach-v0, sim2real/ArmPush-v0, the Fetch tasks), without "
                         "pixels, or set hindsight_goals 0")
    return HindsightReplayBuffer(config.buffer_size, obs_size, action_size, goals,
                                 config.num_envs, config.hindsight_goals)
