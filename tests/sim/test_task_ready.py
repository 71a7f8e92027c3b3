"""Each task's start region (`Task.ready`), where a deploy may begin an episode: every training
start is in it, and for the pendulum it means held up (balance) or hanging still (swing-up)."""

import numpy as np
import pytest

from sim.catalog import make_task
from sim.furuta import FURUTA
from sim.pendulum import STILL_SPEED, PendulumConfig, PendulumTask
from sim.physics import RobotSimulation
from sim.so_arm import SO_ARM
from sim.spec import RobotState

TASKS = [("pendulum", FURUTA, {"mode": "balance"}), ("pendulum", FURUTA, {"mode": "swingup"}),
         ("pendulum", FURUTA, {"mode": "swingup", "start_spread": 0.3}),
         ("reach", SO_ARM, None), ("push", SO_ARM, None)]


def still(positions: list[float] | np.ndarray, speed: float = 0.0) -> RobotState:
    positions = np.asarray(positions, dtype=float)
    return RobotState(positions, np.full(len(positions), speed))


@pytest.mark.parametrize(("name", "robot", "config"), TASKS)
def test_every_training_start_is_ready(name, robot, config) -> None:
    task = make_task(name, robot, config)
    for seed in range(200):
        pose = task.sample_pose(np.random.default_rng(seed))
        assert task.ready(still(pose)), (seed, pose.tolist())
    assert task.ready_hint()


def test_balance_is_ready_held_upright_and_still() -> None:
    task = PendulumTask(FURUTA, PendulumConfig(mode="balance"))
    assert task.ready(still([0.3, 0.15]))
    assert task.ready(still([0.0, 2 * np.pi - 0.1]))  # the encoder counted a whole turn
    assert not task.ready(still([0.0, 0.25]))  # beyond upright_tolerance
    assert not task.ready(still([0.0, np.pi]))  # hanging: fallen
    assert not task.ready(still([1.2, 0.0]))  # the arm outside the middle half of its range
    assert not task.ready(still([0.0, 0.1], speed=STILL_SPEED))  # swinging through upright
    # Ready is never an episode that ends at once.
    assert not task.evaluate(still([0.0, 0.19]), np.zeros(0), np.zeros((0, 1))).terminated
    assert "upright within 0.2 rad" in task.ready_hint()


def test_swingup_is_ready_hanging_at_rest_not_swinging() -> None:
    task = PendulumTask(FURUTA, PendulumConfig(mode="swingup"))
    sim = RobotSimulation(FURUTA)
    sim.reset(np.array([0.0, np.pi]))
    sim.step(25)  # 0.1 s at 0 V: at rest, as it hangs
    assert task.ready(sim.state())
    assert not task.ready(still([0.0, np.pi - 0.15]))
    # Let go 0.3 rad from hanging: it swings (slowly losing energy) and never reads ready.
    sim.reset(np.array([0.0, np.pi + 0.3]))
    readings = []
    for _ in range(250):  # 1 s, about two swings
        sim.step()
        readings.append(task.ready(sim.state()))
    assert not any(readings)
    assert task.ready_hint().startswith("let the pendulum hang still")


def test_push_is_ready_at_home_only() -> None:
    """A push ends with the arm down at the block: the deploy walks it home before the next
    (training starts every push within start_spread of the default pose)."""
    task = make_task("push", SO_ARM, None)
    assert task.ready(still(np.zeros(6)))
    assert task.ready(still([0.05, -0.05, 0.05, 0.05, 2.0, 1.0]))  # roll and gripper: not its
    assert not task.ready(still([0.0, 0.8, 0.6, 0.9, 0.0, 0.0]))  # down at the table
    assert "default pose" in task.ready_hint()
