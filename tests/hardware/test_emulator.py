"""The emulated robot's physics: pinned overrides in the randomization schema, refused when not
pinned or not physical; commands act after the pinned delay; the hand at a pendulum rig."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.emulate import banner, emulator_for
from hardware.emulation import Hand
from hardware.emulator import DeviceEmulator
from hardware.protocol import Command, CommandMode
from randomization.config import RandomizationConfig
from sim.furuta import FURUTA
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
    emulator._command(Command(CommandMode.POSITION, tuple(target)).to_payload(), 7)
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


def test_the_hand_holds_the_pendulum_until_driven_and_catches_it_after_a_fall(monkeypatch) -> None:
    import hardware.emulator

    clock = [100.0]
    monkeypatch.setattr(hardware.emulator.time, "perf_counter", lambda: clock[0])
    pose = np.array([0.0, 0.05])
    emulator = DeviceEmulator(FURUTA, Silent(), hand=Hand(pose, catch_seconds=1.0))
    emulator._start, emulator._session = 100.0, True
    counters = emulator.counters

    def at(seconds: float, volts: float | None = None) -> np.ndarray:
        """Send `volts` (if given) at 100 + `seconds`, then read the joints."""
        clock[0] = 100.0 + seconds
        if volts is not None:
            emulator._command(Command(CommandMode.VOLTAGE, (volts,)).to_payload(), 7)
        emulator._advance()
        state = emulator.sim.state()
        assert emulator.sim.data.time == pytest.approx(seconds, abs=2e-3)  # the clock runs on
        return np.r_[state.positions, state.velocities]

    held = np.r_[FURUTA.quantize_positions(pose), 0.0, 0.0]
    assert np.allclose(at(0.5), held)  # held, at 0 V from power-up: nothing moves
    assert np.allclose(at(0.6, volts=0.0), held) and np.allclose(at(1.0, volts=0.0), held)
    assert counters.hand_releases == 0  # the host's engage phase sends 0 V: still held
    at(1.0, volts=1.0)  # the first voltage lets go
    assert counters.hand_releases == 1 and abs(at(1.2, volts=0.0)[1]) > 0.1  # it falls
    assert not np.allclose(at(2.15), held) and counters.hand_catches == 0  # 0.95 s at 0 V
    assert np.allclose(at(2.25), held) and counters.hand_catches == 1  # 1 s: put back up
    assert np.allclose(at(3.0, volts=0.0), held) and counters.hand_catches == 1
    assert "until the first nonzero command; it puts them back after 1 s at 0 V" in " ".join(
        banner(emulator, "sim2real"))


def test_a_hand_needs_a_motor_robot_and_its_pose() -> None:
    with pytest.raises(ValueError, match="--catch puts furuta back at its --pose: add --pose"):
        emulator_for("furuta", catch=1.0)
    with pytest.raises(ValueError, match="so_arm's servos hold their own pose"):
        emulator_for("so_arm", pose=[0.0] * 6, catch=1.0)
    with pytest.raises(ValueError, match="--catch must be > 0 seconds, got 0"):
        emulator_for("furuta", pose=[0.0, 0.05], catch=0.0)
