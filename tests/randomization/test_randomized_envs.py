"""make_env and make_vector_env: sim's plain factories with domain randomization given to their
hooks, in the same place of the wrapper chain as before the move out of sim."""

import pickle

import gymnasium as gym
import numpy as np

from randomization.config import load_config
from randomization.envs import make_env, make_vector_env
from randomization.wrapper import DomainRandomization
from sim.discrete_actions import DiscreteActions
from sim.pixels import PixelObservation

REACH = "sim2real/ArmReach-v0"


def wrapper_types(env: gym.Env) -> list[type]:
    """The wrappers' types, outermost first."""
    types = []
    while isinstance(env, gym.Wrapper):
        types.append(type(env))
        env = env.env
    return types


def test_wrapper_order_rescale_randomize_pixels_choices() -> None:
    env = make_env("InvertedPendulum-v5", "default", discrete_actions=3)
    assert wrapper_types(env)[:3] == [DiscreteActions, DomainRandomization,
                                      gym.wrappers.RescaleAction]
    env = make_env(REACH, "default", pixels=32, discrete_actions=3)
    assert wrapper_types(env)[:3] == [DiscreteActions, PixelObservation, DomainRandomization]
    env.close()


def test_a_loaded_config_is_used_as_given() -> None:
    """What sim2real/runs.py passes: the config it loaded and saved beside the run."""
    config = load_config("default", "so_arm")
    env = make_env(REACH, config)
    assert env.get_wrapper_attr("config") is config
    envs = make_vector_env(REACH, 2, config, mode="batch")
    assert envs.randomizer.config is config


def test_robot_presets_win_over_generic_ones() -> None:
    env = make_env(REACH, "default")
    assert env.get_wrapper_attr("config").to_dict() == load_config("default", "so_arm").to_dict()


def test_batch_randomizes_only_a_config_with_terms() -> None:
    assert make_vector_env(REACH, 2, "none", mode="batch").randomizer is None
    assert make_vector_env(REACH, 2, mode="batch").randomizer is None
    assert make_vector_env(REACH, 2, "default", mode="batch").randomizer is not None
    # Each copy of a sync env is wrapped whatever the config holds, as a single env is.
    envs = make_vector_env(REACH, 2, "none", mode="sync")
    assert all(DomainRandomization in wrapper_types(env) for env in envs.envs)


def test_copies_factories_pickle_and_async_copies_randomize() -> None:
    """Async vector envs send each copy's factory to its subprocess."""
    sync = make_vector_env("InvertedPendulum-v5", 2, "default", mode="sync")
    rebuilt = pickle.loads(pickle.dumps(sync.env_fns[0]))()
    assert DomainRandomization in wrapper_types(rebuilt)
    envs = make_vector_env("InvertedPendulum-v5", 2, "default", mode="async")
    try:
        _, info = envs.reset(seed=0)
        masses = info["randomization"]["mass"]["pole"]
        assert masses.shape == (2,) and masses[0] != masses[1]
        _, reward, *_ = envs.step(np.zeros((2, 1), np.float32))
        assert np.isfinite(reward).all()
    finally:
        envs.close()


def test_training_randomizes_our_robots_by_default_and_says_with_what() -> None:
    from sim2real.runs import default_randomization

    assert default_randomization("sim2real/ArmReach-v0") == "default"
    assert default_randomization("sim2real/ArmPush-v0") == "tracked"  # the block: a camera's
    assert default_randomization("sim2real/FurutaSwingup-v0") == "default"
    assert default_randomization("InvertedPendulum-v5") == "none"
    arm = load_config("default", "so_arm").describe()
    assert arm.startswith("mass x0.8..1.25, friction x0.6..1.4") and "action_delay 0|1|2" in arm
    assert load_config("none").describe() == "none (the nominal model every episode)"
