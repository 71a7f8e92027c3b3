// The Furuta pendulum's board: an Arduino Mega 2560 (ATmega2560, 16 MHz, 8 KB RAM) speaking the
// sim2real protocol over its USB serial port at 1,000,000 baud. The protocol is the library
// sim2real_device (firmware/sim2real_device); this sketch is only its port: the clock, the UART,
// two quadrature encoders on interrupts, an H-bridge on PWM and the e-stop input.
//
// Wiring (change the pins below for another board):
//   arm encoder A, B       -> pins 2, 3    (interrupts; 512 lines, 2048 counts a turn in 4x)
//   pendulum encoder A, B  -> pins 18, 19  (interrupts)
//   H-bridge PWM           -> pin 9        (31 kHz, duty = |V| / SUPPLY_VOLTS)
//   H-bridge IN1, IN2      -> pins 7, 8    (direction; both low: coast)
//   H-bridge enable        -> pin 6        (the amplifier: low after RELEASE and at power-up)
//   e-stop                 -> pin 12 to GND through a normally closed switch (pressed or a
//                             broken wire reads high: stop)
// Power up with the pendulum hanging still and the arm at its centre: the encoders count from
// there (robot_description.h, power_up_position).
//
// Build and flash: see README.md, "Reference firmware".

#include <sim2real_device.h>

#include "robot_description.h"

static const uint8_t ENCODER_PINS[S2R_ROBOT_JOINTS][2] = {{2, 3}, {18, 19}};
static const uint8_t PWM_PIN = 9, IN1_PIN = 7, IN2_PIN = 8, ENABLE_PIN = 6, ESTOP_PIN = 12;
static const float SUPPLY_VOLTS = 12.0f;   // the H-bridge's supply: full duty gives this
static const uint32_t BAUD = 1000000;
static const uint32_t STILL_US = 100000;   // no edge for this long: the joint is still

// -- encoders: 4x quadrature decoding in the pin-change interrupts, and a tachometer from the
// time of the last four edges (one line: the four edges of a quadrature cycle are not evenly
// spaced, a whole cycle is).
struct Encoder {
  volatile int32_t counts;
  volatile uint8_t state;                // (A << 1) | B, as last seen
  volatile uint32_t edge_us[4];          // times of the last four edges, newest at `newest`
  volatile uint8_t newest;
  volatile int8_t direction;             // of the last edge: +1 or -1
};
static Encoder encoders[S2R_ROBOT_JOINTS];

// Gray-code transitions: previous state (2 bits) and new state (2 bits) -> -1, 0 or +1.
static const int8_t STEP[16] = {0, 1, -1, 0, -1, 0, 0, 1, 1, 0, 0, -1, 0, -1, 1, 0};

static void on_edge(uint8_t joint) {
  Encoder &e = encoders[joint];
  uint8_t now_state = (uint8_t)((digitalRead(ENCODER_PINS[joint][0]) << 1)
                                | digitalRead(ENCODER_PINS[joint][1]));
  int8_t step = STEP[(e.state << 2) | now_state];
  e.state = now_state;
  if (step == 0) return;                 // a bounce, or a missed edge (both bits changed)
  e.counts += step;
  e.direction = step;
  e.newest = (uint8_t)((e.newest + 1) & 3);
  e.edge_us[e.newest] = micros();
}
static void on_arm_edge() { on_edge(0); }
static void on_pendulum_edge() { on_edge(1); }

// -- the port -------------------------------------------------------------------------------
extern "C" {

uint64_t s2r_port_micros(void) {
  // micros() wraps every 71 minutes: extend it to 64 bits (called far more often than that).
  static uint32_t last = 0;
  static uint64_t high = 0;
  uint32_t now = micros();
  if (now < last) high += (uint64_t)1 << 32;
  last = now;
  return high | now;
}

int s2r_port_read_byte(void) { return Serial.read(); }

void s2r_port_write(const uint8_t *bytes, uint16_t count) { Serial.write(bytes, count); }

void s2r_port_read_joints(int32_t counts[], float counts_per_second[]) {
  uint32_t now = micros();
  for (uint8_t j = 0; j < S2R_ROBOT_JOINTS; j++) {
    noInterrupts();
    Encoder &e = encoders[j];
    int32_t c = e.counts;
    uint32_t newest = e.edge_us[e.newest], oldest = e.edge_us[(e.newest + 1) & 3];
    int8_t direction = e.direction;
    interrupts();
    counts[j] = c;
    uint32_t span = newest - oldest, since = now - newest;
    if (since > STILL_US || span == 0) {
      counts_per_second[j] = 0.0f;
      continue;
    }
    // Four counts over the last line; slower than that if no edge has come since.
    float per_count_us = (float)(since > span / 4 ? since : span / 4);
    counts_per_second[j] = direction * 1e6f / per_count_us;
  }
}

void s2r_port_drive(const float targets[]) {
  float volts = targets[0];
  float duty = (volts < 0 ? -volts : volts) / SUPPLY_VOLTS;
  if (duty > 1.0f) duty = 1.0f;
  digitalWrite(IN1_PIN, volts > 0 ? HIGH : LOW);
  digitalWrite(IN2_PIN, volts < 0 ? HIGH : LOW);
  analogWrite(PWM_PIN, (int)(duty * 255.0f + 0.5f));
}

void s2r_port_enable(bool on) { digitalWrite(ENABLE_PIN, on ? HIGH : LOW); }

bool s2r_port_estop_input(void) { return digitalRead(ESTOP_PIN) == HIGH; }

}  // extern "C"

// -- the program ----------------------------------------------------------------------------
static s2r_device device;

void setup() {
  pinMode(ENABLE_PIN, OUTPUT);
  digitalWrite(ENABLE_PIN, LOW);         // the amplifier stays off until a HELLO
  pinMode(IN1_PIN, OUTPUT);
  pinMode(IN2_PIN, OUTPUT);
  pinMode(PWM_PIN, OUTPUT);
  TCCR2B = (TCCR2B & 0xF8) | 0x01;       // timer 2 (pins 9, 10) at 31 kHz: no audible whine
  pinMode(ESTOP_PIN, INPUT_PULLUP);
  for (uint8_t j = 0; j < S2R_ROBOT_JOINTS; j++) {
    pinMode(ENCODER_PINS[j][0], INPUT_PULLUP);
    pinMode(ENCODER_PINS[j][1], INPUT_PULLUP);
    encoders[j].state = (uint8_t)((digitalRead(ENCODER_PINS[j][0]) << 1)
                                  | digitalRead(ENCODER_PINS[j][1]));
  }
  attachInterrupt(digitalPinToInterrupt(ENCODER_PINS[0][0]), on_arm_edge, CHANGE);
  attachInterrupt(digitalPinToInterrupt(ENCODER_PINS[0][1]), on_arm_edge, CHANGE);
  attachInterrupt(digitalPinToInterrupt(ENCODER_PINS[1][0]), on_pendulum_edge, CHANGE);
  attachInterrupt(digitalPinToInterrupt(ENCODER_PINS[1][1]), on_pendulum_edge, CHANGE);
  Serial.begin(BAUD);
  s2r_begin(&device, &S2R_ROBOT);        // says FAULT RESET: the host shakes hands again
}

void loop() { s2r_poll(&device); }
