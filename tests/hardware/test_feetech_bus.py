"""FeetechBus's transactions against a port whose timing the test controls."""

from __future__ import annotations

from hardware.feetech.bus import FeetechBus
from hardware.feetech.protocol import status_packet

IDS = (1, 2, 3, 4, 5, 6)


class AnsweredPort:
    """A serial port whose servos have all answered by the time the host reads: as on a busy
    computer, where the host process wakes after its attempt's end with the replies waiting."""

    def __init__(self) -> None:
        self.buffer = b""
        self.writes = 0

    @property
    def in_waiting(self) -> int:
        return len(self.buffer)

    def write(self, packet: bytes) -> int:
        self.writes += 1
        self.buffer += b"".join(status_packet(i, 0, bytes((i, 0))) for i in IDS)
        return len(packet)

    def read(self, size: int = 1) -> bytes:
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def test_replies_waiting_past_the_attempts_end_are_taken_not_thrown_away() -> None:
    bus = FeetechBus("loop://")
    bus.port = AnsweredPort()
    # An attempt that has ended before the first read: the replies are in the buffer.
    replies = bus.sync_read(56, 2, IDS, timeout=0.05, attempt_timeout=1e-9)
    assert sorted(replies) == list(IDS)
    assert [replies[i].params for i in IDS] == [bytes((i, 0)) for i in IDS]
    assert bus.port.writes == 1
    assert (bus.stats.retries, bus.stats.late_frames, bus.stats.timeouts) == (0, 0, 0)
