"""Ray, for many runs: started on this machine's cores, or joined to a running cluster by its
address (`--ray ADDRESS`, as `ray start --head` prints it). Ray is an optional extra:
`pip install -e ".[cluster]"`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

from sim2real.parsing import MissingExtra

LOCAL_OBJECT_STORE_BYTES = 128 * 2**20
"""Sweeps and robustness grids pass settings and results through Ray's object store, never
arrays: a small store leaves the memory to the trainings."""


def import_ray() -> Any:
    try:
        import ray
        import ray.tune  # ray without its tune extra cannot sweep
    except ImportError:
        raise MissingExtra("this needs Ray, the `cluster` extra: pip install -e \".[cluster]\" "
                           "(or pip install \"ray[tune]\")") from None
    return ray


def start_ray(address: str | None = None) -> Any:
    """Ray, ready: joined to the cluster at `address`, or started on the cores this process may
    use. A Ray the caller already started (a test's, a notebook's) is used as it is."""
    from sim.cores import usable_cores

    ray = import_ray()
    if ray.is_initialized():
        return ray
    # Tune's classic reporter prints nothing at verbose 0; the new one still prints a table.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    if address:
        check_answers(address)
        try:
            ray.init(address=address, **quiet)
        except ConnectionError as error:
            raise ConnectionError(
                f"could not join the Ray cluster at {address} ({error}); a cluster started by Ray "
                "2.59 or later wants its token: set RAY_AUTH_MODE=token and the head's token "
                "(`ray get-auth-token` there) in RAY_AUTH_TOKEN or ~/.ray/auth_token; on the head "
                "machine itself, --ray auto joins it") from None
    else:
        # "local": a Ray of its own, even where a `ray start` cluster runs on this machine too.
        ray.init(address="local", num_cpus=usable_cores(),
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet)
    return ray


def check_answers(address: str, timeout: float = 5.0) -> None:
    """Refuse, in seconds rather than Ray's minutes of retries, a HOST:PORT where nothing
    listens. Other addresses (`auto`, `ray://...`) go to Ray as they are."""
    host, sep, port = address.rpartition(":")
    if not sep or "/" in address or not port.isdigit():
        return
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except OSError as error:
        raise ConnectionError(f"no Ray cluster answers at {address} ({error.strerror or error}); "
                              "start one there with `ray start --head --port PORT`, give its "
                              "address as `ray start` printed it, or leave out --ray to use "
                              "this machine") from None


def on_ray(address: str | None) -> Callable[[Callable[..., Any], list[tuple]], Iterator[Any]]:
    """A job runner for evaluation/robustness.py: each job `func(*args)` a Ray task of one CPU,
    the results yielded in the jobs' order, so the output is the serial one's."""

    def run(func: Callable[..., Any], jobs: list[tuple]) -> Iterator[Any]:
        ray = start_ray(address)
        remote = ray.remote(num_cpus=1)(func)
        refs = [remote.remote(*job) for job in jobs]
        for ref in refs:
            yield ray.get(ref)

    return run
