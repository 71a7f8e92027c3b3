import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from randomization.envs import make_env
from sim import registration
from sim.discrete_actions import DiscreteActions
from sim.pixels import PixelObservation
from sim.registration import check_env_id, list_env_ids


@pytest.mark.parametrize("env_id", list_env_ids())
@pytest.mark.parametrize("randomization", [None, "default"])
def test_check_env_passes(env_id: str, randomization: str | None) -> None:
    """Every id we list, plain and randomized, as the trainers build it (wrappers included)."""
    env = make_env(env_id, randomization)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # check_env notes that the env is wrapped
        check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (env.action_space.shape[0],)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    if randomization:
        assert "mass" in info["randomization"]


def test_same_seed_same_episode() -> None:
    def rollout() -> np.ndarray:
        env = make_env("sim2real/ArmReach-v0", "default")
        obs, _ = env.reset(seed=3)
        env.action_space.seed(3)
        trace = [obs]
        for _ in range(20):
            trace.append(env.step(env.action_space.sample())[0])
        return np.array(trace)

    assert np.array_equal(rollout(), rollout())


def test_episode_is_cut_at_two_seconds() -> None:
    env = make_env("sim2real/ArmReach-v0")
    env.reset(seed=0)
    for step in range(1, 1000):  # noqa: B007 (the count is the assertion)
        _, _, terminated, truncated, _ = env.step(np.zeros(3, np.float32))
        if terminated or truncated:
            break
    assert truncated and step == 100


def test_render_gives_an_image() -> None:
    env = make_env("sim2real/ArmReach-v0", render_mode="rgb_array", width=96, height=64)
    env.reset(seed=0)
    image = env.render()
    env.close()
    assert image.shape == (64, 96, 3) and image.std() > 5  # not a blank frame


def test_fetch_reach_builds_and_steps() -> None:
    """gymnasium-robotics 1.4.2 Fetch breaks on mujoco >= 3.12: this pins a working pair."""
    env = make_env("FetchReach-v4")
    raw = env.unwrapped.observation_space
    assert set(raw.spaces) == {"observation", "achieved_goal", "desired_goal"}
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3 + 3 + 10,)  # flattened for the policy
    for _ in range(5):
        obs, reward, *_ = env.step(env.action_space.sample())
    assert np.isfinite(reward)


def test_unknown_env_id_names_close_ones() -> None:
    with pytest.raises(ValueError, match="did you mean sim2real/ArmReach-v0"):
        check_env_id("sim2real/ArmReech-v0")
    assert "InvertedPendulum-v5" in gym.registry


class Marked(gym.Wrapper):
    """Stands in for domain randomization: shows where the `randomize` hook's wrapper sits."""


def wrapper_types(env: gym.Env) -> list[type]:
    """The wrappers' types, outermost first."""
    types = []
    while isinstance(env, gym.Wrapper):
        types.append(type(env))
        env = env.env
    return types


def test_plain_factory_takes_randomization_only_as_a_hook() -> None:
    """sim knows no presets: the hook wraps after the actions are rescaled, before the choices
    (and before the camera: test_randomize_hook_sits_under_the_camera)."""
    env = registration.make_env("InvertedPendulum-v5", randomize=Marked, discrete_actions=3)
    assert wrapper_types(env)[:3] == [DiscreteActions, Marked, gym.wrappers.RescaleAction]
    with pytest.raises(TypeError):
        registration.make_env("sim2real/ArmReach-v0", "default")  # keyword-only


def test_randomize_hook_sits_under_the_camera() -> None:
    env = registration.make_env("sim2real/ArmReach-v0", randomize=Marked, pixels=32)
    assert wrapper_types(env)[:2] == [PixelObservation, Marked]
    env.close()


def test_batch_env_builds_its_randomizer_from_the_hook() -> None:
    calls = []

    def make_randomizer(models, action_space, observation_space, substeps, timestep,
                        command_size, object_size):
        calls.append((len(models), action_space.shape, observation_space.shape, substeps,
                      timestep, command_size, object_size))
        return None  # no randomizer after all: the batch steps plainly

    envs = registration.make_vector_env("sim2real/ArmReach-v0", 2, mode="batch",
                                        make_randomizer=make_randomizer)
    # The command's size: a randomizer's action_delay delays the arm's six servo goals; reach
    # tracks no objects.
    assert calls == [(2, (3,), envs.single_observation_space.shape, envs.sims[0].substeps,
                      envs.sims[0].timestep, 6, 0)]
    assert envs.randomizer is None
