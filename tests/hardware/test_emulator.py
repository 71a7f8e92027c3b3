"""The emulated robot's physics: pinned overrides in the randomization schema, refused when not
pinned or not physical; commands act after the pinned delay."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.emulator import DeviceEmulator
from hardware.protocol import Command, CommandMode
from randomization.config import RandomizationConfig
from sim.physics import SERVO_KP_SLOT, RobotSimulation
from sim.so_arm import SO_ARM


class Silent:
    """A transport nobody is on: what the emulator writes is kept."""

    name = "nowhere"

    def __init__(self) -> None:
        self.written: list[bytes] = []

    def read(self, timeout: float) -> bytes:
        return b""

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def close(self) -> None: ...


def physics(**terms) -> RandomizationConfig:
    return RandomizationConfig.from_dict(terms)


def test_pinned_physics_is_the_robot_emulated() -> None:
    nominal = RobotSimulation(SO_ARM)
    emulator = DeviceEmulator(SO_ARM, Silent(), physics=physics(
        mass={"low": 1.3, "high": 1.3, "match": ".*"},
        actuator_kp={"low": 0.7, "high": 0.7},
        action_delay={"low": 2, "high": 2}))
    model = emulator.sim.model
    assert np.allclose(model.body_mass[1:], 1.3 * nominal.model.body_mass[1:])
    at = emulator.sim.ctrl_at
    assert np.allclose(model.actuator_gainprm[at, SERVO_KP_SLOT],
                       0.7 * nominal.model.actuator_gainprm[at, SERVO_KP_SLOT])
    assert emulator.command_delay == pytest.approx(2 * SO_ARM.control_period)
    assert emulator.physics_applied == {"mass": 1.3, "actuator_kp": 0.7}


def test_a_command_acts_after_the_pinned_delay(monkeypatch) -> None:
    import hardware.emulator

    clock = [100.0]
    monkeypatch.setattr(hardware.emulator.time, "perf_counter", lambda: clock[0])
    emulator = DeviceEmulator(SO_ARM, Silent(), physics=physics(
        action_latency={"low": 0.012, "high": 0.012}))
    emulator._start, emulator._session = 100.0, True
    target = np.full(6, 0.2)
    emulator._command(Command(CommandMode.POSITION, tuple(target)).to_payload())
    clock[0] = 100.010
    emulator._advance()
    assert np.allclose(emulator.sim.data.ctrl[emulator.sim.ctrl_at], 0.0)  # not yet
    clock[0] = 100.015
    emulator._advance()
    assert np.allclose(emulator.sim.data.ctrl[emulator.sim.ctrl_at], target, atol=2e-3)


def test_unpinned_or_unphysical_overrides_are_refused() -> None:
    with pytest.raises(ValueError, match="mass: the emulated robot is one robot, so each value "
                                         "must be pinned"):
        DeviceEmulator(SO_ARM, Silent(), physics=physics(mass={"low": 0.8, "high": 1.2}))
    with pytest.raises(ValueError, match="'observation_noise' is not a physical parameter"):
        DeviceEmulator(SO_ARM, Silent(), physics=physics(
            observation_noise={"distribution": "normal", "mean": 0.0, "std": 0.0}))
