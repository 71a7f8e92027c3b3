"""What the two emulators share: the device emulator of our own protocol (hardware/emulator.py)
and the Feetech servo bus emulator (hardware/feetech_emulator.py). The physics a randomization
config pins (`sim2real emulate --physics`), the clean wire before faults begin, and sleeping to
the wire time of a baud rate. Runs on the host: applying physics imports MuJoCo.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from hardware.faults import WireFaults
from sim.spec import RobotSpec

DELAY_TERMS = ("action_delay", "action_latency")
"""Timing terms the emulators honour: whole control steps and seconds of command delay."""
CLEAN_WIRE = WireFaults()
"""The faults in force before `WireFaults.rates_from`: none."""


def pinned_physics(config: Any, spec: RobotSpec) -> tuple[list[tuple[str, Any, np.ndarray]], float]:
    """The model terms of a randomization config whose every value is pinned (low == high, or a
    normal with std 0), as (name, spec, value) to apply, and the command delay in seconds its
    `action_delay` (control steps) and `action_latency` (s) add up to."""
    from randomization.config import MODEL_TERM_NAMES

    terms, delay = [], 0.0
    for name, term in config.terms.items():
        low, high = term.distribution.support
        if low != high:
            raise ValueError(f"emulator physics {name}: the emulated robot is one robot, so each "
                             f"value must be pinned (low == high), got {low}..{high}")
        if name in MODEL_TERM_NAMES:
            terms.append((name, term, low))
        elif name == "action_delay":
            delay += round(low) * spec.control_period
        elif name == "action_latency":
            delay += low
        else:
            raise ValueError(f"emulator physics: {name!r} is not a physical parameter the "
                             f"emulator applies; it takes model terms and {', '.join(DELAY_TERMS)}")
    return terms, delay


def apply_pinned_physics(model: Any, config: Any, spec: RobotSpec,
                         seed: int = 0) -> tuple[dict[str, float], float]:
    """Write a pinned config's model terms into `model` (a MuJoCo MjModel); returns the values
    applied by term name and the command delay (s)."""
    from randomization.terms import make_term

    terms, delay = pinned_physics(config, spec)
    rng, applied = np.random.default_rng(seed), {}
    for name, term_spec, value in terms:
        term = make_term(model, name, term_spec)
        term.apply(model, term.sample(rng))
        applied[name] = value
    return applied, delay


def sleep_precisely(seconds: float) -> None:
    """Sleep precisely: the OS sleeps in coarse steps, the last half millisecond is spun."""
    end = time.perf_counter() + seconds
    if seconds > 0.001:
        time.sleep(seconds - 0.0005)
    while time.perf_counter() < end:
        pass
