"""Every algorithm's config checks each of its fields once, in one place (policies/settings.py):
the type from the annotation, the range from the field's name, the choices of a text field."""

from dataclasses import dataclass

import numpy as np
import pytest

from policies.algorithms import ALGORITHMS
from policies.settings import RANGES, check_settings


@dataclass
class ExampleConfig:
    num_envs: int = 8
    gamma: float = 0.99
    hidden_sizes: tuple[int, ...] = (64, 64)
    max_grad_norm: float | None = 0.5
    anneal_lr: bool = False
    compile: str = "auto"
    loss: str = "huber"

    def __post_init__(self) -> None:
        check_settings(self, loss=("huber", "mse"))


def test_values_of_the_right_kind_are_taken_in_the_fields_own_type() -> None:
    config = ExampleConfig(num_envs=1e6, gamma=1, hidden_sizes=[32, 16.0], max_grad_norm=None,
                           anneal_lr=True, compile="never", loss="mse")
    assert (config.num_envs, config.gamma, config.hidden_sizes) == (1_000_000, 1.0, (32, 16))
    assert type(config.num_envs) is int and type(config.gamma) is float
    assert ExampleConfig(num_envs=np.int64(4)).num_envs == 4


@pytest.mark.parametrize(("given", "message"), [
    ({"num_envs": "eight"}, "example setting num_envs is 'eight'; it must be a whole number >= 1, "
                            "e.g. 8 (its default)"),
    ({"num_envs": 2.5}, "num_envs is 2.5; it must be a whole number >= 1"),
    ({"num_envs": True}, "num_envs is True; it must be a whole number"),
    ({"num_envs": 2**70}, "num_envs is 1180591620717411303424; it must be a whole number"),
    ({"gamma": float("nan")}, "gamma is nan; it must be a finite number in (0, 1], e.g. 0.99"),
    ({"gamma": 2.0}, "gamma is 2.0; it must be a finite number in (0, 1]"),
    ({"gamma": 10**400}, "gamma is 1000000"),
    ({"hidden_sizes": []}, "hidden_sizes is []; it must be a non-empty list of whole numbers >= 1, "
                           "e.g. [64, 64] (its default)"),
    ({"hidden_sizes": [64, 0]}, "hidden_sizes is [64, 0]"),
    ({"max_grad_norm": -1.0}, "max_grad_norm is -1.0; it must be a finite number > 0 or null"),
    ({"anneal_lr": "yes"}, "anneal_lr is 'yes'; it must be true or false, e.g. false"),
    ({"compile": "sometimes"}, "compile is 'sometimes'; it must be one of auto, always, never"),
    ({"loss": "l1"}, "loss is 'l1'; it must be one of huber, mse"),
])
def test_a_bad_value_is_refused_naming_the_setting_the_value_and_what_it_may_be(
        given, message) -> None:
    with pytest.raises(ValueError) as error:
        ExampleConfig(**given)
    assert message in str(error.value)


def test_every_field_of_every_algorithm_has_a_rule() -> None:
    """A new setting needs its range (numbers) in RANGES or its choices (text), or this fails:
    each field refuses a value of the wrong kind, and each numeric field has a range."""
    for algo, algorithm in ALGORITHMS.items():
        config = algorithm.config()
        for name, field in algorithm.config.__dataclass_fields__.items():
            if not isinstance(field.default, bool | str):
                assert name in RANGES, f"{algo}: {name} has no range in policies/settings.py"
            wrong = {int: 0.5, bool: 1, str: "no such choice"}.get(type(field.default), "x")
            with pytest.raises(ValueError, match=f"{algo} setting {name} is"):
                algorithm.config(**{name: wrong})
            assert getattr(config, name) == field.default  # the defaults pass their own checks
