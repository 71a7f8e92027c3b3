"""Timing inside a control step, the newer step terms, schedules (start, every N steps), and
automatic domain randomization wired into the envs."""

import gymnasium as gym
import numpy as np
import pytest

from randomization.config import RandomizationConfig
from randomization.envs import make_env, make_vector_env
from randomization.wrapper import DomainRandomization

FURUTA = "sim2real/FurutaBalance-v0"


def wrapped(raw: dict, env_id: str = FURUTA) -> DomainRandomization:
    return DomainRandomization(make_env(env_id), RandomizationConfig.from_dict(raw))


def arm_speed_after_one_push(raw: dict) -> float:
    """The Furuta arm's speed after one full-voltage step from rest (the motor acts at once)."""
    env = wrapped(raw)
    env.reset(seed=0)
    env.step(np.zeros(1, np.float32))
    env.step(np.ones(1, np.float32))
    return float(env.unwrapped.data.qvel[0])


def test_action_latency_holds_the_previous_command_for_part_of_the_step() -> None:
    period = 0.004
    prompt = arm_speed_after_one_push({})
    late = arm_speed_after_one_push({"action_latency": {"distribution": "choice",
                                                        "choices": [period / 2]}})
    assert 0.3 * prompt < late < 0.8 * prompt  # half the step without the new voltage


@pytest.mark.parametrize(("raw", "message"), [
    ({"action_latency": {"low": 0.0, "high": 0.004}}, "below the control period"),
    ({"control_period_jitter": {"low": 0.0, "high": 1.0}}, "below 1"),
])
def test_timing_draws_are_bounded(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wrapped(raw)


def test_control_period_jitter_varies_each_step_within_its_bound() -> None:
    env = wrapped({"control_period_jitter": {"distribution": "choice", "choices": [0.5]}})
    env.reset(seed=1)
    nominal = env.unwrapped.frame_skip
    data = env.unwrapped.data
    periods = []
    for _ in range(60):
        before = data.time
        env.step(np.zeros(1, np.float32))
        periods.append(round((data.time - before) / env.unwrapped.model.opt.timestep))
    assert env.unwrapped.frame_skip == nominal  # put back after every step
    assert min(periods) >= 1 and max(periods) <= round(1.5 * nominal)
    assert len(set(periods)) > 2


def test_latency_jitter_and_latency_work_on_gymnasium_envs() -> None:
    env = DomainRandomization(gym.make("InvertedPendulum-v5"), RandomizationConfig.from_dict(
        {"action_latency": {"low": 0.0, "high": 0.02},
         "action_latency_jitter": {"low": 0.0, "high": 0.01},
         "control_period_jitter": {"low": 0.0, "high": 0.3}}))
    _, info = env.reset(seed=0)
    assert 0 <= info["randomization"]["action_latency"]["all"] <= 0.02
    for _ in range(20):
        env.step(env.action_space.sample())
    assert env.unwrapped.frame_skip == 2


def test_observation_latency_shows_the_reading_of_k_steps_ago() -> None:
    env = wrapped({"observation_latency": {"distribution": "choice", "choices": [3]}})
    first, _ = env.reset(seed=2)
    seen, clean = [first], [first]
    for _ in range(10):
        obs, *_ = env.step(np.full(1, 0.3, np.float32))
        seen.append(obs)
        clean.append(env.unwrapped.observe())
    assert all(np.array_equal(seen[k], first) for k in range(4))  # nothing older yet
    assert all(np.allclose(seen[k], clean[k - 3]) for k in range(4, 11))


def test_scale_noise_and_quantization() -> None:
    env = wrapped({"observation_scale_noise": {"distribution": "choice", "choices": [0.1]}})
    env.reset(seed=3)
    ratios = []
    for _ in range(300):
        obs, *_ = env.step(np.zeros(1, np.float32))
        clean = env.unwrapped.observe()
        big = np.abs(clean) > 0.1
        ratios.extend(obs[big] / clean[big] - 1.0)
    assert np.std(ratios) == pytest.approx(0.1, rel=0.15)
    env = wrapped({"observation_quantization": {"distribution": "choice", "choices": [0.05]}})
    obs, _ = env.reset(seed=3)
    for _ in range(5):
        obs, *_ = env.step(np.full(1, 0.5, np.float32))
        assert np.allclose(obs / 0.05, np.round(obs / 0.05), atol=1e-4)
        assert np.abs(obs - env.unwrapped.observe()).max() <= 0.025 + 1e-6


def test_a_start_term_keeps_its_draw_for_every_episode() -> None:
    env = wrapped({"mass": {"low": 0.5, "high": 1.5, "when": "start"},
                   "joint_damping": {"low": 0.5, "high": 1.5}})
    draws = [env.reset(seed=None if k else 0)[1]["randomization"] for k in range(5)]
    assert all(d["mass"] == draws[0]["mass"] for d in draws)
    assert len({tuple(d["joint_damping"].values()) for d in draws}) == 5


def test_a_term_every_n_steps_redraws_within_the_episode() -> None:
    env = wrapped({"actuator_kv": {"low": 0.5, "high": 1.5, "when": 10}}, "sim2real/ArmReach-v0")
    env.reset(seed=0)
    model = env.unwrapped.model
    values, redraws = [], []
    for step in range(1, 31):
        *_, info = env.step(np.zeros(3, np.float32))
        values.append(-model.actuator_biasprm[0, 2])
        if "randomization" in info:
            redraws.append(step)
            drawn = info["randomization"]["actuator_kv"]["shoulder_pan"]
            assert 0.5 <= drawn <= 1.5
            assert values[-1] == pytest.approx(drawn * 2.731)
    assert redraws == [10, 20, 30]
    assert len(set(np.round(values, 9))) == 4  # the reset draw and three redraws


def test_the_batch_env_runs_every_kind_of_term() -> None:
    raw = {"mass": {"low": 0.8, "high": 1.2}, "object_start": {"low": -0.01, "high": 0.01,
                                                                "match": "block"},
           "push_force": {"low": 0.5, "high": 1.0, "match": "block", "when": 7},
           "action_latency": {"low": 0.0, "high": 0.01},
           "control_period_jitter": {"low": 0.0, "high": 0.2},
           "actuator_kp": {"low": 0.8, "high": 1.2, "when": 25},
           "observation_latency": {"distribution": "choice", "choices": [1]}}
    envs = make_vector_env("sim2real/ArmPush-v0", 4, RandomizationConfig.from_dict(raw), "batch")
    obs, info = envs.reset(seed=0)
    assert set(info["randomization"][0]) >= {"mass", "object_start", "action_latency"}
    pushes = redraws = 0
    for _ in range(60):
        obs, _, _, _, info = envs.step(np.full((4, 4), 0.1, np.float32))
        for event in info["randomization"][info["_randomization"]]:
            pushes += "push_force" in event
            redraws += "actuator_kp" in event
    assert np.all(np.isfinite(obs))
    assert pushes >= 4 * 8 and redraws >= 4 * 2


def test_adr_starts_at_nominal_and_its_ranges_drive_the_draws() -> None:
    raw = {"mass": {"low": 0.5, "high": 2.0, "match": "upper_arm"},
           "adr": {"terms": {"mass": {"step": 0.1}}, "buffer_size": 2, "widen_above": 0.5,
                   "narrow_below": 0.1}}
    envs = make_vector_env("sim2real/ArmReach-v0", 2, RandomizationConfig.from_dict(raw), "batch")
    envs.reset(seed=0)
    assert all(r["mass"]["upper_arm"] == 1.0 for r in envs.randomization)
    adr = envs.randomizer.adr
    for copy in range(200):  # every bound evaluated succeeds: the range widens
        adr.begin_episode(copy % 2, envs._rngs[0])
        adr.end_episode(copy % 2, 1.0, copy)
    low, high = adr.ranges["mass"]
    assert low < 0.9 and high > 1.1
    envs.reset(seed=1)
    for _ in range(300):
        envs.step(np.zeros((2, 3), np.float32))
    draws = [r["mass"]["upper_arm"] for r in envs.randomization]
    assert all(low - 1e-9 <= d <= high + 1e-9 for d in draws)


@pytest.mark.parametrize(("adr", "message"), [
    ({"terms": ["friction"]}, "term 'friction' is not in the config"),
    ({"terms": ["mass"], "patience": 3}, "unknown keys"),
    ({"buffer_size": 3}, "list the terms"),
])
def test_bad_adr_settings(adr: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RandomizationConfig.from_dict({"mass": {"low": 0.5, "high": 2.0}, "adr": adr})


# Every term drawn per episode that is not a model field: its draws over 100 resets.
EPISODE_DRAWS = {
    "action_delay": {"distribution": "choice", "choices": [0, 1, 2]},
    "action_noise": {"low": 0.0, "high": 0.1},
    "observation_noise": {"low": 0.0, "high": 0.01},
    "observation_bias": {"distribution": "truncnormal", "mean": 0.0, "std": 0.01, "low": -0.02,
                         "high": 0.02},
    "observation_dropout": {"low": 0.0, "high": 0.2},
    "observation_latency": {"distribution": "choice", "choices": [0, 1, 2]},
    "observation_scale_noise": {"low": 0.0, "high": 0.05},
    "observation_quantization": {"low": 0.001, "high": 0.01},
    "action_latency": {"low": 0.0, "high": 0.003},
    "action_latency_jitter": {"low": 0.0, "high": 0.001},
    "control_period_jitter": {"low": 0.0, "high": 0.2},
}


@pytest.mark.parametrize("term", list(EPISODE_DRAWS))
def test_episode_draws_stay_in_range_repeat_per_seed_and_vanish_when_off(term: str) -> None:
    raw = {term: EPISODE_DRAWS[term]}
    env, twin, plain = wrapped(raw), wrapped(raw), make_env(FURUTA)
    spec = env.config.terms[term]
    low, high = spec.distribution.support
    draws = []
    for seed in range(100):
        _, info = env.reset(seed=seed)
        values = list(info["randomization"][term].values())
        assert all(low <= v <= high for v in values)
        draws.extend(values)
    assert np.ptp(draws) > 0
    assert env.reset(seed=9)[1]["randomization"] == twin.reset(seed=9)[1]["randomization"]
    # Off: the env is the nominal one, step for step.
    off = DomainRandomization(make_env(FURUTA), RandomizationConfig.from_dict({}))
    for env_ in (off, plain):
        env_.reset(seed=5)
    for _ in range(10):
        a, *_ = off.step(np.full(1, 0.4, np.float32))
        b, *_ = plain.step(np.full(1, 0.4, np.float32))
        assert np.array_equal(a, b)
