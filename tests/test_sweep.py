"""Many runs on Ray: a sweep's trials and a robustness grid's cells give what the same work gives
one after another without Ray, and a trial whose worker is killed goes on from its checkpoint."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from test_sweep_file import BALANCE, free_port

from sim2real.sweep import run_on_ray, run_serially
from sim2real.sweep_file import load_sweep

pytestmark = pytest.mark.slow
SHORT = {"eval_every": 2, "checkpoint_every": 2, "eval_episodes": 5}
"""PPO iterations of 1,024 steps: an evaluation and a checkpoint every 2."""
COMPARED = ("steps", "mean_return", "success_rate", "eval_return", "eval_success_rate")


@pytest.fixture(scope="module")
def local_ray():
    """Ray on this machine's 2 CPUs, with a small object store, for the tests that call the
    library (start_ray uses a Ray already started)."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=2, object_store_memory=100 * 2**20,
             include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def ray_head():
    """`ray start --head` in its own process group, stopped with every process it started
    (`ray stop` would stop any other Ray of this machine too)."""
    pytest.importorskip("ray")
    port = free_port()
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--port",
                             str(port), "--num-cpus", "2", "--object-store-memory", "100000000",
                             "--include-dashboard", "false", "--block"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or head.poll() is not None:
                head.kill()
                pytest.fail("ray start --head did not listen within 60 s")
            time.sleep(0.2)
    yield f"127.0.0.1:{port}"
    # Ctrl-C stops it in a second when the machine is idle, but took 30 s in a busy CI run: the
    # head, its raylet, GCS and workers are one process group, killed at once.
    os.killpg(head.pid, signal.SIGKILL)
    head.wait(10)


def sweep_file(tmp_path: Path, **changes) -> Path:
    path = tmp_path / "balance.yaml"
    path.write_text(yaml.safe_dump({"env": BALANCE, "algo": "ppo", "steps": 8192, "seeds": [0, 1],
                                    "set": {"learning_rate": [3e-4, 1e-3], **SHORT}, **changes}))
    return path


def metrics(run_dir: Path) -> list[tuple[str, ...]]:
    with (run_dir / "metrics.csv").open() as handle:
        return [tuple(row[c] for c in COMPARED) for row in csv.DictReader(handle)]


def test_a_sweep_on_ray_equals_the_same_trainings_one_after_another(ray_head: str,
                                                                    tmp_path: Path) -> None:
    """The command as a user runs it on a cluster, joining it by its address: here a `ray start
    --head` of this machine (the README's test runs a sweep on a Ray started by the command)."""
    from evaluation.episodes import load_policy

    path = sweep_file(tmp_path)
    # The head's token (Ray >= 2.59 starts clusters with one) from its default file.
    done = subprocess.run([sys.executable, "-m", "sim2real.cli", "sweep", str(path), "--ray",
                           ray_head, "--out", str(tmp_path / "on_ray")], capture_output=True,
                          text=True, timeout=600, env={**os.environ, "RAY_AUTH_MODE": "token"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ended (4/4)" in done.stdout and "Best setting" in done.stdout
    serial = run_serially(load_sweep(path), tmp_path / "serial", progress=False)
    assert len(serial["rows"]) == 4
    for row in serial["rows"]:
        on_ray = metrics(tmp_path / "on_ray" / "trials" / row["trial"])
        assert on_ray == metrics(tmp_path / "serial" / "trials" / row["trial"]), row["trial"]
        assert len(on_ray) == 8 and on_ray[-1][0] == "8192"
    # The two sweeps' tables agree but for the wall times.
    with (tmp_path / "on_ray" / "sweep.csv").open() as a, (tmp_path / "serial" / "sweep.csv").open() as b:
        ray_rows, serial_rows = list(csv.DictReader(a)), list(csv.DictReader(b))
    for ray_row, serial_row in zip(ray_rows, serial_rows, strict=True):
        assert ray_row.pop("seconds") and serial_row.pop("seconds")
        assert ray_row == serial_row and ray_row["status"] == "finished"
    assert {r["eval_return"] for r in ray_rows} != {""}
    summary = (tmp_path / "on_ray" / "sweep.md").read_text()
    assert "| s01-seed1 | learning_rate=0.001 | finished | 8,192 |" in summary
    curves = tmp_path / "on_ray" / "sweep_curves.png"
    assert curves.stat().st_size > 20_000
    best = load_policy(tmp_path / "on_ray" / "best" / "policy.onnx")
    assert best.trained_on == BALANCE
    assert serial["best"]["trial"] in summary


def test_a_killed_worker_s_trial_goes_on_from_its_checkpoint(local_ray, tmp_path: Path) -> None:
    path = sweep_file(tmp_path, steps=24_576, seeds=[0], set={"learning_rate": 3e-4, **SHORT})
    plan = load_sweep(path)
    out = tmp_path / "on_ray"
    attempts = out / "trials" / "s00-seed0.json"
    checkpoint = out / "trials" / "s00-seed0" / "checkpoint.pt"
    killed: list[int] = []

    def kill_once_it_checkpointed() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if attempts.is_file() and checkpoint.is_file():
                rows = metrics(checkpoint.parent)
                if len(rows) >= 6:  # a few checkpoints in, well before the end (24)
                    pid = json.loads(attempts.read_text())["attempts"][0]["pid"]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(int(rows[-1][0]))
                    return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_once_it_checkpointed, daemon=True)
    killer.start()
    result = run_on_ray(plan, out, progress=False)
    killer.join(timeout=1)
    assert killed, "the trial ended before it could be killed"
    record = json.loads(attempts.read_text())["attempts"]
    assert len(record) == 2 and record[0]["pid"] != record[1]["pid"]
    resumed_from = record[1]["resumed_from"]
    assert 0 < resumed_from <= killed[0] < 24_576
    (row,) = result["rows"]
    assert row["status"] == "finished" and row["steps"] == 24_576 and row["attempts"] == 2
    # Resumed exactly: the same numbers as the training never interrupted.
    run_serially(plan, tmp_path / "serial", progress=False)
    assert metrics(checkpoint.parent) == metrics(tmp_path / "serial" / "trials" / "s00-seed0")


def test_a_robustness_grid_on_ray_writes_the_serial_csv(local_ray, balance_policy: Path,
                                                        tmp_path: Path) -> None:
    from sim2real.cli import main

    # The exported policy (onnxruntime) and its run dir (torch), each loaded in Ray's workers.
    common = [str(balance_policy), str(balance_policy.parent), "--vary", "mass=0.5:2.0:3",
              "--vary", "action_delay=0,3", "--episodes", "5", "--quiet"]
    main(["robustness", *common, "--out", str(tmp_path / "serial")])
    main(["robustness", *common, "--out", str(tmp_path / "on_ray"), "--ray"])
    serial = (tmp_path / "serial" / "robustness.csv").read_text()
    assert (tmp_path / "on_ray" / "robustness.csv").read_text() == serial
    assert (tmp_path / "on_ray" / "robustness.md").read_text() == (
        tmp_path / "serial" / "robustness.md").read_text()
    returns = [row["mean_return"] for row in csv.DictReader(serial.splitlines())]
    assert len(returns) == 12 and len(set(returns)) > 6  # the cells differ: a grid that could disagree


def test_early_stopping_cuts_the_trials_that_trail(local_ray, tmp_path: Path) -> None:
    """One trial at a time (2 CPUs each), the learning setting first: at 16,384 steps ASHA keeps
    the top half of the trials that got there, and the setting that cannot learn (a learning
    rate of 1e-9: evaluation return 75 against 140, measured) is below it."""
    path = sweep_file(tmp_path, steps=32_768, cpus_per_trial=2, seeds=[0],
                      set={"learning_rate": [1e-3, 1e-9], "eval_every": 4, "eval_episodes": 5},
                      early_stop={"metric": "eval_return", "grace_steps": 16_384,
                                  "reduction_factor": 2})
    result = run_on_ray(load_sweep(path), tmp_path / "on_ray", progress=False)
    status = {row["trial"]: (row["status"], row["steps"]) for row in result["rows"]}
    assert status == {"s00-seed0": ("finished", 32_768), "s01-seed0": ("stopped early", 16_384)}
    assert result["best"]["setting"] == 0
    assert "| s01-seed0 | learning_rate=1e-09 | stopped early | 16,384 |" in (
        tmp_path / "on_ray" / "sweep.md").read_text()
