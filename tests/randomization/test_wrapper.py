import gymnasium as gym
import numpy as np
import pytest

from randomization.config import RandomizationConfig, load_config
from randomization.envs import make_env
from randomization.terms import TERM_NAMES, Distribution, TermSpec
from randomization.wrapper import DomainRandomization
from sim.physics import SERVO_DEADBAND_SLOT, SERVO_KP_SLOT

# Each term with settings that suit it and a reader of the model values it writes.
TERM_CASES = {
    "mass": ({"low": 0.5, "high": 1.5, "match": "upper_arm|lower_arm"},
             lambda m: m.body_mass[[m.body("upper_arm").id, m.body("lower_arm").id]]),
    "friction": ({"low": 0.7, "high": 1.3, "match": "floor|upper_arm"},
                 lambda m: m.geom_friction[[m.geom("floor").id, m.geom("upper_arm").id], 0]),
    "torsional_friction": ({"distribution": "loguniform", "low": 0.5, "high": 2.0, "match": "floor"},
                           lambda m: m.geom_friction[[m.geom("floor").id], 1]),
    "rolling_friction": ({"low": 0.5, "high": 2.0, "match": "floor"},
                         lambda m: m.geom_friction[[m.geom("floor").id], 2]),
    "joint_damping": ({"distribution": "truncnormal", "mean": 1.0, "std": 0.2, "low": 0.6,
                       "high": 1.4}, lambda m: m.dof_damping[:6]),
    "armature": ({"distribution": "choice", "choices": [0.8, 1.0, 1.25]},
                 lambda m: m.dof_armature[:6]),
    "frictionloss": ({"operation": "add", "low": 0.0, "high": 0.05, "match": "elbow_flex"},
                     lambda m: m.dof_frictionloss[[m.jnt_dofadr[m.joint("elbow_flex").id]]]),
    "gravity": ({"operation": "add", "distribution": "normal", "mean": 0.0, "std": 0.1,
                 "match": "[xy]"}, lambda m: m.opt.gravity[:2]),
    "actuator_kp": ({"low": 0.6, "high": 1.2, "match": "shoulder_.*"},
                    lambda m: m.actuator_gainprm[:2, 0]),
    "actuator_kv": ({"distribution": "loguniform", "low": 0.5, "high": 2.0},
                    lambda m: -m.actuator_biasprm[:6, 2]),
    "torque_limit": ({"low": 0.7, "high": 1.0, "match": "elbow_flex"},
                     lambda m: m.actuator_forcerange[[m.actuator("elbow_flex").id], 1]),
    "deadband": ({"distribution": "choice", "choices": [0, 1, 2, 3], "operation": "set"},
                 lambda m: m.actuator_gainprm[:6, SERVO_DEADBAND_SLOT]),
    "gear": ({"low": 0.8, "high": 1.2, "match": "wrist_.*"},
             lambda m: m.actuator_gear[[m.actuator("wrist_flex").id, m.actuator("wrist_roll").id], 0]),
    # A DC motor's R and ke live in the model as kt/R and kt*ke/R: read back as ratios.
    "motor_resistance": ({"low": 0.8, "high": 1.2},
                         lambda m: np.array([0.005 / m.actuator_gainprm[0, 0]])),
    "back_emf_constant": ({"low": 0.8, "high": 1.2},
                          lambda m: np.array([-m.actuator_biasprm[0, 2] / 2.1e-4])),
}
MOTOR_TERMS = ("motor_resistance", "back_emf_constant")


def make(term: str, seed_config: dict | None = None) -> DomainRandomization:
    config = RandomizationConfig.from_dict({term: seed_config or TERM_CASES[term][0]})
    env_id = "sim2real/FurutaSwingup-v0" if term in MOTOR_TERMS else "sim2real/ArmReach-v0"
    return DomainRandomization(make_env(env_id), config)


def test_every_term_has_a_case() -> None:
    assert set(TERM_CASES) == set(TERM_NAMES)


@pytest.mark.parametrize("term", list(TERM_CASES))
def test_term_draws_in_range_changes_the_model_and_restores_it(term: str) -> None:
    env = make(term)
    model = env.unwrapped.model
    read = TERM_CASES[term][1]
    nominal = read(model).copy()
    spec = env.config.terms[term]
    low, high = spec.distribution.support
    seen = []
    for seed in range(100):
        _, info = env.reset(seed=seed)
        draws = np.array(list(info["randomization"][term].values()))
        assert np.all(draws >= low) and np.all(draws <= high)
        expected = {"scale": nominal * draws, "add": nominal + draws, "set": draws}[spec.operation]
        assert np.allclose(read(model), expected, rtol=1e-6)  # from nominal: no compounding
        seen.append(read(model).copy())
    assert np.ptp(np.array(seen), axis=0).max() > 0  # the model really changes
    env.close()
    assert np.array_equal(read(model), nominal)  # disabling restores the nominal value exactly


@pytest.mark.parametrize("term", list(TERM_CASES))
def test_same_seed_same_draws(term: str) -> None:
    a, b = make(term), make(term)
    assert a.reset(seed=7)[1]["randomization"] == b.reset(seed=7)[1]["randomization"]
    assert a.reset(seed=8)[1]["randomization"] != b.reset(seed=7)[1]["randomization"]


def test_motor_terms_compose_from_nominal() -> None:
    config = RandomizationConfig.from_dict({"motor_resistance": {"low": 0.5, "high": 2.0},
                                            "back_emf_constant": {"low": 0.5, "high": 2.0}})
    env = DomainRandomization(make_env("sim2real/FurutaSwingup-v0"), config)
    model = env.unwrapped.model
    gain, bias = model.actuator_gainprm[0, 0], model.actuator_biasprm[0, 2]
    for seed in range(5):
        sample = env.reset(seed=seed)[1]["randomization"]
        r, ke = sample["motor_resistance"]["arm"], sample["back_emf_constant"]["arm"]
        assert model.actuator_gainprm[0, 0] == pytest.approx(gain / r)
        assert model.actuator_biasprm[0, 2] == pytest.approx(bias * ke / r)


def test_servo_gain_randomization_reaches_the_physics() -> None:
    """Our servos' deadband drops gainprm[0] to 0 and restores the configured gain, which the
    kp term sets: a randomized kp stays in force."""
    config = RandomizationConfig.from_dict({"actuator_kp": {"distribution": "choice",
                                                            "choices": [0.5]}})
    env = DomainRandomization(make_env("sim2real/ArmReach-v0"), config)
    env.reset(seed=0)
    env.step(np.ones(3, np.float32))
    model = env.unwrapped.model
    assert np.allclose(model.actuator_gainprm[:6, SERVO_KP_SLOT], 0.5 * 998.22)
    applied = model.actuator_gainprm[:6, 0]
    assert np.all(np.isclose(applied, 0.5 * 998.22) | (applied == 0.0))
    assert np.isclose(applied, 0.5 * 998.22).any()


def test_actuator_term_on_the_wrong_kind_of_actuator() -> None:
    config = RandomizationConfig.from_dict({"motor_resistance": {"low": 0.9, "high": 1.1}})
    with pytest.raises(ValueError, match="actuator 'shoulder_pan' is not a DC motor"):
        DomainRandomization(make_env("sim2real/ArmReach-v0"), config)


def test_mass_keeps_inertia_in_proportion() -> None:
    env = make("mass")
    model = env.unwrapped.model
    body = model.body("upper_arm").id
    ratio = model.body_inertia[body] / model.body_mass[body]
    env.reset(seed=3)
    assert np.allclose(model.body_inertia[body] / model.body_mass[body], ratio)


def test_works_on_gymnasium_and_robotics_envs() -> None:
    config = load_config("wide")
    _, info = DomainRandomization(gym.make("InvertedPendulum-v5"), config).reset(seed=0)
    assert set(info["randomization"]["mass"]) == {"cart", "pole"}
    _, info = make_env("FetchReach-v4", "default").reset(seed=0)
    assert len(info["randomization"]["joint_damping"]) > 5


def test_presets_and_yaml(tmp_path) -> None:
    assert load_config("none").terms == {}
    assert {"mass", "friction"} <= set(load_config("default").terms)
    path = tmp_path / "r.yaml"
    path.write_text("mass: {low: 0.9, high: 1.1, match: 'upper_arm'}\n")
    spec = load_config(path).terms["mass"]
    assert spec == TermSpec(Distribution("uniform", 0.9, 1.1), "upper_arm", "scale")
    assert RandomizationConfig.from_dict(load_config(path).to_dict()) == load_config(path)


@pytest.mark.parametrize(("raw", "message"), [
    ({"mass_scal": {"low": 1, "high": 2}}, "unknown randomization term 'mass_scal'"),
    ({"mass": {"low": 2, "high": 1}}, "mass: low 2.0 > high 1.0"),
    ({"mass": {"low": -1, "high": 1}}, "mass: a scale factor .* reaches -1.0"),
    ({"mass": {"distribution": "normal", "mean": 1, "std": 0.1}}, "reaches -inf"),
    ({"mass": {"low": 1}}, "needs low, high; missing high"),
    ({"mass": {"low": 1, "high": 2, "size": 3}}, "unknown keys"),
    ({"mass": {"distribution": "gamma", "low": 1, "high": 2}}, "distribution 'gamma' is unknown"),
    ({"mass": {"low": 1, "high": 2, "operation": "multiply"}}, "operation 'multiply'"),
    ({"mass": {"low": "heavy", "high": 2}}, "not a number"),
    ({"mass": {"low": float("nan"), "high": 2}}, "not a number \\(or not finite\\)"),
    ({"gravity": {"low": 0, "high": float("inf"), "operation": "add"}}, "not finite"),
    ({"mass": {"low": True, "high": 2}}, "not a number"),
    ({"texture": {"distribution": "choice", "choices": 3}}, "choices as a list"),
    ({"mass": {"low": 1, "high": 2, "when": True}}, "when True is unknown"),
    ({"mass": {"low": 1, "high": 2}, "adr": 5}, "adr needs a mapping"),
    ({"mass": {"low": 1, "high": 2}, "adr": {"terms": "mass"}}, "list the terms it widens"),
    ({"mass": {"low": 1, "high": 2}, "adr": {"terms": {"mass": {"step": "x"}}}}, "takes {step: S}"),
    ({"mass": {"low": 1, "high": 2}, "adr": {"terms": ["mass"], "steps": "ten"}}, "whole number"),
    ({"mass": {"low": 1, "high": 2}, "adr": {"terms": ["mass"], "widen_above": "high"}},
     "widen_above 'high' must be a number"),
])
def test_bad_config_names_the_term_key_and_value(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RandomizationConfig.from_dict(raw)


def test_pattern_that_matches_nothing_lists_names() -> None:
    config = RandomizationConfig.from_dict({"mass": {"low": 0.9, "high": 1.1, "match": "forearm"}})
    with pytest.raises(ValueError, match="names nothing in the model; names there: .*upper_arm"):
        DomainRandomization(make_env("sim2real/ArmReach-v0"), config)


def test_unknown_preset() -> None:
    with pytest.raises(ValueError, match="unknown randomization preset 'wild'"):
        load_config("wild")


def test_a_robot_preset_wins_over_the_generic_one() -> None:
    assert "actuator_kp" in load_config("default", "so_arm").terms
    assert "motor_resistance" in load_config("default", "furuta").terms
    assert "actuator_kp" not in load_config("default").terms
    assert load_config("none", "so_arm").terms == {}  # no robot file: the generic preset
    for env_id in ("sim2real/ArmReach-v0", "sim2real/FurutaSwingup-v0", "HalfCheetah-v5"):
        _, info = make_env(env_id, "default").reset(seed=0)
        assert info["randomization"]
