"""The same deploy log in the earlier telemetry format, for tests that compare what the two
formats give (docs/telemetry.md, "Logs of the earlier format")."""

from __future__ import annotations

import json
import struct

import numpy as np


def legacy_copy(log, path) -> None:
    """`log` (a TelemetryLog) written to `path` in the earlier `.s2rlog` format."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack("<cI", kind, len(payload)) + payload

    header = {**log.header, "format": "sim2real-telemetry/1"}
    data = b"S2RLOG\n" + chunk(b"H", json.dumps(header).encode())
    rows = np.hstack([log.fields[name] for name, _ in log.header["fields"]])
    events = sorted(log.events, key=lambda e: e["cycle"])
    for index, row in enumerate(rows):
        while events and events[0]["cycle"] <= index:
            data += chunk(b"E", json.dumps(events.pop(0)).encode())
        data += chunk(b"C", row.astype("<f8").tobytes())
    for event in events:
        data += chunk(b"E", json.dumps(event).encode())
    path.write_bytes(data)
