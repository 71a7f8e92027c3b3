"""A run that crashes and resumes from its checkpoint learns exactly as one that never stopped;
periodic evaluation keeps the best model; logs go to TensorBoard too."""

import csv
import json
import subprocess
import sys
import time

import gymnasium as gym
import pytest
import torch

from deploy.export import export
from deploy.onnx_policy import OnnxPolicy
from policies.algorithms import algorithm_by_name
from policies.ppo import PPOConfig, train
from randomization.config import load_config
from randomization.envs import make_vector_env
from sim2real.runs import resume_run

REACH = "sim2real/ArmReach-v0"
CRASH = {"after_steps": None, "steps": 0}
"""Module state the crashing env reads: a snapshot pickles the env by reference to it."""


class CrashAfter(gym.vector.VectorWrapper):
    """Raises (a power cut, a Ctrl-C) once the training batch (4 copies; evaluation uses 3) has
    taken CRASH["after_steps"] steps."""

    def step(self, actions):
        CRASH["steps"] += self.num_envs == 4
        if CRASH["after_steps"] is not None and CRASH["steps"] > CRASH["after_steps"]:
            raise KeyboardInterrupt
        return self.env.step(actions)


def factory(n: int) -> gym.vector.VectorEnv:
    return CrashAfter(make_vector_env(REACH, n, load_config("default", "so_arm")))


CONFIG = dict(total_steps=6 * 4 * 32, num_envs=4, rollout_steps=32, epochs=2, minibatch_size=64,
              hidden_sizes=(32, 32), checkpoint_every=2, eval_every=2, eval_episodes=3)
TIMELESS = {"seconds", "steps_per_second", "update_ms"}


def metrics(run_dir) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in TIMELESS}
            for row in csv.DictReader((run_dir / "metrics.csv").open())]


@pytest.mark.slow  # 1.5 s each: the fast subset keeps under a minute
@pytest.mark.parametrize("scale_rewards", [False, True])
def test_crash_and_resume_gives_the_uninterrupted_learning_curve(tmp_path, scale_rewards) -> None:
    """With reward scaling the scaler's running returns and statistics come back too."""
    metadata = {"env_id": REACH, "randomization": load_config("default", "so_arm").to_dict()}
    config = PPOConfig(**CONFIG, scale_rewards=scale_rewards)
    CRASH.update(after_steps=None, steps=0)
    train(factory, config, tmp_path / "whole", metadata, progress=False)

    CRASH.update(after_steps=4 * 32 + 10, steps=0)  # mid-rollout of iteration 5
    with pytest.raises(KeyboardInterrupt):
        train(factory, config, tmp_path / "cut", metadata, progress=False)
    assert len(metrics(tmp_path / "cut")) == 4  # its last checkpoint: iteration 4
    CRASH.update(after_steps=None)
    checkpoint = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    assert checkpoint["resume"]["iteration"] == 4
    assert (checkpoint["resume"]["reward_scaler"] is not None) == scale_rewards
    train(factory, config, tmp_path / "cut", metadata, progress=False, resume=checkpoint)

    whole, resumed = metrics(tmp_path / "whole"), metrics(tmp_path / "cut")
    assert len(whole) == len(resumed) == 6
    assert whole == resumed  # returns, losses, KL, eval, every digit
    episodes = [(tmp_path / run / "episodes.jsonl").read_text() for run in ("whole", "cut")]
    assert episodes[0] == episodes[1]
    final = [torch.load(tmp_path / run / "checkpoint.pt", weights_only=False)["agent"]
             for run in ("whole", "cut")]
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])


ON_POLICY = {
    "a2c": dict(total_steps=6 * 4 * 8, num_envs=4, rollout_steps=8, log_every=32),
    "trpo": dict(total_steps=6 * 4 * 32, num_envs=4, rollout_steps=32, critic_epochs=2,
                 critic_minibatch_size=64),
    "reinforce": dict(total_steps=6 * 4 * 100, num_envs=4, batch_steps=100, max_episode_steps=100,
                      baseline_epochs=2),
}


@pytest.mark.slow
@pytest.mark.parametrize("algo", list(ON_POLICY))
def test_a2c_trpo_reinforce_crash_and_resume_give_the_uninterrupted_learning_curve(
        tmp_path, algo) -> None:
    """On the shared on-policy core, as PPO: the envs mid-episode (or, for REINFORCE, the
    generator that seeds its fresh episodes), the generators and the statistics come back."""
    algorithm = algorithm_by_name(algo)
    config = algorithm.config(**ON_POLICY[algo], hidden_sizes=(32, 32), checkpoint_every=2,
                              eval_every=2, eval_episodes=3)
    metadata = {"env_id": REACH, "randomization": load_config("default", "so_arm").to_dict()}
    CRASH.update(after_steps=None, steps=0)
    algorithm.train(factory, config, tmp_path / "whole", metadata, progress=False)
    whole = metrics(tmp_path / "whole")
    assert len(whole) >= 5
    # Crash a few vector steps into iteration 5, after the checkpoint of iteration 4.
    CRASH.update(after_steps=int(whole[3]["steps"]) // 4 + 3, steps=0)
    with pytest.raises(KeyboardInterrupt):
        algorithm.train(factory, config, tmp_path / "cut", metadata, progress=False)
    checkpoint = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    assert checkpoint["resume"]["iteration"] == 4
    CRASH.update(after_steps=None)
    algorithm.train(factory, config, tmp_path / "cut", metadata, progress=False,
                    resume=checkpoint)
    assert metrics(tmp_path / "cut") == whole
    final = [torch.load(tmp_path / run / "checkpoint.pt", weights_only=False)["agent"]
             for run in ("whole", "cut")]
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])


OFF_POLICY = dict(total_steps=4 * 100, num_envs=4, learning_starts=100, batch_size=32,
                  hidden_sizes=(32, 32), log_every=40, checkpoint_every=200, eval_every=200,
                  eval_episodes=3, compile="never")


@pytest.mark.slow  # tests/policies/test_run.py checks the shared resume on a fake env, fast
@pytest.mark.parametrize(("algo", "changes"), [
    ("sac", {"anneal_lr": True}), ("td3", {"exploration_noise": "ornstein_uhlenbeck"}),
    ("ddpg", {})])
def test_off_policy_crash_and_resume_gives_the_uninterrupted_learning_curve(
        tmp_path, algo, changes) -> None:
    """The replay buffer, the generators, the exploration noise's state and the envs
    mid-episode all come back: the resumed run is the uninterrupted one, digit for digit."""
    algorithm = algorithm_by_name(algo)
    config = algorithm.config(**OFF_POLICY, **changes)
    metadata = {"env_id": REACH, "randomization": load_config("default", "so_arm").to_dict()}
    CRASH.update(after_steps=None, steps=0)
    algorithm.train(factory, config, tmp_path / "whole", metadata, progress=False)

    CRASH.update(after_steps=70, steps=0)  # 280 env steps: after the checkpoint at 200
    with pytest.raises(KeyboardInterrupt):
        algorithm.train(factory, config, tmp_path / "cut", metadata, progress=False)
    checkpoint = torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=False)
    assert checkpoint["steps"] == 200 and len(checkpoint["resume"]["buffer"]["obs"]) == 200
    CRASH.update(after_steps=None)
    algorithm.train(factory, config, tmp_path / "cut", metadata, progress=False,
                    resume=checkpoint)

    whole, resumed = metrics(tmp_path / "whole"), metrics(tmp_path / "cut")
    assert len(whole) == 10 and whole == resumed
    episodes = [(tmp_path / run / "episodes.jsonl").read_text() for run in ("whole", "cut")]
    assert episodes[0] == episodes[1]
    final = [torch.load(tmp_path / run / "checkpoint.pt", weights_only=False)
             for run in ("whole", "cut")]
    assert all(torch.equal(final[0]["agent"][k], final[1]["agent"][k]) for k in final[0]["agent"])
    # One update a vector step from step 100 (vector step 25) to 400 (vector step 100).
    assert final[1]["resume"]["updates"] == final[0]["resume"]["updates"] == 76


def test_evaluation_keeps_the_best_model_and_logs_to_tensorboard(tmp_path) -> None:
    config = PPOConfig(**{**CONFIG, "total_steps": 4 * 4 * 32})
    train(lambda n: make_vector_env(REACH, n), config, tmp_path, {"env_id": REACH},
          progress=False)
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    evaluated = [row for row in rows if row["eval_return"]]
    assert [int(row["iteration"]) for row in evaluated] == [2, 4]
    best = torch.load(tmp_path / "best.pt", weights_only=False)
    assert best["evaluation"]["eval_return"] == max(float(r["eval_return"]) for r in evaluated)
    assert any(path.name.startswith("events.out.tfevents")
               for path in (tmp_path / "tensorboard").iterdir())
    result = export(tmp_path, tmp_path / "best.onnx", check_count=50, which="best")
    path, error = result.path, result.onnx_error
    assert error < 1e-5
    contract = OnnxPolicy(path).contract
    assert contract.steps == best["steps"] <= int(rows[-1]["steps"])


def test_export_of_best_needs_an_evaluation(tiny_run, tmp_path) -> None:
    for name in ("checkpoint.pt", "run.json"):  # a run whose evaluation never ran
        (tmp_path / name).write_bytes((tiny_run / name).read_bytes())
    with pytest.raises(FileNotFoundError, match="has no best.pt; no evaluation has run yet"):
        export(tmp_path, which="best")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim2real.cli", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow  # about 15 s: two processes start torch and the envs
def test_a_killed_run_resumes_from_its_checkpoint_by_time(tmp_path) -> None:
    """Killed (SIGKILL, no chance to save) between checkpoints by iterations, a run has lost at
    most checkpoint_seconds: `train --resume` goes on from the step its checkpoint by time
    saved, and the logs continue from there."""
    run_dir, seconds = tmp_path / "run", 3.0
    settings = {"checkpoint_seconds": seconds, "checkpoint_every": 1000, "eval_every": 0}
    process = subprocess.Popen(
        [sys.executable, "-m", "sim2real.cli", "train", "--env", REACH, "--steps", "10000000",
         "--out", str(run_dir), "--quiet", "--set", json.dumps(settings)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    checkpoint = run_dir / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.kill()  # SIGKILL
    _, err = process.communicate()
    assert checkpoint.exists(), err
    saved = torch.load(checkpoint, weights_only=False)
    steps, iteration = saved["steps"], saved["resume"]["iteration"]
    assert 0 < iteration < 1000 and saved["resume"]["seconds"] >= seconds  # written by time
    out = run_cli("train", "--resume", str(run_dir), "--steps", str(steps + 1024), "--quiet")
    assert out.returncode == 0, out.stderr
    assert f"resumed {run_dir}: {steps + 1024} steps" in out.stdout
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    assert [int(r["iteration"]) for r in rows] == list(range(1, iteration + 2))
    assert int(rows[-2]["steps"]) == steps and int(rows[-1]["steps"]) == steps + 1024
    assert json.loads((run_dir / "run.json").read_text())["status"] == "finished"


@pytest.mark.slow
def test_resume_and_eval_through_the_cli(tmp_path, tiny_run) -> None:
    run_dir = tmp_path / "run"
    out = run_cli("train", "--env", REACH, "--steps", "256", "--out", str(run_dir), "--quiet",
                  "--set", '{"num_envs": 2, "epochs": 1}')
    assert out.returncode == 0, out.stderr
    out = run_cli("train", "--resume", str(run_dir), "--steps", "512", "--quiet")
    assert out.returncode == 0, out.stderr
    assert int(list(csv.DictReader((run_dir / "metrics.csv").open()))[-1]["steps"]) == 512
    out = run_cli("eval", str(run_dir), "--episodes", "3", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["env"] == REACH and report["episodes"] == 3 and 0 <= report["success_rate"] <= 1


@pytest.mark.parametrize(("given", "message"), [
    ({"env_id": "InvertedPendulum-v5"}, "was trained on 'sim2real/ArmReach-v0', not"),
    ({"algo": "sac"}, "was trained with 'ppo', not 'sac'"),
    ({"steps": 10}, "already trained"),
])
def test_resume_refuses_another_env_algorithm_or_a_spent_budget(tiny_run, given, message) -> None:
    with pytest.raises(ValueError, match=message):
        resume_run(tiny_run, **given)
