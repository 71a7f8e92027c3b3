"""A2C, TRPO and REINFORCE on the shared on-policy core: TRPO's conjugate gradient and line
search, REINFORCE's whole-episode returns, A2C's n-step returns, each checked by hand."""

import csv
import itertools

import gymnasium as gym
import numpy as np
import pytest
import torch

from policies.a2c import A2CConfig
from policies.a2c import train as train_a2c
from policies.core import sync_vector_env
from policies.onpolicy import compute_gae
from policies.onpolicy_networks import ActorCritic
from policies.reinforce import REINFORCEConfig, finished_steps
from policies.reinforce import train as train_reinforce
from policies.trpo import TRPOConfig, conjugate_gradient, gaussian_kl, trust_region_step
from randomization.envs import make_env


def test_conjugate_gradient_matches_a_direct_solve() -> None:
    generator = torch.Generator().manual_seed(0)
    for size in (5, 30):
        m = torch.randn(size, size, generator=generator, dtype=torch.float64)
        spd = m @ m.T + 0.1 * torch.eye(size, dtype=torch.float64)
        b = torch.randn(size, generator=generator, dtype=torch.float64)
        x = conjugate_gradient(lambda v, a=spd: a @ v, b, iterations=4 * size, tolerance=1e-20)
        torch.testing.assert_close(x, torch.linalg.solve(spd, b), rtol=1e-8, atol=1e-8)
    # Fewer iterations than the size: an approximation that already reduces the residual.
    x = conjugate_gradient(lambda v: spd @ v, b, iterations=3)
    assert torch.linalg.norm(spd @ x - b) < torch.linalg.norm(b)


def test_gaussian_kl_matches_torch_distributions() -> None:
    generator = torch.Generator().manual_seed(1)
    old_mean, mean = torch.randn(2, 7, 3, generator=generator)
    old_log_std, log_std = 0.3 * torch.randn(2, 3, generator=generator)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(old_mean, old_log_std.exp()),
        torch.distributions.Normal(mean, log_std.exp())).sum(-1).mean()
    torch.testing.assert_close(gaussian_kl(old_mean, old_log_std, mean, log_std), expected)


def trust_region_setup(seed: int = 0):
    torch.manual_seed(seed)
    agent = ActorCritic(obs_size=4, action_size=2, hidden_sizes=(16,), initial_log_std=-0.5)
    features = torch.randn(128, 4)
    with torch.no_grad():
        mean = agent.actor(features)
        actions = mean + agent.log_std.exp() * torch.randn_like(mean)
        log_probs = agent.log_prob(actions, mean)
    # Advantages that reward pushing the first action dimension up: a clear gradient.
    advantages = (actions[:, 0] - mean[:, 0]) * 10.0
    return agent, features, actions, (advantages - advantages.mean()) / advantages.std(), log_probs


@pytest.mark.parametrize("target_kl", [1e-3, 5e-2])
def test_trust_region_step_keeps_the_measured_kl_within_the_bound(target_kl) -> None:
    agent, features, actions, advantages, log_probs = trust_region_setup()
    with torch.no_grad():
        old_mean, old_log_std = agent.actor(features), agent.log_std.clone()
    config = TRPOConfig(target_kl=target_kl)
    step = trust_region_step(agent, features, actions, advantages, log_probs, config)
    with torch.no_grad():
        measured = gaussian_kl(old_mean, old_log_std, agent.actor(features), agent.log_std).item()
        log_ratio = agent.log_prob(actions, agent.actor(features)) - log_probs
        gain = (log_ratio.exp() * advantages).mean().item() - step.surrogate
    assert step.accepted
    assert 0 < measured <= target_kl
    assert measured == pytest.approx(step.kl, rel=1e-5)
    assert gain == pytest.approx(step.improvement, rel=1e-4) and gain > 0
    # The step is not needlessly timid: the quadratic model puts it near the bound.
    assert measured > 0.3 * target_kl


def test_trust_region_step_that_finds_no_improvement_leaves_the_policy_as_it_was() -> None:
    agent, features, actions, _, log_probs = trust_region_setup()
    before = [p.detach().clone() for p in agent.parameters()]
    # Zero advantages: no direction improves the surrogate, so every shrink is rejected.
    step = trust_region_step(agent, features, actions, torch.zeros(len(actions)), log_probs,
                             TRPOConfig(line_search_steps=3))
    assert not step.accepted and step.kl == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, agent.parameters(), strict=True))


def test_finished_steps_and_reward_to_go_by_hand() -> None:
    # Two copies over 5 steps: copy 0 ends at steps 1 and 3, copy 1 never ends.
    ends = np.array([[0, 0], [1, 0], [0, 0], [1, 0], [0, 0]], np.float32)
    assert finished_steps(ends).tolist() == [4, 0]
    rewards = np.array([[1, 1], [2, 1], [3, 1], [4, 1], [5, 1]], np.float32)
    gamma = 0.5
    to_go, _ = compute_gae(rewards, np.zeros_like(rewards), ends, np.zeros(2, np.float32),
                           gamma, 1.0)
    # Copy 0: episode [1, 2] then episode [3, 4]; each return stops at its episode's end.
    assert to_go[:4, 0].tolist() == [1 + 0.5 * 2, 2, 3 + 0.5 * 4, 4]


def test_n_step_returns_of_a2c_by_hand() -> None:
    """gae_lambda 1 with a critic: the n-step return bootstrapped from the value after the
    rollout, cut at an episode end."""
    rewards = np.array([[1.0], [1.0], [1.0]], np.float32)
    values = np.array([[0.5], [0.4], [0.3]], np.float32)
    ends = np.array([[0.0], [0.0], [0.0]], np.float32)
    gamma, next_value = 0.9, np.array([2.0], np.float32)
    _, returns = compute_gae(rewards, values, ends, next_value, gamma, 1.0)
    expected = [1 + 0.9 + 0.81 + 0.729 * 2.0, 1 + 0.9 + 0.81 * 2.0, 1 + 0.9 * 2.0]
    np.testing.assert_allclose(returns[:, 0], expected, rtol=1e-6)
    ends[1, 0] = 1.0  # the episode ended at step 1: step 0's return stops there
    _, returns = compute_gae(rewards, values, ends, next_value, gamma, 1.0)
    np.testing.assert_allclose(returns[:, 0], [1.9, 1.0, 2.8], rtol=1e-6)


def test_reinforce_learns_from_whole_episodes_only(tmp_path) -> None:
    config = REINFORCEConfig(total_steps=300, num_envs=3, batch_steps=50, max_episode_steps=200,
                             hidden_sizes=(8,), eval_every=0)
    result = train_reinforce(sync_vector_env(lambda: make_env("InvertedPendulum-v5")), config,
                             tmp_path, progress=False)
    assert result["steps"] >= 300
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert all(float(row["episodes_per_batch"]) >= 1 for row in rows)
    # Each batch is cut as soon as its finished episodes hold batch_steps steps.
    assert all(int(b["steps"]) - int(a["steps"]) <= 3 * 200 for a, b in itertools.pairwise(rows))
    with pytest.raises(ValueError, match="no episode finished within max_episode_steps=2"):
        train_reinforce(sync_vector_env(lambda: make_env("InvertedPendulum-v5")),
                        REINFORCEConfig(total_steps=100, num_envs=2, max_episode_steps=2,
                                        batch_steps=10, eval_every=0, hidden_sizes=(8,)),
                        tmp_path / "short", progress=False)


def test_a2c_refuses_an_unknown_optimizer_and_discrete_actions(tmp_path) -> None:
    with pytest.raises(ValueError, match="a2c setting optimizer is 'sgd'; it must be one of rmsprop, adam"):
        train_a2c(sync_vector_env(lambda: make_env("InvertedPendulum-v5")),
                  A2CConfig(optimizer="sgd"), tmp_path, progress=False)
    with pytest.raises(ValueError, match="A2C needs a continuous"):
        train_a2c(sync_vector_env(lambda: gym.make("CartPole-v1")), A2CConfig(), tmp_path,
                  progress=False)
