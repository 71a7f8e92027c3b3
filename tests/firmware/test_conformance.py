"""Conformance of the reference firmware (issue "Reference firmware"): the C device side, built for
the Furuta pendulum on this computer and loaded as its host port, against the Python side of the
protocol (hardware/protocol.py, the host's). Every message type both ways, the session rules,
and the device-side watchdog on the board's own clock. The board's clock is the test's: each
timing is exact, not a measurement of this busy machine."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from hardware.firmware import FIRMWARE_NAME, FirmwareBoard
from hardware.firmware_emulator import check_firmware_robot
from hardware.protocol import (
    STATUS_DRIVING,
    STATUS_ESTOP,
    STATUS_WATCHDOG,
    Command,
    CommandMode,
    Description,
    DescriptionChunks,
    FaultCode,
    Frame,
    FrameReader,
    MessageType,
    State,
    decode_body,
    encode_frame,
    fault_payload,
    hello_payload,
    parse_fault,
)
from sim.furuta import FURUTA
from sim.so_arm import SO_ARM

pytestmark = pytest.mark.slow  # each session builds the firmware with cc first

WATCHDOG_US = 100_000


class Host:
    """The host's end of the wire to a board: frames encoded by Python, answers decoded by
    Python, the board's clock moved by hand."""

    def __init__(self, board: FirmwareBoard) -> None:
        self.board, self.reader, self.seq, self.now = board, FrameReader(), 0, 1_000
        board.begin(self.now)
        assert self.answers() == [(MessageType.FAULT, (FaultCode.RESET, "powered up"))]

    def send(self, message_type: int, payload: bytes = b"", version: int = 2) -> int:
        seq, self.seq = self.seq, self.seq + 1
        self.board.receive(encode_frame(message_type, seq, payload, version))
        return seq

    def frames(self) -> list[Frame]:
        return self.reader.feed(self.board.take_sent())

    def answers(self) -> list[tuple[int, object]]:
        """(type, payload) of each frame the device sent; a FAULT's as (code, message)."""
        return [(f.type, parse_fault(f.payload) if f.type == MessageType.FAULT else f.payload)
                for f in self.frames()]

    def advance(self, microseconds: int) -> None:
        self.now += microseconds
        self.board.set_clock(self.now)
        self.board.poll()

    def hello(self) -> Description:
        self.send(MessageType.HELLO, hello_payload())
        chunks = DescriptionChunks()
        for frame in self.frames():
            assert frame.type == MessageType.DESCRIPTION
            chunks.add(frame.payload)
        return Description.from_payload(chunks.joined())

    def command(self, *volts: float, mode: CommandMode = CommandMode.VOLTAGE) -> int:
        return self.send(MessageType.COMMAND, Command(mode, volts).to_payload())

    def state(self) -> State:
        seq = self.send(MessageType.STATE_REQUEST)
        (frame,) = self.frames()
        state = State.from_payload(frame.payload)
        assert state.request_seq == seq
        return state


@pytest.fixture
def board(furuta_firmware):
    board = FirmwareBoard(furuta_firmware)
    yield board
    board.close()


@pytest.fixture
def host(board) -> Host:
    return Host(board)


# -- framing: every message type, both ways -------------------------------------------------------
PAYLOADS = {
    MessageType.HELLO: hello_payload(),
    MessageType.DESCRIPTION: bytes([3, 24]) + b'{"robot": "furuta", "joint_na',
    MessageType.STATE_REQUEST: b"",
    MessageType.STATE: State(7, 6, 123_456_789, 123_000_000, STATUS_DRIVING, (0.1, 3.0),
                             (-1.5, 0.0), (0.02, 0.0)).to_payload(),
    MessageType.COMMAND: Command(CommandMode.VOLTAGE, (-2.5,)).to_payload(),
    MessageType.HEARTBEAT: b"",
    MessageType.ESTOP: b"",
    MessageType.RELEASE: b"",
    MessageType.FAULT: fault_payload(FaultCode.BAD_COMMAND, "expected 1 finite voltage targets"),
    MessageType.DESCRIPTION_REQUEST: bytes([5]),
}


def test_every_message_type_is_framed_alike_by_the_c_core_and_python(board) -> None:
    assert set(PAYLOADS) == set(MessageType)
    # Besides the messages: zeros everywhere, and runs of non-zero bytes past COBS's 254.
    odd = {"zeros": bytes(40), "long run": bytes(range(1, 256)) * 3, "mixed": bytes(range(256)) * 4}
    for name, (message_type, payload) in {**{t.name: (t, p) for t, p in PAYLOADS.items()},
                                          **{n: (0x42, p) for n, p in odd.items()}}.items():
        for seq in (0, 255, 256, 65535):
            python = encode_frame(message_type, seq, payload)
            c = board.encode_frame(message_type, seq, payload)
            assert c == python, name
            assert decode_body(c[:-1]) == Frame(message_type, seq, payload), name
            body = board.decode_frame(python[:-1])
            assert body is not None and body[4:-2] == payload and body[1] == message_type, name
            assert int.from_bytes(body[2:4], "little") == seq, name


def test_the_c_core_rejects_a_frame_with_any_bit_flipped(board) -> None:
    frame = encode_frame(MessageType.COMMAND, 9, Command(CommandMode.VOLTAGE, (1.0,)).to_payload())
    for at in range(len(frame) - 1):
        for bit in range(8):
            flipped = bytearray(frame[:-1])
            flipped[at] ^= 1 << bit
            if 0 in flipped:
                continue  # a new delimiter: two pieces, each too short to be a frame
            assert board.decode_frame(bytes(flipped)) is None, (at, bit)
    assert board.decode_frame(frame[:-3]) is None  # truncated


# -- the session ----------------------------------------------------------------------------------
def test_the_handshake_sends_the_robotspecs_description_in_chunks(host) -> None:
    description = host.hello()
    assert description == Description.of_spec(FURUTA, WATCHDOG_US / 1e3, firmware=FIRMWARE_NAME)
    assert math.isinf(description.position_high[1])
    # A chunk asked for again comes again, alone; past the last one, nothing.
    count = -(-len(description.to_payload()) // 32)
    host.send(MessageType.DESCRIPTION_REQUEST, bytes([2]))
    ((kind, payload),) = host.answers()
    assert kind == MessageType.DESCRIPTION and payload[:2] == bytes([2, count])
    host.send(MessageType.DESCRIPTION_REQUEST, bytes([count]))
    assert host.answers() == []


def test_a_state_answers_its_request_with_the_encoders_reading(host, board) -> None:
    positions, velocities = np.array([0.3, -0.02]), np.array([1.25, -4.0])
    board.set_joints(positions, velocities)
    host.advance(2_500)
    state = host.state()
    # Whole encoder counts, as the simulation quantizes them; the tachometer's speed as is.
    np.testing.assert_allclose(state.positions, FURUTA.quantize_positions(positions), atol=1e-6)
    np.testing.assert_allclose(state.velocities, velocities, rtol=1e-6)
    assert state.device_time_us == host.now and state.command_time_us == 0
    assert state.status == 0 and state.sensors == ()
    host.hello()
    host.advance(1_000)
    seq = host.command(4.0)
    after = host.state()
    assert after.status == STATUS_DRIVING
    assert (after.command_seq, after.command_time_us) == (seq, host.now)
    # The motor's torque from its voltage and back-EMF: kt (V - km w) / R.
    motor = FURUTA.actuators[0]
    expected = motor.torque_constant * (4.0 - motor.back_emf_constant * 1.25) / motor.resistance
    assert after.efforts == pytest.approx((expected, 0.0), rel=1e-5)


def test_commands_are_clamped_to_the_robots_limits_and_applied(host, board) -> None:
    host.hello()
    host.command(3.5)
    assert board.driven()[:2] == (pytest.approx([3.5]), True)
    host.command(25.0)  # past the +-10 V of the RobotSpec
    assert board.driven()[0] == pytest.approx([10.0])
    host.command(-1e9)
    assert board.driven()[0] == pytest.approx([-10.0])
    assert host.answers() == []  # a good command has no answer of its own
    assert board.counters()["commands"] == 3


@pytest.mark.parametrize("payload, says", [
    (Command(CommandMode.POSITION, (1.0,)).to_payload(), "got 1 position"),
    (Command(CommandMode.VOLTAGE, (1.0, 2.0)).to_payload(), "got 2 voltage"),
    (Command(CommandMode.VOLTAGE, (math.nan,)).to_payload(), "expected 1 finite voltage"),
    (Command(CommandMode.VOLTAGE, (math.inf,)).to_payload(), "expected 1 finite voltage"),
    (bytes([3, 1, 0, 0]), "COMMAND of 4 bytes"),
    (bytes([9, 1]) + struct.pack("<f", 1.0), "of a known mode"),
])
def test_a_bad_command_is_refused_by_name_and_not_applied(host, board, payload, says) -> None:
    host.hello()
    host.command(2.0)
    host.send(MessageType.COMMAND, payload)
    ((kind, (code, message)),) = host.answers()
    assert (kind, code) == (MessageType.FAULT, FaultCode.BAD_COMMAND) and says in message
    assert board.driven()[0] == pytest.approx([2.0])


def test_outside_a_session_commands_are_refused_and_a_wrong_version_named(host, board) -> None:
    host.command(2.0)
    assert host.answers() == [(MessageType.FAULT, (FaultCode.NO_SESSION,
                                                   "no session: send HELLO first"))]
    assert board.driven()[0] == pytest.approx([0.0])
    host.send(MessageType.HELLO, b"S2R" + bytes([3]))
    version_fault = (MessageType.FAULT, (FaultCode.VERSION, "this device speaks protocol version 2"))
    assert host.answers() == [version_fault]
    host.send(MessageType.HEARTBEAT, version=1)  # a frame of another version, whatever its type
    assert host.answers() == [version_fault]
    host.send(MessageType.HELLO, b"XYZ" + bytes([2]))  # not a HELLO: ignored
    host.send(0x7E, b"future")  # a type this device does not know: ignored
    assert host.answers() == []


def test_silence_stops_the_motor_within_the_watchdog_period_and_heartbeats_prevent_it(
        host, board) -> None:
    host.hello()
    # Heartbeats every half period keep it driving for 10 periods.
    host.command(5.0)
    for _ in range(20):
        host.advance(WATCHDOG_US // 2)
        host.send(MessageType.HEARTBEAT)
    assert board.driven()[0] == pytest.approx([5.0]) and host.answers() == []
    # Then the host falls silent: the board's loop polls every 100 us.
    silent_from, stopped_at = host.now, None
    while stopped_at is None and host.now - silent_from < 3 * WATCHDOG_US:
        host.advance(100)
        if board.driven()[0][0] == 0.0:
            stopped_at = host.now
    assert stopped_at is not None, "the motor still had 5 V three watchdog periods later"
    assert WATCHDOG_US < stopped_at - silent_from <= WATCHDOG_US + 100
    ((kind, (code, message)),) = host.answers()
    assert (kind, code) == (MessageType.FAULT, FaultCode.WATCHDOG) and "100 ms" in message
    assert host.state().status == STATUS_WATCHDOG
    # Held: commands are refused until a new HELLO.
    host.command(5.0)
    assert host.answers()[0][1][0] == FaultCode.NO_SESSION
    host.hello()
    host.command(1.0)
    assert board.driven()[0] == pytest.approx([1.0]) and board.counters()["watchdog_trips"] == 1


def test_an_estop_from_the_host_or_the_button_holds_at_zero_volts(host, board) -> None:
    host.hello()
    host.command(6.0)
    host.send(MessageType.ESTOP)
    ((kind, (code, _)),) = host.answers()
    assert (kind, code) == (MessageType.FAULT, FaultCode.ESTOP)
    assert board.driven()[0] == pytest.approx([0.0]) and host.state().status == STATUS_ESTOP
    host.hello()
    host.command(6.0)
    board.set_estop(True)
    host.advance(100)
    assert host.answers()[0][1][0] == FaultCode.ESTOP
    assert board.driven()[0] == pytest.approx([0.0])
    host.send(MessageType.HELLO, hello_payload())  # refused while the button is pressed
    ((kind, (code, message)),) = host.answers()
    assert code == FaultCode.ESTOP and "release it" in message
    board.set_estop(False)
    host.advance(100)
    assert host.hello().robot == "furuta"


def test_release_turns_the_amplifier_off_and_ends_the_session(host, board) -> None:
    host.hello()
    host.command(3.0)
    host.send(MessageType.RELEASE)
    targets, enabled, _ = board.driven()
    assert targets == pytest.approx([0.0]) and not enabled
    assert host.state().status == 0
    host.command(3.0)
    assert host.answers()[0][1][0] == FaultCode.NO_SESSION


def test_a_restart_ends_the_session_with_a_reset_fault(host, board) -> None:
    host.hello()
    host.command(3.0)
    Host(board)  # powers it up again: its first word is FAULT RESET
    assert board.driven()[0] == pytest.approx([0.0])
    host.command(3.0)
    assert host.answers()[0][1][0] == FaultCode.NO_SESSION


def test_the_emulator_refuses_a_firmware_built_for_another_robot(furuta_firmware, board) -> None:
    with pytest.raises(ValueError, match="built for 'furuta'.*differs from the RobotSpec 'so_arm' "
                                         "in robot, joint_names"):
        check_firmware_robot(board, SO_ARM, furuta_firmware)
    check_firmware_robot(board, FURUTA, furuta_firmware)
