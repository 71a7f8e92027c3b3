"""The SO-101 desktop arm: six STS3215 serial-bus position servos.

Figures from shared/ROBOT_FACTS.md (STS3215 servo) and shared/reference/ (the published SO-101's
kinematics, masses and joint directions). The MJCF is sim/assets/so_arm.xml; its chain must
equal ARM_CHAIN (tests check both against the published forward kinematics). numpy only.
"""

from __future__ import annotations

from sim.spec import KinematicChain, PositionServo, RobotSpec

# 52 rpm no-load at 7.4 V (0.192 s / 60 deg).
STS3215_NO_LOAD_SPEED = 5.45
# The servo's loop as MuJoCo gains (menagerie robotstudio_so101: kp 998.22, kv 2.731), stall
# torque 2.94 N*m, a 12-bit encoder and the factory deadband of 1 count.
STS3215 = PositionServo(kp=998.22, kv=2.731, torque_limit=2.94, counts_per_rev=4096,
                        deadband_counts=1)
# Half the torque on the gripper, deliberately: LeRobot limits the SO-101 follower's gripper
# servo (Max_Torque_Limit 500 of 1000, Protection_Current 250, Overload_Torque 25) so a squeezing
# gripper does not burn out. The published model drives it with the full 2.94 N*m.
STS3215_GRIPPER = PositionServo(kp=998.22, kv=2.731, torque_limit=1.47, counts_per_rev=4096,
                                deadband_counts=1)

# The published SO-101 at q = 0 (shared/reference/README.md), in the frame whose origin is where
# the pan axis meets the base plate, x forward, z up; each offset is from the previous joint's
# anchor. The pan axis points down and the roll axis backwards, as in the published model; the
# lift, elbow and wrist_flex anchors lie 18.3 mm to the right (-y) of the arm's mid-plane, on
# the servos' horn side. The tip is the fixed jaw's tip point (the published gripperframe),
# 7.9 mm below the roll axis. A LeRobot-calibrated arm's joint readings (degrees, 0 in the middle
# of each recorded range, no sign flip: drive_mode 0) are these angles: LeRobot's own kinematics
# feeds them, in radians, to the published model (so101_new_calib) unchanged.
ARM_CHAIN = KinematicChain(
    joint_names=("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll"),
    offsets=((0.0, 0.0, 0.0624), (0.0303992, -0.0182778, 0.0542), (0.028, 0.0, 0.11257),
             (0.1349, 0.0, 0.0052), (0.0611, 0.0181, 0.0)),
    axes=((0.0, 0.0, -1.0), (0.0, 1.0, 0.0), (0.0, 1.0, 0.0), (0.0, 1.0, 0.0), (-1.0, 0.0, 0.0)),
    tip_offset=(0.0981, 0.000167, -0.007901),
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
    # The published SO-101 (TheRobotStudio's so101_new_calib, MuJoCo Menagerie's robotstudio_so101):
    # each joint 0 in the middle of its range, pan about -z and wrist roll about -x at zero; the
    # angles of LeRobot's SO-101 calibration (drive_mode 0, half-turn homing), with no sign flip.
    convention="so101_new_calib",
    chain=ARM_CHAIN,
)
