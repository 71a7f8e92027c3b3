"""The one training run every algorithm shares (policies/run.py), on a tiny fake env whose reward
is the action itself: the schedule of evaluations, rows and checkpoints, best.pt keeping the best
evaluation, an exact resume with the algorithm's own state, the stop on a NaN loss."""

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from policies.core import sync_vector_env
from policies.records import TrainingProgress
from policies.run import TrainingRun

LAST = 7
POLICY_ACTION = {2: 0.2, 3: 0.0, 4: 0.9, 5: 0.0, 6: 0.5, 7: -0.3}
"""What the policy evaluated after each iteration does; 3 steps an episode: eval_return 3x it."""


class ActionIsReward(gym.Env):
    """Episodes of 3 steps; the reward is the action."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,))
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple:
        super().reset(seed=seed)
        self.t = 0
        return self.np_random.uniform(-1, 1, 2).astype(np.float32), {}

    def step(self, action: np.ndarray) -> tuple:
        self.t += 1
        return (np.full(2, self.t / 3, np.float32), float(action[0]), False, self.t >= 3, {})


class Constant(nn.Module):
    def __init__(self, action: float) -> None:
        super().__init__()
        self.action = action

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.full((len(obs), 1), self.action)


@dataclass
class TinyConfig:
    num_envs: int = 2
    eval_every: int = 2
    eval_episodes: int = 2


def layout(envs: gym.vector.VectorEnv, algo: str) -> dict[str, Any]:
    return {"obs_size": envs.single_observation_space.shape[0], "action_size": 1}


def open_run(run_dir: Path, rows_at_checkpoints: bool, resume: dict[str, Any] | None = None,
             checkpoint_seconds: float = 60.0,
             on_evaluation: Any = None) -> tuple[TrainingRun, dict[str, int]]:
    """A run of a linear "agent" and its optimizer, keeping a counter of its own."""
    run = TrainingRun("tiny", TinyConfig(), sync_vector_env(ActionIsReward), run_dir,
                      {"env_id": "ActionIsReward"}, resume, layout, ["loss", "counter"],
                      eval_every=2, checkpoint_every=3, rows_at_checkpoints=rows_at_checkpoints,
                      checkpoint_seconds=checkpoint_seconds, on_evaluation=on_evaluation)
    torch.manual_seed(0)
    agent = nn.Linear(2, 1)
    counter = {"count": 0}
    run.keep(agent, {"agent": torch.optim.SGD(agent.parameters(), lr=0.1)},
             np.random.default_rng(0), lambda: {"counter": counter["count"]},
             lambda state: counter.update(count=state["counter"]))
    return run, counter


def train(run: TrainingRun, counter: dict[str, int], checkpoints: dict[int, dict]) -> None:
    """Iterations of one vector step each, acting from the run's generator; a copy of every
    checkpoint written is kept in `checkpoints`."""
    obs = run.begin(seed=3)
    with TrainingProgress(2 * LAST, "tiny", enabled=False) as bar:
        for iteration in range(run.first_iteration, LAST + 1):
            action = run.rng.uniform(-1, 1, (2, 1)).astype(np.float32)
            obs, _, _, _, info = run.envs.step(action)
            run.record(info)
            counter["count"] += 10
            run.after_iteration(
                iteration, iteration == LAST, obs, lambda i=iteration: Constant(POLICY_ACTION[i]),
                lambda i=iteration: {"loss": i / 10, "counter": counter["count"]}, bar,
                row_due=False)
            path = run.run_dir / "checkpoint.pt"
            if path.exists():
                checkpoints[iteration] = torch.load(path, weights_only=False)
    run.finish({"extra": 1})


def rows(run_dir: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k not in {"seconds", "steps_per_second"}}
            for row in csv.DictReader((run_dir / "metrics.csv").open())]


@pytest.mark.parametrize(("rows_at_checkpoints", "logged"),
                         [(True, [2, 3, 4, 6, 7]), (False, [2, 4, 6, 7])])
def test_evaluations_rows_and_checkpoints_fall_as_scheduled_and_best_is_kept(
        tmp_path, rows_at_checkpoints, logged) -> None:
    run, counter = open_run(tmp_path, rows_at_checkpoints)
    checkpoints: dict[int, dict] = {}
    train(run, counter, checkpoints)

    written = rows(tmp_path)
    assert [int(r["iteration"]) for r in written] == logged
    assert [int(r["steps"]) for r in written] == [2 * i for i in logged]
    evaluated = {int(r["iteration"]): float(r["eval_return"]) for r in written if r["eval_return"]}
    assert evaluated == pytest.approx({i: 3 * POLICY_ACTION[i] for i in (2, 4, 6, 7)})
    assert (tmp_path / "metrics.csv").read_text().splitlines()[0] == (
        "iteration,steps,seconds,steps_per_second,mean_return,success_rate,eval_return,"
        "eval_return_std,eval_success_rate,loss,counter")
    # Checkpoints every 3rd iteration and at the last; best.pt: the evaluation of iteration 4.
    assert [i for i, c in checkpoints.items() if c["resume"]["iteration"] == i] == [3, 6, 7]
    best = torch.load(tmp_path / "best.pt", weights_only=False)
    assert best["steps"] == 8 and best["evaluation"]["eval_return"] == pytest.approx(2.7)
    assert "resume" not in best and best["obs_size"] == 2 and best["algo"] == "tiny"
    final = checkpoints[7]
    assert final["resume"]["best_eval"] == pytest.approx(2.7) and final["resume"]["counter"] == 70
    assert final["metadata"]["env_id"] == "ActionIsReward"
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["status"] == "finished" and info["result"]["steps"] == 14
    assert info["result"]["extra"] == 1 and info["result"]["best_eval_return"] == pytest.approx(2.7)
    # Every episode of 3 steps in two copies over 14 steps: 4 of them, each line once.
    episodes = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert [(e["steps"], e["copy"], e["length"]) for e in episodes] == [
        (6, 0, 3), (6, 1, 3), (12, 0, 3), (12, 1, 3)]


def test_each_evaluation_is_reported_and_a_report_may_stop_the_run(tmp_path) -> None:
    reported: list[dict[str, Any]] = []
    run, counter = open_run(tmp_path / "whole", True, on_evaluation=reported.append)
    train(run, counter, {})
    assert [(r["iteration"], r["steps"]) for r in reported] == [(2, 4), (4, 8), (6, 12), (7, 14)]
    assert [r["eval_return"] for r in reported] == pytest.approx(
        [3 * POLICY_ACTION[i] for i in (2, 4, 6, 7)])

    class Stop(Exception):
        pass

    def stop_at_8_steps(row: dict[str, Any]) -> None:  # as a scheduler cuts a trailing trial
        if row["steps"] >= 8:
            raise Stop

    run, counter = open_run(tmp_path / "stopped", True, on_evaluation=stop_at_8_steps)
    with pytest.raises(Stop):
        train(run, counter, {})
    assert run.log.closed and run.envs.closed  # closed before the stop went on up
    assert [int(r["steps"]) for r in rows(tmp_path / "stopped")] == [4, 6, 8]
    stopped = torch.load(tmp_path / "stopped" / "checkpoint.pt", weights_only=False)
    assert stopped["steps"] == 6  # iteration 3's: a resume goes on from there


def test_a_resumed_run_writes_what_the_uninterrupted_one_did(tmp_path) -> None:
    run, counter = open_run(tmp_path / "whole", rows_at_checkpoints=True)
    checkpoints: dict[int, dict] = {}
    train(run, counter, checkpoints)

    # The cut run's files as they were at its checkpoint of iteration 3, plus a row and
    # episodes written after it (a crash before the next checkpoint).
    cut = tmp_path / "cut"
    run, counter = open_run(cut, rows_at_checkpoints=True)
    train(run, counter, {})
    resume = checkpoints[3]
    run, counter = open_run(cut, rows_at_checkpoints=True, resume=resume)
    assert counter["count"] == 0
    train(run, counter, {})
    assert run.first_iteration == 4 and counter["count"] == 70  # the algorithm's own state
    assert rows(cut) == rows(tmp_path / "whole")
    assert ((cut / "episodes.jsonl").read_text()
            == (tmp_path / "whole" / "episodes.jsonl").read_text())
    assert torch.load(cut / "best.pt", weights_only=False)["steps"] == 8


def test_a_checkpoint_falls_due_by_time_too_and_resumes_as_the_others(tmp_path) -> None:
    """checkpoint_seconds: a checkpoint is written too once that long has passed since the last
    (a nanosecond: after every iteration; 0: by iterations only); one written by time, between
    the scheduled ones, resumes to what the uninterrupted run wrote."""
    written = {}
    for seconds in (1e-9, 0.0):
        run, counter = open_run(tmp_path / str(seconds), rows_at_checkpoints=False,
                                checkpoint_seconds=seconds)
        written[seconds] = {}
        train(run, counter, written[seconds])
    assert [c["resume"]["iteration"] for c in written[1e-9].values()] == [1, 2, 3, 4, 5, 6, 7]
    assert [i for i, c in written[0.0].items() if c["resume"]["iteration"] == i] == [3, 6, 7]
    cut = tmp_path / "cut"
    run, counter = open_run(cut, rows_at_checkpoints=False)
    train(run, counter, {})
    run, counter = open_run(cut, rows_at_checkpoints=False, resume=written[1e-9][2])
    train(run, counter, {})
    assert run.first_iteration == 3 and counter["count"] == 70
    assert rows(cut) == rows(tmp_path / "0.0")


def test_a_nan_loss_stops_the_run_naming_its_last_good_checkpoint(tmp_path) -> None:
    run, counter = open_run(tmp_path, rows_at_checkpoints=True)
    run.begin(seed=3)
    with pytest.raises(FloatingPointError, match="TINY loss became nan at step 0; no checkpoint"):
        run.stop("loss became nan")
    run, counter = open_run(tmp_path / "later", rows_at_checkpoints=True)
    train(run, counter, {})
    run, counter = open_run(tmp_path / "later", rows_at_checkpoints=True,
                            resume=torch.load(tmp_path / "later" / "checkpoint.pt",
                                              weights_only=False))
    run.begin(seed=3)
    with pytest.raises(FloatingPointError, match=r"at step 14; the last good checkpoint is .*"
                                                 r"checkpoint.pt\. Lower the learning rate"):
        run.stop("losses became {'loss': nan}")
