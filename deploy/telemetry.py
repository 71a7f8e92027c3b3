"""Telemetry: every control cycle written to an MCAP file, the format Foxglove, ROS 2 bags and the
`mcap` tools open. Each stream is a channel with a JSON Schema; the robot, the policy's contract
and the model file are metadata (docs/telemetry.md).

The control loop only copies each cycle's numbers into a row of floats. Once a second a writer
thread turns the rows into messages, writes them with foxglove-sdk's MCAP writer and flushes the
chunk, so the loop never waits for encoding or the disk and a crash (kill -9 included) loses at
most the last second: `read_log` reads a file cut short up to its last whole chunk.

Logs of the earlier format (`.s2rlog`, sim2real-telemetry/1) still read: `read_log` tells them by
their first bytes.
"""

from __future__ import annotations

import json
import math
import queue
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "sim2real-telemetry/2"
FLUSH_SECONDS = 1.0
MCAP_MAGIC = b"\x89MCAP0\r\n"
LEGACY_MAGIC = b"S2RLOG\n"
LEGACY_FORMAT = "sim2real-telemetry/1"
_LEGACY_CHUNK = struct.Struct("<cI")
JOINT_STATES = "/joint_states"
EVENTS = "/events"
LINK = "/link"

_NUMBERS = {"type": "array", "items": {"type": ["number", "null"]}}
_NUMBER = {"type": ["number", "null"]}
_TIME = {"type": "object", "properties": {"sec": {"type": "integer"},
                                          "nsec": {"type": "integer"}}}
JOINT_STATES_SCHEMA = {
    "title": "foxglove.JointStates", "type": "object",
    "properties": {"timestamp": _TIME, "joints": {"type": "array", "items": {
        "type": "object", "properties": {"name": {"type": "string"}, "position": _NUMBER,
                                         "velocity": _NUMBER}}}}}
"""Foxglove's JointStates, JSON-encoded: its plots and 3D panel read joints by name."""
EVENT_SCHEMA = {"title": "sim2real.Event", "type": "object",
                "properties": {"cycle": {"type": "integer"}, "seconds": {"type": "number"},
                               "event": {"type": "string"}},
                "required": ["cycle", "seconds", "event"]}


@dataclass(frozen=True)
class Stream:
    """One channel: the cycle fields its messages carry, each under its own name (a number, or
    a list of numbers for a field of several values; NaN is written as null)."""

    topic: str
    fields: tuple[str, ...]
    title: str


@dataclass
class _Batch:
    rows: np.ndarray
    times_ns: list[int]
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    """(rows written before it, the event), in order."""


class TelemetryWriter:
    """Buffers cycles in memory and hands them, once a second, to a thread that encodes, writes
    and flushes them: the control loop never waits for the disk.

    `fields`: [(name, size)] of every cycle's values; `streams`: which channel carries which
    fields; `joint_state`: the (positions, velocities) fields that also make the JointStates
    message of `header["joint_names"]`; `link`: gives the link's counters (frames, CRC errors,
    timeouts, ...), written on their own channel once a second (by the writer thread).

    Example:
        >>> log = TelemetryWriter("run.mcap", {"robot": "so_arm", "joint_names": names},
        ...                       [("positions", 6)], [Stream("/state", ("positions",), "s")])
        >>> log.cycle(seconds, {"positions": state.positions})
        >>> log.event(seconds, "watchdog", waited_ms=112.0)
        >>> log.close()
    """

    def __init__(self, path: str | Path, header: dict[str, Any], fields: list[tuple[str, int]],
                 streams: list[Stream], joint_state: tuple[str, str] | None = None,
                 link: Callable[[], dict[str, Any]] | None = None,
                 epoch_ns: int | None = None) -> None:
        import foxglove

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fields = list(fields)
        self.size = sum(size for _, size in self.fields)
        self._slices: dict[str, slice] = {}
        start = 0
        for name, size in self.fields:
            self._slices[name] = slice(start, start + size)
            start += size
        unknown = sorted({f for s in streams for f in s.fields} - set(self._slices))
        if unknown:
            raise ValueError(f"streams name fields that are not logged: {unknown}")
        self.streams, self.joint_state, self.link_counters = list(streams), joint_state, link
        self.joint_names = list(header.get("joint_names", []))
        self.cycles = 0
        self.epoch_ns = time.time_ns() if epoch_ns is None else epoch_ns
        """Wall-clock time of the loop's time 0 (now, unless given): MCAP log times are
        absolute."""
        self._rows: list[np.ndarray] = []
        self._times: list[int] = []
        self._events: list[tuple[int, dict[str, Any]]] = []
        self._row = np.zeros(self.size)
        self._last_flush: float | None = None
        self._error: BaseException | None = None
        self._queue: queue.Queue[_Batch | None] = queue.Queue()

        self._context = foxglove.Context()
        self._writer = foxglove.open_mcap(self.path, allow_overwrite=True, context=self._context)
        self._writer.write_metadata("sim2real", {
            "format": FORMAT, "epoch_ns": str(self.epoch_ns),
            "header": json.dumps({**header, "fields": self.fields}, default=_jsonable)})
        if "contract" in header:
            self._writer.write_metadata("contract", {"json": json.dumps(header["contract"])})
        if header.get("model"):
            self._writer.write_metadata("model", {"path": str(header["model"]),
                                                  "urdf": str(header.get("urdf", "")),
                                                  "robot": str(header.get("robot", ""))})

        def channel(topic: str, schema: dict[str, Any]) -> Any:
            return foxglove.Channel(topic, schema=foxglove.Schema(
                name=schema["title"], encoding="jsonschema", data=json.dumps(schema).encode()),
                message_encoding="json", context=self._context)

        self._channels = {s.topic: channel(s.topic, _stream_schema(s, self.fields))
                          for s in self.streams}
        if joint_state is not None:
            self._channels[JOINT_STATES] = channel(JOINT_STATES, JOINT_STATES_SCHEMA)
        self._channels[EVENTS] = channel(EVENTS, EVENT_SCHEMA)
        self._channels[LINK] = channel(LINK, {"title": "sim2real.LinkCounters",
                                              "type": "object"})
        self._writer.flush()
        self._thread = threading.Thread(target=self._drain, name="telemetry", daemon=True)
        self._thread.start()

    # -- the loop's side: copies, never waits ----------------------------------------------------
    def cycle(self, seconds: float, values: dict[str, Any]) -> None:
        """One cycle's values by field name (missing fields are written as null)."""
        row = self._row
        row.fill(np.nan)
        for name, value in values.items():
            row[self._slices[name]] = value
        self._rows.append(row.copy())
        self._times.append(self.epoch_ns + round(seconds * 1e9))
        self.cycles += 1
        self._maybe_flush(seconds)

    def event(self, seconds: float, event: str, **details: Any) -> None:
        """Something that happened once (an e-stop, a watchdog trip, the final report)."""
        payload = {"cycle": self.cycles, "seconds": round(seconds, 6), "event": event, **details}
        self._events.append((len(self._rows), {"time_ns": self.epoch_ns + round(seconds * 1e9),
                                               **json.loads(json.dumps(payload,
                                                                       default=_jsonable))}))
        self._maybe_flush(seconds, force=True)

    def _maybe_flush(self, seconds: float, force: bool = False) -> None:
        if self._error is not None:
            raise OSError(f"telemetry log {self.path} cannot be written: {self._error}")
        if force or self._last_flush is None or seconds - self._last_flush >= FLUSH_SECONDS:
            self._hand_over()
            self._last_flush = seconds

    def _hand_over(self) -> None:
        rows = np.array(self._rows) if self._rows else np.zeros((0, self.size))
        self._queue.put(_Batch(rows, self._times, self._events))
        self._rows, self._times, self._events = [], [], []

    # -- the writer thread -----------------------------------------------------------------------
    def _drain(self) -> None:
        while (batch := self._queue.get()) is not None:
            try:
                self._write(batch)
                self._writer.flush()
            except Exception as error:  # a full disk: tell the loop, which stops
                self._error = error
                return

    def _write(self, batch: _Batch) -> None:
        events = list(batch.events)
        for index, (row, log_time) in enumerate(zip(batch.rows, batch.times_ns, strict=True)):
            while events and events[0][0] <= index:
                self._write_event(events.pop(0)[1])
            for stream in self.streams:
                message = {name: _plain(row[self._slices[name]]) for name in stream.fields}
                self._channels[stream.topic].log(message, log_time=log_time)
            if self.joint_state is not None:
                positions = row[self._slices[self.joint_state[0]]].tolist()
                velocities = row[self._slices[self.joint_state[1]]].tolist()
                self._channels[JOINT_STATES].log({
                    "timestamp": {"sec": log_time // 1_000_000_000,
                                  "nsec": log_time % 1_000_000_000},
                    "joints": [{"name": name, "position": _finite(p), "velocity": _finite(v)}
                               for name, p, v in zip(self.joint_names, positions, velocities,
                                                     strict=True)]}, log_time=log_time)
            time.sleep(0)  # let the control loop's thread take the interpreter between rows
        for _, event in events:
            self._write_event(event)
        if self.link_counters is not None and batch.times_ns:
            counters = json.loads(json.dumps(self.link_counters(), default=_jsonable))
            self._channels[LINK].log(counters, log_time=batch.times_ns[-1])

    def _write_event(self, event: dict[str, Any]) -> None:
        log_time = event.pop("time_ns")
        self._channels[EVENTS].log(event, log_time=log_time)

    def close(self) -> None:
        self._hand_over()
        self._queue.put(None)
        self._thread.join()
        self._writer.close()

    def __enter__(self) -> TelemetryWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _stream_schema(stream: Stream, fields: list[tuple[str, int]]) -> dict[str, Any]:
    sizes = dict(fields)
    return {"title": stream.title, "type": "object",
            "properties": {name: (_NUMBER if sizes[name] == 1 else _NUMBERS)
                           for name in stream.fields},
            "required": list(stream.fields)}


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _plain(values: np.ndarray) -> float | list[float | None] | None:
    """A field's values for JSON: one number, or a list; NaN (not logged) as null."""
    if len(values) == 1:
        return _finite(float(values[0]))
    return [_finite(v) for v in values.tolist()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# -- reading ---------------------------------------------------------------------------------------
@dataclass
class TelemetryLog:
    """A log read back: the header, each field as an array (cycles, size), the events, and
    whether the file ended cut short (a crash while writing)."""

    header: dict[str, Any]
    fields: dict[str, np.ndarray]
    events: list[dict[str, Any]]
    truncated: bool
    epoch_ns: int | None = None
    """Wall-clock time (ns since 1970) of the loop's time 0; None in logs of the earlier
    format."""

    @property
    def cycles(self) -> int:
        return len(next(iter(self.fields.values()))) if self.fields else 0

    def event(self, name: str) -> dict[str, Any] | None:
        """The last event of this name, if any."""
        found = [e for e in self.events if e["event"] == name]
        return found[-1] if found else None


def write_as_mcap(log: TelemetryLog, out: str | Path, streams: list[Stream],
                  joint_state: tuple[str, str] | None = ("positions", "velocities")) -> Path:
    """A log read back (the earlier `.s2rlog` format, say) written again as MCAP, cycle for cycle
    and event for event at their loop times: `sim2real log convert OLD.s2rlog`."""
    out = Path(out)
    header = {k: v for k, v in log.header.items() if k not in ("format", "fields")}
    epoch_ns = log.epoch_ns
    if epoch_ns is None:  # the earlier format kept the local start time, to the second
        epoch_ns = round(time.mktime(time.strptime(header["started"], "%Y-%m-%dT%H:%M:%S")) * 1e9)
    events = sorted(log.events, key=lambda e: e["cycle"])
    names = [name for name, _ in log.header["fields"]]
    with TelemetryWriter(out, header, [tuple(f) for f in log.header["fields"]], streams,
                         joint_state, epoch_ns=epoch_ns) as writer:
        for index in range(log.cycles):
            while events and events[0]["cycle"] <= index:
                _replay_event(writer, events.pop(0))
            writer.cycle(float(log.fields["time"][index, 0]),
                         {name: log.fields[name][index] for name in names})
        for event in events:
            _replay_event(writer, event)
    return out


def _replay_event(writer: TelemetryWriter, event: dict[str, Any]) -> None:
    details = {k: v for k, v in event.items() if k not in ("cycle", "seconds", "event")}
    writer.event(event["seconds"], event["event"], **details)


def read_log(path: str | Path) -> TelemetryLog:
    """A deploy's telemetry: MCAP (this version's), or the earlier `.s2rlog` format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"telemetry log {path} does not exist")
    with path.open("rb") as file:
        start = file.read(len(MCAP_MAGIC))
    if start == MCAP_MAGIC:
        return _read_mcap(path)
    if start.startswith(LEGACY_MAGIC):
        return _read_legacy(path)
    raise ValueError(f"{path} is not a sim2real telemetry log (neither MCAP nor .s2rlog); "
                     "`sim2real deploy --log FILE` writes them")


def _read_mcap(path: Path) -> TelemetryLog:
    from mcap.records import Channel, Message, Metadata
    from mcap.stream_reader import StreamReader

    header, epoch, topics = None, 0, {}
    messages: dict[str, list[dict[str, Any]]] = {}
    truncated = False
    with path.open("rb") as file:
        try:
            for record in StreamReader(file, skip_magic=False).records:
                if isinstance(record, Metadata) and record.name == "sim2real":
                    if record.metadata.get("format") != FORMAT:
                        raise ValueError(f"{path}: telemetry format "
                                         f"{record.metadata.get('format')!r}, not {FORMAT}")
                    header = json.loads(record.metadata["header"])
                    epoch = int(record.metadata["epoch_ns"])
                elif isinstance(record, Channel):
                    topics[record.id] = record.topic
                elif isinstance(record, Message):
                    messages.setdefault(topics[record.channel_id], []).append(
                        json.loads(record.data))
        except ValueError:
            raise
        except Exception:  # a record cut short by a crash: the file ends there
            truncated = True
    if header is None:
        raise ValueError(f"{path}: an MCAP file without sim2real's telemetry metadata")
    sizes = {name: size for name, size in header["fields"]}
    by_field: dict[str, list[Any]] = {}
    for topic, rows in messages.items():
        if topic in (EVENTS, LINK, JOINT_STATES):
            continue
        for name in rows[0] if rows else ():
            by_field[name] = [row[name] for row in rows]
    cycles = min((len(v) for v in by_field.values()), default=0)
    fields = {}
    for name, size in sizes.items():
        values = by_field.get(name, [None] * cycles)[:cycles]
        fields[name] = np.array([[np.nan if v is None else v for v in
                                  (value if isinstance(value, list) else [value])]
                                 for value in values], dtype=float).reshape(cycles, size)
    return TelemetryLog(header, fields, messages.get(EVENTS, []), truncated, epoch)


def _read_legacy(path: Path) -> TelemetryLog:
    data = path.read_bytes()
    offset, header, rows, events, truncated = len(LEGACY_MAGIC), None, [], [], False
    while offset < len(data):
        if offset + _LEGACY_CHUNK.size > len(data):
            truncated = True
            break
        kind, length = _LEGACY_CHUNK.unpack_from(data, offset)
        start, offset = offset + _LEGACY_CHUNK.size, offset + _LEGACY_CHUNK.size + length
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
    if header is None or header.get("format") != LEGACY_FORMAT:
        raise ValueError(f"{path}: no {LEGACY_FORMAT} header; the file is damaged or from another "
                         "version")
    width = sum(size for _, size in header["fields"])
    table = (np.frombuffer(b"".join(rows), dtype="<f8").reshape(len(rows), width)
             if rows else np.zeros((0, width)))
    columns, start = {}, 0
    for name, size in header["fields"]:
        columns[name] = table[:, start:start + size]
        start += size
    return TelemetryLog(header, columns, events, truncated)
