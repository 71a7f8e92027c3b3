"""The command history in the observation (sim/commands.py): the class the envs and the deploy
runtime share, each task's layout and normalization, the env's reset fill and recording, and the
batch env's reset of finished copies only."""

from __future__ import annotations

import numpy as np
import pytest

from sim.batch_env import BatchRobotEnv
from sim.commands import CommandHistory
from sim.env import RobotTaskEnv
from sim.furuta import FURUTA
from sim.pendulum import PendulumConfig, PendulumTask
from sim.push import PushConfig, PushTask
from sim.reach import ReachConfig, ReachTask
from sim.so_arm import SO_ARM
from sim.spec import RobotState


def test_the_history_keeps_the_last_k_commands_oldest_first() -> None:
    history = CommandHistory(3, 2)
    history.reset(np.array([1.0, -1.0]))
    assert np.array_equal(history.commands, [[1, -1]] * 3)
    for k in range(4):
        history.push(np.array([10.0 + k, 20.0 + k]))
    assert np.array_equal(history.commands, [[11, 21], [12, 22], [13, 23]])
    batch = CommandHistory(2, 1, num_envs=3)
    batch.reset(np.array([[1.0], [2.0], [3.0]]))
    batch.push(np.array([[4.0], [5.0], [6.0]]))
    batch.reset(np.array([[9.0]]), np.array([1]))  # one copy's new episode
    assert np.array_equal(batch.commands[..., 0], [[1, 4], [9, 9], [3, 6]])
    off = CommandHistory(0, 6)
    off.push(np.ones(6))
    assert off.commands.shape == (0, 6)


@pytest.mark.parametrize("k", [0, 3])
def test_reach_and_push_observations_end_with_the_actuated_goals_oldest_first(k: int) -> None:
    reach = ReachTask(SO_ARM, ReachConfig(command_history=k, action_base="measured"))
    push = PushTask(SO_ARM, PushConfig(command_history=k))
    assert reach.observation_size == 21 + 3 * k and push.observation_size == 27 + 4 * k
    if k:
        assert reach.observation_layout()[-1] == ("past_goals_rad_oldest_first", 9)
        assert push.observation_layout()[-1] == ("past_goals_rad_oldest_first", 12)
    else:
        assert reach.observation_layout()[-1][0] == "target_minus_tip"
    state = RobotState(np.zeros(6), np.zeros(6), objects=np.array([[0.15, 0.0, 0.015]]))
    commands = np.arange(18.0).reshape(3, 6) / 10  # oldest first, 6 servos each
    for task, joints in ((reach, 3), (push, 4)):
        history = CommandHistory.for_task(task)
        history.reset(commands[0])
        history.push(commands[1])
        history.push(commands[2])
        observation = task.evaluate(state, np.array([0.2, 0.0, 0.1]), history.commands).observation
        assert observation.shape == (task.observation_size,)
        if k:
            expected = np.concatenate([commands[0, :joints], commands[1, :joints],
                                       commands[2, :joints]])
            assert np.allclose(observation[-3 * joints:], expected)


def test_the_pendulum_observes_past_voltages_per_max_voltage() -> None:
    task = PendulumTask(FURUTA, PendulumConfig(command_history=2, max_voltage=5.0))
    assert task.observation_size == 8
    assert task.observation_layout()[-1] == ("past_voltages_per_max_voltage_oldest_first", 2)
    history = CommandHistory.for_task(task)
    history.reset(np.zeros(1))
    history.push(np.array([2.5]))
    observation = task.evaluate(RobotState(np.zeros(2), np.zeros(2)), np.zeros(0),
                                history.commands).observation
    assert np.allclose(observation[-2:], [0.0, 0.5])


def test_a_history_of_another_length_or_a_bad_config_is_refused() -> None:
    task = ReachTask(SO_ARM, ReachConfig(command_history=2))
    with pytest.raises(ValueError, match="holds 3 commands, the task observes 2"):
        task.evaluate(RobotState(np.zeros(6), np.zeros(6)), np.zeros(3), np.zeros((3, 6)))
    for bad in (-1, 51, 1.5):
        with pytest.raises(ValueError, match=r"ReachConfig.command_history must be a whole "
                                             r"number of commands in 0..50"):
            ReachTask(SO_ARM, ReachConfig(command_history=bad))


def test_the_env_starts_full_of_the_held_command_and_records_each_command() -> None:
    env = RobotTaskEnv("so_arm", "reach", {"command_history": 2, "action_base": "measured"})
    obs, _ = env.reset(seed=3)
    held = env.sim.held_command()[:3]  # the start pose's servo goals
    assert np.allclose(obs[-6:], np.concatenate([held, held]), atol=1e-6)
    reading = env.sim.state()
    action = np.array([1.0, -0.5, 0.25], np.float32)
    command = env.task.action_to_command(action, reading, env.history.commands)  # before any delay
    obs, *_ = env.step(action)
    assert np.allclose(obs[-6:], np.concatenate([held, command[:3]]), atol=1e-6)
    pendulum = RobotTaskEnv("furuta", "pendulum", {"mode": "balance", "command_history": 3})
    obs, _ = pendulum.reset(seed=0)
    assert np.array_equal(obs[-3:], np.zeros(3))  # a motor holds 0 V
    obs, *_ = pendulum.step(np.array([0.5], np.float32))
    assert np.allclose(obs[-3:], [0.0, 0.0, 0.5])


def test_the_batch_resets_the_history_of_finished_copies_only() -> None:
    envs = BatchRobotEnv(3, "so_arm", "reach", {"command_history": 2, "action_base": "measured"})
    envs.reset(seed=0)
    actions = np.array([[0.5, 0.5, 0.5], [-0.5, 0.0, 0.5], [0.0, 1.0, -1.0]], np.float32)
    envs.step(actions)
    before = envs.history.commands.copy()
    envs.steps[1] = envs.task.max_steps - 1  # copy 1's time runs out at the next step
    readings = envs.states()
    commands = envs.task.action_to_command(actions, readings, before)
    obs, _, terminated, truncated, info = envs.step(actions)
    assert truncated.tolist() == [False, True, False] and not terminated.any()
    for i in (0, 2):  # going on: the step's command pushed
        assert np.allclose(envs.history.commands[i], [before[i, 1], commands[i]])
        assert np.allclose(obs[i, -6:], np.concatenate([before[i, 1, :3], commands[i, :3]]),
                           atol=1e-6)
    # Copy 1 started anew, full of its new start pose's goals; its last episode's end kept both.
    held = envs.sims[1].held_command()
    assert np.allclose(envs.history.commands[1], [held, held])
    assert np.allclose(obs[1, -6:], np.concatenate([held[:3], held[:3]]), atol=1e-6)
    assert np.allclose(info["final_obs"][1][-6:],
                       np.concatenate([before[1, 1, :3], commands[1, :3]]), atol=1e-6)
