import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from randomization.envs import make_env
from sim.pixels import PixelObservation
from sim.registration import OUR_ENVS


@pytest.mark.parametrize("env_id", list(OUR_ENVS))
def test_pixels_beside_state_pass_check_env_and_show_motion(env_id: str) -> None:
    env = make_env(env_id, "default", pixels=64)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert obs["pixels"].shape == (64, 64, 3) and obs["pixels"].dtype == np.uint8
    assert obs["pixels"].std() > 5  # a scene, not a blank frame
    first = obs["pixels"].astype(float)
    for _ in range(15):
        obs, *_ = env.step(np.ones(env.action_space.shape, np.float32))
    assert np.abs(obs["pixels"].astype(float) - first).mean() > 0.5  # the robot moved in view
    env.close()


def test_pixels_only_and_bad_camera() -> None:
    env = PixelObservation(make_env("sim2real/ArmReach-v0"), width=32, height=24, with_state=False)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (24, 32, 3)
    with pytest.raises(ValueError, match="no camera 'wrist'"):
        PixelObservation(make_env("sim2real/ArmReach-v0"), camera="wrist")
    with pytest.raises(ValueError, match="not one of ours"):
        make_env("InvertedPendulum-v5", pixels=64)
