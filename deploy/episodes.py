"""Episode bookkeeping of a deploy run: goals, episode ends and outcomes, and what a servo robot
does between episodes (come to rest, then walk home after a miss). Times are seconds passed in
by the loop. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.spec import RobotSpec, RobotState
from sim.task import Task

# Homing ends when every actuated joint is this close (rad) to its default pose.
HOME_TOLERANCE = 0.05
# Between episodes a servo robot holds still until every joint is slower than this (rad/s), or
# for at most SETTLE_SECONDS.
SETTLE_SPEED = 0.25
SETTLE_SECONDS = 1.0
PHASES = ("policy", "settle", "home")
"""What a cycle did: ran the policy, or held still / walked home between episodes."""


@dataclass
class EpisodeStep:
    """What the bookkeeping made of one cycle's state."""

    observation: np.ndarray | None
    """What the policy acts on this cycle; None: no policy, the robot holds (`Episodes.hold`)."""
    ended: tuple[bool, int] | None = None
    """(success, steps) of the episode that ended at this cycle, if one did."""
    done: bool = False
    """The run's last episode ended: stop here, before this cycle commands anything."""
    stop: str = ""
    """Why the run must end in a safe stop here (the next episode would start terminal)."""


class Episodes:
    """Goals from `rng` in the task's order; an episode ends on the task's termination or after
    its `max_steps` policy steps; the robot is never teleported, the next episode starts where
    the last one ended. A position-servo robot then holds its last command until it is at rest
    (training episodes start at rest) and, after a miss with `home_after_miss`, walks back to
    its default pose at half its speed limit; other robots go straight on.

    Example, each cycle:
        >>> episodes.pause(state, now)           # between episodes: settle, walk home
        >>> if episodes.running:
        ...     step = episodes.observe(state, now, last_sent)
    """

    def __init__(self, task: Task, spec: RobotSpec, rng: np.random.Generator,
                 home_after_miss: bool, max_episodes: int | None, hold: np.ndarray) -> None:
        self.task, self.rng = task, rng
        self.home_after_miss, self.max_episodes = home_after_miss, max_episodes
        self.servo = spec.actuator_kind == "position"
        self.joints = spec.actuated_joint_index
        self.home = np.asarray(spec.default_pose)[self.joints]
        self.home_step = 0.5 * np.asarray(spec.velocity_limit)[self.joints] * spec.control_period
        self.goal = task.sample_goal(rng)
        self.steps = 0
        """Policy steps of the running episode."""
        self.phase: str | None = None
        """Between episodes: "settle" or "home"; None while an episode runs."""
        self.hold = hold
        """The command between episodes."""
        self.missed = False
        self.pause_start = self.episode_start = 0.0
        self.count = self.successes = self.homings = 0
        self.seconds: list[float] = []
        """Duration of each finished episode."""

    @property
    def running(self) -> bool:
        return self.phase is None

    def pause(self, state: RobotState, now: float) -> None:
        """Between episodes: end settling once at rest (or after SETTLE_SECONDS), then step the
        hold command towards home until there."""
        if self.phase == "settle":
            resting = np.max(np.abs(state.velocities)) < SETTLE_SPEED
            if resting or now - self.pause_start > SETTLE_SECONDS:
                self.phase = "home" if self.missed and self.home_after_miss else None
                self.homings += self.phase == "home"
        if self.phase == "home":
            current = state.positions[self.joints]
            if np.max(np.abs(self.home - current)) < HOME_TOLERANCE:
                self.phase = None
            self.hold = current + np.clip(self.home - current, -self.home_step, self.home_step)

    def observe(self, state: RobotState, now: float, last_sent: np.ndarray) -> EpisodeStep:
        """While running: the task's view of `state`, and the episode's end if it ends here."""
        if self.steps == 0:
            self.episode_start = now
        result = self.task.evaluate(state, self.goal)
        if self.steps == 0 or not (result.terminated or self.steps >= self.task.max_steps):
            self.steps += 1
            return EpisodeStep(result.observation)
        ended = (bool(result.success), self.steps)
        self.count += 1
        self.successes += int(result.success)
        self.seconds.append(now - self.episode_start)
        if self.max_episodes is not None and self.count >= self.max_episodes:
            return EpisodeStep(None, ended, done=True)
        self.goal = self.task.sample_goal(self.rng)
        self.steps = 0
        if self.servo:
            # Hold the last goals: the servos stop where they were told to be.
            self.phase, self.missed, self.pause_start = "settle", not result.success, now
            self.hold = last_sent
            return EpisodeStep(None, ended)
        result = self.task.evaluate(state, self.goal)
        if result.terminated:
            # E.g. a fallen pendulum: nothing the policy does is an episode.
            return EpisodeStep(None, ended, stop="the next episode would start in a terminal state")
        # episode_start is not reset on this path (steps is 1 by the next cycle), so the next
        # episode's seconds count from this one's start: the loop has always done so; kept.
        self.steps += 1
        return EpisodeStep(result.observation, ended)
