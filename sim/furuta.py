"""A rotary inverted (Furuta) pendulum after the Quanser Qube-Servo 2: a DC motor turns the arm,
the pendulum hangs free at its end. Figures from shared/ROBOT_FACTS.md section 4. numpy only."""

from __future__ import annotations

import math

from sim.spec import DCMotor, RobotSpec

# Qube-Servo 2 motor (Rm, kt, km); +-10 V is the Qube-Servo 3 manual's recommended range (the
# Qube-Servo 2 limit is unpublished).
QUBE_MOTOR = DCMotor(resistance=8.4, torque_constant=0.042, back_emf_constant=0.042,
                     voltage_limit=10.0)

FURUTA = RobotSpec(
    name="furuta",
    joint_names=("arm", "pendulum"),
    # The arm's cable allows about a turn; we stop it at +-2 rad. The pendulum turns freely.
    position_low=(-2.0, -math.inf),
    position_high=(2.0, math.inf),
    # Safety limits chosen here: the motor's no-load speed is 10 V / km = 238 rad/s.
    velocity_limit=(40.0, 60.0),
    actuator_names=("arm",),
    actuators=(QUBE_MOTOR,),
    command_low=(-QUBE_MOTOR.voltage_limit,),
    command_high=(QUBE_MOTOR.voltage_limit,),
    control_period=0.004,  # 250 Hz, the rate of the NPDR Qube data
    default_pose=(0.0, math.pi),  # hanging
    mjcf="furuta.xml",
    encoder_counts_per_rev=(2048, 2048),  # 512 lines in quadrature
)
