"""`sim2real`: train, export, deploy and the demo, from one command line.

User mistakes (a bad id, a missing file, a contract that does not fit) end in one line on stderr
and exit code 2; set SIM2REAL_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

# Import time matters for a CLI: heavy modules (torch, mujoco) load inside the verbs that use them.

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError)


def _prepare_run_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"run dir {out} already holds files; choose another --out or "
                                  "pass --overwrite")
        shutil.rmtree(out)


def train_run(env_id: str, algo: str, steps: int, seed: int, out: Path,
              randomization: str | None, overwrite: bool = False, progress: bool = True,
              overrides: dict | None = None) -> dict:
    """Train `algo` on `env_id` into `out`; the shared path of `train` and `demo`. Settings:
    the algorithm's defaults, then those tuned for this env, then `overrides`."""
    import yaml

    from policies.algorithms import algorithm_by_name
    from policies.core import atomic_write_bytes
    from policies.plots import plot_learning_curve
    from policies.tuned import tuned_settings
    from randomization.config import load_config
    from sim.registration import check_env_id, make_vector_env, robot_of

    check_env_id(env_id)
    algorithm = algorithm_by_name(algo)
    if steps <= 0:
        raise ValueError(f"--steps must be a positive number of env steps, got {steps}")
    config_fields = algorithm.config.__dataclass_fields__
    unknown = set(overrides or {}) - set(config_fields)
    if unknown:
        raise ValueError(f"unknown {algo} setting(s) {sorted(unknown)}; known: {sorted(config_fields)}")
    randomization_config = load_config(randomization, robot_of(env_id)) if randomization else None
    _prepare_run_dir(out, overwrite)
    settings = {**tuned_settings(algo, env_id), **(overrides or {})}
    config = algorithm.config(total_steps=steps, seed=seed, **settings)
    metadata = {"env_id": env_id, "randomization":
                randomization_config.to_dict() if randomization_config else {}}
    if randomization_config is not None:
        # The ranges trained under, in the schema a user can edit and train with again.
        atomic_write_bytes(out / "randomization.yaml", yaml.safe_dump(
            randomization_config.to_dict(), sort_keys=False).encode())
    result = algorithm.train(lambda n: make_vector_env(env_id, n, randomization_config), config,
                             out, metadata=metadata, progress=progress)
    plot_learning_curve(out / "metrics.csv", out / "learning_curve.png")
    if randomization_config is not None and randomization_config.adr:
        from randomization.adr import plot_adr_ranges

        units = {name: {"scale": "x nominal", "add": "added to nominal"}.get(spec.operation, "")
                 for name, spec in randomization_config.terms.items()}
        plot_adr_ranges(out / "metrics.csv", out / "adr_ranges.png",
                        f"Automatic domain randomization on {env_id}", units=units)
    return result


def deploy_run(policy_path: Path, robot_name: str, seconds: float,
               max_episodes: int | None, seed: int):
    """Deploy an ONNX policy on a robot backend; returns the loop's report."""
    import numpy as np

    from deploy.loop import run
    from deploy.onnx_policy import OnnxPolicy
    from hardware.sim_robot import SimRobot
    from sim.catalog import make_task, robot_by_name
    from sim.task import sample_episode

    policy = OnnxPolicy(policy_path)
    if seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {seconds}")
    backend, _, name = robot_name.partition(":")
    if backend != "sim":
        raise ValueError(f"unknown robot {robot_name!r}; use 'sim' (the simulated robot the policy "
                         "was trained for) or 'sim:ROBOT' (e.g. sim:so_arm)")
    if not name:
        if policy.contract.robot is None:
            raise ValueError(f"{policy_path} was trained on {policy.contract.env_id!r}, which is "
                             "not a robot of ours; there is nothing to deploy it to")
        name = policy.contract.robot["name"]
    spec = robot_by_name(name)
    policy.contract.check(spec)  # refuse before connecting: no motion on a mismatch
    # Start where the task's episodes start (a pendulum to balance starts upright).
    task = make_task(policy.contract.task["name"], spec, policy.contract.task["config"])
    start, _, objects = sample_episode(task, np.random.default_rng(seed))
    with SimRobot(spec, initial_pose=start, scene=task.scene, objects=task.objects,
                  initial_objects=objects) as robot:
        return run(policy, robot, seconds=seconds, max_episodes=max_episodes, seed=seed)


def _print_report(report) -> None:
    summary = report.summary()
    print(f"deploy: {summary['episodes']} episodes, success rate {summary['success_rate']:.2f}, "
          f"loop {summary['loop_rate_hz']:.1f} Hz (target {summary['target_rate_hz']:.0f}), "
          f"{summary['deadline_misses']} deadline misses in {summary['cycles']} cycles, "
          f"compute p50 {summary['compute_p50_us']:.0f} us / p99 {summary['compute_p99_us']:.0f} us, "
          f"{summary['clamped_commands']} commands clamped, {summary['homings']} homings"
          + (f"; stopped early: {summary['stopped']}" if summary["stopped"] else ""))


def cmd_train(args: argparse.Namespace) -> None:
    overrides = json.loads(args.set) if args.set else None
    result = train_run(args.env, args.algo, args.steps, args.seed, Path(args.out),
                       args.randomization, args.overwrite, not args.quiet, overrides)
    print(f"trained {args.algo} on {args.env}: {result['steps']} steps in {result['seconds']:.1f} s, "
          f"recent return {result['mean_return']:.2f} -> {args.out} (learning_curve.png)")


def cmd_export(args: argparse.Namespace) -> None:
    from deploy.export import export

    path, error = export(Path(args.run_dir), Path(args.out) if args.out else None, args.check)
    print(f"exported {path}: onnxruntime matches torch to {error:.2e} on {args.check} observations")


def cmd_deploy(args: argparse.Namespace) -> None:
    report = deploy_run(Path(args.policy), args.robot, args.seconds, args.episodes, args.seed)
    _print_report(report)
    if args.json:
        print(json.dumps(report.summary()))


def cmd_envs(args: argparse.Namespace) -> None:
    from rich.console import Console
    from rich.table import Table

    from sim.registration import describe_envs

    rows = describe_envs()
    if args.json:
        print(json.dumps(rows))
        return
    table = Table(title="environments")
    for column in ("id", "suite", "observation", "action"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["id"], row["suite"], str(row["observation_size"]),
                      f"{row['action_size']} {row['action']}")
    Console().print(table)


def cmd_demo(args: argparse.Namespace) -> None:
    from sim2real.demo import run_demo

    ok = run_demo(Path(args.out), steps=args.steps, episodes=args.episodes, seed=args.seed)
    if not ok:
        sys.exit(1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sim2real", description=(
        "Train robot policies in randomized MuJoCo, export them to ONNX with a contract, "
        "and run them on the robot."))
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    train = verbs.add_parser("train", help="train a policy on an env")
    train.add_argument("--env", required=True, help="env id, e.g. sim2real/ArmReach-v0")
    train.add_argument("--algo", default="ppo", help="algorithm (ppo)")
    train.add_argument("--steps", type=int, required=True, help="env steps to train for")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", required=True, help="run dir for checkpoint, metrics, run.json")
    train.add_argument("--randomization", default=None,
                       help="preset name (none, default) or YAML file of domain randomization")
    train.add_argument("--set", default=None,
                       help='algorithm settings as JSON, e.g. \'{"num_envs": 8}\'')
    train.add_argument("--overwrite", action="store_true", help="replace an existing run dir")
    train.add_argument("--quiet", action="store_true", help="no progress display")
    train.set_defaults(func=cmd_train)

    export = verbs.add_parser("export", help="export a run to ONNX with its contract")
    export.add_argument("run_dir")
    export.add_argument("--out", default=None, help="ONNX path (default RUN_DIR/policy.onnx)")
    export.add_argument("--check", type=int, default=1000,
                        help="observations on which onnxruntime must match torch to 1e-5")
    export.set_defaults(func=cmd_export)

    deploy = verbs.add_parser("deploy", help="run an ONNX policy in a fixed-rate loop on a robot")
    deploy.add_argument("policy", help="policy.onnx written by `sim2real export`")
    deploy.add_argument("--robot", default="sim",
                        help="sim (simulated robot of the contract) or sim:ROBOT")
    deploy.add_argument("--seconds", type=float, default=30.0)
    deploy.add_argument("--episodes", type=int, default=None, help="stop after this many episodes")
    deploy.add_argument("--seed", type=int, default=0, help="seed of the goals")
    deploy.add_argument("--json", action="store_true", help="also print the report as JSON")
    deploy.set_defaults(func=cmd_deploy)

    envs = verbs.add_parser("envs", help="list every env id with its observation and action sizes")
    envs.add_argument("--json", action="store_true")
    envs.set_defaults(func=cmd_envs)

    demo = verbs.add_parser("demo", help="train, export and deploy the reach arm end to end")
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--steps", type=int, default=None, help="training steps (default tuned)")
    demo.add_argument("--episodes", type=int, default=100, help="deploy episodes")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from deploy.contract import ContractError

    try:
        args.func(args)
    except (*USER_ERRORS, ContractError, json.JSONDecodeError) as error:
        if os.environ.get("SIM2REAL_DEBUG"):
            raise
        print(f"sim2real {args.verb}: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"sim2real {args.verb}: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
