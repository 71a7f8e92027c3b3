"""The firmware behind a serial line (issue "Reference firmware"): `sim2real emulate furuta
--firmware` runs the C core with the pendulum's physics in real time. Its watchdog measured over
a pty with a silent host, the emulator's refusals, and the Arduino sketch's own build."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import serial

from hardware.emulate import emulator_for
from hardware.firmware import FIRMWARE_DIR
from hardware.firmware_emulator import FirmwareEmulator
from hardware.protocol import (
    Command,
    CommandMode,
    FaultCode,
    FrameReader,
    MessageType,
    encode_frame,
    hello_payload,
    parse_fault,
)
from hardware.transports import PtyTransport
from sim.furuta import FURUTA

pytestmark = pytest.mark.slow

WATCHDOG_S = 0.1


def test_a_silent_host_gets_the_motor_to_zero_volts_within_the_watchdog_period(
        furuta_firmware) -> None:
    emulator = FirmwareEmulator(FURUTA, PtyTransport(), furuta_firmware)
    stop = threading.Event()
    serving = threading.Thread(target=emulator.serve, kwargs={"stop": stop}, daemon=True)
    serving.start()
    volts = emulator.sim.data.ctrl[emulator.sim.ctrl_at]  # a view: what the motor gets now
    reader, frames = FrameReader(), []
    try:
        with serial.Serial(emulator.transport.name, timeout=0) as port:
            def wait_for(kind: int, seconds: float = 2.0):
                deadline = time.perf_counter() + seconds
                while time.perf_counter() < deadline:
                    frames.extend(reader.feed(port.read(4096)))
                    for frame in frames:
                        if frame.type == kind:
                            frames.remove(frame)
                            return frame, time.perf_counter()
                    time.sleep(0.0005)
                raise AssertionError(f"no {MessageType(kind).name} from the firmware")

            port.write(encode_frame(MessageType.HELLO, 0, hello_payload()))
            wait_for(MessageType.DESCRIPTION)
            frames.clear()  # the power-up FAULT RESET, when it outran the port's opening
            port.write(encode_frame(MessageType.COMMAND, 1,
                                    Command(CommandMode.VOLTAGE, (5.0,)).to_payload()))
            silent_from = time.perf_counter()
            zero_at = None
            while time.perf_counter() - silent_from < 3 * WATCHDOG_S:
                driving = float(volts[0])
                if zero_at is None and driving == 0.0 and time.perf_counter() - silent_from > 0.02:
                    zero_at = time.perf_counter()
                    break
                time.sleep(0.0002)
            fault, fault_at = wait_for(MessageType.FAULT)
    finally:
        stop.set()
        serving.join(timeout=5)
    assert zero_at is not None, "the motor still had 5 V three watchdog periods after the host fell silent"
    silent = zero_at - silent_from
    print(f"silent host: 0 V after {silent * 1e3:.1f} ms (watchdog {WATCHDOG_S * 1e3:.0f} ms), "
          f"FAULT WATCHDOG read after {(fault_at - silent_from) * 1e3:.1f} ms")
    # Within its period (plus the emulator loop's 0.5 ms tick and a busy machine's slack), and
    # not before it: the 5 V held until then.
    assert WATCHDOG_S - 0.002 <= silent <= WATCHDOG_S + 0.015
    code, message = parse_fault(fault.payload)
    assert code == FaultCode.WATCHDOG and message.startswith("no command for 100 ms")
    assert emulator.counters.watchdog_trips == 1 and emulator.counters.commands == 1
    assert emulator.counters.faults_sent == {"RESET": 1, "WATCHDOG": 1}
    # The core took the host's HELLO: the clock of scheduled resets and disconnects runs.
    assert emulator.faults.since_connected(time.perf_counter()) > WATCHDOG_S


def test_the_emulator_refuses_firmware_options_it_cannot_honour(furuta_firmware) -> None:
    with pytest.raises(ValueError, match="--firmware runs the device side of our own protocol"):
        emulator_for("so_arm", bus="feetech", firmware=furuta_firmware)
    with pytest.raises(ValueError, match=r"watchdog is built in \(100 ms\), not 50 ms"):
        emulator_for("furuta", watchdog_ms=50, firmware=furuta_firmware)
    with pytest.raises(ValueError, match="built for 'furuta'"):
        emulator_for("so_arm", firmware=furuta_firmware)
    with pytest.raises(FileNotFoundError, match="firmware-build"):
        emulator_for("furuta", firmware=Path("/nonexistent/libsim2real_device.so"))
    emulator = emulator_for("furuta", firmware=furuta_firmware)
    assert isinstance(emulator, FirmwareEmulator)
    assert emulator.description.firmware == "sim2real reference firmware (C99)"
    emulator.transport.close()


ARDUINO_MK = Path("/usr/share/arduino/Arduino.mk")


@pytest.mark.skipif(not (ARDUINO_MK.is_file() and shutil.which("avr-gcc")),
                    reason="the Arduino toolchain is not installed (Debian: apt install "
                           "arduino-mk arduino-core-avr)")
def test_the_arduino_sketch_builds_for_the_mega_2560(tmp_path) -> None:
    sketch = tmp_path / "arduino_furuta"
    shutil.copytree(FIRMWARE_DIR / "ports" / "arduino_furuta", sketch)
    done = subprocess.run(["make", f"USER_LIB_PATH={FIRMWARE_DIR}", "OBJDIR=build"], cwd=sketch,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (elf,) = (sketch / "build").glob("*.elf")  # Arduino-Makefile names it after the folder
    sizes = subprocess.run(["avr-size", "-A", str(elf)], capture_output=True, text=True,
                           check=True).stdout
    section = {line.split()[0]: int(line.split()[1]) for line in sizes.splitlines()
               if line.startswith(".")}
    ram = section.get(".data", 0) + section.get(".bss", 0)
    flash = section.get(".text", 0) + section.get(".data", 0)
    print(f"Mega 2560: {flash} bytes of flash (of 253,952), {ram} bytes of static RAM (of 8,192)")
    assert flash < 253_952 and ram < 8_192 - 2_048  # room for the stack


def test_the_host_port_keeps_the_encoders_counts_whole(furuta_firmware) -> None:
    from hardware.firmware import FirmwareBoard

    board = FirmwareBoard(furuta_firmware)
    try:
        board.set_joints(np.array([0.0, np.pi]), np.zeros(2))
        assert np.array_equal(np.asarray(board._counts[:2]), [0, 0])
        step = 2 * np.pi / 2048
        board.set_joints(np.array([3.4 * step, np.pi - 2.6 * step]), np.array([step, 0.0]))
        assert list(board._counts[:2]) == [3, -3] and board._speeds[0] == pytest.approx(1.0)
    finally:
        board.close()
