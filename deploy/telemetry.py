"""Telemetry: every control cycle written to a log file, flushed so a crash loses at most the
last second. The format is ours, documented in docs/telemetry.md, so the robot's computer needs
numpy alone to write it and anything that reads bytes can read it:

    b"S2RLOG\\n" then chunks, each: 1 byte kind, uint32 little-endian length, payload.
    kind b"H": the header, JSON (format, robot, contract, fields: [[name, size], ...]); first.
    kind b"C": one cycle, float64 little-endian values of the header's fields, in order.
    kind b"E": an event, JSON ({"cycle": n, "seconds": t, "event": ..., ...}).

A reader stops at a chunk cut short (the crash case) and keeps everything before it.
"""

from __future__ import annotations

import json
import queue
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MAGIC = b"S2RLOG\n"
FORMAT = "sim2real-telemetry/1"
FLUSH_SECONDS = 1.0
_CHUNK = struct.Struct("<cI")


class TelemetryWriter:
    """Buffers cycles in memory and hands them, once a second, to a thread that writes, flushes
    and fsyncs: the control loop never waits for the disk.

    Example:
        >>> log = TelemetryWriter("run.s2rlog", {"robot": "so_arm"}, [("positions", 6)])
        >>> log.cycle(seconds, {"positions": state.positions})
        >>> log.event(seconds, "watchdog", waited_ms=112.0)
        >>> log.close()
    """

    def __init__(self, path: str | Path, header: dict[str, Any],
                 fields: list[tuple[str, int]]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fields = list(fields)
        self.size = sum(size for _, size in self.fields)
        self._row = np.zeros(self.size)
        self._slices = {}
        start = 0
        for name, size in self.fields:
            self._slices[name] = slice(start, start + size)
            start += size
        self._pending = bytearray()
        self._last_flush = None
        self.cycles = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._file: BinaryIO = self.path.open("wb")
        self._file.write(MAGIC)
        self._file.write(_chunk(b"H", json.dumps({"format": FORMAT, **header,
                                                  "fields": self.fields}).encode()))
        self._file.flush()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._drain, name="telemetry", daemon=True)
        self._thread.start()

    def cycle(self, seconds: float, values: dict[str, Any]) -> None:
        """One cycle's values by field name (missing fields are written as NaN)."""
        row = self._row
        row.fill(np.nan)
        for name, value in values.items():
            row[self._slices[name]] = value
        self._pending += _CHUNK.pack(b"C", self.size * 8)
        self._pending += row.tobytes()
        self.cycles += 1
        self._maybe_flush(seconds)

    def event(self, seconds: float, event: str, **details: Any) -> None:
        """Something that happened once (an e-stop, a watchdog trip, the final report)."""
        payload = {"cycle": self.cycles, "seconds": round(seconds, 6), "event": event, **details}
        self._pending += _chunk(b"E", json.dumps(payload, default=_jsonable).encode())
        self._maybe_flush(seconds, force=True)

    def _maybe_flush(self, seconds: float, force: bool = False) -> None:
        if self._error is not None:
            raise OSError(f"telemetry log {self.path} cannot be written: {self._error}")
        if force or self._last_flush is None or seconds - self._last_flush >= FLUSH_SECONDS:
            self._queue.put(bytes(self._pending))
            self._pending.clear()
            self._last_flush = seconds

    def _drain(self) -> None:
        import os

        while (data := self._queue.get()) is not None:
            try:
                self._file.write(data)
                self._file.flush()
                os.fsync(self._file.fileno())
            except OSError as error:  # a full disk: tell the loop, which stops
                self._error = error
                return

    def close(self) -> None:
        self._queue.put(bytes(self._pending))
        self._pending.clear()
        self._queue.put(None)
        self._thread.join()
        self._file.close()

    def __enter__(self) -> TelemetryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return _CHUNK.pack(kind, len(payload)) + payload


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@dataclass
class TelemetryLog:
    """A log read back: the header, each field as an array (cycles, size), the events, and
    whether the file ended cut short (a crash while writing)."""

    header: dict[str, Any]
    fields: dict[str, np.ndarray]
    events: list[dict[str, Any]]
    truncated: bool

    @property
    def cycles(self) -> int:
        return len(next(iter(self.fields.values()))) if self.fields else 0

    def event(self, name: str) -> dict[str, Any] | None:
        """The last event of this name, if any."""
        found = [e for e in self.events if e["event"] == name]
        return found[-1] if found else None


def read_log(path: str | Path) -> TelemetryLog:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"telemetry log {path} does not exist")
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not a sim2real telemetry log (it does not start with "
                         f"{MAGIC!r}); `sim2real deploy --log FILE` writes them")
    offset, header, rows, events, truncated = len(MAGIC), None, [], [], False
    while offset < len(data):
        if offset + _CHUNK.size > len(data):
            truncated = True
            break
        kind, length = _CHUNK.unpack_from(data, offset)
        start, offset = offset + _CHUNK.size, offset + _CHUNK.size + length
        if offset > len(data):
            truncated = True
            break
        payload = data[start:offset]
        if kind == b"H":
            header = json.loads(payload)
        elif kind == b"C":
            rows.append(payload)
        elif kind == b"E":
            events.append(json.loads(payload))
        else:
            raise ValueError(f"{path}: unknown chunk kind {kind!r} at byte {start - 5}; the file "
                             "is damaged or from a newer version")
    if header is None or header.get("format") != FORMAT:
        raise ValueError(f"{path}: no {FORMAT} header; the file is damaged or from another "
                         "version")
    width = sum(size for _, size in header["fields"])
    table = (np.frombuffer(b"".join(rows), dtype="<f8").reshape(len(rows), width)
             if rows else np.zeros((0, width)))
    columns, start = {}, 0
    for name, size in header["fields"]:
        columns[name] = table[:, start:start + size]
        start += size
    return TelemetryLog(header, columns, events, truncated)
