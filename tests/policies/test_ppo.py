import csv
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

from policies.core import RunningNormalizer, check_continuous_actions, sync_vector_env
from policies.onpolicy import RewardScaler
from policies.ppo import PPOConfig, compute_gae, load_policy, train
from policies.records import atomic_write_bytes
from randomization.envs import make_env


def test_gae_matches_a_hand_computation() -> None:
    gamma, lam = 0.9, 0.8
    rewards = np.array([[1.0], [2.0], [3.0]])
    values = np.array([[0.5], [1.0], [1.5]])
    ends = np.array([[0.0], [1.0], [0.0]])  # the episode ends at step 1
    next_value = np.array([2.0])
    # Step 2: delta = 3 + 0.9*2 - 1.5 = 3.3, A2 = 3.3
    # Step 1 (end): delta = 2 - 1 = 1, A1 = 1
    # Step 0: delta = 1 + 0.9*1 - 0.5 = 1.4, A0 = 1.4 + 0.9*0.8*1 = 2.12
    advantages, returns = compute_gae(rewards, values, ends, next_value, gamma, lam)
    assert np.allclose(advantages[:, 0], [2.12, 1.0, 3.3])
    assert np.allclose(returns, advantages + values)


def test_reward_scaler_divides_by_the_std_of_the_discounted_returns() -> None:
    scaler = RewardScaler(num_envs=2, gamma=0.5)
    rewards = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    ends = np.array([[False, False], [True, False], [False, False]])
    # Copy 0: 1, 0.5 + 3 = 3.5 (its episode ends), then 5 anew; copy 1: 2, 5, 8.5.
    returns_so_far: list[float] = []
    for step, expected in enumerate(([1.0, 2.0], [3.5, 5.0], [5.0, 8.5])):
        returns_so_far += expected
        scaled = scaler(rewards[step], ends[step])
        assert scaler.var == pytest.approx(np.var(returns_so_far), rel=1e-6)
        assert np.allclose(scaled, rewards[step] / np.sqrt(np.var(returns_so_far)), rtol=1e-6)
    for _ in range(1000):  # settle the statistics at small returns, then an outlier: clipped
        scaler(np.ones(2), np.array([False, False]))
    assert scaler(np.array([1e3, -1e3]), np.array([False, False])).tolist() == [10.0, -10.0]


class RewardsTimes(gym.Wrapper):
    def __init__(self, env: gym.Env, factor: float) -> None:
        super().__init__(env)
        self.factor = factor

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward * self.factor, terminated, truncated, info


def test_scaled_rewards_make_training_indifferent_to_reward_units(tmp_path) -> None:
    def run(factor: float, scale_rewards: bool) -> tuple[dict[str, torch.Tensor], float]:
        """The trained weights and the last logged value loss."""
        config = PPOConfig(total_steps=2 * 2 * 64, num_envs=2, rollout_steps=64, epochs=2,
                           minibatch_size=64, hidden_sizes=(16, 16), eval_every=0,
                           scale_rewards=scale_rewards, compile="never")
        out = tmp_path / f"{factor}-{scale_rewards}"
        train(sync_vector_env(lambda: RewardsTimes(make_env("InvertedPendulum-v5"), factor)),
              config, out, progress=False)
        rows = list(csv.DictReader((out / "metrics.csv").open()))
        return (torch.load(out / "checkpoint.pt", weights_only=False)["agent"],
                float(rows[-1]["value_loss"]))

    (small, small_loss), (large, large_loss) = run(1.0, True), run(1000.0, True)
    assert max((small[k] - large[k]).abs().max().item() for k in small) < 1e-4
    assert large_loss == pytest.approx(small_loss, rel=1e-3)
    # Unscaled, the critic chases targets 1000 times larger: a value loss about 1e6 times.
    assert run(1000.0, False)[1] > 1e4 * run(1.0, False)[1]


def test_normalizer_matches_numpy_statistics() -> None:
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, (1000, 4))
    norm = RunningNormalizer(4)
    for chunk in np.split(data, 10):
        norm.update(chunk)
    assert np.allclose(norm.mean.numpy(), data.mean(0), atol=1e-6)
    assert np.allclose(norm.var.numpy(), data.var(0), atol=1e-5)
    out = norm(torch.as_tensor(data, dtype=torch.float32)).numpy()
    assert np.allclose(out.mean(0), 0.0, atol=1e-4) and np.allclose(out.std(0), 1.0, atol=1e-3)


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch) -> None:
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def crash(fd: int) -> None:
        raise OSError("disk died mid-write")

    monkeypatch.setattr("policies.records.os.fsync", crash)
    with pytest.raises(OSError, match="mid-write"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_training_writes_checkpoint_metrics_and_run_info(tmp_path) -> None:
    config = PPOConfig(total_steps=1024, num_envs=4, rollout_steps=64, epochs=1,
                       hidden_sizes=(16,), checkpoint_every=1)
    result = train(sync_vector_env(lambda: make_env("InvertedPendulum-v5")), config, tmp_path,
                   metadata={"env_id": "InvertedPendulum-v5"}, progress=False)
    assert result["steps"] == 1024
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["steps"]) for r in rows] == [256, 512, 768, 1024]
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["status"] == "finished" and info["env_id"] == "InvertedPendulum-v5"
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    policy = load_policy(checkpoint)
    action = policy(torch.zeros(1, 4))
    assert action.shape == (1, 1) and torch.all(action.abs() <= 1.0)


def test_discrete_actions_are_refused() -> None:
    with pytest.raises(ValueError, match="continuous"):
        check_continuous_actions(gym.spaces.Discrete(3), "PPO")
    with pytest.raises(ValueError, match="RescaleAction"):
        check_continuous_actions(gym.spaces.Box(-2.0, 2.0, (1,)), "PPO")


def test_nan_loss_stops_with_a_clear_error(tmp_path) -> None:
    class NanReward(gym.Wrapper):
        def step(self, action):
            obs, _, terminated, truncated, info = self.env.step(action)
            return obs, float("nan"), terminated, truncated, info

    config = PPOConfig(total_steps=512, num_envs=2, rollout_steps=64, epochs=1, hidden_sizes=(8,))
    with pytest.raises(FloatingPointError, match="PPO loss became nan .* no checkpoint was written"):
        train(sync_vector_env(lambda: NanReward(make_env("InvertedPendulum-v5"))), config, tmp_path,
              progress=False)
