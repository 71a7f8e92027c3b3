"""Episode bookkeeping of a deploy run: goals, episode ends and outcomes, and what the robot does
between episodes: a servo robot comes to rest, then walks home after a miss; a motor robot (the
pendulum) is held at 0 V until its task's start region is reached (engage). Times are seconds
passed in by the loop. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.commands import CommandHistory
from sim.spec import RobotSpec, RobotState
from sim.task import Task

# Homing ends when every actuated joint is this close (rad) to its default pose.
HOME_TOLERANCE = 0.05
# Between episodes a servo robot holds still until every joint is slower than this (rad/s), or
# for at most SETTLE_SECONDS.
SETTLE_SPEED = 0.25
SETTLE_SECONDS = 1.0
PHASES = ("policy", "settle", "home", "engage")
"""What a cycle did: ran the policy; held still / walked home between a servo robot's episodes;
or held a motor robot (0 V) until the task was ready to start an episode (`Task.ready`)."""


@dataclass
class EpisodeStep:
    """What the bookkeeping made of one cycle's state."""

    observation: np.ndarray | None
    """What the policy acts on this cycle; None: no policy, the robot holds (`Episodes.hold`)."""
    ended: tuple[bool, int] | None = None
    """(success, steps) of the episode that ended at this cycle, if one did."""
    done: bool = False
    """The run's last episode ended: stop here, before this cycle commands anything."""


class Episodes:
    """Goals from `rng` in the task's order, each drawn at its episode's first reading and never
    one that reading already meets (`Task.sample_goal`'s start: a reach target within the
    success distance of the start tip is drawn again); `rng` is the goals' own stream (the
    loop's `default_rng(seed)`; the simulated robot draws its start poses from another,
    `hardware.backends.episode_starts`). An episode ends on the task's termination or after
    its `max_steps` policy steps; the robot is never teleported, the next episode starts where
    the last one ended. A position-servo robot then holds its last command until it is at rest
    (training episodes start at rest) and, after a miss with `home_after_miss` or where the task
    is not ready to start (`Task.ready`: push starts at home), walks back to its default pose at
    half its speed limit; home and still not ready (push: the block off its area), it holds
    there until a person makes it so. Any other robot cannot hold a pose by itself: it
    engages, before the first episode and after each, as such a rig is run: the motors get the
    hold command (0 V) until the task is ready (`Task.ready`, e.g. a person holds the pendulum
    upright), and the episode starts from that reading; a ready reading starts it at once.
    The task's command history (`history`), which the training env keeps alike, starts each
    episode full of the command the robot holds then, the last one sent, and takes each command
    sent during it.

    Example, each cycle:
        >>> episodes.pause(state, now)           # between episodes: settle, walk home, engage
        >>> if episodes.running:
        ...     step = episodes.observe(state, now, last_sent)
    """

    def __init__(self, task: Task, spec: RobotSpec, rng: np.random.Generator,
                 home_after_miss: bool, max_episodes: int | None, hold: np.ndarray,
                 ready: bool = True) -> None:
        self.task, self.rng = task, rng
        self.home_after_miss, self.max_episodes = home_after_miss, max_episodes
        self.servo = spec.actuator_kind == "position"
        self.joints = spec.actuated_joint_index
        self.home = np.asarray(spec.default_pose)[self.joints]
        self.home_step = 0.5 * np.asarray(spec.velocity_limit)[self.joints] * spec.control_period
        self.goal: np.ndarray | None = None
        """The running episode's goal; None between episodes (the next is drawn at its start)."""
        self.history = CommandHistory(task.history_length, spec.num_actuators)
        """The last commands sent in the running episode, oldest first, as the task observes."""
        self.steps = 0
        """Policy steps of the running episode."""
        # A servo robot starts at once where its task is ready (`ready`: the first reading's);
        # elsewhere it settles, walks home and waits, as between episodes (push: a block its
        # tracker has not seen yet).
        self.phase: str | None = (None if ready else "settle") if self.servo else "engage"
        """Between episodes: "settle", "home" or "engage"; None while an episode runs."""
        self.hold = hold
        """The command between episodes."""
        self.missed = False
        self.pause_start = self.episode_start = 0.0
        self.count = self.successes = self.homings = 0
        self.seconds: list[float] = []
        """Duration of each finished episode."""
        self.waits = 0
        """Engage phases that had to wait (the first reading was not ready)."""
        self.wait_start: float | None = None
        """When the running wait began; None when not waiting."""
        self.waited_seconds = self.last_wait = 0.0
        """Time spent in finished waits; in the last one."""

    @property
    def running(self) -> bool:
        return self.phase is None

    def engage_seconds(self, now: float) -> float:
        """Time spent waiting for the task to be ready, the running wait included."""
        return self.waited_seconds + (now - self.wait_start if self.wait_start is not None else 0.0)

    def pause(self, state: RobotState, now: float) -> None:
        """Between episodes: end settling once at rest (or after SETTLE_SECONDS), then step the
        hold command towards home until there; or wait, holding, until the task is ready."""
        if self.phase == "engage":
            if self.task.ready(state):
                self.phase = None
                if self.wait_start is not None:
                    self.last_wait, self.wait_start = now - self.wait_start, None
                    self.waited_seconds += self.last_wait
            elif self.wait_start is None:
                self.wait_start, self.waits = now, self.waits + 1
        if self.phase == "settle":
            resting = np.max(np.abs(state.velocities)) < SETTLE_SPEED
            if resting or now - self.pause_start > SETTLE_SECONDS:
                # Home after a miss (as asked), and whenever the task would not start here.
                self.phase = ("home" if (self.missed and self.home_after_miss)
                              or not self.task.ready(state) else None)
                self.homings += self.phase == "home"
        if self.phase == "home":
            current = state.positions[self.joints]
            if np.max(np.abs(self.home - current)) < HOME_TOLERANCE:
                # Home; an episode starts once the task is ready (push: its block put back).
                self.phase = None if self.task.ready(state) else "engage"
            self.hold = current + np.clip(self.home - current, -self.home_step, self.home_step)

    def observe(self, state: RobotState, now: float, last_sent: np.ndarray) -> EpisodeStep:
        """While running: the task's view of `state`, and the episode's end if it ends here.
        `last_sent`: the command the robot got last (in a running episode, the previous
        cycle's; at its start, the one it holds)."""
        if self.steps == 0:
            self.episode_start = now
            self.history.reset(last_sent)
            if self.goal is None:
                self.goal = self.task.sample_goal(self.rng, state)
        else:
            self.history.push(last_sent)
        result = self.task.evaluate(state, self.goal, self.history.commands)
        if self.steps == 0 or not (result.terminated or self.steps >= self.task.max_steps):
            self.steps += 1
            return EpisodeStep(result.observation)
        ended = (bool(result.success), self.steps)
        self.count += 1
        self.successes += int(result.success)
        self.seconds.append(now - self.episode_start)
        if self.max_episodes is not None and self.count >= self.max_episodes:
            return EpisodeStep(None, ended, done=True)
        self.goal = None
        self.steps = 0
        if self.servo:
            # Hold the last goals: the servos stop where they were told to be.
            self.phase, self.missed, self.pause_start = "settle", not result.success, now
            self.hold = last_sent
            return EpisodeStep(None, ended)
        # A motor cannot hold a pose: a fallen pendulum would start the next episode terminal,
        # a swinging one from no state training started from. Engage; when this reading is
        # ready already, the next episode starts here, its first step in this cycle.
        self.phase = "engage"
        self.pause(state, now)
        if not self.running:
            return EpisodeStep(None, ended)
        return EpisodeStep(self.observe(state, now, last_sent).observation, ended)
