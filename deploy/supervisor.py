"""The safety supervisor: what stands between the policy and the robot, on by default.

Every command passes through `Supervisor.filter`, which applies, in this order, each check that
can change it and counts each time one did:

1. nan_guard: a command with NaN or inf is replaced by the last safe command;
2. soft_start: for the first seconds a servo's goal is ramped in from the pose the robot was found
   in, so a policy meeting an unexpected state cannot jump (servos only);
3. velocity_limit: a joint moving faster than its velocity limit is not driven further that way;
4. position_limit: soft limits, a margin inside each joint's hard limits: a servo is never sent a
   goal beyond them, a motor never drives a joint further past them;
5. rate_limit: no command changes by more than a set amount from one cycle to the next (servos by
   default; a motor only when max_command_change is set);
6. command_limit: the robot's command range (RobotSpec.command_low/high).

None of these is in training, so none may shape a healthy policy's normal motion (docs/safety.md
has the table): a healthy policy outputs finite commands (1), moves a servo arm at most at its
velocity limit, which training's robot cannot exceed either (2, 3, 5: a servo's goal rate of two
velocity limits a cycle, and a ramp from where the joint is, leave such motion alone), and stays
inside the joint range its episodes end at (4, 6). A motor is different: its voltage is the
action itself, a step from -6 V to +6 V is what a bang-bang swing-up learned, and ramping or
rate-limiting it changes the dynamics the policy was trained on; so by default neither applies
to a voltage-driven actuator. Its protection is the position and velocity checks.

Stopping (watchdog, e-stop, Ctrl-C) is the loop's business (deploy/loop.py); what "stopped" means
for each actuator kind, `hold_command`, is here. numpy only: runs on the robot's computer.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from sim.spec import RobotSpec, RobotState
from sim.task import column_index

INTERVENTIONS = ("nan_guard", "soft_start", "velocity_limit", "position_limit", "rate_limit",
                 "command_limit")
"""Kinds of intervention, in the order they apply; bit i of a cycle's mask is INTERVENTIONS[i]."""


@dataclass
class SafetyConfig:
    """Every limit the supervisor enforces. None picks the default stated per field; 0 turns a
    check off (only where the field says so)."""

    soft_limit_margin: float = 0.05
    """Soft position limits sit this far (rad) inside the hard limits (0: at the hard limits)."""
    max_command_change: float | None = None
    """Largest change of any command from one cycle to the next, in the command's unit. None:
    twice the distance a joint covers at its velocity limit in one period (servos), none for
    motors (their voltage steps are the policy's own actions). 0: no rate limit."""
    velocity_limit_scale: float = 1.0
    """A joint faster than this times its RobotSpec velocity limit is not driven further that
    way (0: no velocity check)."""
    soft_start_seconds: float = 1.0
    """Ramp a servo's goals from the pose it was found in into the policy's commands (0: none).
    Motors are never ramped: a ramped voltage is other dynamics than the policy learned."""
    watchdog_seconds: float | None = None
    """No fresh state (a newer device time) for this long means safe stop. None: 5 control
    periods or 50 ms, whichever is longer."""
    stop_hold_seconds: float = 0.5
    """On Ctrl-C or e-stop, hold this long before releasing the robot."""

    def __post_init__(self) -> None:
        for name in ("soft_limit_margin", "velocity_limit_scale", "soft_start_seconds",
                     "stop_hold_seconds"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and np.isfinite(value) and value >= 0):
                raise ValueError(f"safety {name} must be a finite number >= 0, got {value!r}")
        for name in ("max_command_change", "watchdog_seconds"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, int | float) and np.isfinite(value)
                                          and value >= 0):
                raise ValueError(f"safety {name} must be a number >= 0 or null (the default), "
                                 f"got {value!r}")
        if self.watchdog_seconds == 0:
            raise ValueError("safety watchdog_seconds cannot be 0: a robot that stops answering "
                             "must stop; give the longest gap you accept, in seconds")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> SafetyConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown safety setting(s) {unknown}; settings: {sorted(known)}")
        return cls(**values)

    def watchdog_period(self, control_period: float) -> float:
        if self.watchdog_seconds is not None:
            return self.watchdog_seconds
        return max(5 * control_period, 0.05)


class Supervisor:
    """Example:
        >>> supervisor = Supervisor(SO_ARM, SafetyConfig(), first_state)
        >>> safe, mask = supervisor.filter(command, state, seconds_since_start)
        >>> supervisor.counts  # {"nan_guard": 0, "soft_start": 50, ...}
    """

    def __init__(self, spec: RobotSpec, config: SafetyConfig, first_state: RobotState) -> None:
        self.spec, self.config = spec, config
        joints = spec.actuated_joint_index
        self._joints = column_index(joints.tolist())  # a slice for the arm: cheap every cycle
        self.servo = spec.actuator_kind == "position"
        low = np.asarray(spec.position_low, dtype=float)[joints]
        high = np.asarray(spec.position_high, dtype=float)[joints]
        margin = np.minimum(config.soft_limit_margin, 0.25 * (high - low))  # finite ranges only
        margin = np.where(np.isfinite(margin), margin, 0.0)
        self.soft_low, self.soft_high = low + margin, high - margin
        self.command_low = np.asarray(spec.command_low, dtype=float)
        self.command_high = np.asarray(spec.command_high, dtype=float)
        spec_velocity_limit = np.asarray(spec.velocity_limit, dtype=float)[joints]
        self.velocity_limit = spec_velocity_limit * config.velocity_limit_scale
        if config.max_command_change is not None:
            self.max_change = np.full(spec.num_actuators, float(config.max_command_change))
        elif self.servo:
            # From the spec's limit, not the scaled one: velocity_limit_scale 0 (no velocity
            # check) must not make the rate limit 0 and freeze the robot.
            self.max_change = 2.0 * spec_velocity_limit * spec.control_period
        else:
            self.max_change = np.full(spec.num_actuators, np.inf)  # no rate limit unless asked
        self.start_command = self.hold_command(first_state)
        self.last_safe = self.start_command.copy()
        self.counts = dict.fromkeys(INTERVENTIONS, 0)
        # For `_untouched`: a servo goal inside both the soft and the command limits.
        self._static_low = np.maximum(self.soft_low, self.command_low)
        self._static_high = np.minimum(self.soft_high, self.command_high)
        self._last_untouched = True

    def hold_command(self, state: RobotState) -> np.ndarray:
        """The command that stops the robot where it is: servos hold their measured positions
        (within the command limits), motors get 0 V."""
        if self.servo:
            positions = self._actuated(state.positions)
            return np.clip(positions, self.command_low, self.command_high)
        return np.zeros(self.spec.num_actuators)

    def filter(self, command: np.ndarray, state: RobotState,
               seconds: float) -> tuple[np.ndarray, int]:
        """The command made safe, and the mask of the interventions that changed it.
        `seconds`: time since the loop started (for the soft start).

        It runs every cycle inside the loop's time budget: a few vector ops on a handful of
        numbers; a command that no check would change costs one bounds test."""
        command = np.array(command, dtype=float).reshape(self.spec.num_actuators)
        # Interventions come in runs (a joint held at its limit stays there): after a cycle
        # that needed the checks, go straight to them rather than test the fast path first.
        if self._last_untouched and self._untouched(command, state, seconds):
            self.last_safe = command
            return command.copy(), 0
        command, mask = self._checked(command, state, seconds)
        self._last_untouched = mask == 0
        return command, mask

    def _untouched(self, command: np.ndarray, state: RobotState, seconds: float) -> bool:
        """True when no check would change `command`: a servo goal, finite, inside every limit
        and the rate bound, the soft start over, no joint too fast. The common cycle then costs
        a few vector ops instead of every check's own (5 us a call against 8); anything else, motors
        included, goes through `_checked`, which also counts. NaN compares False: not untouched."""
        config = self.config
        if not self.servo or seconds < config.soft_start_seconds:
            return False
        low, high = self._static_low, self._static_high
        if config.max_command_change != 0:
            low = np.maximum(low, self.last_safe - self.max_change)
            high = np.minimum(high, self.last_safe + self.max_change)
        # np.count_nonzero rather than .all()/.any() here and below: 0.2 us against 1 us on a
        # handful of numbers.
        if np.count_nonzero((command >= low) & (command <= high)) < len(command):
            return False
        if config.velocity_limit_scale > 0:
            velocities = self._actuated(state.velocities)
            # A NaN velocity compares False here and goes to `_checked`, which lets it pass.
            return np.count_nonzero(np.abs(velocities) <= self.velocity_limit) == len(velocities)
        return True

    def _actuated(self, joint_values: np.ndarray) -> np.ndarray:
        """A reading's values (joint order) for the actuated joints (actuator order)."""
        return np.asarray(joint_values, dtype=float)[self._joints]

    def _checked(self, command: np.ndarray, state: RobotState,
                 seconds: float) -> tuple[np.ndarray, int]:
        """Every check in order, counting each that changed the command."""
        mask = 0
        counts = self.counts

        def changed(kind: int, new: np.ndarray) -> np.ndarray:
            nonlocal mask, command
            if np.count_nonzero(new != command):
                mask |= 1 << kind
                counts[INTERVENTIONS[kind]] += 1
                command = new
            return command

        if np.count_nonzero(np.isfinite(command)) < len(command):
            changed(0, self.last_safe.copy())
        ramp = self.config.soft_start_seconds
        if seconds < ramp and self.servo:
            fraction = max(seconds, 0.0) / ramp
            changed(1, self.start_command + fraction * (command - self.start_command))
        positions = self._actuated(state.positions)
        if self.config.velocity_limit_scale > 0:
            velocities = self._actuated(state.velocities)
            if np.count_nonzero(np.abs(velocities) > self.velocity_limit):  # NaN: False
                up, down = velocities > self.velocity_limit, velocities < -self.velocity_limit
                if self.servo:
                    # A goal beyond the measured position pulls the joint on; hold it there.
                    new = np.where(up, np.minimum(command, positions), command)
                    new = np.where(down, np.maximum(new, positions), new)
                else:
                    new = np.where((up & (command > 0)) | (down & (command < 0)), 0.0, command)
                changed(2, new)
        if self.servo:
            changed(3, np.minimum(np.maximum(command, self.soft_low), self.soft_high))
        elif np.count_nonzero((positions >= self.soft_high) | (positions <= self.soft_low)):
            past = ((positions >= self.soft_high) & (command > 0)) | (
                (positions <= self.soft_low) & (command < 0))
            changed(3, np.where(past, 0.0, command))
        if self.config.max_command_change != 0:
            changed(4, np.minimum(np.maximum(command, self.last_safe - self.max_change),
                                  self.last_safe + self.max_change))
        changed(5, np.minimum(np.maximum(command, self.command_low), self.command_high))
        self.last_safe = command
        return command.copy(), mask


def mask_names(mask: int) -> list[str]:
    """The interventions a cycle's mask records."""
    return [kind for i, kind in enumerate(INTERVENTIONS) if mask >> i & 1]
