"""The networks SAC, TD3, DDPG (and DQN) share: ReLU MLPs of a `Linear` that is cheaper inside a
compiled update and can multiply in bf16 (opt-in), the twin Q-networks, Polyak target updates."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

MATMUL_PRECISIONS = ("fp32", "bf16")
BF16_MIN_SIZE = 64
"""bf16 pays for layers at least this wide on both sides, and for batches of at least this many
rows: below, the casts cost more than the products save (a 1x256 by 256x256 product: bf16 40 us,
fp32 6 us)."""


class Linear(nn.Linear):
    """nn.Linear (the same parameters, state_dict and initialisation) made cheaper inside a
    compiled update, measured on a SAC update here (2 threads):
    - a layer to one output (a Q-head), being compiled, is a multiply-and-sum that fuses with
      the ReLU before it, instead of a matmul whose backward is a 256x256 outer product
      (~0.3 ms an update);
    - `bf16_matmul` (set by `use_matmul_precision`) takes the product in bfloat16: inputs and
      weights rounded to bf16, accumulated in fp32 by oneDNN, bias and everything else fp32.
      A 256x256x256 product: 99 vs 223 us on this Zen 4 (AVX512_BF16). It changes the numbers,
      so it is opt-in, and is only used for training: a policy loaded from a checkpoint (what
      is exported and deployed) computes in fp32. A batch of fewer than BF16_MIN_SIZE rows
      (acting on one env's observation) stays fp32."""

    bf16_matmul = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bf16_matmul and x.numel() >= BF16_MIN_SIZE * self.in_features:
            return F.linear(x.to(torch.bfloat16), self.weight.to(torch.bfloat16)).float() + self.bias
        if self.out_features == 1 and torch.compiler.is_compiling():
            return (x * self.weight).sum(-1, keepdim=True) + self.bias
        return super().forward(x)


def use_matmul_precision(network: nn.Module, precision: str) -> None:
    """"bf16": the hidden-to-hidden layers of `network` (both sides >= BF16_MIN_SIZE) multiply in
    bfloat16; the input and output layers stay fp32 (measured: bf16 made those small products
    slower, and their casts cost more than they saved). "fp32": all of them in fp32."""
    if precision not in MATMUL_PRECISIONS:
        raise ValueError(f"matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)}; "
                         f"got {precision!r}")
    for layer in network.modules():
        if isinstance(layer, Linear):
            layer.bf16_matmul = (precision == "bf16"
                                 and min(layer.in_features, layer.out_features) >= BF16_MIN_SIZE)


def relu_mlp(sizes: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them and PyTorch's default initialisation, as
    Stable-Baselines3 and CleanRL build their off-policy networks."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


class Critics(nn.Module):
    """`count` independent Q-networks Q(s, a), evaluated together: (count, batch) values for the
    normalized observations and actions. SAC and TD3 use two (the smaller one counters
    overestimation), DDPG one."""

    def __init__(self, obs_size: int, action_size: int, hidden_sizes: tuple[int, ...],
                 count: int) -> None:
        super().__init__()
        self.nets = nn.ModuleList([relu_mlp([obs_size + action_size, *hidden_sizes, 1])
                                   for _ in range(count)])

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs, action], dim=-1)
        return torch.stack([net(x).squeeze(-1) for net in self.nets])

    def member(self, index: int, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """One of them alone (TD3's actor loss): evaluating all and picking one would still
        run the others' backward, on zeros."""
        return self.nets[index](torch.cat([obs, action], dim=-1)).squeeze(-1)


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging: target <- (1 - tau) * target + tau * source, all parameters at once."""
    torch._foreach_lerp_(list(target.parameters()), list(source.parameters()), tau)
