"""Bad input never ends in a traceback (issue 30): every value the command line reads (its
arguments, `--set` settings, randomization YAML, a checkpoint to resume, a policy for an env) is
either taken or refused in one line on stderr with exit code 2, naming the value and what to do.

The examples below are the reported cases; the hypothesis tests drive `main` in-process with
generated arguments, settings and YAML. None of them trains or deploys: a train command points
`--out` at a run dir that already holds files (refused after every value is checked, before
anything is written), eval and deploy at a policy that does not exist (read after their
arguments are checked)."""

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies.algorithms import ALGORITHMS
from randomization.adr import ADR_KEYS
from randomization.config import ALL_TERM_NAMES, SPEC_KEYS
from sim2real.cli import main
from sim2real.runs import training_config

REACH = "sim2real/ArmReach-v0"
TAKEN = "already holds files"
"""What train answers, once every value is checked, for a run dir that holds files."""
FUZZ = settings(max_examples=80, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


def run(*args: str) -> tuple[int, str]:
    """`sim2real ARGS` in this process: (exit code, stderr). Anything but SystemExit (a
    traceback) fails the test."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            main(list(args))
            code = 0
        except SystemExit as stop:
            code = stop.code or 0
    return code, err.getvalue()


def refused(*args: str) -> str:
    """The one line `sim2real ARGS` answers with exit code 2."""
    code, err = run(*args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err.strip()


@pytest.fixture(scope="module")
def taken(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A run dir that holds a file: train refuses it last, after checking every value."""
    out = tmp_path_factory.mktemp("taken")
    (out / "metrics.csv").write_text("")
    return str(out)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("scratch")


def train(taken: str, *args: str) -> str:
    return refused("train", "--env", REACH, "--steps", "1000", "--out", taken, *args)


# -- the reported cases ----------------------------------------------------------------------


def test_randomization_yaml_that_does_not_parse_or_has_the_wrong_shape(taken, tmp_path) -> None:
    cases = {"mass: {low: 0.8, high: [1.2\n": "is not valid YAML at line 2",
             "- mass\n- friction\n": "expected a mapping of term -> settings, got list",
             "mass: 3\n": "term 'mass' needs a mapping such as {low: 0.8, high: 1.2}, got 3",
             "mass: {low: heavy, high: 1.2}\n": "term 'mass' has a value that is not a number",
             "mass: {low: .nan, high: 1.2}\n": "not a number (or not finite)",
             "mass: {low: 0.8, high: 1.2}\nadr: 5\n": "adr needs a mapping",
             "mass: {low: 0.8, high: 1.2}\nadr: {terms: [mass], steps: [3]}\n": "ADR steps [3]",
             "mass: {low: \xff, high: 1.2}\n": "is not valid YAML: unacceptable character #x00ff"}
    for i, (text, message) in enumerate(cases.items()):
        path = tmp_path / f"r{i}.yaml"
        path.write_bytes(text.encode("latin-1"))
        err = train(taken, "--randomization", str(path))
        assert message in err and str(path) in err, err


@pytest.mark.parametrize(("setting", "message"), [
    ('{"num_envs": "eight"}', "ppo setting num_envs is 'eight'; it must be a whole number >= 1, "
                              "e.g. 16 (its default)"),
    ('{"num_envs": 2.5}', "num_envs is 2.5; it must be a whole number >= 1"),
    ('{"num_envs": 0}', "num_envs is 0; it must be a whole number >= 1"),
    ('{"learning_rate": "fast"}', "learning_rate is 'fast'; it must be a finite number > 0"),
    ('{"learning_rate": NaN}', "learning_rate is nan; it must be a finite number > 0"),
    ('{"learning_rate": -0.001}', "learning_rate is -0.001; it must be a finite number > 0"),
    ('{"gamma": 2.0}', "gamma is 2.0; it must be a finite number in (0, 1]"),
    ('{"epochs": 0}', "epochs is 0; it must be a whole number >= 1"),
    ('{"minibatch_size": 0}', "minibatch_size is 0"),
    ('{"hidden_sizes": [64, "a"]}', "hidden_sizes is [64, 'a']; it must be a non-empty list"),
    ('{"anneal_lr": "yes"}', "anneal_lr is 'yes'; it must be true or false"),
    ('{"checkpoint_seconds": -1}', "checkpoint_seconds is -1; it must be a finite number >= 0"),
    ('{"seed": 3}', "seed in the settings: give the steps with --steps and the seed with --seed"),
    ('{"num_envs": 8', "is not JSON"),
    ("[8]", "ppo settings must be a mapping of name -> value"),
])
def test_settings_of_the_wrong_type_or_range(taken, setting, message) -> None:
    assert message in train(taken, "--set", setting)


def test_every_algorithm_checks_its_own_settings(taken) -> None:
    for algo, setting, message in [
            ("sac", '{"tau": 0}', "sac setting tau is 0; it must be a finite number in (0, 1]"),
            ("td3", '{"exploration_noise": "pink"}', "one of gaussian, ornstein_uhlenbeck"),
            ("ddpg", '{"matmul_precision": "fp16"}', "one of fp32, bf16"),
            ("dqn", '{"max_grad_norm": 0}', "a finite number > 0 or null"),
            ("a2c", '{"optimizer": "sgd"}', "one of rmsprop, adam"),
            ("trpo", '{"line_search_shrink": 1.0}', "in (0, 1)"),
            ("reinforce", '{"baseline": 1}', "true or false")]:
        assert message in train(taken, "--algo", algo, "--set", setting)


def test_deploy_refuses_a_run_that_would_not_end_before_opening_anything(tmp_path) -> None:
    missing = str(tmp_path / "missing.onnx")
    for seconds in ("nan", "inf", "-1", "0"):
        err = refused("deploy", missing, "--seconds", seconds)
        assert f"--seconds must be a finite number of seconds > 0, got {float(seconds)}" in err
    for episodes in ("0", "-3"):
        assert f"--episodes must be >= 1, got {episodes}" in refused(
            "deploy", missing, "--seconds", "1", "--episodes", episodes)
    assert "a seed is a whole number from 0" in refused("deploy", missing, "--seed", "-1")
    assert "does not exist" in refused("deploy", missing, "--seconds", "1")


def test_eval_refuses_no_episodes_a_bad_seed_and_an_env_of_another_size(tiny_policy) -> None:
    assert "--episodes must be >= 1, got 0" in refused("eval", str(tiny_policy), "--episodes", "0")
    assert "a seed is a whole number" in refused("eval", str(tiny_policy), "--seed", "-1")
    err = refused("eval", str(tiny_policy), "--env", "sim2real/ArmPush-v0", "--episodes", "1")
    assert re.search(r"\(trained on sim2real/ArmReach-v0\) takes observations of \d+ numbers "
                     r"and gives 3 actions, but sim2real/ArmPush-v0 has \d+ and 4; evaluate it on "
                     r"sim2real/ArmReach-v0 \(leave out --env\) or train a policy on "
                     r"sim2real/ArmPush-v0", err), err


def test_resume_from_a_damaged_checkpoint(tiny_run, tmp_path) -> None:
    damage = {"cut short": lambda data: data[:len(data) // 2], "emptied": lambda data: b"",
              "overwritten": lambda data: bytes(range(256)) * 20,
              "not ours": lambda data: (tmp_path / "x.pt").read_bytes()}
    torch.save({"weights": [1, 2]}, tmp_path / "x.pt")
    for what, change in damage.items():
        run_dir = tmp_path / what.replace(" ", "_")
        shutil.copytree(tiny_run, run_dir)
        path = run_dir / "checkpoint.pt"
        path.write_bytes(change(path.read_bytes()))
        err = refused("train", "--resume", str(run_dir), "--steps", "2048")
        expected = "is not a checkpoint of" if what == "not ours" else "is damaged and cannot be read"
        assert f"{path} {expected}" in err, (what, err)
        assert "eval: error" in refused("eval", str(run_dir), "--episodes", "1")
    assert "does not exist" in refused("train", "--resume", str(tmp_path / "none"))


def test_argparse_errors_are_one_line_too() -> None:
    assert refused("train", "--steps", "many") == (
        "sim2real train: error: argument --steps: invalid int value: 'many'; see "
        "`sim2real train --help`")
    assert "invalid choice: 'tran'" in refused("tran")


# -- generated input -------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats()
    | st.text(max_size=6) | st.sampled_from(["auto", "huber", "adam", "gaussian", "fp32"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=2),
    max_leaves=5)
SETTING_NAMES = sorted({name for algorithm in ALGORITHMS.values()
                        for name in algorithm.config.__dataclass_fields__} - {"total_steps", "seed"})
SPEC_VALUES = (st.floats(-2, 3) | st.integers(-2, 3) | JSON_VALUES
               | st.sampled_from(["uniform", "loguniform", "normal", "choice", "add", "set",
                                  "start", ".*", "block"]))
TERMS = st.dictionaries(st.sampled_from(ALL_TERM_NAMES) | st.text(max_size=5),
                        st.dictionaries(st.sampled_from(SPEC_KEYS), SPEC_VALUES, max_size=5)
                        | SPEC_VALUES, max_size=3)
ADR = st.dictionaries(st.sampled_from(ADR_KEYS),
                      st.lists(st.sampled_from(ALL_TERM_NAMES), max_size=2) | SPEC_VALUES,
                      max_size=3)


@FUZZ
@given(algo=st.sampled_from(sorted(ALGORITHMS)),
       overrides=st.dictionaries(st.sampled_from(SETTING_NAMES), JSON_VALUES, max_size=3)
       | JSON_VALUES)
def test_generated_settings_are_taken_with_their_types_or_refused_in_one_line(
        taken, algo, overrides) -> None:
    err = train(taken, "--algo", algo, f"--set={json.dumps(overrides)}")  # "-1": a value
    if TAKEN not in err:
        assert err.startswith("sim2real train: error: ") and ("setting" in err or "JSON" in err)
        return
    config = training_config(algo, REACH, 1000, 0, overrides)
    for name, field in type(config).__dataclass_fields__.items():
        value, default = getattr(config, name), field.default
        # Taken values have the field's own type (a whole number stays int, a list a tuple).
        assert value is None or type(value) is type(default) or (
            default is None and type(value) is float), (name, value)


@FUZZ
@given(raw=st.one_of(TERMS, st.tuples(TERMS, ADR).map(lambda t: {**t[0], "adr": t[1]}),
                     JSON_VALUES, st.text(max_size=40)))
def test_generated_randomization_yaml_is_taken_or_refused_in_one_line(taken, scratch, raw) -> None:
    path = scratch / "randomization.yaml"
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    err = train(taken, "--randomization", str(path))
    assert TAKEN in err or str(path) in err, err  # every refusal names the file


TOKENS = (st.sampled_from(["0", "1", "-1", "2.5", "nan", "inf", "1e9", "99999999999", "", "x",
                           "{}", '{"num_envs": 2}', "sim2real/ArmReach-v0", "CartPole-v1",
                           "ppo", "dqn", "default", "none", "--json", "--quiet"])
          | st.text(max_size=6).filter(lambda t: not t.startswith("-")))
"""Values and flags; no generated flag: an abbreviation of --help prints help, of --overwrite
would train."""


@FUZZ
@given(verb=st.sampled_from(["train", "eval", "deploy"]),
       options=st.lists(st.tuples(st.sampled_from(
           ["--steps", "--seed", "--algo", "--env", "--set", "--pixels", "--discrete-actions",
            "--episodes", "--seconds", "--robot", "--randomization"]), TOKENS), max_size=4))
def test_generated_arguments_end_in_one_line_without_running(taken, verb, options) -> None:
    args = [token for option in options for token in option]
    if verb == "train":
        code, err = run("train", *args, "--out", taken)
    else:  # what would run is refused last, for the policy that is not there
        code, err = run(verb, str(Path(taken) / "missing.onnx"), *args)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
