/* The protocol core: framing, the session, every message, the watchdog. See sim2real_device.h
 * and docs/protocol.md. Little-endian on the wire whatever the CPU is: every number is packed
 * byte by byte. */
#include "sim2real_device.h"

#include <string.h>

#define TWO_PI 6.28318530717958647692f

/* -- framing ------------------------------------------------------------------------------- */

uint16_t s2r_crc16(const uint8_t *data, uint16_t length) {
    /* CRC-16/CCITT-FALSE: polynomial 0x1021, initial 0xFFFF, no reflection, no final XOR. */
    uint16_t crc = 0xFFFF;
    for (uint16_t i = 0; i < length; i++) {
        crc = (uint16_t)(crc ^ (data[i] << 8));
        for (int bit = 0; bit < 8; bit++) {
            uint16_t shifted = (uint16_t)(crc << 1);
            crc = (crc & 0x8000u) ? (uint16_t)(shifted ^ 0x1021u) : shifted;
        }
    }
    return crc;
}

static uint16_t cobs_encode(const uint8_t *data, uint16_t length, uint8_t *out) {
    /* Each run of non-zero bytes (at most 254) is written after a code byte: its length + 1.
     * A code of 0xFF means "254 bytes, no zero after them". */
    uint16_t code_at = 0, written = 1;
    uint8_t code = 1;
    for (uint16_t i = 0; i < length; i++) {
        if (data[i] == 0) {
            out[code_at] = code;
            code_at = written++;
            code = 1;
            continue;
        }
        out[written++] = data[i];
        if (++code == 0xFF) {
            out[code_at] = code;
            code_at = written++;
            code = 1;
        }
    }
    out[code_at] = code;
    return written;
}

static uint16_t cobs_decode(const uint8_t *data, uint16_t length, uint8_t *out,
                            uint16_t capacity, bool *ok) {
    uint16_t i = 0, written = 0;
    *ok = false;
    while (i < length) {
        uint8_t code = data[i];
        if (code == 0 || (uint32_t)i + code > length)
            return 0;   /* a zero inside the frame, or a block past its end */
        if ((uint32_t)written + code - 1 > capacity)
            return 0;
        memcpy(out + written, data + i + 1, code - 1u);
        written = (uint16_t)(written + code - 1);
        i = (uint16_t)(i + code);
        if (code != 0xFF && i < length) {
            if (written >= capacity)
                return 0;
            out[written++] = 0;
        }
    }
    *ok = true;
    return written;
}

uint16_t s2r_encode_frame(uint8_t type, uint16_t seq, const uint8_t *payload,
                          uint16_t payload_length, uint8_t *out) {
    /* The body is built at the end of `out` and encoded to its start: COBS only ever writes
     * behind what it reads, as long as the body starts at least one byte per 254 (+1) later. */
    uint16_t body_length = (uint16_t)(payload_length + 6);
    uint16_t room = (uint16_t)(body_length + body_length / 254 + 2);
    uint8_t *body = out + (room - body_length);
    body[0] = S2R_VERSION;
    body[1] = type;
    body[2] = (uint8_t)(seq & 0xFF);
    body[3] = (uint8_t)(seq >> 8);
    if (payload_length)
        memmove(body + 4, payload, payload_length);
    uint16_t crc = s2r_crc16(body, (uint16_t)(payload_length + 4));
    body[payload_length + 4] = (uint8_t)(crc & 0xFF);
    body[payload_length + 5] = (uint8_t)(crc >> 8);
    uint16_t length = cobs_encode(body, body_length, out);
    out[length++] = 0;
    return length;
}

uint16_t s2r_decode_frame(const uint8_t *encoded, uint16_t length, uint8_t *body) {
    bool ok;
    uint16_t size = cobs_decode(encoded, length, body, S2R_RECEIVE_BODY, &ok);
    if (!ok || size < 6)
        return 0;
    uint16_t crc = (uint16_t)(body[size - 2] | (body[size - 1] << 8));
    return s2r_crc16(body, (uint16_t)(size - 2)) == crc ? size : 0;
}

/* -- little-endian packing and short texts --------------------------------------------------- */

static void put_u16(uint8_t *at, uint16_t value) {
    at[0] = (uint8_t)value;
    at[1] = (uint8_t)(value >> 8);
}

static void put_u64(uint8_t *at, uint64_t value) {
    for (int i = 0; i < 8; i++)
        at[i] = (uint8_t)(value >> (8 * i));
}

static void put_f32(uint8_t *at, float value) {
    uint32_t bits;
    memcpy(&bits, &value, 4);
    for (int i = 0; i < 4; i++)
        at[i] = (uint8_t)(bits >> (8 * i));
}

static float get_f32(const uint8_t *at) {
    uint32_t bits = (uint32_t)at[0] | ((uint32_t)at[1] << 8) | ((uint32_t)at[2] << 16)
                    | ((uint32_t)at[3] << 24);
    float value;
    memcpy(&value, &bits, 4);
    return value;
}

static bool is_finite(float value) {
    /* Not isfinite(): some embedded libm's lack it, and -ffast-math would fold it away. */
    uint32_t bits;
    memcpy(&bits, &value, 4);
    return (bits & 0x7F800000u) != 0x7F800000u;
}

typedef struct {
    uint8_t bytes[S2R_FAULT_TEXT];
    uint16_t length;
} text;

static void add(text *t, const char *s) {
    while (*s && t->length < S2R_FAULT_TEXT)
        t->bytes[t->length++] = (uint8_t)*s++;
}

static void add_number(text *t, uint32_t value) {
    char digits[11];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n && t->length < S2R_FAULT_TEXT)
        t->bytes[t->length++] = (uint8_t)digits[--n];
}

static const char *mode_name(uint8_t mode) {
    static const char *const names[] = {"position", "velocity", "torque", "voltage"};
    return mode < 4 ? names[mode] : "unknown";
}

/* -- sending --------------------------------------------------------------------------------- */

static void send(s2r_device *d, uint8_t type, const uint8_t *payload, uint16_t length) {
    uint8_t out[S2R_MAX_SENT_BODY + S2R_MAX_SENT_BODY / 254 + 2];
    if (length + 6 > S2R_MAX_SENT_BODY)
        length = S2R_MAX_SENT_BODY - 6;
    uint16_t size = s2r_encode_frame(type, d->seq, payload, length, out);
    d->seq = (uint16_t)(d->seq + 1);
    s2r_port_write(out, size);
}

static void send_fault(s2r_device *d, uint16_t code, const text *message) {
    uint8_t payload[2 + S2R_FAULT_TEXT];
    put_u16(payload, code);
    memcpy(payload + 2, message->bytes, message->length);
    send(d, S2R_FAULT, payload, (uint16_t)(2 + message->length));
}

static void fault(s2r_device *d, uint16_t code, const char *message) {
    text t = {{0}, 0};
    add(&t, message);
    send_fault(d, code, &t);
}

static uint8_t description_chunks(const s2r_robot *robot) {
    return (uint8_t)((robot->description_length + S2R_DESCRIPTION_CHUNK - 1)
                     / S2R_DESCRIPTION_CHUNK);
}

static void send_description_chunk(s2r_device *d, uint8_t index) {
    const s2r_robot *robot = d->robot;
    uint8_t payload[2 + S2R_DESCRIPTION_CHUNK];
    uint16_t start = (uint16_t)(index * S2R_DESCRIPTION_CHUNK);
    uint16_t length = (uint16_t)(robot->description_length - start);
    if (length > S2R_DESCRIPTION_CHUNK)
        length = S2R_DESCRIPTION_CHUNK;
    payload[0] = index;
    payload[1] = description_chunks(robot);
    memcpy(payload + 2, robot->description_json + start, length);
    send(d, S2R_DESCRIPTION, payload, (uint16_t)(2 + length));
}

/* -- the robot ------------------------------------------------------------------------------- */

typedef struct {
    float positions[S2R_MAX_JOINTS], velocities[S2R_MAX_JOINTS];
} reading;

static void read_joints(const s2r_robot *robot, reading *r) {
    int32_t counts[S2R_MAX_JOINTS] = {0};
    float speeds[S2R_MAX_JOINTS] = {0};
    s2r_port_read_joints(counts, speeds);
    for (uint8_t j = 0; j < robot->joints; j++) {
        float step = TWO_PI / robot->counts_per_rev[j];
        r->positions[j] = robot->power_up_position[j] + step * (float)counts[j];
        r->velocities[j] = step * speeds[j];
    }
}

static void drive(s2r_device *d, const float *targets) {
    memcpy(d->command, targets, sizeof d->command);
    s2r_port_drive(d->command);
}

/* Stop where it is: a servo holds its measured position, a motor gets 0 V. */
static void stop_actuators(s2r_device *d) {
    const s2r_robot *robot = d->robot;
    float targets[S2R_MAX_ACTUATORS] = {0};
    if (robot->mode == S2R_POSITION) {
        reading r;
        read_joints(robot, &r);
        for (uint8_t a = 0; a < robot->actuators; a++)
            targets[a] = r.positions[robot->actuated_joint[a]];
    }
    drive(d, targets);
}

static void hold(s2r_device *d, uint8_t status, uint16_t code, const char *message) {
    stop_actuators(d);
    d->session = false;
    d->status = status;
    fault(d, code, message);
}

static void send_state(s2r_device *d, uint16_t request_seq) {
    const s2r_robot *robot = d->robot;
    uint8_t payload[23 + 12 * S2R_MAX_JOINTS];
    uint64_t now = s2r_port_micros();   /* the time of the sample, taken right after */
    reading r;
    read_joints(robot, &r);
    put_u16(payload, request_seq);
    put_u16(payload + 2, d->command_seq);
    put_u64(payload + 4, now);
    put_u64(payload + 12, d->command_time_us);
    payload[20] = d->status;
    payload[21] = robot->joints;
    payload[22] = 0;   /* no extra sensors */
    uint8_t *values = payload + 23;
    for (uint8_t j = 0; j < robot->joints; j++) {
        put_f32(values + 4 * j, r.positions[j]);
        put_f32(values + 4 * (robot->joints + j), r.velocities[j]);
        float effort = 0.0f;   /* a servo board without a load reading reports none */
        for (uint8_t a = 0; a < robot->actuators; a++) {
            if (robot->actuated_joint[a] != j || robot->mode != S2R_VOLTAGE
                || robot->motor_resistance[a] <= 0.0f)
                continue;
            float volts = d->command[a];   /* 0 V after a stop or a release */
            effort = robot->motor_torque_constant[a]
                     * (volts - robot->motor_back_emf_constant[a] * r.velocities[j])
                     / robot->motor_resistance[a];
        }
        put_f32(values + 4 * (2 * robot->joints + j), effort);
    }
    send(d, S2R_STATE, payload, (uint16_t)(23 + 12 * robot->joints));
}

/* -- the messages ---------------------------------------------------------------------------- */

static void on_hello(s2r_device *d, const uint8_t *payload, uint16_t length) {
    if (length != 4 || memcmp(payload, "S2R", 3) != 0)
        return;
    if (payload[3] != S2R_VERSION) {
        fault(d, S2R_FAULT_VERSION, "this device speaks protocol version 2");
        return;
    }
    if (d->estop_pressed) {
        fault(d, S2R_FAULT_ESTOP, "the e-stop button is pressed: release it, then send HELLO");
        return;
    }
    s2r_port_enable(true);
    d->session = true;
    d->status = S2R_STATUS_DRIVING;
    d->last_feed_us = s2r_port_micros();
    for (uint8_t i = 0; i < description_chunks(d->robot); i++)
        send_description_chunk(d, i);
}

static void on_command(s2r_device *d, const uint8_t *payload, uint16_t length, uint16_t seq) {
    const s2r_robot *robot = d->robot;
    if (!d->session) {
        fault(d, S2R_FAULT_NO_SESSION, "no session: send HELLO first");
        return;
    }
    text t = {{0}, 0};
    if (length < 2 || length != 2u + 4u * payload[1] || payload[0] > S2R_VOLTAGE) {
        add(&t, "COMMAND of ");
        add_number(&t, length);
        add(&t, " bytes is not mode, count and count float32 targets of a known mode");
        send_fault(d, S2R_FAULT_BAD_COMMAND, &t);
        return;
    }
    uint8_t mode = payload[0], count = payload[1];
    bool finite = true;
    for (uint8_t a = 0; a < count; a++)
        finite = finite && is_finite(get_f32(payload + 2 + 4 * a));
    if (mode != robot->mode || count != robot->actuators || !finite) {
        add(&t, "expected ");
        add_number(&t, robot->actuators);
        add(&t, " finite ");
        add(&t, mode_name(robot->mode));
        add(&t, " targets, got ");
        add_number(&t, count);
        add(&t, " ");
        add(&t, mode_name(mode));
        send_fault(d, S2R_FAULT_BAD_COMMAND, &t);
        return;
    }
    float targets[S2R_MAX_ACTUATORS] = {0};
    for (uint8_t a = 0; a < count; a++) {
        float value = get_f32(payload + 2 + 4 * a);
        if (value < robot->command_low[a])
            value = robot->command_low[a];
        if (value > robot->command_high[a])
            value = robot->command_high[a];
        targets[a] = value;
    }
    uint64_t now = s2r_port_micros();
    d->counters.commands++;
    d->last_feed_us = now;
    d->command_time_us = now ? now : 1;   /* 0 means "no command yet" */
    d->command_seq = seq;
    drive(d, targets);
}

static void on_release(s2r_device *d) {
    float zeros[S2R_MAX_ACTUATORS] = {0};
    s2r_port_enable(false);
    if (d->robot->mode != S2R_POSITION)
        drive(d, zeros);   /* no voltage left on the motor either */
    d->session = false;
    d->status = 0;
}

static void on_frame(s2r_device *d, const uint8_t *body, uint16_t size) {
    const uint8_t *payload = body + 4;
    uint16_t length = (uint16_t)(size - 6), seq = (uint16_t)(body[2] | (body[3] << 8));
    d->counters.frames_received++;
    if (body[0] != S2R_VERSION) {
        fault(d, S2R_FAULT_VERSION, "this device speaks protocol version 2");
        return;
    }
    switch (body[1]) {
    case S2R_HELLO:
        on_hello(d, payload, length);
        break;
    case S2R_DESCRIPTION_REQUEST:
        if (d->session && length == 1 && payload[0] < description_chunks(d->robot))
            send_description_chunk(d, payload[0]);
        break;
    case S2R_STATE_REQUEST:
        send_state(d, seq);
        break;
    case S2R_COMMAND:
        on_command(d, payload, length, seq);
        break;
    case S2R_HEARTBEAT:
        if (d->session)
            d->last_feed_us = s2r_port_micros();
        break;
    case S2R_ESTOP:
        hold(d, S2R_STATUS_ESTOP, S2R_FAULT_ESTOP,
             "e-stop from the host: holding; send HELLO to resume");
        break;
    case S2R_RELEASE:
        on_release(d);
        break;
    default:
        break;   /* a type this device does not know: ignored */
    }
}

/* -- the loop -------------------------------------------------------------------------------- */

void s2r_begin(s2r_device *device, const s2r_robot *robot) {
    memset(device, 0, sizeof *device);
    device->robot = robot;
    stop_actuators(device);
    s2r_port_enable(false);
    fault(device, S2R_FAULT_RESET, "powered up");
}

static void receive(s2r_device *d, uint8_t byte) {
    if (byte != 0) {
        if (d->discarding)
            return;
        if (d->received_length == sizeof d->received) {   /* no frame is this long: noise */
            d->counters.overflows++;
            d->discarding = true;
            d->received_length = 0;
            return;
        }
        d->received[d->received_length++] = byte;
        return;
    }
    uint16_t length = d->received_length;
    bool discarded = d->discarding;
    d->received_length = 0;
    d->discarding = false;
    if (discarded || length == 0)
        return;   /* the end of noise, or back-to-back delimiters */
    static uint8_t body[S2R_RECEIVE_BODY];   /* static: a small MCU's stack could not hold it */
    uint16_t size = s2r_decode_frame(d->received, length, body);
    if (size == 0) {
        d->counters.bad_frames++;
        return;
    }
    on_frame(d, body, size);
}

void s2r_poll(s2r_device *device) {
    int byte;
    while ((byte = s2r_port_read_byte()) >= 0)
        receive(device, (uint8_t)byte);
    bool pressed = s2r_port_estop_input();
    if (pressed && !device->estop_pressed) {
        device->estop_pressed = true;
        hold(device, S2R_STATUS_ESTOP, S2R_FAULT_ESTOP,
             "the e-stop button was pressed: holding; release it and send HELLO");
    }
    device->estop_pressed = pressed;
    uint64_t now = s2r_port_micros();
    if (device->session && now - device->last_feed_us > device->robot->watchdog_us) {
        device->counters.watchdog_trips++;
        text t = {{0}, 0};
        add(&t, "no command for ");
        add_number(&t, device->robot->watchdog_us / 1000u);
        add(&t, " ms: holding; send HELLO to resume");
        stop_actuators(device);
        device->session = false;
        device->status = S2R_STATUS_WATCHDOG;
        send_fault(device, S2R_FAULT_WATCHDOG, &t);
    }
}
