"""`sim2real adapt`: the next randomization from a fit, and the verb's bad input."""

from __future__ import annotations

from randomization.config import RandomizationConfig, load_config
from sim2real.adapt import next_randomization


def test_the_fitted_terms_are_centred_on_the_fit_the_rest_kept() -> None:
    trained = load_config("default", "so_arm").to_dict()
    suggested = {"mass": {"low": 1.19, "high": 1.61}, "actuator_kp": {"low": 0.51, "high": 0.69},
                 "action_delay": {"distribution": "choice", "choices": [6, 7, 8]}}
    merged = next_randomization(trained, suggested)
    assert set(merged) == set(trained)  # nothing trained on is dropped
    assert merged["mass"]["low"] == 1.19 and merged["mass"]["high"] == 1.61
    assert merged["mass"]["match"] == trained["mass"]["match"]  # the same elements
    assert merged["mass"]["distribution"] == "uniform"
    assert merged["action_delay"]["choices"] == [6, 7, 8]
    for term in set(trained) - set(suggested):
        assert merged[term] == trained[term]
    config = RandomizationConfig.from_dict(merged)  # a config training takes as it is
    assert config.terms["actuator_kp"].distribution.support == (0.51, 0.69)


def test_adr_is_left_out_of_the_next_config() -> None:
    trained = load_config("adr", "so_arm").to_dict()
    merged = next_randomization(trained, {"mass": {"low": 1.0, "high": 1.2}})
    assert "adr" in trained and "adr" not in merged
    RandomizationConfig.from_dict(merged)


def test_a_log_that_does_not_exist_is_one_line(capsys, tmp_path) -> None:
    from test_cli import one_line_error

    err = one_line_error(capsys, "adapt", str(tmp_path / "none.s2rlog"), "--out",
                         str(tmp_path / "next"))
    assert "does not exist" in err
