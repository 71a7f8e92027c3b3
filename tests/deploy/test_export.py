import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from deploy.contract import METADATA_KEY, ContractError
from deploy.export import ExportMismatch, export, load_run
from deploy.onnx_policy import OnnxPolicy
from policies.ppo import load_policy


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
    out = session.run(None, {"obs": np.zeros((3, 21), np.float32)})[0]
    assert out.shape == (3, 3)


def test_normalizer_is_inside_the_graph(tiny_run, tiny_policy) -> None:
    checkpoint, _ = load_run(tiny_run)
    torch_policy = load_policy(checkpoint)
    obs = np.random.default_rng(0).normal(0, 1, (100, 21)).astype(np.float32) * 0.3
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
