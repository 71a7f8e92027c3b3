"""The device emulator and the Feetech bus emulator served in a thread on a pty, and a "hand"
that holds the bus's limp arm in a pose, as a person does while calibrating."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from hardware.emulator import DeviceEmulator
from hardware.feetech.bus import FeetechBus
from hardware.feetech.calibration import Calibration, JointCalibration, default_ids
from hardware.feetech.emulator import FeetechBusEmulator
from hardware.feetech.protocol import CENTER_COUNTS, COUNTS_PER_TURN
from hardware.transports import PtyTransport
from sim.so_arm import SO_ARM

COUNT = 2 * np.pi / COUNTS_PER_TURN


class Running:
    """An emulator serving in a thread for the duration of a `with`."""

    def __init__(self, emulator: DeviceEmulator) -> None:
        self.emulator, self.stop = emulator, threading.Event()
        self.thread = threading.Thread(target=emulator.serve, kwargs={"stop": self.stop},
                                       daemon=True)

    def __enter__(self) -> DeviceEmulator:
        self.thread.start()
        return self.emulator

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


class ServoBus:
    """A FeetechBusEmulator of SO_ARM serving in a thread; `port` is where the host connects."""

    def __init__(self, **options: object) -> None:
        self.emulator = FeetechBusEmulator(SO_ARM, PtyTransport(), **options)
        self.port = self.emulator.transport.name
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.emulator.serve, kwargs={"stop": self.stop},
                                       daemon=True)
        self.thread.start()
        self._pose: np.ndarray | None = None
        self._hand: threading.Thread | None = None

    def angles(self) -> np.ndarray:
        sim = self.emulator.sim
        return np.array([sim.data.qpos[sim.qpos_index[j]] for j in SO_ARM.actuated_joint_index])

    def hold(self, pose: np.ndarray | None) -> None:
        """Hold the arm at `pose` (None: let go), as a hand would."""
        self._pose = None if pose is None else np.asarray(pose, dtype=float)
        if self._pose is not None and self._hand is None:
            self._hand = threading.Thread(target=self._holding, daemon=True)
            self._hand.start()
        time.sleep(0.05)

    def _holding(self) -> None:
        sim = self.emulator.sim
        while not self.stop.is_set():
            pose = self._pose
            if pose is None:
                break
            for k, j in enumerate(SO_ARM.actuated_joint_index):
                sim.data.qpos[sim.qpos_index[j]] = pose[k]
                sim.data.qvel[sim.qvel_index[j]] = 0.0
            time.sleep(0.001)
        self._hand = None

    def close(self) -> None:
        self._pose = None
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def servo_bus() -> Iterator:
    """Start bus emulators (`servo_bus(**FeetechBusEmulator options)`); all stopped at the end."""
    buses: list[ServoBus] = []

    def start(**options: object) -> ServoBus:
        buses.append(ServoBus(**options))
        return buses[-1]

    yield start
    for bus in buses:
        bus.close()


def middle_pose() -> np.ndarray:
    return (np.asarray(SO_ARM.position_low) + np.asarray(SO_ARM.position_high)) / 2


def hand_prompt(bus: ServoBus):
    """A calibration's person: the middle pose at the first prompt, then each joint to both ends
    of its range."""
    def prompt(message: str) -> None:
        middle = middle_pose()
        if "middle" in message:
            bus.hold(middle)
            return
        for k in range(SO_ARM.num_actuators):
            for end in (SO_ARM.position_low[k], SO_ARM.position_high[k]):
                pose = middle.copy()
                pose[k] = end
                bus.hold(pose)
        bus.hold(middle)
    return prompt


def nominal_calibration(zero_counts: np.ndarray | None = None) -> Calibration:
    """The calibration of an emulated arm whose joints read `zero_counts` (default 2048) at 0,
    Homing_Offset 0, ranged over the spec's limits."""
    zero = np.full(6, CENTER_COUNTS) if zero_counts is None else np.asarray(zero_counts)
    low = np.rint(zero + np.asarray(SO_ARM.position_low) / COUNT).astype(int)
    high = np.rint(zero + np.asarray(SO_ARM.position_high) / COUNT).astype(int)
    return Calibration("so_arm", tuple(
        JointCalibration(name, i, 1, 0, int(lo), int(hi))
        for (name, i), lo, hi in zip(default_ids(SO_ARM).items(), low, high, strict=True)))


def written(bus: ServoBus, calibration: Calibration) -> Calibration:
    """`calibration`, written into the emulated servos' registers."""
    with FeetechBus(bus.port) as host:
        calibration.write_registers(host)
    return calibration
