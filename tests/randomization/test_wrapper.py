import gymnasium as gym
import numpy as np
import pytest

from randomization.terms import ScaleRange
from randomization.wrapper import DomainRandomization, RandomizationConfig, load_config
from sim.registration import make_env

CONFIG = RandomizationConfig({"mass_scale": ScaleRange(0.5, 1.5),
                              "friction_scale": ScaleRange(0.7, 1.3, match="floor|upper_arm")})


def make() -> DomainRandomization:
    return DomainRandomization(make_env("sim2real/ArmReach-v0"), CONFIG)


def test_samples_stay_in_range_and_change_the_model_from_nominal() -> None:
    env = make()
    model = env.unwrapped.model
    nominal_mass = model.body_mass.copy()
    nominal_friction = model.geom_friction.copy()
    upper_arm = model.body("upper_arm").id
    floor = model.geom("floor").id
    masses = []
    for i in range(100):
        _, info = env.reset(seed=i)
        sample = info["randomization"]
        assert all(0.5 <= v <= 1.5 for v in sample["mass_scale"].values())
        assert set(sample["friction_scale"]) == {"floor", "upper_arm"}
        # Always nominal * sample: nothing compounds across resets.
        assert model.body_mass[upper_arm] == pytest.approx(
            nominal_mass[upper_arm] * sample["mass_scale"]["upper_arm"])
        assert model.geom_friction[floor, 0] == pytest.approx(
            nominal_friction[floor, 0] * sample["friction_scale"]["floor"])
        masses.append(model.body_mass[upper_arm])
    assert np.std(masses) > 0.1 * nominal_mass[upper_arm] / np.sqrt(12) * 2
    env.close()
    assert np.array_equal(model.body_mass, nominal_mass)
    assert np.array_equal(model.geom_friction, nominal_friction)


def test_same_seed_same_domains() -> None:
    a, b = make(), make()
    assert a.reset(seed=7)[1]["randomization"] == b.reset(seed=7)[1]["randomization"]
    assert a.reset(seed=8)[1]["randomization"] != b.reset(seed=7)[1]["randomization"]


def test_works_on_gymnasium_mujoco_envs() -> None:
    env = DomainRandomization(gym.make("InvertedPendulum-v5"), load_config("default"))
    _, info = env.reset(seed=0)
    assert set(info["randomization"]["mass_scale"]) == {"cart", "pole"}


def test_presets_and_yaml(tmp_path) -> None:
    assert load_config("none").terms == {}
    path = tmp_path / "r.yaml"
    path.write_text("mass_scale: {low: 0.9, high: 1.1, match: 'upper_arm'}\n")
    assert load_config(path).terms["mass_scale"] == ScaleRange(0.9, 1.1, "upper_arm")


@pytest.mark.parametrize(("raw", "message"), [
    ({"mass_scal": {"low": 1, "high": 2}}, "unknown randomization term 'mass_scal'"),
    ({"mass_scale": {"low": 2, "high": 1}}, "low 2.0 > high 1.0"),
    ({"mass_scale": {"low": -1, "high": 1}}, "low -1.0 must be > 0"),
    ({"mass_scale": {"low": 1}}, "missing 'high'"),
    ({"mass_scale": {"low": 1, "high": 2, "size": 3}}, "unknown keys"),
])
def test_bad_config_names_the_problem(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RandomizationConfig.from_dict(raw)


def test_pattern_that_matches_nothing_lists_names() -> None:
    config = RandomizationConfig({"mass_scale": ScaleRange(0.9, 1.1, match="forearm")})
    with pytest.raises(ValueError, match="names nothing in the model; names there: .*upper_arm"):
        DomainRandomization(make_env("sim2real/ArmReach-v0"), config)


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="unknown randomization preset 'wild'"):
        load_config("wild")
