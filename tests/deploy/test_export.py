import io
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import deploy.export
from deploy.contract import METADATA_KEY, Contract, ContractError
from deploy.export import PIPELINE_TOLERANCE, ExportMismatch, export, load_run, pipeline_check
from deploy.onnx_policy import OnnxPolicy
from policies.ppo import load_policy
from sim.commands import CommandHistory


def test_onnx_loads_in_plain_onnxruntime_with_the_contract(tiny_policy) -> None:
    session = ort.InferenceSession(str(tiny_policy), providers=["CPUExecutionProvider"])
    contract = json.loads(session.get_modelmeta().custom_metadata_map[METADATA_KEY])
    assert contract["robot"]["name"] == "so_arm"
    assert contract["robot"]["joint_names"][0] == "shoulder_pan"
    assert contract["task"]["name"] == "reach"
    assert contract["task"]["observation_layout"][0][0] == "joint_positions"
    assert contract["randomization"]["mass"]["low"] == 0.8
    assert contract["algorithm"] == "ppo" and contract["steps"] == 512
    assert len(contract["weights_sha256"]) == 64
    assert [i.name for i in session.get_inputs()] == ["obs"]
    assert [o.name for o in session.get_outputs()] == ["actions"]
    out = session.run(None, {"obs": np.zeros((3, contract["observation_size"]), np.float32)})[0]
    assert out.shape == (3, 3)


def test_normalizer_is_inside_the_graph(tiny_run, tiny_policy) -> None:
    checkpoint, _ = load_run(tiny_run)
    torch_policy = load_policy(checkpoint)
    size = OnnxPolicy(tiny_policy).contract.observation_size
    obs = np.random.default_rng(0).normal(0, 1, (100, size)).astype(np.float32) * 0.3
    expected = torch_policy(torch.as_tensor(obs)).detach().numpy()
    assert np.abs(OnnxPolicy(tiny_policy)(obs) - expected).max() < 1e-5
    # The graph's output depends on the stored normalizer, not only on the actor.
    assert not torch.allclose(checkpoint["agent"]["normalizer.mean"],
                              torch.zeros_like(checkpoint["agent"]["normalizer.mean"]))


def test_export_reports_parity(tiny_run, tmp_path) -> None:
    result = export(tiny_run, tmp_path / "p.onnx", check_count=100)
    path, error = result.path, result.onnx_error
    assert path.is_file() and error <= 1e-5
    # Reach episodes end at 100 steps or on success: three of them are 3 to 300 steps.
    assert result.pipeline_error <= 1e-4 and 3 <= result.pipeline_steps <= 300


def test_a_task_the_contract_does_not_rebuild_fails_the_pipeline_check(
        tiny_run, tmp_path, monkeypatch) -> None:
    import sim.catalog

    build = sim.catalog.make_task

    def drifted(name, robot, config=None):  # as if a task default changed after training
        return build(name, robot, {**(config or {}), "max_step": 0.2})

    monkeypatch.setattr(sim.catalog, "make_task", drifted)
    with pytest.raises(ExportMismatch, match="task rebuilt from the contract"):
        export(tiny_run, tmp_path / "p.onnx", check_count=100)
    assert (tmp_path / "p.mismatch.onnx").is_file() and not (tmp_path / "p.onnx").exists()


def test_corrupt_and_contractless_files_are_refused(tiny_policy, tmp_path) -> None:
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(tiny_policy.read_bytes()[:200])
    with pytest.raises(ContractError, match="not a loadable ONNX model"):
        OnnxPolicy(truncated)
    model = onnx.load(str(tiny_policy))
    del model.metadata_props[:]
    bare = tmp_path / "bare.onnx"
    onnx.save(model, str(bare))
    with pytest.raises(ContractError, match="no sim2real contract"):
        OnnxPolicy(bare)
    with pytest.raises(FileNotFoundError):
        OnnxPolicy(tmp_path / "nowhere.onnx")


def test_missing_run_dir(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_run(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="no checkpoint.pt"):
        load_run(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(("algo", "overrides"), [
    ("a2c", {"num_envs": 4, "rollout_steps": 8}),
    ("trpo", {"num_envs": 4, "rollout_steps": 64, "critic_epochs": 1}),
    ("reinforce", {"num_envs": 4, "batch_steps": 100, "max_episode_steps": 100}),
])
def test_a2c_trpo_reinforce_export_with_the_contract_and_pass_both_checks(
        algo, overrides, tmp_path) -> None:
    from sim2real.runs import train_run

    train_run("sim2real/ArmReach-v0", algo, 512, 0, tmp_path, "default", progress=False,
              overrides={**overrides, "hidden_sizes": (32, 32)})
    result = export(tmp_path, check_count=200)
    assert result.onnx_error <= 1e-5 and result.pipeline_error <= 1e-4
    contract = OnnxPolicy(result.path).contract
    assert contract.algorithm == algo and contract.robot["name"] == "so_arm"
    assert contract.randomization["mass"]["low"] == 0.8


def policy_with_contract(env, path) -> tuple[torch.nn.Module, OnnxPolicy]:
    """A seeded random MLP for `env`, exported with the contract of `env`'s task (its command
    history included): what `export` writes, without a training run."""
    torch.manual_seed(0)
    size, actions = env.observation_space.shape[0], env.action_space.shape[0]
    policy = torch.nn.Sequential(torch.nn.Linear(size, 32), torch.nn.Tanh(),
                                 torch.nn.Linear(32, actions), torch.nn.Tanh())
    with torch.no_grad():
        policy[0].weight.mul_(3.0)  # every input, the history's too, moves the action
    unwrapped = env.unwrapped
    contract = Contract(robot=unwrapped.robot.summary(), task=unwrapped.task.contract(),
                        observation_size=size, action_size=actions, env_id=env.spec.id,
                        algorithm="test", steps=0)
    buffer = io.BytesIO()
    torch.onnx.export(policy, (torch.zeros(1, size),), buffer, input_names=["obs"],
                      output_names=["actions"], dynamic_axes={"obs": {0: "batch"},
                                                              "actions": {0: "batch"}},
                      opset_version=17, dynamo=False)
    model = onnx.load_from_string(buffer.getvalue())
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, contract.to_json()
    onnx.save(model, str(path))
    return policy, OnnxPolicy(path)


@pytest.mark.parametrize(("env_id", "task_config"), [
    ("sim2real/ArmReach-v0", {"command_history": 3}),
    ("sim2real/ArmReach-v0", {"command_history": 3, "action_base": "last_goal"}),
    ("sim2real/FurutaSwingup-v0", {"mode": "swingup", "command_history": 3}),
])
def test_the_runtime_rebuilds_the_command_history_from_the_contract(
        env_id, task_config, tmp_path) -> None:
    from randomization.envs import make_env

    env = make_env(env_id, task_config=task_config)
    policy, deployed = policy_with_contract(env, tmp_path / "k3.onnx")
    assert deployed.contract.task["config"]["command_history"] == 3
    worst, steps = pipeline_check(env, policy, deployed, episodes=2)
    assert worst <= 1e-4 and steps >= 20


class Unrecorded(CommandHistory):
    """A runtime that forgets to record the commands it sends."""

    def push(self, command: np.ndarray) -> None:
        pass


class NewestFirst(CommandHistory):
    """A runtime that keeps the commands in the wrong order."""

    def push(self, command: np.ndarray) -> None:
        self.commands[1:] = self.commands[:-1].copy()
        self.commands[0] = command


@pytest.mark.parametrize("broken", [Unrecorded, NewestFirst])
def test_the_pipeline_check_catches_a_runtime_history_that_is_wrong(
        broken, tmp_path, monkeypatch) -> None:
    from randomization.envs import make_env

    env = make_env("sim2real/ArmReach-v0", task_config={"command_history": 3,
                                                          "action_base": "measured"})
    policy, deployed = policy_with_contract(env, tmp_path / "k3.onnx")
    monkeypatch.setattr(deploy.export, "CommandHistory", broken)  # the runtime's, not the env's
    worst, _ = pipeline_check(env, policy, deployed, episodes=1)
    assert worst > 10 * PIPELINE_TOLERANCE


def test_the_deploy_loop_feeds_the_policy_the_commands_it_sent(tmp_path, monkeypatch) -> None:
    """A policy with a command history of 3, deployed on the simulated arm: at every policy
    cycle the observation ends with the commands the loop sent in the 3 cycles before, and an
    episode starts full of the one sent before it (the command the robot holds)."""
    import deploy.loop
    from deploy.loop import run
    from deploy.telemetry import read_log
    from hardware.sim_robot import SimRobot
    from randomization.envs import make_env
    from sim.so_arm import SO_ARM

    env = make_env("sim2real/ArmReach-v0", task_config={"command_history": 3,
                                                          "action_base": "measured"})
    _, deployed = policy_with_contract(env, tmp_path / "k3.onnx")
    monkeypatch.setattr(deploy.loop, "sleep_until", lambda deadline: None)  # lockstep, fast
    with SimRobot(SO_ARM, realtime=False) as robot:
        report = run(deployed, robot, seconds=1e9, max_episodes=2, log=tmp_path / "k3.mcap")
    assert report.episodes == 2
    fields = read_log(tmp_path / "k3.mcap").fields
    policy = fields["phase"][:, 0] == 0
    sent, checked = fields["command"][:, :3], 0
    for cycle in np.flatnonzero(policy):
        start = cycle
        while start > 0 and policy[start - 1]:
            start -= 1
        if start == 0:
            continue  # sent before the first cycle: the supervisor's start command, unlogged
        expected = [sent[max(j, start - 1)] for j in range(cycle - 3, cycle)]
        assert np.allclose(fields["observation"][cycle, -9:], np.concatenate(expected),
                           atol=1e-6), cycle
        checked += 1
    assert checked >= 20
