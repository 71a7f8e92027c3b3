"""The command line as a user meets it: verbs listed, and bad input answered in one line."""

import json
import re
import subprocess
import sys

import onnx
import pytest

from sim2real.cli import FAULT_FLAGS, build_parser, main


def sim2real(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sim2real.cli", *args], capture_output=True,
                          text=True, timeout=120)


def test_help_lists_the_verbs() -> None:
    out = sim2real("--help")
    assert out.returncode == 0
    for verb in ("train", "export", "deploy", "demo"):
        assert verb in out.stdout


def test_each_verb_parses_its_options_into_what_its_function_takes() -> None:
    parser = build_parser()
    train = parser.parse_args(["train", "--env", "e", "--steps", "10", "--out", "r", "--pixels",
                               "84", "--discrete-actions", "5"])
    assert (train.pixels, train.discrete_actions, train.seed, train.algo) == (84, 5, 0, None)
    emulate = parser.parse_args(["emulate", "so_arm", "--latency-ms", "16", "--reset-at", "1",
                                 "2", "--seed", "3"])
    assert {flag: getattr(emulate, flag) for flag in FAULT_FLAGS if getattr(emulate, flag)} == {
        "latency_ms": 16.0, "reset_at": [1.0, 2.0], "seed": 3}
    rig = parser.parse_args(["emulate", "furuta", "--pose", "0", "0.05", "--catch", "1.5"])
    assert (rig.pose, rig.catch) == ([0.0, 0.05], 1.5)
    deploy = parser.parse_args(["deploy", "p.onnx", "--robot", "serial:///dev/ttyUSB0", "--json"])
    assert (deploy.robot, deploy.json, deploy.seed, deploy.episodes) == (
        "serial:///dev/ttyUSB0", True, 0, None)


def one_line_error(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_unknown_env_id(capsys, tmp_path) -> None:
    err = one_line_error(capsys, "train", "--env", "Nope-v0", "--steps", "10", "--out",
                         str(tmp_path / "r"))
    assert "unknown env id 'Nope-v0'" in err and "sim2real/ArmReach-v0" in err


def test_unknown_algorithm(capsys, tmp_path) -> None:
    err = one_line_error(capsys, "train", "--env", "sim2real/ArmReach-v0", "--algo", "dqn2",
                         "--steps", "10", "--out", str(tmp_path / "r"))
    assert "unknown algorithm 'dqn2'" in err and "ppo" in err


def test_missing_run_dir(capsys, tmp_path) -> None:
    err = one_line_error(capsys, "export", str(tmp_path / "missing"))
    assert "does not exist" in err


def test_existing_run_dir_is_not_overwritten(capsys, tiny_run) -> None:
    err = one_line_error(capsys, "train", "--env", "sim2real/ArmReach-v0", "--steps", "10",
                         "--out", str(tiny_run))
    assert "--overwrite" in err


def test_contract_mismatch_refuses_to_deploy(capsys, tiny_policy, tmp_path) -> None:
    model = onnx.load(str(tiny_policy))
    for prop in model.metadata_props:
        if prop.key == "sim2real_contract":
            contract = json.loads(prop.value)
            contract["robot"]["joint_names"] = contract["robot"]["joint_names"][::-1]
            contract["robot"]["control_period"] = 0.01
            prop.value = json.dumps(contract)
    tampered = tmp_path / "tampered.onnx"
    onnx.save(model, str(tampered))
    err = one_line_error(capsys, "deploy", str(tampered), "--robot", "sim:so_arm",
                         "--seconds", "1")
    assert "refusing to move" in err and "joint order" in err and "control period" in err


def test_unknown_robot(capsys, tiny_policy) -> None:
    err = one_line_error(capsys, "deploy", str(tiny_policy), "--robot", "sim:hexapod")
    assert "unknown robot 'hexapod'" in err


def test_corrupt_onnx(capsys, tmp_path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    err = one_line_error(capsys, "deploy", str(bad))
    assert "not a loadable ONNX model" in err


@pytest.mark.slow  # three CLI processes, 8 s: more than a tenth of the fast subset's minute
def test_train_export_deploy_through_the_cli(tmp_path) -> None:
    run_dir = tmp_path / "run"
    out = sim2real("train", "--env", "sim2real/ArmReach-v0", "--steps", "256", "--out",
                   str(run_dir), "--quiet", "--set", '{"num_envs": 2, "epochs": 1}')
    assert out.returncode == 0, out.stderr
    assert (run_dir / "learning_curve.png").stat().st_size > 1000
    # Randomization is on unless told otherwise: the arm's default preset, named in the summary.
    assert "with randomization default: mass x0.8..1.25" in out.stdout
    assert "action_delay 0|1|2" in out.stdout
    assert json.loads((run_dir / "run.json").read_text())["randomization"]["mass"]["high"] == 1.25
    out = sim2real("export", str(run_dir), "--check", "50")
    assert out.returncode == 0, out.stderr
    assert "onnxruntime matches torch" in out.stdout
    out = sim2real("deploy", str(run_dir / "policy.onnx"), "--seconds", "0.5", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["cycles"] >= 20 and report["target_rate_hz"] == 50.0
    # The telemetry log is on by default, beside the policy.
    assert report["log"].endswith(".mcap") and (run_dir / report["log"]).parent == run_dir
    out = sim2real("log", "show", report["log"])
    assert out.returncode == 0, out.stderr
    assert f"cycles: {report['cycles']}" in out.stdout


def test_bad_safety_settings(capsys, tiny_policy, tmp_path) -> None:
    settings = tmp_path / "safety.yaml"
    settings.write_text("soft_limit_margin: 0.1\nmax_rate: 2\n")
    err = one_line_error(capsys, "deploy", str(tiny_policy), "--safety", str(settings))
    assert "unknown safety setting(s) ['max_rate']" in err


@pytest.mark.slow
def test_a_randomized_run_records_its_ranges_episodes_and_adr(tmp_path) -> None:
    """The run dir holds the config trained under, every episode's draws, ADR's ranges over
    training (CSV and plot); the exported contract carries the ranges."""
    config = tmp_path / "adr.yaml"
    config.write_text("mass: {low: 0.5, high: 2.0}\nobservation_noise: {low: 0.0, high: 0.01}\n"
                      "adr: {terms: [mass], buffer_size: 2}\n")
    run_dir = tmp_path / "run"
    out = sim2real("train", "--env", "sim2real/ArmReach-v0", "--steps", "4096", "--out",
                   str(run_dir), "--quiet", "--randomization", str(config),
                   "--set", '{"num_envs": 4, "epochs": 1}')
    assert out.returncode == 0, out.stderr
    assert "adr" in (run_dir / "randomization.yaml").read_text()
    episodes = [json.loads(line) for line in (run_dir / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) >= 4 * 4096 // 4 // 100
    assert {"steps", "copy", "return", "success", "randomization"} <= set(episodes[0])
    assert set(episodes[0]["randomization"]) == {"mass", "observation_noise"}
    header = (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert "adr/mass/low" in header and "adr/mass/high" in header
    assert (run_dir / "adr_ranges.png").stat().st_size > 5000
    out = sim2real("export", str(run_dir), "--check", "20")
    assert out.returncode == 0, out.stderr
    model = onnx.load(str(run_dir / "policy.onnx"))
    contract = json.loads({p.key: p.value for p in model.metadata_props}["sim2real_contract"])
    ranges = contract["randomization"]
    assert ranges["mass"]["low"] == 0.5 and ranges["observation_noise"]["high"] == 0.01
    low, high = ranges["adr_final_ranges"]["mass"]["low"], ranges["adr_final_ranges"]["mass"]["high"]
    assert 0.5 <= low <= 1.0 <= high <= 2.0  # from the nominal model, within the limits


def emulate_briefly(*args: str) -> None:
    """`sim2real emulate ARGS --seconds 0.2` in this process, its SIGTERM handler put back."""
    import signal

    before = signal.getsignal(signal.SIGTERM)
    try:
        main(["emulate", *args, "--seconds", "0.2"])
    finally:
        signal.signal(signal.SIGTERM, before)


def test_the_command_line_serves_the_bus(capsys: pytest.CaptureFixture[str]) -> None:
    emulate_briefly("so_arm", "--bus", "feetech")
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("emulating so_arm on /dev/")
    assert out[1].startswith("connect with: sim2real deploy POLICY --robot feetech:/dev/")
    assert out[2].startswith("emulator stopped: ") and '"unanswered": 0' in out[2]
    assert json.loads(out[2].removeprefix("emulator stopped: "))["servo_ids"] == [1, 2, 3, 4, 5, 6]


def test_one_servo_at_a_time_is_a_servo_bus_option(capsys) -> None:
    err = one_line_error(capsys, "emulate", "so_arm", "--one-at-a-time", "--seconds", "0.1")
    assert err == ("sim2real emulate: error: --one-at-a-time plugs in Feetech servos one by one, "
                   "not a sim2real device: add --bus feetech")


@pytest.mark.slow  # renders
def test_the_command_line_serves_the_robots_camera(capsys: pytest.CaptureFixture[str]) -> None:
    emulate_briefly("so_arm", "--camera-port", "0", "--camera-size", "160x120")
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"camera: http://127\.0\.0\.1:\d+/stream\.mjpg \(30 frames/s\)", out[1])
    url = out[1].split()[1]
    assert out[2].startswith("connect with: sim2real deploy POLICY --robot serial:/dev/")
    assert out[2].endswith(f" --camera {url}")
    err = one_line_error(capsys, "emulate", "so_arm", "--camera-port", "0", "--camera-size", "64")
    assert ("argument --camera-size: a frame size is WIDTHxHEIGHT, each at least 8 pixels (e.g. "
            "320x240), got '64'") in err


def test_the_emulated_tables_scene_is_an_arms_and_our_protocols(capsys) -> None:
    err = one_line_error(capsys, "emulate", "furuta", "--scene", "push", "--seconds", "0.1")
    assert err == ("sim2real emulate: error: --scene lays things on the SO-101 arm's table; "
                   "furuta has none")
    err = one_line_error(capsys, "emulate", "so_arm", "--scene", "push", "--bus", "feetech",
                         "--seconds", "0.1")
    assert "--bus feetech emulates the servos alone: use --bus sim2real" in err


def test_the_command_line_lays_the_push_table(capsys: pytest.CaptureFixture[str]) -> None:
    emulate_briefly("so_arm", "--scene", "push")
    out = capsys.readouterr().out.splitlines()
    assert out[1] == ("on the table: so_arm_push.xml (block put back at a new start when the arm "
                      "waits still 1.5 s)")


def test_a_tracker_needs_its_camera_and_a_calibration_file(capsys, tiny_policy,
                                                           tmp_path) -> None:
    err = one_line_error(capsys, "deploy", str(tiny_policy), "--camera-calibration",
                         str(tmp_path / "camera.json"), "--seconds", "1", "--no-log")
    assert "--camera-calibration is for the camera a tracker reads: give it with --camera URL" in err
    err = one_line_error(capsys, "deploy", str(tiny_policy), "--camera", "/dev/video9",
                         "--camera-calibration", str(tmp_path / "camera.json"), "--seconds", "1",
                         "--no-log")
    assert "camera calibration" in err and "does not exist" in err


def test_a_camera_that_is_not_there_cannot_be_calibrated(capsys, tmp_path) -> None:
    err = one_line_error(capsys, "calibrate-camera", "--camera", "/dev/video9", "--out",
                         str(tmp_path / "camera.json"))
    assert "/dev/video9" in err
    assert not (tmp_path / "camera.json").exists()
