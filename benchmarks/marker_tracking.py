"""Objects from the camera, measured against what the simulation knows. Three parts, each side
by side with its reference:

1. The camera calibration (`sim2real calibrate-camera`, run against `sim2real emulate so_arm
   --scene calibration --camera-port 0 --camera-size 960x720`, through the MJPEG stream) against
   the MuJoCo camera it measured: focal length, image centre, position, axes.
2. The tracker over push episodes (evaluation/tracking.py: the emulator's camera's frames,
   JPEG-coded, the push policy playing) against the block's true centre, frame by frame: resting
   on a face, tipping, hidden by the arm (the last sighting held).
3. Each push policy deployed through the tracker (`sim2real deploy --camera URL
   --camera-calibration FILE` over the wire to `emulate so_arm --scene push`, real time) against
   its evaluation (`sim2real eval`, the simulated block's true position): one trained for the
   camera (the `tracked` preset) beside one trained without its terms (`default`), to show what
   the tracker's frame period and delay do to each.

Usage: python benchmarks/marker_tracking.py [--policy POLICY.onnx ...] [--episodes 20] [--save]
The first policy plays part 2. Without --policy, trains the push policy the suite trains (SAC
with hindsight replay, 120k steps, about 3 minutes on 2 cores) into /tmp/s2r_tracking/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, str(Path(__file__).parent))
from processes import Emulator
from published import add_save_flag, publish
from transfer import sim2real

WORK = Path("/tmp/s2r_tracking")
CAMERA = ("--camera-size", "960x720", "--camera-fps", "15")
"""As tests/emulators.py TRACKER_CAMERA."""
SEED = 1_000
"""Seed of the deployed goals: none of the seeds evaluation used."""


def push_policy() -> Path:
    out = WORK / "push"
    if not (out / "policy.onnx").is_file():
        sim2real("train", "--env", "sim2real/ArmPush-v0", "--algo", "sac", "--steps", "120000",
                 "--set", '{"eval_every": 0}', "--out", str(out), "--overwrite", "--quiet")
        sim2real("export", str(out))
    return out / "policy.onnx"


def calibrate() -> tuple[Path, dict]:
    """calibrate-camera through the emulator's stream; the file and its errors from the truth."""
    from deploy.camera_calibration import CameraCalibration
    from evaluation.tracking import calibration_errors, true_camera
    from sim.physics import load_model
    from sim.spec import ASSETS

    out = WORK / "camera.json"
    with Emulator("--scene", "calibration", "--camera-port", "0", *CAMERA) as table:
        sim2real("calibrate-camera", "--camera", table.camera, "--out", str(out))
    found = CameraCalibration.load(out)
    true = true_camera(load_model(ASSETS / "so_arm_calibration.xml"), found.image_size)
    return out, {**calibration_errors(found, true), "focal_px": float(found.camera_matrix[1, 1]),
                 "true_focal_px": float(true.camera_matrix[1, 1]),
                 "reprojection_px": found.reprojection_px, "sheet_px": found.sheet_px}


def deploy(policy: Path, calibration: Path, episodes: int) -> dict:
    with Emulator("--scene", "push", "--camera-port", "0", *CAMERA) as table:
        stdout = sim2real("deploy", str(policy), "--robot", f"serial:{table.port}", "--camera",
                          table.camera, "--camera-calibration", str(calibration), "--episodes",
                          str(episodes), "--seconds", str(episodes * 12), "--seed", str(SEED),
                          "--json", "--no-log")
    return json.loads(stdout.strip().splitlines()[-1])


def trained_as(policy: Path) -> str:
    """How a policy was trained, from its contract: algorithm, steps, the object terms."""
    from deploy.onnx_policy import OnnxPolicy

    contract = OnnxPolicy(policy).contract
    terms = {name: spec for name, spec in contract.randomization.items()
             if name.startswith("object_")}
    said = ", ".join(f"{name} {spec.get('choices') or [spec.get('low'), spec.get('high')]}"
                     for name, spec in terms.items()) or "no object terms"
    return f"{contract.algorithm.upper()}, {contract.steps:,} steps, {said}"


def markdown(results: dict) -> str:
    calibration, tracked = results["calibration"], results["tracked"]

    def spread(part: dict) -> str:
        if not part["frames"]:
            return "0 frames"
        return (f"{part['frames']} frames: p50 {part['p50_mm']} mm, p99 {part['p99_mm']} mm, "
                f"max {part['max_mm']} mm")

    rows, notes = [], []
    for run in results["policies"]:
        evaluation, deployed, camera = run["evaluation"], run["deploy"], run["deploy"]["camera"]
        rows.append(f"| {run['trained']} | {evaluation['success_rate']:.2f} of "
                    f"{evaluation['episodes']} | {deployed['success_rate']:.2f} of "
                    f"{deployed['episodes']} |")
        notes.append(
            f"- {run['trained']}: loop {deployed['loop_rate_hz']:.1f} Hz, camera "
            f"{camera['frame_size']} at {camera['frame_rate_hz']} frames/s, frame age p50 "
            f"{camera['frame_age_p50_ms']} ms / p99 {camera['frame_age_p99_ms']} ms, the block's "
            f"position age p50 {camera['sighting_age_p50_ms']} ms / p99 "
            f"{camera['sighting_age_p99_ms']} ms, locating p50 {camera['locate_p50_ms']} ms a "
            "frame" + (f"; stopped: {deployed['stopped']}" if deployed["stopped"] else "") + ".")
    return "\n".join([
        "# Objects from the camera: calibration, tracker, push deployed through it", "",
        f"`{results['command']}`. The emulated camera 960x720 at 15 frames/s, the block's ArUco "
        "marker (22.5 mm, every face) about 20 pixels across.", "",
        "## The calibration against the MuJoCo camera", "",
        "| measured | calibrate-camera | the MuJoCo camera |", "|---|---:|---:|",
        f"| focal length (px) | {calibration['focal_px']:.1f} | {calibration['true_focal_px']:.1f} |",
        f"| focal length error | {calibration['focal_error']:.2%} | - |",
        f"| image centre error (px) | {calibration['centre_error_px']:.2f} | - |",
        f"| camera position error (mm) | {calibration['position_error_mm']:.1f} | - |",
        f"| camera axes error (degrees) | {calibration['rotation_error_deg']:.2f} | - |",
        f"| board corners' fit (px rms) | {calibration['reprojection_px']:.3f} | - |",
        f"| sheet corners' fit (px rms) | {calibration['sheet_px']:.3f} | - |", "",
        f"## The tracker against the block's true centre ({tracked['episodes']} push episodes "
        f"of the first policy, {tracked['frames']} frames)", "",
        "| the block | error |", "|---|---|",
        f"| resting on a face (what the tracker assumes) | {spread(tracked['resting'])} |",
        f"| tipping or lifted | {spread(tracked['tipping'])} |",
        f"| hidden by the arm (its last sighting held) | {spread(tracked['hidden_held'])} |", "",
        f"Seen in {tracked['seen_fraction']:.0%} of the frames; of those, "
        f"{tracked['seen_within_5mm']:.1%} within 5 mm.", "",
        "## Push deployed through the tracker against its evaluation", "",
        "| policy (sim2real/ArmPush-v0) | `sim2real eval` (the block's true position) | "
        "`sim2real deploy --camera --camera-calibration` over the wire, real time |",
        "|---|---:|---:|", *rows, "", *notes])


def main() -> None:
    from deploy.camera_calibration import CameraCalibration
    from evaluation.tracking import track_push_episodes

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", type=Path, action="append",
                        help="an exported push policy (again for another)")
    parser.add_argument("--episodes", type=int, default=20)
    add_save_flag(parser)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    policies = args.policy or [push_policy()]
    calibration_file, calibration = calibrate()
    print(f"calibration: {calibration}", flush=True)
    tracked = track_push_episodes(policies[0], CameraCalibration.load(calibration_file),
                                  args.episodes).summary()
    print(f"tracked: {tracked}", flush=True)
    runs = []
    for policy in policies:
        evaluation = json.loads(sim2real("eval", str(policy), "--episodes", "100", "--json")
                                .strip().splitlines()[-1])
        runs.append({"policy": str(policy), "trained": trained_as(policy),
                     "evaluation": evaluation,
                     "deploy": deploy(policy, calibration_file, args.episodes)})
        print(f"{runs[-1]['trained']}: eval {evaluation['success_rate']}, deploy "
              f"{runs[-1]['deploy']['success_rate']}", flush=True)
    command = " ".join(["python benchmarks/marker_tracking.py", *sys.argv[1:]])
    results = {"command": command, "calibration": calibration, "tracked": tracked,
               "policies": runs}
    publish("marker_tracking", results, markdown(results), args.save)


if __name__ == "__main__":
    main()
