import copy
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from randomization.adr import (
    HISTORY_FIELDS,
    ADRConfig,
    ADRRange,
    AutomaticDomainRandomization,
    adr_ranges_from_terms,
)
from randomization.adr_plot import plot_adr_ranges

# Mass scale: the policy copes with [0.6, 1.5]; the limits are wider, so ADR must stop at the
# region's edges. Friction: the policy copes with [0.5, 1.2], wider than the limits, so ADR
# must stop at the limits.
RANGES = {"mass": ADRRange(start_low=1.0, start_high=1.0, limit_low=0.3, limit_high=2.0, step=0.05),
          "friction": ADRRange(start_low=0.9, start_high=1.0, limit_low=0.7, limit_high=1.1,
                               step=0.1)}
COPES = {"mass": (0.6, 1.5), "friction": (0.5, 1.2)}


def tolerant(adr: AutomaticDomainRandomization, copy: int,
             bounds: dict[str, tuple[float, float]]) -> float:
    """1.0 when the evaluated bound lies in the region the policy copes with, else 0.0."""
    evaluated = adr.evaluating(copy)
    if evaluated is None:
        return 1.0
    term, _ = evaluated
    low, high = COPES[term]
    return float(low <= bounds[term][0] <= high)


def run(adr: AutomaticDomainRandomization, rng: np.random.Generator, rounds: int,
        performance=tolerant, start_step: int = 0) -> list[dict[str, tuple[float, float]]]:
    """Rounds in which every copy begins, then every copy ends (so episodes overlap, as in a
    vector env); 100 env steps per episode. Returns the ranges after each round and checks that
    they stay inside their limits, contain their start and never invert."""
    seen, step = [], start_step
    for _ in range(rounds):
        bounds = [adr.begin_episode(c, rng) for c in range(adr.num_envs)]
        for c in range(adr.num_envs):
            step += 100
            adr.end_episode(c, performance(adr, c, bounds[c]), step)
        for term, (low, high) in adr.ranges.items():
            spec = adr.specs[term]
            assert spec.limit_low <= low <= spec.start_low <= spec.start_high <= high <= spec.limit_high
        seen.append(adr.ranges)
    return seen


def test_bounds_widen_to_the_edge_of_what_the_policy_copes_with_and_stay_within_a_step() -> None:
    adr = AutomaticDomainRandomization(RANGES, ADRConfig(), num_envs=4)
    seen = run(adr, np.random.default_rng(0), 3000)
    tail = seen[-1000:]
    mass_low = [r["mass"][0] for r in tail]
    mass_high = [r["mass"][1] for r in tail]
    # The last value inside the region is 0.6 (1.0 - 8 steps) and 1.5 (1.0 + 10 steps); the next
    # step out fails, so each bound swings between the edge and one step beyond it.
    assert min(mass_low) == pytest.approx(0.55) and max(mass_low) == pytest.approx(0.6)
    assert min(mass_high) == pytest.approx(1.5) and max(mass_high) == pytest.approx(1.55)
    # Friction copes beyond its limits: it ends exactly at them and stays.
    assert all(r["friction"] == (0.7, 1.1) for r in tail)
    moves = [row for row in adr.history() if row["side"] != "start"]
    assert all(row["performance"] >= 0.8 or row["performance"] <= 0.4 for row in moves)


def test_failing_policy_never_narrows_past_the_start() -> None:
    adr = AutomaticDomainRandomization(RANGES, ADRConfig(buffer_size=5), num_envs=2)
    run(adr, np.random.default_rng(1), 500, performance=lambda *_: 0.0)
    assert adr.ranges == {"mass": (1.0, 1.0), "friction": (0.9, 1.0)}
    assert [row["side"] for row in adr.history()] == ["start", "start"]


def test_ranges_widen_then_shrink_back_to_exactly_the_start() -> None:
    adr = AutomaticDomainRandomization(RANGES, ADRConfig(buffer_size=5), num_envs=2)
    rng = np.random.default_rng(2)
    run(adr, rng, 300, performance=lambda *_: 1.0)
    assert adr.ranges["mass"][0] < 0.9 and adr.ranges["mass"][1] > 1.1
    run(adr, rng, 2000, performance=lambda *_: 0.0)
    assert adr.ranges == {"mass": (1.0, 1.0), "friction": (0.9, 1.0)}


def test_random_performance_never_inverts_a_range() -> None:
    adr = AutomaticDomainRandomization(RANGES, ADRConfig(buffer_size=2, widen_above=0.6,
                                                         narrow_below=0.5), num_envs=3)
    rng = np.random.default_rng(3)
    run(adr, rng, 2000, performance=lambda *_: float(rng.random() < 0.5))  # checks every round
    assert len(adr.history()) > 50


def test_history_rows_record_each_move_by_hand() -> None:
    adr = AutomaticDomainRandomization({"mass": RANGES["mass"]},
                                       ADRConfig(boundary_probability=1.0, buffer_size=1), 1)
    rng = np.random.default_rng(4)
    bounds = adr.begin_episode(0, rng)
    term, side = adr.evaluating(0)
    assert (term, bounds["mass"]) == ("mass", (1.0, 1.0))
    adr.end_episode(0, 1.0, step=250)
    expected = {"low": (0.95, 1.0), "high": (1.0, 1.05)}[side]
    assert adr.ranges["mass"] == pytest.approx(expected)
    row = adr.history()[-1]
    assert list(row) == list(HISTORY_FIELDS)
    assert (row["step"], row["term"], row["side"], row["performance"]) == (250, "mass", side, 1.0)
    assert (row["low"], row["high"]) == pytest.approx(expected)
    assert (row["limit_low"], row["limit_high"]) == (0.3, 2.0)
    assert adr.log_row() == pytest.approx({"adr/mass/low": expected[0], "adr/mass/high": expected[1]})


def test_a_result_measured_at_a_bound_that_has_moved_since_is_dropped() -> None:
    adr = AutomaticDomainRandomization({"mass": RANGES["mass"]},
                                       ADRConfig(boundary_probability=1.0, buffer_size=1), 2)
    rng = np.random.default_rng(5)
    adr.begin_episode(0, rng)
    side = adr.evaluating(0)[1]
    while adr.begin_episode(1, rng) and adr.evaluating(1)[1] != side:
        pass  # beginning again abandons copy 1's previous episode
    adr.end_episode(1, 1.0, step=100)  # widens the bound copy 0 is evaluating
    widened = adr.ranges
    adr.end_episode(0, 0.0, step=200)  # measured at the old value: must not narrow it back
    assert adr.ranges == widened != {"mass": (1.0, 1.0)}
    assert adr.state_dict()["buffers"]["mass"] == {"low": [], "high": []}


def test_boundary_sampling_frequency_uniform_choice_and_exact_pinning() -> None:
    ranges = {**RANGES, "damping": ADRRange(0.8, 1.25, 0.5, 2.0, 0.05)}
    adr = AutomaticDomainRandomization(ranges, ADRConfig(boundary_probability=0.3), num_envs=1)
    rng = np.random.default_rng(6)
    counts: dict[tuple[str, str], int] = {}
    n = 12000
    for _ in range(n):
        bounds = adr.begin_episode(0, rng)
        evaluated = adr.evaluating(0)
        current = adr.ranges
        if evaluated is None:
            assert bounds == current
        else:
            term, side = evaluated
            value = current[term][0 if side == "low" else 1]
            assert bounds[term] == (value, value)  # exactly the bound, not a draw near it
            assert {k: v for k, v in bounds.items() if k != term} == {
                k: v for k, v in current.items() if k != term}
            counts[evaluated] = counts.get(evaluated, 0) + 1
        adr.end_episode(0, 0.5, step=0)  # between the thresholds: nothing moves
    evaluated_share = sum(counts.values()) / n
    # Binomial std of the share is sqrt(0.3 * 0.7 / 12000) = 0.0042: allow about 4 std.
    assert evaluated_share == pytest.approx(0.3, abs=0.017)
    assert len(counts) == 6  # 3 terms x 2 sides, each about 600 times
    assert all(abs(c - 600) < 120 for c in counts.values()), counts


@pytest.mark.parametrize("probability", [0.0, 1.0])
def test_boundary_probability_zero_never_and_one_always_evaluates(probability: float) -> None:
    adr = AutomaticDomainRandomization(RANGES, ADRConfig(boundary_probability=probability), 1)
    rng = np.random.default_rng(7)
    evaluated = []
    for _ in range(200):
        adr.begin_episode(0, rng)
        evaluated.append(adr.evaluating(0) is not None)
    assert all(evaluated) if probability else not any(evaluated)


def assignments(seed: int) -> tuple[list, list]:
    adr = AutomaticDomainRandomization(RANGES, ADRConfig(buffer_size=5), num_envs=3)
    seen = run(adr, np.random.default_rng(seed), 300)
    return seen, adr.history()


def test_same_seed_same_assignments_and_history() -> None:
    first, again, other = assignments(8), assignments(8), assignments(9)
    assert first == again
    assert first != other


def test_state_dict_round_trip_continues_identically() -> None:
    a = AutomaticDomainRandomization(RANGES, ADRConfig(buffer_size=5), num_envs=3)
    rng = np.random.default_rng(10)
    run(a, rng, 200)
    for c in range(3):  # leave episodes running: their pending evaluations must survive
        a.begin_episode(c, rng)
    state = json.loads(json.dumps(a.state_dict(), allow_nan=False))  # strict JSON for a checkpoint
    b = AutomaticDomainRandomization(RANGES, ADRConfig(buffer_size=5), num_envs=3)
    b.load_state_dict(state)
    assert [b.evaluating(c) for c in range(3)] == [a.evaluating(c) for c in range(3)]
    assert any(b.evaluating(c) for c in range(3))
    rng_b = copy.deepcopy(rng)
    for c in range(3):
        a.end_episode(c, 1.0, step=60_000)
        b.end_episode(c, 1.0, step=60_000)
    assert run(a, rng, 200, start_step=60_000) == run(b, rng_b, 200, start_step=60_000)
    assert json.dumps(a.state_dict()) == json.dumps(b.state_dict())


def test_load_state_dict_refuses_other_ranges_or_copies() -> None:
    state = AutomaticDomainRandomization(RANGES, ADRConfig(), 2).state_dict()
    other = {**RANGES, "mass": ADRRange(1.0, 1.0, 0.3, 2.0, step=0.1)}
    with pytest.raises(ValueError, match=r"'mass'.*0\.05"):
        AutomaticDomainRandomization(other, ADRConfig(), 2).load_state_dict(state)
    with pytest.raises(ValueError, match="num_envs 2"):
        AutomaticDomainRandomization(RANGES, ADRConfig(), 3).load_state_dict(state)


def write_csv(path: Path, rows: list[dict], fields: list[str]) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_plot_writes_a_png_from_rows_a_history_csv_or_a_metrics_csv(tmp_path: Path) -> None:
    adr = AutomaticDomainRandomization(RANGES, ADRConfig(), num_envs=4)
    rng = np.random.default_rng(11)
    metrics = []
    for k in range(10):
        run(adr, rng, 200, start_step=k * 80_000)
        metrics.append({"steps": (k + 1) * 80_000, **adr.log_row()})
    units = {"mass": "x nominal", "friction": "x nominal"}
    sources = {"rows": adr.history(),
               "history_csv": write_csv(tmp_path / "adr.csv", adr.history(), list(HISTORY_FIELDS)),
               "metrics_csv": write_csv(tmp_path / "metrics.csv", metrics, list(metrics[0]))}
    for name, source in sources.items():
        out = plot_adr_ranges(source, tmp_path / f"{name}.png", f"ADR ranges ({name})", units,
                              until_step=800_000)
        data = out.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name


def test_plot_refuses_rows_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nothing to plot"):
        plot_adr_ranges([], tmp_path / "x.png", "empty")
    with pytest.raises(ValueError, match="adr/TERM/low"):
        plot_adr_ranges([{"steps": 1, "mean_return": 2.0}], tmp_path / "x.png", "no adr")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"start_low": 1.2}, r"'mass'.*start_low 1\.2 > start_high 1\.0"),
    ({"start_low": 0.2}, r"'mass'.*start_low 0\.2 is below limit_low 0\.3"),
    ({"start_high": 2.5}, r"'mass'.*start_high 2\.5 is above limit_high 2\.0"),
    ({"step": 0.0}, r"'mass'.*step 0\.0 must be > 0"),
    ({"step": -0.05}, r"'mass'.*step -0\.05 must be > 0"),
    ({"limit_high": math.inf}, r"'mass'.*limit_high = inf"),
])
def test_bad_ranges_name_the_term_the_key_and_the_value(kwargs: dict, message: str) -> None:
    spec = {"start_low": 1.0, "start_high": 1.0, "limit_low": 0.3, "limit_high": 2.0,
            "step": 0.05, **kwargs}
    with pytest.raises(ValueError, match=message):
        AutomaticDomainRandomization({"mass": ADRRange(**spec)}, ADRConfig(), 1)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"boundary_probability": 1.5}, r"boundary_probability 1\.5"),
    ({"boundary_probability": -0.1}, r"boundary_probability -0\.1"),
    ({"buffer_size": 0}, "buffer_size 0"),
    ({"widen_above": 1.2}, r"widen_above 1\.2 must be in \[0, 1\]"),
    ({"narrow_below": -0.2}, r"narrow_below -0\.2 must be in \[0, 1\]"),
    ({"narrow_below": 0.8, "widen_above": 0.8}, r"narrow_below 0\.8 must be < widen_above 0\.8"),
])
def test_bad_configs_name_the_key_and_the_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ADRConfig(**kwargs)


def test_bad_calls_name_the_bad_value() -> None:
    with pytest.raises(ValueError, match="num_envs 0"):
        AutomaticDomainRandomization(RANGES, ADRConfig(), num_envs=0)
    with pytest.raises(ValueError, match="at least one term"):
        AutomaticDomainRandomization({}, ADRConfig(), 1)
    adr = AutomaticDomainRandomization(RANGES, ADRConfig(), num_envs=2)
    with pytest.raises(ValueError, match="copy 1 ended an episode it never began"):
        adr.end_episode(1, 1.0, step=0)
    with pytest.raises(ValueError, match=r"copy 2 is not .*0\.\.1"):
        adr.begin_episode(2, np.random.default_rng(0))
    adr.begin_episode(0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="performance nan"):
        adr.end_episode(0, math.nan, step=0)
    adr.end_episode(0, 1.0, step=0)
    with pytest.raises(ValueError, match="copy 0 ended an episode it never began"):
        adr.end_episode(0, 1.0, step=0)  # the same episode cannot end twice


def test_ranges_from_a_randomization_config() -> None:
    from randomization.terms import Distribution, TermSpec

    # As RandomizationConfig.from_dict leaves them: step terms hold operation set.
    terms = {
        "mass": TermSpec(Distribution("uniform", 0.6, 1.5)),
        "joint_damping": TermSpec(Distribution("loguniform", 0.5, 2.0)),
        "frictionloss": TermSpec(Distribution("uniform", -0.01, 0.03), operation="add"),
        "observation_noise": TermSpec(Distribution("uniform", 0.0, 0.003), operation="set"),
        "action_delay": TermSpec(Distribution("choice", choices=(0.0, 1.0, 2.0)), operation="set"),
    }
    ranges = adr_ranges_from_terms(terms, steps=10, step={"action_delay": 1.0})
    assert ranges["mass"] == ADRRange(1.0, 1.0, 0.6, 1.5, pytest.approx(0.09))
    assert ranges["joint_damping"] == ADRRange(1.0, 1.0, 0.5, 2.0, pytest.approx(0.15))
    assert ranges["frictionloss"] == ADRRange(0.0, 0.0, -0.01, 0.03, pytest.approx(0.004))
    assert ranges["observation_noise"] == ADRRange(0.0, 0.0, 0.0, 0.003, pytest.approx(0.0003))
    assert ranges["action_delay"] == ADRRange(0.0, 0.0, 0.0, 2.0, 1.0)
    gravity = {"gravity": TermSpec(Distribution("normal", mean=0.0, std=0.1), "[xy]", "add")}
    with pytest.raises(ValueError, match="'gravity'.*normal distribution is unbounded"):
        adr_ranges_from_terms(gravity)
    with pytest.raises(ValueError, match=r"nominal names terms .*\['friction'\]"):
        adr_ranges_from_terms(terms, nominal={"friction": 1.0})
