"""`sim2real sweep`: the trials of a sweep file (sim2real/sweep_file.py) trained as Ray Tune
trials, on this machine's cores or on a cluster, each one `train` run into its own run dir; then a
table of every trial, the best setting, its learning curves and the best run exported to ONNX.

A trial is trained by `train_trial`, with Ray or without it (`run_serially`, the reference the
tests and benchmarks/sweep_on_ray.py compare with): the same run dir, settings and seed give
the same numbers. Its worker lost, Tune starts the trial again and `train_trial` goes on from
the run's checkpoint; a trial already finished (a sweep run again) is not trained twice.

The folder of a sweep:
    trials/NAME/              each trial's run dir (NAME: s00-seed0, setting 0 at seed 0)
    trials/NAME.json          the trial's attempts: worker pid, start, steps resumed from
    randomization/sNN.yaml    what setting NN trains under
    sweep.csv, sweep.md       every trial, each setting over its seeds, the best one
    sweep_curves.png          evaluation and training return against steps, per setting
    best/policy.onnx          the best run, exported with its contract
    ray/                      Ray Tune's own records
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from policies.records import atomic_write_bytes, write_json
from sim2real.sweep_file import SweepPlan

COLUMNS = ("trial", "setting", "seed", "label", "status", "steps", "seconds", "attempts",
           "eval_return", "eval_success_rate", "best_eval_return", "mean_return")


@dataclass(frozen=True)
class TrialJob:
    """What a worker needs to train a trial: plain values, pickled to it."""

    name: str
    env_id: str
    algo: str
    steps: int
    seed: int
    randomization: str
    settings: dict[str, Any]
    run_dir: str


def trial_jobs(plan: SweepPlan, out: Path) -> list[TrialJob]:
    """The plan's trials as jobs into `out`, writing each setting's randomization YAML; refuses
    an `out` that holds another sweep (the same one goes on where it stopped)."""
    out = out.resolve()  # a worker elsewhere writes to the same place
    # What the trials are; CPUs and retries may change between runs of one sweep.
    record = {k: v for k, v in json.loads(json.dumps(asdict(plan))).items()
              if k not in ("cpus_per_trial", "max_failures", "source")}
    recorded = out / "sweep_plan.json"
    if recorded.is_file() and json.loads(recorded.read_text()) != record:
        raise FileExistsError(f"{out} holds another sweep (its sweep_plan.json differs); choose "
                              "another --out or pass --overwrite")
    write_json(recorded, record)
    configs = {}
    for setting in plan.settings:
        configs[setting.index] = out / "randomization" / f"s{setting.index:02d}.yaml"
        atomic_write_bytes(configs[setting.index], yaml.safe_dump(
            plan.randomization_for(setting), sort_keys=False).encode())
    return [TrialJob(trial.name, plan.env_id, plan.algo, plan.steps, trial.seed,
                     str(configs[trial.setting.index]), dict(trial.setting.settings),
                     str(out / "trials" / trial.name)) for trial in plan.trials]


def train_trial(job: TrialJob, on_evaluation: Any = None) -> dict[str, Any]:
    """Train `job`'s run, go on from its checkpoint when an earlier attempt left one, or give
    its result when it finished; each attempt is recorded in trials/NAME.json."""
    from sim2real.runs import resume_run, train_run

    run_dir = Path(job.run_dir)
    info_path, checkpoint = run_dir / "run.json", run_dir / "checkpoint.pt"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if info.get("status") == "finished":
        return info["result"]
    attempts_path = run_dir.with_suffix(".json")
    attempts = (json.loads(attempts_path.read_text())["attempts"] if attempts_path.is_file()
                else [])
    resumed_from = _checkpoint_steps(checkpoint)
    attempts.append({"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
                     "resumed_from": resumed_from})
    write_json(attempts_path, {"trial": job.name, "attempts": attempts})
    if resumed_from is not None:
        return resume_run(run_dir, progress=False, on_evaluation=on_evaluation)
    return train_run(job.env_id, job.algo, job.steps, job.seed, run_dir, job.randomization,
                     overwrite=True, progress=False, overrides=job.settings,
                     on_evaluation=on_evaluation)


def _checkpoint_steps(checkpoint: Path) -> int | None:
    """The steps of the checkpoint an earlier attempt left (written atomically: whole or none),
    or None."""
    from policies.records import load_checkpoint

    if not checkpoint.is_file():
        return None
    saved = load_checkpoint(checkpoint)
    return int(saved["steps"]) if "resume" in saved else None


def run_serially(plan: SweepPlan, out: Path, progress: bool = True) -> dict[str, Any]:
    """Every trial one after another in this process, without Ray (and without early
    stopping): the reference a Ray sweep must equal, trial by trial."""
    jobs = trial_jobs(plan, out)
    errors: dict[str, Exception] = {}
    for number, job in enumerate(jobs, 1):
        try:
            result = train_trial(job)
        except Exception as error:  # as on Ray: the trial failed, the sweep goes on
            errors[job.name] = error
            line = f"failed: {error}"
        else:
            line = f"finished: {result['steps']:,} steps in {result['seconds']:.1f} s"
        if progress:
            print(f"trial {job.name} ({number}/{len(jobs)}) {line}", flush=True)
    return summarize(plan, jobs, out, errors)


# -- on Ray ------------------------------------------------------------------------------------

def _report_to_tune(job: TrialJob) -> Any:
    from ray import tune

    def report(row: dict[str, Any]) -> None:
        if row["steps"] < job.steps:  # the last one is reported once training has finished
            tune.report(_tune_metrics(row))

    return report


def _tune_metrics(row: dict[str, Any]) -> dict[str, float]:
    return {"steps": int(row["steps"]), **{key: _number(row.get(key)) for key in
                                          ("eval_return", "eval_success_rate", "mean_return")}}


def _tune_trial(config: dict[str, Any]) -> None:
    """A Ray Tune trial: one job, reporting each evaluation (for early stopping)."""
    from ray import tune

    job = TrialJob(**config["job"])
    train_trial(job, _report_to_tune(job))
    tune.report(_tune_metrics(_last_evaluation(_metrics(Path(job.run_dir)))))


def run_on_ray(plan: SweepPlan, out: Path, address: str | None = None,
               progress: bool = True) -> dict[str, Any]:
    """The trials as Ray Tune trials of `plan.cpus_per_trial` CPUs each, on the Ray at `address`
    or started here; with ASHA when the plan stops early. A trial whose worker dies is started
    again (up to plan.max_failures times) and goes on from its checkpoint."""
    from sim2real.cluster import start_ray

    start_ray(address)
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    jobs = trial_jobs(plan, out)
    scheduler = None
    if plan.early_stop is not None:
        scheduler = ASHAScheduler(time_attr="steps", metric=plan.early_stop.metric, mode="max",
                                  max_t=plan.steps, grace_period=plan.early_stop.grace_steps,
                                  reduction_factor=plan.early_stop.reduction_factor)
    tuner = tune.Tuner(
        tune.with_resources(_tune_trial, {"cpu": plan.cpus_per_trial}),
        param_space={"job": tune.grid_search([asdict(job) for job in jobs])},
        tune_config=tune.TuneConfig(scheduler=scheduler, reuse_actors=True),
        run_config=tune.RunConfig(
            name="tune", storage_path=str((out / "ray").resolve()), verbose=0,
            failure_config=tune.FailureConfig(max_failures=plan.max_failures),
            callbacks=[_trial_lines(len(jobs))] if progress else None))
    errors = {result.config["job"]["name"]: result.error for result in tuner.fit() if result.error}
    return summarize(plan, jobs, out, errors)


def _trial_lines(total: int) -> Any:
    """A Tune callback printing one line as each trial ends, fails or starts again."""
    from ray import tune

    class TrialLines(tune.Callback):
        ended = 0

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.ended += 1
            steps = (trial.last_result or {}).get("steps", 0)
            print(f"trial {trial.config['job']['name']} ended ({self.ended}/{total}) at "
                  f"{steps:,} steps", flush=True)

        def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            print(f"trial {trial.config['job']['name']}: its worker was lost; starting it again "
                  "from its checkpoint", flush=True)

        def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            self.ended += 1
            print(f"trial {trial.config['job']['name']} failed ({self.ended}/{total}); see "
                  "sweep.md", flush=True)

    return TrialLines()


# -- the summary -------------------------------------------------------------------------------

def _number(value: Any) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except (TypeError, ValueError):
        return math.nan


def _mean(values: list[float]) -> float:
    return float(np.nanmean(values)) if any(not math.isnan(v) for v in values) else math.nan


def _metrics(run_dir: Path) -> list[dict[str, str]]:
    path = run_dir / "metrics.csv"
    return list(csv.DictReader(path.open())) if path.is_file() else []


def _last_evaluation(rows: list[dict[str, str]]) -> dict[str, Any]:
    """The last of a run's rows with an evaluation (its last row when it has none)."""
    evaluated = [r for r in rows if r.get("eval_return") not in (None, "")]
    return (evaluated or rows or [{"steps": 0}])[-1]


def trial_row(job: TrialJob, setting: int, label: str, error: Any = None) -> dict[str, Any]:
    """A trial's line of the table, from its run dir."""
    run_dir = Path(job.run_dir)
    rows = _metrics(run_dir)
    last = _last_evaluation(rows)
    info = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").is_file() else {}
    attempts_path = run_dir.with_suffix(".json")
    attempts = (len(json.loads(attempts_path.read_text())["attempts"]) if attempts_path.is_file()
                else 0)
    steps = int(_number(rows[-1]["steps"])) if rows else 0
    if error is not None:
        status = f"failed: {' '.join(str(error).split())[:200]}"
    elif info.get("status") == "finished":
        status = "finished"
    elif rows:
        status = "stopped early"
    else:
        status = "not run"
    evaluations = [_number(r.get("eval_return")) for r in rows]
    return {"trial": job.name, "setting": setting, "seed": job.seed, "label": label,
            "status": status, "steps": steps,
            "seconds": _number(rows[-1]["seconds"]) if rows else math.nan, "attempts": attempts,
            "eval_return": _number(last.get("eval_return")),
            "eval_success_rate": _number(last.get("eval_success_rate")),
            "best_eval_return": max((e for e in evaluations if not math.isnan(e)), default=math.nan),
            "mean_return": _number(last.get("mean_return"))}


def ranking_metric(plan: SweepPlan, rows: list[dict[str, Any]]) -> str:
    """What picks the best setting: early stopping's metric; else the evaluation's success rate
    where the task has one, its return where not; the training return without evaluations."""
    if plan.early_stop is not None:
        return plan.early_stop.metric
    for metric in ("eval_success_rate", "eval_return"):
        if any(not math.isnan(r[metric]) for r in rows):
            return metric
    return "mean_return"


def summarize(plan: SweepPlan, jobs: list[TrialJob], out: Path,
              errors: dict[str, Any]) -> dict[str, Any]:
    """Write sweep.csv, sweep.md and sweep_curves.png; export the best run to best/policy.onnx."""
    from deploy.export import export

    by_name = {trial.name: trial.setting for trial in plan.trials}
    rows = [trial_row(job, by_name[job.name].index, by_name[job.name].label,
                      errors.get(job.name)) for job in jobs]
    metric = ranking_metric(plan, rows)
    settings = []
    for setting in plan.settings:
        mine = [r for r in rows if r["setting"] == setting.index]
        values = [r[metric] for r in mine]
        settings.append({"setting": setting.index, "label": setting.label,
                         "finished": sum(r["status"] == "finished" for r in mine),
                         "trials": len(mine), "mean": _mean(values),
                         "std": float(np.nanstd(values)) if len(values) > 1 else 0.0,
                         "eval_return": _mean([r["eval_return"] for r in mine])})
    # The best of the settings whose every trial finished (early stopping cut the others),
    # ties broken by the evaluation's return.
    complete = [s for s in settings if s["finished"] == s["trials"] and not math.isnan(s["mean"])]
    best = max(complete or [s for s in settings if not math.isnan(s["mean"])],
               key=lambda s: (s["mean"], np.nan_to_num(s["eval_return"], nan=-np.inf)),
               default=None)
    out.mkdir(parents=True, exist_ok=True)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "sweep.csv", text.getvalue().encode())
    curves = plot_sweep(plan, jobs, rows, metric, out / "sweep_curves.png")
    exported = None
    if best is not None:
        candidates = [r for r in rows if r["setting"] == best["setting"] and
                      not math.isnan(r[metric]) and r["steps"] > 0]
        best_trial = max(candidates, key=lambda r: (r[metric], np.nan_to_num(r["eval_return"],
                                                                           nan=-np.inf)))
        best_run = Path(next(j.run_dir for j in jobs if j.name == best_trial["trial"]))
        exported = export(best_run, out / "best" / "policy.onnx")
        best["trial"] = best_trial["trial"]
    summary = _write_markdown(plan, rows, settings, best, metric, out, curves, exported)
    return {"rows": rows, "settings": settings, "best": best, "metric": metric,
            "csv": out / "sweep.csv", "markdown": summary, "curves": curves,
            "policy": exported.path if exported else None,
            "text": summary.read_text() + f"\nwrote {out / 'sweep.csv'}, {summary}, {curves}"
            + (f", {exported.path}" if exported else "")}


def _write_markdown(plan: SweepPlan, rows: list[dict], settings: list[dict], best: dict | None,
                    metric: str, out: Path, curves: Path, exported: Any) -> Path:
    def number(value: float) -> str:
        return "" if math.isnan(value) else f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"

    lines = [f"# Sweep of {plan.algo} on {plan.env_id}", "",
             f"{len(plan.settings)} setting(s) x {len(plan.seeds)} seed(s), {plan.steps:,} steps "
             f"each, randomization from `{plan.randomization}`"
             + (f"; early stopping (ASHA) on {plan.early_stop.metric} from "
                f"{plan.early_stop.grace_steps:,} steps" if plan.early_stop else "") + ".", "",
             f"## Settings, by {metric} at the last evaluation (mean over seeds)", "",
             f"| setting | | finished | mean {metric} | std |", "|---:|---|---:|---:|---:|"]
    for s in sorted(settings, key=lambda s: -s["mean"] if not math.isnan(s["mean"]) else math.inf):
        mark = " **best**" if best is not None and s["setting"] == best["setting"] else ""
        lines.append(f"| {s['setting']} | {s['label']}{mark} | {s['finished']}/{s['trials']} | "
                     f"{number(s['mean'])} | {number(s['std'])} |")
    lines += ["", "## Trials", "", "| trial | setting | status | steps | seconds | attempts | "
              "eval return | eval success | best eval return |", "|---|---|---|---:|---:|---:|"
              "---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['trial']} | {r['label']} | {r['status']} | {r['steps']:,} | "
                     f"{number(r['seconds'])} | {r['attempts']} | {number(r['eval_return'])} | "
                     f"{number(r['eval_success_rate'])} | {number(r['best_eval_return'])} |")
    if best is not None:
        lines += ["", f"Best setting: {best['setting']} ({best['label']}); its best run "
                  f"{best['trial']} is exported to `{exported.path.relative_to(out)}`."]
    lines += ["", f"![learning curves]({curves.name})", ""]
    path = out / "sweep.md"
    atomic_write_bytes(path, "\n".join(lines).encode())
    return path


def plot_sweep(plan: SweepPlan, jobs: list[TrialJob], rows: list[dict], metric: str,
               path: Path) -> Path:
    """The evaluation's `metric` and the training return against steps, one line per setting:
    the mean over its seeds, with a band from the lowest to the highest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from evaluation.curves import band

    runs: dict[int, list[dict]] = {}
    for job, row in zip(jobs, rows, strict=True):
        metrics = _metrics(Path(job.run_dir))
        evaluated = [r for r in metrics if r.get("eval_return") not in (None, "")]
        runs.setdefault(row["setting"], []).append({
            "steps": np.array([_number(r["steps"]) for r in metrics]),
            "train": np.array([_number(r.get("mean_return")) for r in metrics]),
            "eval_steps": np.array([_number(r["steps"]) for r in evaluated]),
            "eval": np.array([_number(r.get(metric)) for r in evaluated])})
    figure, axes = plt.subplots(1, 2, figsize=(13, 4.6))
    labels = {s.index: s.label for s in plan.settings}
    for setting, mine in runs.items():
        color = None
        for ax, x_key, y_key in ((axes[0], "eval_steps", "eval"), (axes[1], "steps", "train")):
            curves = [{"x": r[x_key], "y": r[y_key]} for r in mine if len(r[x_key])]
            drawn = band(curves, "x", "y") if curves else None
            if drawn is None:
                continue
            grid, mean, low, high = drawn
            (line,) = ax.plot(grid, mean, color=color,
                              label=f"s{setting:02d}: {labels[setting]} ({len(curves)} seeds)")
            color = line.get_color()
            if len(curves) > 1:
                ax.fill_between(grid, low, high, color=color, alpha=0.2)
    axes[0].set(title=f"evaluation {metric.removeprefix('eval_').replace('_', ' ')}",
                xlabel="env steps", ylabel=metric)
    axes[1].set(title="training return (last 100 episodes)", xlabel="env steps",
                ylabel="mean episode return")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, title="mean over seeds; band: min to max")
    figure.suptitle(f"Sweep of {plan.algo} on {plan.env_id}")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
