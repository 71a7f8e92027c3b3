"""The firmware's parser under AddressSanitizer and UBSan (issue "Reference firmware"): byte
streams that hypothesis makes of good frames, garbage, truncated and bit-flipped frames and
frames of other versions go into the C core built as a program (firmware/ports/host/
frame_fuzz.c). It must not crash, leak or touch memory it should not (the sanitizers end it
with a report), and it must accept exactly the frames that are whole, answer only those, and
answer in frames the host reads."""

from __future__ import annotations

import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.firmware import build_host_firmware
from hardware.protocol import (
    Command,
    CommandMode,
    FrameReader,
    MessageType,
    ProtocolError,
    State,
    decode_body,
    encode_frame,
    hello_payload,
)
from sim.furuta import FURUTA

pytestmark = pytest.mark.slow

STREAMS_PER_RUN = 40


@pytest.fixture(scope="module")
def fuzz_program(tmp_path_factory: pytest.TempPathFactory) -> subprocess.Popen:
    program = build_host_firmware(FURUTA, tmp_path_factory.mktemp("fuzz"), fuzz=True)
    process = subprocess.Popen([str(program)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE,
                               env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
                                    "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"})
    yield process
    process.stdin.close()
    assert process.wait(timeout=30) == 0, process.stderr.read().decode()


def run_stream(process: subprocess.Popen, stream: bytes, piece: int) -> tuple[dict, bytes]:
    """One stream through the program: what the core counted and what it sent."""
    record = bytes([piece]) + stream
    process.stdin.write(struct.pack("<I", len(record)) + record)
    process.stdin.flush()
    head = process.stdout.read(16)
    if len(head) < 16:
        raise AssertionError("the firmware program died:\n" + process.stderr.read().decode())
    received, bad, overflows, size = struct.unpack("<4I", head)
    return {"received": received, "bad": bad, "overflows": overflows}, process.stdout.read(size)


def good_frames() -> st.SearchStrategy[bytes]:
    command = st.lists(st.floats(width=32, allow_nan=True), min_size=0, max_size=3).map(
        lambda targets: Command(CommandMode.VOLTAGE, tuple(targets)).to_payload())
    payload = st.one_of(st.just(hello_payload()), st.just(b""), command,
                        st.binary(max_size=40), st.just(bytes([1])))
    kinds = st.sampled_from([*MessageType, 0x00, 0x7F])
    return st.builds(lambda kind, seq, body, version: encode_frame(kind, seq, body, version),
                     kinds, st.integers(0, 0xFFFF), payload,
                     st.sampled_from([2, 2, 2, 1, 3]))


def damaged(frame: bytes, data: st.DataObject) -> bytes:
    how = data.draw(st.sampled_from(["whole", "truncated", "bit flipped", "no delimiter"]))
    if how == "truncated":
        return frame[:data.draw(st.integers(0, len(frame) - 1))]
    if how == "bit flipped":
        at = data.draw(st.integers(0, len(frame) - 1))
        flipped = bytearray(frame)
        flipped[at] ^= 1 << data.draw(st.integers(0, 7))
        return bytes(flipped)
    if how == "no delimiter":
        return frame[:-1]
    return frame


pieces = st.one_of(st.binary(min_size=1, max_size=300),  # garbage
                   st.binary(min_size=2100, max_size=2400).map(lambda b: b.replace(b"\0", b"\1")))


def expected_whole(stream: bytes) -> int:
    """Frames in the stream that a receiver must accept: the bytes between two delimiters that
    decode (COBS, length, CRC), whatever their version or type."""
    whole = 0
    for chunk in stream.split(b"\x00")[:-1]:
        if chunk:
            try:
                decode_body(chunk)
                whole += 1
            except ProtocolError:
                pass
    return whole


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.data_too_large])
@given(data=st.data())
def test_the_parser_takes_any_stream_and_accepts_only_whole_frames(fuzz_program, data) -> None:
    parts = data.draw(st.lists(st.one_of(good_frames().map(lambda f: damaged(f, data)), pieces),
                               min_size=1, max_size=12))
    if data.draw(st.booleans()):  # in a session, so commands and requests are acted on
        parts.insert(0, encode_frame(MessageType.HELLO, 0, hello_payload()))
    stream = b"".join(parts)
    piece = data.draw(st.sampled_from([1, 7, 64, 255]))
    counts, sent = run_stream(fuzz_program, stream, piece)
    assert counts["received"] == expected_whole(stream)
    assert counts["received"] + counts["bad"] + counts["overflows"] <= stream.count(b"\x00") + 1
    # Every answer is a whole frame of version 2; each STATE answers a request in the stream.
    reader = FrameReader()
    answers = reader.feed(sent)
    assert reader.bad_frames == 0 and sent.count(b"\x00") == len(answers)
    requests = {decode_body(c).seq for c in stream.split(b"\x00")[:-1] if c and _is(c, 3)}
    for frame in answers:
        assert frame.version == 2 and frame.type in set(MessageType)
        if frame.type == MessageType.STATE:
            assert State.from_payload(frame.payload).request_seq in requests


def _is(chunk: bytes, message_type: int) -> bool:
    try:
        frame = decode_body(chunk)
    except ProtocolError:
        return False
    return frame.type == message_type and frame.version == 2
