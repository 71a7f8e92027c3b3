"""SerialRobot against the device emulator (in a thread, over a real pty or TCP socket through
pyserial), and against devices that are absent, speak something else, or are another robot."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from conftest import Running

from hardware.emulator import DeviceEmulator
from hardware.faults import WireFaults
from hardware.protocol import FrameReader, MessageType, encode_frame
from hardware.serial_robot import DeviceError, SerialRobot
from hardware.transports import PtyTransport, TcpTransport
from sim.furuta import FURUTA
from sim.so_arm import SO_ARM


@pytest.mark.parametrize("transport", [PtyTransport, pytest.param(
    lambda: TcpTransport(0), marks=pytest.mark.slow)], ids=["pty", "tcp"])
@pytest.mark.slow  # an end-to-end run: the fast subset keeps under 60 s
def test_read_and_command_through_the_emulator(transport) -> None:
    wire = transport()
    with Running(DeviceEmulator(SO_ARM, wire)) as device, SerialRobot(wire.name, SO_ARM) as arm:
        assert arm.description.robot == "so_arm" and arm.description.mode == "position"
        first = arm.read_state()
        goal = np.array([0.3, -0.2, 0.2, 0.1, 0.0, 0.0])
        for _ in range(60):  # 1.2 s of a 50 Hz loop
            state = arm.read_state()
            arm.send_command(goal)
            time.sleep(0.02)
        assert state.time > first.time + 1.0  # the device's clock: physics in real time
        assert np.allclose(state.positions, goal, atol=0.03)
        arm.release()
        time.sleep(0.05)
    assert device.counters.commands == 60
    assert arm.stats.frames_received >= 61 and arm.stats.crc_errors == 0
    assert arm.stats.summary()["round_trip_p50_us"] > 0


def test_a_port_that_does_not_exist() -> None:
    with pytest.raises(DeviceError, match="cannot open serial port '/dev/ttyNOPE9'.*--robot sim"):
        SerialRobot("/dev/ttyNOPE9", SO_ARM).connect()


class Talker:
    """A device on a pty that answers every chunk it hears with `answer(data)`."""

    def __init__(self, answer) -> None:
        self.wire, self.answer, self.stop = PtyTransport(), answer, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            data = self.wire.read(0.01)
            if data:
                self.wire.write(self.answer(data))

    def __enter__(self) -> str:
        self.thread.start()
        return self.wire.name

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(2)
        self.wire.close()


def test_a_device_that_speaks_another_protocol() -> None:
    with Talker(lambda data: b"ERROR\r\nOK\r\n") as port:
        robot = SerialRobot(port, SO_ARM, handshake_timeout=0.3)
        with pytest.raises(DeviceError, match="no valid sim2real frame"):
            robot.connect()
        assert robot.port is None  # closed again: nothing was sent after the HELLO


def test_a_device_of_another_protocol_version() -> None:
    def version_two(data: bytes) -> bytes:
        return encode_frame(MessageType.DESCRIPTION, 0, b"{}", version=3)

    with Talker(version_two) as port:
        with pytest.raises(DeviceError, match="speaks protocol version 3; this host speaks 2"):
            SerialRobot(port, SO_ARM, handshake_timeout=0.5).connect()


def test_a_device_that_is_another_robot_is_refused_before_any_command() -> None:
    wire = PtyTransport()
    with Running(DeviceEmulator(FURUTA, wire)) as device:
        with pytest.raises(DeviceError, match="not the robot 'so_arm', refusing to move: "
                                              "robot: expected 'so_arm', device says 'furuta'"
                                              ".*joint order"):
            SerialRobot(wire.name, SO_ARM).connect()
        time.sleep(0.05)
    assert device.counters.commands == 0


def test_the_device_watchdog_holds_and_the_host_is_told() -> None:
    wire = PtyTransport()
    with Running(DeviceEmulator(SO_ARM, wire, watchdog_ms=50)), \
            SerialRobot(wire.name, SO_ARM) as arm:
        arm.send_command(np.full(6, 0.2))
        time.sleep(0.2)  # no command for 4 watchdog periods
        with pytest.raises(DeviceError, match="stopped: WATCHDOG: no command for 50 ms"):
            arm.read_state()
            arm.read_state()
    assert arm.stats.faults == {"WATCHDOG": 1}


def test_a_device_reset_is_answered_with_a_new_handshake() -> None:
    wire = PtyTransport()
    with Running(DeviceEmulator(SO_ARM, wire, faults=WireFaults(reset_at=(0.3,)))), \
            SerialRobot(wire.name, SO_ARM) as arm:
        times = []
        for _ in range(40):
            times.append(arm.read_state().time)
            arm.send_command(np.zeros(6))
            time.sleep(0.02)
    assert arm.stats.faults.get("RESET") == 1 and arm.stats.reconnects == 1
    assert times[-1] > 0.6


@pytest.mark.slow
def test_corruption_and_drops_are_counted_and_survived() -> None:
    wire = PtyTransport()
    faults = WireFaults(corrupt_byte_rate=0.01, drop_frame_rate=0.1, rates_from=0.3, seed=1)
    start = time.perf_counter()
    with Running(DeviceEmulator(SO_ARM, wire, faults=faults)), \
            SerialRobot(wire.name, SO_ARM) as arm:
        while time.perf_counter() - start < 0.25:  # a clean start, the faults from 0.3 s
            arm.read_state()
            arm.send_command(np.zeros(6))
            time.sleep(0.005)
        answered = 0
        for _ in range(150):
            try:
                arm.read_state()
                answered += 1
            except TimeoutError:
                pass
            arm.send_command(np.zeros(6))
            time.sleep(0.005)
    stats = arm.stats
    # A 100-byte STATE arrives whole 37% of the time at 1% byte errors, and 10% of frames
    # are lost each way: one request in four gets through; asking again within the read's
    # timeout (10 ms here) makes most reads succeed.
    assert answered >= 0.7 * 150
    assert stats.crc_errors > 0 and stats.retries > 0 and stats.dropped_frames > 0
    assert faults.counts["corrupted_bytes"] > 0 and faults.counts["dropped_frames"] > 0
    assert answered + stats.timeouts == 150


def test_reader_survives_a_pty_full_of_noise() -> None:
    wire = PtyTransport()
    reader = FrameReader()
    writer = os.open(wire.name, os.O_RDWR | os.O_NOCTTY)
    try:
        wire.write(os.urandom(5000))
        data = b""
        deadline = time.time() + 1
        while len(data) < 5000 and time.time() < deadline:
            try:
                data += os.read(writer, 5000)
            except BlockingIOError:
                break
        reader.feed(data)  # raw mode: every byte arrives as sent, none crash the reader
        assert len(data) == 5000
    finally:
        os.close(writer)
        wire.close()


def test_a_sequence_number_the_device_could_not_have_sent_is_not_counted_as_frames_lost() -> None:
    """A corrupted frame whose CRC-16 still matches (1 in 65,536 of them; on a line corrupting
    1% of bytes, one in a few hundred runs) once counted a jump of thousands of frames lost."""
    arm = SerialRobot("/dev/null", SO_ARM)
    arrived: list[bytes] = []
    arm._read_some = lambda deadline: arrived.pop(0)
    arm._device_seq, arm.stats.frames_sent = 100, 40
    arm._sent_at_device_frame = 30  # 10 host frames since the device's last
    arrived.append(encode_frame(MessageType.HEARTBEAT, 104))  # 3 lost: possible
    arm._receive(0.0)
    assert arm.stats.dropped_frames == 3
    arrived.append(encode_frame(MessageType.HEARTBEAT, 104 + 5000))  # impossible after 0 asked
    arrived.append(encode_frame(MessageType.HEARTBEAT, 105))  # the sequence goes on
    arm._receive(0.0)
    arm._receive(0.0)
    assert arm.stats.dropped_frames == 3 and arm.stats.frames_received == 3
