"""What `sim2real emulate ROBOT` runs: the emulator a robot and its options make (our own
protocol's device in Python or the reference firmware's C core, or a Feetech servo bus), the
banner it prints, serving until stopped, and the summary it prints when it stops.
Imports MuJoCo (through the emulators): runs on the host, not on the robot's computer.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hardware.emulation import Hand, TableScene
from hardware.emulator import DeviceCounters, DeviceEmulator
from hardware.faults import WireFaults

if TYPE_CHECKING:
    from hardware.camera_server import MjpegServer
    from hardware.feetech.emulator import BusCounters, FeetechBusEmulator


def load_physics(path: Path) -> Any:
    """A randomization config file (each value pinned) for `sim2real emulate --physics`."""
    from randomization.config import load_config

    if not path.is_file():
        raise FileNotFoundError(f"physics file {path} does not exist")
    return load_config(path)


SCENES = ("push", "calibration")
"""What `sim2real emulate so_arm --scene NAME` can lay on the arm's table."""
CALIBRATION_VIEWS = 24
"""Poses the emulated person holds the calibration board at, in turn."""


def table_scene(name: str, robot: str, seed: int = 0) -> TableScene:
    """`--scene NAME`: the push task's block (marked for a camera's tracker; a person puts it at
    a new start, drawn as a simulated push episode draws it, whenever the arm waits at home
    still, as `deploy --robot sim` does), or the calibration targets (sim/markers.py: a board a
    person holds before the camera, pose after pose, and the marker sheet on the table)."""
    from hardware.backends import SIM_TIDY_SECONDS, episode_starts
    from hardware.emulation import BoardHand, TableHand, board_poses
    from sim.catalog import robot_by_name
    from sim.markers import CHECKERBOARD
    from sim.physics import load_model
    from sim.pixels import CAMERA
    from sim.spec import ASSETS

    if name not in SCENES:
        raise ValueError(f"unknown --scene {name!r}; scenes: {', '.join(SCENES)}")
    spec = robot_by_name(robot)
    if spec.name != "so_arm":
        raise ValueError(f"--scene lays things on the SO-101 arm's table; {spec.name} has none")
    if name == "push":
        starts = episode_starts("push", None, spec, seed)
        first = starts()
        return TableScene(first.scene, first.objects, first.initial_objects,
                          TableHand(lambda: starts().initial_objects, SIM_TIDY_SECONDS))
    scene = "so_arm_calibration.xml"
    columns, rows = CHECKERBOARD.squares
    size = ((columns + 1) * CHECKERBOARD.square, (rows + 1) * CHECKERBOARD.square)  # margins
    poses = board_poses(load_model(ASSETS / scene), CAMERA, size, CALIBRATION_VIEWS, seed)
    return TableScene(scene, person=BoardHand(poses))


def emulator_for(robot: str, watchdog_ms: float | None = None, tcp_port: int | None = None,
                 physics_file: Path | None = None, baudrate: int | None = None,
                 faults: WireFaults | None = None, pose: list[float] | None = None,
                 bus: str = "sim2real", one_at_a_time: bool = False,
                 catch: float | None = None, firmware: Path | None = None,
                 table: TableScene | None = None) -> DeviceEmulator | FeetechBusEmulator:
    """The emulator `sim2real emulate ROBOT` serves: on a new pty, or on 127.0.0.1:`tcp_port`
    (0: any free port). `bus`: our own protocol (sim2real) or a Feetech STS servo bus (feetech,
    robots on position servos). `one_at_a_time` (feetech): the servos as shipped (every one at
    ID 1, 1 Mbit/s) with only the first on the bus, for a motor setup (see `plug_on_enter`).
    A motor-driven robot given a `pose` is held there by a `Hand`, which puts it back after
    `catch` seconds at 0 V. `firmware`: a host build of the reference firmware
    (`sim2real firmware-build ROBOT`) runs the device's protocol side instead of Python
    (hardware/firmware_emulator.py); `watchdog_ms` (default 100) is then the one built in.
    `table`: what lies on an arm's table (`table_scene`)."""
    from hardware.feetech.emulator import FeetechBusEmulator
    from hardware.transports import PtyTransport, TcpTransport
    from sim.catalog import robot_by_name

    emulators = {"sim2real": DeviceEmulator, "feetech": FeetechBusEmulator}
    if bus not in emulators:
        raise ValueError(f"unknown bus {bus!r}; buses: {', '.join(emulators)}")
    if one_at_a_time and bus != "feetech":
        raise ValueError(f"--one-at-a-time plugs in Feetech servos one by one, not a {bus} "
                         "device: add --bus feetech")
    spec = robot_by_name(robot)
    if bus == "feetech" and spec.actuator_kind != "position":
        raise ValueError(f"--bus feetech emulates position servos; {spec.name} has "
                         f"{spec.actuator_kind} actuators: use --bus sim2real")
    start = np.asarray(pose, dtype=float) if pose else None
    if start is not None and start.shape != (spec.num_joints,):
        raise ValueError(f"--pose needs {spec.num_joints} joint positions for {spec.name}, "
                         f"got {len(start)}")
    motor = spec.actuator_kind != "position"
    if catch is not None and not (motor and start is not None):
        raise ValueError(f"--catch puts {spec.name} back at its --pose: add --pose" if motor else
                         f"{spec.name}'s servos hold their own pose; --catch is for a "
                         "motor-driven robot (furuta)")
    if firmware is not None and bus != "sim2real":
        raise ValueError("--firmware runs the device side of our own protocol (the C core); "
                         f"--bus {bus} is another device: drop one of them")
    if table is not None and bus != "sim2real":
        raise ValueError(f"--scene lays the table of our own protocol's device; --bus {bus} "
                         "emulates the servos alone: use --bus sim2real")
    physics = load_physics(physics_file) if physics_file else None
    options: dict[str, Any] = {} if table is None else {"table": table}
    if firmware is not None:
        from hardware.firmware_emulator import FirmwareEmulator

        emulators["sim2real"] = FirmwareEmulator
        options.update(library=Path(firmware), watchdog_ms=watchdog_ms)
    elif bus == "sim2real":
        options["watchdog_ms"] = 100.0 if watchdog_ms is None else watchdog_ms
    if motor and start is not None:
        options["hand"] = Hand(start, catch)
    transport = TcpTransport(tcp_port) if tcp_port is not None else PtyTransport()
    if one_at_a_time:
        options["ids"] = (1,) * spec.num_actuators  # the factory ID, on every servo
    emulator = emulators[bus](spec, transport, physics=physics, baudrate=baudrate, faults=faults,
                              initial_pose=start, **options)
    if one_at_a_time:
        emulator.plug(0)
    return emulator


def plug_on_enter(emulator: FeetechBusEmulator, fd: int,
                  say: Callable[[str], object]) -> threading.Thread:
    """`sim2real emulate --one-at-a-time`: each line read from `fd` (a person pressing Enter)
    plugs in the next servo (`FeetechBusEmulator.plug_next`), and `say` gets what is on the bus
    now. Runs in a daemon thread until `fd` ends.

    Safe beside the single-threaded serve loop: this thread changes only the servos' `attached`
    flags (bool assignments, atomic under the GIL), which the loop reads when a packet comes;
    registers and physics stay the loop's alone (servos fresh from the factory are limp, so
    plugging one needs no actuator changed). And the host waits: setup-motors sends nothing
    between its prompt and the Enter that follows the plug."""

    def follow() -> None:
        # os.read, not sys.stdin: a daemon thread blocked inside sys.stdin's buffered reader
        # holds its lock, and the interpreter aborts at exit when it cannot take it.
        while chunk := os.read(fd, 1024):
            for _ in range(chunk.count(b"\n")):
                say(f"on the bus: {emulator.plug_next()}")

    thread = threading.Thread(target=follow, name="plug-on-enter", daemon=True)
    thread.start()
    return thread


def serve_until_stopped(emulator: DeviceEmulator | FeetechBusEmulator,
                        seconds: float | None = None) -> DeviceCounters | BusCounters:
    """Serve for `seconds` (None: until Ctrl-C or SIGTERM, both of which end it cleanly)."""
    import signal

    def terminate(number: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops it as Ctrl-C does: counters kept, port closed

    signal.signal(signal.SIGTERM, terminate)
    try:
        return emulator.serve(seconds=seconds)
    except KeyboardInterrupt:
        return emulator.counters


def banner(emulator: Any, bus: str, faults: dict | None = None,
           camera: MjpegServer | None = None) -> list[str]:
    """What `sim2real emulate` prints on start: where it listens, what it pinned and injects,
    and the deploy command that connects to it."""
    name, scheme = emulator.transport.name, {"sim2real": "serial"}.get(bus, bus)
    lines = [f"emulating {emulator.spec.name} on {name}"]
    if emulator.physics_applied or emulator.command_delay:
        lines.append(f"physics pinned: {emulator.physics_applied}, command delay "
                     f"{emulator.command_delay * 1e3:.1f} ms")
    if faults:
        lines.append(f"wire faults: {faults}")
    if hand := getattr(emulator, "hand", None):
        lines.append(f"a hand holds the joints at {hand.pose.tolist()} until the first nonzero "
                     "command" + (f"; it puts them back after {hand.catch_seconds:g} s at 0 V"
                                  if hand.catch_seconds else ""))
    if bus == "feetech" and not all(servo.attached for servo in emulator.servos):
        lines.append(f"on the bus: {emulator.on_bus()}; press Enter here to plug in the next")
    if table := getattr(emulator, "table", None):
        lines.append(f"on the table: {table.scene}" + (
            f" ({', '.join(table.objects)} put back at a new start when the arm waits still "
            f"{table.person.wait_seconds:g} s)" if table.objects else
            f" (the checkerboard held up at {len(table.person.poses)} poses in turn, "
            f"{table.person.hold_seconds:g} s each)"))
    if camera is not None:
        lines.append(f"camera: {camera.url} ({camera.fps:g} frames/s)")
    return [*lines, f"connect with: sim2real deploy POLICY --robot {scheme}:{name}"
            + (f" --camera {camera.url}" if camera is not None else "")]


def stopped_summary(emulator: DeviceEmulator | FeetechBusEmulator, injected: dict) -> dict:
    """What `sim2real emulate` prints when it stops: its counters (a hand's releases and
    catches among them), the faults injected and, on a servo bus, each servo's ID in actuator
    order (what a motor setup gave them)."""
    from hardware.feetech.emulator import FeetechBusEmulator

    summary = {**asdict(emulator.counters), "injected": injected}
    if isinstance(emulator, FeetechBusEmulator):
        summary["servo_ids"] = [servo.servo_id for servo in emulator.servos]
    return summary
