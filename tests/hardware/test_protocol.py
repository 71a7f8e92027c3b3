"""The wire protocol: every message survives a round trip, the reader resynchronises after
garbage, a wrong version is refused, and no byte sequence crashes the parser."""

from __future__ import annotations

import math
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.protocol import (
    VERSION,
    Command,
    CommandMode,
    Description,
    FaultCode,
    Frame,
    FrameReader,
    MessageType,
    ProtocolError,
    State,
    cobs_decode,
    cobs_encode,
    decode_body,
    encode_frame,
    fault_payload,
    hello_payload,
    parse_fault,
    parse_hello,
)
from sim.furuta import FURUTA
from sim.so_arm import SO_ARM

STATE = State(request_seq=77, command_seq=76, device_time_us=123_456_789, command_time_us=123_450_000,
              status=4,
              positions=(0.5, -0.25, 1.0), velocities=(0.0, 2.0, -3.5), efforts=(0.1, 0.2, 0.3),
              sensors=(9.81,))


def frames_of(data: bytes) -> list[Frame]:
    return FrameReader().feed(data)


@pytest.mark.parametrize("message_type, payload", [
    (MessageType.HELLO, hello_payload()),
    (MessageType.DESCRIPTION, Description.of_spec(SO_ARM, 100.0).to_payload()),
    (MessageType.STATE_REQUEST, b""),
    (MessageType.STATE, STATE.to_payload()),
    (MessageType.COMMAND, Command(CommandMode.POSITION, (0.5, -1.0, 0.25)).to_payload()),
    (MessageType.HEARTBEAT, b""),
    (MessageType.ESTOP, b""),
    (MessageType.RELEASE, b""),
    (MessageType.FAULT, fault_payload(FaultCode.WATCHDOG, "no command for 100 ms")),
])
def test_every_message_type_round_trips(message_type, payload) -> None:
    wire = encode_frame(message_type, 65_535, payload)
    assert wire.endswith(b"\x00") and b"\x00" not in wire[:-1]
    (frame,) = frames_of(wire)
    assert frame == Frame(message_type, 65_535, payload, VERSION)


def test_payloads_decode_to_what_was_encoded() -> None:
    assert parse_hello(hello_payload()) == VERSION
    description = Description.of_spec(FURUTA, 50.0, firmware="1.2")
    back = Description.from_payload(description.to_payload())
    assert back == description and back.position_high[1] == math.inf  # JSON keeps infinity
    state = State.from_payload(STATE.to_payload())
    assert state.request_seq == 77 and state.device_time_us == 123_456_789 and state.status == 4
    assert state.command_time_us == 123_450_000
    assert state.positions == pytest.approx(STATE.positions)
    assert state.sensors == pytest.approx((9.81,), rel=1e-6)
    command = Command.from_payload(Command(CommandMode.VOLTAGE, (-6.0,)).to_payload())
    assert command == Command(CommandMode.VOLTAGE, (-6.0,))
    assert parse_fault(fault_payload(FaultCode.RESET, "powered up")) == (4, "powered up")


def test_cobs_handles_zeros_and_long_runs() -> None:
    for size in (0, 1, 253, 254, 255, 508, 1000):
        for data in (os.urandom(size), bytes(size), b"\x01" * size):
            encoded = cobs_encode(data)
            assert b"\x00" not in encoded and cobs_decode(encoded) == data


def test_reader_resynchronises_after_garbage_and_counts_it() -> None:
    good = encode_frame(MessageType.STATE, 5, STATE.to_payload())
    reader = FrameReader()
    stream = os.urandom(300).replace(b"\x00", b"\x01") + b"\x00" + good
    # Delivered in awkward pieces, as a serial port does.
    frames = []
    for i in range(0, len(stream), 7):
        frames += reader.feed(stream[i:i + 7])
    assert [f.seq for f in frames] == [5] and reader.bad_frames == 1
    corrupted = bytearray(good)
    corrupted[10] ^= 0x10
    frames = reader.feed(bytes(corrupted) + good)
    assert [f.seq for f in frames] == [5] and reader.bad_frames == 2


def test_a_wrong_version_is_visible_and_hello_checks_its_magic() -> None:
    (frame,) = frames_of(encode_frame(MessageType.HELLO, 0, hello_payload(2), version=2))
    assert frame.version == 2 and parse_hello(frame.payload) == 2
    with pytest.raises(ProtocolError, match="S2R"):
        parse_hello(b"AT+GMR")


def test_malformed_payloads_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="STATE for 3 joints"):
        State.from_payload(STATE.to_payload()[:-1])
    with pytest.raises(ProtocolError, match="mode 9"):
        Command.from_payload(bytes([9, 0]))
    with pytest.raises(ProtocolError, match="lacks"):
        Description.from_payload(b'{"robot": "so_arm"}')
    with pytest.raises(ProtocolError, match="CRC"):
        decode_body(encode_frame(MessageType.HEARTBEAT, 1)[:-1][:-1] + b"\x07")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=1, max_value=64))
def test_no_byte_sequence_crashes_the_reader(data: bytes, piece: int) -> None:
    reader = FrameReader()
    for i in range(0, len(data), piece):
        for frame in reader.feed(data[i:i + piece]):
            assert 0 <= frame.seq <= 0xFFFF and isinstance(frame.payload, bytes)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_no_payload_crashes_the_message_parsers(payload: bytes) -> None:
    for parse in (State.from_payload, Command.from_payload, Description.from_payload,
                  parse_fault, parse_hello):
        try:
            parse(payload)
        except ProtocolError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(list(MessageType)), st.integers(0, 0xFFFF), st.binary(max_size=500),
       st.binary(max_size=50))
def test_any_frame_survives_noise_before_it(message_type, seq, payload, noise) -> None:
    wire = noise + b"\x00" + encode_frame(message_type, seq, payload)
    frames = frames_of(wire)
    assert frames[-1] == Frame(message_type, seq, payload, VERSION)
