"""Where an output goes when the user names no place: with what it is about (inside a run dir,
beside a policy file or a deploy log), never in the directory the command was run from."""

from __future__ import annotations

from pathlib import Path


def beside(source: Path, name: str) -> Path:
    """`name` inside `source` when it is a run dir, else in the folder holding the file."""
    return (source if source.is_dir() else source.parent) / name
