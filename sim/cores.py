"""How many cores this process may use: what sizes the physics threads and, left automatic, the
torch threads of a run."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a container's or taskset's share), and
    no more than the OMP_NUM_THREADS a scheduler gave it: Ray sets it to a task's or trial's
    CPUs (as do Slurm setups), and torch's own thread count follows it too. Two trials of a
    sweep on a 2-core machine then take one core each instead of fighting over both."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    share = os.environ.get("OMP_NUM_THREADS", "")
    return min(cores, int(share)) if share.isdigit() and int(share) >= 1 else cores
