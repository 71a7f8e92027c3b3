"""The one comparison of a robot with its RobotSpec (contract check, serial handshake, bus backend)."""

import math

import numpy as np

from sim.furuta import FURUTA
from sim.so_arm import SO_ARM
from sim.spec import robot_differences

COUNT = 2 * math.pi / 4096  # one STS3215 encoder count, rad


def described(spec, **changes) -> dict:
    return spec.description() | changes


def test_the_robot_itself_and_float32_copies_of_it_match() -> None:
    for spec in (SO_ARM, FURUTA):
        assert robot_differences(spec, spec.description(), "a", "b") == []
        as_float32 = {key: (np.asarray(value, dtype=np.float32).tolist()
                            if isinstance(value, (list, float)) and key != "joint_names"
                            and key != "actuator_names" else value)
                      for key, value in spec.description().items()}
        assert robot_differences(spec, as_float32, "a", "b") == []


def test_positions_within_half_a_count_match_and_beyond_it_differ() -> None:
    high = list(SO_ARM.position_high)
    inside = described(SO_ARM, position_high=[high[0] + 0.49 * COUNT, *high[1:]])
    outside = described(SO_ARM, position_high=[high[0] + 0.51 * COUNT, *high[1:]])
    assert robot_differences(SO_ARM, inside, "expected", "device says") == []
    assert robot_differences(SO_ARM, outside, "expected", "device says") == [
        f"position_high: expected {high}, device says {outside['position_high']}"]


def test_names_and_order_are_exact_and_each_difference_is_one_line() -> None:
    other = described(SO_ARM, name="so_arm_v2", joint_names=list(SO_ARM.joint_names[::-1]),
                      control_period=0.01)
    problems = robot_differences(SO_ARM, other, "connected robot has", "policy was trained for")
    assert problems == [
        "robot: connected robot has 'so_arm', policy was trained for 'so_arm_v2'",
        f"joint order: connected robot has {list(SO_ARM.joint_names)!r}, policy was trained for "
        f"{list(SO_ARM.joint_names[::-1])!r}",
        "control period: connected robot has 0.02, policy was trained for 0.01"]


def test_fields_the_other_side_does_not_state_are_not_compared() -> None:
    summary = SO_ARM.summary()  # what contracts store: no position or velocity limits
    assert "position_low" not in summary
    assert robot_differences(SO_ARM, summary, "a", "b") == []


def test_voltage_commands_compare_to_float32_rounding_and_infinite_limits_match() -> None:
    slightly_off = described(FURUTA, command_high=[10.0 + 1e-6])
    clearly_off = described(FURUTA, command_high=[10.001])
    assert robot_differences(FURUTA, slightly_off, "a", "b") == []
    assert robot_differences(FURUTA, clearly_off, "a", "b") == [
        "command_high: a [10.0], b [10.001]"]
    assert math.isinf(FURUTA.description()["position_high"][1])
