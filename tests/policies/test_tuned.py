"""Every tuned setting in policies/hyperparams/ names a real field of its algorithm's config and a
registered env, so a typo fails here rather than in a user's run."""

import dataclasses

import gymnasium as gym
import pytest
import yaml

from policies.algorithms import ALGORITHMS
from policies.tuned import HYPERPARAMS, PIXELS_SUFFIX, tuned_settings
from sim.registration import register_envs


@pytest.mark.parametrize("path", sorted(HYPERPARAMS.glob("*.yaml")), ids=lambda p: p.stem)
def test_tuned_settings_build_their_config(path):
    assert path.stem in ALGORITHMS, f"{path.name}: no algorithm named {path.stem!r}"
    config_type = ALGORITHMS[path.stem].config
    fields = {field.name for field in dataclasses.fields(config_type)}
    register_envs()
    for key in yaml.safe_load(path.read_text()):
        env_id = key.removesuffix(PIXELS_SUFFIX)
        assert env_id in gym.registry, f"{path.name}: {env_id!r} is not a registered env"
        settings = tuned_settings(path.stem, env_id, pixels=key != env_id)
        assert settings and set(settings) <= fields, sorted(set(settings) - fields)
        config_type(**settings)


def test_an_untuned_pair_gets_nothing():
    assert tuned_settings("td3", "HalfCheetah-v5") == {}
    assert tuned_settings("td3", "sim2real/ArmReach-v0") == {"gamma": 0.95}


def test_a_pixel_run_takes_its_entry_over_the_envs():
    state = tuned_settings("ppo", "sim2real/ArmReach-v0")
    assert state["epochs"] == 10
    assert tuned_settings("ppo", "sim2real/ArmReach-v0", pixels=True) == {**state, "epochs": 3}
    assert tuned_settings("ppo", "sim2real/FurutaBalance-v0", pixels=True) == tuned_settings(
        "ppo", "sim2real/FurutaBalance-v0")
