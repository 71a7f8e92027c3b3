"""The reach task: bring an arm's tip within `success_distance` of a sampled target and hold still.

These are the task functions of DESIGN.md: the Gymnasium env and the deploy runtime both call
them, so training and the robot see the same observation, the same action scaling and the same
success test. numpy only: they run on the robot's computer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.commands import check_history_length, command_features
from sim.spec import RobotSpec, RobotState
from sim.task import TaskStep, column_index, config_to_json, judged, observation_slots

# Joint speeds are scaled into roughly [-1, 1] before the policy's own normalizer sees them.
VELOCITY_SCALE = 0.2
ACTION_BASES = ("measured", "last_goal")


@dataclass(frozen=True)
class ReachConfig:
    """Parameters of the reach task; they travel in the exported contract."""

    actuated_joints: tuple[str, ...] = ("shoulder_pan", "shoulder_lift", "elbow_flex")
    """Joints the policy commands; the others hold their default pose. Three joints place the
    tip without redundancy: with the wrist too, successive reaches drift through the null space
    into poses no training episode started from (measured: deploy success fell to 0.8)."""
    success_distance: float = 0.02
    """Tip-to-target distance (m) that counts as reached."""
    settle_speed: float | None = None
    """If set, reached also needs every joint slower than this (rad/s)."""
    max_step: float = 0.15
    """Largest change of a joint's position target per control period (rad); 0.15 rad in
    20 ms is about the STS3215's no-load speed."""
    limit_margin: float = 0.0
    """The actuated joints' goals stop this far (rad) inside the command limits. The deploy
    supervisor cuts a goal nearer a hard limit than the room the joint needs to stop there
    (`deploy.supervisor.SafetyConfig`: up to 0.29 rad on the SO arm at its velocity limit); a
    task whose policy works near the limits trains with that room, so no goal it sends is cut."""
    episode_seconds: float = 2.0
    """Time to reach before the episode is cut off."""
    goal_low: tuple[float, ...] = (-1.2, -0.4, -1.0)
    goal_high: tuple[float, ...] = (1.2, 1.2, 1.4)
    """Targets are tip positions of joint angles drawn uniformly here (so every target is
    reachable), one value per actuated joint."""
    min_goal_height: float = 0.04
    """Poses that bring the tip or any joint lower than this (m) above the floor are drawn again."""
    min_goal_reach: float = 0.08
    """Targets lie at least this far (m) in front of the base (x), where a desk arm works."""
    max_goal_extension: float = 0.85
    """Targets lie within this share of the arm's full reach from the shoulder: near full
    stretch the arm is close to singular and a servo arm is imprecise there."""
    command_history: int = 1
    """k: the observation ends with the actuated joints' position goals (rad) of the last k
    commands sent, oldest first, so a policy under several steps of command delay knows what is
    on its way. 1 (the last goal, which `action_base` "last_goal" steps from) is enough with that
    base: the last goal's tip says where the arm is headed whatever the delay. 0: off (with
    `action_base` "measured", the policies exported before the history existed)."""
    action_base: str = "last_goal"
    """Where an action's step starts: "last_goal", the goal last sent to each actuated joint
    (needs command_history >= 1), and the observation then also ends with the tip position those
    goals make and the target minus it; "measured", each joint's measured position (the policies
    exported before this field existed). Under d control steps of command delay the goals in
    flight start from where the arm was d steps ago, so a measured base cannot move the arm
    faster than a step per d periods; a last-goal base moves the goal a step every period
    whatever the delay. Measured on reach (PPO 250k, through the emulator with 160 ms of delay,
    servo gain x0.5, links x1.3): trained at that delay, a measured base reached 0.27 and a
    last-goal base 0.93."""


class ReachTask:
    """Reach for a robot with a forward-kinematics chain. An action in [-1, 1] moves each actuated
    joint's goal by up to `max_step` from its measured position (or from its last goal); the
    observation is

    joint positions (n), joint velocities * 0.2 (n), tip position (3), target (3), target - tip (3),
    then with `command_history` k > 0 the actuated joints' goals (rad) of the last k commands
    sent, oldest first (k x actuated joints), then with `action_base` "last_goal" the tip
    position of the last goals (3) and target - that tip (3).
    """

    name = "reach"
    scene: str | None = None
    objects: tuple[str, ...] = ()

    def __init__(self, robot: RobotSpec, config: ReachConfig | None = None) -> None:
        config = config or ReachConfig()
        if robot.chain is None:
            raise ValueError(f"reach needs a robot with a kinematic chain; {robot.name!r} has none")
        if len(config.goal_low) != len(config.actuated_joints) or len(config.goal_high) != len(
            config.actuated_joints
        ):
            raise ValueError("ReachConfig: goal_low and goal_high need one value per actuated joint "
                             f"({len(config.actuated_joints)})")
        if robot.actuator_kind != "position":
            raise ValueError(f"reach commands position servos; {robot.name!r} has "
                             f"{robot.actuator_kind!r} actuators")
        for joint in config.actuated_joints:
            if joint not in robot.actuator_names:
                robot.joint_index(joint)  # names an unknown joint, if that is the mistake
                raise ValueError(f"joint {joint!r} of {robot.name!r} has no actuator; actuated "
                                 f"joints are {list(robot.actuator_names)}")
        self.robot = robot
        self.config = config
        # Index in the command (actuator order) and in the state (joint order).
        self.actuated = column_index([robot.actuator_names.index(j) for j in config.actuated_joints])
        self.actuated_joints = column_index([robot.joint_index(j) for j in config.actuated_joints])
        self.chain_index = column_index([robot.joint_index(j) for j in robot.chain.joint_names])
        if not (np.isfinite(config.limit_margin) and config.limit_margin >= 0):
            raise ValueError(f"ReachConfig.limit_margin must be a finite number of rad >= 0, got "
                             f"{config.limit_margin!r}")
        self.low = np.asarray(robot.command_low, dtype=np.float64).copy()
        self.high = np.asarray(robot.command_high, dtype=np.float64).copy()
        self.low[self.actuated] += config.limit_margin
        self.high[self.actuated] -= config.limit_margin
        if np.any(self.low > self.high):
            raise ValueError(f"ReachConfig.limit_margin {config.limit_margin} rad leaves no range "
                             f"between {robot.name!r}'s command limits; make it smaller")
        self.default_pose = np.asarray(robot.default_pose, dtype=np.float64)
        self.default_command = self.default_pose[robot.actuated_joint_index]
        self.max_steps = round(config.episode_seconds / robot.control_period)
        self.history_length = check_history_length("ReachConfig", config.command_history)
        if config.action_base not in ACTION_BASES:
            raise ValueError(f"ReachConfig.action_base must be one of {ACTION_BASES}, got "
                             f"{config.action_base!r}")
        self.from_last_goal = config.action_base == "last_goal"
        if self.from_last_goal and not self.history_length:
            raise ValueError("ReachConfig.action_base 'last_goal' steps from the last goal sent, "
                             "which the command history keeps: set command_history >= 1")
        self.slots = observation_slots(self.observation_layout())
        offsets = np.asarray(robot.chain.offsets)
        self._full_extension = float(np.linalg.norm(offsets[2:], axis=1).sum()
                                     + np.linalg.norm(robot.chain.tip_offset))

    # -- sizes and layout, recorded in the contract ------------------------------------------
    @property
    def action_size(self) -> int:
        return len(self.config.actuated_joints)

    def observation_layout(self) -> list[tuple[str, int]]:
        n = self.robot.num_joints
        return [("joint_positions", n), ("joint_velocities_x0.2", n), ("tip_position", 3),
                ("target_position", 3), ("target_minus_tip", 3), *self.history_layout()]

    def history_layout(self) -> list[tuple[str, int]]:
        """The observation's command history part (none when `command_history` is 0)."""
        size = self.history_length * self.action_size
        layout = [("past_goals_rad_oldest_first", size)] if size else []
        if self.from_last_goal:
            layout += [("last_goal_tip_position", 3), ("target_minus_last_goal_tip", 3)]
        return layout

    def history_features(self, history: np.ndarray) -> np.ndarray:
        """The actuated joints' goals of the last commands, oldest first, flattened."""
        return command_features(history, self.history_length, self.actuated)

    def last_goals(self, history: np.ndarray) -> np.ndarray:
        """The actuated joints' goals of the last command sent (rad; batch rows first)."""
        return history[..., -1, :][..., self.actuated]

    def last_goal_tip(self, state: RobotState, history: np.ndarray) -> np.ndarray:
        """Where the tip would be with the actuated joints at their last goals and the others
        where they are measured: where the arm is headed."""
        positions = state.positions.copy()
        positions[..., self.actuated_joints] = self.last_goals(history)
        return self.robot.chain.tip_position(positions[..., self.chain_index])

    @property
    def observation_size(self) -> int:
        return sum(size for _, size in self.observation_layout())

    def contract(self) -> dict:
        """The task's part of the deployment contract (JSON-ready)."""
        return {
            "name": self.name,
            "config": config_to_json(self.config),
            "observation_layout": [[name, size] for name, size in self.observation_layout()],
            "action": {
                "size": self.action_size,
                "meaning": "change of each actuated joint's position target from its "
                           + ("last goal sent" if self.from_last_goal else "measured position")
                           + ", in units of max_step rad, clipped to the command limits",
                "max_step": self.config.max_step,
                "joints": list(self.config.actuated_joints),
                "low": self.low[self.actuated].tolist(),
                "high": self.high[self.actuated].tolist(),
                "held_joints_at_default": [j for j in self.robot.actuator_names
                                           if j not in self.config.actuated_joints],
            },
        }

    # -- the task functions ------------------------------------------------------------------
    def tip_position(self, state: RobotState) -> np.ndarray:
        return self.robot.chain.tip_position(state.positions[..., self.chain_index])

    def evaluate(self, state: RobotState, goal: np.ndarray, history: np.ndarray) -> TaskStep:
        """Observation, reward and success for one reading of the robot, or for a batch of
        readings (positions of shape (n, joints), goals (n, 3), history (n, k, actuators))."""
        tip = self.tip_position(state)
        parts = [state.positions, state.velocities * VELOCITY_SCALE, tip, goal, goal - tip]
        if self.history_length:
            parts.append(self.history_features(history))
        if self.from_last_goal:
            goal_tip = self.last_goal_tip(state, history)
            parts += [goal_tip, goal - goal_tip]
        return judged(self.outcome, parts)

    # -- the goal, as hindsight experience replay swaps it (sim/goals.py) ---------------------
    def achieved_goal(self, observation: np.ndarray) -> np.ndarray:
        return observation[..., self.slots["tip_position"]]

    def desired_goal(self, observation: np.ndarray) -> np.ndarray:
        return observation[..., self.slots["target_position"]]

    def with_goal(self, observation: np.ndarray, goal: np.ndarray) -> np.ndarray:
        slots, relabelled = self.slots, observation.copy()
        relabelled[..., slots["target_position"]] = goal
        relabelled[..., slots["target_minus_tip"]] = goal - observation[..., slots["tip_position"]]
        if self.from_last_goal:
            relabelled[..., slots["target_minus_last_goal_tip"]] = (
                goal - observation[..., slots["last_goal_tip_position"]])
        return relabelled

    def outcome(self, observation: np.ndarray) -> TaskStep:
        """Reward -distance, success within `success_distance` (and slower than
        `settle_speed`), the episode ending on success: reaching fast pays most. The one
        reward of reach: `evaluate` and the replay buffer's relabelling both call it."""
        to_goal = (observation[..., self.slots["target_position"]]
                   - observation[..., self.slots["tip_position"]]).astype(np.float64)
        distance = np.sqrt(np.square(to_goal).sum(axis=-1))  # np.linalg.norm: 1 us more
        success = distance < self.config.success_distance
        if self.config.settle_speed is not None:
            speeds = np.abs(observation[..., self.slots["joint_velocities_x0.2"]])
            success &= np.max(speeds, axis=-1) < self.config.settle_speed * VELOCITY_SCALE
        return TaskStep(observation=observation, reward=-distance, success=success,
                        terminated=success, distance=distance)

    def action_to_command(self, action: np.ndarray, state: RobotState,
                          history: np.ndarray) -> np.ndarray:
        """Policy action in [-1, 1] -> position goals (rad) for every actuator: each
        actuated joint's goal moves by up to `max_step` from where the joint is measured now (or
        from its last goal, `action_base` "last_goal", which `history` holds), the others hold
        their default pose. Relative targets keep the policy closed-loop (it corrects what it
        sees); the history is the one state, kept alike by the env and the deploy runtime."""
        # minimum/maximum rather than np.clip: the same numbers, a few microseconds less in
        # the robot's control loop.
        action = np.minimum(np.maximum(np.asarray(action, dtype=np.float64), -1.0), 1.0)
        command = np.empty((*action.shape[:-1], len(self.default_command)))
        command[...] = self.default_command
        base = (self.last_goals(history) if self.from_last_goal
                else state.positions[..., self.actuated_joints])
        command[..., self.actuated] = base + self.config.max_step * action
        return np.minimum(np.maximum(command, self.low), self.high)

    def ready(self, state: RobotState) -> bool:
        return True  # the servos hold the arm; between episodes it settles and walks home

    def ready_hint(self) -> str:
        return "nothing: the arm starts where it is"

    # -- sampling ----------------------------------------------------------------------------
    def sample_pose(self, rng: np.random.Generator) -> np.ndarray:
        """A pose with the actuated joints drawn from the goal range: every link at least
        `min_goal_height` above the floor, the tip `min_goal_reach` in front of the base and
        within `max_goal_extension` of full reach. Starts are drawn alike: on the robot an
        episode starts where the last one ended, near its target, or at home after a miss."""
        config = self.config
        # Rejection sampling, 32 candidates per forward-kinematics call: resets are frequent.
        for _ in range(50):
            poses = np.tile(self.default_pose, (32, 1))
            poses[:, self.actuated_joints] = rng.uniform(config.goal_low, config.goal_high,
                                                         (32, len(config.goal_low)))
            frames = self.robot.chain.frame_positions(poses[:, self.chain_index])
            # frames[:, 1] is the shoulder_lift joint: the reach is measured from there.
            extension = np.linalg.norm(frames[:, -1] - frames[:, 1], axis=-1) / self._full_extension
            valid = ((frames[..., 2].min(axis=1) >= config.min_goal_height)
                     & (frames[:, -1, 0] >= config.min_goal_reach)
                     & (extension <= config.max_goal_extension))
            if valid.any():
                return poses[np.argmax(valid)]
        raise RuntimeError(f"ReachConfig: no pose in {list(config.goal_low)}..{list(config.goal_high)}"
                           " meets min_goal_height, min_goal_reach and max_goal_extension; widen "
                           "the range")

    def sample_goal(self, rng: np.random.Generator,
                    start: RobotState | None = None) -> np.ndarray:
        """The tip position of a pose `sample_pose` draws; drawn again while it lies within
        `success_distance` of `start`'s tip (a success for doing nothing)."""
        tip = None if start is None else self.tip_position(start)
        for _ in range(100):
            pose = self.sample_pose(rng)
            goal = self.robot.chain.tip_position(pose[self.chain_index])
            if tip is None or np.linalg.norm(goal - tip) >= self.config.success_distance:
                return goal
        raise RuntimeError(f"ReachConfig: 100 targets in a row lay within success_distance "
                           f"{self.config.success_distance} m of the start tip {tip.tolist()}; "
                           "widen the goal range or lower success_distance")
