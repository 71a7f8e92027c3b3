"""What a deploy telemetry log says: a summary (rate, misses, stage times, interventions,
episodes, why it stopped) and a picture of the joints. `sim2real log show LOG` prints both.
The summary needs numpy only; the plot needs matplotlib (the training machine's)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deploy.loop import STAGES
from deploy.telemetry import TelemetryLog, read_log


def _percentile(values: np.ndarray, q: float) -> float | None:
    values = values[np.isfinite(values)]
    return round(float(np.percentile(values, q)), 1) if values.size else None


def summarize(log: TelemetryLog) -> dict[str, Any]:
    header, fields = log.header, log.fields
    cycles = log.cycles
    seconds = float(fields["time"][-1, 0]) if cycles else 0.0
    masks = fields["interventions"][:, 0].astype(int) if cycles else np.zeros(0, int)
    episodes = [e for e in log.events if e["event"] == "episode_end"]
    stop = log.event("safe_stop")
    missed = int(np.nansum(fields["missed"])) if cycles else 0
    summary = {
        "robot": header["robot"], "policy": header["policy"], "started": header["started"],
        "cycles": cycles, "seconds": round(seconds, 3),
        "rate_hz": round(cycles / seconds, 1) if seconds > 0 else 0.0,
        "target_rate_hz": round(1.0 / header["control_period"], 1),
        "deadline_misses": f"{missed} ({100.0 * missed / max(cycles, 1):.2f} %)",
    }
    # Period jitter, as the loop reports it: |start-to-start interval - period|.
    jitter = np.abs(np.diff(fields["time"][:, 0]) - header["control_period"]) * 1e6
    summary["jitter_p50_us"] = _percentile(jitter, 50)
    summary["jitter_p99_us"] = _percentile(jitter, 99)
    summary["start_lateness_p99_us"] = _percentile(fields["lateness_us"][:, 0], 99)
    for stage in STAGES:
        column = fields[f"{stage}_us"][:, 0] if cycles else np.zeros(0)
        summary[f"{stage}_us_p50/p99"] = f"{_percentile(column, 50)} / {_percentile(column, 99)}"
    if "frame_age_us" in fields:  # a pixel policy's camera
        ages = fields["frame_age_us"][:, 0] / 1e3
        summary["frame_age_ms_p50/p99"] = f"{_percentile(ages, 50)} / {_percentile(ages, 99)}"
    summary["interventions"] = {kind: int(np.sum(masks >> i & 1))
                                for i, kind in enumerate(header["interventions"])}
    summary["episodes"] = len(episodes)
    summary["successes"] = sum(bool(e["success"]) for e in episodes)
    summary["stopped"] = stop["reason"] if stop else ""
    summary["complete"] = log.event("report") is not None and not log.truncated
    return summary


def summary_text(summary: dict[str, Any]) -> str:
    """`summarize`'s result as `sim2real log show` prints it: one aligned line a field, the
    interventions as "kind count" (those that happened), a run that ran its time said so."""
    shown = dict(summary)
    shown["interventions"] = ", ".join(f"{kind} {count}" for kind, count in
                                       summary["interventions"].items() if count) or "none"
    shown["stopped"] = summary["stopped"] or "no: ran its time"
    return "\n".join(f"{key:>22}: {value}" for key, value in shown.items())


def plot_log(log: TelemetryLog, out: Path) -> Path:
    """Joint positions against their commands, velocities, and the loop's timing, over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    header, fields = log.header, log.fields
    if log.cycles == 0:
        raise ValueError("the log holds no cycles: nothing to plot")
    t = fields["time"][:, 0]
    joints, actuators = header["joint_names"], header["actuator_names"]
    figure, (positions, velocities, timing) = plt.subplots(3, 1, figsize=(11, 10), sharex=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, name in enumerate(joints):
        color = colors[j % len(colors)]
        positions.plot(t, fields["positions"][:, j], color=color, label=f"{name}")
        if name in actuators:
            a = actuators.index(name)
            positions.plot(t, fields["command"][:, a], color=color, linestyle="--", linewidth=0.8)
        velocities.plot(t, fields["velocities"][:, j], color=color, label=name)
    positions.plot([], [], color="gray", linestyle="--", label="command (dashed)")
    positions.set(title=f"{header['robot']}: measured joint positions and commands",
                  ylabel="position (rad) / command (actuator unit)")
    positions.legend(loc="upper right", fontsize=8, ncol=2)
    velocities.set(title="joint velocities", ylabel="velocity (rad/s)")
    velocities.legend(loc="upper right", fontsize=8, ncol=2)
    compute = sum(np.nan_to_num(fields[f"{stage}_us"][:, 0]) for stage in STAGES)
    timing.plot(t, compute, label="read+observe+infer+supervise+write", linewidth=0.8)
    timing.plot(t, fields["lateness_us"][:, 0], label="start lateness", linewidth=0.8)
    timing.axhline(header["control_period"] * 1e6, color="red", linestyle=":",
                   label="control period")
    interventions = fields["interventions"][:, 0] > 0
    if interventions.any():
        timing.plot(t[interventions], np.zeros(interventions.sum()), "|", color="black",
                    label="supervisor intervened")
    timing.set(title="loop timing", xlabel="time since start (s)", ylabel="microseconds",
               yscale="symlog")
    timing.legend(loc="upper right", fontsize=8)
    stop = log.event("safe_stop")
    if stop:
        for axis in (positions, velocities, timing):
            axis.axvline(stop["seconds"], color="red", linewidth=1.0)
        positions.annotate(f"safe stop: {stop['reason']}", (stop["seconds"], 0.0),
                           xycoords=("data", "axes fraction"), fontsize=8, color="red",
                           rotation=90, va="bottom", ha="right")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def show_log(path: Path, plot: Path | None = None) -> dict[str, Any]:
    """`sim2real log show`: the summary of the log at `path`, with its joints drawn to `plot`
    (default: beside the log, as PNG)."""
    log = read_log(path)
    summary = summarize(log)
    summary["plot"] = str(plot_log(log, plot or path.with_suffix(".png")))
    return summary
