"""The firmware's robot header is generated from the RobotSpec (issue "Reference firmware", item
3): the Furuta sketch's copy in git must be what the generator makes now."""

import dataclasses
import subprocess
import sys

import pytest

from hardware.firmware import SKETCH_HEADER, firmware_header
from hardware.protocol import Description
from sim.furuta import FURUTA


def test_the_sketchs_robot_header_is_what_the_robotspec_generates():
    assert SKETCH_HEADER.read_text() == firmware_header(FURUTA), (
        f"{SKETCH_HEADER} is stale: regenerate it with `sim2real firmware-header furuta --out "
        f"{SKETCH_HEADER}`")


def test_a_changed_robotspec_makes_the_header_stale():
    heavier = dataclasses.replace(FURUTA, velocity_limit=(41.0, 60.0))
    assert firmware_header(heavier) != SKETCH_HEADER.read_text()


def test_the_header_carries_the_description_the_host_checks_byte_for_byte():
    text = firmware_header(FURUTA, watchdog_ms=50)
    payload = Description.of_spec(FURUTA, 50, firmware="sim2real reference firmware (C99)")
    quoted = payload.to_payload().decode().replace('"', '\\"')
    assert f'S2R_DESCRIPTION_JSON[] = "{quoted}";' in text
    assert "S2R_VOLTAGE, 50000u" in text and "--watchdog-ms 50" in text


@pytest.mark.slow
def test_the_cli_prints_the_header():
    done = subprocess.run([sys.executable, "-m", "sim2real.cli", "firmware-header", "furuta"],
                          capture_output=True, text=True, check=True)
    assert done.stdout == firmware_header(FURUTA)


def test_a_robot_the_firmware_cannot_hold_is_refused_by_name():
    many = dataclasses.replace(
        FURUTA, joint_names=("arm", *(f"j{i}" for i in range(8))), position_low=(-1.0,) * 9,
        position_high=(1.0,) * 9, velocity_limit=(1.0,) * 9, default_pose=(0.0,) * 9,
        encoder_counts_per_rev=())
    with pytest.raises(ValueError, match="9 joints .* at most 8"):
        firmware_header(many)
    with pytest.raises(ValueError, match="watchdog_ms"):
        firmware_header(FURUTA, watchdog_ms=0)
