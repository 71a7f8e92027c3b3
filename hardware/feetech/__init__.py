"""The SO-101's own wire: Feetech STS servos on a half-duplex bus. The packets and the control
table (protocol), the host's transactions (bus), the deploy backend (robot), calibration and
motor setup (calibration), and the bus emulator, the hardware-in-the-loop backend (emulator)."""
