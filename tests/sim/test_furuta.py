"""The Furuta pendulum: its DC motor behaves like one, and both tasks are solvable by a scripted
controller (LQR balance from the model's own linearization; energy-pumping swing-up, then LQR)."""

import mujoco
import numpy as np
import pytest

from sim.furuta import FURUTA, QUBE_MOTOR
from sim.pendulum import wrap_angle
from sim.physics import RobotSimulation
from sim.registration import make_env

MASS, HALF_LENGTH, LENGTH = 0.024, 0.129 / 2, 0.129
PIVOT_INERTIA = MASS * LENGTH**2 / 3


def test_motor_reaches_its_back_emf_speed_limit() -> None:
    """At V the arm settles where motor torque kt (V - ke w) / R meets viscous friction Dr w."""
    sim = RobotSimulation(FURUTA)
    sim.reset(np.array([0.0, np.pi]))
    sim.set_command(np.array([2.0]))
    for _ in range(1500):  # 6 s, several time constants
        sim.step()
    omega = sim.state().velocities[0]
    kt, ke, r = (QUBE_MOTOR.torque_constant, QUBE_MOTOR.back_emf_constant, QUBE_MOTOR.resistance)
    damping = sim.model.joint("arm").damping[0]
    assert omega == pytest.approx(kt * 2.0 / r / (kt * ke / r + damping), rel=0.05)
    stall = QUBE_MOTOR.torque_constant * 2.0 / QUBE_MOTOR.resistance
    sim.reset(np.array([0.0, np.pi]))
    sim.set_command(np.array([2.0]))
    mujoco.mj_forward(sim.model, sim.data)
    assert sim.data.actuator_force[0] == pytest.approx(stall)


def lqr_gain() -> np.ndarray:
    """Discrete LQR on a finite-difference linearization of one control period at upright."""
    sim = RobotSimulation(FURUTA)

    def step(x: np.ndarray, u: float) -> np.ndarray:
        sim.reset(x[:2])
        sim.data.qvel[sim.qvel_index] = x[2:]
        sim.set_command(np.array([u]))
        sim.step()
        return np.concatenate([sim.data.qpos[sim.qpos_index], sim.data.qvel[sim.qvel_index]])

    x0, eps = np.zeros(4), 1e-6
    f0 = step(x0, 0.0)
    a = np.stack([(step(x0 + eps * np.eye(4)[i], 0.0) - f0) / eps for i in range(4)], axis=1)
    b = ((step(x0, eps) - f0) / eps)[:, None]
    q, r = np.diag([1.0, 10.0, 0.1, 0.1]), np.array([[0.1]])
    p = q.copy()
    for _ in range(3000):
        k = np.linalg.solve(r + b.T @ p @ b, b.T @ p @ a)
        p = q + a.T @ p @ (a - b @ k)
    return k


def read(env) -> np.ndarray:
    state = env.unwrapped.sim.state()
    return np.array([state.positions[0], wrap_angle(state.positions[1]), *state.velocities])


def scripted_action(x: np.ndarray, gain: np.ndarray, max_voltage: float) -> float:
    theta, alpha, theta_dot, alpha_dot = x
    if abs(alpha) < 0.3:
        return float(np.clip(-(gain @ x)[0] / max_voltage, -1, 1))
    # Energy pumping: swing the arm (position-controlled, +-0.8 rad) in phase with the pendulum
    # until its energy exceeds upright's; the margin covers energy the arm takes back.
    energy = (0.5 * PIVOT_INERTIA * alpha_dot**2
              + MASS * 9.81 * HALF_LENGTH * (np.cos(alpha) - 1)) / (MASS * 9.81 * HALF_LENGTH)
    target = 0.8 * np.sign(alpha_dot * np.cos(alpha)) * np.clip(1.0 - energy, 0.0, 1.0)
    return float(np.clip((10.0 * (target - theta) - 0.5 * theta_dot) / max_voltage, -1, 1))


@pytest.mark.parametrize("env_id", ["sim2real/FurutaBalance-v0", "sim2real/FurutaSwingup-v0"])
def test_scripted_controller_succeeds(env_id: str) -> None:
    env = make_env(env_id)
    gain = lqr_gain()
    max_voltage = env.unwrapped.task.config.max_voltage
    successes = []
    for seed in range(5):
        env.reset(seed=seed)
        terminated = truncated = False
        while not (terminated or truncated):
            action = scripted_action(read(env), gain, max_voltage)
            _, _, terminated, truncated, info = env.step(np.array([action], np.float32))
        successes.append(info["is_success"] and truncated)
    assert all(successes)


def test_balance_fails_without_control() -> None:
    env = make_env("sim2real/FurutaBalance-v0")
    env.reset(seed=0)
    for step in range(1, 2000):  # noqa: B007 (the count is the assertion)
        _, _, terminated, truncated, info = env.step(np.zeros(1, np.float32))
        if terminated or truncated:
            break
    assert terminated and not info["is_success"] and step < 200
