"""Training runs: `train` and `resume` as library functions, shared by the command line, the
demo, the benchmarks and the tests. One run composes an env (sim/), its randomization
(randomization/) and an algorithm (policies/) into a run dir."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policies.run import EvaluationHook


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"run dir {out} already holds files; choose another --out or "
                                  "pass --overwrite")
        shutil.rmtree(out)


def default_randomization(env_id: str) -> str:
    """What `train` randomizes unless told: one of our robots trains on its `default` preset
    (the spread between two builds of it and the simulation, with sources), and a task that
    observes objects on `tracked` (`default` and a camera tracker's frame period and delay); a
    gymnasium env, which has no robot of ours to differ from, on `none`."""
    from sim.registration import robot_of, tracks_objects

    if not robot_of(env_id):
        return "none"
    return "tracked" if tracks_objects(env_id) else "default"


def settings_from_json(text: str | None) -> dict | None:
    """`sim2real train --set`'s algorithm settings: a JSON object such as '{"num_envs": 8}'."""
    if text is None:
        return None
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--set {text!r} is not JSON ({error}); give the settings as a JSON "
                         """object, e.g. --set '{"num_envs": 8, "learning_rate": 0.001}'""") from None
    return settings


def training_config(algo: str, env_id: str, steps: int, seed: int,
                    overrides: dict | None = None, pixels: bool = False) -> Any:
    """`algo`'s config for a run of `steps` on `env_id` from `seed`: the algorithm's defaults,
    then those tuned for this env (and for its camera images, with `pixels`), then `overrides`;
    every value checked (policies/settings.py)."""
    from policies.algorithms import algorithm_by_name
    from policies.tuned import tuned_settings

    config_type = algorithm_by_name(algo).config
    if not isinstance(overrides, dict | None):
        raise ValueError(f"{algo} settings must be a mapping of name -> value, e.g. "
                         f"{{\"num_envs\": 8}}; got {type(overrides).__name__} {overrides!r}")
    fields = config_type.__dataclass_fields__
    unknown = sorted(map(str, set(overrides or {}) - set(fields)))
    if unknown:
        raise ValueError(f"unknown {algo} setting(s) {unknown}; known: {sorted(fields)}")
    if given := sorted({"total_steps", "seed"} & set(overrides or {})):
        raise ValueError(f"{' and '.join(given)} in the settings: give the steps with --steps "
                         "and the seed with --seed, not in --set")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0:
        raise ValueError(f"--steps must be a positive number of env steps, got {steps!r}")
    return config_type(total_steps=steps, seed=seed,
                       **{**tuned_settings(algo, env_id, pixels), **(overrides or {})})


def train_run(env_id: str, algo: str, steps: int, seed: int, out: Path,
              randomization: str | None, overwrite: bool = False, progress: bool = True,
              overrides: dict | None = None, pixels: int | None = None,
              discrete_actions: int | None = None,
              on_evaluation: EvaluationHook | None = None) -> dict:
    """Train `algo` on `env_id` into `out`; the shared path of `train`, `demo` and `sweep`.
    Settings: the algorithm's defaults, then those tuned for this env, then `overrides`.
    `pixels`: observe `pixels` x `pixels` camera images beside the state (PPO only).
    `discrete_actions`: that many choices per action dimension instead of continuous actions
    (DQN only). `on_evaluation`: called with each evaluation's row of metrics."""
    import yaml

    from policies.algorithms import algorithm_by_name
    from policies.plots import plot_learning_curve
    from policies.records import atomic_write_bytes
    from randomization.config import load_config
    from randomization.envs import make_vector_env
    from sim.registration import check_env_id, robot_of

    check_env_id(env_id)
    algorithm = algorithm_by_name(algo)
    config = training_config(algo, env_id, steps, seed, overrides, pixels is not None)
    if pixels is not None:
        from policies.encoders import MIN_IMAGE_SIZE
        from sim.registration import OUR_ENVS

        if algo != "ppo":
            raise ValueError(f"--pixels trains from camera images with ppo only; {algo} takes "
                             "the state vector (drop --pixels or use --algo ppo)")
        if env_id not in OUR_ENVS:
            raise ValueError(f"--pixels renders our robots' cameras; {env_id!r} is not one of "
                             f"ours ({', '.join(OUR_ENVS)})")
        if pixels < MIN_IMAGE_SIZE:
            raise ValueError(f"--pixels {pixels} is too small for the CNN encoder; use at least "
                             f"{MIN_IMAGE_SIZE} (84 is the usual size)")
    if discrete_actions is not None and algo != "dqn":
        raise ValueError(f"--discrete-actions {discrete_actions} turns continuous actions into "
                         f"choices for dqn; {algo} acts on the continuous actions themselves "
                         "(drop --discrete-actions or use --algo dqn)")
    randomization_config = load_config(randomization, robot_of(env_id)) if randomization else None
    described = randomization_config.describe() if randomization_config else "none"
    if randomization_config is not None and not (randomization_config.terms or
                                                 randomization_config.adr):
        randomization_config = None  # `none`: the plain env, no wrapper
    prepare_run_dir(out, overwrite)
    metadata = {"env_id": env_id, "randomization":
                randomization_config.to_dict() if randomization_config else {}}
    if pixels is not None:
        metadata["pixels"] = pixels
    if discrete_actions is not None:
        # Resume rebuilds the same choices; eval and export use the continuous env, since the
        # exported policy looks its choice up in the action table it carries.
        metadata["discrete_actions"] = discrete_actions
    if randomization_config is not None:
        # The ranges trained under, in the schema a user can edit and train with again.
        atomic_write_bytes(out / "randomization.yaml", yaml.safe_dump(
            randomization_config.to_dict(), sort_keys=False).encode())
    result = algorithm.train(
        lambda n: make_vector_env(env_id, n, randomization_config, pixels=pixels,
                                  discrete_actions=discrete_actions), config, out,
        metadata=metadata, progress=progress, on_evaluation=on_evaluation)
    result["randomization"] = described
    result["line"] = (f"trained {algo} on {env_id} with randomization {randomization or 'none'}: "
                      f"{described}; {result['steps']} steps in {result['seconds']:.1f} s, recent "
                      f"return {result['mean_return']:.2f} -> {out} (learning_curve.png)")
    plot_learning_curve(out / "metrics.csv", out / "learning_curve.png")
    if randomization_config is not None and randomization_config.adr:
        from randomization.adr_plot import plot_adr_ranges

        units = {name: {"scale": "x nominal", "add": "added to nominal"}.get(spec.operation, "")
                 for name, spec in randomization_config.terms.items()}
        plot_adr_ranges(out / "metrics.csv", out / "adr_ranges.png",
                        f"Automatic domain randomization on {env_id}", units=units)
    return result


def resume_run(run_dir: Path, steps: int | None = None, env_id: str | None = None,
               algo: str | None = None, progress: bool = True,
               discrete_actions: int | None = None,
               on_evaluation: EvaluationHook | None = None) -> dict:
    """Continue a run from its checkpoint exactly as if it had never stopped (same envs
    mid-episode, same generators); `steps` may extend its budget."""
    from policies.algorithms import algorithm_by_name
    from policies.plots import plot_learning_curve
    from policies.records import config_of_checkpoint, load_checkpoint
    from randomization.config import RandomizationConfig
    from randomization.envs import make_vector_env

    checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    metadata = dict(checkpoint.get("metadata", {}))
    trained_on = metadata.get("env_id")
    if env_id is not None and env_id != trained_on:
        raise ValueError(f"{run_dir} was trained on {trained_on!r}, not {env_id!r}; resume it "
                         "without --env or start a new run")
    if algo is not None and algo != checkpoint["algo"]:
        raise ValueError(f"{run_dir} was trained with {checkpoint['algo']!r}, not {algo!r}; "
                         "resume it without --algo or start a new run")
    trained_choices = metadata.get("discrete_actions")
    if discrete_actions is not None and discrete_actions != trained_choices:
        how = (f"with --discrete-actions {trained_choices}" if trained_choices is not None
               else "without --discrete-actions")
        raise ValueError(f"{run_dir} was trained {how}, not with --discrete-actions "
                         f"{discrete_actions}; resume it without --discrete-actions or start a "
                         "new run")
    if "resume" not in checkpoint:
        raise ValueError(f"{run_dir / 'checkpoint.pt'} holds no resume state (an older version "
                         "wrote it); start a new run")
    algorithm = algorithm_by_name(checkpoint["algo"])
    total = steps if steps is not None else checkpoint["config"]["total_steps"]
    if total <= checkpoint["steps"]:
        raise ValueError(f"{run_dir} already trained {checkpoint['steps']:,} steps; give --steps "
                         "above that to go on")
    config = config_of_checkpoint(algorithm.config, checkpoint, total_steps=total)
    metadata.pop("env_at_checkpoint", None)
    randomization = (RandomizationConfig.from_dict(metadata["randomization"])
                     if metadata.get("randomization") else None)
    pixels = metadata.get("pixels")
    result = algorithm.train(lambda n: make_vector_env(trained_on, n, randomization, pixels=pixels,
                                                       discrete_actions=trained_choices),
                             config, run_dir, metadata=metadata, progress=progress,
                             resume=checkpoint, on_evaluation=on_evaluation)
    plot_learning_curve(run_dir / "metrics.csv", run_dir / "learning_curve.png")
    result["line"] = (f"resumed {run_dir}: {result['steps']} steps, {result['seconds']:.1f} s in "
                      f"all, recent return {result['mean_return']:.2f}")
    return result
