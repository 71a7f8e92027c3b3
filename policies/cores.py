"""How many torch threads a run's updates get, and whether other processes share its cores.

Two torch threads take an off-policy update from 4.2 to 3.0 ms on an idle 2-core machine (SAC,
InvertedPendulum, compiled). But when another process keeps a core busy, the threads of a
parallel product wait on each other: a critic step went from 2.5 ms to 380 ms. So an automatic
setting (torch_threads 0) starts on every core the process may use and drops to one thread for
the rest of the run as soon as other processes keep half a core busy (`CoreWatch`, from
/proc/stat on Linux).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sim.cores import usable_cores

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
OTHERS_BUSY_CORES = 0.5
"""Other processes' CPU use, in cores, from which a run's threads contend with them."""
WATCH_SECONDS = 0.25
"""How often the watch looks: a contended update can take 100x its time, so not rarely."""


def torch_threads_for(setting: int) -> int:
    """A config's torch_threads: 0 is every usable core, else as given."""
    if setting < 0:
        raise ValueError(f"torch_threads must be >= 0 (0: every core), got {setting}")
    return setting or usable_cores()


def _machine_and_own_seconds() -> tuple[float, float] | None:
    """Busy CPU seconds of the whole machine (every process) and of this one, so far; None
    where /proc/stat is not."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal: all but idle and iowait are busy (steal:
    # the hypervisor ran another machine on our core).
    busy = (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS
    own = os.times()
    return busy, own.user + own.system


class CoreWatch:
    """Example:
        >>> watch = CoreWatch()
        >>> ...  # work
        >>> watch.others_busy()  # cores other processes kept busy since the last look, or None

    None also when less than WATCH_SECONDS passed since the last look (not enough ticks to
    tell) or where /proc/stat is not (then it never tells)."""

    def __init__(self) -> None:
        self.restart()

    def restart(self) -> None:
        """Look again from now (after work whose helper processes are the run's own: the
        compiler's)."""
        self._when, self._seconds = time.monotonic(), _machine_and_own_seconds()

    def others_busy(self) -> float | None:
        now = time.monotonic()
        if self._seconds is None or now - self._when < WATCH_SECONDS:
            return None
        seconds = _machine_and_own_seconds()
        if seconds is None:
            return None
        (busy, own), (busy_before, own_before) = seconds, self._seconds
        others = max(0.0, (busy - busy_before) - (own - own_before)) / (now - self._when)
        self._when, self._seconds = now, seconds
        return others
