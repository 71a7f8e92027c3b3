"""The learning test of the foundation: the demo's whole path, measured (slow: ~2 minutes)."""

import pytest

from deploy.onnx_policy import OnnxPolicy
from randomization.config import load_config
from sim2real.demo import run_demo


@pytest.mark.slow
def test_demo_policy_reaches_90_percent_on_the_simulated_robot(tmp_path, capsys) -> None:
    ok = run_demo(tmp_path / "demo", episodes=50, seed=3)
    out = capsys.readouterr().out
    assert ok, out
    assert "PASS" in out
    policy = OnnxPolicy(tmp_path / "demo" / "policy.onnx")
    # The contract carries the ranges the policy was trained under: the arm's default preset.
    assert policy.contract.randomization == load_config("default", "so_arm").to_dict()
    assert policy.contract.steps >= 250_000
