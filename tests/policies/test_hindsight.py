"""Hindsight experience replay (policies/hindsight.py): relabelled goals come from the same
episode's future, recomputed rewards equal the env's, time-limit truncation is kept apart from
termination. The episodes are built by hand with a goal of one number, so every relabelling can be
traced to the step it came from."""

from __future__ import annotations

import numpy as np
import pytest

from policies.hindsight import HindsightReplayBuffer, make_replay_buffer
from policies.sac import SACConfig
from sim.batch_env import BatchRobotEnv
from sim.goals import FetchGoals, GoalConditioned
from sim.registration import goals_of
from sim.task import TaskStep

# A hand-built goal task: observation = [episode, step, achieved, desired]; reached (reward 0,
# terminated) when achieved is within 0.5 of desired, else reward -1.


class LineGoals:
    def achieved_goal(self, observation: np.ndarray) -> np.ndarray:
        return observation[..., 2:3]

    def desired_goal(self, observation: np.ndarray) -> np.ndarray:
        return observation[..., 3:4]

    def with_goal(self, observation: np.ndarray, goal: np.ndarray) -> np.ndarray:
        relabelled = observation.copy()
        relabelled[..., 3:4] = goal
        return relabelled

    def outcome(self, observation: np.ndarray) -> TaskStep:
        distance = np.abs(observation[..., 2] - observation[..., 3])
        success = distance < 0.5
        return TaskStep(observation=observation, reward=-(~success).astype(np.float32),
                        success=success, terminated=success, distance=distance)


def achieved(episode: int, step: int) -> float:
    """The achieved goal after `step` of `episode`: unique, so a goal names its step."""
    return 1000.0 * episode + step + 1


def fill(buffer: HindsightReplayBuffer, lengths: list[list[int]], truncate: bool = True) -> None:
    """Copies run episodes of the given lengths one after another (copy c: lengths[c]), until
    one copy has run all of its; an episode ends by its time limit (truncated) if `truncate`,
    else terminated. Episode ids count up as episodes start. The desired goal is never met."""
    copies = len(lengths)
    queue = [list(lengths[c]) for c in range(copies)]
    episode = list(range(copies))
    step = [0] * copies
    next_id = copies
    while all(queue):
        obs, next_obs = np.zeros((copies, 4), np.float32), np.zeros((copies, 4), np.float32)
        done = np.zeros(copies, bool)
        for c in range(copies):
            e, s = episode[c], step[c]
            obs[c] = [e, s, achieved(e, s - 1) if s else 1000.0 * e, -5.0]
            next_obs[c] = [e, s + 1, achieved(e, s), -5.0]
            done[c] = s + 1 == queue[c][0]
        final = np.empty(copies, dtype=object)
        final[:] = list(next_obs)
        reset_obs = next_obs.copy()
        reset_obs[done] = -99.0  # what the vector env returns after resetting: never stored
        buffer.add(obs, np.zeros((copies, 1), np.float32), np.full(copies, -1.0), reset_obs,
                   done & ~truncate, done & truncate, {"final_obs": final})
        for c in range(copies):
            step[c] += 1
            if done[c]:
                queue[c].pop(0)
                episode[c], step[c] = next_id, 0
                next_id += 1


def test_relabelled_goals_come_from_the_same_episodes_future() -> None:
    buffer = HindsightReplayBuffer(64, 4, 1, LineGoals(), num_envs=2, goals_per_transition=4)
    fill(buffer, [[3, 5, 2, 9], [4, 4, 7]])  # copy 0's 9-step episode is still running
    batch = buffer.relabelled(np.arange(buffer.size).repeat(200), np.random.default_rng(0))
    obs, next_obs, relabelled = batch["obs"], batch["next_obs"], batch["relabelled"]
    episodes, steps, goals = obs[:, 0], obs[:, 1], obs[:, 3]
    finished = episodes != 6
    assert 0.77 < relabelled[finished].mean() < 0.83  # k / (k + 1) of the finished episodes'
    ahead = goals - (1000.0 * episodes + steps + 1)  # achieved(e, s + a) - achieved(e, s)
    assert np.all(goals[~relabelled] == -5.0)
    chosen = relabelled
    assert np.all(np.floor(goals[chosen] / 1000.0) == episodes[chosen]), "another episode's goal"
    assert ahead[chosen].min() == 0 and ahead[chosen].max() >= 4, "not from now to the end"
    # The last step of the goal's episode bounds it: never past the episode's end.
    lengths = {0: 3, 1: 4, 2: 5, 3: 4, 4: 2, 5: 7}
    last = np.array([achieved(e, lengths[e] - 1) for e in episodes[chosen].astype(int)])
    assert np.all(goals[chosen] <= last)
    assert np.all(next_obs[chosen, 3] == goals[chosen])  # both observations ask for it
    # The running episode (id 6) is not relabelled until it ends.
    assert not relabelled[episodes == 6].any() and (episodes == 6).any()


def test_recomputed_rewards_and_truncation() -> None:
    buffer = HindsightReplayBuffer(40, 4, 1, LineGoals(), num_envs=1, goals_per_transition=1)
    fill(buffer, [[4, 3]], truncate=True)
    # The last transition of a truncated episode stores the true last observation, not the reset
    # one, and is not terminal: its target bootstraps.
    assert buffer.next_obs[3].tolist() == [0, 4, achieved(0, 3), -5.0]
    assert buffer.terminated[:7].tolist() == [0.0] * 7 and buffer.rewards[:7].tolist() == [-1] * 7
    batch = buffer.relabelled(np.arange(7).repeat(300), np.random.default_rng(1))
    relabelled = batch["relabelled"]
    reached = batch["next_obs"][:, 2] == batch["next_obs"][:, 3]  # the goal of its own next step
    # Reward and termination recomputed by the task's outcome: met goals pay 0 and end.
    assert np.all(batch["reward"][relabelled & reached] == 0.0)
    assert np.all(batch["terminated"][relabelled & reached] == 1.0)
    assert np.all(batch["reward"][relabelled & ~reached] == -1.0)
    assert np.all(batch["terminated"][relabelled & ~reached] == 0.0)
    assert np.all(batch["terminated"][~relabelled] == 0.0)  # truncation stays non-terminal
    assert (relabelled & reached).any() and (relabelled & ~reached).any()


def test_buffer_wraps_and_resumes() -> None:
    buffer = HindsightReplayBuffer(8, 4, 1, LineGoals(), num_envs=2, goals_per_transition=4)
    fill(buffer, [[3, 2, 5, 1], [6, 6]])  # 10 vector steps into a ring of 4 a copy
    batch = buffer.relabelled(np.arange(8).repeat(100), np.random.default_rng(2))
    obs = batch["obs"][batch["relabelled"]]
    assert np.all(np.floor(obs[:, 3] / 1000.0) == obs[:, 0])
    copy = HindsightReplayBuffer(8, 4, 1, LineGoals(), num_envs=2, goals_per_transition=4)
    copy.load_state_dict(buffer.state_dict())
    again = copy.relabelled(np.arange(8).repeat(100), np.random.default_rng(2))
    assert all(np.array_equal(batch[k], again[k]) for k in batch)


@pytest.mark.parametrize("env_id", ["sim2real/ArmReach-v0", "sim2real/ArmPush-v0"])
def test_our_tasks_relabel_as_their_env_would_observe(env_id: str) -> None:
    """With another goal, the task's evaluate of the same reading gives what `with_goal` makes
    of the observation, and the same reward, success and termination."""
    env = BatchRobotEnv(8, **{"sim2real/ArmReach-v0": {"robot": "so_arm", "task": "reach"},
                              "sim2real/ArmPush-v0": {"robot": "so_arm", "task": "push"}}[env_id])
    task = env.task
    assert isinstance(task, GoalConditioned)
    env.reset(seed=3)
    rng = np.random.default_rng(3)
    for _ in range(20):
        env.step(rng.uniform(-1, 1, env.action_space.shape))
    reading, history = env._readings, env.history.commands
    observation = task.evaluate(reading, env.goals, history).observation
    assert np.allclose(task.desired_goal(observation), env.goals, atol=1e-6)
    # Half the new goals are the achieved ones (met), half are other copies' goals.
    new_goals = np.concatenate([task.achieved_goal(observation)[:4], env.goals[4:][::-1]])
    expected = task.evaluate(reading, new_goals, history)
    relabelled = task.with_goal(observation, new_goals)
    assert np.allclose(relabelled, expected.observation, atol=1e-6)
    outcome = task.outcome(relabelled)
    assert np.allclose(outcome.reward, expected.reward, atol=1e-6)
    assert np.array_equal(outcome.success, expected.success)
    assert np.array_equal(outcome.terminated, expected.terminated)
    assert outcome.success[:4].all() or env_id.endswith("Push-v0")  # push: xy only, z of block


def test_fetch_goals_use_the_envs_own_reward() -> None:
    import gymnasium as gym

    from sim.registration import make_env

    goals = goals_of("FetchPush-v4")
    assert isinstance(goals, FetchGoals)
    flat, dict_env = make_env("FetchPush-v4"), gym.make("FetchPush-v4")
    obs, _ = flat.reset(seed=5)
    raw, _ = dict_env.reset(seed=5)
    assert np.allclose(goals.achieved_goal(obs), raw["achieved_goal"])
    assert np.allclose(goals.desired_goal(obs), raw["desired_goal"])
    near = raw["achieved_goal"] + [0.01, 0.0, 0.0]
    relabelled = goals.with_goal(obs, near)
    assert goals.outcome(relabelled).reward == dict_env.unwrapped.compute_reward(
        raw["achieved_goal"], near, None) == 0.0
    assert goals.outcome(obs).reward == -1.0 and not goals.outcome(obs).terminated


def test_hindsight_needs_a_goal_env() -> None:
    from randomization.envs import make_vector_env

    envs = make_vector_env("InvertedPendulum-v5", 1)
    with pytest.raises(ValueError, match=r"hindsight_goals 4 relabels goals.*set hindsight_goals 0"):
        make_replay_buffer(SACConfig(hindsight_goals=4), envs, 4, 1)
    assert goals_of("sim2real/FurutaBalance-v0") is None
    with pytest.raises(ValueError, match="hindsight_goals is -1; it must be a whole number >= 0"):
        SACConfig(hindsight_goals=-1)
