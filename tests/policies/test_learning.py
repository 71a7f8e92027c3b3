"""Every algorithm learns: each balances InvertedPendulum-v5 (1000 is the maximum return)
within a fixed step budget, judged on the deterministic policy that `sim2real export --best`
ships (normalizer + actor) over 10 episodes from seeds other than those that chose it; SAC
reaches the arm's target (PPO's reach, >= 90% deployed, is the demo's test: tests/test_demo.py).

PPO: the settings the side-by-side benchmark gives both libraries (benchmarks/rl_vs_sb3.py),
for twice its budget, evaluated every 10 iterations (10,240 steps): at 50k steps the final policy
returned 701 +- 109 (seed 0); 100k steps took 24 s here and the best evaluated policy returned
1000 +- 0. On an Intel Xeon (2026-12) seed 0 evaluated 1000 from 31k to 72k steps, then fell to
111 by the end: best.pt is what is judged.

InvertedPendulum is known to make off-policy learners unstable after they first solve it: the
return can fall back and recover (Stable-Baselines3's SAC does the same). A run therefore keeps
its best evaluated policy as best.pt, evaluated every 1,000 steps here, and that one is judged.

Budgets and wall times measured on the 2-core machine (another process busy at times), eval
every 1,000 steps; the step at which the evaluation first reached 1000, per seed 0/1/2:
  SAC  3k / 3k / 4k     (8k-step runs on 2 torch threads: 75-100 s)
  TD3  3k / 4k / 4k     (8k-step runs: 60-66 s)
  DDPG 3k / 956 at 8k / 935 at 4k, 995 at 10k   (10k-step runs: 68-78 s)
This file on one torch thread, seed 0: SAC 6k steps 77 s, TD3 6k 46 s, DDPG 8k 61 s, each best.pt
returning 1000 +- 0 on the 10 fresh episodes; SAC on ArmReach 30k steps 434 s, success 1.00.
Since the updates' fp32 products go to oneDNN (2026-12-07, a Zen 5) the numbers differ: DDPG's
best.pt at 8k returned 818 +- 364, at 10k 1000 +- 0 (37 s), so DDPG trains 10k steps.

On-policy, evaluated every 10k steps, the step at which the evaluation first reached 1000 for
seeds 0/1/2: TRPO (defaults, sb3-contrib's) 30k / 30k / 30k (60k steps: 11 s); A2C (the settings
of policies/hyperparams/a2c.yaml) 30k / 60k / 30k (200k steps: 21 s). A2C may fall back after
(seed 0 ended at 177): best.pt is judged, as for the off-policy learners.
"""

import time

import pytest
import torch

from policies.algorithms import algorithm_by_name
from policies.core import sync_vector_env
from policies.records import Evaluator
from randomization.envs import make_env, make_vector_env

A2C_PENDULUM = dict(total_steps=200_000, eval_every=125, learning_rate=1e-3, gae_lambda=0.95,
                    anneal_lr=True, normalize_advantage=True, initial_log_std=-0.5)
PENDULUM_SETTINGS = {
    "ppo": dict(total_steps=100_000, num_envs=8, rollout_steps=128, epochs=10,
                minibatch_size=256, learning_rate=3e-4, hidden_sizes=(64, 64),
                initial_log_std=-0.5, eval_every=10, eval_episodes=5),
    "sac": dict(total_steps=6_000, eval_every=1_000),
    "td3": dict(total_steps=6_000, eval_every=1_000),
    "ddpg": dict(total_steps=10_000, eval_every=1_000),
    "trpo": dict(total_steps=60_000, eval_every=5),
    "a2c": A2C_PENDULUM,
}


def train_and_evaluate(algo: str, make_envs, settings: dict, tmp_path, which: str,
                       episodes: int) -> dict:
    """Train `algo` with seed 0, then evaluate its `which`.pt over `episodes` fresh episodes."""
    algorithm = algorithm_by_name(algo)
    config = algorithm.config(seed=0, **settings)
    start = time.perf_counter()
    algorithm.train(make_envs, config, tmp_path, progress=False)
    seconds = time.perf_counter() - start
    policy = algorithm.load_policy(torch.load(tmp_path / f"{which}.pt", weights_only=False))
    result = Evaluator(make_envs, episodes=episodes, seed=7).evaluate(policy)
    print(f"{algo}: {config.total_steps} steps in {seconds:.0f} s, eval return "
          f"{result['eval_return']:.0f} +- {result['eval_return_std']:.0f}, success "
          f"{result['eval_success_rate']:.2f}")
    return result


@pytest.mark.slow
@pytest.mark.parametrize("algo", list(PENDULUM_SETTINGS))
def test_learns_to_balance_the_inverted_pendulum(algo: str, tmp_path) -> None:
    make_envs = sync_vector_env(lambda: make_env("InvertedPendulum-v5"))
    result = train_and_evaluate(algo, make_envs, PENDULUM_SETTINGS[algo], tmp_path, "best", 10)
    assert result["eval_return"] >= 950, result


@pytest.mark.slow
def test_reinforce_balances_the_inverted_pendulum_halfway(tmp_path) -> None:
    """REINFORCE, Monte Carlo with a learned baseline, is the slowest learner of the family:
    the issue asks >= 500. Seed 0 with learning rate 3e-3 evaluated 443 at 111k steps and 1000
    from 147k on (250k steps took 24 s); seed 1 likewise."""
    make_envs = sync_vector_env(lambda: make_env("InvertedPendulum-v5"))
    result = train_and_evaluate("reinforce", make_envs, dict(
        total_steps=200_000, learning_rate=3e-3, eval_every=5), tmp_path, "best", 10)
    assert result["eval_return"] >= 500, result


@pytest.mark.slow
def test_sac_reaches_the_arm_target(tmp_path) -> None:
    """Our reach task with the batch env. gamma 0.95 (as PPO's tuned setting) is what makes it
    learn fast: with 0.99, 30k steps gave 29% success (seed 0, 412 s). With 0.95, seed 0: training
    success 0.85 at 20k, deterministic success 1.00 (50 episodes) from 25k (313 s) to 60k; the
    final policy 1.00 over 200 episodes. Two torch threads: the test runs alone, and 30k steps took
    232 s against 301 s on one (success 1.00 over 100 episodes both); 25k steps 122 s on a
    later day (success 1.00 over 100 episodes)."""
    result = train_and_evaluate("sac", lambda n: make_vector_env("sim2real/ArmReach-v0", n),
                                dict(total_steps=25_000, gamma=0.95, eval_every=0, torch_threads=2),
                                tmp_path, "checkpoint", 100)
    assert result["eval_success_rate"] >= 0.9, result


PUSH_LEAST = 0.25
FETCH_REACH_HER = dict(total_steps=3_000, gamma=0.95, actor_learning_rate=1e-3,
                       critic_learning_rate=1e-3, learning_starts=1_000, eval_every=0,
                       compile="never")


@pytest.mark.slow
@pytest.mark.parametrize("algo,hindsight_goals,least,most", [
    ("sac", 4, 0.9, 1.0), ("td3", 4, 0.9, 1.0), ("ddpg", 4, 0.9, 1.0), ("td3", 0, 0.0, 0.3)])
def test_hindsight_replay_solves_fetch_reach(algo: str, hindsight_goals: int, least: float,
                                             most: float, tmp_path) -> None:
    """FetchReach-v4, sparse rewards, RL Zoo's settings (hyperparams/her.yml), 3,000 steps of
    which 1,000 random: with hindsight replay (k = 4) each of SAC, TD3 and DDPG evaluated 1.00
    success from 2,000 steps on (20 episodes, seed 0, 35-70 s a run on a busy machine); TD3
    without it 0.00-0.05 over the same 3,000 steps."""
    settings = dict(FETCH_REACH_HER, hindsight_goals=hindsight_goals)
    if algo == "sac":
        settings["alpha_learning_rate"] = 1e-3
    result = train_and_evaluate(algo, lambda n: make_vector_env("FetchReach-v4", n), settings,
                                tmp_path, "checkpoint", 20)
    assert least <= result["eval_success_rate"] <= most, result


@pytest.mark.slow
def test_sac_with_hindsight_replay_pushes_the_block(push_policy) -> None:
    """The push task with its tuned settings (policies/hyperparams/sac.yaml: SAC, hindsight
    replay, 8 copies, `default` randomization) for a tenth of their 1.1M steps (the session's
    push policy, tests/conftest.py), its ONNX export judged over 50 nominal episodes as `sim2real
    eval` judges it. Seed 0: 0.40 after 150 s on 2 cores (0.99 after the whole budget, 26 min)."""
    from evaluation.episodes import evaluate_policy

    result = evaluate_policy(push_policy, None, 50, seed=7)
    print(f"push: success {result['success_rate']:.2f}")
    assert result["success_rate"] >= PUSH_LEAST, result
