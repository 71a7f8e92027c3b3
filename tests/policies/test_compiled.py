"""The pieces of the fast off-policy update checked against PyTorch's own, and the compiled
update checked against the eager one."""

import pytest
import torch
from torch import nn
from torch.func import functional_call

from policies import compiled, ddpg, ppo, sac, td3
from policies.compiled import (
    Adam,
    compile_update,
    fast_matmuls,
    onednn_keeps_fp32,
    parameters_of,
    should_compile,
)
from policies.core import sync_vector_env
from policies.offpolicy_networks import Linear
from randomization.envs import make_env


@pytest.mark.slow  # many optimizer steps, both ways
def test_adam_matches_torch_optim_adam() -> None:
    torch.manual_seed(0)
    ours, theirs = nn.Linear(5, 3), nn.Linear(5, 3)
    theirs.load_state_dict(ours.state_dict())
    adam = Adam(parameters_of(ours), lr=1e-2)
    reference = torch.optim.Adam(theirs.parameters(), lr=1e-2)
    for _ in range(10):  # later, near the optimum, float rounding of tiny gradients shows
        x = torch.randn(16, 5)
        grads = torch.func.grad(lambda p, x=x: torch.func.functional_call(ours, p, (x,))
                                .square().mean())(parameters_of(ours))
        adam.step(grads)
        reference.zero_grad()
        theirs(x).square().mean().backward()
        reference.step()
    for mine, torchs in zip(ours.parameters(), theirs.parameters(), strict=True):
        assert torch.allclose(mine, torchs, atol=1e-6)
    assert adam.step_count.item() == 10


def test_adam_state_round_trips_and_refuses_another_network() -> None:
    net = nn.Linear(2, 2)
    adam = Adam(parameters_of(net), lr=1e-3)
    adam.step({name: torch.ones_like(p) for name, p in net.named_parameters()})
    fresh = Adam(parameters_of(net), lr=1e-3)
    fresh.load_state_dict(adam.state_dict())
    assert fresh.step_count.item() == 1
    assert all(torch.equal(a, b) for a, b in zip(fresh.exp_avg_sq, adam.exp_avg_sq, strict=True))
    with pytest.raises(ValueError, match="another network"):
        Adam(parameters_of(nn.Sequential(net)), lr=1e-3).load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match="learning rate must be > 0, got 0"):
        Adam(parameters_of(net), lr=0.0)


def test_fast_matmuls_stay_fp32_and_are_switched_off_after() -> None:
    before = torch.backends.mkldnn.matmul.fp32_precision
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    exact = a.double() @ b.double()
    with fast_matmuls(onednn_keeps_fp32()):
        inside = a @ b
        if onednn_keeps_fp32():
            assert torch.backends.mkldnn.matmul.fp32_precision == "bf16"
    assert torch.backends.mkldnn.matmul.fp32_precision == before
    # Whichever library took it, the product is fp32's (a bf16 one is ~1e-2 off).
    assert ((inside.double() - exact).abs().max() / exact.abs().max()) < 1e-5


def test_the_oneDNN_check_refuses_products_less_exact_than_asked(monkeypatch) -> None:
    monkeypatch.setattr(compiled, "ONEDNN_FP32_TOLERANCE", 1e-12)
    assert not onednn_keeps_fp32.__wrapped__()


def test_compile_choice() -> None:
    assert not should_compile("auto", 1_000) and should_compile("auto", 50_000)
    assert should_compile("always", 1) and not should_compile("never", 10**9)
    assert should_compile("auto", 1_000, min_updates=500)
    with pytest.raises(ValueError, match="compile must be one of auto, always, never; got 'yes'"):
        should_compile("yes", 10)


@pytest.mark.slow  # compiles twice: 3 s
def test_a_compiled_update_given_a_new_shape_compiles_for_it() -> None:
    """PPO's last minibatch can be shorter than the others: it must not run their graph."""
    total = compile_update(lambda x: x.sum(0), enabled=True)
    for rows in (4, 4, 2, 4, 2):
        assert torch.equal(total(torch.ones(rows, 3)), torch.full((3,), float(rows)))


@pytest.mark.slow  # compiles: 3 s
def test_a_compiled_q_head_is_the_same_layer() -> None:
    """Compiled, a layer to one output is a multiply-and-sum, not a matmul: same values and
    gradients as nn.Linear's."""
    head = Linear(256, 1)
    x = torch.randn(256, 256)

    def value_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.func.grad_and_value(lambda w: functional_call(head, {"weight": w, "bias": head.bias},
                                                                   (x,)).square().sum())(head.weight)

    eager_grad, eager_value = value_and_grad(x)
    compiled_grad, compiled_value = compile_update(value_and_grad, enabled=True)(x)
    assert torch.allclose(compiled_value, eager_value, rtol=1e-5)
    # Sums over 256 rows in another order (seen on an Intel Xeon: up to 7e-7 of the largest
    # entry); float32 rounding of such a sum is bounded by 256 x 2^-24 = 1.5e-5 of it.
    assert torch.allclose(compiled_grad, eager_grad, rtol=1e-5,
                          atol=4e-6 * float(eager_grad.detach().abs().max()))


@pytest.mark.slow  # compiles ten times: 5 s
def test_one_process_compiles_the_updates_of_many_runs() -> None:
    """Dynamo keeps at most 8 graphs per code object: runs must not share one."""
    for run in range(10):
        scaled = compile_update(lambda x, run=run: x * run, enabled=True)
        assert torch.equal(scaled(torch.ones(2)), torch.full((2,), float(run)))


@pytest.mark.slow  # compiles: 4 s
def test_learning_rate_is_read_at_each_step() -> None:
    """A schedule changes the rate in place; a compiled update reads the tensor, not a copy."""
    net = nn.Linear(1, 1, bias=False)
    adam = Adam(parameters_of(net), lr=1e-3)
    step = compile_update(adam.step, enabled=True)
    before = net.weight.item()
    step({"weight": torch.ones(1, 1)})
    adam.set_learning_rate(1e-1)
    middle = net.weight.item()
    step({"weight": torch.ones(1, 1)})
    # Adam's first steps move by about the learning rate.
    assert before - middle == pytest.approx(1e-3, rel=1e-3)
    assert middle - net.weight.item() == pytest.approx(1e-1, rel=1e-3)


def weights_eager_and_compiled(module, config_for, tmp_path) -> dict:
    """The final weights of `module`'s training on InvertedPendulum-v5, by compile choice."""
    weights = {}
    for choice in ("never", "always"):
        module.train(sync_vector_env(lambda: make_env("InvertedPendulum-v5")), config_for(choice),
                     tmp_path / choice, progress=False)
        weights[choice] = torch.load(tmp_path / choice / "checkpoint.pt",
                                     weights_only=False)["agent"]
    return weights


@pytest.mark.slow
@pytest.mark.parametrize("module, config_type", [(sac, sac.SACConfig), (td3, td3.TD3Config),
                                                 (ddpg, ddpg.DDPGConfig)])
def test_compiled_training_equals_eager_training(module, config_type, tmp_path) -> None:
    """The same 60 updates, eager and compiled, end in the same weights."""
    weights = weights_eager_and_compiled(
        module, lambda choice: config_type(total_steps=160, learning_starts=100, batch_size=64,
                                           hidden_sizes=(64, 64), eval_every=0, compile=choice),
        tmp_path)
    for name, eager in weights["never"].items():
        assert torch.allclose(weights["always"][name], eager, atol=1e-4), name
    assert not torch.allclose(weights["never"]["actor.0.weight" if module is not sac else
                                               "actor.trunk.0.0.weight"],
                              torch.zeros(1)), "nothing trained"


@pytest.mark.slow
def test_compiled_ppo_equals_eager_ppo(tmp_path) -> None:
    """Two iterations of 6 minibatch updates (48, 48 and a shorter 32 rows, twice) with an
    annealed learning rate, eager and compiled, end in the same weights."""
    weights = weights_eager_and_compiled(
        ppo, lambda choice: ppo.PPOConfig(total_steps=256, num_envs=4, rollout_steps=32, epochs=2,
                                          minibatch_size=48, hidden_sizes=(32, 32), eval_every=0,
                                          compile=choice),
        tmp_path)
    for name, eager in weights["never"].items():
        assert torch.allclose(weights["always"][name], eager, atol=1e-5), name
    assert not torch.allclose(weights["never"]["log_std"], torch.full((1,), -0.5)), "nothing trained"
