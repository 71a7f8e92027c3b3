/* The parser under the sanitizers: a program that feeds byte streams to a freshly started
 * device and reports what it made of each. tests/firmware/test_conformance.py writes streams
 * (hypothesis: garbage, truncated, bit-flipped and wrong-version frames among good ones) and
 * checks the answers against the Python side of the protocol.
 *
 * stdin, per stream:  length (u32, little-endian) | bytes, fed in pieces of `piece` bytes
 *                     (first byte of the stream's record after the length: the piece size)
 * stdout, per stream: frames_received | bad_frames | overflows | sent length (u32 each) | sent
 * Built with -fsanitize=address,undefined by `make fuzz`: any overflow, undefined behaviour or
 * leak ends it with a report and a non-zero exit. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sim2real_device.h"

void host_begin(uint64_t now_us);
uint32_t host_receive(const uint8_t *bytes, uint32_t count);
void host_set_clock(uint64_t now_us);
void host_poll(void);
uint32_t host_take_sent(uint8_t *out, uint32_t capacity);
const s2r_counters *host_counters(void);

static uint8_t stream[1 << 20];
static uint8_t sent[1 << 16];

static int read_u32(uint32_t *value) {
    uint8_t b[4];
    if (fread(b, 1, 4, stdin) != 4)
        return 0;
    *value = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16)
             | ((uint32_t)b[3] << 24);
    return 1;
}

static void write_u32(uint32_t value) {
    uint8_t b[4] = {(uint8_t)value, (uint8_t)(value >> 8), (uint8_t)(value >> 16),
                    (uint8_t)(value >> 24)};
    fwrite(b, 1, 4, stdout);
}

int main(void) {
    uint32_t length;
    while (read_u32(&length)) {
        if (length == 0 || length > sizeof stream || fread(stream, 1, length, stdin) != length)
            return 2;
        uint32_t piece = stream[0] ? stream[0] : 1;
        host_begin(1000);
        host_take_sent(sent, sizeof sent);   /* the FAULT RESET of power-up */
        uint64_t now = 1000;
        for (uint32_t at = 1; at < length; at += piece) {
            uint32_t count = length - at < piece ? length - at : piece;
            host_receive(stream + at, count);
            now += 50;   /* 50 us between pieces: never near the watchdog */
            host_set_clock(now);
            host_poll();
        }
        const s2r_counters *counters = host_counters();
        uint32_t size = host_take_sent(sent, sizeof sent);
        write_u32(counters->frames_received);
        write_u32(counters->bad_frames);
        write_u32(counters->overflows);
        write_u32(size);
        fwrite(sent, 1, size, stdout);
        fflush(stdout);
    }
    return 0;
}
