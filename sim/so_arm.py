"""The SO-101-class desktop arm: six STS3215 serial-bus position servos.

Figures from shared/ROBOT_FACTS.md (SO-101 kinematics and masses, STS3215 servo). The MJCF is
sim/assets/so_arm.xml; its chain must equal ARM_CHAIN (a test checks it). numpy only.
"""

from __future__ import annotations

from sim.spec import KinematicChain, PositionServo, RobotSpec

# 52 rpm no-load at 7.4 V (0.192 s / 60 deg).
STS3215_NO_LOAD_SPEED = 5.45
# The servo's loop as MuJoCo gains (menagerie robotstudio_so101: kp 998.22, kv 2.731), stall
# torque 2.94 N*m, a 12-bit encoder and the factory deadband of 1 count.
STS3215 = PositionServo(kp=998.22, kv=2.731, torque_limit=2.94, counts_per_rev=4096,
                        deadband_counts=1)
# LeRobot limits the gripper servo to 50 % torque.
STS3215_GRIPPER = PositionServo(kp=998.22, kv=2.731, torque_limit=1.47, counts_per_rev=4096,
                                deadband_counts=1)

ARM_CHAIN = KinematicChain(
    joint_names=("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll"),
    offsets=((0.0, 0.0, 0.05), (0.0, 0.0, 0.067), (0.028, 0.0, 0.11257), (0.1349, 0.0, 0.0052),
             (0.0611, 0.0, 0.0)),
    axes=((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (0.0, 1.0, 0.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)),
    tip_offset=(0.098, 0.0, 0.0),
)

_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
_LOW = (-1.920, -1.745, -1.690, -1.658, -2.744, -0.175)
_HIGH = (1.920, 1.745, 1.690, 1.658, 2.744, 1.745)

SO_ARM = RobotSpec(
    name="so_arm",
    joint_names=_JOINTS,
    position_low=_LOW,
    position_high=_HIGH,
    velocity_limit=(STS3215_NO_LOAD_SPEED,) * 6,
    actuator_names=_JOINTS,
    actuators=(STS3215,) * 5 + (STS3215_GRIPPER,),
    command_low=_LOW,
    command_high=_HIGH,
    control_period=0.02,
    default_pose=(0.0,) * 6,
    mjcf="so_arm.xml",
    encoder_counts_per_rev=(4096,) * 6,
    chain=ARM_CHAIN,
)
