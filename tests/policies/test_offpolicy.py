"""The shared off-policy pieces checked by hand, and SAC, TD3 and DDPG each run end to end for a
few hundred steps (learning itself is in test_learning_offpolicy.py)."""

import csv
import json
import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from deploy.export import export
from policies import ddpg, sac, td3
from policies.algorithms import algorithm_by_name
from policies.core import sync_vector_env
from policies.exploration_noise import GaussianNoise, OrnsteinUhlenbeckNoise, make_action_noise
from policies.offpolicy_networks import Linear, relu_mlp, soft_update, use_matmul_precision
from policies.replay_buffer import ReplayBuffer
from randomization.envs import make_env

ALGOS = {"SAC": (sac, sac.SACConfig), "TD3": (td3, td3.TD3Config), "DDPG": (ddpg, ddpg.DDPGConfig)}


def final_obs(*rows: np.ndarray | None) -> np.ndarray:
    """info["final_obs"] as a vector env gives it: an object array, None for running copies."""
    out = np.empty(len(rows), dtype=object)
    out[:] = list(rows)
    return out


# -- the replay buffer ---------------------------------------------------------------------------

def test_buffer_stores_the_final_observation_of_a_finished_copy() -> None:
    buffer = ReplayBuffer(10, obs_size=2, action_size=1)
    obs = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]], np.float32)
    # Copy 0 ran on, copy 1 hit its time limit, copy 2 fell over; 1 and 2 were reset in the same
    # step, so the observations returned for them are their next episodes' first ones (9, 9).
    next_obs = np.array([[0.5, 0.5], [9.0, 9.0], [9.0, 9.0]], np.float32)
    info = {"final_obs": final_obs(None, np.array([1.5, 1.5]), np.array([2.5, 2.5])),
            "_final_obs": np.array([False, True, True])}
    buffer.add(obs, np.array([[0.1], [0.2], [0.3]]), np.array([1.0, 2.0, 3.0]), next_obs,
               terminated=np.array([False, False, True]),
               truncated=np.array([False, True, False]), info=info)
    assert len(buffer) == 3
    assert np.array_equal(buffer.next_obs[:3], [[0.5, 0.5], [1.5, 1.5], [2.5, 2.5]])
    # Truncated is not terminal: the target bootstraps from the time-limited copy's last state.
    assert np.array_equal(buffer.terminated[:3], [0.0, 0.0, 1.0])
    assert np.array_equal(buffer.obs[:3], obs)
    assert np.allclose(buffer.actions[:3, 0], [0.1, 0.2, 0.3])
    assert np.array_equal(buffer.rewards[:3], [1.0, 2.0, 3.0])


def test_buffer_wraps_around_at_capacity() -> None:
    buffer = ReplayBuffer(3, obs_size=1, action_size=1)
    none = np.zeros(2, dtype=bool)
    for step in range(2):  # four transitions into three rows: the first is overwritten
        values = np.array([[2 * step], [2 * step + 1]], np.float32)
        buffer.add(values, values, values[:, 0], values + 10, none, none, {})
    assert len(buffer) == 3 and buffer.position == 1
    assert np.array_equal(buffer.obs[:, 0], [3.0, 1.0, 2.0])
    assert np.array_equal(buffer.next_obs[:, 0], [13.0, 11.0, 12.0])
    with pytest.raises(ValueError, match="smaller than one step"):
        buffer.add(np.zeros((4, 1)), np.zeros((4, 1)), np.zeros(4), np.zeros((4, 1)),
                   np.zeros(4, bool), np.zeros(4, bool), {})


def test_buffer_samples_batches_of_the_right_shapes() -> None:
    buffer = ReplayBuffer(100, obs_size=4, action_size=2)
    with pytest.raises(ValueError, match="empty"):
        buffer.sample(8, np.random.default_rng(0))
    none = np.zeros(5, dtype=bool)
    buffer.add(np.ones((5, 4)), np.ones((5, 2)), np.ones(5), np.ones((5, 4)), none, none, {})
    batch = buffer.sample(32, np.random.default_rng(0))
    shapes = {key: tuple(value.shape) for key, value in batch.items()}
    assert shapes == {"obs": (32, 4), "action": (32, 2), "reward": (32,), "next_obs": (32, 4),
                      "terminated": (32,)}
    assert all(value.dtype == torch.float32 for value in batch.values())


# -- targets, noise --------------------------------------------------------------

def test_polyak_update_matches_a_hand_computation() -> None:
    target, source = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        target.weight.copy_(torch.tensor([[1.0, 2.0]]))
        target.bias.fill_(0.0)
        source.weight.copy_(torch.tensor([[3.0, -4.0]]))
        source.bias.fill_(10.0)
    soft_update(target, source, tau=0.1)
    # 0.9 * target + 0.1 * source
    assert torch.allclose(target.weight, torch.tensor([[1.2, 1.4]]))
    assert torch.allclose(target.bias, torch.tensor([1.0]))
    assert torch.equal(source.weight, torch.tensor([[3.0, -4.0]]))


def test_ornstein_uhlenbeck_noise_is_correlated_and_reverts_to_zero() -> None:
    rng = np.random.default_rng(0)
    noise = OrnsteinUhlenbeckNoise((1, 1), std=0.3, rng=rng)
    series = np.array([noise()[0, 0] for _ in range(5_000)])
    lag1 = np.corrcoef(series[:-1], series[1:])[0, 1]
    white = np.array([GaussianNoise((1, 1), 0.3, rng)()[0, 0] for _ in range(5_000)])
    assert lag1 > 0.99
    assert abs(np.corrcoef(white[:-1], white[1:])[0, 1]) < 0.05
    # Without randomness it decays geometrically: x <- x (1 - theta dt).
    calm = OrnsteinUhlenbeckNoise((2, 1), std=0.0, rng=rng, theta=0.5, dt=0.1)
    calm.state[:] = 4.0
    for _ in range(10):
        out = calm()
    assert np.allclose(out, 4.0 * (1 - 0.05) ** 10)
    calm.reset(np.array([True, False]))  # copy 0's episode ended
    assert calm.state[0, 0] == 0.0 and calm.state[1, 0] > 0.0
    with pytest.raises(ValueError, match="unknown"):
        make_action_noise("pink", (1, 1), 0.1, rng)


def test_sac_log_probability_matches_torch_distributions() -> None:
    torch.manual_seed(0)
    actor = sac.Actor(3, 2, (16,))
    obs, noise = torch.randn(64, 3), torch.randn(64, 2)
    action, log_prob = actor(obs, noise)
    hidden = actor.trunk(obs)
    base = torch.distributions.Normal(actor.mean(hidden), actor.log_std(hidden).exp())
    squashed = torch.distributions.TransformedDistribution(
        base, [torch.distributions.TanhTransform(cache_size=1)])
    pre_tanh = base.mean + base.stddev * noise
    assert torch.allclose(action, torch.tanh(pre_tanh))
    assert torch.allclose(log_prob, squashed.log_prob(torch.tanh(pre_tanh)).sum(-1), atol=1e-4)


# -- the three algorithms end to end -------------------------------------------------------------

def pendulum() -> gym.Env:
    return make_env("InvertedPendulum-v5")


def tiny(config_type: type, **changes: object) -> object:
    return config_type(**{"total_steps": 300, "learning_starts": 100, "batch_size": 32,
                          "hidden_sizes": (32, 32), "log_every": 100, "checkpoint_every": 200,
                          "eval_every": 300, "eval_episodes": 2, **changes})


@pytest.mark.parametrize("name", list(ALGOS))
def test_training_writes_its_files_and_an_exportable_policy(name: str, tmp_path) -> None:
    module, config_type = ALGOS[name]
    assert algorithm_by_name(name.lower()).train is module.train
    result = module.train(sync_vector_env(pendulum), tiny(config_type, num_envs=2), tmp_path,
                          metadata={"env_id": "InvertedPendulum-v5"}, progress=False)
    assert result["steps"] == 300
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [int(r["steps"]) for r in rows] == [100, 200, 300]
    assert rows[-1]["critic_loss"] and rows[-1]["eval_return"] and int(rows[-1]["updates"]) > 0
    assert (tmp_path / "episodes.jsonl").read_text().count("\n") > 0
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["status"] == "finished" and info["algo"] == name.lower()
    assert info["env_id"] == "InvertedPendulum-v5"
    assert (tmp_path / "best.pt").exists()
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert {"algo", "config", "obs_size", "action_size", "steps", "agent", "optimizers",
            "metadata"} <= set(checkpoint)
    assert checkpoint["steps"] == 300 and checkpoint["metadata"]["env_id"] == "InvertedPendulum-v5"
    policy = algorithm_by_name(checkpoint["algo"]).load_policy(checkpoint)
    actions = policy(100 * torch.randn(64, 4))
    assert actions.shape == (64, 1) and torch.all(actions.abs() <= 1.0)
    # `sim2real export` takes it unchanged: onnxruntime agrees with torch.
    result = export(tmp_path, check_count=100)
    error = result.onnx_error
    assert result.pipeline_error <= 1e-4 and result.pipeline_steps > 0
    assert error < 1e-5


@pytest.mark.slow  # over a second: the fast subset keeps under a minute
def test_annealed_learning_rates_fall_linearly_to_zero(tmp_path, monkeypatch) -> None:
    from policies import compiled

    rates: list[float] = []
    set_rate = compiled.Adam.set_learning_rate
    monkeypatch.setattr(compiled.Adam, "set_learning_rate",
                        lambda self, rate: (rates.append(rate), set_rate(self, rate)))
    config = tiny(sac.SACConfig, num_envs=2, anneal_lr=True, eval_every=0,
                  actor_learning_rate=1e-3, critic_learning_rate=2e-3, alpha_learning_rate=3e-3)
    sac.train(sync_vector_env(pendulum), config, tmp_path, progress=False)
    # Actor, critic and temperature before each update, from step 100 (the first update) to 300.
    by_optimizer = [rates[0::3], rates[1::3], rates[2::3]]
    steps = np.arange(100, 301, 2)
    for base, seen in zip((1e-3, 2e-3, 3e-3), by_optimizer, strict=True):
        assert np.allclose(seen, base * (1 - steps / 300))
    rates.clear()
    sac.train(sync_vector_env(pendulum), tiny(sac.SACConfig, num_envs=2, eval_every=0),
              tmp_path / "constant", progress=False)
    assert rates == []


# -- bf16 matmuls, opt-in -------------------------------------------------------------------------

def test_bf16_multiplies_only_the_hidden_layers_close_to_fp32() -> None:
    critic = relu_mlp([23, 256, 256, 1])
    use_matmul_precision(critic, "bf16")
    assert [layer.bf16_matmul for layer in critic if isinstance(layer, Linear)] == [False, True, False]
    x = torch.randn(512, 23)
    fast = critic(x)
    use_matmul_precision(critic, "fp32")
    exact = critic(x)
    # bf16 keeps 8 significant bits of the hidden layer's inputs and weights: near, not equal.
    assert not torch.equal(fast, exact)
    assert (fast - exact).abs().max() < 0.02 * exact.abs().max()
    # Acting on a few observations stays fp32, where bf16 is slower.
    exact_few = critic(x[:63])
    use_matmul_precision(critic, "bf16")
    assert torch.equal(critic(x[:63]), exact_few)
    with pytest.raises(ValueError, match="matmul_precision must be one of fp32, bf16; got 'fp16'"):
        use_matmul_precision(critic, "fp16")


@pytest.mark.slow  # 0.7-1 s each: the fast subset keeps under a minute
@pytest.mark.parametrize("name", list(ALGOS))
def test_bf16_training_exports_an_fp32_policy(name: str, tmp_path, monkeypatch) -> None:
    seen: list[bool] = []
    forward = Linear.forward
    monkeypatch.setattr(Linear, "forward", lambda self, x: (seen.append(self.bf16_matmul),
                                                            forward(self, x))[1])
    module, config_type = ALGOS[name]
    config = tiny(config_type, hidden_sizes=(64, 64), matmul_precision="bf16", eval_every=0)
    module.train(sync_vector_env(pendulum), config, tmp_path,
                 metadata={"env_id": "InvertedPendulum-v5"}, progress=False)
    assert True in seen and False in seen  # the hidden layers in bf16, the others not
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert checkpoint["config"]["matmul_precision"] == "bf16"
    policy = module.load_policy(checkpoint)
    assert not any(getattr(layer, "bf16_matmul", False) for layer in policy.modules())
    assert export(tmp_path, check_count=50).onnx_error < 1e-5


@pytest.mark.parametrize("name", list(ALGOS))
def test_discrete_actions_are_refused_naming_the_algorithm(name: str, tmp_path) -> None:
    module, config_type = ALGOS[name]
    with pytest.raises(ValueError, match=f"^{name} needs a continuous"):
        module.train(sync_vector_env(lambda: gym.make("CartPole-v1")), config_type(), tmp_path,
                     progress=False)


@pytest.mark.parametrize("name", list(ALGOS))
def test_nan_loss_stops_with_a_clear_error(name: str, tmp_path) -> None:
    class NanReward(gym.Wrapper):
        def step(self, action):
            obs, _, terminated, truncated, info = self.env.step(action)
            return obs, math.nan, terminated, truncated, info

    module, config_type = ALGOS[name]
    config = tiny(config_type, learning_starts=10, checkpoint_every=5)
    with pytest.raises(FloatingPointError, match=f"{name} losses .* last good checkpoint"):
        module.train(sync_vector_env(lambda: NanReward(pendulum())), config, tmp_path,
                     progress=False)
    # The last checkpoint was written before any update: its weights are finite.
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in checkpoint["agent"].values())


def test_nan_before_any_checkpoint_says_so(tmp_path) -> None:
    class NanObservation(gym.ObservationWrapper):
        def observation(self, observation):
            return observation * math.nan

    config = tiny(sac.SACConfig, learning_starts=10)
    with pytest.raises(FloatingPointError, match="no checkpoint was written before it"):
        sac.train(sync_vector_env(lambda: NanObservation(pendulum())), config, tmp_path,
                  progress=False)
