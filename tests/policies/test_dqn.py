"""DQN and discretized actions: the schedule, the targets and the target updates by hand; the
action table and its wrappers; the refusals; exact resume; export to ONNX; and learning: DQN
solves CartPole-v1 and balances the Furuta pendulum with discretized voltages."""

import csv
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from deploy.export import export
from deploy.onnx_policy import OnnxPolicy
from evaluation.episodes import evaluate_policy, run_episodes
from policies import dqn, sac
from policies.algorithms import algorithm_by_name
from policies.core import record_episodes, sync_vector_env
from policies.dqn import DQNConfig, epsilon, td_targets, update_target
from policies.records import Evaluator
from randomization.envs import make_env, make_vector_env
from sim.discrete_actions import DiscreteActions, action_table, env_action
from sim2real.runs import resume_run, train_run

FURUTA = "sim2real/FurutaBalance-v0"


# -- the schedule, the targets, the target network -----------------------------------------------

def test_epsilon_falls_linearly_then_stays() -> None:
    config = DQNConfig(total_steps=1_000, exploration_fraction=0.2, initial_epsilon=1.0,
                       final_epsilon=0.1)
    assert epsilon(0, config) == 1.0
    assert epsilon(100, config) == pytest.approx(0.55)  # halfway through the 200 steps
    assert epsilon(200, config) == pytest.approx(0.1)
    assert epsilon(900, config) == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"final_epsilon is 1.5; it must be a finite number in \[0, 1\]"):
        DQNConfig(final_epsilon=1.5)
    with pytest.raises(ValueError, match="loss is 'l1'; it must be one of huber, mse"):
        DQNConfig(loss="l1")
    with pytest.raises(ValueError, match=r"dqn setting tau is 0.0; it must be a finite number in \(0, 1\]"):
        DQNConfig(tau=0.0)


def test_targets_match_a_hand_computation() -> None:
    reward = torch.tensor([1.0, 0.5, -1.0])
    # Copy 0 ran on, copy 1 hit its time limit (stored as not terminated), copy 2 fell.
    terminated = torch.tensor([0.0, 0.0, 1.0])
    next_q_target = torch.tensor([[2.0, 5.0, 3.0], [4.0, 1.0, 0.0], [9.0, 9.0, 9.0]])
    next_q_online = torch.tensor([[0.0, 1.0, 7.0], [3.0, 2.0, 1.0], [1.0, 0.0, 0.0]])
    plain = td_targets(reward, terminated, 0.9, next_q_target)
    # r + 0.9 max_a Q_target(s', a); no bootstrap past the fall, but past the time limit.
    assert torch.allclose(plain, torch.tensor([1.0 + 0.9 * 5.0, 0.5 + 0.9 * 4.0, -1.0]))
    double = td_targets(reward, terminated, 0.9, next_q_target, next_q_online)
    # The online network picks (2, 0, 0), the target network values them: 3, 4.
    assert torch.allclose(double, torch.tensor([1.0 + 0.9 * 3.0, 0.5 + 0.9 * 4.0, -1.0]))


def test_hard_and_polyak_target_updates() -> None:
    online, target = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        online.weight.copy_(torch.tensor([[3.0, -4.0]]))
        online.bias.fill_(10.0)
        target.weight.copy_(torch.tensor([[1.0, 2.0]]))
        target.bias.fill_(0.0)
    update_target(target, online, tau=0.1)
    assert torch.allclose(target.weight, torch.tensor([[1.2, 1.4]]))  # 0.9 target + 0.1 online
    assert torch.allclose(target.bias, torch.tensor([1.0]))
    update_target(target, online, tau=1.0)
    assert torch.equal(target.weight, online.weight) and torch.equal(target.bias, online.bias)
    assert target.weight.data_ptr() != online.weight.data_ptr()  # a copy, not the same tensor


# -- the action table and its wrappers -----------------------------------------------------------

def test_action_table_is_every_combination_of_evenly_spaced_values() -> None:
    table = action_table(3, 2)
    assert table.shape == (9, 2) and table.dtype == np.float32
    assert table.tolist() == [[-1, -1], [-1, 0], [-1, 1], [0, -1], [0, 0], [0, 1], [1, -1],
                              [1, 0], [1, 1]]
    assert action_table(5, 1)[:, 0].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="integer >= 2.*got 1"):
        action_table(1, 1)
    with pytest.raises(ValueError, match="11 choices per dimension over 3 .* 1,331 discrete "
                                         "actions .* fewer choices"):
        action_table(11, 3)


def test_single_env_wrapper_sends_the_chosen_row() -> None:
    discrete, plain = make_env(FURUTA, discrete_actions=5), make_env(FURUTA)
    assert discrete.action_space == gym.spaces.Discrete(5)
    assert discrete.metadata["action_table"][:, 0].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    discrete.reset(seed=3)
    plain.reset(seed=3)
    for choice in (4, 0, 3):
        assert np.array_equal(discrete.step(choice)[0],
                              plain.step(np.array([2 * choice / 4 - 1], np.float32))[0])
    with pytest.raises(ValueError, match="action 5 is not one of the 5 choices"):
        discrete.step(5)
    with pytest.raises(ValueError, match="CartPole-v1 has Discrete\\(2\\). Drop discrete_actions"):
        make_env("CartPole-v1", discrete_actions=3)
    with pytest.raises(ValueError, match="continuous actions in \\[-1, 1\\]"):
        DiscreteActions(gym.make("Pendulum-v1"), 3)  # a Box in [-2, 2], not rescaled


@pytest.mark.parametrize("mode", ["batch", "sync"])
def test_vector_wrapper_sends_each_copys_row(mode: str) -> None:
    envs = record_episodes(make_vector_env(FURUTA, 3, mode=mode, discrete_actions=3))
    plain = make_vector_env(FURUTA, 3, mode=mode)
    assert envs.single_action_space == gym.spaces.Discrete(3)
    assert envs.action_space == gym.spaces.MultiDiscrete([3, 3, 3])
    # What DQN exports comes through gymnasium's episode statistics wrapper.
    assert envs.metadata["action_table"][:, 0].tolist() == [-1.0, 0.0, 1.0]
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    envs.reset(seed=0)
    plain.reset(seed=0)
    choices = np.array([0, 1, 2])
    assert np.array_equal(envs.step(choices)[0],
                          plain.step(np.array([[-1.0], [0.0], [1.0]], np.float32))[0])
    with pytest.raises(ValueError, match="3 integers in 0..2"):
        envs.step(np.array([0, 1, 3]))
    with pytest.raises(ValueError, match="CartPole-v1 has Discrete"):
        make_vector_env("CartPole-v1", 2, discrete_actions=3)


def test_an_exported_index_is_given_to_a_discrete_env_as_an_int() -> None:
    assert env_action(gym.spaces.Discrete(2), np.array([1.0], np.float32)) == 1
    row = np.array([0.5], np.float32)
    assert env_action(gym.spaces.Box(-1, 1, (1,)), row) is row


# -- refusals ------------------------------------------------------------------------------------

def test_sac_refuses_discretized_actions_and_dqn_continuous_ones(tmp_path) -> None:
    with pytest.raises(ValueError, match="^SAC needs a continuous"):
        sac.train(lambda n: make_vector_env(FURUTA, n, discrete_actions=5), sac.SACConfig(),
                  tmp_path / "sac", progress=False)
    with pytest.raises(ValueError, match="^DQN needs discrete actions .* Box.*"
                                         "--discrete-actions N"):
        dqn.train(lambda n: make_vector_env(FURUTA, n), DQNConfig(), tmp_path / "dqn",
                  progress=False)


def test_training_takes_discrete_actions_for_dqn_only(tmp_path) -> None:
    with pytest.raises(ValueError, match="--discrete-actions 5 turns continuous actions into "
                                         "choices for dqn; sac acts on the continuous actions "
                                         "themselves"):
        train_run(FURUTA, "sac", 100, 0, tmp_path / "run", None, discrete_actions=5)
    assert not (tmp_path / "run").exists()


# -- storage and resume --------------------------------------------------------------------------

class Countdown(gym.Env):
    """Observation: the step count. Choice 1 at count 2 ends the episode (terminated); the
    time limit ends it after 3 steps otherwise (truncated)."""

    observation_space = gym.spaces.Box(-np.inf, np.inf, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.count = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        terminated = self.count == 2 and action == 1
        self.count += 1
        return np.array([self.count], np.float32), 1.0, terminated, False, {}


def test_truncation_is_stored_as_not_terminal(tmp_path) -> None:
    config = DQNConfig(total_steps=60, num_envs=2, learning_starts=30, batch_size=8,
                       hidden_sizes=(8,), log_every=60, checkpoint_every=60, eval_every=0)
    dqn.train(sync_vector_env(lambda: gym.wrappers.TimeLimit(Countdown(), 3)), config, tmp_path,
              progress=False)
    stored = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["resume"]["buffer"]
    obs, action, next_obs = stored["obs"][:, 0], stored["actions"][:, 0], stored["next_obs"][:, 0]
    # Every stored next observation is its episode's own, also where the copy was reset.
    assert np.array_equal(next_obs, obs + 1)
    assert np.array_equal(stored["terminated"], (obs == 2) & (action == 1))
    assert ((obs == 2) & (action == 0)).any()  # time-limited transitions were stored


CRASH = {"after_steps": None, "steps": 0}
"""Module state the crashing env reads: a snapshot pickles the env by reference to it."""


class CrashAfter(gym.vector.VectorWrapper):
    """Raises once the training batch (4 copies; evaluation uses 3) took CRASH["after_steps"]."""

    def step(self, actions):
        CRASH["steps"] += self.num_envs == 4
        if CRASH["after_steps"] is not None and CRASH["steps"] > CRASH["after_steps"]:
            raise KeyboardInterrupt
        return self.env.step(actions)


def crashing_cartpole(n: int) -> gym.vector.VectorEnv:
    return CrashAfter(make_vector_env("CartPole-v1", n))


def metrics(run_dir) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in {"seconds", "steps_per_second", "update_ms"}}
            for row in csv.DictReader((run_dir / "metrics.csv").open())]


def test_crash_and_resume_gives_the_uninterrupted_learning_curve(tmp_path) -> None:
    """The buffer, the generator of the exploration, the target network and the envs
    mid-episode all come back: the resumed run is the uninterrupted one, digit for digit."""
    config = DQNConfig(total_steps=4 * 100, num_envs=4, learning_starts=100, batch_size=16,
                       hidden_sizes=(16, 16), target_update_interval=40, double_dqn=True,
                       exploration_fraction=0.5, log_every=40, checkpoint_every=200,
                       eval_every=200, eval_episodes=3)
    CRASH.update(after_steps=None, steps=0)
    dqn.train(crashing_cartpole, config, tmp_path / "whole", progress=False)
    CRASH.update(after_steps=70, steps=0)  # 280 env steps: after the checkpoint at 200
    with pytest.raises(KeyboardInterrupt):
        dqn.train(crashing_cartpole, config, tmp_path / "cut", progress=False)
    checkpoint = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    assert checkpoint["steps"] == 200
    CRASH.update(after_steps=None)
    dqn.train(crashing_cartpole, config, tmp_path / "cut", progress=False, resume=checkpoint)

    whole, resumed = metrics(tmp_path / "whole"), metrics(tmp_path / "cut")
    assert len(whole) == 10 and whole == resumed
    episodes = [(tmp_path / run / "episodes.jsonl").read_text() for run in ("whole", "cut")]
    assert episodes[0] == episodes[1]
    final = [torch.load(tmp_path / run / "checkpoint.pt", weights_only=False)["agent"]
             for run in ("whole", "cut")]
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])  # q_target too
    assert not torch.equal(final[0]["q_network.0.weight"], final[0]["q_target.0.weight"])


# -- export ----------------------------------------------------------------------------------------

TINY = dict(num_envs=1, learning_starts=100, batch_size=16, hidden_sizes=(16, 16), train_freq=1,
            gradient_steps=1, target_update_interval=50, log_every=300, checkpoint_every=300,
            eval_every=300, eval_episodes=2)
"""Over the tuned settings (policies/hyperparams/dqn.yaml): a few hundred cheap updates."""


def test_a_dqn_on_cartpole_exports_the_index_it_picks(tmp_path) -> None:
    run_dir = tmp_path / "run"
    train_run("CartPole-v1", "dqn", 300, 0, run_dir, None, progress=False, overrides=TINY)
    result = export(run_dir, check_count=100)
    assert result.onnx_error == 0.0 and result.pipeline_error == 0.0
    deployed = OnnxPolicy(result.path)
    assert deployed.contract.algorithm == "dqn" and deployed.contract.action_size == 1
    choices = deployed(np.random.default_rng(0).normal(0, 1, (200, 4)).astype(np.float32))
    assert choices.shape == (200, 1) and set(np.unique(choices)) <= {0.0, 1.0}
    for source in (run_dir, result.path):  # `sim2real eval` of the run and of the file
        assert evaluate_policy(source, None, 2)["episodes"] == 2


@pytest.mark.slow
def test_a_discretized_furuta_dqn_exports_continuous_voltages(tmp_path) -> None:
    """The exported policy outputs the table's row: a voltage in [-1, 1] as any policy, checked
    by export on the continuous env and deployed unchanged; resume and eval rebuild the env."""
    run_dir = tmp_path / "run"
    train_run(FURUTA, "dqn", 300, 0, run_dir, None, progress=False, overrides=TINY,
              discrete_actions=5)
    resume_run(run_dir, steps=600, progress=False)
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["steps"] == 600
    result = export(run_dir, check_count=200)
    assert result.onnx_error == 0.0 and result.pipeline_error == 0.0
    assert result.pipeline_steps > 3
    deployed = OnnxPolicy(result.path)
    assert deployed.contract.action_size == 1 and deployed.contract.robot["name"] == "furuta"
    voltages = deployed(np.random.default_rng(0).normal(0, 1, (300, 6)).astype(np.float32))
    assert voltages.shape == (300, 1) and set(np.unique(voltages)) <= {-1, -0.5, 0, 0.5, 1}
    for source in (run_dir, result.path):
        assert evaluate_policy(source, None, 2)["episodes"] == 2
    with pytest.raises(ValueError, match="trained with --discrete-actions 5, not with "
                                         "--discrete-actions 3"):
        resume_run(run_dir, steps=900, discrete_actions=3)


# -- learning ------------------------------------------------------------------------------------

def greedy_returns(policy: nn.Module, env_id: str, episodes: int = 10) -> dict:
    """The exported policy (`sim2real export --best`) on the plain env, from seeds other than
    those that chose it."""
    if env_id == "CartPole-v1":
        def act(obs: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return policy(torch.as_tensor(obs)[None])[0].numpy()

        result = run_episodes(make_env(env_id), act, episodes, seed=7)
        return {"eval_return": result["mean_return"], "eval_success_rate": None}
    return Evaluator(lambda n: make_vector_env(env_id, n), episodes, seed=7).evaluate(policy)


def train_and_evaluate(env_id: str, steps: int, tmp_path, discrete_actions: int | None = None,
                       **settings) -> dict:
    from policies.tuned import tuned_settings

    algorithm = algorithm_by_name("dqn")
    config = algorithm.config(total_steps=steps, seed=0,
                              **{**tuned_settings("dqn", env_id), **settings})
    start = time.perf_counter()
    algorithm.train(lambda n: make_vector_env(env_id, n, discrete_actions=discrete_actions),
                    config, tmp_path, progress=False)
    seconds = time.perf_counter() - start
    policy = algorithm.load_policy(torch.load(tmp_path / "best.pt", weights_only=False))
    result = greedy_returns(policy, env_id)
    print(f"dqn on {env_id}: {steps} steps in {seconds:.0f} s, best.pt returns "
          f"{result['eval_return']:.1f}, success {result['eval_success_rate']}")
    return result


@pytest.mark.slow
def test_dqn_solves_cartpole(tmp_path) -> None:
    """CartPole-v1 counts as solved at an average return of 475 (its reward threshold). The
    tuned settings, seed 0: evaluated 500 from 30k steps on; best.pt returned 500 on the fresh
    episodes. 24 s on one torch thread here, 40 s with a cold torch.compile cache."""
    result = train_and_evaluate("CartPole-v1", 50_000, tmp_path)
    assert result["eval_return"] >= 475, result


@pytest.mark.slow
def test_dqn_balances_the_furuta_pendulum_with_discretized_voltages(tmp_path) -> None:
    """Balanced means what the task's scripted controller test asks (tests/sim/test_furuta.py):
    every episode lasts its 5 s without the pendulum falling past 0.4 rad or the arm leaving its
    range, and ends upright (success), here on all 10 fresh episodes. A return threshold would
    say less: ~1250 is the most, but a policy that balances and drifts to the arm's stop at 4 s
    still collects ~1000. The tuned settings, seed 0: balanced from 35k steps on; best.pt
    returned 1246 with success 1.0. 26 s here, 39 s with a cold torch.compile cache."""
    result = train_and_evaluate(FURUTA, 50_000, tmp_path, discrete_actions=5)
    assert result["eval_success_rate"] == 1.0, result
