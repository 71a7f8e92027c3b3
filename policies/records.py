"""What a training run writes and keeps, piece by piece: atomic checkpoints (with the running
envs, so a run resumes exactly), the metrics CSV mirrored to TensorBoard, the episodes log,
periodic evaluation, the progress display. policies/run.py's TrainingRun puts them together."""

from __future__ import annotations

import csv
import io
import json
import os
import pickle
import tempfile
import time
from pathlib import Path
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn

from policies.core import VectorEnvFactory
from policies.encoders import policy_inputs


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: a crash leaves either the old
    file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    import io

    buffer = io.BytesIO()
    # torch.save's default pickle protocol 2 writes numpy arrays (a replay buffer, the envs'
    # state) as latin-1 text: a 1M-transition buffer took 2.1 s to save, 0.57 s with protocol 5.
    torch.save(payload, buffer, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write_bytes(path, buffer.getvalue())


CHECKPOINT_KEYS = ("algo", "config", "steps", "agent")
"""What every checkpoint.pt and best.pt holds (TrainingRun.payload)."""


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint as save_checkpoint wrote it. Missing: FileNotFoundError; damaged (cut short,
    overwritten) or not a checkpoint: ValueError; each names the file and what to do."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {path.parent} is not a training run "
                                "(`sim2real train --out DIR` makes one), or its training stopped "
                                "before the first checkpoint")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # unpickling damaged bytes raises any of a dozen types
        reason = (str(error).strip().splitlines() or [""])[0].split(". ")[0][:100]
        raise ValueError(f"{path} is damaged and cannot be read ({type(error).__name__}: "
                         f"{reason}); put back a good copy of it, or train a new run") from None
    missing = [key for key in CHECKPOINT_KEYS
               if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise ValueError(f"{path} is not a checkpoint of `sim2real train` (it lacks "
                         f"{', '.join(missing)}); give a run dir that train wrote")
    return checkpoint


def write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_bytes(path, (json.dumps(payload, indent=2) + "\n").encode())


class MetricsLog:
    """Append-only CSV, one row per iteration, flushed and synced at every row so a crash loses
    at most the row being written; the same numbers go to TensorBoard under `tensorboard/` in
    the run dir (x axis: env steps)."""

    def __init__(self, path: Path, fields: list[str], tensorboard: bool = True) -> None:
        self.fields = fields
        new = not path.exists()
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=fields)
        if new:
            self._writer.writeheader()
        self._board = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._board = SummaryWriter(str(path.parent / "tensorboard"), flush_secs=10)

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow({k: row.get(k, "") for k in self.fields})
        self._file.flush()
        os.fsync(self._file.fileno())
        if self._board is not None:
            for key, value in row.items():
                if key not in ("iteration", "steps") and isinstance(value, int | float) \
                        and np.isfinite(value):
                    self._board.add_scalar(key, value, global_step=int(row["steps"]))

    def close(self) -> None:
        self._file.close()
        if self._board is not None:
            self._board.close()

    @property
    def closed(self) -> bool:
        return self._file.closed


def truncate_logs(run_dir: Path, steps: int) -> None:
    """Before resuming from a checkpoint at `steps`: drop the rows of metrics.csv and
    episodes.jsonl written after it, so the resumed run's logs read as one run's."""
    metrics = run_dir / "metrics.csv"
    if metrics.exists():
        rows = list(csv.DictReader(metrics.open()))
        fields = metrics.open().readline().strip().split(",")
        kept = [row for row in rows if int(row["steps"]) <= steps]
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_bytes(metrics, buffer.getvalue().encode())
    episodes = run_dir / "episodes.jsonl"
    if episodes.exists():
        lines = [line for line in episodes.read_text().splitlines()
                 if line and json.loads(line)["steps"] <= steps]
        atomic_write_bytes(episodes, "".join(f"{line}\n" for line in lines).encode())


def _rebuild(cls: type, state: dict[str, Any]) -> Any:
    obj = object.__new__(cls)
    obj.__dict__.update(state)
    return obj


class _StatePickler(cloudpickle.Pickler):
    """Gymnasium's MuJoCo envs pickle as their constructor arguments (EzPickle): a fresh env.
    A checkpoint needs the running one, so they are pickled with their whole state instead."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, gym.utils.EzPickle) and not isinstance(obj, type):
            return _rebuild, (type(obj), obj.__dict__)
        return super().reducer_override(obj)


def snapshot_envs(envs: gym.vector.VectorEnv) -> bytes:
    """The vector env as it is now (physics, generators, episode counters, randomization), for
    a checkpoint that resumes exactly."""
    buffer = io.BytesIO()
    _StatePickler(buffer).dump(envs)
    return buffer.getvalue()


def restore_envs(snapshot: bytes) -> gym.vector.VectorEnv:
    return pickle.loads(snapshot)


class Evaluator:
    """Every so often, the deterministic policy on fresh copies of the env, one episode each,
    from fixed seeds (so evaluations compare); the best one so far is kept as best.pt."""

    def __init__(self, make_envs: VectorEnvFactory, episodes: int, seed: int = 1_000_000) -> None:
        if episodes < 1:
            raise ValueError(f"eval_episodes must be >= 1, got {episodes}")
        self.make_envs, self.episodes, self.seed = make_envs, episodes, seed
        self.best = -np.inf

    def evaluate(self, policy: nn.Module) -> dict[str, float]:
        envs = self.make_envs(self.episodes)
        obs, _ = envs.reset(seed=self.seed)
        returns = np.zeros(self.episodes)
        success = np.zeros(self.episodes)
        done = np.zeros(self.episodes, dtype=bool)
        while not done.all():
            with torch.no_grad():
                action = policy(*policy_inputs(obs)).numpy()
            obs, reward, terminated, truncated, info = envs.step(action)
            returns += np.where(done, 0.0, reward)
            ended = (terminated | truncated) & ~done
            if ended.any() and "final_info" in info and "is_success" in info["final_info"]:
                success[ended] = info["final_info"]["is_success"][ended]
            done |= ended
        envs.close()
        return {"eval_return": float(returns.mean()), "eval_return_std": float(returns.std()),
                "eval_success_rate": float(success.mean())}

    def improved(self, result: dict[str, float]) -> bool:
        if result["eval_return"] > self.best:
            self.best = result["eval_return"]
            return True
        return False


MIN_EPISODES = 10
"""Episodes a success rate is reported over, at the least (progress bar, metrics, curves)."""


class EpisodeStats:
    """Returns, lengths and successes of the episodes that ended, over a recent window."""

    def __init__(self, window: int = 100) -> None:
        self.window = window
        self.returns: list[float] = []
        self.successes: list[float] = []

    def record(self, info: dict[str, Any]) -> None:
        if "episode" not in info:
            return
        done = info["_episode"]
        self.returns.extend(info["episode"]["r"][done].tolist())
        final = info.get("final_info", {})
        if "is_success" in final:
            self.successes.extend(final["is_success"][done].astype(float).tolist())
        self.returns = self.returns[-self.window:]
        self.successes = self.successes[-self.window:]

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    @property
    def success_rate(self) -> float:
        """Over the window, once it holds MIN_EPISODES (NaN before: one lucky first episode is
        not a success rate of 100 %)."""
        if len(self.successes) < MIN_EPISODES:
            return float("nan")
        return float(np.mean(self.successes))


def copy_draws(draws: Any, i: int) -> Any:
    """Copy `i`'s {term: {element: value}}, from the batch env's per-copy draws or from a
    gymnasium vector env's info, which turns nested dicts into dicts of arrays over the copies
    with `_key` masks (a pixel env's copies are gymnasium's)."""
    if not isinstance(draws, dict):
        return draws[i]
    return {key: copy_draws(value, i) if isinstance(value, dict) else value[i].item()
            for key, value in draws.items()
            if not key.startswith("_") and draws[f"_{key}"][i]}


class EpisodeLog:
    """episodes.jsonl in the run dir: one line per finished episode with its env steps, copy,
    return, length, success and the randomization it ran under (info["randomization"] of the
    copy's reset), each line flushed so a crash loses at most the one being written."""

    def __init__(self, path: Path, num_envs: int) -> None:
        self._file = path.open("a")
        self.domains: list[Any] = [None] * num_envs

    def _take_draws(self, info: dict[str, Any], copies: np.ndarray) -> None:
        if "randomization" in info:
            for i in copies:
                if info["_randomization"][i]:
                    self.domains[i] = copy_draws(info["randomization"], i)

    def begin(self, info: dict[str, Any]) -> None:
        """The reset's info: every copy's first draws."""
        self._take_draws(info, np.arange(len(self.domains)))

    def record(self, info: dict[str, Any], steps: int) -> None:
        if "episode" in info:
            final = info.get("final_info", {})
            for i in np.flatnonzero(info["_episode"]):
                row = {"steps": steps, "copy": int(i), "return": float(info["episode"]["r"][i]),
                       "length": int(info["episode"]["l"][i])}
                if "is_success" in final:
                    row["success"] = bool(final["is_success"][i])
                if self.domains[i] is not None:
                    row["randomization"] = self.domains[i]
                self._file.write(json.dumps(row) + "\n")
            self._file.flush()
            # The finished copies' new episodes: their draws are in this step's info.
            self._take_draws(info, np.flatnonzero(info["_episode"]))

    def close(self) -> None:
        self._file.close()


def env_log_row(envs: gym.vector.VectorEnv) -> dict[str, float]:
    """What the env itself reports for the training log, e.g. automatic domain randomization's
    current ranges (`log_row()` of the unwrapped vector env, if it has one)."""
    log_row = getattr(envs.unwrapped, "log_row", None)
    return log_row() if callable(log_row) else {}


class TrainingProgress:
    """A progress bar with steps/s, ETA, recent return and success rate (rich)."""

    def __init__(self, total_steps: int, title: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self.start = time.perf_counter()
        # All of it fits 80 columns, ETA included: the bar takes what the text leaves.
        self.total = total_steps
        self._progress = Progress(
            TextColumn(f"[bold]{title}"), BarColumn(bar_width=None),
            TextColumn("{task.fields[steps]} steps {task.fields[rate]}/s"),
            TextColumn("return {task.fields[ret]:.1f}"),
            TextColumn("{task.fields[success]}"),
            TextColumn("ETA"), TimeRemainingColumn(),
            disable=not enabled,
        )
        self._task = self._progress.add_task(title, total=total_steps, rate="0",
                                             steps=f"0/{compact(total_steps)}",
                                             ret=float("nan"), success="")

    def __enter__(self) -> TrainingProgress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(*exc)

    def update(self, steps: int, stats: EpisodeStats) -> None:
        elapsed = time.perf_counter() - self.start
        success = "" if np.isnan(stats.success_rate) else f"success {stats.success_rate:.0%}"
        self._progress.update(self._task, completed=steps,
                              steps=f"{compact(steps)}/{compact(self.total)}",
                              rate=compact(steps / max(elapsed, 1e-9)),
                              ret=stats.mean_return, success=success)


def compact(number: float) -> str:
    """A count in at most 5 characters: 950, 12.3k, 250k, 1.25M."""
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(number) >= 0.9995 * size:  # 999,999 is 1M, not 1e+03k
            return f"{number / size:.3g}{unit}"
    return f"{number:.0f}"


def config_of_checkpoint(config_type: type, checkpoint: dict, **changes) -> Any:
    """An algorithm's config as a checkpoint recorded it (JSON turned tuples into lists)."""
    fields = {key: tuple(value) if isinstance(value, list) else value
              for key, value in checkpoint["config"].items()}
    if unknown := sorted(set(fields) - set(config_type.__dataclass_fields__)):
        raise ValueError(f"the checkpoint's settings {unknown} are not {config_type.__name__}'s "
                         "in this version; use the version that wrote it, or train a new run")
    return config_type(**{**fields, **changes})


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("sim2real", "torch", "mujoco", "gymnasium", "numpy", "onnx", "onnxruntime"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    return versions
