"""Torch threads for a run's updates: every core by default, one when other processes share
them (policies/cores.py), and an off-policy run that moves to one thread mid-run."""

import json
import subprocess
import sys
import time

import pytest

from policies import td3
from policies.core import sync_vector_env
from policies.cores import OTHERS_BUSY_CORES, WATCH_SECONDS, CoreWatch, torch_threads_for
from randomization.envs import make_env
from sim.cores import usable_cores

BUSY = [sys.executable, "-c", "while True: pass"]
"""Another process keeping one core busy."""


def test_zero_threads_is_every_usable_core_and_a_negative_count_is_refused() -> None:
    assert torch_threads_for(0) == usable_cores() >= 1
    assert torch_threads_for(3) == 3
    with pytest.raises(ValueError, match="torch_threads must be >= 0.*got -1"):
        torch_threads_for(-1)
    with pytest.raises(ValueError, match="torch_threads"):
        td3.TD3Config(torch_threads=-2)


@pytest.mark.slow  # keeps a core busy for a second
def test_the_watch_sees_another_process_keep_a_core_busy() -> None:
    watch = CoreWatch()
    assert watch.others_busy() is None  # too soon to tell
    busy = subprocess.Popen(BUSY)
    try:
        time.sleep(0.2)  # the child's start (imports) counted too: it is another process
        watch.restart()
        time.sleep(2 * WATCH_SECONDS)
        others = watch.others_busy()
    finally:
        busy.kill()
        busy.wait()
    assert others is not None and others >= OTHERS_BUSY_CORES, others  # about one core
    # This process's own work is not another's.
    watch.restart()
    end = time.monotonic() + 2 * WATCH_SECONDS
    while time.monotonic() < end:
        pass
    own = watch.others_busy()
    assert own is not None and own < OTHERS_BUSY_CORES, own


@pytest.mark.slow
@pytest.mark.skipif(usable_cores() < 2, reason="one core: nothing to drop")
def test_a_run_on_every_core_goes_on_with_one_thread_when_another_process_takes_a_core(
        tmp_path) -> None:
    def pendulum():
        return make_env("InvertedPendulum-v5")

    config = td3.TD3Config(total_steps=600, learning_starts=100, batch_size=32, hidden_sizes=(32, 32),
                           eval_every=0, compile="never", num_envs=1, seed=0)
    assert config.torch_threads == 0
    busy = subprocess.Popen(BUSY)
    try:
        result = td3.train(sync_vector_env(pendulum), config, tmp_path / "shared", progress=False)
    finally:
        busy.kill()
        busy.wait()
    assert result["torch_threads"] == 1
    assert json.loads((tmp_path / "shared" / "run.json").read_text())["result"]["torch_threads"] == 1
    # Asked for, two threads stay two.
    fixed = td3.train(sync_vector_env(pendulum), td3.TD3Config(**{**config.__dict__, "torch_threads": 2}),
                      tmp_path / "fixed", progress=False)
    assert fixed["torch_threads"] == 2
