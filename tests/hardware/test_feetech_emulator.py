"""The Feetech bus emulator as a host meets it: through a real pty and pyserial, six STS3215s
answering with their control tables, refusing what a servo refuses, moving the arm's physics in
real time, taking wire time, and missing or doubled on the bus. The overload trip is checked on
the servo model directly (fast) and with the arm pressed into the table (slow)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
import serial

from hardware.emulate import emulator_for, plug_on_enter
from hardware.faults import WireFaults
from hardware.feetech.emulator import FeetechBusEmulator, Servo, collide
from hardware.feetech.protocol import (
    CONTROL_TABLE,
    MODEL_STS3215,
    ServoError,
    StatusPacket,
    StatusReader,
    action_packet,
    decode_registers,
    ping_packet,
    read_packet,
    recovery_packet,
    reg_write_packet,
    status_packet,
    sync_read_packet,
    sync_write_packet,
    wire_seconds,
    write_packet,
)
from hardware.transports import PtyTransport
from randomization.config import RandomizationConfig
from sim.so_arm import SO_ARM

IDS = (1, 2, 3, 4, 5, 6)


class Silent:
    """A transport nobody is on."""

    name = "nowhere"

    def read(self, timeout: float) -> bytes:
        return b""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class Bus:
    """A FeetechBusEmulator serving in a thread, and the host's end: pyserial on the pty."""

    def __init__(self, **options: object) -> None:
        self.wire = PtyTransport()
        self.emulator = FeetechBusEmulator(SO_ARM, self.wire, **options)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.emulator.serve, kwargs={"stop": self.stop},
                                       daemon=True)
        self.reader = StatusReader()

    def __enter__(self) -> Bus:
        self.thread.start()
        self.port = serial.Serial(self.wire.name, 1_000_000, timeout=0)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)
        self.port.close()

    def ask(self, packet: bytes, replies: int = 1, timeout: float = 0.5) -> list[StatusPacket]:
        """Send a packet; the first `replies` status packets, or those that came within `timeout`
        (generous: a loaded machine is slow, and a silence is asked for with a short one)."""
        self.port.write(packet)
        end, got = time.perf_counter() + timeout, []
        while len(got) < replies and time.perf_counter() < end:
            got += self.reader.feed(self.port.read(self.port.in_waiting or 1))
        return got

    def read(self, servo_id: int, name: str) -> int:
        reg = CONTROL_TABLE[name]
        (reply,) = self.ask(read_packet(servo_id, reg.address, reg.size))
        return reg.decode(reply.params)

    def write(self, servo_id: int, name: str, value: int) -> ServoError:
        reg = CONTROL_TABLE[name]
        (reply,) = self.ask(write_packet(servo_id, reg.address, reg.encode(value)))
        return reply.error

    def sync_write(self, name: str, values: dict[int, int]) -> None:
        reg = CONTROL_TABLE[name]
        self.port.write(sync_write_packet(reg.address, {i: reg.encode(v)
                                                        for i, v in values.items()}))

    def positions(self, ids: tuple[int, ...] = IDS) -> list[int]:
        reg = CONTROL_TABLE["Present_Position"]
        replies = self.ask(sync_read_packet(reg.address, reg.size, ids), len(ids))
        assert [r.servo_id for r in replies] == list(ids)
        return [reg.decode(r.params) for r in replies]


def test_ping_and_read_the_model_number() -> None:
    with Bus() as bus:
        (reply,) = bus.ask(ping_packet(1))
        assert reply == StatusPacket(1, ServoError(0))
        assert bus.read(6, "Model_Number") == MODEL_STS3215
        assert bus.read(3, "ID") == 3 and bus.read(3, "Return_Delay_Time") == 250
        assert bus.read(2, "Present_Voltage") == 74
    assert bus.emulator.counters.replies_sent == 5


def test_read_only_registers_and_the_eeprom_lock() -> None:
    with Bus() as bus:
        assert bus.write(1, "Present_Position", 100) == ServoError.INSTRUCTION
        assert bus.write(1, "Model_Number", 1) == ServoError.INSTRUCTION
        assert bus.read(1, "Model_Number") == MODEL_STS3215
        assert bus.read(1, "Lock") == 1  # locked at power-up
        assert bus.write(1, "P_Coefficient", 16) == ServoError.INSTRUCTION
        assert bus.read(1, "P_Coefficient") == 32
        assert bus.write(1, "Lock", 0) == ServoError(0)
        assert bus.write(1, "P_Coefficient", 16) == ServoError(0)
        assert bus.read(1, "P_Coefficient") == 16
        assert bus.read(2, "P_Coefficient") == 32  # each servo its own table
    assert bus.emulator.counters.refused == {"read-only": 2, "EEPROM locked": 1}


def test_sync_read_answers_in_the_order_asked() -> None:
    with Bus() as bus:
        assert bus.positions() == pytest.approx([2048] * 6, abs=40)  # the limp arm sags
        reg = CONTROL_TABLE["Present_Position"]
        replies = bus.ask(sync_read_packet(reg.address, 8, (6, 2, 4)), 3)
        assert [r.servo_id for r in replies] == [6, 2, 4] and all(len(r.params) == 8
                                                                   for r in replies)


@pytest.mark.slow  # over a second: the fast subset keeps under a minute
def test_goals_move_the_joints_with_torque_on_and_not_with_torque_off() -> None:
    goals = {1: 2048 + 260, 5: 2048 - 260}  # pan and wrist roll, about 0.4 rad each way
    with Bus() as bus:
        start = bus.positions()
        bus.sync_write("Goal_Position", goals)
        time.sleep(0.4)
        limp = bus.positions()
        assert abs(limp[0] - start[0]) < 15 and abs(limp[4] - start[4]) < 15
        bus.sync_write("Torque_Enable", dict.fromkeys(IDS, 1))
        assert bus.read(1, "Goal_Position") == limp[0]  # enabling holds where it is
        bus.sync_write("Goal_Position", goals)
        time.sleep(0.7)  # the pan overshoots by ~40 counts and settles in ~0.4 s
        moved = bus.positions()
        assert abs(moved[0] - goals[1]) <= 5 and abs(moved[4] - goals[5]) <= 5
        (reply,) = bus.ask(read_packet(1, 42, 25))  # Goal_Position .. Moving
        values = decode_registers(42, reply.params)
        off_goal = abs(values["Goal_Position"] - values["Present_Position"]) > 1  # dead zone
        assert values["Moving"] == int(off_goal)


def test_homing_offset_shifts_present_and_goal_positions() -> None:
    """Present = raw - Homing_Offset; a goal of G drives the joint to raw G + offset."""
    with Bus() as bus:
        raw = bus.positions()[0]
        bus.write(1, "Lock", 0)
        assert bus.write(1, "Homing_Offset", -300) == ServoError(0)
        assert bus.read(1, "Present_Position") == pytest.approx(raw + 300, abs=2)
        bus.write(1, "Torque_Enable", 1)
        bus.write(1, "Goal_Position", 2048 + 300 + 100)
        time.sleep(0.6)
        assert bus.read(1, "Present_Position") == pytest.approx(2448, abs=4)
        bus.write(1, "Torque_Enable", 0)  # else the same goal, now unshifted, would move it
        bus.write(1, "Homing_Offset", 0)
        assert bus.read(1, "Present_Position") == pytest.approx(2148, abs=4)  # raw 2148


def test_reg_write_waits_for_action_and_a_new_id_answers_after_its_reply() -> None:
    """What setup-motors does: unlock, write the ID (the reply still comes from the old one),
    and the servo answers to its new ID only."""
    with Bus() as bus:
        goal = CONTROL_TABLE["Goal_Position"]
        held = [bus.ask(reg_write_packet(i, goal.address, goal.encode(2100)))[0] for i in (1, 2)]
        assert [r.error for r in held] == [ServoError(0)] * 2
        assert bus.read(1, "Goal_Position") != 2100
        bus.port.write(action_packet())  # broadcast: no reply
        assert bus.read(1, "Goal_Position") == 2100 and bus.read(2, "Goal_Position") == 2100
        bus.write(4, "Lock", 0)
        (reply,) = bus.ask(write_packet(4, CONTROL_TABLE["ID"].address, bytes((9,))))
        assert reply.servo_id == 4 and reply.error == ServoError(0)
        assert bus.ask(ping_packet(4), timeout=0.02) == []
        assert bus.read(9, "ID") == 9 and bus.read(9, "Model_Number") == MODEL_STS3215
        assert bus.write(9, "ID", 253) == ServoError.INSTRUCTION  # 0..252 only
        assert bus.ask(recovery_packet(9))[0].error == ServoError(0)
        assert bus.read(9, "Lock") == 1 and bus.read(9, "ID") == 9


def test_a_missing_servo_times_out_while_the_others_answer() -> None:
    with Bus(ids=(1, 2, 3, 4, 5, None)) as bus:
        assert bus.ask(ping_packet(6), timeout=0.02) == []
        assert [r.servo_id for r in bus.ask(ping_packet(5))] == [5]
        reg = CONTROL_TABLE["Present_Position"]
        replies = bus.ask(sync_read_packet(reg.address, 2, IDS), 6, timeout=0.1)
        assert [r.servo_id for r in replies] == [1, 2, 3, 4, 5]
    assert bus.emulator.counters.unanswered == 1


def test_two_servos_with_one_id_collide() -> None:
    """Identical replies (a PING) pass the wired-AND line intact, so a doubled ID goes
    unnoticed until the servos say different things."""
    with Bus(ids=(1, 2, 3, 3, 5, 6)) as bus:
        assert [r.servo_id for r in bus.ask(ping_packet(3))] == [3]
        assert [r.servo_id for r in bus.ask(ping_packet(0xFE), 6, timeout=0.1)] == [1, 2, 3, 5, 6]
    assert bus.emulator.counters.collisions == 2
    one = status_packet(3, 0, bytes((0x10, 0x08)))  # 2064
    other = status_packet(3, 0, bytes((0x01, 0x06)))  # 1537
    heard = collide([one, other])
    assert heard == bytes.fromhex("ff ff 03 04 00 00 00") + bytes((one[-1] & other[-1],))
    assert StatusReader().feed(heard) == []  # checksum 0xe0 & 0xf1 = 0xe0; 03 04 00 00 00 needs 0xf8


def test_wire_time_at_one_megabit() -> None:
    """A sync read of 8 bytes from 6 servos: 14 bytes out, 6 x 14 back, 10 us each, plus the
    return delays (factory 500 us each, then 0)."""
    reg = CONTROL_TABLE["Present_Position"]
    packet = sync_read_packet(reg.address, 8, IDS)
    wire = wire_seconds(len(packet) + 6 * (6 + 8), 1_000_000)
    assert wire == pytest.approx(0.98e-3)
    with Bus() as bus:
        for delay in (500e-6, 0.0):
            bus.ask(ping_packet(1))
            start = time.perf_counter()
            replies = bus.ask(packet, 6)
            took = time.perf_counter() - start
            assert len(replies) == 6 and took >= wire + 6 * delay, (delay, took)
            bus.sync_write("Lock", dict.fromkeys(IDS, 0))
            bus.sync_write("Return_Delay_Time", dict.fromkeys(IDS, 0))
        assert bus.read(4, "Return_Delay_Time") == 0


def test_the_overload_trip_on_the_servo_model() -> None:
    """80 % of stall torque for 2 s trips it; then it holds 20 %. Driven directly: the timer
    and limits, without physics."""
    servo = Servo(1)
    servo.put("Torque_Enable", 1)
    assert servo.torque_fraction() == 1.0
    for _ in range(399):  # 1.995 s at 5 ms steps
        assert not servo.track_load(0.8, 0.005)
    assert not servo.track_load(0.79, 0.005)  # a dip below restarts the count
    assert not servo.tripped and servo.loaded_for == 0.0
    for _ in range(399):
        assert not servo.track_load(-0.85, 0.005)
    assert servo.track_load(-0.85, 0.005)
    assert servo.tripped and ServoError.OVERLOAD in servo.alarm
    assert servo.torque_fraction() == pytest.approx(0.2)
    servo.put("Torque_Limit", 300)
    assert servo.torque_fraction() == pytest.approx(0.2)
    assert Servo(2).torque_fraction() == 0.0  # torque off at power-up


@pytest.mark.slow
def test_the_overload_trip_with_the_arm_pressed_into_the_table() -> None:
    """Lift and elbow commanded far down: the arm presses on the table at full torque; after
    2 s both report OVERLOAD and hold 20 % of stall torque; writing Torque_Enable clears it."""
    with Bus() as bus:
        bus.sync_write("Torque_Enable", dict.fromkeys(IDS, 1))
        bus.sync_write("Goal_Position", {2: 2048 + 1130, 3: 2048 + 1090})
        time.sleep(1.5)
        (reply,) = bus.ask(ping_packet(2))
        assert reply.error == ServoError(0)
        assert bus.read(2, "Present_Load") >= 800
        time.sleep(1.2)
        for servo_id in (2, 3):
            (reply,) = bus.ask(ping_packet(servo_id))
            assert reply.error == ServoError.OVERLOAD
            assert bus.read(servo_id, "Status") == ServoError.OVERLOAD
            assert bus.read(servo_id, "Present_Load") == pytest.approx(200, abs=2)
        assert bus.ask(ping_packet(1))[0].error == ServoError(0)
        assert bus.write(2, "Torque_Enable", 1) == ServoError(0)
    assert bus.emulator.counters.overload_trips == 2


@pytest.mark.slow  # over a second: the fast subset keeps under a minute
def test_wire_faults_garble_and_drop_replies_and_a_brown_out_turns_torque_off() -> None:
    faults = WireFaults(corrupt_byte_rate=0.02, drop_frame_rate=0.1, reset_at=(0.6,), seed=4)
    with Bus(faults=faults) as bus:
        bus.sync_write("Torque_Enable", dict.fromkeys(IDS, 1))
        answered = sum(len(bus.ask(ping_packet(i % 6 + 1), timeout=0.03)) for i in range(60))
        deadline = time.perf_counter() + 5.0
        while bus.emulator.counters.resets == 0 and time.perf_counter() < deadline:
            time.sleep(0.01)
        torque = []
        for _ in range(10):
            replies = bus.ask(read_packet(1, 40, 1), timeout=0.2)
            torque += [r.params for r in replies if len(r.params) == 1]  # not late PINGs
            if len(torque) >= 3:
                break
    counters = bus.emulator.counters
    assert 15 < answered < 60 and counters.lost_out > 0 and counters.dropped_in > 0
    assert bus.reader.bad_checksums + counters.bad_packets > 0
    assert counters.resets == 1 and torque and set(torque) == {b"\x00"}


def test_latency_stale_readings_and_a_disconnect() -> None:
    faults = WireFaults(latency_ms=6.0, jitter_ms=1.0, stale_rate=1.0, disconnect_at=0.5)
    with Bus(faults=faults) as bus:
        start = time.perf_counter()
        assert len(bus.ask(ping_packet(1), timeout=0.1)) == 1
        assert time.perf_counter() - start >= 0.005
        first = bus.read(1, "Present_Position")
        bus.write(1, "Torque_Enable", 1)
        bus.write(1, "Goal_Position", first + 300)
        time.sleep(0.3)
        assert bus.read(1, "Present_Position") == first  # the sensor never updates
        bus.thread.join(1.0)
        assert not bus.thread.is_alive()
        with pytest.raises(serial.SerialException, match="Input/output error"):
            bus.ask(ping_packet(1))  # the port went away
    assert faults.counts["stale_states"] >= 2


def test_pinned_physics_delays_goals_and_scales_the_servo() -> None:
    physics = RandomizationConfig.from_dict({"torque_limit": {"low": 0.5, "high": 0.5},
                                             "deadband": {"low": 3, "high": 3},
                                             "action_latency": {"low": 0.05, "high": 0.05}})
    emulator = FeetechBusEmulator(SO_ARM, Silent(), physics=physics)
    assert emulator.physics_applied == {"torque_limit": 0.5, "deadband": 3}
    assert {s.get("CW_Dead_Zone") for s in emulator.servos} == {3}
    assert emulator.command_delay == pytest.approx(0.05)
    assert np.allclose(emulator.stall_torque, 0.5 * 2.94)  # the gripper's too: 100 % = stall


def test_emulate_chooses_the_bus_by_name() -> None:
    emulator = emulator_for("so_arm", bus="feetech")
    assert isinstance(emulator, FeetechBusEmulator) and emulator.transport.name.startswith("/dev/")
    emulator.transport.close()
    with pytest.raises(ValueError, match="--bus feetech emulates position servos; furuta has "
                                         "voltage actuators"):
        emulator_for("furuta", bus="feetech")
    with pytest.raises(ValueError, match="unknown bus 'can'"):
        emulator_for("so_arm", bus="can")
    with pytest.raises(ValueError, match="ids needs one servo ID"):
        FeetechBusEmulator(SO_ARM, Silent(), ids=(1, 2, 3))


def test_one_at_a_time_each_enter_plugs_in_the_next_servo() -> None:
    """The motor-setup bench of `sim2real emulate --one-at-a-time`: servos as shipped, the first
    on the bus; each line read plugs in the next, then all of them."""
    emulator = emulator_for("so_arm", bus="feetech", one_at_a_time=True)
    read, write = os.pipe()
    try:
        assert [s.servo_id for s in emulator.servos] == [1] * 6
        assert [s.attached for s in emulator.servos] == [True] + [False] * 5
        said: list[str] = []
        thread = plug_on_enter(emulator, read, said.append)
        os.write(write, b"\n\n")
        os.write(write, b"\n" * 5)
        os.close(write)
        thread.join(5)
        names = SO_ARM.actuator_names
        assert said == [f"on the bus: {names[k]} (servo {k + 1} of 6)" for k in range(1, 6)] + [
            "on the bus: all 6 servos"] * 2
        assert all(s.attached for s in emulator.servos)
    finally:
        emulator.transport.close()
        os.close(read)
    with pytest.raises(ValueError, match="--one-at-a-time plugs in Feetech servos one by one, "
                                         "not a sim2real device: add --bus feetech"):
        emulator_for("so_arm", one_at_a_time=True)
