"""Choosing the robot backend from the `--robot` URL, and settings files on the robot computer."""

import json

import pytest

from hardware.backends import BACKENDS, Episode, RobotURL, open_robot
from hardware.settings import read_settings
from sim.so_arm import SO_ARM


@pytest.mark.parametrize(("text", "scheme", "where", "robot"), [
    ("sim", "sim", "", None),
    ("sim:furuta", "sim", "furuta", "furuta"),
    ("serial:///dev/ttyUSB0", "serial", "/dev/ttyUSB0", None),
    ("serial:socket://127.0.0.1:5000", "serial", "socket://127.0.0.1:5000", None),
    ("auto", "auto", "", None),
])
def test_urls_parse_into_scheme_and_place(text, scheme, where, robot) -> None:
    url = RobotURL.parse(text)
    assert (url.scheme, url.where, url.robot_name) == (scheme, where, robot)
    assert url.scheme in BACKENDS


def test_an_unknown_scheme_names_the_ones_there_are() -> None:
    with pytest.raises(ValueError, match=r"unknown robot 'usb:/dev/x'; use sim, sim:ROBOT"):
        RobotURL.parse("usb:/dev/x")


def test_serial_needs_a_port_and_the_simulated_start_is_not_built_for_it() -> None:
    def never() -> Episode:
        raise AssertionError("a serial backend must not build the simulated robot's episode")

    with pytest.raises(ValueError, match="serial: needs a port"):
        open_robot(RobotURL.parse("serial:"), SO_ARM, never)


def test_the_simulated_robot_starts_where_the_episode_says() -> None:
    pose = [0.1, 0.2, 0.3, 0.0, 0.0, 0.5]
    robot = open_robot(RobotURL.parse("sim"), SO_ARM, lambda: Episode(pose=pose))
    with robot:
        assert robot.read_state().positions == pytest.approx(pose, abs=2e-3)


def test_settings_read_json_and_yaml_and_name_a_bad_file(tmp_path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"soft_limit_margin": 0.1}))
    (tmp_path / "a.yaml").write_text("soft_limit_margin: 0.1\n")
    (tmp_path / "list.json").write_text("[1, 2]")
    assert read_settings(tmp_path / "a.json") == read_settings(tmp_path / "a.yaml") == {
        "soft_limit_margin": 0.1}
    with pytest.raises(ValueError, match="list.json must hold a mapping of setting: value, got list"):
        read_settings(tmp_path / "list.json")
    with pytest.raises(FileNotFoundError, match="settings file .*none.json does not exist"):
        read_settings(tmp_path / "none.json")


def test_a_servo_bus_argument_names_its_port() -> None:
    from hardware.backends import bus_port

    assert bus_port("feetech:///dev/ttyUSB0") == "/dev/ttyUSB0"
    assert bus_port("feetech:socket://127.0.0.1:5000") == "socket://127.0.0.1:5000"
    for bad in ("feetech:", "serial:/dev/x", "/dev/ttyUSB0"):
        with pytest.raises(ValueError, match="give the servo bus as feetech:PORT"):
            bus_port(bad)
