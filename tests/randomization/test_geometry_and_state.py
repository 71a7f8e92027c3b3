"""Terms of geometry (size, shape, joint limits) and of state (object start, pushes): each over
100 resets stays in range, really changes the model or the motion, restores the nominal model
exactly, and repeats its draws for a seed."""

import mujoco
import numpy as np
import pytest

from randomization.config import RandomizationConfig
from randomization.envs import make_env
from randomization.geometry import SHAPES
from randomization.wrapper import DomainRandomization

PUSH = "sim2real/ArmPush-v0"


def wrapped(raw: dict, env_id: str = PUSH) -> DomainRandomization:
    return DomainRandomization(make_env(env_id), RandomizationConfig.from_dict(raw))


def block_geom(model: mujoco.MjModel) -> int:
    return int(np.flatnonzero(model.geom_bodyid == model.body("block").id)[0])


# term -> (settings, reader of the model values, expected values from nominal and draws)
GEOMETRY_CASES = {
    "size": ({"low": 0.7, "high": 1.3, "match": "block"},
             lambda m: np.array([m.geom_size[block_geom(m), 0], m.body_mass[m.body("block").id],
                                 m.body_inertia[m.body("block").id, 0]]),
             lambda nominal, d: nominal * np.array([d[0], d[0] ** 3, d[0] ** 5])),
    "shape": ({"choices": ["box", "cylinder", "sphere"], "match": "block"},
              lambda m: np.array([float(m.geom_type[block_geom(m)])]),
              lambda nominal, d: np.array([float(SHAPES[("box", "cylinder", "sphere")[int(d[0])]])])),
    "joint_range": ({"low": 0.8, "high": 1.1, "match": "elbow_flex"},
                    lambda m: m.jnt_range[m.joint("elbow_flex").id].copy(),
                    lambda nominal, d: nominal * d),
}


@pytest.mark.parametrize("term", list(GEOMETRY_CASES))
def test_geometry_term_in_range_changes_the_model_and_restores_it(term: str) -> None:
    settings, read, expected = GEOMETRY_CASES[term]
    env = wrapped({term: settings})
    model = env.unwrapped.model
    nominal = read(model).copy()
    low, high = (0, 2) if term == "shape" else (settings["low"], settings["high"])
    seen = []
    for seed in range(100):
        _, info = env.reset(seed=seed)
        draws = np.array(list(info["randomization"][term].values()))
        assert np.all(draws >= low) and np.all(draws <= high)
        assert np.allclose(read(model), expected(nominal, draws), rtol=1e-9)
        seen.append(read(model).copy())
        env.step(env.action_space.sample())  # the physics runs with it
    assert np.ptp(np.array(seen), axis=0).max() > 0
    a, b = wrapped({term: settings}), wrapped({term: settings})
    assert a.reset(seed=5)[1]["randomization"] == b.reset(seed=5)[1]["randomization"]
    env.close()
    assert np.array_equal(read(model), nominal)


def test_size_scales_a_link_and_moves_the_joint_at_its_end() -> None:
    env = wrapped({"size": {"distribution": "choice", "choices": [1.2], "match": "upper_arm"}},
                  "sim2real/ArmReach-v0")
    model = env.unwrapped.model
    child = model.body("lower_arm").id
    before = model.body_pos[child].copy()
    env.reset(seed=0)
    assert np.allclose(model.body_pos[child], 1.2 * before)
    # The observation is of the robot as randomized: FK of the task (nominal links) differs
    # from MuJoCo's now, which is the point of randomizing link lengths.
    env.close()
    assert np.array_equal(model.body_pos[child], before)


def test_size_composes_with_mass() -> None:
    env = wrapped({"size": {"distribution": "choice", "choices": [1.1], "match": "block"},
                   "mass": {"distribution": "choice", "choices": [2.0], "match": "block"}})
    model = env.unwrapped.model
    body = model.body("block").id
    nominal = model.body_mass[body]
    for seed in range(3):
        env.reset(seed=seed)
        assert model.body_mass[body] == pytest.approx(nominal * 2.0 * 1.1 ** 3)


def test_a_sphere_block_rests_on_the_table_and_can_be_pushed() -> None:
    env = wrapped({"shape": {"choices": ["sphere"], "match": "block"}})
    env.reset(seed=0)
    model, data = env.unwrapped.model, env.unwrapped.data
    geom = block_geom(model)
    assert model.geom_type[geom] == mujoco.mjtGeom.mjGEOM_SPHERE
    z = data.geom_xpos[geom, 2]
    for _ in range(20):
        env.step(np.zeros(env.action_space.shape, np.float32))
    assert abs(data.geom_xpos[geom, 2] - z) < 0.005  # neither sinks nor jumps


def test_joint_range_refuses_limits_that_cross() -> None:
    env = wrapped({"joint_range": {"operation": "set", "low": 0.5, "high": 0.5,
                                   "match": "elbow_flex"}})
    with pytest.raises(ValueError, match="joint 'elbow_flex' would get limits .*low >= high"):
        for seed in range(5):
            env.reset(seed=seed)


def test_object_start_moves_the_block_from_where_the_task_put_it() -> None:
    plain = make_env(PUSH)
    env = wrapped({"object_start": {"low": -0.02, "high": 0.02, "match": "block"}})
    model = env.unwrapped.model
    address = model.jnt_qposadr[model.body("block").jntadr[0]]
    offsets = []
    for seed in range(100):
        plain.reset(seed=seed)
        obs, info = env.reset(seed=seed)
        draws = np.array(list(info["randomization"]["object_start"].values()))
        assert np.all(np.abs(draws) <= 0.02)
        moved = env.unwrapped.data.qpos[address:address + 2]
        assert np.allclose(moved - plain.unwrapped.data.qpos[address:address + 2], draws)
        offsets.append(draws)
        # The observation shows the block where it now is.
        assert np.allclose(obs, env.unwrapped.observe())
    assert np.ptp(np.array(offsets), axis=0).min() > 0.03


@pytest.mark.parametrize(("term", "env_id", "match"), [
    ("push_force", PUSH, "block"),
    ("push_velocity", "sim2real/FurutaBalance-v0", "pendulum"),
])
def test_pushes_kick_at_their_interval_and_leave_no_force_behind(term: str, env_id: str,
                                                                   match: str) -> None:
    def run(raw: dict, seed: int = 0) -> tuple[list, np.ndarray]:
        env = wrapped(raw, env_id)
        env.reset(seed=seed)
        kicks = []
        for _ in range(20):
            *_, info = env.step(np.zeros(env.action_space.shape,
                                                                   np.float32))
            kicks.append(info.get("randomization", {}).get(term, {}).get("size"))
            assert not env.unwrapped.data.xfrc_applied.any()  # a push lasts one step
        return kicks, env.unwrapped.data.qpos.copy()

    raw = {term: {"low": 1.0, "high": 2.0, "match": match, "when": 5}}
    kicks, pushed = run(raw)
    assert [k is not None for k in kicks] == [(step + 1) % 5 == 0 for step in range(20)]
    assert all(1.0 <= k <= 2.0 for k in kicks if k is not None)
    _, still = run({})
    assert np.abs(pushed - still).max() > 1e-3  # it moved something
    (kicks_a, state_a), (kicks_b, state_b) = run(raw, seed=3), run(raw, seed=3)
    assert kicks_a == kicks_b and np.array_equal(state_a, state_b)


@pytest.mark.parametrize(("raw", "message"), [
    ({"push_force": {"low": 1, "high": 2, "match": "block"}}, "when: N"),
    ({"push_force": {"low": -1, "high": 2, "match": "block", "when": 5}}, "must be >= 0"),
    ({"object_start": {"low": -0.1, "high": 0.1, "match": "upper_arm"}}, "no body on a free joint"),
    ({"size": {"low": 0.9, "high": 1.1, "match": "block", "operation": "add"}},
     "size is a scale factor"),
])
def test_bad_state_and_geometry_terms(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        wrapped(raw)


@pytest.mark.parametrize(("raw", "message"), [
    ({"shape": {"choices": ["box", "pyramid"]}}, "shape' needs choices among box"),
    ({"mass": {"low": 0.9, "high": 1.1, "when": "sometimes"}}, "when 'sometimes' is unknown"),
    ({"mass": {"low": 0.9, "high": 1.1, "when": 0}}, "when 0 is unknown"),
])
def test_bad_config_values(raw: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RandomizationConfig.from_dict(raw)
