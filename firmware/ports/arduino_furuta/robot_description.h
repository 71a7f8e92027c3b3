/* The robot 'furuta' for the sim2real reference firmware, generated from its
 * RobotSpec by `sim2real firmware-header furuta`.
 * Do not edit: regenerate it (tests/firmware fail when it is stale). */
#ifndef S2R_ROBOT_FURUTA_H
#define S2R_ROBOT_FURUTA_H

#include "sim2real_device.h"

#define S2R_ROBOT_JOINTS 2
#define S2R_ROBOT_ACTUATORS 1
#define S2R_ROBOT_CONTROL_PERIOD_US 4000

/* What the device says it is (DESCRIPTION), byte for byte. */
static const char S2R_DESCRIPTION_JSON[] = "{\"actuator_names\": [\"arm\"], \"command_high\": [10.0], \"command_low\": [-10.0], \"control_period\": 0.004, \"firmware\": \"sim2real reference firmware (C99)\", \"joint_names\": [\"arm\", \"pendulum\"], \"mode\": \"voltage\", \"position_high\": [2.0, Infinity], \"position_low\": [-2.0, -Infinity], \"protocol\": 2, \"robot\": \"furuta\", \"sensors\": [], \"units\": {\"effort\": \"N*m\", \"position\": \"rad\", \"time\": \"us\", \"velocity\": \"rad/s\"}, \"velocity_limit\": [40.0, 60.0], \"watchdog_ms\": 100.0}";

static const s2r_robot S2R_ROBOT = {
    S2R_DESCRIPTION_JSON, sizeof S2R_DESCRIPTION_JSON - 1,
    2, 1, S2R_VOLTAGE, 100000u,
    {-10.0f}, /* command_low */
    {10.0f}, /* command_high */
    {0}, /* actuated_joint */
    {2048.0f, 2048.0f}, /* counts_per_rev */
    {0.0f, 3.1415927f}, /* power_up_position: rad where the encoders read 0 */
    {8.4f}, /* motor_resistance */
    {0.042f}, /* motor_torque_constant */
    {0.042f}, /* motor_back_emf_constant */
};

#endif
