"""The control loop's clock: absolute deadlines one period apart, deadline misses, period jitter,
the time each stage of a cycle takes, and the real-time scheduling asked of the OS. Times are
`time.perf_counter()` seconds, passed in, so a test can feed its own. numpy only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from deploy.realtime import request_realtime

# Sleep until this close to a deadline, then spin: OS sleeps overshoot by ~0.1 ms.
SPIN_SECONDS = 0.0005


def sleep_until(deadline: float) -> None:
    remaining = deadline - time.perf_counter()
    if remaining > SPIN_SECONDS:
        time.sleep(remaining - SPIN_SECONDS)
    while time.perf_counter() < deadline:
        pass


class Schedule:
    """Deadlines at `start + k * period`, never drifting: a cycle that overruns the next deadline
    is a miss, and the periods it cost are skipped, not bunched.

    Example:
        >>> schedule = Schedule(0.02, start=10.0)
        >>> elapsed, late = schedule.begin(10.0001)   # (0.0001, 0.0001)
        >>> schedule.advance(10.005)                   # work done: next deadline 10.02, no miss
        False
    """

    def __init__(self, period: float, start: float) -> None:
        if period <= 0:
            raise ValueError(f"control period {period} s must be positive")
        self.period = period
        self.start = start
        self.deadline = start
        """When the current (or next, after `advance`) cycle is due."""
        self.misses = 0
        self.starts: list[float] = []

    def begin(self, now: float) -> tuple[float, float]:
        """A cycle starts at `now`: (seconds since the start, lateness past its deadline)."""
        self.starts.append(now)
        return now - self.start, now - self.deadline

    def advance(self, now: float) -> bool:
        """The cycle's work ended at `now`: move to the next deadline; True if `now` is past it."""
        self.deadline += self.period
        missed = now > self.deadline
        if missed:
            self.misses += 1
            self.deadline += self.period * int((now - self.deadline) / self.period)
        return missed

    def jitter_p99_us(self) -> float:
        """99th percentile of |interval between cycle starts - period|, in us; a missed
        deadline (an interval of two periods or more) counts in full."""
        if len(self.starts) < 2:
            return 0.0
        return float(np.percentile(np.abs(np.diff(self.starts) - self.period), 99) * 1e6)


class StageTimes:
    """Seconds each stage of each cycle took, and the loop's own compute on policy cycles."""

    def __init__(self, stages: Sequence[str]) -> None:
        self.stages = {stage: [] for stage in stages}
        self.compute: list[float] = []

    def add(self, timings: Sequence[float], compute: float | None) -> None:
        """One cycle: a time per stage, in order; `compute` None on a cycle without the policy."""
        for stage, spent in zip(self.stages, timings, strict=True):
            self.stages[stage].append(spent)
        if compute is not None:
            self.compute.append(compute)

    def compute_us(self) -> tuple[float, float]:
        """(p50, p99) of the compute times in us; (0, 0) when the policy never ran."""
        if not self.compute:
            return 0.0, 0.0
        return (float(np.percentile(self.compute, 50) * 1e6),
                float(np.percentile(self.compute, 99) * 1e6))

    def stage_us(self, q: float) -> dict[str, float]:
        """The q-th percentile of each stage in us, to 0.1 us; stages never timed are left out."""
        return {s: round(float(np.percentile(t, q) * 1e6), 1) for s, t in self.stages.items() if t}


@contextmanager
def realtime(priority: int | None, cpu: int | None) -> Iterator[str]:
    """SCHED_FIFO at `priority` and pinning to `cpu` where the OS grants them, for the `with`
    block; yields what was granted. The process is restored however the block ends."""
    granted, restore = request_realtime(priority, cpu)
    try:
        yield granted
    finally:
        restore()
