"""Pictures of a training run (matplotlib, no display needed)."""

from __future__ import annotations

import csv
import math
from pathlib import Path


def plot_learning_curve(metrics_csv: Path, out: Path) -> Path:
    """Return and success rate against env steps, from a run's metrics.csv, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(metrics_csv.open()))
    if not rows:
        raise ValueError(f"{metrics_csv} has no rows yet; nothing to plot")

    def column(name: str) -> list[float]:
        return [float(r[name]) if r.get(name) not in (None, "") else math.nan for r in rows]

    steps = column("steps")
    success = column("success_rate")
    has_success = any(not math.isnan(v) for v in success)
    fig, axes = plt.subplots(1, 2 if has_success else 1, figsize=(10 if has_success else 5, 3.5),
                             squeeze=False)
    axes[0, 0].plot(steps, column("mean_return"))
    axes[0, 0].set(xlabel="env steps", ylabel="mean episode return (last 100)", title="return")
    if has_success:
        axes[0, 1].plot(steps, success)
        axes[0, 1].set(xlabel="env steps", ylabel="success rate (last 100)", title="success",
                       ylim=(-0.02, 1.02))
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.suptitle(metrics_csv.parent.name)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
