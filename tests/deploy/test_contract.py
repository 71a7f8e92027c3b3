import dataclasses

import pytest

from deploy.contract import Contract, ContractError
from sim.so_arm import SO_ARM


def contract() -> Contract:
    return Contract(robot=SO_ARM.summary(), task={"name": "reach", "config": {}},
                    observation_size=21, action_size=4, env_id="sim2real/ArmReach-v0",
                    algorithm="ppo", steps=1000)


def test_round_trip_through_json() -> None:
    original = contract()
    assert Contract.from_json(original.to_json()) == original


def test_matching_robot_passes() -> None:
    assert contract().mismatches(SO_ARM) == []
    contract().check(SO_ARM)


def test_every_mismatch_is_named() -> None:
    other = dataclasses.replace(
        SO_ARM, name="so_arm_v2", joint_names=SO_ARM.joint_names[::-1], control_period=0.01,
        command_high=(3.0,) * 6)
    problems = contract().mismatches(other)
    assert len(problems) == 4
    text = "; ".join(problems)
    for expected in ("so_arm_v2", "joint order", "control period", "command_high"):
        assert expected in text
    with pytest.raises(ContractError, match="refusing to move"):
        contract().check(other)


def test_a_policy_for_a_gymnasium_env_has_no_robot() -> None:
    plain = dataclasses.replace(contract(), robot=None, env_id="InvertedPendulum-v5")
    assert "InvertedPendulum-v5" in plain.mismatches(SO_ARM)[0]


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not valid JSON"),
    ('{"format": "other/9"}', "format 'other/9'"),
    ('{"format": "sim2real-contract/1"}', "lacks fields"),
])
def test_bad_contract_text(text: str, message: str) -> None:
    with pytest.raises(ContractError, match=message):
        Contract.from_json(text)


def test_a_policy_exported_before_the_arm_stated_its_convention_is_refused() -> None:
    old = contract()
    old.robot = {k: v for k, v in SO_ARM.summary().items() if k != "convention"}
    (problem,) = old.mismatches(SO_ARM)
    assert problem.startswith("joint convention: connected robot has 'so101_new_calib', policy "
                              "was trained for 'none stated (exported before conventions were "
                              "recorded: retrain and export again)'")
    other_convention = dataclasses.replace(SO_ARM, convention="so100_menagerie")
    assert contract().mismatches(other_convention) == [
        "joint convention: connected robot has 'so100_menagerie', policy was trained for "
        "'so101_new_calib'"]


def test_the_command_history_travels_in_the_task_config() -> None:
    from sim.catalog import make_task
    from sim.reach import ReachConfig, ReachTask

    task = ReachTask(SO_ARM, ReachConfig(command_history=3, action_base="measured"))
    exported = dataclasses.replace(contract(), task=task.contract(), observation_size=30,
                                   action_size=3)
    loaded = Contract.from_json(exported.to_json())
    assert loaded == exported and loaded.task["config"]["command_history"] == 3
    rebuilt = make_task(loaded.task["name"], SO_ARM, loaded.task["config"])
    assert rebuilt.history_length == 3 and rebuilt.observation_size == loaded.observation_size
    assert loaded.task["observation_layout"][-1] == ["past_goals_rad_oldest_first", 9]


def test_a_contract_from_before_the_command_history_rebuilds_its_task_without_one() -> None:
    from sim.catalog import task_from_contract
    from sim.furuta import FURUTA

    # Task configs as exports wrote them before `command_history` and `action_base` existed.
    reach = {"actuated_joints": ["shoulder_pan", "shoulder_lift", "elbow_flex"],
             "success_distance": 0.02, "settle_speed": None, "max_step": 0.15,
             "episode_seconds": 2.0, "goal_low": [-1.2, -0.4, -1.0], "goal_high": [1.2, 1.2, 1.4],
             "min_goal_height": 0.04, "min_goal_reach": 0.08, "max_goal_extension": 0.85}
    old = dataclasses.replace(contract(), task={"name": "reach", "config": reach},
                              action_size=3)
    loaded = Contract.from_json(old.to_json())
    task = task_from_contract("reach", SO_ARM, loaded.task["config"])
    assert task.history_length == 0 and task.observation_size == 21
    assert not task.from_last_goal  # its actions stepped from the measured position
    since = task_from_contract("reach", SO_ARM, {**reach, "command_history": 0})
    assert since.history_length == 0 and not since.from_last_goal
    pendulum = task_from_contract("pendulum", FURUTA, {"mode": "balance", "max_voltage": 6.0,
                                                       "episode_seconds": 5.0})
    assert pendulum.history_length == 0 and pendulum.observation_size == 6
