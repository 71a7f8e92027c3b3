"""Settings files (the supervisor's safety settings, wire faults): a mapping in YAML or JSON.

JSON needs nothing beyond the standard library, so the robot's computer (numpy, onnxruntime and
pyserial only) reads a `.json` safety file as it is; YAML needs pyyaml.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_settings(path: Path) -> dict[str, Any]:
    """The mapping of setting: value in a `.json`, `.yaml` or `.yml` file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"settings file {path} does not exist")
    text = path.read_text()
    if path.suffix == ".json":
        values = json.loads(text) if text.strip() else {}
    else:
        try:
            import yaml
        except ImportError:
            raise ValueError(f"{path} is YAML, and pyyaml is not installed here (the robot "
                             "computer's install has no pyyaml): write the same settings as "
                             f"JSON in {path.with_suffix('.json')}, or pip install pyyaml") from None
        values = yaml.safe_load(text) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of setting: value, got {type(values).__name__}")
    return values
