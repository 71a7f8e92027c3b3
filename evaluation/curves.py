"""Learning curves of one or more runs: return (and success, where the task has it) against env
steps and against wall time. Runs of the same algorithm, env and randomization that differ only
in seed form one group, drawn as the mean over seeds with a band from the lowest to the highest.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.outputs import beside

GRID_POINTS = 200


def read_run(run_dir: Path) -> dict[str, Any]:
    """A run's metrics.csv as columns, and what the group is (algo, env, randomization)."""
    metrics = run_dir / "metrics.csv"
    if not metrics.is_file():
        raise FileNotFoundError(f"{run_dir} has no metrics.csv: it is not a training run dir "
                                "(sim2real train --out DIR writes one)")
    rows = list(csv.DictReader(metrics.open()))
    if not rows:
        raise ValueError(f"{metrics} has no rows yet: nothing to plot")
    info_path = run_dir / "run.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}

    def column(name: str) -> np.ndarray:
        return np.array([float(r[name]) if r.get(name) not in (None, "") else math.nan
                         for r in rows])

    randomization = info.get("randomization") or {}
    label = (f"{info.get('algo', '?')} on {info.get('env_id', run_dir.name)}, "
             + (f"randomized ({len(randomization)} terms)" if randomization else "nominal"))
    key = json.dumps([info.get("algo"), info.get("env_id"), randomization], sort_keys=True)
    return {"label": label, "key": key, "steps": column("steps"), "seconds": column("seconds"),
            "return": column("mean_return"), "success": column("success_rate"),
            "seed": info.get("config", {}).get("seed")}


def group_runs(run_dirs: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """Runs by what they are (algorithm, env, randomization): a group differs only in seed.
    Keyed by label (two groups with one label are told apart by a number)."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    for run_dir in run_dirs:
        run = read_run(Path(run_dir))
        by_key.setdefault(run["key"], []).append(run)
    groups: dict[str, list[dict[str, Any]]] = {}
    for runs in by_key.values():
        label = runs[0]["label"]
        if label in groups:
            label = f"{label} #{len(groups) + 1}"
        groups[label] = runs
    return groups


def band(runs: list[dict], x_key: str, y_key: str) -> tuple[np.ndarray, ...] | None:
    """Mean, lowest and highest of `y_key` over runs on a common grid of `x_key` (up to where
    every run got to)."""
    curves = [(r[x_key], r[y_key]) for r in runs if np.isfinite(r[y_key]).any()]
    if not curves:
        return None
    end = min(np.nanmax(x) for x, _ in curves)
    start = max(np.nanmin(x) for x, _ in curves)
    if not end > start:
        x, y = curves[0]
        return x, y, y, y
    grid = np.linspace(start, end, GRID_POINTS)
    values = np.array([np.interp(grid, x[np.isfinite(y)], y[np.isfinite(y)]) for x, y in curves])
    return grid, values.mean(0), values.min(0), values.max(0)


def plot_runs(run_dirs: list[Path], out: Path | None = None) -> Path:
    """The learning curves of `run_dirs` in one PNG at `out` (default: learning_curves.png in
    the folder holding the first run, e.g. runs/)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not run_dirs:
        raise ValueError("give at least one run dir")
    groups = group_runs(run_dirs)
    has_success = any(np.isfinite(r["success"]).any() for runs in groups.values() for r in runs)
    rows = 2 if has_success else 1
    figure, axes = plt.subplots(rows, 2, figsize=(12, 4 * rows), squeeze=False)
    metrics = [("return", "mean episode return (last 100 episodes)")]
    if has_success:
        metrics.append(("success", "success rate (last 100 episodes)"))
    for row, (key, ylabel) in enumerate(metrics):
        for col, (x_key, xlabel) in enumerate((("steps", "env steps"),
                                               ("seconds", "wall time (s)"))):
            ax = axes[row, col]
            for label, runs in groups.items():
                drawn = band(runs, x_key, key)
                if drawn is None:
                    continue
                grid, mean, low, high = drawn
                seeds = f"{len(runs)} seed{'s' if len(runs) > 1 else ''}"
                (line,) = ax.plot(grid, mean, label=f"{label}, {seeds}")
                if len(runs) > 1:
                    ax.fill_between(grid, low, high, color=line.get_color(), alpha=0.2)
            ax.set(xlabel=xlabel, ylabel=ylabel,
                   title=f"{key} against {'steps' if x_key == 'steps' else 'wall time'}")
            if key == "success":
                ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, title="mean over seeds; band: min to max")
    figure.tight_layout()
    out = out or beside(run_dirs[0].resolve().parent, "learning_curves.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out
