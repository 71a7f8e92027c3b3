"""The SO-101-class desktop arm: six STS3215 serial-bus position servos.

Figures from shared/ROBOT_FACTS.md (SO-101 kinematics and masses, STS3215 servo). The MJCF is
sim/assets/so_arm.xml; its chain must equal ARM_CHAIN (a test checks it). numpy only.
"""

from __future__ import annotations

from sim.spec import KinematicChain, RobotSpec

# 52 rpm no-load at 7.4 V (0.192 s / 60 deg).
STS3215_NO_LOAD_SPEED = 5.45
STS3215_STALL_TORQUE = 2.94

ARM_CHAIN = KinematicChain(
    joint_names=("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll"),
    offsets=((0.0, 0.0, 0.05), (0.0, 0.0, 0.067), (0.028, 0.0, 0.11257), (0.1349, 0.0, 0.0052),
             (0.0611, 0.0, 0.0)),
    axes=((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (0.0, 1.0, 0.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)),
    tip_offset=(0.098, 0.0, 0.0),
)

_LOW = (-1.920, -1.745, -1.690, -1.658, -2.744, -0.175)
_HIGH = (1.920, 1.745, 1.690, 1.658, 2.744, 1.745)

SO_ARM = RobotSpec(
    name="so_arm",
    joint_names=("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll",
                 "gripper"),
    position_low=_LOW,
    position_high=_HIGH,
    velocity_limit=(STS3215_NO_LOAD_SPEED,) * 6,
    command_low=_LOW,
    command_high=_HIGH,
    control_period=0.02,
    actuator="position",
    nominal_gains={"kp": 998.22, "kv": 2.731},
    default_pose=(0.0,) * 6,
    mjcf="so_arm.xml",
    chain=ARM_CHAIN,
    torque_limit=(STS3215_STALL_TORQUE,) * 5 + (STS3215_STALL_TORQUE / 2,),
)
