"""A sweep joins a running Ray cluster by its address (`--ray HOST:PORT`), as on a cluster of
machines: here a head started with `ray start --head` on this one."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from test_sweep_file import BALANCE, free_port

pytestmark = pytest.mark.slow


@pytest.fixture
def ray_head():
    """`ray start --head` in its own process group, stopped (with every process it started) by
    Ctrl-C; `ray stop` would stop any other Ray of this machine too."""
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
    os.killpg(head.pid, signal.SIGINT)
    try:
        head.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)


def test_a_sweep_joins_a_running_cluster_by_its_address(ray_head: str, tmp_path: Path) -> None:
    sweep = tmp_path / "balance.yaml"
    sweep.write_text(yaml.safe_dump({"env": BALANCE, "steps": 4096, "seeds": [0, 1],
                                     "set": {"eval_every": 2}}))
    # The head's token (Ray >= 2.59 starts clusters with one) from its default file.
    done = subprocess.run([sys.executable, "-m", "sim2real.cli", "sweep", str(sweep), "--ray",
                           ray_head, "--out", str(tmp_path / "out")], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "RAY_AUTH_MODE": "token"})
    assert done.returncode == 0, done.stderr[-3000:]
    with (tmp_path / "out" / "sweep.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["trial"], r["status"], r["steps"]) for r in rows] == [
        ("s00-seed0", "finished", "4096"), ("s00-seed1", "finished", "4096")]
    assert "ended (2/2)" in done.stdout

