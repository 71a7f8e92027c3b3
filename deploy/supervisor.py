"""The safety supervisor: what stands between the policy and the robot, on by default.

Every command passes through `Supervisor.filter`, which applies, in this order, each check that
can change it and counts each time one did:

1. nan_guard: a command with NaN or inf is replaced by the last safe command;
2. soft_start: for the first seconds a servo's goal is ramped in from the pose the robot was found
   in, so a policy meeting an unexpected state cannot jump (servos only);
3. velocity_limit: a joint moving faster than its velocity limit is not driven further that way;
4. position_limit: soft limits, a margin inside each joint's hard limits: a servo is never sent a
   goal beyond them, a motor never drives a joint further past them. A servo joint moving
   towards a limit gets at least the room it needs to stop short of the hard limit: what it
   covers while a reading and the answer to it travel (`delay`) and while it brakes at
   `braking_deceleration`; at the velocity limit that is the room a saturating policy needs;
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

Two faults no check can hold for long escalate to a safe stop: `Supervisor.escalation` names
them, and the loop stops at its next cycle (a command already filtered is the last one sent):
nan_guard replacing every command for longer than `nan_stop_seconds` (the policy gives nothing
usable), and the rate limit cutting commands back and forth, against the direction of its last
cut of the same actuator, in more than `oscillation_share` of the control periods of an
`oscillation_seconds` window (the policy bang-bangs the actuators at the rate limit). Neither
ever fires for a healthy policy: its commands are finite and never reach a servo's rate limit.

Stopping (watchdog, e-stop, Ctrl-C, an escalation) is the loop's business (deploy/loop.py); what
"stopped" means for each actuator kind, `hold_command`, is here. numpy only: runs on the robot's
computer.
"""

from __future__ import annotations

import math
from collections import deque
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
    """Soft position limits sit this far (rad) inside the hard limits (0: at the hard limits);
    for a servo joint moving towards one, further in if it needs more room to stop
    (`braking_deceleration`)."""
    braking_deceleration: float = 80.0
    """How hard (rad/s^2) a servo joint is taken to brake once its goal stops short of it: the
    soft limit of a joint moving towards it at speed v sits v * delay + v^2 / (2 * this) inside
    the hard limit where that is more than `soft_limit_margin` (delay: the time from a reading
    to its answer acting, the link's round trip, by default one control period): 0.29 rad at
    the SO arm's velocity limit, the margin below 1.7 rad/s. A reading is never taken as slower
    than braking allows since the last one. 80 is below every joint of the simulated SO-101
    (93-197 rad/s^2 from 4.5-4.9 rad/s at the STS3215's stall torque, measured as the overshoot
    past a goal held in its way). Lower it for a heavier load. 0: fixed soft limits (as for
    motors)."""
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
    periods or 50 ms, whichever is longer, plus 3 round trips of the robot's link."""
    stop_hold_seconds: float = 0.5
    """On Ctrl-C, e-stop or an escalation, hold this long before releasing the robot."""
    nan_stop_seconds: float = 0.5
    """nan_guard replacing every command for longer than this (the policy gives only NaN or
    inf) is a safe stop. 0: never (nan_guard still holds each such command)."""
    oscillation_seconds: float = 0.5
    """The window of the oscillation stop: the rate limit cutting commands the other way from
    its last cut of the same actuator in more than `oscillation_share` of the control periods
    of this window is a safe stop (a policy that bang-bangs its servos at the rate limit).
    0: never. A healthy policy's commands never reach a servo's rate limit (measured, SO arm
    reach: steps of at most 0.82 of it)."""
    oscillation_share: float = 0.5
    """See `oscillation_seconds`; 0.5 s and 0.5 are 13 reversals at the rate limit in 25
    cycles at 50 Hz. A policy flipping its action each cycle makes one nearly every cycle."""

    def __post_init__(self) -> None:
        for name in ("soft_limit_margin", "velocity_limit_scale", "soft_start_seconds",
                     "stop_hold_seconds", "braking_deceleration", "nan_stop_seconds",
                     "oscillation_seconds", "oscillation_share"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and np.isfinite(value) and value >= 0):
                raise ValueError(f"safety {name} must be a finite number >= 0, got {value!r}")
        if not 0 < self.oscillation_share <= 1:
            raise ValueError(f"safety oscillation_share must be in (0, 1], a share of the "
                             f"window's control periods, got {self.oscillation_share!r}")
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

    def watchdog_period(self, control_period: float, round_trip: float = 0.0) -> float:
        """`watchdog_seconds`, or by default 5 control periods or 50 ms, whichever is longer,
        plus 3 round trips of the robot's link (Robot.round_trip): on a slow link the readings
        come late, pipelined from several requests in flight, and a lossy one loses a few in
        a row now and then."""
        if self.watchdog_seconds is not None:
            return self.watchdog_seconds
        return max(5 * control_period, 0.05) + 3 * round_trip


class Supervisor:
    """Example:
        >>> supervisor = Supervisor(SO_ARM, SafetyConfig(), first_state)
        >>> safe, mask = supervisor.filter(command, state, seconds_since_start)
        >>> supervisor.counts  # {"nan_guard": 0, "soft_start": 50, ...}
    """

    def __init__(self, spec: RobotSpec, config: SafetyConfig, first_state: RobotState,
                 delay: float | None = None) -> None:
        """`delay`: seconds from a reading to the command answering it acting on the robot
        (the link's round trip), for the soft limits' braking room; None: one control period."""
        self.spec, self.config = spec, config
        joints = spec.actuated_joint_index
        self._joints = column_index(joints.tolist())  # a slice for the arm: cheap every cycle
        self.servo = spec.actuator_kind == "position"
        low = np.asarray(spec.position_low, dtype=float)[joints]
        high = np.asarray(spec.position_high, dtype=float)[joints]
        # No margin is more than a quarter of the range (finite ranges only).
        self._most_margin = np.where(np.isfinite(high - low), 0.25 * (high - low), 0.0)
        margin = np.minimum(config.soft_limit_margin, self._most_margin)
        self._low, self._high = low, high
        self.soft_low, self.soft_high = low + margin, high - margin
        """The soft limits of a joint at rest; a servo's come in with its speed (`soft_limits`)."""
        self.command_low = np.asarray(spec.command_low, dtype=float)
        self.command_high = np.asarray(spec.command_high, dtype=float)
        spec_velocity_limit = np.asarray(spec.velocity_limit, dtype=float)[joints]
        self.velocity_limit = spec_velocity_limit * config.velocity_limit_scale
        self.delay = spec.control_period if delay is None else float(delay)
        if not (np.isfinite(self.delay) and self.delay >= 0):
            raise ValueError(f"supervisor delay must be a finite number of seconds >= 0, got "
                             f"{delay!r}")
        self._braking = self.servo and config.braking_deceleration > 0
        top = spec_velocity_limit
        self._full_margin = np.minimum(
            np.maximum(config.soft_limit_margin,
                       top * (self.delay + 0.5 * top / config.braking_deceleration))
            if self._braking else margin, self._most_margin)
        # What a joint's speed can lose in a control period, braking; the speeds last taken.
        self._decay = np.full(len(low), config.braking_deceleration * spec.control_period)
        self._held = np.zeros(len(low))
        n = len(low)
        self._margin_terms = (np.zeros(n), np.full(n, config.soft_limit_margin),
                              np.full(n, self.delay),
                              np.full(n, 0.5 / config.braking_deceleration if self._braking
                                      else 0.0))
        # The soft limits at the velocity limit, inside those of any speed: where a saturating
        # policy's goals stop.
        self.braking_low, self.braking_high = self.soft_limits(np.full(len(low), np.nan))
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
        self._rate_low = self._rate_high = self.last_safe  # set by each `filter`
        self.counts = dict.fromkeys(INTERVENTIONS, 0)
        # For `_untouched`: a servo goal inside both the soft limits at rest and the command
        # limits (and the room to stop at the joint's speed, added there).
        self._static_low = np.maximum(self.soft_low, self.command_low)
        self._static_high = np.minimum(self.soft_high, self.command_high)
        self._command_limits_bind = bool(np.any(self.command_low > self.soft_low)
                                         or np.any(self.command_high < self.soft_high))
        self._last_untouched = True
        self.escalation: str | None = None
        """Why the robot must stop (a fault no check can hold for long), once one happened."""
        self._nan_since: float | None = None  # the start of the running nan_guard streak
        # The oscillation stop: the direction of each actuator's last cut by the rate limit,
        # and the times of the last cycles with a cut against it (as many as make a stop).
        self._cut_direction = np.zeros(spec.num_actuators)
        self._zeros = np.zeros(spec.num_actuators)
        reversals = math.ceil(config.oscillation_share * config.oscillation_seconds
                              / spec.control_period)
        # Servos only: a motor's voltage steps are the policy's own actions (a swing-up's
        # bang-bang), even under a rate limit set for it.
        self._reversals: deque[float] | None = (
            deque(maxlen=max(reversals, 2)) if self.servo and config.oscillation_seconds > 0
            and np.all(np.isfinite(self.max_change)) else None)

    def soft_limits(self, velocities: np.ndarray,
                    slowest: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A servo's soft limits for joints moving at `velocities` (actuator order): towards a
        limit at speed v, the distance the joint needs to stop before its hard limit,
        v * delay + v^2 / (2 * braking_deceleration), where that is more than the rest margin;
        at most that of the spec's velocity limit (a faster joint is the velocity check's); a
        NaN speed counts as that. `slowest`: speeds the joints cannot be below whatever the
        reading (`_motion`)."""
        if not self._braking:
            return self.soft_low, self.soft_high
        # Arrays, not Python floats, in the arithmetic: 0.35 us an operation instead of 0.6-1.
        # fmin, not minimum: a NaN speed makes a NaN margin, which fmin turns into the largest.
        zero, margin, delay, slow = self._margin_terms
        up, down = np.maximum(velocities, zero), np.maximum(-velocities, zero)
        if slowest is not None:
            up, down = np.maximum(up, slowest), np.maximum(down, slowest)
        high = self._high - np.fmin(np.maximum(margin, up * (delay + slow * up)),
                                    self._full_margin)
        low = self._low + np.fmin(np.maximum(margin, down * (delay + slow * down)),
                                  self._full_margin)
        return low, high

    def hold_command(self, state: RobotState) -> np.ndarray:
        """The command that stops the robot where it is: servos hold their measured positions
        (within the command limits), motors get 0 V."""
        if self.servo:
            positions = self._actuated(state.positions)
            return np.clip(positions, self.command_low, self.command_high)
        return np.zeros(self.spec.num_actuators)

    def filter(self, command: np.ndarray, state: RobotState, seconds: float,
               window: list[np.ndarray] | None = None) -> tuple[np.ndarray, int]:
        """The command made safe, and the mask of the interventions that changed it.
        `seconds`: time since the loop started (for the soft start). `window`: the commands the
        robot may hold now (Robot.command_window: the last it acknowledged and every one sent
        since); the rate limit keeps the new command within its bound of each of them, so a
        lost write never lets the robot see a bigger step. None or empty: the last command
        this supervisor let through.

        It runs every cycle inside the loop's time budget: a few vector ops on a handful of
        numbers; a command that no check would change costs one bounds test."""
        command = np.array(command, dtype=float).reshape(self.spec.num_actuators)
        self._rate_low, self._rate_high = self._rate_bounds(window)
        velocities, speeds, slowest, held = self._motion(state)
        if held is not None:
            self._held = held
        # Interventions come in runs (a joint held at its limit stays there): after a cycle
        # that needed the checks, go straight to them rather than test the fast path first.
        if self._last_untouched and self._untouched(command, speeds, held, seconds):
            self.last_safe = command
            self._nan_since = None
            return command.copy(), 0
        command, mask = self._checked(command, state, velocities, slowest, seconds)
        self._last_untouched = mask == 0
        return command, mask

    def _motion(self, state: RobotState) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                                    np.ndarray | None]:
        """The actuated joints' velocities and speeds; for the soft limits' braking room (None
        without it), the speeds the joints cannot be below, and the speeds to take for this
        cycle. A joint loses at most `braking_deceleration` a second of speed, so it is no slower
        than the last speed taken less that for a period: a reading that dips (a stiff servo's
        speed wobbles from cycle to cycle) cannot let the soft limits leap out under a joint
        that still carries its speed. A NaN reading leaves the last speed taken, decaying."""
        velocities = self._actuated(state.velocities)
        speeds = np.abs(velocities)
        if not self._braking:
            return velocities, speeds, None, None
        slowest = self._held - self._decay
        return velocities, speeds, slowest, np.fmax(speeds, slowest)

    def _untouched(self, command: np.ndarray, speeds: np.ndarray, held: np.ndarray | None,
                   seconds: float) -> bool:
        """True when no check would change `command`: a servo goal, finite, inside every limit
        and the rate bound, the soft start over, no joint too fast. The common cycle then costs
        a few vector ops instead of every check's own (8 us a call against 15, the SO arm, on
        the 2-core machine of DESIGN.md); anything else, motors included, goes through
        `_checked`, which also counts. NaN compares False: not untouched. `speeds`, `held`:
        from `_motion`."""
        config = self.config
        if not self.servo or seconds < config.soft_start_seconds:
            return False
        # np.count_nonzero rather than .all()/.any() here and below: 0.2 us against 1 us on a
        # handful of numbers. A NaN speed compares False: to `_checked`, which lets it pass
        # (and takes it as the velocity limit in the soft limits: `held` does not show it).
        if config.velocity_limit_scale > 0:
            if np.count_nonzero(speeds <= self.velocity_limit) < len(speeds):
                return False
        elif held is not None and np.count_nonzero(speeds == speeds) < len(speeds):
            return False
        low, high = self._static_low, self._static_high
        if held is not None:
            # The room to stop at this speed, towards either limit: inside the soft limits of
            # `_checked`, which give it only towards the limit a joint moves to (computed alike,
            # so that rounding cannot tell them apart).
            _, margin, delay, slow = self._margin_terms
            room = np.maximum(margin, held * (delay + slow * held))
            low, high = self._low + room, self._high - room
            if self._command_limits_bind:
                low = np.maximum(low, self.command_low)
                high = np.minimum(high, self.command_high)
        if config.max_command_change != 0:
            low = np.maximum(low, self._rate_low)
            high = np.minimum(high, self._rate_high)
        return np.count_nonzero((command >= low) & (command <= high)) == len(command)

    def _rate_bounds(self, window: list[np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
        """The rate limit's range for the next command: within `max_change` of every command
        in `window` (of the last one let through when there is none). Commands let through one
        by one are each within that of all before them, so the range is never empty; if it is
        (a backend that changed its commands on the way), the newest command in it is kept."""
        if not window:
            return self.last_safe - self.max_change, self.last_safe + self.max_change
        if len(window) == 1:
            return window[0] - self.max_change, window[0] + self.max_change
        rows = np.asarray(window)
        low, high = rows.max(axis=0) - self.max_change, rows.min(axis=0) + self.max_change
        empty = low > high
        if np.count_nonzero(empty):
            low, high = np.where(empty, rows[-1], low), np.where(empty, rows[-1], high)
        return low, high

    def _actuated(self, joint_values: np.ndarray) -> np.ndarray:
        """A reading's values (joint order) for the actuated joints (actuator order)."""
        return np.asarray(joint_values, dtype=float)[self._joints]

    def _checked(self, command: np.ndarray, state: RobotState, velocities: np.ndarray,
                 slowest: np.ndarray | None, seconds: float) -> tuple[np.ndarray, int]:
        """Every check in order, counting each that changed the command. `velocities`,
        `slowest`: from `_motion`."""
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
            self._held_nan(seconds)
        else:
            self._nan_since = None
        ramp = self.config.soft_start_seconds
        if seconds < ramp and self.servo:
            fraction = max(seconds, 0.0) / ramp
            changed(1, self.start_command + fraction * (command - self.start_command))
        positions = self._actuated(state.positions)
        if self.config.velocity_limit_scale > 0:
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
            low, high = self.soft_limits(velocities, slowest)
            changed(3, np.minimum(np.maximum(command, low), high))
        elif np.count_nonzero((positions >= self.soft_high) | (positions <= self.soft_low)):
            past = ((positions >= self.soft_high) & (command > 0)) | (
                (positions <= self.soft_low) & (command < 0))
            changed(3, np.where(past, 0.0, command))
        if self.config.max_command_change != 0:
            limited = np.minimum(np.maximum(command, self._rate_low), self._rate_high)
            if np.count_nonzero(limited != command):
                if self._reversals is not None:
                    self._cut(np.sign(command - limited), seconds)
                changed(4, limited)
        changed(5, np.minimum(np.maximum(command, self.command_low), self.command_high))
        self.last_safe = command
        return command.copy(), mask

    def _held_nan(self, seconds: float) -> None:
        """nan_guard held this cycle's command: a stop once it has held every command for
        longer than `nan_stop_seconds`."""
        if self._nan_since is None:
            self._nan_since = seconds
        streak = seconds - self._nan_since
        limit = self.config.nan_stop_seconds
        if limit > 0 and streak > limit and self.escalation is None:
            self.escalation = (f"supervisor nan_guard: the policy gave NaN or inf for every "
                               f"command of {streak:.2f} s (nan_stop_seconds {limit:g}); each was "
                               "replaced by the last safe one")

    def _cut(self, directions: np.ndarray, seconds: float) -> None:
        """The rate limit cut the actuators with a nonzero `directions` (the way each command
        wanted to go on): a reversal where that is against the actuator's last cut; a stop once
        the window holds more reversals than `oscillation_share` of its control periods."""
        last = self._cut_direction
        reversed_ = np.count_nonzero(directions * last < self._zeros)
        # (Where no cut: the last direction; directions are -1, 0 or 1.)
        self._cut_direction = directions + (directions == self._zeros) * last
        if not reversed_:
            return
        times = self._reversals
        times.append(seconds)
        window = self.config.oscillation_seconds
        if (len(times) == times.maxlen and seconds - times[0] <= window
                and self.escalation is None):
            self.escalation = (f"supervisor oscillation: the rate limit cut commands back and "
                               f"forth in {len(times)} cycles within {seconds - times[0]:.2f} s "
                               f"(oscillation_seconds {window:g}, oscillation_share "
                               f"{self.config.oscillation_share:g}): the policy bang-bangs "
                               "the actuators")


def mask_names(mask: int) -> list[str]:
    """The interventions a cycle's mask records."""
    return [kind for i, kind in enumerate(INTERVENTIONS) if mask >> i & 1]
