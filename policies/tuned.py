"""Settings tuned per (algorithm, env), kept in policies/hyperparams/ALGO.yaml (one mapping per
env id, as RL Zoo does) and used where the user sets nothing else. An entry `ENV_ID with pixels`
applies on top of the env's own to a run that sees camera images (`--pixels`)."""

from __future__ import annotations

from pathlib import Path

import yaml

HYPERPARAMS = Path(__file__).parent / "hyperparams"


PIXELS_SUFFIX = " with pixels"


def tuned_settings(algo: str, env_id: str, pixels: bool = False) -> dict:
    path = HYPERPARAMS / f"{algo}.yaml"
    if not path.is_file():
        return {}
    table = yaml.safe_load(path.read_text()) or {}
    if not isinstance(table, dict):
        raise ValueError(f"{path}: expected a mapping of env id -> settings")
    settings = {**(table.get(env_id) or {}),
                **((table.get(env_id + PIXELS_SUFFIX) or {}) if pixels else {})}
    # YAML has no tuples; the configs' sequence fields (hidden sizes) are tuples.
    return {key: tuple(value) if isinstance(value, list) else value
            for key, value in settings.items()}
