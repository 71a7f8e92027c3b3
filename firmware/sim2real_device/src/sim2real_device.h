/* The device side of the sim2real serial protocol, version 2 (docs/protocol.md), in portable
 * C99: no heap, fixed buffers, no printf. A board gives it the port functions below; the robot
 * it is comes from a header generated from the robot's RobotSpec
 * (`sim2real firmware-header ROBOT > robot_description.h`), so it cannot disagree with the
 * policy's contract.
 *
 * A board's program:
 *
 *     #include "sim2real_device.h"
 *     #include "robot_description.h"     // defines S2R_ROBOT
 *     static s2r_device device;
 *     setup: s2r_begin(&device, &S2R_ROBOT);
 *     loop:  s2r_poll(&device);          // as often as it can: bytes in, frames, watchdog
 */
#ifndef SIM2REAL_DEVICE_H
#define SIM2REAL_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define S2R_VERSION 2
#define S2R_MAX_JOINTS 8
#define S2R_MAX_ACTUATORS 8
#define S2R_MAX_BODY 2048          /* the longest body a receiver must accept */
#ifndef S2R_RECEIVE_BODY
#if defined(__AVR__)
/* 8-bit AVRs have 2-8 KB of RAM; what a host sends is at most 42 bytes (an 8-actuator COMMAND),
 * so a longer frame is dropped as noise there. */
#define S2R_RECEIVE_BODY 128
#else
#define S2R_RECEIVE_BODY S2R_MAX_BODY
#endif
#endif
#define S2R_MAX_ENCODED (S2R_RECEIVE_BODY + S2R_RECEIVE_BODY / 254 + 2)
#define S2R_MAX_SENT_BODY 256      /* the longest body this device sends (a FAULT: 208) */
#define S2R_DESCRIPTION_CHUNK 32
#define S2R_FAULT_TEXT 200

enum s2r_type {
    S2R_HELLO = 0x01, S2R_DESCRIPTION = 0x02, S2R_STATE_REQUEST = 0x03, S2R_STATE = 0x04,
    S2R_COMMAND = 0x05, S2R_HEARTBEAT = 0x06, S2R_ESTOP = 0x07, S2R_RELEASE = 0x08,
    S2R_FAULT = 0x09, S2R_DESCRIPTION_REQUEST = 0x0A
};
enum s2r_mode { S2R_POSITION = 0, S2R_VELOCITY = 1, S2R_TORQUE = 2, S2R_VOLTAGE = 3 };
enum s2r_fault {
    S2R_FAULT_WATCHDOG = 1, S2R_FAULT_ESTOP = 2, S2R_FAULT_BAD_COMMAND = 3, S2R_FAULT_RESET = 4,
    S2R_FAULT_NO_SESSION = 5, S2R_FAULT_VERSION = 6
};
enum s2r_status {
    S2R_STATUS_ESTOP = 1, S2R_STATUS_WATCHDOG = 2, S2R_STATUS_DRIVING = 4, S2R_STATUS_FAULT = 8
};

/* What the robot is: generated from its RobotSpec (never written by hand). */
typedef struct {
    const char *description_json;   /* the DESCRIPTION the device sends, exactly */
    uint16_t description_length;
    uint8_t joints, actuators;
    uint8_t mode;                   /* enum s2r_mode: what COMMAND targets mean */
    uint32_t watchdog_us;
    float command_low[S2R_MAX_ACTUATORS], command_high[S2R_MAX_ACTUATORS];
    uint8_t actuated_joint[S2R_MAX_ACTUATORS];   /* the joint each actuator turns */
    float counts_per_rev[S2R_MAX_JOINTS];       /* encoder counts per turn */
    float power_up_position[S2R_MAX_JOINTS];    /* rad where the encoders read 0 */
    /* A DC motor's constants (voltage mode), for the effort it reports: tau = kt (V - km w) / R */
    float motor_resistance[S2R_MAX_ACTUATORS];
    float motor_torque_constant[S2R_MAX_ACTUATORS];
    float motor_back_emf_constant[S2R_MAX_ACTUATORS];
} s2r_robot;

/* -- the port: what a board provides -------------------------------------------------------- */
uint64_t s2r_port_micros(void);                 /* a monotonic microsecond clock */
int s2r_port_read_byte(void);                   /* the next byte from the UART, or -1: none */
void s2r_port_write(const uint8_t *bytes, uint16_t count);    /* to the UART, in order */
/* Each joint's encoder: counts since power-up, and its speed in counts per second (a
 * tachometer, or edge timing in the encoder's interrupt). */
void s2r_port_read_joints(int32_t counts[], float counts_per_second[]);
/* Drive each actuator at its target, in the robot's mode (V for a motor, rad for a servo's goal
 * position); targets are already clamped to the robot's command limits. */
void s2r_port_drive(const float targets[]);
void s2r_port_enable(bool on);                  /* amplifier / servo torque on or off */
bool s2r_port_estop_input(void);                /* the board's own e-stop, true while pressed */

/* -- the core ------------------------------------------------------------------------------- */
typedef struct {
    uint32_t frames_received;   /* frames whole (COBS, length and CRC right) */
    uint32_t bad_frames;        /* frames dropped for bad COBS, CRC or length */
    uint32_t overflows;         /* runs longer than any frame with no delimiter: dropped */
    uint32_t commands;          /* COMMANDs applied */
    uint32_t watchdog_trips;
} s2r_counters;

typedef struct {
    const s2r_robot *robot;
    uint8_t received[S2R_MAX_ENCODED];
    uint16_t received_length;
    bool discarding;            /* after an overflow: until the next delimiter */
    uint16_t seq;               /* of the next frame sent */
    bool session;
    uint8_t status;
    uint64_t last_feed_us;      /* the last COMMAND or HEARTBEAT in a session */
    uint64_t command_time_us;   /* when the last COMMAND applied arrived; 0: none yet */
    uint16_t command_seq;
    float command[S2R_MAX_ACTUATORS];   /* what the actuators are driven at now */
    bool estop_pressed;
    s2r_counters counters;
} s2r_device;

/* Start (or restart) the device: no session, actuators at rest; sends FAULT RESET. */
void s2r_begin(s2r_device *device, const s2r_robot *robot);
/* Take every byte the UART has, answer the frames among them, run the watchdog and the e-stop
 * input. Call it as often as the board can (it returns at once when nothing is waiting). */
void s2r_poll(s2r_device *device);

/* -- framing, for a board or a test that speaks the protocol some other way ------------------ */
uint16_t s2r_crc16(const uint8_t *data, uint16_t length);
/* COBS(body) and the 0x00 delimiter into out (room for length + length / 254 + 2); its size. */
uint16_t s2r_encode_frame(uint8_t type, uint16_t seq, const uint8_t *payload,
                          uint16_t payload_length, uint8_t *out);
/* One frame without its delimiter -> body (room for S2R_RECEIVE_BODY); the body's length, or 0
 * when it is not a whole frame (COBS, length or CRC wrong). */
uint16_t s2r_decode_frame(const uint8_t *encoded, uint16_t length, uint8_t *body);

#ifdef __cplusplus
}
#endif
#endif
