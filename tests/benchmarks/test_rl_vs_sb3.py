"""The side-by-side benchmark's test of whether two libraries' returns differ beyond seed noise."""

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "rl_vs_sb3", Path(__file__).parents[2] / "benchmarks" / "rl_vs_sb3.py")
rl_vs_sb3 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rl_vs_sb3)


def test_three_seeds_apart_give_the_smallest_p_three_seeds_allow():
    # Of the 20 splits of six values into threes, only the observed one and its mirror are as
    # far apart: 2 / 20.
    assert rl_vs_sb3.permutation_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(0.1)


def test_equal_groups_give_p_one():
    assert rl_vs_sb3.permutation_p([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == 1.0


def test_eight_seeds_tell_a_real_gap_from_overlap():
    apart = rl_vs_sb3.permutation_p([0.1 * i for i in range(8)], [1.0 + 0.1 * i for i in range(8)])
    assert apart == pytest.approx(2 / 12_870)
    overlapping = rl_vs_sb3.permutation_p([0.9, 0.6, 0.8, 0.5, 0.5, 1.0, 0.9, 0.7],
                                          [0.9, 1.0, 0.9, 0.8, 0.9, 0.8, 0.7, 1.0])
    assert 0.05 < overlapping < 0.5


def test_many_seeds_use_random_splits():
    # C(22, 11) = 705,432 splits: a random 100,000 of them. Counted over all splits (once, by
    # hand), the exact value is 0.0552.
    ours = [float(i) for i in range(11)]
    p = rl_vs_sb3.permutation_p(ours, [value + 3.0 for value in ours])
    assert p == pytest.approx(0.0552, abs=0.003)


def test_a_bf16_row_reuses_sb3_runs_of_the_same_settings_from_this_benchmark_only():
    cases = [("sac her", "FetchReach-v4"), ("sac her bf16", "FetchReach-v4")]
    sb3 = {"library": "sb3", "algo": "sac her", "env": "FetchReach-v4", "seed": 1, "seconds": 9.0}
    rows = [{**sb3, "library": "ours"}, sb3]
    assert rl_vs_sb3.sb3_run_of_this_benchmark(rows, "sac her bf16", "FetchReach-v4", 1,
                                               cases) is sb3
    # Another seed, or the fp32 case not part of this benchmark (a row kept from an earlier
    # one): SB3 trains again.
    assert rl_vs_sb3.sb3_run_of_this_benchmark(rows, "sac her bf16", "FetchReach-v4", 0,
                                               cases) is None
    assert rl_vs_sb3.sb3_run_of_this_benchmark(rows, "sac her bf16", "FetchReach-v4", 1,
                                               cases[1:]) is None
    # Settings that differ beyond the precision (another env's budget): not the same run.
    assert rl_vs_sb3.sb3_run_of_this_benchmark(
        [{**sb3, "env": "FetchPush-v4", "algo": "sac her"}], "sac her bf16", "FetchReach-v4", 1,
        [("sac her", "FetchPush-v4"), *cases]) is None


def test_the_solved_clock_stops_evaluating_once_solved_and_leaves_out_evaluation_time():
    import time

    import numpy as np
    from library_defaults import DefaultsCase, SolvedClock

    def still(obs):  # no push: the pendulum falls within a few dozen steps
        return np.zeros(1, dtype=np.float32)

    unreachable = SolvedClock(DefaultsCase(1000, 100, threshold=950.0), "InvertedPendulum-v5",
                              started=time.time(), episodes=2)
    unreachable.check(100, still)
    unreachable.check(200, still)
    assert unreachable.solved is None and [e["steps"] for e in unreachable.evaluations] == [100, 200]
    # The second evaluation's seconds leave out the time the first one took.
    assert unreachable.evaluation_seconds > 0
    assert unreachable.evaluations[1]["seconds"] < time.time() - unreachable.started

    reachable = SolvedClock(DefaultsCase(1000, 100, threshold=1.0), "InvertedPendulum-v5",
                            started=time.time(), episodes=2)
    reachable.check(100, still)
    reachable.check(200, still)
    assert reachable.solved["steps"] == 100 and len(reachable.evaluations) == 1


def test_the_defaults_table_counts_solved_seeds_and_the_median_time_to_solved():
    def row(library, seed, seconds, solved_at):
        return {"protocol": "defaults", "library": library, "algo": "sac",
                "env": "InvertedPendulum-v5", "seed": seed, "steps": 10_000, "threshold": 950.0,
                "seconds": seconds, "return": 1000.0 if solved_at else 100.0, "success": None,
                "solved": {"steps": 3000, "seconds": solved_at} if solved_at else None}

    rows = [row("ours", 0, 60.0, 20.0), row("ours", 1, 70.0, 30.0), row("ours", 2, 80.0, 40.0),
            row("sb3", 0, 100.0, None), row("sb3", 1, 110.0, 50.0), row("sb3", 2, 120.0, None)]
    text = rl_vs_sb3.defaults_table(rows)[-1]
    assert "| 3/3 / 1/3 / - |" in text and "| 30.0 / 50.0 / - |" in text
    assert "| 70.0 / 110.0 / - | 0.64x, - |" in text
