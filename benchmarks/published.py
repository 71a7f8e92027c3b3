"""Where a benchmark's figures go: its table is always printed; benchmarks/results/NAME.json and
.md, the figures the README and the issues cite (kept in git), are written only with `--save`,
so trying a benchmark leaves the repository as it was."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def add_save_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--save", action="store_true",
                        help="write benchmarks/results/NAME.{json,md}, the committed figures "
                             "(without it the table is only printed)")


def saved_results(name: str) -> Any | None:
    """The figures last saved under `name`, if any (a run of part of a benchmark keeps the
    rest of them)."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def publish(name: str, data: Any, markdown: str, save: bool, echo: bool = True) -> None:
    """Print `markdown` (unless not `echo`: a long benchmark saving what it has measured so
    far); with `save`, write `data` and it as benchmarks/results/NAME.{json,md}."""
    if echo:
        print(markdown)
    if save:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
        (RESULTS / f"{name}.md").write_text(markdown.rstrip("\n") + "\n")
        if echo:
            print(f"wrote {RESULTS / name}.json and .md")
    elif echo:
        print(f"(not saved: --save writes benchmarks/results/{name}.json and .md)")
