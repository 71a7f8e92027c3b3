"""Feetech protocol 0 byte by byte: every instruction and status packet against examples worked
out by hand from the published format (FF FF ID LEN INSTR/ERR P1..Pn CHK, LEN = n + 2,
CHK = ~(ID + LEN + INSTR/ERR + params) & 0xFF), sign-magnitude values, the STS3215 control table
as ROBOT_FACTS section 6 lists it, and streaming readers that no byte sequence crashes and that
never take a packet with a bad checksum."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hardware.feetech.protocol import (
    BAUD_RATES,
    BROADCAST_ID,
    CONTROL_TABLE,
    MODEL_STS3215,
    TABLE_SIZE,
    Instruction,
    InstructionPacket,
    InstructionReader,
    ProtocolError,
    ServoError,
    StatusPacket,
    StatusReader,
    action_packet,
    baud_code,
    checksum,
    counts_to_radians,
    decode_instruction,
    decode_registers,
    decode_status,
    expect_reply,
    from_sign_magnitude,
    parse_read,
    parse_sync_read,
    parse_sync_write,
    parse_write,
    ping_packet,
    radians_to_counts,
    read_packet,
    recovery_packet,
    reg_write_packet,
    register,
    registers_in,
    reset_packet,
    status_packet,
    sync_read_packet,
    sync_write_packet,
    to_sign_magnitude,
    wire_seconds,
    write_packet,
)


def hex_bytes(text: str) -> bytes:
    return bytes.fromhex(text)


# -- instruction packets, by hand ----------------------------------------------------------------
@pytest.mark.parametrize("packet, wire", [
    # PING servo 1: 01 + 02 + 01 = 0x04, ~0x04 = 0xfb
    (ping_packet(1), "ff ff 01 02 01 fb"),
    # READ servo 1, 2 bytes at 56 (0x38, Present_Position): 01 + 04 + 02 + 38 + 02 = 0x41 -> 0xbe
    (read_packet(1, 56, 2), "ff ff 01 04 02 38 02 be"),
    # WRITE servo 1, Goal_Position (42 = 0x2a) = 2048 = 0x0800 little-endian 00 08:
    # 01 + 05 + 03 + 2a + 00 + 08 = 0x3b -> 0xc4
    (write_packet(1, 42, bytes((0x00, 0x08))), "ff ff 01 05 03 2a 00 08 c4"),
    # REG_WRITE servo 2, 1000 = 0x03e8 at 42: 02 + 05 + 04 + 2a + e8 + 03 = 0x120, low byte 0x20
    # -> 0xdf
    (reg_write_packet(2, 42, bytes((0xE8, 0x03))), "ff ff 02 05 04 2a e8 03 df"),
    # ACTION to all: fe + 02 + 05 = 0x105, low byte 0x05 -> 0xfa
    (action_packet(), "ff ff fe 02 05 fa"),
    # RECOVERY servo 1: 01 + 02 + 06 = 0x09 -> 0xf6
    (recovery_packet(1), "ff ff 01 02 06 f6"),
    # RESET servo 1: 01 + 02 + 0a = 0x0d -> 0xf2
    (reset_packet(1), "ff ff 01 02 0a f2"),
    # SYNC READ 2 bytes at 56 from servos 1, 2, 3: five parameters, LEN 7;
    # fe + 07 + 82 + 38 + 02 + 01 + 02 + 03 = 0x1c7, low byte 0xc7 -> 0x38
    (sync_read_packet(56, 2, (1, 2, 3)), "ff ff fe 07 82 38 02 01 02 03 38"),
    # SYNC WRITE 2 bytes at 42: servo 1 <- 2048 (00 08), servo 2 <- 1000 (e8 03); eight
    # parameters, LEN 0x0a; fe + 0a + 83 + 2a + 02 + 01 + 00 + 08 + 02 + e8 + 03 = 0x2ad -> 0x52
    (sync_write_packet(42, {1: bytes((0x00, 0x08)), 2: bytes((0xE8, 0x03))}),
     "ff ff fe 0a 83 2a 02 01 00 08 02 e8 03 52"),
])
def test_instruction_packets_match_the_hand_worked_bytes(packet: bytes, wire: str) -> None:
    assert packet == hex_bytes(wire)
    decoded = decode_instruction(packet)
    assert decoded.to_bytes() == packet
    assert InstructionReader().feed(packet) == [decoded]


@pytest.mark.parametrize("packet, wire", [
    # PING reply from servo 1, no alarm: 01 + 02 + 00 = 0x03 -> 0xfc
    (status_packet(1), "ff ff 01 02 00 fc"),
    # Present_Position 2048 from servo 1: 01 + 04 + 00 + 00 + 08 = 0x0d -> 0xf2
    (status_packet(1, 0, bytes((0x00, 0x08))), "ff ff 01 04 00 00 08 f2"),
    # Model_Number 777 = 0x0309 from servo 1: 01 + 04 + 00 + 09 + 03 = 0x11 -> 0xee
    (status_packet(1, 0, bytes((0x09, 0x03))), "ff ff 01 04 00 09 03 ee"),
    # servo 6 overloaded (32 = 0x20): 06 + 02 + 20 = 0x28 -> 0xd7
    (status_packet(6, ServoError.OVERLOAD), "ff ff 06 02 20 d7"),
])
def test_status_packets_match_the_hand_worked_bytes(packet: bytes, wire: str) -> None:
    assert packet == hex_bytes(wire)
    status = decode_status(packet)
    assert status.to_bytes() == packet
    assert StatusReader().feed(packet) == [status]


def test_checksum_is_the_inverted_low_byte_of_the_sum() -> None:
    assert checksum(bytes((1, 2, 1))) == 0xFB
    assert checksum(bytes((0xFE, 0x02, 0x05))) == 0xFA  # the sum's carry is dropped
    assert checksum(b"") == 0xFF


def test_a_read_reply_decodes_to_the_servo_its_alarms_and_its_data() -> None:
    status = decode_status(hex_bytes("ff ff 06 04 20 f4 05 dc"))  # 06+04+20+f4+05 = 0x123 -> dc
    assert status == StatusPacket(6, ServoError.OVERLOAD, bytes((0xF4, 0x05)))
    assert ServoError.OVERLOAD in status.error and ServoError.VOLTAGE not in status.error
    load = CONTROL_TABLE["Present_Load"].decode(expect_reply(status, 6, 2))
    assert load == -500  # 0x05f4: sign bit 10 set, magnitude 0x1f4
    with pytest.raises(ProtocolError, match="reply from servo 6, expected servo 5"):
        expect_reply(status, 5, 2)
    with pytest.raises(ProtocolError, match="servo 6 answered 2 bytes, expected 8"):
        expect_reply(status, 6, 8)


def test_parameters_of_each_instruction_parse_back() -> None:
    assert parse_read(decode_instruction(read_packet(3, 56, 8)).params) == (56, 8)
    assert parse_write(decode_instruction(write_packet(3, 40, b"\x01")).params) == (40, b"\x01")
    assert parse_sync_read(decode_instruction(sync_read_packet(56, 2, (6, 1))).params) == \
        (56, 2, (6, 1))
    sync = sync_write_packet(42, {1: b"\x00\x08", 6: b"\xff\x0f"})
    assert parse_sync_write(decode_instruction(sync).params) == \
        (42, [(1, b"\x00\x08"), (6, b"\xff\x0f")])
    with pytest.raises(ProtocolError, match="READ takes 2 parameters"):
        parse_read(b"\x38")
    with pytest.raises(ProtocolError, match="not address, length L and"):
        parse_sync_write(bytes((42, 2, 1, 0)))


def test_bad_values_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="servo ID 255 is outside"):
        ping_packet(255)
    with pytest.raises(ValueError, match="READ needs a servo ID in 0..252, got 254"):
        read_packet(BROADCAST_ID, 56, 2)
    with pytest.raises(ValueError, match="address 300 is not a byte"):
        write_packet(1, 300, b"\x00")
    with pytest.raises(ValueError, match="one length for every servo"):
        sync_write_packet(42, {1: b"\x00\x08", 2: b"\x00"})
    with pytest.raises(ValueError, match="LEN 253, more than the 250"):
        write_packet(1, 0, bytes(250))
    with pytest.raises(ValueError, match="bit 7 is never set"):
        status_packet(1, 0x80)
    with pytest.raises(ProtocolError, match="checksum 0xfa, expected 0xfb"):
        decode_status(hex_bytes("ff ff 01 02 01 fa"))
    with pytest.raises(ProtocolError, match="LEN 4 says 8 bytes, the packet has 6"):
        decode_status(hex_bytes("ff ff 01 04 00 fa"))
    with pytest.raises(ProtocolError, match="not the header"):
        decode_instruction(hex_bytes("ff fe 01 02 01 fb"))


# -- register values -----------------------------------------------------------------------------
@pytest.mark.parametrize("name, value, wire", [
    ("Homing_Offset", -5, "05 08"),        # sign bit 11: 0x800 | 5
    ("Homing_Offset", 2047, "ff 07"),
    ("Homing_Offset", -2047, "ff 0f"),
    ("Goal_Velocity", -1000, "e8 83"),     # sign bit 15: 0x8000 | 0x3e8
    ("Present_Velocity", 50, "32 00"),
    ("Present_Load", -500, "f4 05"),       # sign bit 10: 0x400 | 0x1f4
    ("Goal_Position", 2048, "00 08"),
    ("Model_Number", MODEL_STS3215, "09 03"),
    ("Return_Delay_Time", 250, "fa"),
])
def test_register_values_round_trip_through_their_encoding(name: str, value: int,
                                                           wire: str) -> None:
    reg = register(name)
    assert reg.encode(value) == hex_bytes(wire)
    assert reg.decode(hex_bytes(wire)) == value


@given(st.integers(0, 15).flatmap(lambda bit: st.tuples(
    st.just(bit), st.integers(-(1 << bit) + 1, (1 << bit) - 1))))
def test_sign_magnitude_round_trips(bit_and_value: tuple[int, int]) -> None:
    bit, value = bit_and_value
    raw = to_sign_magnitude(value, bit)
    assert 0 <= raw < 1 << (bit + 1)
    assert from_sign_magnitude(raw, bit) == value


def test_values_that_do_not_fit_are_refused_naming_the_register() -> None:
    with pytest.raises(ValueError, match=r"Homing_Offset takes whole numbers in -2047..2047, "
                                         r"got 2048"):
        register("Homing_Offset").encode(2048)
    with pytest.raises(ValueError, match=r"Torque_Limit takes whole numbers in 0..65535, got -1"):
        register("Torque_Limit").encode(-1)
    with pytest.raises(ValueError, match="no register 'Goal_Speed'; registers: Model_Number"):
        register("Goal_Speed")
    assert from_sign_magnitude(0x8000, 15) == 0  # "minus zero" reads 0


# The control table as ROBOT_FACTS section 6 lists it (name address,size), "Velocity P" and
# "Velocity I" written with an underscore.
FACTS_EEPROM = """ID 5,1 · Baud_Rate 6,1 · Return_Delay_Time 7,1 · Response_Status_Level 8,1 ·
Min_Position_Limit 9,2 · Max_Position_Limit 11,2 · Max_Temperature_Limit 13,1 ·
Max_Voltage_Limit 14,1 · Min_Voltage_Limit 15,1 · Max_Torque_Limit 16,2 · Phase 18,1 ·
Unloading_Condition 19,1 · LED_Alarm_Condition 20,1 · P_Coefficient 21,1 · D_Coefficient 22,1 ·
I_Coefficient 23,1 · Minimum_Startup_Force 24,2 · CW_Dead_Zone 26,1 · CCW_Dead_Zone 27,1 ·
Protection_Current 28,2 · Angular_Resolution 30,1 · Homing_Offset 31,2 · Operating_Mode 33,1 ·
Protective_Torque 34,1 · Protection_Time 35,1 · Overload_Torque 36,1 · Velocity_P 37,1 ·
Over_Current_Protection_Time 38,1 · Velocity_I 39,1"""
FACTS_SRAM = """Torque_Enable 40,1 · Acceleration 41,1 · Goal_Position 42,2 · Goal_Time 44,2 ·
Goal_Velocity 46,2 · Torque_Limit 48,2 · Lock 55,1 · Present_Position 56,2 ·
Present_Velocity 58,2 · Present_Load 60,2 · Present_Voltage 62,1 · Present_Temperature 63,1 ·
Status 65,1 · Moving 66,1 · Present_Current 69,2"""


def facts(text: str) -> dict[str, tuple[int, int]]:
    entries = (item.split() for item in text.replace("\n", " ").split("·"))
    return {name: tuple(int(x) for x in place.split(",")) for name, place in entries}


def test_the_control_table_is_the_published_one() -> None:
    eeprom, sram = facts(FACTS_EEPROM), facts(FACTS_SRAM)
    assert len(eeprom) == 29 and len(sram) == 15
    table = {r.name: (r.address, r.size) for r in CONTROL_TABLE.values()}
    assert table == {"Model_Number": (3, 2), **eeprom, **sram}
    for name, reg in CONTROL_TABLE.items():
        assert reg.eeprom == (name in eeprom or name == "Model_Number"), name
        # read-only: the model number and everything from 56 on
        assert reg.read_only == (name == "Model_Number" or reg.address >= 56), name
    assert TABLE_SIZE == 71
    assert [r.name for r in registers_in(41, 7)] == ["Acceleration", "Goal_Position", "Goal_Time",
                                                     "Goal_Velocity"]


def test_sign_bits_and_units() -> None:
    signs = {name: reg.sign_bit for name, reg in CONTROL_TABLE.items() if reg.sign_bit}
    assert signs == {"Homing_Offset": 11, "Goal_Position": 15, "Goal_Velocity": 15,
                     "Present_Position": 15, "Present_Velocity": 15, "Present_Load": 10,
                     "Present_Current": 15}
    assert BAUD_RATES[0] == 1_000_000 and baud_code(115_200) == 4 and baud_code(19_200) == 7
    with pytest.raises(ValueError, match="does not run at 9600 baud"):
        baud_code(9600)
    assert wire_seconds(98, 1_000_000) == pytest.approx(0.98e-3)  # 10 us a byte
    assert radians_to_counts(0.0) == 2048 and radians_to_counts(-3.141592653589793) == 0
    assert counts_to_radians(3072) == pytest.approx(3.141592653589793 / 2)
    assert list(radians_to_counts([0.0, 1e-3])) == [2048, 2049]  # 1.53 mrad a count


def test_a_block_read_decodes_into_its_registers() -> None:
    block = (bytes((0x00, 0x08)) + CONTROL_TABLE["Present_Velocity"].encode(-50)
             + CONTROL_TABLE["Present_Load"].encode(200) + bytes((74, 31)))
    assert decode_registers(56, block) == {"Present_Position": 2048, "Present_Velocity": -50,
                                           "Present_Load": 200, "Present_Voltage": 74,
                                           "Present_Temperature": 31}


# -- streaming -----------------------------------------------------------------------------------
REPLIES = [status_packet(i, 0, bytes((i, 0x08))) for i in range(1, 7)]


def test_the_reader_takes_packets_in_any_chunking_and_resyncs_after_garbage() -> None:
    stream = b"\x00\x13\xff" + b"".join(REPLIES[:3]) + b"\xff\xff\xff" + b"".join(REPLIES[3:])
    for size in (1, 2, 5, len(stream)):
        reader = StatusReader()
        packets = []
        for i in range(0, len(stream), size):
            packets += reader.feed(stream[i:i + size])
        assert [p.servo_id for p in packets] == [1, 2, 3, 4, 5, 6], size
        assert reader.pending() == 0


def test_a_bad_checksum_costs_that_packet_only() -> None:
    damaged = bytearray(REPLIES[2])
    damaged[-1] ^= 0x01
    reader = StatusReader()
    packets = reader.feed(REPLIES[1] + bytes(damaged) + REPLIES[3])
    assert [p.servo_id for p in packets] == [2, 4] and reader.bad_checksums == 1
    damaged = bytearray(REPLIES[0])
    damaged[3] = 0x40  # a garbled LEN: a long packet is awaited, unless the host expects less
    reader = StatusReader(max_length=10)
    assert [p.servo_id for p in reader.feed(bytes(damaged) + REPLIES[1])] == [2]
    waiting = StatusReader()
    assert waiting.feed(bytes(damaged) + REPLIES[1]) == [] and waiting.clear() == 16


def test_the_instruction_reader_takes_broadcasts_and_unknown_instructions() -> None:
    unknown = bytes.fromhex("ff ff 01 02 0b f1")  # CAL: 01 + 02 + 0b = 0x0e -> 0xf1
    packets = InstructionReader().feed(ping_packet(BROADCAST_ID) + unknown)
    assert packets == [InstructionPacket(BROADCAST_ID, Instruction.PING),
                       InstructionPacket(1, Instruction.CAL)]
    assert StatusReader().feed(ping_packet(BROADCAST_ID)) == []  # no status comes from 0xfe


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=12))
def test_no_byte_sequence_crashes_the_readers(chunks: list[bytes]) -> None:
    status, instruction = StatusReader(), InstructionReader()
    for chunk in chunks:
        status.feed(chunk)
        instruction.feed(chunk)
    assert status.pending() <= 254 and instruction.pending() <= 254


def _valid_packets() -> st.SearchStrategy[bytes]:
    return st.builds(lambda i, e, p: status_packet(i, e, p), st.integers(0, 252),
                     st.sampled_from([0, 1, 32, 64]), st.binary(max_size=8))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_valid_packets(), st.binary(max_size=12),
                          _valid_packets().map(lambda p: p[:-1] + bytes(((p[-1] + 1) & 0xFF,)))),
                max_size=10),
       st.integers(1, 16))
def test_a_packet_with_a_bad_checksum_is_never_taken(parts: list[bytes], chunk: int) -> None:
    """Valid packets, garbage and packets with a wrong checksum, in any chunking: every packet
    the reader takes is, with its right checksum, bytes that were really on the line."""
    stream = b"".join(parts)
    reader = StatusReader()
    taken = []
    for i in range(0, len(stream), chunk):
        taken += reader.feed(stream[i:i + chunk])
    for packet in taken:
        assert packet.to_bytes() in stream
