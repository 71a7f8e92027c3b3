"""`sim2real`: train, export, deploy and the demo, from one command line.

User mistakes (a bad id, a missing file, a contract that does not fit) end in one line on stderr
and exit code 2; set SIM2REAL_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path

# Import time matters for a CLI: heavy modules (torch, mujoco) load inside the verbs that use them.

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, ConnectionError)


def _prepare_run_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"run dir {out} already holds files; choose another --out or "
                                  "pass --overwrite")
        shutil.rmtree(out)


def train_run(env_id: str, algo: str, steps: int, seed: int, out: Path,
              randomization: str | None, overwrite: bool = False, progress: bool = True,
              overrides: dict | None = None, pixels: int | None = None,
              discrete_actions: int | None = None) -> dict:
    """Train `algo` on `env_id` into `out`; the shared path of `train` and `demo`. Settings:
    the algorithm's defaults, then those tuned for this env, then `overrides`. `pixels`: observe
    `pixels` x `pixels` camera images beside the state (PPO only). `discrete_actions`: that many
    choices per action dimension instead of continuous actions (DQN only)."""
    import yaml

    from policies.algorithms import algorithm_by_name
    from policies.plots import plot_learning_curve
    from policies.records import atomic_write_bytes
    from policies.tuned import tuned_settings
    from randomization.config import load_config
    from sim.registration import check_env_id, make_vector_env, robot_of

    check_env_id(env_id)
    algorithm = algorithm_by_name(algo)
    if steps <= 0:
        raise ValueError(f"--steps must be a positive number of env steps, got {steps}")
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
        metadata=metadata, progress=progress)
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
               discrete_actions: int | None = None) -> dict:
    """Continue a run from its checkpoint exactly as if it had never stopped (same envs
    mid-episode, same generators); `steps` may extend its budget."""
    from deploy.export import load_run
    from policies.algorithms import algorithm_by_name
    from policies.plots import plot_learning_curve
    from policies.records import config_of_checkpoint
    from randomization.config import RandomizationConfig
    from sim.registration import make_vector_env

    checkpoint, _ = load_run(run_dir)
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
                             resume=checkpoint)
    plot_learning_curve(run_dir / "metrics.csv", run_dir / "learning_curve.png")
    return result


def evaluate_policy(source: Path, env_id: str | None, episodes: int, seed: int = 0) -> dict:
    """Deterministic episodes of a run dir's policy (torch) or of an ONNX file (onnxruntime,
    as on the robot): mean and spread of the return, success rate, episode length."""
    from evaluation.episodes import load_policy, run_episodes
    from sim.registration import check_env_id, make_env

    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    policy = load_policy(source)
    env_id = env_id or policy.trained_on
    if env_id is None:
        raise ValueError(f"{source} does not say which env it was trained on; give --env")
    check_env_id(env_id)
    env = make_env(env_id, pixels=policy.image_shape[0] if policy.image_shape else None)
    try:
        return {"policy": str(source), "env": env_id, **run_episodes(env, policy.act, episodes,
                                                                      seed)}
    finally:
        env.close()


def deploy_run(policy_path: Path, robot_name: str, seconds: float,
               max_episodes: int | None, seed: int, safety: Path | None = None,
               log: Path | None = None, estop_file: Path | None = None, estop_key: bool = False,
               realtime_priority: int | None = None, cpu: int | None = None):
    """Deploy an ONNX policy on a robot backend; returns the loop's report."""
    from deploy.loop import run
    from deploy.onnx_policy import OnnxPolicy
    from deploy.stop_signals import StopSignals
    from deploy.supervisor import SafetyConfig

    policy = OnnxPolicy(policy_path)
    if seconds <= 0:
        raise ValueError(f"--seconds must be > 0, got {seconds}")
    safety_config = SafetyConfig.from_dict(_read_settings(safety)) if safety else SafetyConfig()
    stops = StopSignals(estop_file, estop_key)  # an engaged e-stop refuses before connecting
    robot = connect_robot(robot_name, policy, seed)
    with robot, stops:
        return run(policy, robot, seconds=seconds, max_episodes=max_episodes, seed=seed,
                   safety=safety_config, log=log, stops=stops,
                   realtime_priority=realtime_priority, cpu=cpu)


AUTO_PORTS = ("/dev/ttyUSB0", "/dev/ttyACM0")


def connect_robot(robot_name: str, policy, seed: int):
    """The robot backend `--robot` names, not yet connected (a serial device is, to check it is
    the robot the contract names): `sim`, `sim:ROBOT`, `serial:URL` (a port, a pty,
    socket://HOST:PORT) or `auto[:URL]` (the serial device if one answers, else the simulated
    robot, with a warning)."""
    import numpy as np

    from hardware.serial_robot import DeviceError, SerialRobot
    from hardware.sim_robot import SimRobot
    from sim.catalog import make_task, robot_by_name
    from sim.task import sample_episode

    backend, _, where = robot_name.partition(":")
    if backend not in ("sim", "serial", "auto"):
        raise ValueError(f"unknown robot {robot_name!r}; use sim, sim:ROBOT (e.g. sim:so_arm), "
                         "serial:URL (serial:///dev/ttyUSB0, serial:socket://127.0.0.1:5000) "
                         "or auto[:URL]")
    name = where if backend == "sim" and where else None
    if name is None:
        if policy.contract.robot is None:
            raise ValueError(f"{policy.path} was trained on {policy.contract.env_id!r}, which is "
                             "not a robot of ours; there is nothing to deploy it to")
        name = policy.contract.robot["name"]
    spec = robot_by_name(name)
    policy.contract.check(spec)  # refuse before connecting: no motion on a mismatch
    url = where[2:] if where.startswith("//") else where  # serial:///dev/x -> /dev/x
    if backend in ("serial", "auto"):
        candidates = [url] if url else [p for p in AUTO_PORTS if Path(p).exists()]
        if backend == "serial" and not url:
            raise ValueError("--robot serial: needs a port, e.g. serial:///dev/ttyUSB0")
        problems = []
        for candidate in candidates:
            robot = SerialRobot(candidate, spec)
            try:
                robot.connect()  # handshake: the device must be the robot the contract names
                return robot
            except DeviceError as error:
                if backend == "serial":
                    raise
                problems.append(str(error))
        print(f"sim2real deploy: WARNING: no sim2real device answered "
              f"({'; '.join(problems) or 'no serial port found: ' + ', '.join(AUTO_PORTS)}); "
              f"falling back to the SIMULATED {name}", file=sys.stderr)
    # Start where the task's episodes start (a pendulum to balance starts upright).
    task = make_task(policy.contract.task["name"], spec, policy.contract.task["config"])
    start, _, objects = sample_episode(task, np.random.default_rng(seed))
    return SimRobot(spec, initial_pose=start, scene=task.scene, objects=task.objects,
                    initial_objects=objects)


def _read_settings(path: Path) -> dict:
    """A YAML or JSON file of settings (a mapping)."""
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"settings file {path} does not exist")
    values = yaml.safe_load(path.read_text()) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of setting: value, got {type(values).__name__}")
    return values


def _print_report(report) -> None:
    summary = report.summary()
    interventions = ", ".join(f"{kind} {count}" for kind, count in
                              summary["interventions"].items() if count) or "none"
    print(f"deploy: {summary['episodes']} episodes, success rate {summary['success_rate']:.2f}, "
          f"loop {summary['loop_rate_hz']:.1f} Hz (target {summary['target_rate_hz']:.0f}), "
          f"{summary['deadline_misses']} deadline misses in {summary['cycles']} cycles, "
          f"jitter p99 {summary['jitter_p99_us']:.0f} us, "
          f"compute p50 {summary['compute_p50_us']:.0f} us / p99 {summary['compute_p99_us']:.0f} us, "
          f"supervisor interventions: {interventions}, {summary['homings']} homings; "
          f"{summary['realtime']}"
          + (f"; log {summary['log']}" if summary["log"] else "")
          + (f"; link: {_link_text(summary['link'])}" if summary["link"] else "")
          + (f"; stopped early: {summary['stopped']}" if summary["stopped"] else ""))


def _link_text(link: dict) -> str:
    faults = ", ".join(f"{k} {v}" for k, v in link["faults"].items()) or "none"
    return (f"{link['frames_sent']} frames sent, {link['frames_received']} received, "
            f"{link['crc_errors']} CRC errors, {link['timeouts']} timeouts, "
            f"{link['dropped_frames']} dropped, {link['late_frames']} late, faults: {faults}, "
            f"{link['reconnects']} reconnects, round trip p50 {link['round_trip_p50_us']} us / "
            f"p99 {link['round_trip_p99_us']} us")


def cmd_emulate(args: argparse.Namespace) -> None:
    import numpy as np

    from hardware.emulator import DeviceEmulator, load_physics
    from hardware.faults import WireFaults
    from hardware.transports import PtyTransport, TcpTransport
    from sim.catalog import robot_by_name

    spec = robot_by_name(args.robot)
    faults = dict(_read_settings(Path(args.faults))) if args.faults else {}
    for key in ("corrupt_byte_rate", "drop_frame_rate", "latency_ms", "jitter_ms", "stale_rate",
                "disconnect_at", "seed"):
        if getattr(args, key) is not None:
            faults[key] = getattr(args, key)
    if args.reset_at:
        faults["reset_at"] = tuple(args.reset_at)
    wire_faults = WireFaults.from_dict(faults)
    physics = load_physics(Path(args.physics)) if args.physics else None
    pose = np.asarray(args.pose, dtype=float) if args.pose else None
    if pose is not None and pose.shape != (spec.num_joints,):
        raise ValueError(f"--pose needs {spec.num_joints} joint positions for {spec.name}, "
                         f"got {len(pose)}")
    transport = TcpTransport(args.tcp) if args.tcp is not None else PtyTransport()
    emulator = DeviceEmulator(spec, transport, args.watchdog_ms, physics, args.baud, wire_faults,
                              pose)
    print(f"emulating {spec.name} on {transport.name}", flush=True)
    if emulator.physics_applied or emulator.command_delay:
        print(f"physics pinned: {emulator.physics_applied}, command delay "
              f"{emulator.command_delay * 1e3:.1f} ms", flush=True)
    if wire_faults.active:
        print(f"wire faults: {faults}", flush=True)
    print(f"connect with: sim2real deploy POLICY --robot serial:{transport.name}", flush=True)
    def terminate(number: int, frame: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops it as Ctrl-C does: counters printed, port closed

    signal.signal(signal.SIGTERM, terminate)
    try:
        counters = emulator.serve(seconds=args.seconds)
    except KeyboardInterrupt:
        counters = emulator.counters
    print("emulator stopped: " + json.dumps({**dataclasses.asdict(counters),
                                             "injected": wire_faults.counts}), flush=True)


def cmd_train(args: argparse.Namespace) -> None:
    if args.resume:
        result = resume_run(Path(args.resume), args.steps, args.env, args.algo, not args.quiet,
                            args.discrete_actions)
        print(f"resumed {args.resume}: {result['steps']} steps, {result['seconds']:.1f} s in "
              f"all, recent return {result['mean_return']:.2f}")
        return
    missing = [flag for flag, value in (("--env", args.env), ("--steps", args.steps),
                                        ("--out", args.out)) if value is None]
    if missing:
        raise ValueError(f"train needs {', '.join(missing)} (or --resume RUN_DIR)")
    overrides = json.loads(args.set) if args.set else None
    algo = args.algo or "ppo"
    result = train_run(args.env, algo, args.steps, args.seed, Path(args.out),
                       args.randomization, args.overwrite, not args.quiet, overrides, args.pixels,
                       args.discrete_actions)
    print(f"trained {algo} on {args.env}: {result['steps']} steps in {result['seconds']:.1f} s, "
          f"recent return {result['mean_return']:.2f} -> {args.out} (learning_curve.png)")


def cmd_eval(args: argparse.Namespace) -> None:
    report = evaluate_policy(Path(args.policy), args.env, args.episodes, args.seed)
    if args.json:
        print(json.dumps(report))
        return
    success = "" if report["success_rate"] is None else f", success {report['success_rate']:.0%}"
    print(f"{report['policy']} on {report['env']}: return {report['mean_return']:.2f} +- "
          f"{report['std_return']:.2f} over {report['episodes']} episodes{success}, "
          f"{report['mean_length']:.0f} steps each")


def cmd_export(args: argparse.Namespace) -> None:
    from deploy.export import export

    result = export(Path(args.run_dir), Path(args.out) if args.out else None, args.check,
                    "best" if args.best else "checkpoint")
    print(f"exported {result.path}: onnxruntime matches torch to {result.onnx_error:.2e} on "
          f"{args.check} observations; the deploy runtime's commands match the training env's "
          f"to {result.pipeline_error:.2e} over {result.pipeline_steps} recorded steps")


def cmd_deploy(args: argparse.Namespace) -> None:
    log = None
    if not args.no_log:
        log = Path(args.log) if args.log else (
            Path(args.policy).parent / f"deploy-{time.strftime('%Y%m%d-%H%M%S')}.s2rlog")
    report = deploy_run(Path(args.policy), args.robot, args.seconds, args.episodes, args.seed,
                        Path(args.safety) if args.safety else None, log,
                        Path(args.estop_file) if args.estop_file else None, args.estop_key,
                        args.rt_priority, args.cpu)
    _print_report(report)
    if args.json:
        print(json.dumps(report.summary()), flush=True)
    if report.stopped and not report.stopped.startswith("the next episode"):
        print(f"sim2real deploy: stopped: {report.stopped}", file=sys.stderr)
        if report.stopped.startswith("watchdog"):
            sys.exit(3)


def cmd_log_show(args: argparse.Namespace) -> None:
    from deploy.log_summary import plot_log, summarize
    from deploy.telemetry import read_log

    log = read_log(Path(args.log))
    summary = summarize(log)
    plot = plot_log(log, Path(args.plot) if args.plot else Path(args.log).with_suffix(".png"))
    summary["plot"] = str(plot)
    if args.json:
        print(json.dumps(summary))
        return
    for key, value in summary.items():
        print(f"{key:>22}: {value}")


def cmd_robustness(args: argparse.Namespace) -> None:
    from evaluation.robustness import Axis, robustness_map

    if not args.vary:
        raise ValueError("robustness needs at least one --vary TERM=LOW:HIGH:POINTS, "
                         "e.g. --vary mass=0.5:2.0:7")
    axes = [Axis.parse(text) for text in args.vary]
    result = robustness_map([Path(p) for p in args.policies], args.env, axes, args.episodes,
                            Path(args.out), args.seed, progress=not args.quiet)
    print(result["summary"].read_text())
    print(f"wrote {result['csv']}, {', '.join(str(p) for p in result['pictures'])}, "
          f"{result['summary']}")


def cmd_plot(args: argparse.Namespace) -> None:
    from evaluation.curves import plot_runs

    out = plot_runs([Path(r) for r in args.runs], Path(args.out))
    print(f"wrote {out}")


def cmd_video(args: argparse.Namespace) -> None:
    from evaluation.video import record_video

    result = record_video(Path(args.policy), args.env, Path(args.out), args.episodes, args.seed,
                          args.montage, args.randomization, args.size)
    what = f"a montage of {result['domains']} randomized domains" if result["domains"] else \
        "the nominal env"
    print(f"wrote {result['path']}: {result['frames']} frames at {result['fps']} fps, {what}")


def cmd_sysid(args: argparse.Namespace) -> None:
    from deploy.telemetry import read_log
    from evaluation.sysid import fit_log, plot_fit, report, suggested_config, write_config

    log = read_log(Path(args.log))
    if args.robot and log.header.get("robot") != args.robot:
        raise ValueError(f"{args.log} is a log of {log.header.get('robot')!r}, not of "
                         f"{args.robot!r}; fit it without --robot or give the right log")
    fit = fit_log(log, tuple(args.terms) if args.terms else None, args.max_delay)
    summary = report(log, fit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = write_config(suggested_config(fit), out / "suggested_randomization.yaml")
    picture = plot_fit(log, fit, out / "sysid_fit.png")
    summary |= {"suggested_config": str(config), "plot": str(picture)}
    (out / "sysid.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
    if args.json:
        print(json.dumps(summary, default=float))
        return
    print(f"{summary['robot']}: {summary['cycles']} readings; replay error "
          f"{summary['nominal_rms_error_rad'] * 1e3:.2f} mrad with nominal physics, "
          f"{summary['rms_error_rad'] * 1e3:.2f} mrad at the fit")
    for term, row in summary["parameters"].items():
        unit = "control steps" if term == "action_delay" else "x nominal"
        print(f"  {term:>16}: {row['value']:.3f} +- {row['standard_error']:.3f} {unit}  "
              f"({row['verdict']})")
    print("  (+- : statistical standard error; it does not cover model mismatch)")
    print(f"wrote {config}, {picture}, {out / 'sysid.json'}")


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
    train.add_argument("--env", help="env id, e.g. sim2real/ArmReach-v0")
    train.add_argument("--algo", default=None,
                       help="ppo (default), sac, td3, ddpg, a2c, trpo, reinforce or dqn")
    train.add_argument("--steps", type=int, help="env steps to train for")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--out", help="run dir for checkpoint, metrics, run.json")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue this run from its checkpoint, exactly (--steps extends it)")
    train.add_argument("--randomization", default=None,
                       help="preset name (none, default) or YAML file of domain randomization")
    train.add_argument("--pixels", type=int, default=None, metavar="N",
                       help="observe N x N camera images beside the state, through a CNN "
                            "(ppo, our envs; e.g. 84)")
    train.add_argument("--discrete-actions", type=int, default=None, metavar="N",
                       help="N evenly spaced choices in [-1, 1] per action dimension instead of "
                            "continuous actions (dqn on our robots; e.g. 5); the exported policy "
                            "still outputs continuous actions")
    train.add_argument("--set", default=None,
                       help='algorithm settings as JSON, e.g. \'{"num_envs": 8}\'')
    train.add_argument("--overwrite", action="store_true", help="replace an existing run dir")
    train.add_argument("--quiet", action="store_true", help="no progress display")
    train.set_defaults(func=cmd_train)

    evaluate = verbs.add_parser("eval", help="evaluate a run or an ONNX policy")
    evaluate.add_argument("policy", help="run dir or policy.onnx")
    evaluate.add_argument("--env", default=None, help="env id (default: the one it trained on)")
    evaluate.add_argument("--episodes", type=int, default=20)
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--json", action="store_true", help="one JSON line")
    evaluate.set_defaults(func=cmd_eval)

    export = verbs.add_parser("export", help="export a run to ONNX with its contract")
    export.add_argument("run_dir")
    export.add_argument("--out", default=None, help="ONNX path (default RUN_DIR/policy.onnx)")
    export.add_argument("--check", type=int, default=1000,
                        help="observations on which onnxruntime must match torch to 1e-5")
    export.add_argument("--best", action="store_true",
                        help="export best.pt (the best periodic evaluation), not the last checkpoint")
    export.set_defaults(func=cmd_export)

    deploy = verbs.add_parser("deploy", help="run an ONNX policy in a fixed-rate loop on a robot")
    deploy.add_argument("policy", help="policy.onnx written by `sim2real export`")
    deploy.add_argument("--robot", default="sim",
                        help="sim (the simulated robot of the contract), sim:ROBOT, serial:URL "
                             "(serial:///dev/ttyUSB0, serial:socket://127.0.0.1:PORT) or "
                             "auto[:URL] (the serial device if one answers, else sim)")
    deploy.add_argument("--seconds", type=float, default=30.0)
    deploy.add_argument("--episodes", type=int, default=None, help="stop after this many episodes")
    deploy.add_argument("--seed", type=int, default=0, help="seed of the goals")
    deploy.add_argument("--json", action="store_true", help="also print the report as JSON")
    deploy.add_argument("--safety", default=None, metavar="FILE",
                        help="YAML/JSON of safety settings (deploy/supervisor.py SafetyConfig)")
    deploy.add_argument("--log", default=None, metavar="FILE",
                        help="telemetry log (default: deploy-TIME.s2rlog beside the policy)")
    deploy.add_argument("--no-log", action="store_true", help="write no telemetry log")
    deploy.add_argument("--estop-file", default=None, metavar="PATH",
                        help="e-stop when this file appears (e.g. touch /tmp/estop)")
    deploy.add_argument("--estop-key", action="store_true",
                        help="e-stop on any key pressed in this terminal")
    deploy.add_argument("--rt-priority", type=int, default=None, metavar="N",
                        help="ask for SCHED_FIFO priority N (1-99); normal scheduling if refused")
    deploy.add_argument("--cpu", type=int, default=None, metavar="N",
                        help="pin the loop to CPU N where the OS allows")
    deploy.set_defaults(func=cmd_deploy)

    emulate = verbs.add_parser("emulate", help="emulate a robot's serial device (HIL backend)")
    emulate.add_argument("robot", help="robot name, e.g. so_arm or furuta")
    where = emulate.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="open a pseudo-terminal (default)")
    where.add_argument("--tcp", type=int, default=None, metavar="PORT",
                       help="listen on 127.0.0.1:PORT instead (0: any free port)")
    emulate.add_argument("--physics", default=None, metavar="FILE",
                         help="randomization-config YAML with each value pinned (low == high): "
                              "the robot to emulate, e.g. mass: {low: 1.3, high: 1.3}")
    emulate.add_argument("--baud", type=int, default=None,
                         help="simulate the wire time of this baud rate (a pty has none)")
    emulate.add_argument("--watchdog-ms", type=float, default=100.0,
                         help="the device holds when no command arrives for this long")
    emulate.add_argument("--faults", default=None, metavar="FILE",
                         help="YAML of wire faults (hardware/faults.py WireFaults)")
    emulate.add_argument("--corrupt-byte-rate", type=float, default=None)
    emulate.add_argument("--drop-frame-rate", type=float, default=None)
    emulate.add_argument("--latency-ms", type=float, default=None)
    emulate.add_argument("--jitter-ms", type=float, default=None)
    emulate.add_argument("--stale-rate", type=float, default=None)
    emulate.add_argument("--reset-at", type=float, nargs="+", default=None, metavar="S")
    emulate.add_argument("--disconnect-at", type=float, default=None, metavar="S")
    emulate.add_argument("--seed", type=int, default=None, help="seed of the injected faults")
    emulate.add_argument("--pose", type=float, nargs="+", default=None,
                         help="joint positions to start at (default: the robot's default pose)")
    emulate.add_argument("--seconds", type=float, default=None, help="stop after (default: never)")
    emulate.set_defaults(func=cmd_emulate)

    robustness = verbs.add_parser(
        "robustness", help="evaluate policies over a grid of physical parameters")
    robustness.add_argument("policies", nargs="+", help="run dirs or policy.onnx files")
    robustness.add_argument("--env", default=None, help="env id (default: the first's own)")
    robustness.add_argument("--vary", action="append", default=[], metavar="TERM=LOW:HIGH:N",
                            help="a randomization term pinned at N values from LOW to HIGH "
                                 "(or TERM=V1,V2,...); repeat for a grid")
    robustness.add_argument("--episodes", type=int, default=20, help="episodes per cell")
    robustness.add_argument("--out", default="robustness", help="folder for CSV, PNGs, summary")
    robustness.add_argument("--seed", type=int, default=0)
    robustness.add_argument("--quiet", action="store_true", help="no progress display")
    robustness.set_defaults(func=cmd_robustness)

    plot = verbs.add_parser("plot", help="learning curves of runs, mean and spread over seeds")
    plot.add_argument("runs", nargs="+", help="run dirs (runs differing only in seed are grouped)")
    plot.add_argument("--out", default="learning_curves.png")
    plot.set_defaults(func=cmd_plot)

    video = verbs.add_parser("video", help="render a policy to MP4 or GIF")
    video.add_argument("policy", help="run dir or policy.onnx")
    video.add_argument("--env", default=None, help="env id (default: the one it trained on)")
    video.add_argument("--out", default="policy.mp4", help=".mp4 or .gif")
    video.add_argument("--episodes", type=int, default=1)
    video.add_argument("--seed", type=int, default=0)
    video.add_argument("--montage", type=int, default=0, metavar="N",
                       help="N randomized domains side by side instead of the nominal env")
    video.add_argument("--randomization", default="default",
                       help="preset or YAML the montage draws from")
    video.add_argument("--size", type=int, default=240, help="pixels per side of each view")
    video.set_defaults(func=cmd_video)

    sysid = verbs.add_parser("sysid", help="fit physical parameters from a deploy telemetry log")
    sysid.add_argument("log", help="a .s2rlog written by `sim2real deploy`")
    sysid.add_argument("--terms", nargs="+", default=None,
                       help="randomization terms to fit as scales (default: mass and "
                            "actuator_kp for servos, mass and motor_resistance for motors)")
    sysid.add_argument("--max-delay", type=int, default=4, help="largest delay tried, steps")
    sysid.add_argument("--robot", default=None, help="refuse a log of another robot")
    sysid.add_argument("--out", default="sysid", help="folder for the config, plot and JSON")
    sysid.add_argument("--json", action="store_true")
    sysid.set_defaults(func=cmd_sysid)

    log = verbs.add_parser("log", help="read a deploy telemetry log")
    log_verbs = log.add_subparsers(dest="log_verb", required=True)
    show = log_verbs.add_parser("show", help="print a summary and plot the joints")
    show.add_argument("log", help="a .s2rlog written by `sim2real deploy`")
    show.add_argument("--plot", default=None, metavar="PNG",
                      help="where to draw the joints (default: LOG.png)")
    show.add_argument("--json", action="store_true", help="print the summary as JSON")
    show.set_defaults(func=cmd_log_show)

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
