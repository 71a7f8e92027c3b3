"""PPO from camera images: the CNN encoder, a tiny training run, its ONNX export and refusals."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything renders

import csv
from pathlib import Path

import gymnasium as gym
import numpy as np
import onnxruntime as ort
import pytest
import torch

from deploy.contract import ContractError
from deploy.export import export, load_run
from deploy.loop import run as deploy
from deploy.onnx_policy import OnnxPolicy
from policies import algorithms
from policies.core import sync_vector_env
from policies.encoders import (
    ImageEncoder,
    PixelStateEncoder,
    conv_output_size,
    observation_layout,
    policy_inputs,
)
from policies.ppo import ActorCritic, PPOConfig, load_policy, train
from randomization.envs import make_env, make_vector_env
from sim.reach import ReachTask
from sim.so_arm import SO_ARM
from sim2real.runs import train_run

REACH = "sim2real/ArmReach-v0"
SIZE = 32
STATE = ReachTask(SO_ARM).observation_size
"""The reach task's state vector, beside the image."""


def test_conv_output_size_matches_the_layers() -> None:
    # 84: (84-8)//4+1 = 20, (20-4)//2+1 = 9, 9+2-3+1 = 9 (the padded last layer)
    # 20: 4, 1, 1 (the smallest image that still leaves a feature map)
    assert [conv_output_size(n) for n in (84, 32, 20)] == [9, 2, 1]
    for size in (84, 32, 20, 37):
        encoder = ImageEncoder((size, size, 3), features=8)
        maps = encoder.convs[:-1](torch.zeros(1, 3, size, size))
        assert maps.shape[-2:] == (conv_output_size(size), conv_output_size(size))


def test_image_encoder_takes_uint8_or_float_channels_last() -> None:
    torch.manual_seed(0)
    encoder = ImageEncoder((SIZE, 48, 3), features=16)
    images = torch.randint(0, 256, (5, SIZE, 48, 3), dtype=torch.uint8)
    out = encoder(images)
    assert out.shape == (5, 16) and out.dtype == torch.float32
    assert out.abs().max() <= 1.0
    # Scaling to [0, 1] is inside: the same image as float on 0-255 gives the same features.
    assert torch.allclose(encoder(images.float()), out, atol=1e-6)
    by_hand = encoder.head(encoder.convs(images.permute(0, 3, 1, 2).float() / 255.0))
    assert torch.allclose(out, by_hand, atol=1e-6)
    # Different images, different features (the pixels reach the output).
    assert not torch.allclose(out[0], out[1])
    with pytest.raises(ValueError, match=r"pixels\[None\]"):
        encoder(images[0])
    with pytest.raises(ValueError, match="at least 20"):
        ImageEncoder((16, 16, 3))


def test_pixel_state_encoder_joins_image_features_and_the_normalized_state() -> None:
    torch.manual_seed(0)
    encoder = PixelStateEncoder((SIZE, SIZE, 3), state_size=4, features=16)
    assert encoder.output_size == 20
    states = np.random.default_rng(0).normal(3.0, 2.0, (200, 4))
    encoder.normalizer.update(states)
    pixels = torch.randint(0, 256, (3, SIZE, SIZE, 3), dtype=torch.uint8)
    state = torch.as_tensor(states[:3], dtype=torch.float32)
    out = encoder(pixels, state)
    assert out.shape == (3, 20)
    assert torch.allclose(out[:, :16], encoder.image(pixels))
    by_hand = (states[:3] - states.mean(0)) / np.sqrt(states.var(0) + 1e-8)
    assert np.allclose(out[:, 16:].detach().numpy(), by_hand, atol=1e-4)
    image_only = PixelStateEncoder((SIZE, SIZE, 3), state_size=0, features=16)
    assert image_only(pixels).shape == (3, 16)


def test_unsupported_observation_spaces_are_refused_by_name() -> None:
    image = gym.spaces.Box(0, 255, (SIZE, SIZE, 3), np.uint8)
    state = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
    assert observation_layout(state, "PPO") == (5, None)
    assert observation_layout(gym.spaces.Dict({"pixels": image, "state": state}), "PPO") == (
        5, (SIZE, SIZE, 3))
    assert observation_layout(gym.spaces.Dict({"pixels": image}), "PPO") == (0, (SIZE, SIZE, 3))
    cases = [
        (gym.spaces.Discrete(4), r"PPO takes a flat Box .* this env has Discrete\(4\)"),
        (image, "bare image .* with_state=True"),
        (gym.spaces.Dict({"a": state, "b": state}), r"keys \['a', 'b'\].*FlattenObservation"),
        (gym.spaces.Dict({"pixels": gym.spaces.Box(0, 1, (SIZE, SIZE, 3), np.float32)}),
         "'pixels' is Box.*give uint8 images"),
        (gym.spaces.Dict({"pixels": gym.spaces.Box(0, 255, (12, 12, 3), np.uint8)}),
         "12x12 are too small .* at least 20x20"),
    ]
    for space, message in cases:
        with pytest.raises(ValueError, match=message):
            observation_layout(space, "PPO")


def test_training_refuses_an_unsupported_observation_space(tmp_path) -> None:
    class Counter(gym.Env):
        observation_space = gym.spaces.Discrete(4)
        action_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            return 0, {}

        def step(self, action):
            return 0, 0.0, False, False, {}

    config = PPOConfig(total_steps=64, num_envs=1, rollout_steps=64, eval_every=0)
    with pytest.raises(ValueError, match=r"PPO takes a flat Box .* this env has Discrete\(4\)"):
        train(sync_vector_env(Counter), config, tmp_path, progress=False)


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two PPO iterations on the reach arm seen through a 32x32 camera: 2 envs x 64 steps each,
    so one episode per env ends at its 100-step time limit (its last image is bootstrapped)."""
    out = tmp_path_factory.mktemp("runs") / "pixels"
    config = PPOConfig(total_steps=256, num_envs=2, rollout_steps=64, epochs=1,
                       minibatch_size=64, hidden_sizes=(32,), image_features=32, eval_every=2,
                       eval_episodes=1)
    train(lambda n: make_vector_env(REACH, n, pixels=SIZE), config, out,
          metadata={"env_id": REACH, "pixels": SIZE}, progress=False)
    return out


@pytest.mark.slow
def test_pixel_ppo_trains_the_shared_encoder_and_writes_a_checkpoint(pixel_run: Path) -> None:
    rows = list(csv.DictReader((pixel_run / "metrics.csv").open()))
    assert [int(r["steps"]) for r in rows] == [128, 256]
    assert all(np.isfinite(float(r["value_loss"])) for r in rows)
    assert rows[-1]["eval_return"] != ""  # the evaluator ran the pixel policy
    assert len((pixel_run / "episodes.jsonl").read_text().splitlines()) == 2  # time limits
    checkpoint, info = load_run(pixel_run)
    assert checkpoint["image_shape"] == (SIZE, SIZE, 3) and checkpoint["obs_size"] == STATE
    assert info["image_shape"] == [SIZE, SIZE, 3] and info["pixels"] == SIZE
    # The conv weights moved from their initial values: actor and critic losses reach the CNN.
    torch.manual_seed(0)
    config = PPOConfig(hidden_sizes=(32,), image_features=32)
    initial = ActorCritic(STATE, 3, config.hidden_sizes, config.initial_log_std, (SIZE, SIZE, 3),
                          config.image_features).state_dict()
    for name in ("encoder.image.convs.0.weight", "encoder.image.head.0.weight",
                 "actor.0.weight", "critic.0.weight"):
        change = (checkpoint["agent"][name] - initial[name]).abs().max()
        assert 0 < change < 0.05, name  # a few small Adam steps from the same initialisation
    assert checkpoint["agent"]["encoder.normalizer.count"] > 200  # the state normalizer ran
    policy = load_policy(checkpoint)
    env = make_env(REACH, pixels=SIZE)
    obs, _ = env.reset(seed=0)
    env.close()
    action = policy(*policy_inputs({k: v[None] for k, v in obs.items()}))
    assert action.shape == (1, 3) and torch.all(action.abs() <= 1.0)


@pytest.mark.slow
def test_pixel_policy_exports_with_the_encoder_inside(pixel_run: Path) -> None:
    result = export(pixel_run, check_count=40)
    path, error = result.path, result.onnx_error
    assert result.pipeline_error <= 1e-4 and result.pipeline_steps > 0
    assert error <= 1e-5
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = session.get_inputs()
    assert [(i.name, i.type) for i in inputs] == [("pixels", "tensor(uint8)"),
                                                   ("obs", "tensor(float)")]
    assert inputs[0].shape[1:] == [SIZE, SIZE, 3] and inputs[1].shape[1:] == [STATE]
    assert [o.name for o in session.get_outputs()] == ["actions"]

    # onnxruntime against torch on images and states of our own, not the export's check set.
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (16, SIZE, SIZE, 3), dtype=np.uint8)
    state = rng.normal(0.0, 1.0, (16, STATE)).astype(np.float32)
    torch_policy = load_policy(load_run(pixel_run)[0])
    with torch.no_grad():
        expected = torch_policy(torch.as_tensor(pixels), torch.as_tensor(state)).numpy()
    policy = OnnxPolicy(path)
    assert policy.contract.image_shape == [SIZE, SIZE, 3]
    actual = policy({"pixels": pixels, "state": state})
    assert actual.shape == (16, 3) and np.abs(actual - expected).max() < 1e-5
    # The image matters to the exported actions (the encoder is in the graph).
    assert np.abs(policy({"pixels": pixels[::-1].copy(), "state": state}) - actual).max() > 0
    # One observation from the env, as the robot would give it.
    env = make_env(REACH, pixels=SIZE)
    obs, _ = env.reset(seed=0)
    env.close()
    assert policy(obs).shape == (3,)

    with pytest.raises(ValueError, match="must be uint8"):
        policy({"pixels": pixels / 255.0, "state": state})
    with pytest.raises(ValueError, match="pixel policy"):
        policy(state)
    with pytest.raises(ContractError, match="camera images"):
        deploy(policy, robot=None, seconds=1.0)  # refused before the robot is touched


def test_training_on_pixels_and_refusing_what_cannot_work(tmp_path, monkeypatch) -> None:
    seen = {}

    def fake_train(make_envs, config, out, metadata, progress, on_evaluation):  # as the CLI calls PPO
        envs = make_envs(1)
        seen["space"], seen["metadata"] = envs.single_observation_space, metadata
        envs.close()
        return {"steps": 0, "seconds": 0.0, "mean_return": 0.0}  # as TrainingRun.finish

    monkeypatch.setitem(algorithms.ALGORITHMS, "ppo",
                        algorithms.Algorithm(PPOConfig, fake_train, load_policy))
    monkeypatch.setattr("policies.plots.plot_learning_curve", lambda *args: None)
    train_run(REACH, "ppo", 10, 0, tmp_path / "ok", None, pixels=24)
    assert seen["space"]["pixels"].shape == (24, 24, 3) and seen["metadata"]["pixels"] == 24

    with pytest.raises(ValueError, match="at least 20"):
        train_run(REACH, "ppo", 10, 0, tmp_path / "a", None, pixels=8)
    with pytest.raises(ValueError, match="ppo only"):
        train_run(REACH, "sac", 10, 0, tmp_path / "b", None, pixels=SIZE)
    with pytest.raises(ValueError, match="not one of ours"):
        train_run("InvertedPendulum-v5", "ppo", 10, 0, tmp_path / "c", None, pixels=SIZE)
