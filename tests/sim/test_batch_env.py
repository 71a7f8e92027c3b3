import functools

import numpy as np
import pytest

from randomization.config import RandomizationConfig
from randomization.envs import make_env, make_vector_env
from randomization.randomizer import Randomizer
from sim.batch_env import BatchRobotEnv
from sim.cores import usable_cores
from sim.registration import OUR_ENVS

# Three steps of command delay, drawn without using the generator (one choice), so that single
# envs and the batch, which draw in different orders, still start the same episodes.
DELAY = {"action_delay": {"distribution": "choice", "choices": [3]}}


@pytest.mark.parametrize("delayed", [False, True], ids=["plain", "delay3-history2"])
@pytest.mark.parametrize("env_id", list(OUR_ENVS))
def test_batch_matches_single_envs_step_for_step(env_id: str, delayed: bool) -> None:
    """The batch runs the same task functions and physics as the single env: same seeds, same
    actions, same observations, rewards and ends. Also with a command delay and a command
    history in the observation: one delay line and one history class serve both."""
    if delayed:
        entry = OUR_ENVS[env_id]
        task_config = {**entry.get("task_config", {}), "command_history": 2}
        config = RandomizationConfig.from_dict(DELAY)
        batch = BatchRobotEnv(3, entry["robot"], entry["task"], task_config,
                              make_randomizer=functools.partial(Randomizer, config))
        singles = [make_env(env_id, config, task_config=task_config) for _ in range(3)]
        assert batch.single_observation_space.shape == singles[0].observation_space.shape
    else:
        batch = make_vector_env(env_id, 3, mode="batch")
        singles = [make_env(env_id) for _ in range(3)]
    obs, _ = batch.reset(seed=10)
    single_obs = [env.reset(seed=10 + i)[0] for i, env in enumerate(singles)]
    assert np.allclose(obs, np.stack(single_obs))
    rng = np.random.default_rng(0)
    for _ in range(150):
        actions = rng.uniform(-1, 1, batch.action_space.shape).astype(np.float32)
        obs, reward, terminated, truncated, info = batch.step(actions)
        for i, env in enumerate(singles):
            o, r, te, tr, _ = env.step(actions[i])
            if te or tr:
                assert np.allclose(info["final_obs"][i], o, atol=1e-6)
                assert (terminated[i], truncated[i]) == (te, tr)
                env.reset(seed=None)
                break  # the single env's next episode draws from another stream
            assert np.allclose(obs[i], o, atol=1e-6) and reward[i] == pytest.approx(r)
        else:
            continue
        break


def test_finished_copies_reset_in_the_same_step() -> None:
    envs = BatchRobotEnv(4, robot="so_arm", task="reach")
    envs.reset(seed=0)
    for _ in range(100):
        _, _, terminated, truncated, info = envs.step(np.zeros((4, 3), np.float32))
    assert truncated.all() and not terminated.any()
    assert info["_final_obs"].all() and (envs.steps == 0).all()


def test_randomized_batch_draws_per_copy_and_repeats_per_seed() -> None:
    a = make_vector_env("sim2real/ArmReach-v0", 3, "default", mode="batch")
    b = make_vector_env("sim2real/ArmReach-v0", 3, "default", mode="batch")
    a.reset(seed=5)
    b.reset(seed=5)
    assert a.randomization == b.randomization
    masses = [r["mass"]["upper_arm"] for r in a.randomization]
    assert len(set(masses)) == 3 and all(0.8 <= m <= 1.2 for m in masses)


def test_batch_mode_only_for_our_envs() -> None:
    with pytest.raises(ValueError, match="our envs only"):
        make_vector_env("InvertedPendulum-v5", 2, mode="batch")


@pytest.mark.parametrize("env_id", list(OUR_ENVS))
def test_physics_on_several_threads_gives_the_same_numbers_copy_by_copy(env_id: str) -> None:
    """Each thread steps its own slice of the copies with the calls one thread makes: the same
    observations, rewards and ends, bit for bit, through resets."""
    entry = OUR_ENVS[env_id]
    one = BatchRobotEnv(5, physics_threads=1, **entry)
    three = BatchRobotEnv(5, physics_threads=3, **entry)
    assert (one.physics_threads, three.physics_threads) == (1, 3)
    runs = []
    for envs in (one, three):
        rng = np.random.default_rng(1)
        steps = [envs.reset(seed=4)[0]]
        for _ in range(120):
            actions = rng.uniform(-1, 1, envs.action_space.shape).astype(np.float32)
            obs, reward, terminated, truncated, _ = envs.step(actions)
            steps += [obs, reward, terminated, truncated]
        envs.close()
        runs.append(steps)
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a, b)


def test_physics_threads_default_to_the_cores_and_refuse_nonsense(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    envs = BatchRobotEnv(64, robot="so_arm", task="reach")
    assert envs.physics_threads == usable_cores() == len(os.sched_getaffinity(0))
    envs.close()
    # A scheduler's share (Ray sets OMP_NUM_THREADS to a trial's CPUs) caps the default.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    envs = BatchRobotEnv(64, robot="so_arm", task="reach")
    assert envs.physics_threads == 1
    envs.close()
    monkeypatch.setenv("OMP_NUM_THREADS", "")  # unset in effect, as some launchers leave it
    assert usable_cores() == len(os.sched_getaffinity(0))
    assert BatchRobotEnv(1, robot="so_arm", task="reach").physics_threads == 1
    with pytest.raises(ValueError, match="physics_threads must be a whole number >= 1, got 0"):
        BatchRobotEnv(4, robot="so_arm", task="reach", physics_threads=0)
