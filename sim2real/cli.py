"""`sim2real`: train, export, deploy and the demo, from one command line. It only parses
arguments, calls one library function per verb and prints: the work lives in the packages
(sim2real/runs.py trains, evaluation/ evaluates, deploy/ exports and deploys, hardware/ opens and
emulates robots). User mistakes (a bad id, a missing file, a contract that does not fit) end in
one line on stderr and exit code 2 (sim2real/parsing.py); set SIM2REAL_DEBUG=1 to see the
traceback."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from sim2real.parsing import (
    USER_ERRORS,
    OneLineParser,
    frame_size,
    one_line,
    seed_number,
    show_defaults,
)

# Import time matters for a CLI: heavy modules (torch, mujoco) load inside the verbs that use them.
FAULT_FLAGS = ("corrupt_byte_rate", "drop_frame_rate", "latency_ms", "jitter_ms", "stale_rate",
               "reset_at", "disconnect_at", "seed")


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


def cmd_train(args: argparse.Namespace) -> None:
    from sim2real.runs import default_randomization, resume_run, settings_from_json, train_run

    if args.resume:
        print(resume_run(Path(args.resume), args.steps, args.env, args.algo, not args.quiet,
                         args.discrete_actions)["line"])
        return
    if missing := [f"--{flag}" for flag in ("env", "steps", "out") if getattr(args, flag) is None]:
        raise ValueError(f"train needs {', '.join(missing)} (or --resume RUN_DIR)")
    print(train_run(args.env, args.algo or "ppo", args.steps, args.seed, Path(args.out),
                    args.randomization or default_randomization(args.env), args.overwrite,
                    not args.quiet, settings_from_json(args.set), args.pixels,
                    args.discrete_actions)["line"])


def cmd_eval(args: argparse.Namespace) -> None:
    from evaluation.episodes import evaluate_policy, evaluation_line

    report = evaluate_policy(Path(args.policy), args.env, args.episodes, args.seed)
    print(json.dumps(report) if args.json else evaluation_line(report))


def cmd_export(args: argparse.Namespace) -> None:
    from deploy.export import export

    print(export(Path(args.run_dir), _path(args.out), args.check,
                 "best" if args.best else "checkpoint").describe(args.check))


def cmd_deploy(args: argparse.Namespace) -> None:
    from deploy.on_robot import after_report, default_log_path, deploy_on_robot, report_line

    log = None if args.no_log else _path(args.log) or default_log_path(Path(args.policy))
    report = deploy_on_robot(Path(args.policy), args.robot, args.seconds, args.episodes,
                             args.seed, _path(args.safety), log, _path(args.estop_file),
                             args.estop_key, args.rt_priority, args.cpu, _path(args.calibration),
                             camera_url=args.camera,
                             camera_calibration=_path(args.camera_calibration))
    print(report_line(report))
    if args.json:
        print(json.dumps(report.summary()), flush=True)
    lines, code = after_report(report)
    for line in lines:
        print(f"sim2real deploy: {line}", file=sys.stderr)
    if code:
        sys.exit(code)


def cmd_emulate(args: argparse.Namespace) -> None:
    from hardware.emulate import (
        banner,
        emulator_for,
        plug_on_enter,
        serve_until_stopped,
        stopped_summary,
        table_scene,
    )
    from hardware.emulated_camera import serve_camera
    from hardware.faults import WireFaults

    faults = WireFaults.from_file_and_flags(_path(args.faults),
                                            {key: getattr(args, key) for key in FAULT_FLAGS})
    emulator = emulator_for(args.robot, args.watchdog_ms, args.tcp, _path(args.physics),
                            args.baud, faults, args.pose, args.bus, args.one_at_a_time, args.catch,
                            _path(args.firmware),
                            table_scene(args.scene, args.robot, args.seed or 0)
                            if args.scene else None)
    camera = (serve_camera(emulator, args.camera_port, args.camera_size, args.camera_fps)
              if args.camera_port is not None else None)
    print("\n".join(banner(emulator, args.bus, faults.settings() if faults.active else None,
                           camera)), flush=True)
    if args.one_at_a_time:
        plug_on_enter(emulator, sys.stdin.fileno(), lambda line: print(line, flush=True))
    try:
        serve_until_stopped(emulator, args.seconds)
    finally:
        if camera is not None:
            camera.close()
    print("emulator stopped: " + json.dumps(stopped_summary(emulator, faults.counts)), flush=True)


def cmd_calibrate_camera(args: argparse.Namespace) -> None:
    from deploy.camera_calibration import calibrate
    from hardware.camera import CameraStream

    out = Path(args.out)
    with CameraStream(args.camera) as camera:
        calibration = calibrate(camera, centre=tuple(args.sheet_at), yaw=args.sheet_yaw,
                                views=args.views, timeout=args.timeout,
                                say=lambda line: print(line, flush=True))
    calibration.save(out)
    print(f"wrote {out}: {calibration.image_size[0]}x{calibration.image_size[1]}, camera at "
          f"{[round(float(v), 3) for v in calibration.position]} m; deploy with --camera "
          f"{args.camera} "
          f"--camera-calibration {out}")
    if args.json:
        print(json.dumps(calibration.to_json()))


def cmd_firmware_header(args: argparse.Namespace) -> None:
    from hardware.firmware import firmware_header
    from sim.catalog import robot_by_name

    text = firmware_header(robot_by_name(args.robot), args.watchdog_ms)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text, end="")


def cmd_firmware_build(args: argparse.Namespace) -> None:
    from hardware.firmware import build_host_firmware
    from sim.catalog import robot_by_name

    out = Path(args.out or f"build/firmware/{args.robot}")
    library = build_host_firmware(robot_by_name(args.robot), out, args.watchdog_ms)
    print(f"built {library}; run it with: sim2real emulate {args.robot} --firmware {library}")


def cmd_setup_motors(args: argparse.Namespace) -> None:
    from hardware.backends import bus_port
    from hardware.feetech.calibration import setup_motors
    from sim.catalog import robot_by_name

    port, spec = bus_port(args.bus), robot_by_name(args.robot)
    print(f"{spec.name}: servo IDs {setup_motors(port, spec)} at 1,000,000 baud on {port}")


def cmd_calibrate(args: argparse.Namespace) -> None:
    from hardware.backends import bus_port
    from hardware.feetech.calibration import calibrate, default_path, import_lerobot_to_bus
    from sim.catalog import robot_by_name

    port, spec = bus_port(args.bus), robot_by_name(args.robot)
    out = _path(args.out) or default_path(spec.name)
    if args.from_lerobot:
        import_lerobot_to_bus(Path(args.from_lerobot), port, spec, out)
    else:
        calibrate(port, spec, out)
    print(f"calibrated {spec.name} on {port}: wrote {out} and the servos' offsets and limits")


def cmd_log_show(args: argparse.Namespace) -> None:
    from deploy.log_summary import show_log, summary_text

    summary = show_log(Path(args.log), _path(args.plot))
    print(json.dumps(summary) if args.json else summary_text(summary))


def cmd_log_convert(args: argparse.Namespace) -> None:
    from deploy.loop import TELEMETRY_STREAMS
    from deploy.telemetry import read_log, write_as_mcap

    source = Path(args.log)
    out = _path(args.out) or source.with_suffix(".mcap")
    if out.resolve() == source.resolve():
        raise ValueError(f"--out {out} is the log itself: give another file")
    log = read_log(source)
    write_as_mcap(log, out, TELEMETRY_STREAMS)
    print(f"wrote {out}: {log.cycles} cycles and {len(log.events)} events as MCAP")


def cmd_robustness(args: argparse.Namespace) -> None:
    from evaluation.robustness import Axis, in_this_process, robustness_map

    run_jobs = in_this_process
    if args.ray is not None:
        from sim2real.cluster import on_ray

        run_jobs = on_ray(args.ray or None)
    print(robustness_map([Path(p) for p in args.policies], args.env,
                         [Axis.parse(text) for text in args.vary], args.episodes,
                         _path(args.out), args.seed, progress=not args.quiet,
                         run_jobs=run_jobs)["text"])


def cmd_sweep(args: argparse.Namespace) -> None:
    import shutil

    from sim2real.sweep import run_on_ray, run_serially
    from sim2real.sweep_file import load_sweep

    if args.serial and args.ray:
        raise ValueError(f"--serial trains here, without Ray; drop --ray {args.ray} or --serial")
    plan = load_sweep(Path(args.sweep), args.cpus_per_trial)
    out = _path(args.out) or Path("sweeps") / Path(args.sweep).stem
    if args.overwrite and out.exists():
        shutil.rmtree(out)
    if args.serial:
        summary = run_serially(plan, out, progress=not args.quiet)
    else:
        summary = run_on_ray(plan, out, args.ray, progress=not args.quiet)
    print(summary["text"])
    if failed := [row["trial"] for row in summary["rows"] if row["status"].startswith("failed")]:
        print(f"sim2real sweep: {len(failed)} trial(s) failed: {', '.join(failed)}; why: "
              f"{summary['markdown']}", file=sys.stderr)
        sys.exit(1)


def cmd_plot(args: argparse.Namespace) -> None:
    from evaluation.curves import plot_runs

    print(f"wrote {plot_runs([Path(r) for r in args.runs], _path(args.out))}")


def cmd_video(args: argparse.Namespace) -> None:
    from evaluation.video import record_video

    print(record_video(Path(args.policy), args.env, _path(args.out), args.episodes, args.seed,
                       args.montage, args.randomization, args.size)["line"])


def cmd_sysid(args: argparse.Namespace) -> None:
    from evaluation.sysid import identify, summary_lines

    summary = identify(Path(args.log), _path(args.out), tuple(args.terms) if args.terms else None,
                       args.max_delay, args.robot)
    print(json.dumps(summary, default=float) if args.json else "\n".join([
        *summary_lines(summary), f"wrote {summary['suggested_config']}, {summary['plot']}, "
        f"{Path(summary['plot']).parent / 'sysid.json'}"]))


def cmd_adapt(args: argparse.Namespace) -> None:
    from sim2real.adapt import adapt

    print("\n".join(adapt(Path(args.log), Path(args.out), args.steps, args.seed, not args.quiet,
                          args.max_delay)["lines"]))


def cmd_envs(args: argparse.Namespace) -> None:
    from sim.registration import describe_envs, envs_table

    rows = describe_envs()
    print(json.dumps(rows) if args.json else "\n".join(envs_table(rows)))


def cmd_demo(args: argparse.Namespace) -> None:
    from sim2real.demo import run_demo

    if not run_demo(Path(args.out), steps=args.steps, episodes=args.episodes, seed=args.seed):
        sys.exit(1)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="sim2real", description=(
        "Train robot policies in randomized MuJoCo, export them to ONNX with a contract, "
        "and run them on the robot."))
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def verb(name: str, func, help: str, seed: bool = False, json_help: str | None = None,
             quiet: bool = False) -> argparse.ArgumentParser:
        sub = verbs.add_parser(name, help=help)
        sub.set_defaults(func=func)
        if seed:
            sub.add_argument("--seed", type=seed_number, default=0)
        if json_help is not None:
            sub.add_argument("--json", action="store_true", help=json_help or None)
        if quiet:
            sub.add_argument("--quiet", action="store_true", help="no progress display")
        return sub

    train = verb("train", cmd_train, "train a policy on an env", seed=True, quiet=True)
    train.add_argument("--env", help="env id, e.g. sim2real/ArmReach-v0")
    train.add_argument("--algo", help="ppo (default), sac, td3, ddpg, a2c, trpo, reinforce or dqn")
    train.add_argument("--steps", type=int, help="env steps to train for")
    train.add_argument("--out", help="run dir for checkpoint, metrics, run.json")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue a run exactly (--steps extends it)")
    train.add_argument("--randomization", help="preset (none, default, wide; so_arm also adr) "
                       "or YAML; default: the robot's `default` for our envs, none for gymnasium's")
    train.add_argument("--pixels", type=int, metavar="N", help="N x N camera images too (ppo; e.g. 84)")
    train.add_argument("--discrete-actions", type=int, metavar="N", help="N choices per action (dqn)")
    train.add_argument("--set", help='algorithm settings as JSON, e.g. \'{"num_envs": 8}\'')
    train.add_argument("--overwrite", action="store_true", help="replace an existing run dir")

    evaluate = verb("eval", cmd_eval, "evaluate a run or an ONNX policy", True, "one JSON line")
    evaluate.add_argument("policy", help="run dir or policy.onnx")
    evaluate.add_argument("--env", help="env id (default: the one it trained on)")
    evaluate.add_argument("--episodes", type=int, default=20)

    export = verb("export", cmd_export, "export a run to ONNX with its contract")
    export.add_argument("run_dir")
    export.add_argument("--out", help="ONNX path (default RUN_DIR/policy.onnx)")
    export.add_argument("--check", type=int, default=1000, help="observations torch and ONNX must match on")
    export.add_argument("--best", action="store_true", help="export best.pt, not the last checkpoint")

    deploy = verb("deploy", cmd_deploy, "run an ONNX policy in a fixed-rate loop on a robot",
                  json_help="also print the report as JSON")
    deploy.add_argument("policy", help="policy.onnx written by `sim2real export`")
    deploy.add_argument("--robot", default="sim", help="sim (the contract's robot, simulated), "
                        "sim:ROBOT, serial:URL, feetech:URL (a servo bus) or auto[:URL]")
    deploy.add_argument("--seconds", type=float, default=30.0)
    deploy.add_argument("--episodes", type=int, help="stop after this many episodes")
    deploy.add_argument("--seed", type=seed_number, default=0, help="seed of the goals")
    deploy.add_argument("--safety", metavar="FILE", help="YAML/JSON of SafetyConfig settings")
    deploy.add_argument("--log", metavar="FILE", help="telemetry log (default: beside the policy)")
    deploy.add_argument("--no-log", action="store_true", help="write no telemetry log")
    deploy.add_argument("--estop-file", metavar="PATH", help="e-stop when this file appears")
    deploy.add_argument("--estop-key", action="store_true", help="e-stop on any key pressed here")
    deploy.add_argument("--rt-priority", type=int, metavar="N", help="ask for SCHED_FIFO priority N")
    deploy.add_argument("--cpu", type=int, metavar="N", help="pin the loop to CPU N if allowed")
    deploy.add_argument("--calibration", metavar="FILE", help="a feetech: arm's calibration file")
    deploy.add_argument("--camera", metavar="URL", help="a pixel policy's camera, or the one a "
                        "tracker sees the task's objects in: /dev/videoN or a stream "
                        "(http://HOST:PORT/stream.mjpg, rtsp://...)")
    deploy.add_argument("--camera-calibration", metavar="FILE", help="the --camera's calibration "
                        "(sim2real calibrate-camera): track the task's objects by their markers")

    for name, func, what in (("setup-motors", cmd_setup_motors, "give each servo its ID, one "
                              "on the bus at a time"),
                             ("calibrate", cmd_calibrate, "calibrate a servo arm's middle and ranges")):
        sub = verb(name, func, what)
        sub.add_argument("bus", metavar="feetech:PORT", help="the servo bus, e.g. feetech:/dev/ttyUSB0")
        sub.add_argument("--robot", default="so_arm", help="robot name (default so_arm)")
    sub.add_argument("--out", metavar="FILE", help="calibration file (default: ~/.config/sim2real/)")
    sub.add_argument("--from-lerobot", metavar="FILE", help="import a LeRobot SO-101 calibration")

    camera = verb("calibrate-camera", cmd_calibrate_camera, "measure a camera's lens and its pose "
                  "in the arm's base frame (a checkerboard, then a marker sheet on the table)",
                  json_help="also print the calibration as JSON")
    camera.add_argument("--camera", required=True, metavar="URL", help="/dev/videoN or a stream")
    camera.add_argument("--out", required=True, metavar="FILE", help="calibration file to write")
    camera.add_argument("--sheet-at", type=float, nargs=2, default=(0.2, 0.0), metavar=("X", "Y"),
                        help="where the marker sheet's centre lies (m, the arm's base frame)")
    camera.add_argument("--sheet-yaw", type=float, default=0.0, metavar="RAD",
                        help="the sheet turned about z from its rows along y")
    camera.add_argument("--views", type=int, default=15, help="checkerboard views to take")
    camera.add_argument("--timeout", type=float, default=180.0, metavar="S",
                        help="give a step up after this long")

    emulate = verb("emulate", cmd_emulate, "emulate a robot's serial device (HIL backend)")
    emulate.add_argument("robot", help="robot name, e.g. so_arm or furuta")
    where = emulate.add_mutually_exclusive_group()
    where.add_argument("--pty", action="store_true", help="open a pseudo-terminal (default)")
    where.add_argument("--tcp", type=int, metavar="PORT", help="listen on 127.0.0.1:PORT (0: any)")
    emulate.add_argument("--physics", metavar="FILE", help="randomization YAML, every value pinned")
    emulate.add_argument("--bus", choices=("sim2real", "feetech"), default="sim2real", help="wire protocol")
    emulate.add_argument("--one-at-a-time", action="store_true", help="feetech: servos as shipped "
                         "(all ID 1), one on the bus; Enter here plugs in the next (setup-motors)")
    emulate.add_argument("--baud", type=int, help="simulate this baud rate's wire time")
    emulate.add_argument("--watchdog-ms", type=float, help="hold after this long silent (default 100)")
    emulate.add_argument("--firmware", metavar="LIB", help="run the reference firmware's C core "
                         "(a host build: sim2real firmware-build ROBOT) as the device")
    emulate.add_argument("--faults", metavar="FILE", help="YAML/JSON of WireFaults settings")
    for flag in FAULT_FLAGS[:5]:
        emulate.add_argument("--" + flag.replace("_", "-"), type=float, default=None)
    emulate.add_argument("--reset-at", type=float, nargs="+", metavar="S", help="brown out S s after connect")
    emulate.add_argument("--disconnect-at", type=float, metavar="S", help="close the port S s after connect")
    emulate.add_argument("--seed", type=seed_number, help="seed of the injected faults "
                         "and of the --scene's draws")
    emulate.add_argument("--pose", type=float, nargs="+", help="joint positions to start at (motors: held)")
    emulate.add_argument("--catch", type=float, metavar="S", help="put a --pose back after S s at 0 V")
    emulate.add_argument("--seconds", type=float, help="stop after (default: never)")
    emulate.add_argument("--camera-port", type=int, metavar="PORT", help="serve the robot's camera "
                         "as MJPEG on 127.0.0.1:PORT (0: any free port)")
    emulate.add_argument("--camera-size", type=frame_size, default=(320, 240), metavar="WxH",
                         help="the camera's frames (default 320x240)")
    emulate.add_argument("--camera-fps", type=float, default=30.0, help="the camera's rate")
    emulate.add_argument("--scene", choices=("push", "calibration"), help="so_arm: what lies on "
                         "its table: push's marked block (put back when the arm waits) or the "
                         "targets of sim2real calibrate-camera")

    header = verb("firmware-header", cmd_firmware_header, "the reference firmware's C header of a "
                  "robot, from its RobotSpec")
    build = verb("firmware-build", cmd_firmware_build, "build the reference firmware for this "
                 "computer (the emulator's --firmware) with cc")
    for sub, out_help in ((header, "write it here (default: print it)"),
                          (build, "build folder (default build/firmware/ROBOT)")):
        sub.add_argument("robot", help="robot name, e.g. furuta")
        sub.add_argument("--watchdog-ms", type=float, default=100.0, help="the device's watchdog")
        sub.add_argument("--out", help=out_help)
    build.set_defaults(out=None)

    robustness = verb("robustness", cmd_robustness, "evaluate policies on a physics grid", True, quiet=True)
    robustness.add_argument("policies", nargs="+", help="run dirs or policy.onnx files")
    robustness.add_argument("--env", help="env id (default: the first's own)")
    robustness.add_argument("--vary", action="append", default=[], metavar="TERM=LOW:HIGH:N",
                            help="a term at N values (or TERM=V1,V2,...); repeat for a grid")
    robustness.add_argument("--episodes", type=int, default=20, help="episodes per cell")
    robustness.add_argument("--out", help="folder for CSV, PNGs, summary (default: robustness/ "
                            "beside the first policy)")
    robustness.add_argument("--ray", nargs="?", const="", metavar="ADDRESS", help="cells as Ray "
                            "tasks: on the cluster at ADDRESS, or on this machine without one")

    sweep = verb("sweep", cmd_sweep, "train the trials of a sweep file (settings x seeds) on Ray",
                 quiet=True)
    sweep.add_argument("sweep", metavar="SWEEP.yaml", help="env, algo, steps, seeds, set:, "
                       "ranges:, early_stop: (see the README's Many runs)")
    sweep.add_argument("--ray", metavar="ADDRESS", help="join this Ray cluster (default: start "
                       "Ray on this machine's cores)")
    sweep.add_argument("--cpus-per-trial", type=int, metavar="N", help="CPUs each trial takes "
                       "(default: the file's, else 1)")
    sweep.add_argument("--out", help="sweep folder (default: sweeps/NAME of the file)")
    sweep.add_argument("--serial", action="store_true", help="one trial after another here, "
                       "without Ray or early stopping")
    sweep.add_argument("--overwrite", action="store_true", help="start the sweep folder afresh "
                       "(default: go on with its unfinished trials)")

    plot = verb("plot", cmd_plot, "learning curves of runs, mean and spread over seeds")
    plot.add_argument("runs", nargs="+", help="run dirs (runs differing only in seed are grouped)")
    plot.add_argument("--out", help="PNG (default: learning_curves.png beside the runs)")

    video = verb("video", cmd_video, "render a policy to MP4 or GIF", seed=True)
    video.add_argument("policy", help="run dir or policy.onnx")
    video.add_argument("--env", help="env id (default: the one it trained on)")
    video.add_argument("--out", help=".mp4 or .gif (default: policy.mp4 beside the policy)")
    video.add_argument("--episodes", type=int, default=1)
    video.add_argument("--montage", type=int, default=0, metavar="N", help="N randomized domains")
    video.add_argument("--randomization", default="default", help="what the montage draws from")
    video.add_argument("--size", type=int, default=240, help="pixels per side of each view")

    sysid = verb("sysid", cmd_sysid, "fit physical parameters from a deploy log", json_help="")
    sysid.add_argument("log", help="a .mcap written by `sim2real deploy`")
    sysid.add_argument("--terms", nargs="+", help="terms to fit (default: mass, actuator_kp/R)")
    sysid.add_argument("--max-delay", type=int, default=4, help="largest delay tried, steps")
    sysid.add_argument("--robot", help="refuse a log of another robot")
    sysid.add_argument("--out", help="folder for the config, plot, JSON (default: beside the log)")
    adapt = verb("adapt", cmd_adapt, "fit a deploy log, retrain on ranges centred on the fit, "
                 "export", seed=True, quiet=True)
    adapt.add_argument("log", help="a .mcap written by `sim2real deploy`")
    adapt.add_argument("--out", required=True, help="folder for the fit, config, run and policy")
    adapt.add_argument("--steps", type=int, help="training steps (default: the deployed policy's)")
    adapt.add_argument("--max-delay", type=int, default=8, help="largest delay tried, steps")

    log_verbs = verbs.add_parser("log", help="read a deploy telemetry log").add_subparsers(
        dest="log_verb", required=True)
    show = log_verbs.add_parser("show", help="print a summary and plot the joints")
    show.add_argument("log", help="a .mcap written by `sim2real deploy`")
    show.add_argument("--plot", metavar="PNG", help="where to draw the joints (default: LOG.png)")
    show.add_argument("--json", action="store_true", help="print the summary as JSON")
    show.set_defaults(func=cmd_log_show)
    convert = log_verbs.add_parser("convert", help="rewrite a log of the earlier .s2rlog "
                                   "format as MCAP, for Foxglove and the mcap tools")
    convert.add_argument("log", help="a .s2rlog (or .mcap) written by `sim2real deploy`")
    convert.add_argument("--out", help="the MCAP file to write (default: LOG.mcap)")
    convert.set_defaults(func=cmd_log_convert)

    verb("envs", cmd_envs, "list every env id with its observation and action sizes", json_help="")

    demo = verb("demo", cmd_demo, "train, export and deploy the reach arm end to end", True)
    demo.add_argument("--out", default="runs/demo")
    demo.add_argument("--steps", type=int, help="training steps (default tuned)")
    demo.add_argument("--episodes", type=int, default=100, help="deploy episodes")
    show_defaults(verbs)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        args.func(args)
    except USER_ERRORS as error:
        if os.environ.get("SIM2REAL_DEBUG"):
            raise
        print(f"sim2real {args.verb}: error: {one_line(error)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"sim2real {args.verb}: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
