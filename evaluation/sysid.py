"""System identification from a deploy telemetry log: how far is the robot from the simulation?

The log holds, every control cycle, the robot's reading (with the device's own timestamp) and the
command sent. `Replay` starts the simulated robot where the log starts and plays the logged
commands into it, each for the time the robot really had it (from the device timestamps), with
the physical parameters under test applied to the nominal model through the randomization terms
(mass, actuator_kp, joint_damping, ...) and a command delay in whole control steps: the
logged command, absolute servo goals or volts, acts that many steps after it reached the robot.
That is what `action_delay` delays in our envs (randomization/step_terms.py): the command made
from the reading the policy saw. The time from that reading to the command's arrival (the
link's and the host's latency) is measured from the log, not fitted. The fit
minimises the RMS error between simulated and logged joint positions: the delay by trying each
whole step, the other parameters by Nelder-Mead (derivative-free: servo deadbands and encoder
quantization make the error surface rough) on their logarithms.

Each fitted value comes with a standard error from the curvature of the error at the fit (a
Gauss-Newton sandwich covariance, each replay window's residuals one correlated cluster). The
report says for each parameter whether it lies inside the range the policy was trained under
(from the contract in the log), and a suggested randomization config centred on the fit is
written as YAML: its action_delay and action_latency together make the measured latency plus
the fitted delay, the robot's lag from a reading to the motion its command asks for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy.episodes import PHASES
from deploy.telemetry import TelemetryLog
from evaluation.outputs import beside

DEFAULT_TERMS = {"position": ("mass", "actuator_kp"), "voltage": ("mass", "motor_resistance")}
"""What is fitted by default per actuator kind: what most changes how a robot answers commands."""
SCALE_BOUNDS = (0.2, 5.0)
"""Scale factors are searched within these (x nominal)."""
MIN_CYCLES = 100
MAX_DELAY_STEPS = 4


@dataclass
class Fit:
    values: dict[str, float]
    """term -> fitted scale (x nominal)."""
    delay_steps: int
    standard_errors: dict[str, float]
    rms_error: float
    """rad, simulated vs logged joint positions at the fit."""
    nominal_rms_error: float
    """rad, with nominal physics and no delay: how much the fit explains."""
    cycles: int
    latency: float
    """s, median, from the reading a command was computed from to the command's arrival at the
    robot (measured, not fitted): the lag before the fitted delay starts."""
    control_period: float
    timestep: float
    """s, of the robot's control and of its simulated physics."""
    delay_errors: dict[int, float] = field(default_factory=dict)
    """RMS error per delay tried, with the other parameters at their fit."""
    evaluations: int = 0


class Replay:
    """The simulated robot driven by a log's commands, each from when it reached the robot
    (plus the delay under test): as the robot reported it (`command_time`, the protocol's
    STATE field), or else estimated as the cycle's start on the host clock plus its logged
    stage times (the reading's round trip, observe, infer, supervise, write), mapped to the
    robot's clock by their median offset."""

    def __init__(self, log: TelemetryLog, terms: tuple[str, ...] | None = None,
                 window: int = 10) -> None:
        """`terms`: what is fitted (default DEFAULT_TERMS of the robot's actuator kind)."""
        from randomization.config import RandomizationConfig
        from randomization.terms import make_term
        from sim.catalog import robot_by_name
        from sim.physics import RobotSimulation

        header = log.header
        self.spec = robot_by_name(header["robot"])
        if list(self.spec.joint_names) != header["joint_names"]:
            raise ValueError(f"the log's joints {header['joint_names']} are not those of "
                             f"{self.spec.name!r} {list(self.spec.joint_names)}: a log of "
                             "another robot or version")
        fields = log.fields
        times = fields["state_time"][:, 0]
        fresh = np.concatenate([[True], np.diff(times) > 0]) & np.isfinite(times)
        if fresh.sum() < MIN_CYCLES:
            seconds = MIN_CYCLES * self.spec.control_period
            raise ValueError(f"the log has {int(fresh.sum())} cycles with a fresh reading; "
                             f"fitting needs at least {MIN_CYCLES} ({seconds:g} s at this "
                             "robot's rate) of motion")
        terms = tuple(terms or DEFAULT_TERMS[self.spec.actuator_kind])
        self.sim = RobotSimulation(self.spec)
        dt = self.sim.timestep
        work = sum(np.nan_to_num(fields[f"{stage}_us"][:, 0]) for stage in
                   ("read", "observe", "infer", "supervise", "write")) * 1e-6
        read = np.nan_to_num(fields["read_us"][:, 0]) * 1e-6
        host = fields["time"][:, 0]
        offset = np.median((host + read / 2 - times)[fresh])
        self.start = times[fresh][0]
        # Readings: physics steps from the first one; commands: when each reached the robot.
        self.reading_steps = np.round((times[fresh] - self.start) / dt).astype(int)
        self.positions = fields["positions"][fresh]
        self.velocities = fields["velocities"][fresh]
        # While a motor robot engages, a person holds it (the deploy waits at 0 V until the task
        # is ready): forces no simulation has. Windows with such a reading are left out.
        held = (fields["phase"][fresh, 0] == PHASES.index("engage")) if "phase" in fields else (
            np.zeros(int(fresh.sum()), dtype=bool))
        received = fields["command_time"][:, 0] if "command_time" in fields else times * np.nan
        if np.isfinite(received[fresh]).sum() >= MIN_CYCLES // 2:
            # The robot says when each command arrived: a reading reporting a new arrival time
            # acts on the command sent in the cycle before it.
            rows, arrivals, last = [], [], -np.inf
            for i in np.flatnonzero(fresh & np.isfinite(received)):
                if i > 0 and received[i] > last:
                    rows.append(i - 1)
                    arrivals.append(received[i])
                    last = received[i]
            self.command_times = np.array(arrivals) - self.start
            self.commands = fields["command"][rows]
            self.timing = "arrival times reported by the robot"
        else:
            rows = np.flatnonzero(np.isfinite(fields["command"]).all(axis=1))
            self.command_times = (host + work - offset - self.start)[rows]
            self.commands = fields["command"][rows]
            self.timing = "arrival times estimated from the host's stage timings"
        # Each command's cycle read the robot at times[row] (an older reading, if that one was
        # stale: the command was made from it all the same).
        latencies = self.command_times - (times[rows] - self.start)
        latencies = latencies[np.isfinite(latencies)]
        self.latency = max(float(np.median(latencies)), 0.0) if len(latencies) else 0.0
        self.period, self.timestep = self.spec.control_period, dt
        if window < 2:
            raise ValueError(f"window must be >= 2 readings, got {window}")
        self.window = window
        readings = np.arange(self.cycles)
        untouched = ~np.isin(readings // window, np.unique(readings[held] // window))
        if untouched.sum() < MIN_CYCLES:
            raise ValueError(f"the log has {int(untouched.sum())} readings outside the engage "
                             f"phases (the robot held by hand); fitting needs at least "
                             f"{MIN_CYCLES} of the policy moving it")
        self.kept = (readings % window != 0) & untouched
        """Readings compared: predictions (a window's first reading is a copy of the log) in
        windows no hand touched. Every joint of them: a pendulum's own link says most about
        its mass."""
        config = RandomizationConfig.from_dict({name: {"low": 1.0, "high": 1.0}
                                                for name in terms})
        self.terms = [make_term(self.sim.model, name, config.terms[name]) for name in terms]
        self.evaluations = 0

    @property
    def cycles(self) -> int:
        return len(self.reading_steps)

    def simulate(self, values: dict[str, float], delay_steps: int) -> np.ndarray:
        """Joint positions the simulation predicts at each logged reading, `window` readings
        ahead at most: every `window` readings the simulation restarts from the logged state.
        A servo's deadband makes a whole-log replay drift (a joint stopping a count apart
        starts its next move at another moment), which would drown what the parameters do."""
        from randomization.terms import apply_terms

        self.evaluations += 1
        sim = self.sim
        apply_terms(sim.model, self.terms, {t.name: np.full(len(t.names), values[t.name])
                                            for t in self.terms})
        # A command acts from the physics step at or before its arrival (the device steps
        # its physics up to now, then applies what came).
        arrivals = np.floor((self.command_times + delay_steps * self.period) / self.timestep
                            + 1e-6).astype(int)
        predicted = np.empty_like(self.positions)
        for first in range(0, self.cycles, self.window):
            start = self.reading_steps[first]
            sim.reset(self.positions[first])
            sim.data.qvel[sim.qvel_index] = self.velocities[first]
            event = int(np.searchsorted(arrivals, start, side="right"))
            if event:
                sim.set_command(self.commands[event - 1])  # the command in force
            now = start
            predicted[first] = self.positions[first]
            for j in range(first + 1, min(first + self.window, self.cycles)):
                target = self.reading_steps[j]
                while event < len(arrivals) and arrivals[event] <= target:
                    if arrivals[event] > now:
                        sim.step(int(arrivals[event] - now))
                        now = arrivals[event]
                    sim.set_command(self.commands[event])
                    event += 1
                if target > now:
                    sim.step(int(target - now))
                    now = target
                predicted[j] = sim.data.qpos[sim.qpos_index]
        return predicted

    def residuals(self, values: dict[str, float], delay_steps: int) -> np.ndarray:
        return (self.simulate(values, delay_steps) - self.positions)[self.kept].ravel()

    def residual_windows(self) -> np.ndarray:
        """The replay window of each entry of `residuals`."""
        return np.repeat(np.flatnonzero(self.kept) // self.window, self.positions.shape[1])

    def rms(self, values: dict[str, float], delay_steps: int) -> float:
        return float(np.sqrt(np.mean(self.residuals(values, delay_steps) ** 2)))


def fit_log(log: TelemetryLog, terms: tuple[str, ...] | None = None,
            max_delay: int = MAX_DELAY_STEPS, max_evaluations: int = 300) -> Fit:
    from scipy.optimize import minimize

    replay = Replay(log, terms)
    terms = tuple(t.name for t in replay.terms)
    nominal = dict.fromkeys(terms, 1.0)
    low, high = np.log(SCALE_BOUNDS)

    def unpack(x: np.ndarray) -> dict[str, float]:
        return {t: float(np.exp(np.clip(v, low, high))) for t, v in zip(terms, x, strict=True)}

    def search(delay: int, start: dict[str, float]) -> tuple[dict[str, float], float]:
        result = minimize(lambda x: replay.rms(unpack(x), delay),
                          np.log([start[t] for t in terms]), method="Nelder-Mead",
                          options={"maxfev": max_evaluations, "xatol": 2e-3, "fatol": 1e-7,
                                   "initial_simplex": _simplex(np.log([start[t] for t in terms]))})
        return unpack(result.x), float(result.fun)

    # The delay first, with nominal physics (it shifts the whole trajectory, which nothing else
    # can imitate), then the scales at that delay, then the delay again at those scales.
    delays = range(max_delay + 1)
    nominal_errors = {d: replay.rms(nominal, d) for d in delays}
    delay = min(nominal_errors, key=nominal_errors.get)
    values, error = search(delay, nominal)
    delay_errors = {d: replay.rms(values, d) for d in delays}
    best = min(delay_errors, key=delay_errors.get)
    if best != delay:
        delay = best
        values, error = search(delay, values)
        delay_errors = {d: replay.rms(values, d) for d in delays}
    errors = _standard_errors(replay, values, delay, terms)
    return Fit(values=values, delay_steps=delay, standard_errors=errors, rms_error=error,
               nominal_rms_error=nominal_errors[0], cycles=replay.cycles, latency=replay.latency,
               control_period=replay.period, timestep=replay.timestep,
               delay_errors=delay_errors, evaluations=replay.evaluations)


def _simplex(start: np.ndarray) -> np.ndarray:
    """A first simplex of +-20 % steps: wide enough to leave a deadband's flat patch."""
    points = [start]
    for i in range(len(start)):
        point = start.copy()
        point[i] += np.log(1.2)
        points.append(point)
    return np.array(points)


def _standard_errors(replay: Replay, values: dict[str, float], delay: int,
                     terms: tuple[str, ...]) -> dict[str, float]:
    """Standard errors from the curvature at the fit, on log scales (relative errors), with
    the residuals of one replay window treated as one correlated cluster: the sandwich
    (J^T J)^-1 (sum over windows of J_w^T r_w r_w^T J_w) (J^T J)^-1. Readings a few ms apart
    share their errors; windows, each started afresh from the log, do not."""
    base = replay.residuals(values, delay)
    step = 0.01
    columns = []
    for term in terms:
        moved = dict(values)
        moved[term] = values[term] * np.exp(step)
        columns.append((replay.residuals(moved, delay) - base) / step)
    jacobian = np.stack(columns, axis=1)
    clusters = replay.residual_windows()
    try:
        bread = np.linalg.inv(jacobian.T @ jacobian)
    except np.linalg.LinAlgError:
        return dict.fromkeys(terms, float("inf"))
    meat = np.zeros((len(terms), len(terms)))
    for window in np.unique(clusters):
        score = jacobian[clusters == window].T @ base[clusters == window]
        meat += np.outer(score, score)
    covariance = bread @ meat @ bread
    return {t: float(values[t] * np.sqrt(max(covariance[i, i], 0.0)))
            for i, t in enumerate(terms)}


def trained_ranges(log: TelemetryLog) -> dict[str, tuple[float, float]]:
    """The range of each term the policy was trained under (from the contract in the log)."""
    randomization = (log.header.get("contract") or {}).get("randomization") or {}
    ranges = {}
    for term, spec in randomization.items():
        if not isinstance(spec, dict):
            continue
        low, high = spec.get("low"), spec.get("high")
        if spec.get("choices"):
            low, high = min(spec["choices"]), max(spec["choices"])
        if low is not None and high is not None:
            ranges[term] = (float(low), float(high))
    return ranges


def report(log: TelemetryLog, fit: Fit) -> dict[str, Any]:
    """Per parameter: the fit, its standard error, and whether training covered it."""
    ranges = trained_ranges(log)
    rows = {}
    for term, value in {**fit.values, "action_delay": float(fit.delay_steps),
                        "action_latency": fit.latency}.items():
        error = fit.standard_errors.get(term, 0.0)
        trained = ranges.get(term)
        if trained is None:
            verdict = "not randomized in training"
        elif trained[0] <= value <= trained[1]:
            verdict = f"inside the trained range {trained[0]:g}..{trained[1]:g}"
        else:
            verdict = f"OUTSIDE the trained range {trained[0]:g}..{trained[1]:g}"
        rows[term] = {"value": value, "standard_error": error, "trained_range": trained,
                      "verdict": verdict}
    return {"robot": log.header["robot"], "cycles": fit.cycles,
            "rms_error_rad": fit.rms_error, "nominal_rms_error_rad": fit.nominal_rms_error,
            "parameters": rows, "delay_errors_rad": fit.delay_errors,
            "evaluations": fit.evaluations}


def suggested_config(fit: Fit, relative_width: float = 0.15) -> dict[str, Any]:
    """A randomization config centred on the fit: each scale within +-max(15 %, 3 standard
    errors) of it; the lag from a reading to its command acting (the measured latency plus the
    fitted delay) as whole steps of action_delay, within one step, and the rest as
    action_latency (+-50 %), left out below half a physics step, where it changes nothing."""
    config: dict[str, Any] = {}
    for term, value in fit.values.items():
        half = max(relative_width * value, 3 * fit.standard_errors.get(term, 0.0))
        config[term] = {"low": round(max(value - half, 0.01), 4), "high": round(value + half, 4)}
    steps, latency = divmod(fit.delay_steps * fit.control_period + fit.latency,
                            fit.control_period)
    if latency > fit.control_period - fit.timestep / 2:  # a whole step, but for rounding
        steps, latency = steps + 1, 0.0
    steps = int(steps)
    config["action_delay"] = {"distribution": "choice",
                              "choices": sorted({max(steps - 1, 0), steps, steps + 1})}
    if latency >= fit.timestep / 2:
        config["action_latency"] = {"low": round(0.5 * latency, 6),
                                    "high": round(min(1.5 * latency,
                                                      fit.control_period - fit.timestep), 6)}
    return config


def write_config(config: dict[str, Any], path: Path) -> Path:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# Suggested by `sim2real sysid`: centred on the parameters fitted from a "
                    "robot log.\n" + yaml.safe_dump(config, sort_keys=True))
    return path


def plot_fit(log: TelemetryLog, fit: Fit, out: Path, terms: tuple[str, ...] | None = None,
             seconds: float = 4.0) -> Path:
    """The logged joints against the replay with nominal physics and with the fit (the first
    `seconds` of the log), and the error for each delay tried."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    replay = Replay(log, tuple(terms or fit.values))
    nominal = replay.simulate(dict.fromkeys(fit.values, 1.0), 0)
    fitted = replay.simulate(fit.values, fit.delay_steps)
    t = replay.reading_steps * replay.timestep
    shown = t <= seconds
    joints = [j for j in replay.spec.actuated_joint_index
              if np.ptp(replay.positions[shown, j]) > 1e-3][:3] or [0]
    figure, axes = plt.subplots(len(joints) + 1, 1, figsize=(10, 2.6 * (len(joints) + 1)))
    for ax, j in zip(axes, joints, strict=False):
        name = replay.spec.joint_names[j]
        ax.plot(t[shown], replay.positions[shown, j], color="black", label="robot (log)")
        ax.plot(t[shown], nominal[shown, j], color="tab:red", linestyle=":",
                label="simulation, nominal physics, no delay")
        ax.plot(t[shown], fitted[shown, j], color="tab:blue", linestyle="--",
                label="simulation, fitted")
        ax.set(title=f"{name}: replayed {replay.window} readings at a time",
               xlabel="time since the log's first reading (s)", ylabel="position (rad)")
        ax.legend(fontsize=8, loc="best")
    delays = sorted(fit.delay_errors)
    bars = axes[-1]
    bars.bar(delays, [fit.delay_errors[d] * 1e3 for d in delays], color="tab:gray")
    bars.bar([fit.delay_steps], [fit.delay_errors[fit.delay_steps] * 1e3], color="tab:blue",
             label=f"fit: {fit.delay_steps} steps")
    bars.set(title="replay error against command delay (other parameters at their fit)",
             xlabel="command delay (control steps)", ylabel="RMS position error (mrad)")
    bars.legend(fontsize=8)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def identify(log_path: Path, out: Path | None = None, terms: tuple[str, ...] | None = None,
             max_delay: int = MAX_DELAY_STEPS, robot: str | None = None) -> dict[str, Any]:
    """`sim2real sysid`: fit the log at `log_path`, write the suggested randomization config, the
    plot and `sysid.json` into `out` (default: sysid/ beside the log); returns the report with
    where they went."""
    import json

    from deploy.telemetry import read_log

    log = read_log(log_path)
    if robot and log.header.get("robot") != robot:
        raise ValueError(f"{log_path} is a log of {log.header.get('robot')!r}, not of "
                         f"{robot!r}; fit it without --robot or give the right log")
    fit = fit_log(log, terms, max_delay)
    summary = report(log, fit)
    out = out or beside(log_path, "sysid")
    out.mkdir(parents=True, exist_ok=True)
    config = write_config(suggested_config(fit), out / "suggested_randomization.yaml")
    picture = plot_fit(log, fit, out / "sysid_fit.png")
    summary |= {"suggested_config": str(config), "plot": str(picture)}
    (out / "sysid.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    return summary


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """`identify`'s report as `sim2real sysid` prints it."""
    lines = [f"{summary['robot']}: {summary['cycles']} readings; replay error "
             f"{summary['nominal_rms_error_rad'] * 1e3:.2f} mrad with nominal physics, "
             f"{summary['rms_error_rad'] * 1e3:.2f} mrad at the fit"]
    for term, row in summary["parameters"].items():
        unit = {"action_delay": "control steps", "action_latency": "s"}.get(term, "x nominal")
        lines.append(f"  {term:>16}: {row['value']:.3f} +- {row['standard_error']:.3f} {unit}  "
                     f"({row['verdict']})")
    lines.append("  (+- : statistical standard error; it does not cover model mismatch)")
    return lines
