/* The host port: the firmware core built as a shared library for a PC, its board simulated.
 * hardware/firmware_emulator.py loads it (ctypes) and stands in for the board: it sets the
 * clock and the encoders from the robot's MuJoCo physics, passes the bytes of the serial line
 * in and out, and applies what the core drives to the simulated motor. The protocol code that
 * runs is the code a microcontroller runs; only these port functions differ.
 *
 * Built by firmware/Makefile with the robot's generated header (robot_description.h) on the
 * include path. One device per loaded library (the port's state is this file's). */
#include <string.h>

#include "robot_description.h"
#include "sim2real_device.h"

#define EXPORT __attribute__((visibility("default")))
#define RX_SIZE 8192
#define TX_SIZE 65536

static s2r_device device;
static uint8_t rx[RX_SIZE];
static uint32_t rx_head, rx_tail;          /* bytes waiting: rx_tail - rx_head */
static uint8_t tx[TX_SIZE];
static uint32_t tx_length, tx_lost;       /* written, and dropped for want of room */
static uint64_t clock_us;
static int32_t joint_counts[S2R_MAX_JOINTS];
static float joint_counts_per_second[S2R_MAX_JOINTS];
static float driven[S2R_MAX_ACTUATORS];
static uint32_t drives;                    /* s2r_port_drive calls, so a change is seen */
static bool enabled, estop;

/* -- the port the core calls ------------------------------------------------------------------ */
uint64_t s2r_port_micros(void) { return clock_us; }

int s2r_port_read_byte(void) {
    if (rx_head == rx_tail)
        return -1;
    return rx[rx_head++ % RX_SIZE];
}

void s2r_port_write(const uint8_t *bytes, uint16_t count) {
    for (uint16_t i = 0; i < count; i++) {
        if (tx_length == TX_SIZE) {
            tx_lost++;   /* a UART with no reader: bytes fall on the floor */
            continue;
        }
        tx[tx_length++] = bytes[i];
    }
}

void s2r_port_read_joints(int32_t counts[], float counts_per_second[]) {
    memcpy(counts, joint_counts, sizeof joint_counts);
    memcpy(counts_per_second, joint_counts_per_second, sizeof joint_counts_per_second);
}

void s2r_port_drive(const float targets[]) {
    memcpy(driven, targets, sizeof driven);
    drives++;
}

void s2r_port_enable(bool on) { enabled = on; }

bool s2r_port_estop_input(void) { return estop; }

/* -- what the simulated board does, called from Python ---------------------------------------- */

/* Power up: every buffer empty, the clock at `now_us`; the core sends FAULT RESET. */
EXPORT void host_begin(uint64_t now_us) {
    rx_head = rx_tail = tx_length = tx_lost = 0;
    memset(joint_counts, 0, sizeof joint_counts);
    memset(joint_counts_per_second, 0, sizeof joint_counts_per_second);
    memset(driven, 0, sizeof driven);
    drives = 0;
    enabled = estop = false;
    clock_us = now_us;
    s2r_begin(&device, &S2R_ROBOT);
}

/* Bytes arriving on the UART; returns how many fit (the rest are lost, as on an overrun). */
EXPORT uint32_t host_receive(const uint8_t *bytes, uint32_t count) {
    uint32_t taken = 0;
    while (taken < count && rx_tail - rx_head < RX_SIZE)
        rx[rx_tail++ % RX_SIZE] = bytes[taken++];
    return taken;
}

EXPORT void host_set_clock(uint64_t now_us) { clock_us = now_us; }

EXPORT void host_set_joints(const int32_t *counts, const float *counts_per_second) {
    memcpy(joint_counts, counts, sizeof(int32_t) * S2R_ROBOT.joints);
    memcpy(joint_counts_per_second, counts_per_second, sizeof(float) * S2R_ROBOT.joints);
}

EXPORT void host_set_estop(int pressed) { estop = pressed != 0; }

EXPORT void host_poll(void) { s2r_poll(&device); }

/* Move what the device wrote to `out` (at most `capacity` bytes, oldest first); their count. */
EXPORT uint32_t host_take_sent(uint8_t *out, uint32_t capacity) {
    uint32_t count = tx_length < capacity ? tx_length : capacity;
    memcpy(out, tx, count);
    memmove(tx, tx + count, tx_length - count);
    tx_length -= count;
    return count;
}

/* The actuators' targets as last driven into `targets`, and `*on` the amplifier; returns how
 * many times the core has driven them (a new value means a new drive). */
EXPORT uint32_t host_driven(float *targets, int *on) {
    memcpy(targets, driven, sizeof(float) * S2R_ROBOT.actuators);
    *on = enabled;
    return drives;
}

EXPORT const s2r_robot *host_robot(void) { return &S2R_ROBOT; }

EXPORT const s2r_counters *host_counters(void) { return &device.counters; }

EXPORT uint32_t host_sent_lost(void) { return tx_lost; }

/* Framing alone, for conformance tests: the core's encoder and decoder. */
EXPORT uint16_t host_encode_frame(uint8_t type, uint16_t seq, const uint8_t *payload,
                                  uint16_t payload_length, uint8_t *out) {
    return s2r_encode_frame(type, seq, payload, payload_length, out);
}

EXPORT uint16_t host_decode_frame(const uint8_t *encoded, uint16_t length, uint8_t *body) {
    return s2r_decode_frame(encoded, length, body);
}
