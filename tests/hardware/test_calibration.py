"""Calibrating a Feetech arm against the bus emulator, non-interactively (a "hand" moves the limp
emulated arm at each prompt); the file refused when it is not of this arm; LeRobot's calibration
imported; the motor setup, one servo on the bus at a time."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pytest
from conftest import COUNT, hand_prompt, nominal_calibration

from deploy.loop import run
from deploy.onnx_policy import OnnxPolicy
from hardware.feetech.bus import BusError
from hardware.feetech.calibration import (
    Calibration,
    CalibrationError,
    calibrate,
    import_lerobot,
    import_lerobot_to_bus,
    setup_motors,
)
from hardware.feetech.robot import FeetechRobot
from sim.so_arm import SO_ARM

ZERO = (2048 + 700, 2048 - 900, 1500, 2600, 2048, 1200)
"""Horns assembled anywhere: each joint's raw count at its zero."""


@pytest.mark.slow
def test_calibrate_then_deploy_with_it(servo_bus, tiny_policy, tmp_path) -> None:
    bus = servo_bus(zero_counts=ZERO)
    path = tmp_path / "arm.json"
    calibration = calibrate(bus.port, SO_ARM, path, prompt=hand_prompt(bus))
    bus.hold(None)
    assert Calibration.load(path) == calibration
    data = json.loads(path.read_text())
    assert data["robot"] == "so_arm" and data["version"] == 1
    assert [j["name"] for j in data["joints"]] == list(SO_ARM.actuator_names)
    servos = bus.emulator.servos
    for joint, servo in zip(calibration.joints, servos, strict=True):
        assert (servo.get("Homing_Offset"), servo.get("Min_Position_Limit"),
                servo.get("Max_Position_Limit")) == (joint.homing_offset, joint.range_min,
                                                     joint.range_max)
        assert abs((joint.range_min + joint.range_max) / 2 - 2048) <= 3  # the middle reads 2048
    spans = [(j.range_max - j.range_min) * COUNT for j in calibration.joints]
    assert spans == pytest.approx(np.subtract(SO_ARM.position_high, SO_ARM.position_low), abs=0.01)
    with FeetechRobot(bus.port, SO_ARM, path) as arm:
        assert arm.read_state().positions == pytest.approx(bus.angles(), abs=3 * COUNT)
        report = run(OnnxPolicy(tiny_policy), arm, seconds=1.0)
    assert report.stopped == "" and report.cycles >= 40 and report.link["crc_errors"] == 0


def test_a_joint_that_did_not_move_is_named(servo_bus, tmp_path) -> None:
    bus = servo_bus()
    lift = bus.emulator.servos[1]

    def prompt(message: str) -> None:
        if "whole range" in message:  # the lift's reading moves by 600 counts, nothing else's
            lift.put("Homing_Offset", lift.get("Homing_Offset") - 600)
            time.sleep(0.1)

    with pytest.raises(CalibrationError, match="shoulder_pan, .*wrist_roll, gripper did not "
                                               "move") as refused:
        calibrate(bus.port, SO_ARM, tmp_path / "arm.json", prompt=prompt)
    assert "shoulder_lift" not in str(refused.value)  # (the limp elbow may sag on its own)
    assert not (tmp_path / "arm.json").exists()


def test_a_calibration_of_other_joints_or_directions_is_refused() -> None:
    calibration = nominal_calibration()
    joints = list(calibration.joints)
    joints[1], joints[2] = joints[2], joints[1]
    with pytest.raises(CalibrationError, match="joint shoulder_lift is elbow_flex in the "
                                               "calibration; joint elbow_flex is shoulder_lift"):
        Calibration("so_arm", tuple(joints)).check(SO_ARM)
    flipped = list(calibration.joints)
    flipped[3] = dataclasses.replace(flipped[3], direction=-1)
    with pytest.raises(CalibrationError, match=r"wrist_flex: direction -1, the so101_new_calib "
                                               r"convention of the model counts it \+1"):
        FeetechRobot("/dev/ttyNOPE0", SO_ARM, Calibration("so_arm", tuple(flipped))).connect()
    with pytest.raises(CalibrationError, match="robot: the robot is 'so_arm', the calibration "
                                               "has 'other_arm'"):
        Calibration("other_arm", calibration.joints).check(SO_ARM)


def test_a_missing_or_foreign_file_is_refused(tmp_path) -> None:
    with pytest.raises(CalibrationError, match="no calibration at .*calibrate the arm first"):
        FeetechRobot("/dev/ttyNOPE0", SO_ARM, tmp_path / "none.json").connect()
    (tmp_path / "other.json").write_text(json.dumps({"shoulder_pan": {}}))
    with pytest.raises(CalibrationError, match="not a sim2real Feetech calibration"):
        Calibration.load(tmp_path / "other.json")


def test_radians_are_zero_in_the_middle_of_the_range_and_signed_by_direction() -> None:
    calibration = nominal_calibration()
    middle = [(j.range_min + j.range_max) / 2 for j in calibration.joints]
    angles = calibration.to_radians(np.add(middle, 100), SO_ARM)
    gripper_middle = (SO_ARM.position_low[5] + SO_ARM.position_high[5]) / 2
    assert angles == pytest.approx([100 * COUNT] * 5 + [gripper_middle + 100 * COUNT])
    assert calibration.to_counts(angles, SO_ARM) == pytest.approx(np.add(middle, 100), abs=0.51)
    assert np.all(calibration.to_counts(np.full(6, 9.0), SO_ARM)
                  == [j.range_max for j in calibration.joints])


def _lerobot(path, **changes: dict) -> dict:
    data = {name: {"id": k + 1, "drive_mode": 0, "homing_offset": 100 * k - 250,
                   "range_min": 800 + 10 * k, "range_max": 3200 - 10 * k}
            for k, name in enumerate(SO_ARM.actuator_names)}
    for name, change in changes.items():
        data[name] = data[name] | change
    path.write_text(json.dumps(data))
    return data


def test_lerobot_calibration_is_imported(servo_bus, tmp_path) -> None:
    data = _lerobot(tmp_path / "so101_follower.json")
    calibration = import_lerobot(tmp_path / "so101_follower.json", SO_ARM)
    assert [(j.name, j.id, j.direction, j.homing_offset, j.range_min, j.range_max)
            for j in calibration.joints] == [
        (name, m["id"], 1, m["homing_offset"], m["range_min"], m["range_max"])
        for name, m in data.items()]
    bus = servo_bus()
    out = tmp_path / "ours.json"
    import_lerobot_to_bus(tmp_path / "so101_follower.json", bus.port, SO_ARM, out)
    assert Calibration.load(out) == calibration
    assert [s.get("Homing_Offset") for s in bus.emulator.servos] == [-250, -150, -50, 50, 150, 250]
    with FeetechRobot(bus.port, SO_ARM, out) as arm:
        assert arm.read_state().positions.shape == (6,)


@pytest.mark.parametrize(("change", "message"), [
    ({"elbow_flex": {"id": 7}}, "other servo IDs: elbow_flex: ID 7, the so_arm's is 3"),
    ({"wrist_roll": {"drive_mode": 1}}, "wrist_roll: direction -1"),
])
def test_lerobot_calibration_of_other_ids_or_directions_is_refused(tmp_path, change,
                                                                   message) -> None:
    _lerobot(tmp_path / "lerobot.json", **change)
    with pytest.raises(CalibrationError, match=message):
        import_lerobot(tmp_path / "lerobot.json", SO_ARM)


def test_lerobot_calibration_of_other_joints_is_refused(tmp_path) -> None:
    data = _lerobot(tmp_path / "lerobot.json")
    data["wrist_pitch"] = data.pop("wrist_flex")
    (tmp_path / "lerobot.json").write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match="calibrates .*'wrist_pitch'.*, not the joints of "
                                               "so_arm"):
        import_lerobot(tmp_path / "lerobot.json", SO_ARM)


def test_setup_motors_gives_each_servo_its_id(servo_bus) -> None:
    bus = servo_bus(ids=(1,) * 6)  # six servos as shipped: all ID 1
    servos = bus.emulator.servos
    for servo in servos:
        servo.attached = False
    servos[4].put("Baud_Rate", 4)  # one set to 115,200 elsewhere: deaf at 1 Mbit/s
    asked = []

    def connect_only(message: str) -> None:
        asked.append(message)
        joint = next(k for k, name in enumerate(SO_ARM.actuator_names) if f" {name} " in message)
        for k, servo in enumerate(servos):
            servo.attached = k == joint
            if k == 4 and joint == 4:  # the emulator's line runs at one rate: its servo at 1 M
                servo.put("Baud_Rate", 0)

    assert setup_motors(bus.port, SO_ARM, prompt=connect_only) == {
        name: k + 1 for k, name in enumerate(SO_ARM.actuator_names)}
    assert [s.servo_id for s in servos] == [1, 2, 3, 4, 5, 6]
    assert len(asked) == 6 and "connect only the shoulder_pan servo" in asked[0].lower()
    for servo in servos:
        servo.attached = True
    with pytest.raises(BusError, match=r"servos \[1, 2, 3, 4, 5, 6\] answer"):
        setup_motors(bus.port, SO_ARM, prompt=lambda message: None)
