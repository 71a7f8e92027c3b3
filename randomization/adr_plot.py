"""The ranges automatic domain randomization reached over training, one panel per term (a
shaded band from low to high, the limits dashed), from ADR's history rows or a metrics CSV."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from randomization.adr import HISTORY_FIELDS


def _series(rows: Sequence[Mapping[str, Any]], source: str) -> dict[str, dict[str, Any]]:
    """{term: {"steps", "low", "high", "limits"}} from history rows or metrics-CSV rows."""
    def number(value: Any) -> float:
        return math.nan if value in (None, "") else float(value)

    out: dict[str, dict[str, Any]] = {}
    if "term" in rows[0]:
        for row in rows:
            series = out.setdefault(str(row["term"]), {"steps": [], "low": [], "high": [],
                                                       "limits": None})
            for key, name in (("steps", "step"), ("low", "low"), ("high", "high")):
                series[key].append(number(row[name]))
            limits = (number(row.get("limit_low")), number(row.get("limit_high")))
            if all(math.isfinite(v) for v in limits):
                series["limits"] = limits
        return out
    step_key = next((k for k in ("steps", "step") if k in rows[0]), None)
    terms = [m.group(1) for k in rows[0] if (m := re.fullmatch(r"adr/(.+)/low", k))]
    if step_key is None or not terms:
        raise ValueError(f"{source}: expected ADR history rows (keys {', '.join(HISTORY_FIELDS)}) "
                         "or metrics rows with a steps column and adr/TERM/low, adr/TERM/high "
                         f"columns; got keys {sorted(rows[0])}")
    for term in terms:
        kept = [r for r in rows if r.get(f"adr/{term}/low") not in (None, "")]
        out[term] = {"steps": [number(r[step_key]) for r in kept],
                     "low": [number(r[f"adr/{term}/low"]) for r in kept],
                     "high": [number(r[f"adr/{term}/high"]) for r in kept], "limits": None}
    return out


def plot_adr_ranges(history: Sequence[Mapping[str, Any]] | str | Path, path: Path, title: str,
                    units: Mapping[str, str] | None = None,
                    until_step: float | None = None) -> Path:
    """Each term's ADR range against env steps, one subplot per term: the band low..high shaded,
    the hard limits dashed. `history` is `history()` rows, a CSV of them, or a metrics CSV with
    adr/TERM/low and adr/TERM/high columns (no limits there). `units` labels the value axes,
    e.g. {"mass": "x nominal"}; the last ranges extend to `until_step` (default: the last row's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    source = str(history) if isinstance(history, str | Path) else "ADR history"
    if isinstance(history, str | Path):
        with Path(history).open(newline="") as file:
            history = list(csv.DictReader(file))
    if not history:
        raise ValueError(f"{source} has no rows; nothing to plot")
    series = _series(history, source)
    end = max(max(s["steps"]) for s in series.values())
    end = end if until_step is None else max(end, float(until_step))
    units = units or {}

    fig, axes = plt.subplots(len(series), 1, figsize=(7, 2.4 * len(series) + 0.8), sharex=True,
                             squeeze=False)
    for ax, (term, s) in zip(axes[:, 0], series.items(), strict=True):
        steps, low, high = [*s["steps"], end], [*s["low"], s["low"][-1]], [*s["high"], s["high"][-1]]
        ax.fill_between(steps, low, high, step="post", alpha=0.3, color="C0",
                        label="current range (low..high)")
        ax.step(steps, low, where="post", color="C0", lw=1.5)
        ax.step(steps, high, where="post", color="C0", lw=1.5)
        if s["limits"] is not None:
            for k, limit in enumerate(s["limits"]):
                ax.axhline(limit, ls="--", color="0.3", lw=1, label="hard limit" if k == 0 else None)
        unit = units.get(term)
        ax.set(title=term, ylabel=f"{term} ({unit})" if unit else f"{term} value")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[-1, 0].set_xlabel("env steps")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
