"""Robustness maps: policies evaluated over a grid of physical parameters the user names, each
cell one pinned value per parameter applied through the randomization wrapper (so a parameter is
anything the randomization config schema can set: mass, friction, actuator_kp, torque_limit,
action_delay, ...). Writes a CSV of every cell, one heatmap PNG per pair of parameters (a line
plot for a single one) with the policies side by side, and a markdown summary.

Example:
    >>> axes = [Axis.parse("mass=0.5:2.0:7"), Axis.parse("action_delay=0:4:5")]
    >>> robustness_map([Path("runs/dr/policy.onnx"), Path("runs/nodr/policy.onnx")],
    ...                "sim2real/ArmReach-v0", axes, episodes=20, out=Path("robustness"))
"""

from __future__ import annotations

import csv
import functools
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.episodes import LoadedPolicy, load_policy, run_episodes
from evaluation.outputs import beside

UNITS = {"action_delay": "control steps", "action_latency": "s", "gravity": "m/s^2",
         "control_period_jitter": "fraction of the period", "action_latency_jitter": "s"}
"""Units of terms whose value is not a factor of the nominal one."""


@dataclass(frozen=True)
class Axis:
    term: str
    values: tuple[float, ...]

    @classmethod
    def parse(cls, text: str) -> Axis:
        """TERM=LOW:HIGH:POINTS (evenly spaced, both ends included) or TERM=V1,V2,..."""
        from randomization.config import ALL_TERM_NAMES

        term, sep, grid = text.partition("=")
        if not sep or not term or not grid:
            raise ValueError(f"--vary {text!r}: write TERM=LOW:HIGH:POINTS (e.g. mass=0.5:2.0:7) "
                             "or TERM=V1,V2,...")
        if term not in ALL_TERM_NAMES:
            raise ValueError(f"--vary {text!r}: {term!r} is not a randomization term; terms: "
                             f"{', '.join(ALL_TERM_NAMES)}")
        try:
            if ":" in grid:
                low, high, points = grid.split(":")
                count = int(points)
                if count < 1:
                    raise ValueError(f"--vary {text!r}: a grid with {count} points has nothing to "
                                     "evaluate; give POINTS >= 1")
                values = np.linspace(float(low), float(high), count)
            else:
                values = np.array([float(v) for v in grid.split(",") if v.strip()])
        except ValueError as error:
            if "nothing to evaluate" in str(error):
                raise
            raise ValueError(f"--vary {text!r}: {error}; write TERM=LOW:HIGH:POINTS or "
                             "TERM=V1,V2,...") from None
        if len(values) == 0:
            raise ValueError(f"--vary {text!r}: a grid with zero points has nothing to evaluate")
        return cls(term, tuple(float(v) for v in values))

    @property
    def label(self) -> str:
        return f"{self.term} ({UNITS.get(self.term, 'x nominal')})"


def pinned_config(cell: dict[str, float]) -> Any:
    """A randomization config that sets each term of `cell` to its value, every episode."""
    from randomization.config import RandomizationConfig

    return RandomizationConfig.from_dict(
        {term: {"distribution": "choice", "choices": [value]} for term, value in cell.items()})


JobRunner = Callable[[Callable[..., Any], list[tuple]], Iterator[Any]]
"""Runs `func(*job)` for every job and yields the results in the jobs' order: `in_this_process`,
or sim2real/cluster.py's `on_ray` (each job a Ray task)."""


def in_this_process(func: Callable[..., Any], jobs: list[tuple]) -> Iterator[Any]:
    return (func(*job) for job in jobs)


def _load_once(policy: Path) -> LoadedPolicy:
    """`policy` loaded once per process (and again when its file changes)."""
    return _loaded(policy, policy.stat().st_mtime) if policy.exists() else load_policy(policy)


@functools.lru_cache(maxsize=8)
def _loaded(policy: Path, modified: float) -> LoadedPolicy:
    return load_policy(policy)


def evaluate_cell(policy: Path, env_id: str, cell: dict[str, float], episodes: int,
                  seed: int) -> dict[str, Any]:
    """`episodes` deterministic episodes of `policy` with each term of `cell` pinned; a job of
    its own, so the cells of a grid can run anywhere (a Ray task) and give the same numbers."""
    from randomization.envs import make_env
    from randomization.wrapper import DomainRandomization

    loaded = _load_once(policy)
    env = DomainRandomization(
        make_env(env_id, pixels=loaded.image_shape[0] if loaded.image_shape else None),
        pinned_config(cell))
    try:
        loaded.check_fits(env, env_id)
        return run_episodes(env, loaded.act, episodes, seed)
    finally:
        env.close()


def robustness_map(policies: list[Path], env_id: str | None, axes: list[Axis], episodes: int,
                   out: Path | None = None, seed: int = 0, progress: bool = True,
                   run_jobs: JobRunner = in_this_process) -> dict[str, Any]:
    """Evaluate every policy on every cell of the grid; write robustness.csv, the heatmaps and
    robustness.md into `out` (default: robustness/ beside the first policy). Returns the rows
    and the paths written. `run_jobs` runs the cells (one job each): here, one after another,
    or on Ray; the rows are the same."""
    from sim.registration import check_env_id

    if not policies:
        raise ValueError("give at least one policy (a run dir or a policy.onnx)")
    if not axes:
        raise ValueError("give at least one --vary TERM=LOW:HIGH:POINTS, e.g. --vary mass=0.5:2.0:7")
    if len({a.term for a in axes}) != len(axes):
        raise ValueError("each term may be varied once")
    names = _short_names(policies)
    policies = [Path(p).resolve() for p in policies]  # the same file for a worker elsewhere
    loaded = [_load_once(p) for p in policies]  # a missing or broken one is named now
    env_id = env_id or loaded[0].trained_on
    if env_id is None:
        raise ValueError(f"{policies[0]} does not say which env it was trained on; give --env")
    check_env_id(env_id)
    cells = [dict(zip([a.term for a in axes], values, strict=True))
             for values in itertools.product(*(a.values for a in axes))]
    jobs = [(policy, env_id, cell, episodes, seed) for policy in policies for cell in cells]
    owners = [name for name in names for _ in cells]
    rows = []
    from rich.progress import Progress

    with Progress(disable=not progress) as bar:
        task = bar.add_task("robustness", total=len(jobs))
        for name, (*_, cell, _, _), result in zip(owners, jobs, run_jobs(evaluate_cell, jobs),
                                                  strict=True):
            rows.append({"policy": name, **cell, **result})
            bar.advance(task)
    out = out or beside(policies[0], "robustness")
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "robustness.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    metric = "success_rate" if rows[0]["success_rate"] is not None else "mean_return"
    pictures = plot_maps(rows, axes, names, metric, env_id, out)
    summary = write_summary(rows, axes, names, metric, env_id, episodes, out, pictures)
    written = ", ".join(str(path) for path in (csv_path, *pictures, summary))
    return {"rows": rows, "csv": csv_path, "pictures": pictures, "summary": summary,
            "metric": metric, "text": f"{summary.read_text()}\nwrote {written}"}


def _short_names(policies: list[Path]) -> list[str]:
    """A policy's name in tables and legends: its run dir's name (policy.onnx's parent)."""
    names = [(p.parent.name if p.suffix == ".onnx" else p.name) or str(p) for p in policies]
    if len(set(names)) < len(names):
        names = [str(p) for p in policies]
    return names


def _grid(rows: list[dict], axes: list[Axis], policy: str, x: Axis, y: Axis | None,
          metric: str) -> np.ndarray:
    """The metric of `policy` over (y, x), averaged over the other axes."""
    grid = np.zeros((len(y.values) if y else 1, len(x.values)))
    for i, yv in enumerate(y.values if y else [None]):
        for j, xv in enumerate(x.values):
            chosen = [r[metric] for r in rows if r["policy"] == policy and r[x.term] == xv
                      and (y is None or r[y.term] == yv)]
            grid[i, j] = np.mean(chosen)
    return grid


def plot_maps(rows: list[dict], axes: list[Axis], names: list[str], metric: str, env_id: str,
              out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    label = "success rate" if metric == "success_rate" else "mean episode return"
    pictures = []
    if len(axes) == 1:
        (x,) = axes
        figure, ax = plt.subplots(figsize=(7, 4.5))
        for name in names:
            ax.plot(x.values, _grid(rows, axes, name, x, None, metric)[0], marker="o", label=name)
        ax.set(title=f"{env_id}: {label} against {x.term}", xlabel=x.label, ylabel=label)
        if metric == "success_rate":
            ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(title="policy")
        path = out / f"robustness_{x.term}.png"
        figure.tight_layout()
        figure.savefig(path, dpi=100)
        plt.close(figure)
        return [path]
    values = [r[metric] for r in rows]
    low, high = (0.0, 1.0) if metric == "success_rate" else (min(values), max(values))
    for x, y in itertools.combinations(axes, 2):
        figure, panels = plt.subplots(1, len(names), figsize=(5.2 * len(names) + 1, 4.4),
                                      squeeze=False)
        for panel, name in zip(panels[0], names, strict=True):
            grid = _grid(rows, axes, name, x, y, metric)
            image = panel.imshow(grid, origin="lower", aspect="auto", cmap="viridis",
                                 vmin=low, vmax=high)
            panel.set_xticks(range(len(x.values)), [f"{v:g}" for v in x.values])
            panel.set_yticks(range(len(y.values)), [f"{v:g}" for v in y.values])
            for (i, j), value in np.ndenumerate(grid):
                panel.text(j, i, f"{value:.2f}" if metric == "success_rate" else f"{value:.0f}",
                           ha="center", va="center", fontsize=8,
                           color="white" if value < (low + high) / 2 else "black")
            panel.set(title=f"policy {name}", xlabel=x.label, ylabel=y.label)
        others = [a.term for a in axes if a not in (x, y)]
        figure.suptitle(f"{env_id}: {label}" + (f" (mean over {', '.join(others)})"
                                                 if others else ""))
        figure.colorbar(image, ax=panels[0].tolist(), label=label)
        path = out / f"robustness_{x.term}_{y.term}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        pictures.append(path)
    return pictures


def write_summary(rows: list[dict], axes: list[Axis], names: list[str], metric: str,
                  env_id: str, episodes: int, out: Path, pictures: list[Path]) -> Path:
    nominal = {a.term: min(a.values, key=lambda v: abs(v - (0.0 if a.term in UNITS else 1.0)))
               for a in axes}
    lines = [f"# Robustness of {', '.join(names)} on {env_id}", "",
             f"{episodes} deterministic episodes per cell; grid: "
             + "; ".join(f"{a.label} = {', '.join(f'{v:g}' for v in a.values)}" for a in axes)
             + ".", "", f"| policy | mean {metric} over the grid | worst cell | at nominal-most "
             f"cell ({', '.join(f'{k}={v:g}' for k, v in nominal.items())}) |",
             "|---|---:|---|---:|"]
    for name in names:
        mine = [r for r in rows if r["policy"] == name]
        worst = min(mine, key=lambda r: r[metric])
        at_nominal = [r[metric] for r in mine if all(r[k] == v for k, v in nominal.items())]
        cell = ", ".join(f"{a.term}={worst[a.term]:g}" for a in axes)
        lines.append(f"| {name} | {np.mean([r[metric] for r in mine]):.3f} | "
                     f"{worst[metric]:.3f} at {cell} | {np.mean(at_nominal):.3f} |")
    lines += ["", *[f"![{p.stem}]({p.name})" for p in pictures], "",
              "Every cell: robustness.csv."]
    path = out / "robustness.md"
    path.write_text("\n".join(lines) + "\n")
    return path
