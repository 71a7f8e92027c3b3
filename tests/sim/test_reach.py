import subprocess
import sys

import numpy as np
import pytest

from sim.commands import CommandHistory
from sim.reach import ReachConfig, ReachTask
from sim.so_arm import SO_ARM
from sim.spec import RobotState


def test_task_functions_run_without_mujoco_or_torch() -> None:
    """The robot's computer has neither: the task functions must not need them."""
    code = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('mujoco', 'torch', 'gymnasium'):
            raise ImportError('blocked ' + name)
sys.meta_path.insert(0, Block())
import numpy as np
from sim.catalog import make_task, robot_by_name
from sim.commands import CommandHistory
from sim.spec import RobotState
task = make_task('reach', robot_by_name('so_arm'), {'command_history': 2, 'action_base': 'measured'})
history = CommandHistory.for_task(task)
goal = task.sample_goal(np.random.default_rng(0))
state = RobotState(np.zeros(6), np.zeros(6))
history.reset(np.zeros(6))
step = task.evaluate(state, goal, history.commands)
command = task.action_to_command(np.ones(task.action_size), state, history.commands)
history.push(command)
pendulum = make_task('pendulum', robot_by_name('furuta'), {'mode': 'swingup'})
past = CommandHistory.for_task(pendulum).commands
swing = pendulum.evaluate(RobotState(np.array([0.0, 3.0]), np.zeros(2)), np.zeros(0), past)
volts = pendulum.action_to_command(np.ones(1), RobotState(np.zeros(2), np.zeros(2)), past)
print(step.observation.shape[0], command.shape[0], swing.observation.shape[0], volts[0])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["27", "6", "6", "6.0"]


def test_goals_are_reachable_and_above_the_floor() -> None:
    task = ReachTask(SO_ARM)
    rng = np.random.default_rng(1)
    goals = np.array([task.sample_goal(rng) for _ in range(500)])
    assert goals[:, 2].min() >= task.config.min_goal_height
    assert np.linalg.norm(goals, axis=1).max() < 0.6  # within the arm's reach


def test_action_moves_targets_by_at_most_max_step_and_holds_other_joints() -> None:
    task = ReachTask(SO_ARM, ReachConfig(command_history=0, action_base="measured"))
    state = RobotState(np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), np.zeros(6))
    none = np.zeros((0, 6))  # no history: the step starts from the measured position
    command = task.action_to_command(np.array([1.0, -1.0, 5.0]), state, none)
    step = task.config.max_step
    assert np.allclose(command[:3], [0.1 + step, 0.2 - step, 0.3 + step])
    assert np.allclose(command[3:], SO_ARM.default_pose[3:])  # wrist and gripper held
    at_limit = RobotState(np.array(SO_ARM.command_high), np.zeros(6))
    assert np.all(task.action_to_command(np.ones(3), at_limit, none) <= np.array(SO_ARM.command_high))


def test_goals_stop_the_limit_margin_inside_the_command_limits() -> None:
    margin = 0.3
    task = ReachTask(SO_ARM, ReachConfig(command_history=0, action_base="measured",
                                         limit_margin=margin))
    none = np.zeros((0, 6))
    high, low = np.array(SO_ARM.command_high), np.array(SO_ARM.command_low)
    up = task.action_to_command(np.ones(3), RobotState(high.copy(), np.zeros(6)), none)
    down = task.action_to_command(-np.ones(3), RobotState(low.copy(), np.zeros(6)), none)
    assert np.allclose(up[:3], high[:3] - margin) and np.allclose(down[:3], low[:3] + margin)
    assert np.allclose(up[3:], SO_ARM.default_pose[3:])  # held joints: untouched by the margin
    assert task.contract()["action"]["high"] == pytest.approx((high[:3] - margin).tolist())
    inside = RobotState(np.zeros(6), np.zeros(6))
    assert np.allclose(task.action_to_command(np.ones(3), inside, none)[:3], task.config.max_step)


def test_success_needs_the_tip_within_the_distance() -> None:
    task = ReachTask(SO_ARM)
    state, past = RobotState(np.zeros(6), np.zeros(6)), CommandHistory.for_task(task).commands
    tip = task.tip_position(state)
    assert task.evaluate(state, tip + np.array([0.0, 0.0, 0.019]), past).success
    far = task.evaluate(state, tip + np.array([0.0, 0.0, 0.021]), past)
    assert not far.success and far.reward == pytest.approx(-0.021)
    settling = ReachTask(SO_ARM, ReachConfig(settle_speed=0.5))
    assert not settling.evaluate(RobotState(np.zeros(6), np.full(6, 1.0)), tip, past).success


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="no joint 'elbow'"):
        ReachTask(SO_ARM, ReachConfig(actuated_joints=("elbow",), goal_low=(0,), goal_high=(1,)))
    with pytest.raises(ValueError, match="one value per actuated joint"):
        ReachTask(SO_ARM, ReachConfig(goal_low=(0.0,)))
    with pytest.raises(ValueError, match="limit_margin must be a finite number of rad >= 0"):
        ReachTask(SO_ARM, ReachConfig(limit_margin=-0.1))
    with pytest.raises(ValueError, match="limit_margin 2.0 rad leaves no range"):
        ReachTask(SO_ARM, ReachConfig(limit_margin=2.0))


def test_a_last_goal_action_steps_from_the_goal_last_sent_and_observes_where_it_leads() -> None:
    task = ReachTask(SO_ARM, ReachConfig(command_history=2, action_base="last_goal"))
    measured = RobotState(np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), np.zeros(6))
    sent = np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.5, -0.4, 0.7, 0.0, 0.0, 0.0]])
    command = task.action_to_command(np.array([1.0, 0.0, -1.0]), measured, sent)
    step = task.config.max_step
    assert np.allclose(command[:3], [0.5 + step, -0.4, 0.7 - step])  # not from 0.1, 0.2, 0.3
    goal = np.array([0.2, 0.0, 0.2])
    observation = task.evaluate(measured, goal, sent).observation
    assert observation.shape == (task.observation_size,) == (6 + 6 + 9 + 6 + 6,)
    headed = SO_ARM.chain.tip_position(np.array([0.5, -0.4, 0.7, 0.4, 0.5]))  # wrist as measured
    assert np.allclose(observation[-6:-3], headed, atol=1e-6)
    assert np.allclose(observation[-3:], goal - headed, atol=1e-6)
    assert not np.allclose(headed, task.tip_position(measured), atol=0.01)
    names = [name for name, _ in task.observation_layout()]
    assert names[-2:] == ["last_goal_tip_position", "target_minus_last_goal_tip"]
    assert "last goal sent" in task.contract()["action"]["meaning"]


def test_a_batch_of_last_goal_actions_matches_one_at_a_time() -> None:
    task = ReachTask(SO_ARM, ReachConfig(command_history=1, action_base="last_goal"))
    rng = np.random.default_rng(0)
    states = RobotState(rng.uniform(-1, 1, (4, 6)), rng.uniform(-1, 1, (4, 6)))
    sent, goals = rng.uniform(-1, 1, (4, 1, 6)), rng.uniform(-0.2, 0.2, (4, 3))
    actions = rng.uniform(-1, 1, (4, 3))
    batch = task.evaluate(states, goals, sent).observation
    commands = task.action_to_command(actions, states, sent)
    for i in range(4):
        one = RobotState(states.positions[i], states.velocities[i])
        assert np.allclose(task.evaluate(one, goals[i], sent[i]).observation, batch[i], atol=1e-6)
        assert np.allclose(task.action_to_command(actions[i], one, sent[i]), commands[i])


@pytest.mark.parametrize(("config", "named"), [
    ({"action_base": "last_goal", "command_history": 0}, "command_history >= 1"),
    ({"action_base": "goal", "command_history": 1}, "'goal'"),
])
def test_a_last_goal_action_needs_the_history_and_a_known_base(config, named) -> None:
    with pytest.raises(ValueError, match=named):
        ReachTask(SO_ARM, ReachConfig(**config))
