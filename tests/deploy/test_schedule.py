"""The loop's clock (deploy/schedule.py) on hand-fed times: deadlines, misses, jitter, stage
times. Times are multiples of 1/16 s so every expectation is exact in binary."""

from __future__ import annotations

import os
import time

import pytest

from deploy.schedule import Schedule, StageTimes, realtime, sleep_until


def test_deadlines_stay_on_the_grid_and_an_overrun_skips_the_periods_it_cost() -> None:
    schedule = Schedule(0.25, start=0.0)
    assert schedule.begin(0.0) == (0.0, 0.0)
    assert schedule.advance(0.1) is False and schedule.deadline == 0.25
    # Woken 1/16 s late: elapsed and lateness both say so; the grid does not move.
    assert schedule.begin(0.3125) == (0.3125, 0.0625)
    assert schedule.advance(0.375) is False and schedule.deadline == 0.5
    assert schedule.begin(0.5) == (0.5, 0.0)
    # Work until 1.375 overruns the deadline at 0.75 by 2.5 periods: a miss. The deadlines it
    # cost are skipped, not run back to back: the next is 0.75 + 2 * 0.25 = 1.25, already past,
    # so the next cycle starts at once, 0.125 late.
    assert schedule.advance(1.375) is True and schedule.deadline == 1.25
    assert schedule.begin(1.375) == (1.375, 0.125)
    # Ending exactly on the next deadline is not a miss.
    assert schedule.advance(1.5) is False and schedule.deadline == 1.5
    assert schedule.misses == 1
    assert schedule.starts == [0.0, 0.3125, 0.5, 1.375]


def test_jitter_is_the_99th_percentile_of_the_interval_error() -> None:
    schedule = Schedule(0.25, start=0.0)
    assert schedule.jitter_p99_us() == 0.0  # no interval yet
    for start in (0.0, 0.3125, 0.875, 1.0):
        schedule.begin(start)
    # Intervals 0.3125, 0.5625, 0.125 -> errors 0.0625, 0.3125, 0.125; sorted, the 99th
    # percentile sits at rank 1.98: 0.125 + 0.98 * (0.3125 - 0.125) = 0.30875 s.
    assert schedule.jitter_p99_us() == pytest.approx(308_750.0)


def test_a_period_that_is_not_positive_is_refused() -> None:
    with pytest.raises(ValueError, match="control period -0.02 s must be positive"):
        Schedule(-0.02, start=0.0)


def test_stage_times_give_percentiles_per_stage_and_of_the_policy_cycles_compute() -> None:
    times = StageTimes(("read", "infer"))
    assert times.compute_us() == (0.0, 0.0) and times.stage_us(50) == {}
    times.add((0.001, 0.002), compute=0.003)
    times.add((0.003, 0.004), compute=None)  # a cycle between episodes: no policy
    times.add((0.002, 0.009), compute=0.005)
    assert times.stage_us(50) == {"read": 2000.0, "infer": 4000.0}
    # 99th percentile of (0.002, 0.004, 0.009): 0.004 + 0.98 * 0.005 = 0.0089 s.
    assert times.stage_us(99) == {"read": 2980.0, "infer": 8900.0}
    p50, p99 = times.compute_us()
    assert p50 == pytest.approx(4000.0) and p99 == pytest.approx(4980.0)
    with pytest.raises(ValueError):  # one time per stage, no more, no fewer
        times.add((0.001,), compute=None)


def test_sleep_until_wakes_at_the_deadline_not_before() -> None:
    deadline = time.perf_counter() + 0.01
    sleep_until(deadline)
    assert time.perf_counter() >= deadline
    before = time.perf_counter()
    sleep_until(before - 1.0)  # a deadline already past: no wait
    assert time.perf_counter() - before < 0.01


def test_realtime_is_undone_however_the_block_ends() -> None:
    affinity = os.sched_getaffinity(0)
    with pytest.raises(RuntimeError), realtime(None, min(affinity)) as granted:
        assert "pinned to CPU" in granted or "pinning not allowed" in granted
        raise RuntimeError("the loop failed")
    assert os.sched_getaffinity(0) == affinity
    with realtime(None, None) as granted:
        assert granted == "normal scheduling"
