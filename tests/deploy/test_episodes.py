"""The loop's episode bookkeeping (deploy/episodes.py) with a scripted task: a goal is reached
when joint 0 is at 1 rad or more; episodes last at most 3 policy steps; an episode may start
(`ready`) when joint 0 is still."""

from __future__ import annotations

import numpy as np
import pytest

from deploy.episodes import HOME_TOLERANCE, SETTLE_SECONDS, Episodes
from sim.furuta import FURUTA
from sim.so_arm import SO_ARM
from sim.spec import RobotSpec, RobotState
from sim.task import TaskStep


class ScriptedTask:
    """Goals 0, 1, 2, ...; success (and termination) at joint 0 >= 1 rad, or at any reading for
    goal `fallen_at` (a pendulum that fell); ready when joint 0 is still."""

    max_steps = 3
    history_length = 0

    def __init__(self, fallen_at: int | None = None) -> None:
        self.goals, self.fallen_at = 0, fallen_at

    def ready(self, state: RobotState) -> bool:
        return bool(state.velocities[0] == 0.0)

    def ready_hint(self) -> str:
        return "hold joint 0 still"

    def sample_goal(self, rng: np.random.Generator,
                    start: RobotState | None = None) -> np.ndarray:
        goal = np.array([float(self.goals)])
        self.goals += 1
        return goal

    def evaluate(self, state: RobotState, goal: np.ndarray, history: np.ndarray) -> TaskStep:
        reached = bool(state.positions[0] >= 1.0)
        fallen = goal[0] == self.fallen_at
        return TaskStep(np.array([goal[0], state.positions[0]]), 0.0, reached, reached or fallen,
                        0.0)


def at(spec: RobotSpec, joint0: float, speed: float = 0.0) -> RobotState:
    positions = np.array(spec.default_pose, dtype=float)
    positions[0] += joint0
    return RobotState(positions, np.full(spec.num_joints, speed))


def episodes(spec: RobotSpec = SO_ARM, task: ScriptedTask | None = None,
             max_episodes: int | None = None) -> Episodes:
    return Episodes(task or ScriptedTask(), spec, np.random.default_rng(0), home_after_miss=True,
                    max_episodes=max_episodes, hold=np.zeros(spec.num_actuators))


def test_a_missed_episode_ends_after_max_steps_then_settles_and_walks_home() -> None:
    book = episodes()
    last_sent = np.full(6, 0.3)
    for k in range(3):  # steps 1, 2, 3: the policy acts on goal 0
        step = book.observe(at(SO_ARM, 0.5), now=float(k), last_sent=last_sent)
        assert step.ended is None and step.observation.tolist() == [0.0, 0.5]
    step = book.observe(at(SO_ARM, 0.5), now=3.0, last_sent=last_sent)
    assert step.ended == (False, 3) and step.observation is None and not step.done
    assert (book.count, book.successes, book.seconds) == (1, 0, [3.0])
    # Settling holds the last command sent, until the arm is at rest; the next goal is drawn
    # where the next episode starts.
    assert book.phase == "settle" and book.hold is last_sent and book.goal is None
    book.pause(at(SO_ARM, 0.5, speed=1.0), now=3.5)
    assert book.phase == "settle"
    book.pause(at(SO_ARM, 0.5, speed=0.1), now=3.6)
    # At rest after a miss: home, one half-speed step per cycle from where the arm is.
    assert book.phase == "home" and book.homings == 1
    home_step = 0.5 * SO_ARM.velocity_limit[0] * SO_ARM.control_period
    expected = np.array(SO_ARM.default_pose)
    expected[0] += 0.5 - home_step
    assert np.allclose(book.hold, expected)
    book.pause(at(SO_ARM, HOME_TOLERANCE / 2), now=3.7)
    assert book.running and book.homings == 1
    # The next episode starts (and is timed) at its first policy cycle, with the next goal.
    assert book.observe(at(SO_ARM, 0.0), now=4.0, last_sent=last_sent).observation[0] == 1.0
    assert book.episode_start == 4.0 and book.steps == 1 and book.goal.tolist() == [1.0]


def test_a_reached_goal_ends_the_episode_and_needs_no_homing() -> None:
    book = episodes()
    book.observe(at(SO_ARM, 1.2), now=0.0, last_sent=np.zeros(6))  # step 1 is never an end
    step = book.observe(at(SO_ARM, 1.2), now=0.5, last_sent=np.zeros(6))
    assert step.ended == (True, 1) and (book.count, book.successes) == (1, 1)
    book.pause(at(SO_ARM, 1.2), now=0.6)
    assert book.running and book.homings == 0


class StartsAtHome(ScriptedTask):
    """Ready only near the default pose, as push (its episodes start at home)."""

    def ready(self, state: RobotState) -> bool:
        return bool(abs(state.positions[0]) < 0.1)


def test_a_task_that_starts_at_home_walks_home_after_a_success_too() -> None:
    book = episodes(task=StartsAtHome())
    book.observe(at(SO_ARM, 1.2), now=0.0, last_sent=np.zeros(6))
    assert book.observe(at(SO_ARM, 1.2), now=0.5, last_sent=np.zeros(6)).ended == (True, 1)
    book.pause(at(SO_ARM, 1.2), now=0.6)
    assert book.phase == "home" and book.homings == 1
    book.pause(at(SO_ARM, HOME_TOLERANCE / 2), now=0.7)
    assert book.running


def test_settling_gives_up_after_settle_seconds() -> None:
    book = episodes()
    for now in (0.0, 1.0, 2.0, 3.0):
        book.observe(at(SO_ARM, 0.5), now=now, last_sent=np.zeros(6))
    book.pause(at(SO_ARM, 0.5, speed=5.0), now=3.0 + SETTLE_SECONDS)
    assert book.phase == "settle"  # not more than SETTLE_SECONDS yet
    book.pause(at(SO_ARM, 0.5, speed=5.0), now=3.0 + SETTLE_SECONDS + 0.25)
    assert book.phase == "home"


def test_the_last_episode_ends_the_run() -> None:
    book = episodes(max_episodes=1)
    book.observe(at(SO_ARM, 1.0), now=0.0, last_sent=np.zeros(6))
    step = book.observe(at(SO_ARM, 1.0), now=0.25, last_sent=np.zeros(6))
    assert step.done and step.ended == (True, 1) and book.goal.tolist() == [0.0]
    assert book.task.goals == 1  # no goal drawn for an episode that never comes


def test_a_servo_robot_never_engages() -> None:
    book = episodes()
    book.pause(at(SO_ARM, 0.0, speed=5.0), now=0.0)  # not ready, but servos hold a pose
    assert book.running and book.waits == 0


def test_a_motor_robot_ready_at_an_episode_end_goes_straight_on() -> None:
    book = episodes(FURUTA)
    book.pause(at(FURUTA, 0.5), now=0.0)  # ready at once: no wait
    for now in (0.0, 1.0, 2.0):
        book.observe(at(FURUTA, 0.5), now=now, last_sent=np.zeros(1))
    step = book.observe(at(FURUTA, 0.5), now=3.0, last_sent=np.zeros(1))
    # The policy acts on the next goal in the same cycle, its first step, timed from here.
    assert step.ended == (False, 3) and step.observation.tolist() == [1.0, 0.5]
    assert book.running and book.steps == 1 and book.seconds == [3.0]
    assert book.episode_start == 3.0 and book.waits == 0 and book.engage_seconds(9.0) == 0.0


def test_a_motor_robot_engages_before_its_first_episode_and_after_a_fall() -> None:
    book = episodes(FURUTA, ScriptedTask(fallen_at=0), max_episodes=2)
    assert book.phase == "engage" and not book.running
    book.pause(at(FURUTA, 0.5, speed=2.0), now=10.0)  # not ready: hold, wait
    book.pause(at(FURUTA, 0.5, speed=2.0), now=10.5)
    assert book.phase == "engage" and (book.waits, book.wait_start) == (1, 10.0)
    assert book.engage_seconds(10.75) == 0.75
    book.pause(at(FURUTA, 0.5), now=11.0)  # held still: the episode starts from this reading
    assert book.running and book.last_wait == 1.0 and book.wait_start is None
    assert book.observe(at(FURUTA, 0.5), now=11.0, last_sent=np.zeros(1)).observation is not None
    # Goal 0 "fell": the episode ends at its second step, the pendulum still moving.
    step = book.observe(at(FURUTA, 0.5, speed=3.0), now=11.1, last_sent=np.zeros(1))
    assert step.ended == (False, 1) and step.observation is None and not step.done
    assert book.phase == "engage" and (book.waits, book.wait_start) == (2, 11.1)
    assert book.goal is None and book.count == 1
    book.pause(at(FURUTA, 0.5), now=12.1)
    assert book.running and book.engage_seconds(20.0) == pytest.approx(2.0)
    assert book.observe(at(FURUTA, 0.5), now=12.1, last_sent=np.zeros(1)).observation[0] == 1.0
    # Only real episodes count towards max_episodes: the second ends the run.
    step = book.observe(at(FURUTA, 1.2), now=12.2, last_sent=np.zeros(1))
    assert step.done and step.ended == (True, 1) and book.count == 2


@pytest.mark.parametrize(("robot", "task", "config"), [
    ("so_arm", "reach", {"command_history": 3}),
    ("so_arm", "reach", {"command_history": 1, "action_base": "last_goal"}),
    ("furuta", "pendulum", {"mode": "swingup", "command_history": 3}),
])
def test_the_runtime_history_equals_the_envs_over_an_episode(robot, task, config) -> None:
    """The bookkeeping fed what the loop feeds it (each reading, the command last sent) observes
    what the training env observed, command history included, step for step: it starts full of
    the command the robot holds (servo goals of the start pose; 0 V) and takes each one sent."""
    from sim.env import RobotTaskEnv

    env = RobotTaskEnv(robot, task, config)
    obs, _ = env.reset(seed=5)
    last_sent = env.sim.held_command()  # what the robot holds when the episode starts
    book = Episodes(env.task, env.robot, np.random.default_rng(0), home_after_miss=True,
                    max_episodes=None, hold=last_sent)
    book.goal = env.goal  # the env drew its own
    rng = np.random.default_rng(1)
    for cycle in range(env.task.max_steps):
        state = env.sim.state()
        book.pause(state, float(cycle))  # a motor robot engages first: the start is ready
        step = book.observe(state, float(cycle), last_sent)
        assert np.array_equal(step.observation, obs), cycle
        action = rng.uniform(-1, 1, env.task.action_size)
        last_sent = env.task.action_to_command(action, state, book.history.commands)  # sent as is
        obs, _, terminated, _, _ = env.step(action)
        if terminated:
            break
    assert cycle > 10


def test_a_goal_the_start_already_meets_is_drawn_again() -> None:
    """The start pose and the first goal once drew the same random numbers on `--robot sim`, so
    the first target was the start tip itself: a success for doing nothing. Here the goal
    stream is made to do exactly that; the goal drawn must lie outside the success distance."""
    from sim.reach import ReachTask

    task = ReachTask(SO_ARM)
    start_pose = task.sample_pose(np.random.default_rng(3))
    start = RobotState(start_pose, np.zeros(SO_ARM.num_joints))
    # Without the start, the goal stream's first draw is the start tip itself.
    assert np.allclose(task.sample_goal(np.random.default_rng(3)), task.tip_position(start))
    book = Episodes(task, SO_ARM, np.random.default_rng(3), home_after_miss=True,
                    max_episodes=None, hold=start_pose.copy())
    assert book.goal is None  # drawn where the episode starts
    step = book.observe(start, now=0.0, last_sent=start_pose.copy())
    distance = np.linalg.norm(book.goal - task.tip_position(start))
    assert distance >= task.config.success_distance and step.ended is None
    # The same trap for 300 seeds: never a goal within the success distance.
    for seed in range(300):
        start = RobotState(task.sample_pose(np.random.default_rng(seed)), np.zeros(6))
        goal = task.sample_goal(np.random.default_rng(seed), start)
        assert np.linalg.norm(goal - task.tip_position(start)) >= task.config.success_distance


def test_a_push_target_where_the_block_already_is_is_drawn_again() -> None:
    from sim.push import PushTask

    task = PushTask(SO_ARM)
    first = task.sample_goal(np.random.default_rng(4))
    block_there = RobotState(np.zeros(6), np.zeros(6), objects=first[None])
    goal = task.sample_goal(np.random.default_rng(4), block_there)
    assert np.linalg.norm((goal - first)[:2]) >= task.config.success_distance


def test_a_simulated_episodes_goal_is_never_met_at_its_start() -> None:
    """Training and evaluation draw alike (`sim.task.sample_episode`): over 2000 episodes no
    target lies within the success distance of the start pose's tip."""
    from sim.reach import ReachTask
    from sim.task import sample_episode

    task = ReachTask(SO_ARM)
    rng = np.random.default_rng(11)
    for _ in range(2000):
        pose, goal, _ = sample_episode(task, rng)
        tip = task.tip_position(RobotState(pose, np.zeros(6)))
        assert np.linalg.norm(goal - tip) >= task.config.success_distance
