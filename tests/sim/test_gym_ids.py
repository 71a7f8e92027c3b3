"""Our envs for any library that makes Gymnasium envs (issue "Logs and envs", item 3): the ids
register on `import sim`, so a fresh interpreter with only gymnasium's API makes them."""

import subprocess
import sys

import pytest


@pytest.mark.slow  # a fresh interpreter that imports MuJoCo
def test_a_fresh_interpreter_makes_our_envs_through_gymnasium_alone(tmp_path) -> None:
    code = ("import gymnasium as gym\n"
            "env = gym.make('sim:sim2real/ArmReach-v0')\n"
            "obs, _ = env.reset(seed=0)\n"
            "envs = gym.make_vec('sim:sim2real/FurutaBalance-v0', num_envs=2)\n"
            "print(obs.shape, envs.reset(seed=0)[0].shape, env.spec.max_episode_steps)\n")
    # Run outside the checkout: what the installed package gives.
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(30,)", "(2,", "6)", "100"]


def test_importing_sim_registers_every_one_of_our_ids() -> None:
    import gymnasium as gym

    import sim  # noqa: F401
    from sim.registration import OUR_ENVS

    assert all(env_id in gym.registry for env_id in OUR_ENVS)
    assert gym.spec("sim2real/ArmPush-v0").entry_point == "sim.env:RobotTaskEnv"
