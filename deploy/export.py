"""Export a trained run to ONNX: the normalizer and the deterministic actor in one graph (input
`obs`, output `actions`), the contract in the metadata, and a parity check of onnxruntime against
torch on observations from the env. A pixel policy's graph also holds its CNN encoder and takes
the camera image as input `pixels` (uint8, N x H x W x 3) before `obs`, the state.
Runs on the training machine (torch, onnx, MuJoCo).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch

from deploy.contract import METADATA_KEY, Contract
from deploy.onnx_policy import OnnxPolicy
from policies.algorithms import algorithm_by_name
from policies.encoders import policy_inputs, stack_observations
from policies.records import atomic_write_bytes, load_checkpoint, package_versions
from sim.commands import CommandHistory

OPSET = 17
TOLERANCE = 1e-5
PIPELINE_TOLERANCE = 1e-4
PIPELINE_EPISODES = 3
PIPELINE_MAX_STEPS = 3000


@dataclass
class ExportResult:
    path: Path
    onnx_error: float
    """max |onnxruntime - torch| of the actions, on `check_count` observations."""
    pipeline_error: float
    """max |deploy runtime - training env| of the commands, over recorded episodes."""
    pipeline_steps: int

    def describe(self, check_count: int) -> str:
        """One line, as `sim2real export` prints it."""
        return (f"exported {self.path}: onnxruntime matches torch to {self.onnx_error:.2e} on "
                f"{check_count} observations; the deploy runtime's commands match the training "
                f"env's to {self.pipeline_error:.2e} over {self.pipeline_steps} recorded steps")


class ExportMismatch(RuntimeError):
    """onnxruntime and torch disagree on the exported policy."""


def load_run(run_dir: Path, which: str = "checkpoint") -> tuple[dict, dict]:
    """The checkpoint (`which`: "checkpoint", the last one, or "best", the best evaluated) and
    run.json of a training run, with errors that say what to do."""
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run dir {run_dir} does not exist; train first with "
                                "`sim2real train --out DIR`")
    if which not in ("checkpoint", "best"):
        raise ValueError(f"checkpoint {which!r} is unknown; use checkpoint (the last) or best")
    checkpoint_path = run_dir / f"{which}.pt"
    if not checkpoint_path.is_file():
        hint = ("no evaluation has run yet (eval_every)" if which == "best" else
                "it is not a training run, or training stopped before its first checkpoint")
        raise FileNotFoundError(f"run dir {run_dir} has no {which}.pt; {hint}")
    checkpoint = load_checkpoint(checkpoint_path)
    info_path = run_dir / "run.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    return checkpoint, info


def build_contract(checkpoint: dict, env) -> Contract:
    unwrapped = env.unwrapped
    robot, task = getattr(unwrapped, "robot", None), getattr(unwrapped, "task", None)
    metadata = checkpoint.get("metadata", {})
    weights = hashlib.sha256()
    for name, tensor in sorted(checkpoint.get("agent", {}).items()):
        weights.update(name.encode())
        weights.update(tensor.cpu().numpy().tobytes())
    image_shape = _image_shape(checkpoint)
    camera = None
    if image_shape is not None:
        from randomization.visual import VISUAL_TERM_NAMES
        from sim.pixels import camera_contract

        visual = {name: term for name, term in _trained_under(metadata).items()
                  if name in VISUAL_TERM_NAMES}
        camera = camera_contract(unwrapped.model, env.get_wrapper_attr("camera"), image_shape,
                                 visual)
    return Contract(
        robot=robot.summary() if robot is not None else None,
        task=task.contract() if task is not None else None,
        observation_size=int(checkpoint["obs_size"]),
        action_size=int(checkpoint["action_size"]),
        env_id=metadata.get("env_id", env.spec.id if env.spec else "unknown"),
        algorithm=checkpoint["algo"],
        steps=int(checkpoint["steps"]),
        randomization=_trained_under(metadata),
        versions=package_versions(),
        weights_sha256=weights.hexdigest(),
        image_shape=image_shape,
        camera=camera,
    )


def _image_shape(checkpoint: dict) -> list[int] | None:
    shape = checkpoint.get("image_shape")
    return [int(n) for n in shape] if shape is not None else None


def _trained_under(metadata: dict) -> dict:
    """The randomization config of the run and, under automatic domain randomization, the
    ranges it had reached when the checkpoint was written (those the policy last trained on)."""
    randomization = dict(metadata.get("randomization") or {})
    adr = {key.split("/")[1]: {} for key in metadata.get("env_at_checkpoint", {})
           if key.startswith("adr/")}
    for key, value in metadata.get("env_at_checkpoint", {}).items():
        if key.startswith("adr/"):
            _, term, side = key.split("/")
            adr[term][side] = value
    if adr:
        randomization["adr_final_ranges"] = adr
    return randomization


def sample_observations(env, policy: torch.nn.Module, count: int,
                        seed: int = 0) -> np.ndarray | dict[str, np.ndarray]:
    """Observations the policy really meets: its own rollouts, with a third of the actions
    random so the states spread beyond its usual path. A batch: (count, size), or for pixel
    observations a Dict of batches."""
    from sim.discrete_actions import env_action

    rng = np.random.default_rng(seed)
    observations = []
    obs, _ = env.reset(seed=seed)
    while len(observations) < count:
        observations.append(obs)
        with torch.no_grad():
            action = policy(*policy_inputs(stack_observations([obs])))[0].numpy()
        if rng.random() < 1 / 3:
            action = env.action_space.sample()
        obs, _, terminated, truncated, _ = env.step(env_action(env.action_space, action))
        if terminated or truncated:
            obs, _ = env.reset()
    if isinstance(obs, dict):
        return stack_observations(observations)
    return np.asarray(observations, dtype=np.float32)


def pipeline_check(env, policy: torch.nn.Module, deployed: OnnxPolicy,
                   episodes: int = PIPELINE_EPISODES, seed: int = 1) -> tuple[float, int]:
    """Drive `episodes` episodes with the torch policy inside the training env and, at every
    step, hand the same robot reading to the deploy runtime's path: the task rebuilt from the
    contract alone, its observation with the runtime's own command history (started full of
    the command the robot holds, then fed the commands the env applied),
    onnxruntime, its action-to-command. Returns the largest difference between the command the
    env applied and the one the runtime would send, and the steps compared. For an env that is
    not one of our robots the command is the action."""
    from sim.catalog import robot_by_name, task_from_contract
    from sim.discrete_actions import env_action

    contract, unwrapped = deployed.contract, env.unwrapped
    task = history = None
    if contract.robot is not None:
        task = task_from_contract(contract.task["name"], robot_by_name(contract.robot["name"]),
                                  contract.task["config"])
        history = CommandHistory.for_task(task)
    worst, steps = 0.0, 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        if history is not None:
            history.reset(unwrapped.sim.held_command())
        done = False
        while not done and steps < PIPELINE_MAX_STEPS:
            with torch.no_grad():
                action = policy(*policy_inputs(stack_observations([obs])))[0].numpy()
            if task is not None:
                state, goal = unwrapped.sim.state(), unwrapped.goal
                trained = unwrapped.task.action_to_command(action, state, unwrapped.history.commands)
                observation = task.evaluate(state, goal, history.commands).observation
                if isinstance(obs, dict):  # the camera image as rendered, the state by the task
                    observation = {"pixels": obs["pixels"], "state": observation}
                runtime = task.action_to_command(deployed(observation), state, history.commands)
                # The env's command joins the runtime's history, not the runtime's own: given the
                # same reading and past commands the runtime must give the same command, step by
                # step. Fed its own, onnxruntime's float noise (1e-6) compounds through a policy
                # that dithers at its goal into differences that say nothing of the pipeline (a
                # pixel reach policy: 1e-4 after 40 steps, 0.1 after 50).
                history.push(trained)
            else:
                trained, runtime = action, deployed(obs)
            worst = max(worst, float(np.max(np.abs(np.asarray(trained) - runtime))))
            obs, _, terminated, truncated, _ = env.step(env_action(env.action_space, action))
            done = terminated or truncated
            steps += 1
    return worst, steps


def export(run_dir: Path, out: Path | None = None, check_count: int = 1000,
           which: str = "checkpoint") -> ExportResult:
    """Write `policy.onnx` (or `out`), check it two ways, and say how closely it matched: the
    actions of onnxruntime against torch on `check_count` observations (<= 1e-5), and the
    commands of the deploy runtime against the training env over recorded episodes (<= 1e-4).
    A file that fails either check is moved aside to *.mismatch.onnx."""
    from randomization.envs import make_env

    checkpoint, info = load_run(run_dir, which)
    policy = algorithm_by_name(checkpoint["algo"]).load_policy(checkpoint)
    env_id = checkpoint.get("metadata", {}).get("env_id") or info.get("env_id")
    if not env_id:
        raise ValueError(f"{run_dir}: the checkpoint does not say which env it was trained on")
    image_shape = _image_shape(checkpoint)
    if image_shape is not None and (image_shape[0] != image_shape[1] or image_shape[2] != 3):
        raise ValueError(f"{run_dir}: the policy takes images {image_shape}; export renders the "
                         "env's camera with make_env(env_id, pixels=N), square RGB images only")
    env = make_env(env_id, pixels=image_shape[0] if image_shape else None)
    contract = build_contract(checkpoint, env)
    out = out or run_dir / "policy.onnx"

    dummy = (torch.zeros(1, contract.observation_size),)
    if image_shape is not None:
        # uint8 in the graph: the robot feeds the camera image as it comes.
        pixels = torch.zeros(1, *image_shape, dtype=torch.uint8)
        dummy = (pixels, *dummy) if contract.observation_size else (pixels,)
    names = contract.input_names
    buffer = io.BytesIO()
    torch.onnx.export(policy, dummy, buffer, input_names=names, output_names=["actions"],
                      dynamic_axes={**{name: {0: "batch"} for name in names},
                                    "actions": {0: "batch"}},
                      opset_version=OPSET, dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    model.doc_string = f"sim2real {contract.algorithm} policy for {contract.env_id}"
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, contract.to_json()
    entry = model.metadata_props.add()
    entry.key, entry.value = "exported", time.strftime("%Y-%m-%dT%H:%M:%S")
    onnx.checker.check_model(model)
    atomic_write_bytes(out, model.SerializeToString())

    observations = sample_observations(env, policy, check_count)
    with torch.no_grad():
        expected = policy(*policy_inputs(observations)).numpy()
    deployed = OnnxPolicy(out)
    error = float(np.max(np.abs(deployed(observations) - expected)))
    if not error <= TOLERANCE:
        env.close()
        bad = out.with_suffix(".mismatch.onnx")
        out.replace(bad)
        raise ExportMismatch(f"onnxruntime and torch differ by {error:.3g} (> {TOLERANCE}) on "
                             f"{check_count} observations; the file was moved to {bad}")
    pipeline_error, steps = pipeline_check(env, policy, deployed)
    env.close()
    if not pipeline_error <= PIPELINE_TOLERANCE:
        bad = out.with_suffix(".mismatch.onnx")
        out.replace(bad)
        raise ExportMismatch(f"the deploy runtime's commands differ from the training env's by "
                             f"{pipeline_error:.3g} (> {PIPELINE_TOLERANCE}) over {steps} "
                             f"recorded steps: the task rebuilt from the contract is not the one "
                             f"trained on. The file was moved to {bad}")
    return ExportResult(out, error, pipeline_error, steps)
