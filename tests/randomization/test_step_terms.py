import gymnasium as gym
import numpy as np
import pytest

from randomization.config import RandomizationConfig
from randomization.envs import make_env, make_vector_env
from randomization.wrapper import DomainRandomization


def wrapped(raw: dict, env_id: str = "sim2real/ArmReach-v0") -> DomainRandomization:
    return DomainRandomization(make_env(env_id), RandomizationConfig.from_dict(raw))


def test_action_delay_delays_the_command_made_from_the_reading_the_policy_saw() -> None:
    """Reach, 3 steps of delay: the servo goals applied at step t are the ones computed at step
    t - 3 (the last goal then + max_step * action then, in whole encoder counts), not the late
    action on what was sent since; before the first arrives, the start pose's goals hold."""
    env = wrapped({"action_delay": {"distribution": "choice", "choices": [3]}})
    _, info = env.reset(seed=0)
    assert info["randomization"]["action_delay"] == {"all": 3.0}
    sim, step = env.unwrapped.sim, env.unwrapped.task.config.max_step
    counts = 2 * np.pi / 4096
    start = sim.state().positions[:3].copy()
    goal = env.unwrapped.history.commands[-1, :3].copy()  # the start pose's goals
    computed, applied = [], []
    actions = np.random.default_rng(1).uniform(-1, 1, (8, 3)).astype(np.float32)
    for action in actions:
        goal = goal + step * action
        computed.append(goal.copy())
        env.step(action)
        applied.append(sim.data.ctrl[:3].copy())
    for t in range(3):
        assert np.allclose(applied[t], np.round(start / counts) * counts, atol=1e-12)
    for t in range(3, 8):
        assert np.allclose(applied[t], np.round(computed[t - 3] / counts) * counts, atol=1e-12)
        # The newer goals differ: applying them would be another command.
        assert np.abs(applied[t] - computed[t]).max() > 1e-3


def test_action_delay_delays_the_pendulums_voltage_and_holds_0_v_first() -> None:
    env = wrapped({"action_delay": {"distribution": "choice", "choices": [2]}},
                  "sim2real/FurutaBalance-v0")
    env.reset(seed=0)
    applied = []
    for action in (0.5, -0.25, 1.0, 0.75):
        env.step(np.array([action], np.float32))
        applied.append(float(env.unwrapped.sim.data.ctrl[0]))
    assert applied == [0.0, 0.0, 3.0, -1.5]  # max_voltage 6 V


def test_action_delay_delays_a_gymnasium_envs_actions() -> None:
    """An env that is not ours has no command of its own to delay: its actions are."""
    env = DomainRandomization(gym.make("InvertedPendulum-v5"), RandomizationConfig.from_dict(
        {"action_delay": {"distribution": "choice", "choices": [3]}}))
    env.reset(seed=0)
    assert not hasattr(env.unwrapped, "command_line")
    actions = [0.5, -1.0, 2.0, 1.5, -0.5]
    applied = []
    for action in actions:
        env.step(np.array([action], np.float32))
        applied.append(float(env.unwrapped.data.ctrl[0]))
    assert applied == [0.0, 0.0, 0.0, 0.5, -1.0]


def test_observation_noise_and_bias_follow_their_draws() -> None:
    env = wrapped({"observation_noise": {"distribution": "choice", "choices": [0.05]},
                   "observation_bias": {"distribution": "normal", "mean": 0.0, "std": 0.1}})
    obs, info = env.reset(seed=1)
    bias = np.array(list(info["randomization"]["observation_bias"].values()))
    differences = []
    for _ in range(200):
        obs, *_ = env.step(np.zeros(3, np.float32))
        clean = env.unwrapped.task.evaluate(env.unwrapped.sim.state(), env.unwrapped.goal,
                                            env.unwrapped.history.commands)
        differences.append(obs - clean.observation)
    differences = np.array(differences)
    assert np.allclose(differences.mean(axis=0), bias, atol=0.02)
    assert differences.std(axis=0).mean() == pytest.approx(0.05, rel=0.15)


def test_action_noise_stays_in_the_action_range_and_repeats_per_seed() -> None:
    def run() -> np.ndarray:
        env = wrapped({"action_noise": {"low": 0.5, "high": 0.5}})
        env.reset(seed=4)
        for _ in range(5):
            env.step(np.ones(3, np.float32))
        return env.unwrapped.sim.data.ctrl.copy()

    first = run()
    assert np.array_equal(first, run())
    # A noisy full-scale action can only be smaller: the noise is clipped to [-1, 1].
    env = wrapped({"action_noise": {"low": 0.5, "high": 0.5}})
    env.reset(seed=4)
    before = env.unwrapped.sim.state().positions[:3]
    env.step(np.ones(3, np.float32))
    assert np.all(env.unwrapped.sim.data.ctrl[:3] - before <= env.unwrapped.task.config.max_step
                  + 2e-3)


def test_step_terms_in_the_batch_env_draw_per_copy() -> None:
    raw = {"action_delay": {"distribution": "choice", "choices": [0, 1, 2, 3]},
           "observation_noise": {"low": 0.0, "high": 0.02}}
    envs = make_vector_env("sim2real/ArmReach-v0", 8, RandomizationConfig.from_dict(raw), "batch")
    envs.reset(seed=0)
    delays = {r["action_delay"]["all"] for r in envs.randomization}
    assert len(delays) > 1 and delays <= {0.0, 1.0, 2.0, 3.0}
    for _ in range(120):  # through a time-limit reset
        obs, *_ = envs.step(np.zeros((8, 3), np.float32))
    assert obs.shape == (8, envs.single_observation_space.shape[0]) and np.all(np.isfinite(obs))


@pytest.mark.parametrize(("raw", "message"), [
    ({"action_delay": {"low": 0, "high": 30}}, "at most 20 steps"),
    ({"observation_noise": {"distribution": "normal", "mean": 0.01, "std": 0.01}},
     "must be >= 0"),
    ({"action_noise": {"low": -0.1, "high": 0.1}}, "must be >= 0"),
])
def test_bad_step_terms(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RandomizationConfig.from_dict(raw)


def test_observation_dropout_repeats_the_last_observation_at_its_rate() -> None:
    env = wrapped({"observation_dropout": {"distribution": "choice", "choices": [0.3]}})
    previous, _ = env.reset(seed=2)
    repeats = 0
    for _ in range(300):
        obs, _, terminated, truncated, _ = env.step(np.full(3, 0.3, np.float32))
        repeats += np.array_equal(obs, previous)
        previous = obs
        if terminated or truncated:
            previous, _ = env.reset()
    assert 0.2 < repeats / 300 < 0.4


def test_dropout_is_a_probability() -> None:
    with pytest.raises(ValueError, match="at most 1"):
        RandomizationConfig.from_dict({"observation_dropout": {"low": 0.5, "high": 1.5}})


def test_batch_env_with_dropout_and_delay_keeps_each_copy_consistent() -> None:
    raw = {"action_delay": {"distribution": "choice", "choices": [1]},
           "observation_dropout": {"distribution": "choice", "choices": [0.5]}}
    envs = make_vector_env("sim2real/ArmReach-v0", 4, RandomizationConfig.from_dict(raw), "batch")
    obs, _ = envs.reset(seed=0)
    repeats = total = 0
    for _ in range(150):  # through resets
        new, _, terminated, truncated, _ = envs.step(np.full((4, 3), 0.2, np.float32))
        live = ~(terminated | truncated)
        repeats += int(np.all(new[live] == obs[live], axis=1).sum())
        total += int(live.sum())
        obs = new
    assert np.all(np.isfinite(obs))
    assert 0.35 < repeats / total < 0.65  # each copy loses about half its readings


BLOCK = slice(15, 18)  # the push observation's block_position


def slid_block_episode(env, steps: int) -> tuple[list[np.ndarray], list[np.ndarray], list]:
    """Push with the arm still and the block slid 5 mm along x each step: what the policy saw of
    the block, where the block was, and each step's reward."""
    unwrapped = env.unwrapped
    assert unwrapped.task.observation_layout()[3] == ("block_position", 3)
    obs, _ = env.reset(seed=4)
    seen, true, rewards = [obs[BLOCK]], [unwrapped.reading.objects[0].copy()], [None]
    for _ in range(steps):
        unwrapped.sim.place_objects(unwrapped.reading.objects + np.array([0.005, 0.0, 0.0]))
        obs, reward, *_ = env.step(np.zeros(4, np.float32))
        seen.append(obs[BLOCK])
        true.append(unwrapped.reading.objects[0].copy())
        rewards.append(reward)
    return seen, true, rewards


def test_object_latency_shows_the_block_k_steps_late_and_rewards_the_truth() -> None:
    env = wrapped({"object_latency": {"distribution": "choice", "choices": [2]}},
                  "sim2real/ArmPush-v0")
    seen, true, rewards = slid_block_episode(env, 8)
    assert np.allclose(seen[0], true[0], atol=1e-6)  # the episode's first position at once
    assert np.allclose(seen[1], true[0], atol=1e-6) and np.allclose(seen[2], true[0], atol=1e-6)
    for k in range(3, 9):
        assert np.allclose(seen[k], true[k - 2], atol=1e-6)
        assert not np.allclose(seen[k], true[k], atol=1e-3)  # the block did move
    unwrapped = env.unwrapped
    judged = unwrapped.task.evaluate(unwrapped.reading, unwrapped.goal, unwrapped.history.commands)
    assert rewards[-1] == pytest.approx(float(judged.reward))


def test_object_hold_renews_the_block_at_the_cameras_frame_period() -> None:
    env = wrapped({"object_hold": {"distribution": "choice", "choices": [2.5]}},
                  "sim2real/ArmPush-v0")
    seen, true, _ = slid_block_episode(env, 20)
    new = [k for k in range(1, 21) if not np.allclose(seen[k], seen[k - 1], atol=1e-6)]
    assert all(np.allclose(seen[k], true[k], atol=1e-6) for k in new)  # each one fresh
    gaps = np.diff(new)
    assert set(gaps.tolist()) <= {2, 3} and np.mean(gaps) == pytest.approx(2.5, abs=0.35)


def test_object_terms_in_the_batch_env_per_copy() -> None:
    raw = {"object_latency": {"distribution": "choice", "choices": [0, 3]},
           "object_hold": {"distribution": "choice", "choices": [1.0]}}
    envs = make_vector_env("sim2real/ArmPush-v0", 6, RandomizationConfig.from_dict(raw), "batch")
    envs.reset(seed=1)
    delays = np.array([r["object_latency"]["all"] for r in envs.randomization])
    assert set(delays.tolist()) == {0.0, 3.0}
    history, ended = [], np.zeros(6, bool)
    for _ in range(6):
        for i, sim in enumerate(envs.sims):
            sim.place_objects(envs._readings.objects[i] + np.array([0.004, 0.0, 0.0]))
        obs, reward, terminated, truncated, _ = envs.step(np.zeros((6, 4), np.float32))
        ended |= terminated | truncated  # a copy that reached its goal starts again
        history.append(envs._readings.objects[:, 0].copy())
    late, on_time = (delays == 3.0) & ~ended, (delays == 0.0) & ~ended
    assert late.any() and on_time.any()
    assert np.allclose(obs[on_time, BLOCK], history[-1][on_time], atol=1e-6)
    assert np.allclose(obs[late, BLOCK], history[-4][late], atol=1e-6)
    judged = envs.task.evaluate(envs._readings, envs.goals, envs.history.commands)
    assert np.allclose(reward[~ended], judged.reward[~ended])


@pytest.mark.parametrize("mode", ["wrapper", "batch"])
def test_object_terms_need_a_task_with_objects(mode: str) -> None:
    raw = {"object_latency": {"distribution": "choice", "choices": [1]}}
    with pytest.raises(ValueError, match="tracks none: use it with a task that has objects"):
        if mode == "wrapper":
            wrapped(raw)
        else:
            make_vector_env("sim2real/ArmReach-v0", 2, RandomizationConfig.from_dict(raw), "batch")
