"""Sweep files: the trials they make, and every mistake named before a trial starts."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import yaml

from randomization.config import RandomizationConfig
from sim2real.sweep import trial_jobs
from sim2real.sweep_file import load_sweep, plan_from_dict

BALANCE = "sim2real/FurutaBalance-v0"
BASE = {"env": BALANCE, "algo": "ppo", "steps": 4096}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_grid_is_every_combination_once_per_seed() -> None:
    plan = plan_from_dict({**BASE, "seeds": [3, 7],
                           "set": {"learning_rate": [3e-4, 1e-3], "epochs": 5},
                           "ranges": {"mass": [[0.9, 1.1], [0.7, 1.4]]}})
    assert len(plan.settings) == 4 and len(plan.trials) == 8
    assert [t.name for t in plan.trials[:3]] == ["s00-seed3", "s00-seed7", "s01-seed3"]
    assert {(s.settings["learning_rate"], s.ranges["mass"]) for s in plan.settings} == {
        (3e-4, (0.9, 1.1)), (3e-4, (0.7, 1.4)), (1e-3, (0.9, 1.1)), (1e-3, (0.7, 1.4))}
    assert all(s.settings["epochs"] == 5 for s in plan.settings)
    # The label names what varies, not what every setting shares.
    assert plan.settings[1].label == "learning_rate=0.0003, mass=0.7..1.4"


def test_a_setting_trains_under_its_ranges_and_keeps_the_rest_of_the_preset() -> None:
    plan = plan_from_dict({**BASE, "ranges": {"mass": [0.7, 1.4], "actuator_kp": [[0.5, 0.9]]}})
    config = plan.randomization_for(plan.settings[0])
    base = plan_from_dict(BASE).randomization_for(plan_from_dict(BASE).settings[0])
    assert (config["mass"]["low"], config["mass"]["high"]) == (0.7, 1.4)
    assert config["mass"]["match"] == base["mass"]["match"]  # the same bodies
    assert (config["actuator_kp"]["low"], config["actuator_kp"]["high"]) == (0.5, 0.9)
    assert {k: v for k, v in config.items() if k not in ("mass", "actuator_kp")} == {
        k: v for k, v in base.items() if k not in ("mass", "actuator_kp")}
    RandomizationConfig.from_dict(config)


def test_a_random_search_draws_the_same_settings_from_the_same_file() -> None:
    raw = {**BASE, "search": "random", "samples": 5, "search_seed": 4,
           "set": {"learning_rate": {"loguniform": [1e-4, 1e-2]}, "epochs": [3, 5, 10]},
           "ranges": {"mass": [[0.9, 1.1], [0.7, 1.4]]}}
    first, again = plan_from_dict(raw), plan_from_dict(raw)
    assert first.settings == again.settings and len(first.settings) == 5
    rates = [s.settings["learning_rate"] for s in first.settings]
    assert all(1e-4 <= r <= 1e-2 for r in rates) and len(set(rates)) == 5
    assert {s.settings["epochs"] for s in first.settings} <= {3, 5, 10}
    other = plan_from_dict({**raw, "search_seed": 5})
    assert [s.settings["learning_rate"] for s in other.settings] != rates


@pytest.mark.parametrize(("change", "words"), [
    ({"sed": [1]}, "unknown key(s) ['sed']"),
    ({"steps": 0}, "steps must be a whole number >= 1, got 0"),
    ({"seeds": [1, 1]}, "repeat one"),
    ({"set": {"learning_rat": [0.1]}}, "unknown ppo setting(s) ['learning_rat']"),
    ({"set": {"learning_rate": {"uniform": [0, 1]}}}, "draws values, which only a random search"),
    ({"ranges": {"mass": [[1.4, 0.7]]}}, "low <= high"),
    ({"ranges": {"mas": [[0.7, 1.4]]}}, "unknown randomization term 'mas'"),
    ({"early_stop": {"metric": "eval_return", "grace_steps": 4096}}, "not below steps 4096"),
    ({"early_stop": {"metric": "return"}}, "eval_return or eval_success_rate"),
    ({"early_stop": {"metric": "eval_return"}, "set": {"eval_every": 0}}, "eval_every is 0"),
    ({"search": "bayes"}, "search must be grid or random"),
    ({"search": "random"}, "samples must be a whole number >= 1"),
    ({"env": "Nope-v0"}, "unknown env id 'Nope-v0'"),
])
def test_a_bad_sweep_file_is_named_before_anything_runs(change: dict, words: str) -> None:
    with pytest.raises(ValueError) as error:
        plan_from_dict({**BASE, **change}, "balance.yaml")
    assert words in str(error.value)


def test_a_sweep_folder_of_another_sweep_is_refused(tmp_path: Path) -> None:
    trial_jobs(plan_from_dict({**BASE, "seeds": 2}), tmp_path)
    assert len(trial_jobs(plan_from_dict({**BASE, "seeds": 2}), tmp_path)) == 2  # the same: goes on
    with pytest.raises(FileExistsError, match="holds another sweep"):
        trial_jobs(plan_from_dict({**BASE, "seeds": 3}), tmp_path)


def test_without_ray_the_sweep_names_the_extra(capsys, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from test_cli import one_line_error

    sweep = tmp_path / "balance.yaml"
    sweep.write_text(yaml.safe_dump(BASE))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is not installed
    err = one_line_error(capsys, "sweep", str(sweep), "--out", str(tmp_path / "out"))
    assert 'pip install -e ".[cluster]"' in err
    assert load_sweep(sweep).steps == 4096


@pytest.mark.slow  # imports Ray and waits on a dead address
def test_an_address_where_no_cluster_listens_is_one_line(capsys, tmp_path: Path) -> None:
    from test_cli import one_line_error

    pytest.importorskip("ray")
    sweep = tmp_path / "balance.yaml"
    sweep.write_text(yaml.safe_dump({"env": BALANCE, "steps": 4096}))
    address = f"127.0.0.1:{free_port()}"
    err = one_line_error(capsys, "sweep", str(sweep), "--ray", address, "--out",
                         str(tmp_path / "out"))
    assert f"no Ray cluster answers at {address}" in err and "ray start --head" in err
