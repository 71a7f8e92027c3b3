"""Fault injection on the wire: what a flaky cable, a busy bus or a brown-out does to the frames
between host and device. The device emulator applies a `WireFaults` to every frame it sends and
receives; each fault has a rate (per byte, per frame) or a schedule (seconds after the host's
first frame). Standard library only."""

from __future__ import annotations

import random
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


@dataclass
class WireFaults:
    corrupt_byte_rate: float = 0.0
    """Probability that each byte, either way, has one bit flipped."""
    drop_frame_rate: float = 0.0
    """Probability that each frame, either way, is lost whole."""
    latency_ms: float = 0.0
    """Added before each frame the device sends."""
    jitter_ms: float = 0.0
    """Half-width of a uniform variation of that latency."""
    stale_rate: float = 0.0
    """Probability that a STATE repeats the previous reading (a sensor that did not update)."""
    reset_at: tuple[float, ...] = ()
    """Seconds after the host's first frame at which the device resets (its session is lost; it
    says FAULT RESET)."""
    disconnect_at: float | None = None
    """Seconds after the host's first frame at which the device goes away for good (the port
    closes)."""
    rates_from: float = 0.0
    """Seconds after start from which the rates (corruption, drops, latency, stale readings)
    apply: a handshake before then is clean. A 1% byte error rate garbles a 600-byte
    self-description almost surely; a link that bad would not have connected at all."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("corrupt_byte_rate", "drop_frame_rate", "stale_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:  # NaN too
                raise ValueError(f"fault {name} is a probability in [0, 1], got {value}")
        for name in ("latency_ms", "jitter_ms", "rates_from"):
            if not 0.0 <= getattr(self, name) < float("inf"):
                raise ValueError(f"fault {name} must be a finite number >= 0, got "
                                 f"{getattr(self, name)}")
        if self.jitter_ms > self.latency_ms:
            raise ValueError(f"fault jitter_ms {self.jitter_ms} exceeds latency_ms "
                             f"{self.latency_ms}: a frame cannot arrive before it was sent")
        self.reset_at = tuple(sorted(float(t) for t in self.reset_at))
        self._rng = random.Random(self.seed)
        self._connected_at: float | None = None
        self.counts = {"corrupted_bytes": 0, "dropped_frames": 0, "stale_states": 0,
                       "resets": 0}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> WireFaults:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; faults: {sorted(known)}")
        if "reset_at" in values and not isinstance(values["reset_at"], list | tuple):
            values = {**values, "reset_at": (values["reset_at"],)}
        return cls(**values)

    @classmethod
    def from_file_and_flags(cls, path: Path | None, flags: dict[str, Any]) -> WireFaults:
        """A settings file's faults (YAML/JSON), with the command line's flags (those not None)
        over them."""
        from hardware.settings import read_settings

        settings = read_settings(path) if path else {}
        return cls.from_dict(settings | {key: value for key, value in flags.items()
                                         if value is not None})

    def settings(self) -> dict[str, Any]:
        """The faults that differ from a clean wire, as a settings file would give them."""
        clean = WireFaults()
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) != getattr(clean, f.name)}

    @property
    def active(self) -> bool:
        return bool(self.corrupt_byte_rate or self.drop_frame_rate or self.latency_ms
                    or self.stale_rate or self.reset_at or self.disconnect_at is not None)

    def drop(self) -> bool:
        if self.drop_frame_rate and self._rng.random() < self.drop_frame_rate:
            self.counts["dropped_frames"] += 1
            return True
        return False

    def corrupt(self, data: bytes) -> bytes:
        if not self.corrupt_byte_rate:
            return data
        hits = [i for i in range(len(data)) if self._rng.random() < self.corrupt_byte_rate]
        if not hits:
            return data
        damaged = bytearray(data)
        for i in hits:
            damaged[i] ^= 1 << self._rng.randrange(8)
        self.counts["corrupted_bytes"] += len(hits)
        return bytes(damaged)

    def delay(self) -> float:
        """Seconds to hold the next outgoing frame."""
        if not self.latency_ms:
            return 0.0
        return (self.latency_ms + self._rng.uniform(-self.jitter_ms, self.jitter_ms)) * 1e-3

    def stale(self) -> bool:
        if self.stale_rate and self._rng.random() < self.stale_rate:
            self.counts["stale_states"] += 1
            return True
        return False

    def connect(self, now: float) -> None:
        """A frame from the host arrived at `now` (time.perf_counter s): the first one starts the
        clock of reset_at and disconnect_at."""
        if self._connected_at is None:
            self._connected_at = now

    def since_connected(self, now: float) -> float:
        """Seconds since the host's first frame; -1 before it (nothing scheduled is due)."""
        return -1.0 if self._connected_at is None else now - self._connected_at

    def reset_due(self, seconds: float) -> bool:
        """Whether a scheduled reset falls due at `seconds` (each fires once)."""
        if self.reset_at and seconds >= self.reset_at[0]:
            self.reset_at = self.reset_at[1:]
            self.counts["resets"] += 1
            return True
        return False

    def disconnect_due(self, seconds: float) -> bool:
        return self.disconnect_at is not None and seconds >= self.disconnect_at
